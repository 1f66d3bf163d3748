/**
 * The outbound decision, pure: which listeners a node opens for its
 * workloads, and for one captured connection, which hop, which identity
 * and which `:authority` (ztunnel's "decide, then do").
 *
 * @module
 */
import { canonicalIp, isLoopbackIp } from "../config/formats.ts";
import type { Endpoint, ServiceInfo, Snapshot, Workload } from "../config/snapshot.ts";
import { formatAuthority, type HostPort } from "../hbone/authority.ts";
import type { TunnelFailure } from "../hbone/errors.ts";
import { HBONE_PORT, PLAINTEXT_PORT } from "../hbone/settings.ts";
import type { LocalView } from "./local_view.ts";

/** One outbound listener: a local address standing for a Service port. */
export interface OutboundListenerSpec {
  readonly ip: string;
  readonly port: number;
  /** Service key, `namespace/name`. */
  readonly service: string;
  readonly servicePort: number;
  /** From `Node.spec.outbound.ports` rather than the VIP. */
  readonly explicit: boolean;
}

/** Listeners for a node: every Service VIP:port (unless turned off) and explicit ports. */
export function outboundListeners(s: Snapshot, view: LocalView): OutboundListenerSpec[] {
  if (view.workloads.size === 0) return [];
  const out: OutboundListenerSpec[] = [];
  if (view.node.outbound.vips) {
    for (const svc of s.services.values()) {
      for (const p of svc.ports) {
        out.push({
          ip: svc.vip,
          port: p.port,
          service: svc.key,
          servicePort: p.port,
          explicit: false,
        });
      }
    }
  }
  for (const p of view.node.outbound.ports) {
    const m = p.listen.match(/^\[?([0-9a-fA-F.:]+?)\]?:([0-9]+)$/)!;
    out.push({
      ip: canonicalIp(m[1]),
      port: Number(m[2]),
      service: p.service,
      servicePort: p.port,
      explicit: true,
    });
  }
  return out;
}

/** Key of a listener spec, for reconciling. */
export function listenerKey(l: OutboundListenerSpec): string {
  return `${formatAuthority(l)}>${l.service}:${l.servicePort}`;
}

/** Where one outbound connection goes. */
export type OutboundPlan =
  | {
    /** HBONE to a node or waypoint. */
    readonly kind: "hbone";
    readonly nextHop: HostPort;
    readonly authority: string;
    readonly expected: readonly string[];
    readonly endpoint?: string;
    readonly waypoint?: string;
    /** Service FQDN; absent for a connection addressed to a workload. */
    readonly hostname?: string;
  }
  | {
    /** Plaintext to the destination node's 15006 with a PROXY header (no source identity). */
    readonly kind: "plaintext";
    readonly nextHop: HostPort;
    readonly destination: HostPort;
    readonly endpoint: string;
    readonly hostname?: string;
  }
  | {
    /** Straight TCP to a workload outside the mesh. */
    readonly kind: "direct";
    readonly destination: HostPort;
    readonly endpoint: string;
    readonly hostname?: string;
  }
  | {
    /** Straight TCP to an address that is neither a Service VIP nor a workload (passthrough). */
    readonly kind: "passthrough";
    readonly destination: HostPort;
  }
  | { readonly kind: "fail"; readonly failure: TunnelFailure; readonly detail: string };

/** Inputs of {@link planOutbound}. */
export interface OutboundRequest {
  /** Service key. */
  readonly service: string;
  readonly port: number;
  /** The attributed local workload; undefined for an allowed unattributed connection. */
  readonly source?: Workload;
  /** This node's name. */
  readonly node: string;
  /** Endpoints (workload keys) to avoid when others exist. */
  readonly unhealthy?: ReadonlySet<string>;
  /** Random in [0, 1) (injectable for tests). */
  readonly random?: () => number;
}

/**
 * Decides the hop for a connection to a Service port, as Istio's ztunnel:
 * a service waypoint (for `service` or `all` traffic) gets HBONE with the
 * original VIP:port as `:authority`, unless the source is that waypoint;
 * otherwise an endpoint is picked and gets HBONE to its node's 15008 with
 * its own address and target port, plaintext to its node's 15006 when the
 * source has no identity, or straight TCP when it is not in the mesh.
 *
 * @example
 * planOutbound(snapshot, { service: "shop/web", port: 80, source, node: "node-a" });
 * // { kind: "hbone", nextHop: { ip: "10.0.0.2", port: 15008 }, authority: "10.1.0.12:8080", ... }
 */
export function planOutbound(s: Snapshot, req: OutboundRequest): OutboundPlan {
  const svc = s.services.get(req.service);
  if (!svc) return noEndpoint(`no service ${req.service}`);
  if (!svc.ports.some((p) => p.port === req.port)) {
    return noEndpoint(
      `service ${svc.key} has no port ${req.port} (ports: ${
        svc.ports.map((p) => p.port).join(", ")
      })`,
    );
  }
  const wp = svc.waypoint ? s.waypoints.get(svc.waypoint) : undefined;
  if (svc.waypoint && !wp) {
    // The config names a waypoint for this service; going around it would skip its policy.
    return noEndpoint(
      `service ${svc.key} uses waypoint ${svc.waypoint}, which is not a known waypoint; refusing to bypass it`,
    );
  }
  if (
    wp && req.source && wp.identity !== req.source.identity &&
    (wp.for === "service" || wp.for === "all")
  ) {
    return {
      kind: "hbone",
      nextHop: { ip: wp.address, port: wp.port },
      authority: formatAuthority({ ip: svc.vip, port: req.port }),
      expected: [wp.identity],
      waypoint: wp.key,
      hostname: svc.hostname,
    };
  }
  const ep = pickEndpoint(svc, req);
  if (!ep) return noEndpoint(noEndpointDetail(svc, req.port));
  return planToEndpoint(s, svc, ep, req);
}

/** The endpoint level: HBONE, plaintext or straight TCP to the chosen endpoint. */
export function planToEndpoint(
  s: Snapshot,
  svc: ServiceInfo,
  ep: Endpoint,
  req: OutboundRequest,
): OutboundPlan {
  const w = s.workloads.get(ep.workload)!;
  const node = s.nodes.get(ep.node)!;
  const target = { ip: ep.address, port: ep.ports[req.port] };
  if (!w.enrolled) {
    if (ep.node !== req.node && isLoopbackIp(ep.address)) {
      return noEndpoint(
        `endpoint ${w.key} is not in the mesh and listens on loopback on node ${ep.node}`,
      );
    }
    return { kind: "direct", destination: target, endpoint: w.key, hostname: svc.hostname };
  }
  return hopToWorkload(w, node.address, target, req.source !== undefined, svc.hostname);
}

/**
 * An enrolled workload's hop: HBONE to its node's 15008 with its identity
 * expected, or, for a source without identity, plaintext to its node's 15006.
 */
function hopToWorkload(
  w: Workload,
  nodeAddress: string,
  target: HostPort,
  withIdentity: boolean,
  hostname?: string,
): OutboundPlan {
  const host = hostname === undefined ? {} : { hostname };
  if (!withIdentity) {
    return {
      kind: "plaintext",
      nextHop: { ip: nodeAddress, port: PLAINTEXT_PORT },
      destination: target,
      endpoint: w.key,
      ...host,
    };
  }
  return {
    kind: "hbone",
    nextHop: { ip: nodeAddress, port: HBONE_PORT },
    authority: formatAuthority(target),
    expected: [w.identity],
    endpoint: w.key,
    ...host,
  };
}

/** Inputs of {@link planToAddress}. */
export interface AddressRequest extends Omit<OutboundRequest, "service"> {
  /** The destination address the app asked for (canonical text). */
  readonly ip: string;
}

/**
 * Decides the hop for a connection addressed by IP (an explicit proxy
 * request, SOCKS5 or HTTP CONNECT): a Service VIP is planned as the
 * Service; a workload's address gets HBONE to its node (or the workload's
 * waypoint), or straight TCP when the workload is not in the mesh; any
 * other address is passed through, as Istio's ztunnel passes through
 * traffic to destinations outside the mesh. Loopback addresses name
 * workloads on this node only.
 */
export function planToAddress(s: Snapshot, req: AddressRequest): OutboundPlan {
  const ip = canonicalIp(req.ip);
  const svc = s.servicesByVip.get(ip);
  if (svc) return planOutbound(s, { ...req, service: svc.key });
  const target = { ip, port: req.port };
  const candidates: Workload[] = [];
  for (const [node, byIp] of s.workloadsByAddress) {
    if (isLoopbackIp(ip) && node !== req.node) continue;
    candidates.push(...(byIp.get(ip) ?? []));
  }
  if (candidates.length === 0) return { kind: "passthrough", destination: target };
  const declares = (w: Workload) => Object.values(w.ports).includes(req.port);
  const w = candidates.find(declares) ?? candidates[0];
  const node = s.nodes.get(w.node)!;
  if (!w.enrolled) {
    if (w.node !== req.node && isLoopbackIp(ip)) {
      return noEndpoint(`workload ${w.key} is not in the mesh and listens on loopback`);
    }
    return { kind: "direct", destination: target, endpoint: w.key };
  }
  const wp = w.waypoint ? s.waypoints.get(w.waypoint) : undefined;
  if (w.waypoint && !wp) {
    return noEndpoint(
      `workload ${w.key} uses waypoint ${w.waypoint}, which is not a known waypoint; refusing to bypass it`,
    );
  }
  if (
    wp && req.source && wp.identity !== req.source.identity &&
    (wp.for === "workload" || wp.for === "all")
  ) {
    return {
      kind: "hbone",
      nextHop: { ip: wp.address, port: wp.port },
      authority: formatAuthority(target),
      expected: [wp.identity],
      waypoint: wp.key,
    };
  }
  return hopToWorkload(w, node.address, target, req.source !== undefined);
}

function noEndpoint(detail: string): OutboundPlan {
  return { kind: "fail", failure: "no_healthy_endpoint", detail };
}

/** Why {@link pickEndpoint} found nothing, in the operator's terms. */
function noEndpointDetail(svc: ServiceInfo, port: number): string {
  if (svc.endpoints.length === 0) return `service ${svc.key} has no endpoints`;
  const serving = svc.endpoints.filter((e) => e.ports[port] !== undefined);
  if (serving.length === 0) {
    const target = svc.ports.find((p) => p.port === port)?.targetPort;
    return `service ${svc.key} has no endpoint for port ${port}${
      typeof target === "string" ? ` (no endpoint has its target port ${target})` : ""
    }`;
  }
  const names = serving.slice(0, 3).map((e) => e.workload).join(", ") +
    (serving.length > 3 ? ` and ${serving.length - 3} more` : "");
  return `service ${svc.key} has no endpoint with a weight above 0 for port ${port} (${names} ${
    serving.length === 1 ? "has" : "have"
  } weight 0)`;
}

/** Weighted random choice among endpoints serving the port, healthy ones first. */
export function pickEndpoint(svc: ServiceInfo, req: OutboundRequest): Endpoint | undefined {
  const serving = svc.endpoints.filter((e) => e.ports[req.port] !== undefined && e.weight > 0);
  const healthy = serving.filter((e) => !req.unhealthy?.has(e.workload));
  const pool = healthy.length > 0 ? healthy : serving;
  const total = pool.reduce((n, e) => n + e.weight, 0);
  if (total === 0) return undefined;
  let r = (req.random ?? Math.random)() * total;
  for (const e of pool) {
    r -= e.weight;
    if (r < 0) return e;
  }
  return pool[pool.length - 1];
}
