/**
 * A snapshot as plain data, for `ambit config dump` and the admin API's
 * `/config_dump`. Maps become objects; resources keep their source location.
 *
 * @module
 */
import type { Snapshot } from "./snapshot.ts";

/** Options for {@link dumpSnapshot}. */
export interface DumpOptions {
  /** Only what this node needs: its workloads, the services and waypoints they reach. */
  node?: string;
}

/** Converts a snapshot to JSON-ready data. */
export function dumpSnapshot(s: Snapshot, options: DumpOptions = {}): Record<string, unknown> {
  const node = options.node;
  const workloads = [...s.workloads.values()].filter((w) => node === undefined || w.node === node);
  const services = [...s.services.values()];
  return {
    mesh: s.mesh,
    node: node === undefined ? undefined : s.nodes.get(node),
    nodes: node === undefined ? [...s.nodes.values()] : undefined,
    namespaces: [...s.namespaces.values()],
    workloads,
    services,
    waypoints: [...s.waypoints.values()],
    policies: {
      authorization: s.authorizationPolicies.all.map(brief),
      peerAuthentication: s.peerAuthentications.all.map(brief),
      requestAuthentication: s.requestAuthentications.all.map(brief),
      destinationRules: [...s.destinationRules.values()].flat().map(brief),
      faults: [...s.faults.values()].map(brief),
      localRateLimits: [...s.rateLimits.values()].map(brief),
    },
    routes: s.resources.filter((r) => r.kind === "HTTPRoute" || r.kind === "GRPCRoute").map(brief),
    serviceEntries: s.serviceEntries.map(brief),
    warnings: s.warnings,
  };
}

function brief(r: Snapshot["resources"][number]) {
  return {
    kind: r.kind,
    namespace: r.metadata.namespace,
    name: r.metadata.name,
    source: `${r.source.file}:${r.source.line}`,
    spec: r.spec,
  };
}
