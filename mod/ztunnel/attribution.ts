/**
 * Which local workload opened an outbound connection: pure, from the
 * connection's source address and owning uid. A process must not be able to
 * take another workload's identity, so once any candidate names a user, the
 * socket's owner must match it.
 *
 * @module
 */
import { canonicalIp, unmapIp } from "../config/formats.ts";

/** An enrolled workload on this node. */
export interface Candidate {
  readonly key: string;
  readonly identity: string;
  readonly address: string;
  readonly user?: string | number;
}

/** The result: a workload, or why none. */
export type Attribution =
  | {
    readonly ok: true;
    readonly workload: string;
    readonly identity: string;
    readonly by: "only-workload" | "address" | "user" | "address+user" | "shared-identity";
  }
  | { readonly ok: false; readonly reason: string };

/** Attributes a connection from `conn.sourceIp` owned by `conn.uid`. */
export function attributeSource(
  candidates: readonly Candidate[],
  conn: { readonly sourceIp: string; readonly uid?: number },
  uidOf: (user: string | number) => number | undefined,
): Attribution {
  if (candidates.length === 0) return { ok: false, reason: "no enrolled workload on this node" };
  if (candidates.length === 1 && candidates[0].user === undefined) {
    return {
      ok: true,
      workload: candidates[0].key,
      identity: candidates[0].identity,
      by: "only-workload",
    };
  }
  const ip = canonicalIp(unmapIp(conn.sourceIp));
  let left = candidates.filter((c) => canonicalIp(c.address) === ip);
  // The address attributes only when it tells candidates apart.
  const byAddress = left.length > 0 && left.length < candidates.length;
  if (left.length === 0) left = [...candidates];
  const withUser = left.filter((c) => c.user !== undefined);
  let byUser = false;
  if (withUser.length > 0) {
    if (conn.uid === undefined) {
      return {
        ok: false,
        reason: `the socket's owner could not be determined (from ${conn.sourceIp})`,
      };
    }
    left = withUser.filter((c) => uidOf(c.user!) === conn.uid);
    byUser = true;
    if (left.length === 0) {
      return {
        ok: false,
        reason: `uid ${conn.uid} runs none of ${
          withUser.map((c) => `${c.key} (user ${c.user})`).join(", ")
        }`,
      };
    }
  }
  const sorted = [...left].sort((a, b) => a.key.localeCompare(b.key));
  if (sorted.length === 1 || new Set(sorted.map((c) => c.identity)).size === 1) {
    const by = sorted.length > 1
      ? "shared-identity"
      : byAddress && byUser
      ? "address+user"
      : byUser
      ? "user"
      : byAddress
      ? "address"
      : "only-workload";
    return { ok: true, workload: sorted[0].key, identity: sorted[0].identity, by };
  }
  return {
    ok: false,
    reason: `${sorted.map((c) => c.key).join(", ")} could have opened it from ${conn.sourceIp}; ` +
      "set spec.user (or distinct addresses) on their WorkloadEntries",
  };
}
