/**
 * What a tunnel arriving at a waypoint is for, pure: the `:authority` names
 * a Service VIP:port bound to this waypoint (`istio.io/use-waypoint`, for
 * `service` or `all` traffic) or a workload address bound to it (for
 * `workload` or `all`), and the port's protocol decides whether the waypoint
 * speaks HTTP on it or passes bytes through.
 *
 * @module
 */
import { canonicalIp } from "../config/formats.ts";
import type {
  ServiceInfo,
  ServicePortInfo,
  Snapshot,
  WaypointInfo,
  Workload,
} from "../config/snapshot.ts";
import type { HostPort } from "../hbone/authority.ts";
import type { TunnelFailure } from "../hbone/errors.ts";

/** How the waypoint treats a port's bytes. */
export type PortProtocol =
  /** HTTP/1.1 or HTTP/2 (prior knowledge), told apart by the first bytes. */
  | "http"
  /** HTTP/2 only (h2c, gRPC). */
  | "http2"
  /** Bytes passed through at L4. */
  | "tcp"
  /** Not declared: sniffed (HTTP if the client speaks first in HTTP, else TCP). */
  | "detect";

/** A tunnel's destination at the waypoint. */
export type WaypointTarget =
  | {
    readonly kind: "service";
    readonly service: ServiceInfo;
    readonly port: ServicePortInfo;
    readonly protocol: PortProtocol;
  }
  | {
    readonly kind: "workload";
    readonly workload: Workload;
    readonly port: number;
    readonly protocol: PortProtocol;
  };

/** Outcome of {@link resolveWaypointTarget}. */
export type TargetResult =
  | { readonly ok: true; readonly target: WaypointTarget }
  | { readonly ok: false; readonly failure: TunnelFailure; readonly detail: string };

/**
 * The protocol of a service port, as Istio decides it: `appProtocol` first
 * (`http`, `http2`, `grpc`, `grpc-web`, `kubernetes.io/h2c`, `tcp`, `tls`,
 * ...), then the port name's prefix (`http-`, `http2-`, `grpc-`, `tcp-`),
 * else detected.
 */
export function portProtocol(p: Pick<ServicePortInfo, "name" | "appProtocol">): PortProtocol {
  const by = (v: string): PortProtocol | undefined => {
    const x = v.toLowerCase();
    if (x === "http" || x === "http-web" || x === "grpc-web") return "http";
    if (x === "http2" || x === "grpc" || x === "kubernetes.io/h2c") return "http2";
    if (
      ["tcp", "tls", "https", "mongo", "mysql", "redis", "kubernetes.io/ws", "kubernetes.io/wss"]
        .includes(x)
    ) return "tcp";
    return undefined;
  };
  if (p.appProtocol) {
    const r = by(p.appProtocol);
    if (r) return r;
  }
  if (p.name) {
    const prefix = p.name.split("-")[0];
    const r = by(prefix);
    if (r) return r;
  }
  return "detect";
}

/** Which bound service or workload `target` names for waypoint `wp`. */
export function resolveWaypointTarget(
  s: Snapshot,
  wp: WaypointInfo,
  target: HostPort,
): TargetResult {
  const ip = canonicalIp(target.ip);
  const svc = s.servicesByVip.get(ip);
  if (svc) {
    if (svc.waypoint !== wp.key) {
      return {
        ok: false,
        failure: "not_local",
        detail: `service ${svc.key} is not bound to waypoint ${wp.key}` +
          (svc.waypoint ? ` (it uses ${svc.waypoint})` : " (it has no istio.io/use-waypoint)"),
      };
    }
    if (wp.for !== "service" && wp.for !== "all") {
      return {
        ok: false,
        failure: "not_local",
        detail: `waypoint ${wp.key} serves ${wp.for} traffic, not service traffic`,
      };
    }
    const port = svc.ports.find((p) => p.port === target.port);
    if (!port) {
      return {
        ok: false,
        failure: "no_workload",
        detail: `service ${svc.key} has no port ${target.port}`,
      };
    }
    return {
      ok: true,
      target: { kind: "service", service: svc, port, protocol: portProtocol(port) },
    };
  }
  for (const byIp of s.workloadsByAddress.values()) {
    const w = byIp.get(ip)?.find((x) => x.waypoint === wp.key);
    if (!w) continue;
    if (wp.for !== "workload" && wp.for !== "all") {
      return {
        ok: false,
        failure: "not_local",
        detail: `waypoint ${wp.key} serves ${wp.for} traffic, not workload traffic`,
      };
    }
    const named = Object.entries(w.ports).find(([, n]) => n === target.port)?.[0];
    return {
      ok: true,
      target: {
        kind: "workload",
        workload: w,
        port: target.port,
        protocol: named ? portProtocol({ name: named }) : "detect",
      },
    };
  }
  return {
    ok: false,
    failure: "not_local",
    detail: `${ip} is neither a service VIP nor a workload bound to waypoint ${wp.key}`,
  };
}
