/**
 * The effective PeerAuthentication mTLS mode for a workload port, pure:
 * workload (selector) > namespace > mesh (root namespace); UNSET inherits;
 * default PERMISSIVE, as Istio.
 *
 * @module
 */
import type { Resource } from "../config/kind.ts";
import { matches, type Snapshot, type Workload } from "../config/snapshot.ts";

/** An effective mode. */
export type MtlsMode = "STRICT" | "PERMISSIVE" | "DISABLE";

// deno-lint-ignore no-explicit-any
type Spec = any;

/** The mode for traffic to `w` on workload port `port`. */
export function mtlsModeFor(s: Snapshot, w: Workload, port: number): MtlsMode {
  const idx = s.peerAuthentications.byNamespace;
  const oldestFirst = (a: Resource, b: Resource) =>
    String(a.metadata.creationTimestamp ?? "").localeCompare(
      String(b.metadata.creationTimestamp ?? ""),
    ) || a.metadata.name.localeCompare(b.metadata.name);
  const inNs = [...(idx.get(w.namespace) ?? [])].sort(oldestFirst);
  const root = w.namespace === s.mesh.rootNamespace
    ? []
    : [...(idx.get(s.mesh.rootNamespace) ?? [])].sort(oldestFirst);
  const hasSel = (r: Resource) =>
    Object.keys((r.spec as Spec)?.selector?.matchLabels ?? {}).length > 0;
  const levels: (Resource | undefined)[] = [
    inNs.find((r) => hasSel(r) && matches((r.spec as Spec).selector.matchLabels, w.labels)),
    inNs.find((r) => !hasSel(r)),
    root.find((r) => !hasSel(r)),
  ];
  for (const [i, r] of levels.entries()) {
    if (!r) continue;
    const spec: Spec = r.spec ?? {};
    if (i === 0) {
      const pl = spec.portLevelMtls?.[String(port)]?.mode;
      if (pl && pl !== "UNSET") return pl;
    }
    const m = spec.mtls?.mode;
    if (m && m !== "UNSET") return m;
  }
  return "PERMISSIVE";
}
