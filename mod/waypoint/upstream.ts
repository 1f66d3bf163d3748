/**
 * The waypoint's way to an endpoint: the hop a ztunnel would take (HBONE to
 * the endpoint's node with the endpoint's identity expected, or straight TCP
 * to a workload outside the mesh), opened with the waypoint's own identity,
 * and the `forwarded` header naming the original client.
 *
 * @module
 */
import type { Duplex } from "node:stream";
import type {
  Endpoint,
  ServiceInfo,
  Snapshot,
  WaypointInfo,
  Workload,
} from "../config/snapshot.ts";
import { formatAuthority, type HostPort } from "../hbone/authority.ts";
import { TunnelError } from "../hbone/errors.ts";
import type { HbonePool } from "../hbone/pool.ts";
import { HBONE_PORT } from "../hbone/settings.ts";
import { dial } from "../ztunnel/outbound.ts";
import { planToEndpoint } from "../ztunnel/outbound_plan.ts";

/** An open byte stream to one endpoint. */
export interface EndpointConnection {
  readonly stream: Duplex;
  /** The endpoint's verified SPIFFE ID (HBONE), undefined for straight TCP. */
  readonly peerIdentity?: string;
  /** `ip:port` of the endpoint. */
  readonly address: string;
  readonly workload: string;
}

/** The waypoint as the source of a hop (its identity, its node). */
export function waypointAsSource(wp: WaypointInfo): Workload {
  const [namespace, name] = wp.key.split("/");
  return {
    key: wp.key,
    name,
    namespace,
    node: wp.node,
    address: wp.address,
    ports: {},
    labels: {},
    serviceAccount: name,
    identity: wp.identity,
    proxyProtocol: false,
    weight: 1,
    enrolled: true,
    services: [],
  };
}

/** Opens a connection to endpoint `ep` of `svc` for service port `port`. */
export async function openEndpoint(
  o: {
    snapshot: Snapshot;
    waypoint: WaypointInfo;
    pool: HbonePool;
    connectTimeout: string;
    client: HostPort;
  },
  svc: ServiceInfo,
  ep: Endpoint,
  port: number,
): Promise<EndpointConnection> {
  const source = waypointAsSource(o.waypoint);
  const plan = planToEndpoint(o.snapshot, svc, ep, {
    service: svc.key,
    port,
    source,
    node: o.waypoint.node,
  });
  const address = formatAuthority({ ip: ep.address, port: ep.ports[port] });
  if (plan.kind === "fail") throw new TunnelError(plan.failure, plan.detail);
  if (plan.kind === "hbone") {
    const t = await o.pool.open({
      source: o.waypoint.identity,
      expected: plan.expected,
      nextHop: plan.nextHop,
      authority: plan.authority,
      headers: { forwarded: `for="${formatAuthority(o.client)}";host=${svc.hostname}` },
    });
    return { stream: t.stream, peerIdentity: t.peerIdentity, address, workload: ep.workload };
  }
  if (plan.kind === "direct") {
    const s = await dial(plan.destination, o.connectTimeout);
    return { stream: s, address, workload: ep.workload };
  }
  throw new TunnelError(
    "no_healthy_endpoint",
    `endpoint ${ep.workload} cannot be reached from the waypoint (${plan.kind})`,
  );
}

/** Opens a connection to a workload addressed directly (workload waypoints). */
export async function openWorkload(
  o: { waypoint: WaypointInfo; pool: HbonePool; connectTimeout: string; client: HostPort },
  snapshot: Snapshot,
  w: Workload,
  port: number,
): Promise<EndpointConnection> {
  const address = formatAuthority({ ip: w.address, port });
  if (!w.enrolled) {
    const s = await dial({ ip: w.address, port }, o.connectTimeout);
    return { stream: s, address, workload: w.key };
  }
  const node = snapshot.nodes.get(w.node)!;
  const t = await o.pool.open({
    source: o.waypoint.identity,
    expected: [w.identity],
    nextHop: { ip: node.address, port: HBONE_PORT },
    authority: address,
    headers: { forwarded: `for="${formatAuthority(o.client)}"` },
  });
  return { stream: t.stream, peerIdentity: t.peerIdentity, address, workload: w.key };
}
