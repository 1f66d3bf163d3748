/**
 * Is a node credential's identity the one this host needs? Pure.
 *
 * @module
 */
import { nodeId, parseSpiffeId, SpiffeIdError } from "../identity/spiffe.ts";

/** The verdict on a credential's SPIFFE ID. */
export interface IdentityVerdict {
  readonly status: "ok" | "fail";
  readonly detail: string;
  readonly hint?: string;
}

/**
 * Checks that `id` (the credential's single SPIFFE URI SAN) is the node
 * identity `spiffe://<trustDomain>/ambit/node/<node>`.
 */
export function credentialIdentityVerdict(
  id: string | undefined,
  trustDomain: string,
  node: string,
): IdentityVerdict {
  const issue = `ambit ca issue-node ${node} --ca <CA dir> --out <dir>`;
  if (id === undefined) {
    return {
      status: "fail",
      detail: "cert.pem has no single SPIFFE URI SAN: it is not an ambit node credential",
      hint: `create one with: ${issue}`,
    };
  }
  let parsed;
  try {
    parsed = parseSpiffeId(id);
  } catch (e) {
    if (!(e instanceof SpiffeIdError)) throw e;
    return { status: "fail", detail: e.message, hint: `create a node credential with: ${issue}` };
  }
  if (parsed.kind !== "node") {
    return {
      status: "fail",
      detail: `${id} is a ${parsed.kind} identity, not a node credential`,
      hint: `node roles authenticate to the CA with a node credential: ${issue}`,
    };
  }
  if (parsed.trustDomain !== trustDomain) {
    return {
      status: "fail",
      detail: `${id} is in trust domain "${parsed.trustDomain}", the mesh is "${trustDomain}"`,
      hint: `issue it from the mesh's CA (Mesh spec.trustDomain ${trustDomain}): ${issue}`,
    };
  }
  if (parsed.node !== node) {
    return {
      status: "fail",
      detail: `${id} is node "${parsed.node}"'s credential, not "${node}"'s`,
      hint: `use this host's own credential, or create one: ${issue}`,
    };
  }
  return { status: "ok", detail: nodeId(trustDomain, node) };
}
