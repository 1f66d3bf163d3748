/**
 * The effective PeerAuthentication mTLS mode for a workload port, pure:
 * workload (selector) > namespace > mesh (root namespace); UNSET inherits;
 * default PERMISSIVE, as Istio.
 *
 * As in Istio, a selector policy counts only in the workload's own
 * namespace when that is not the root namespace (a selector policy in the
 * root namespace is ignored), `portLevelMtls` counts only on the workload
 * policy, and among several policies at one level the oldest
 * (`creationTimestamp`, then name) wins. DISABLE is returned as written; at
 * a ztunnel it accepts plaintext like PERMISSIVE (HBONE is always mutual TLS).
 *
 * @module
 */
import type { Resource } from "../config/kind.ts";
import { matches, type Snapshot, type Workload } from "../config/snapshot.ts";

/** An effective mode. */
export type MtlsMode = "STRICT" | "PERMISSIVE" | "DISABLE";

// deno-lint-ignore no-explicit-any
type Spec = any;

/** Oldest first; a missing timestamp counts as oldest (Kubernetes' zero time), then by name. */
function oldestFirst(a: Resource, b: Resource): number {
  const t = (r: Resource) => {
    const ms = Date.parse(r.metadata.creationTimestamp ?? "");
    return Number.isNaN(ms) ? -Infinity : ms;
  };
  const ta = t(a), tb = t(b);
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

function selectorOf(r: Resource): Readonly<Record<string, string>> | undefined {
  const sel = (r.spec as Spec)?.selector?.matchLabels;
  return sel && Object.keys(sel).length > 0 ? sel : undefined;
}

/**
 * The mode for traffic to `w` on workload port `port`.
 *
 * @example
 * // With a mesh-wide `mtls: {mode: STRICT}` in the root namespace and nothing more specific:
 * mtlsModeFor(snapshot, snapshot.workloads.get("shop/web")!, 8080); // "STRICT"
 */
export function mtlsModeFor(s: Snapshot, w: Workload, port: number): MtlsMode {
  const idx = s.peerAuthentications.byNamespace;
  const root = s.mesh.rootNamespace;
  const inNs = [...(idx.get(w.namespace) ?? [])].sort(oldestFirst);
  const inRoot = w.namespace === root ? inNs : [...(idx.get(root) ?? [])].sort(oldestFirst);
  const workload = w.namespace === root ? undefined : inNs.find((r) => {
    const sel = selectorOf(r);
    return sel !== undefined && matches(sel, w.labels);
  });
  const namespace = w.namespace === root ? undefined : inNs.find((r) => !selectorOf(r));
  const mesh = inRoot.find((r) => !selectorOf(r));
  const modes: (string | undefined)[] = [
    (workload?.spec as Spec)?.portLevelMtls?.[String(port)]?.mode,
    (workload?.spec as Spec)?.mtls?.mode,
    (namespace?.spec as Spec)?.mtls?.mode,
    (mesh?.spec as Spec)?.mtls?.mode,
  ];
  for (const m of modes) {
    if (m === "STRICT" || m === "PERMISSIVE" || m === "DISABLE") return m;
  }
  return "PERMISSIVE";
}
