/**
 * SPIFFE IDs as ambit uses them: workloads are
 * `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>` (Istio's
 * form); nodes are `spiffe://<trust-domain>/ambit/node/<node>`, a path no
 * workload can have, so a node credential can never pass as a workload; the
 * CA service is `spiffe://<trust-domain>/ambit/ca`.
 *
 * @module
 */

/** A parsed SPIFFE ID. */
export type SpiffeId =
  | {
    readonly kind: "workload";
    readonly trustDomain: string;
    readonly namespace: string;
    readonly serviceAccount: string;
  }
  | { readonly kind: "node"; readonly trustDomain: string; readonly node: string }
  | { readonly kind: "ca"; readonly trustDomain: string };

/** Raised for an ID that is not a SPIFFE ID ambit issues. */
export class SpiffeIdError extends Error {
  override readonly name = "SpiffeIdError";
  readonly code = "ESPIFFEID";
}

const TD = /^[a-z0-9._-]{1,255}$/;
const SEGMENT = /^[A-Za-z0-9._-]{1,253}$/;

/** Parses `spiffe://td/ns/x/sa/y` or `spiffe://td/ambit/node/n`; throws {@link SpiffeIdError}. */
export function parseSpiffeId(uri: string): SpiffeId {
  if (!uri.startsWith("spiffe://")) {
    throw new SpiffeIdError(
      `"${uri}" is not a SPIFFE ID (expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)`,
    );
  }
  const rest = uri.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  const td = slash === -1 ? rest : rest.slice(0, slash);
  if (!TD.test(td)) throw new SpiffeIdError(`"${uri}" has an invalid trust domain "${td}"`);
  const parts = slash === -1 ? [] : rest.slice(slash + 1).split("/");
  if (
    parts.length === 4 && parts[0] === "ns" && parts[2] === "sa" && SEGMENT.test(parts[1]) &&
    SEGMENT.test(parts[3])
  ) {
    return { kind: "workload", trustDomain: td, namespace: parts[1], serviceAccount: parts[3] };
  }
  if (parts.length === 3 && parts[0] === "ambit" && parts[1] === "node" && SEGMENT.test(parts[2])) {
    return { kind: "node", trustDomain: td, node: parts[2] };
  }
  if (parts.length === 2 && parts[0] === "ambit" && parts[1] === "ca") {
    return { kind: "ca", trustDomain: td };
  }
  throw new SpiffeIdError(
    `"${uri}" is not a workload or node identity (expected spiffe://${td}/ns/<namespace>/sa/<service-account>)`,
  );
}

/** Formats a workload identity. */
export function workloadId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** Formats a node identity. */
export function nodeId(trustDomain: string, node: string): string {
  return `spiffe://${trustDomain}/ambit/node/${node}`;
}

/** The CA service's own identity. */
export function caId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ambit/ca`;
}

/** The AuthorizationPolicy principal form (no scheme): `td/ns/x/sa/y`. */
export function principalOf(id: string): string {
  return id.startsWith("spiffe://") ? id.slice("spiffe://".length) : id;
}
