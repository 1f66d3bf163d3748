/**
 * The CA's authorization rule, Istio's node authorization: a node may obtain
 * certificates only for identities of workloads (and waypoints) placed on it
 * by the current config, and may renew its own node credential. Pure.
 *
 * @module
 */
import type { Snapshot } from "../config/snapshot.ts";
import type { SpiffeId } from "./spiffe.ts";

/** Why a signing request was refused. */
export type RefusalCode =
  | "not_a_node"
  | "wrong_trust_domain"
  | "unknown_node"
  | "not_on_node"
  | "not_a_workload";

/** The decision for one signing request. */
export type SigningDecision =
  | { readonly allowed: true; readonly usage: "workload" | "node" }
  | { readonly allowed: false; readonly code: RefusalCode; readonly message: string };

/** Decides whether `requester` (the client certificate's ID) may obtain `requested`. */
export function authorizeSigning(
  s: Snapshot,
  requester: SpiffeId,
  requested: SpiffeId,
): SigningDecision {
  const td = s.mesh.trustDomain;
  if (requester.kind !== "node") {
    return deny(
      "not_a_node",
      `only node credentials may request certificates; the client is a ${requester.kind} identity`,
    );
  }
  if (requester.trustDomain !== td) {
    return deny(
      "wrong_trust_domain",
      `node credential is from trust domain "${requester.trustDomain}"; this mesh is "${td}"`,
    );
  }
  if (!s.nodes.has(requester.node)) {
    return deny("unknown_node", `node "${requester.node}" is not in the mesh config`);
  }
  if (requested.trustDomain !== td) {
    return deny(
      "wrong_trust_domain",
      `requested identity is in trust domain "${requested.trustDomain}"; this mesh is "${td}"`,
    );
  }
  if (requested.kind === "node") {
    return requested.node === requester.node ? { allowed: true, usage: "node" } : deny(
      "not_on_node",
      `node "${requester.node}" may not obtain the credential of node "${requested.node}"`,
    );
  }
  if (requested.kind !== "workload") {
    return deny("not_a_workload", `the ${requested.kind} identity is never issued to nodes`);
  }
  const { namespace, serviceAccount } = requested;
  const onNode = (s.workloadsByNode.get(requester.node) ?? []).some((w) =>
    w.enrolled && w.namespace === namespace && w.serviceAccount === serviceAccount
  );
  const waypoint = [...s.waypoints.values()].some((w) =>
    w.node === requester.node && w.namespace === namespace && w.name === serviceAccount
  );
  if (onNode || waypoint) return { allowed: true, usage: "workload" };
  return deny(
    "not_on_node",
    `no enrolled workload or waypoint with namespace "${namespace}" and service account "${serviceAccount}" is placed on node "${requester.node}"`,
  );
}

function deny(code: RefusalCode, message: string): SigningDecision {
  return { allowed: false, code, message };
}
