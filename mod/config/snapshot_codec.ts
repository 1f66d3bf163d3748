/**
 * Moves a {@link Snapshot} from the compile Worker to the main thread without
 * stalling it: the worker encodes it as JSON chunks (shared objects by index,
 * derived indexes left out), and the main thread decodes chunk by chunk,
 * yielding between slices, then rebuilds the indexes. structuredClone of a
 * large snapshot costs the receiving thread tens of milliseconds in one go;
 * this keeps every slice to a few.
 *
 * @module
 */
import type { Resource } from "./kind.ts";
import type { ConfigIssue } from "./load.ts";
import {
  freezeSnapshot,
  indexExtensions,
  indexPolicies,
  type NamespaceInfo,
  type NodeInfo,
  type ServiceInfo,
  type Snapshot,
  type WaypointInfo,
  type Workload,
} from "./snapshot.ts";

/** Items per JSON chunk. */
const CHUNK = 200;

/** The encoded form: plain strings, cheap to post between threads. */
export interface EncodedSnapshot {
  readonly head: string;
  readonly resources: readonly string[];
  readonly workloads: readonly string[];
  readonly services: readonly string[];
}

interface Head {
  mesh: Snapshot["mesh"];
  nodes: NodeInfo[];
  namespaces: NamespaceInfo[];
  waypoints: WaypointInfo[];
  warnings: ConfigIssue[];
  serviceEntries: number[];
  policies: { authz: number[]; peer: number[]; request: number[] };
  destinationRules: [string, number[]][];
  routesByParent: [string, number[]][];
  extensions: { faults: number[]; rateLimits: number[] };
}

function chunks<T>(items: readonly T[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(JSON.stringify(items.slice(i, i + CHUNK)));
  return out;
}

/** Encodes a snapshot (in the worker). */
export function encodeSnapshot(s: Snapshot): EncodedSnapshot {
  const id = new Map<Resource, number>(s.resources.map((r, i) => [r, i]));
  const ids = (list: readonly Resource[]) => list.map((r) => id.get(r)!);
  const head: Head = {
    mesh: s.mesh,
    nodes: [...s.nodes.values()],
    namespaces: [...s.namespaces.values()],
    waypoints: [...s.waypoints.values()],
    warnings: [...s.warnings],
    serviceEntries: ids(s.serviceEntries),
    policies: {
      authz: ids(s.authorizationPolicies.all),
      peer: ids(s.peerAuthentications.all),
      request: ids(s.requestAuthentications.all),
    },
    destinationRules: [...s.destinationRules].map(([k, v]) => [k, ids(v)]),
    routesByParent: [...s.routesByParent].map(([k, v]) => [k, ids(v)]),
    extensions: {
      faults: ids([...s.faults.values()]),
      rateLimits: ids([...s.rateLimits.values()]),
    },
  };
  return {
    head: JSON.stringify(head),
    resources: chunks(s.resources),
    workloads: chunks([...s.workloads.values()]),
    services: chunks([...s.services.values()]),
  };
}

/** Decodes on the main thread, calling `pause` between slices (default: a macrotask). */
export async function decodeSnapshot(
  e: EncodedSnapshot,
  pause: () => Promise<void> = () => new Promise((r) => setTimeout(r, 0)),
): Promise<Snapshot> {
  const parseAll = async <T>(parts: readonly string[]): Promise<T[]> => {
    const out: T[] = [];
    for (const p of parts) {
      out.push(...(JSON.parse(p) as T[]));
      await pause();
    }
    return out;
  };
  const head = JSON.parse(e.head) as Head;
  const resources = await parseAll<Resource>(e.resources);
  const workloadList = await parseAll<Workload>(e.workloads);
  const serviceList = await parseAll<ServiceInfo>(e.services);
  const byId = (ids: number[]) => ids.map((i) => resources[i]);
  const group = <T>(items: readonly T[], key: (t: T) => string) => {
    const m = new Map<string, T[]>();
    for (const it of items) {
      const k = key(it);
      const l = m.get(k);
      if (l) l.push(it);
      else m.set(k, [it]);
    }
    return m;
  };
  const workloadsByAddress = new Map<string, Map<string, Workload[]>>();
  for (const w of workloadList) {
    let m = workloadsByAddress.get(w.node);
    if (!m) workloadsByAddress.set(w.node, m = new Map());
    const l = m.get(w.address);
    if (l) l.push(w);
    else m.set(w.address, [w]);
  }
  const snapshot: Snapshot = {
    mesh: head.mesh,
    resources,
    nodes: new Map(head.nodes.map((n) => [n.name, n])),
    namespaces: new Map(head.namespaces.map((n) => [n.name, n])),
    workloads: new Map(workloadList.map((w) => [w.key, w])),
    workloadsByNode: group(workloadList, (w) => w.node),
    workloadsByAddress,
    workloadsByIdentity: group(workloadList, (w) => w.identity),
    services: new Map(serviceList.map((s) => [s.key, s])),
    servicesByVip: new Map(serviceList.map((s) => [s.vip, s])),
    servicesByHost: new Map(serviceList.map((s) => [s.hostname, s])),
    serviceEntries: byId(head.serviceEntries),
    waypoints: new Map(head.waypoints.map((w) => [w.key, w])),
    authorizationPolicies: indexPolicies(byId(head.policies.authz)),
    peerAuthentications: indexPolicies(byId(head.policies.peer)),
    requestAuthentications: indexPolicies(byId(head.policies.request)),
    destinationRules: new Map(head.destinationRules.map(([k, v]) => [k, byId(v)])),
    routesByParent: new Map(head.routesByParent.map(([k, v]) => [k, byId(v)])),
    ...indexExtensions(byId(head.extensions.faults), byId(head.extensions.rateLimits)),
    warnings: head.warnings,
  };
  await pause();
  return await freezeSnapshot(snapshot, pause);
}
