/**
 * What one node's ztunnel serves, derived from a snapshot: its node entry and
 * the enrolled workloads placed on it. Pure; the diff tells what a reload changed.
 *
 * @module
 */
import type { NodeInfo, Snapshot, Workload } from "../config/snapshot.ts";

/** A node's share of the mesh config. */
export interface LocalView {
  readonly node: NodeInfo;
  /** Enrolled workloads on this node, by key. */
  readonly workloads: ReadonlyMap<string, Workload>;
  /** Every workload on this node (enrolled or not) by address. */
  readonly byAddress: ReadonlyMap<string, readonly Workload[]>;
  /** Ports each workload on this node is known to serve (named ports, service targets). */
  readonly knownPorts: ReadonlyMap<string, ReadonlySet<number>>;
}

/** Raised when the node named on the command line is not in the config. */
export class UnknownNodeError extends Error {
  override readonly name = "UnknownNodeError";
  readonly code = "ENODE";
}

/** The node's view of `s`; throws {@link UnknownNodeError} when `node` is not defined. */
export function localView(s: Snapshot, node: string): LocalView {
  const info = s.nodes.get(node);
  if (!info) {
    throw new UnknownNodeError(
      `node "${node}" is not in the config (nodes: ${
        [...s.nodes.keys()].join(", ") || "none"
      }); add a Node resource or fix --node`,
    );
  }
  const workloads = new Map(
    (s.workloadsByNode.get(node) ?? []).filter((w) => w.enrolled).map((w) => [w.key, w]),
  );
  const byAddress = s.workloadsByAddress.get(node) ?? new Map();
  const knownPorts = new Map<string, Set<number>>();
  for (const w of s.workloadsByNode.get(node) ?? []) {
    knownPorts.set(w.key, new Set(Object.values(w.ports)));
  }
  for (const svc of s.services.values()) {
    for (const ep of svc.endpoints) {
      if (ep.node !== node) continue;
      const set = knownPorts.get(ep.workload);
      for (const p of Object.values(ep.ports)) set?.add(p);
    }
  }
  return { node: info, workloads, byAddress, knownPorts };
}

/** What changed between two views of the same node. */
export interface ViewDiff {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** Identity, address or ports changed. */
  readonly changed: readonly string[];
}

/** Compares two views: workloads added, removed and changed. */
export function diffViews(before: LocalView, after: LocalView): ViewDiff {
  const added: string[] = [];
  const removed: string[] = [];
  const changed: string[] = [];
  for (const [k, w] of after.workloads) {
    const old = before.workloads.get(k);
    if (!old) added.push(k);
    else if (
      old.identity !== w.identity || old.address !== w.address ||
      JSON.stringify(old.ports) !== JSON.stringify(w.ports)
    ) changed.push(k);
  }
  for (const k of before.workloads.keys()) if (!after.workloads.has(k)) removed.push(k);
  return { added, removed, changed };
}
