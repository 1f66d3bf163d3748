/**
 * Every address a role would bind, worked out from the snapshot and the
 * command line the role would run with, as `Ztunnel.start` and
 * `Waypoint.start` bind them. Pure.
 *
 * @module
 */
import type { Snapshot } from "../config/snapshot.ts";
import { HBONE_PORT, METRICS_PORT, PLAINTEXT_PORT, READINESS_PORT } from "../hbone/settings.ts";
import { localView } from "../ztunnel/local_view.ts";
import { outboundListeners } from "../ztunnel/outbound_plan.ts";

/** A listen address from the command line: an address, `off`, or the role's default. */
export type ListenChoice = { readonly hostname: string; readonly port: number } | "off" | "default";

/** The listen flags of `ambit ztunnel` / `ambit waypoint`, as given to `ambit check`. */
export interface ListenChoices {
  readonly admin: ListenChoice;
  readonly metrics: ListenChoice;
  readonly readiness: ListenChoice;
  /** ztunnel only. */
  readonly dns: ListenChoice;
  readonly socks5: ListenChoice;
  readonly httpProxy: ListenChoice;
}

/** One socket the role would bind. */
export interface PlannedListener {
  /** What it is for, e.g. `HBONE`, `DNS proxy`, `outbound apps/echo:80`. */
  readonly what: string;
  readonly proto: "tcp" | "udp";
  readonly ip: string;
  readonly port: number;
  /** The command-line flag that moves it (without `--`); absent when the config decides. */
  readonly flag?: string;
  /** Where the config sets it, when no flag does. */
  readonly configField?: string;
  /** The role works around a failure to bind it (logs and carries on). */
  readonly bestEffort?: boolean;
}

/** Which role is checked. */
export type CheckedRole =
  | { readonly role: "ztunnel"; readonly node: string }
  | { readonly role: "waypoint"; readonly name: string };

/**
 * The sockets `role` binds with `choices` on `s`. `hostOwns` tells whether
 * an address is this host's (loopback or an interface's): the ztunnel also
 * serves HBONE on the addresses of its local workloads that the host owns.
 */
export function plannedListeners(
  s: Snapshot,
  role: CheckedRole,
  choices: ListenChoices,
  hostOwns: (ip: string) => boolean = () => false,
): PlannedListener[] {
  const out: PlannedListener[] = [];
  let address: string;
  if (role.role === "ztunnel") {
    const view = localView(s, role.node);
    address = view.node.address;
    out.push(
      {
        what: "HBONE",
        proto: "tcp",
        ip: address,
        port: HBONE_PORT,
        configField: "Node spec.address",
      },
    );
    const workloadIps = new Set(
      [...view.workloads.values()].map((w) => w.address).filter((ip) =>
        ip !== address && hostOwns(ip)
      ),
    );
    for (const ip of [...workloadIps].sort()) {
      out.push({
        what: "HBONE for workloads at this address",
        proto: "tcp",
        ip,
        port: HBONE_PORT,
        configField: "WorkloadEntry spec.address",
        bestEffort: true,
      });
    }
    out.push({
      what: "plaintext inbound",
      proto: "tcp",
      ip: address,
      port: PLAINTEXT_PORT,
      configField: "Node spec.address",
    });
    for (const l of outboundListeners(s, view)) {
      out.push({
        what: `outbound ${l.service}:${l.servicePort}`,
        proto: "tcp",
        ip: l.ip,
        port: l.port,
        configField: l.explicit
          ? "Node spec.outbound.ports"
          : "the Service's VIP (spec.clusterIP or Mesh spec.vipRange), or Node spec.outbound.vips: false",
      });
    }
  } else {
    const wp = s.waypoints.get(role.name);
    if (!wp) return out;
    address = wp.address;
    out.push({
      what: "HBONE",
      proto: "tcp",
      ip: wp.address,
      port: wp.port,
      configField: "the Gateway's spec.addresses[0] and HBONE listener port",
    });
  }
  const flagged = (
    what: string,
    flag: string,
    choice: ListenChoice,
    fallback?: { hostname: string; port: number },
    protos: readonly ("tcp" | "udp")[] = ["tcp"],
  ) => {
    const at = choice === "default" ? fallback : choice === "off" ? undefined : choice;
    if (!at) return;
    for (const proto of protos) out.push({ what, proto, ip: at.hostname, port: at.port, flag });
  };
  flagged("metrics", "metrics", choices.metrics, { hostname: address, port: METRICS_PORT });
  flagged("readiness", "readiness", choices.readiness, {
    hostname: address,
    port: READINESS_PORT,
  });
  flagged("admin API", "admin", choices.admin, { hostname: "127.0.0.1", port: 15000 });
  if (role.role === "ztunnel") {
    const local = (port: number) => ({ hostname: "127.0.0.1", port });
    flagged("DNS proxy", "dns", choices.dns, local(15053), ["udp", "tcp"]);
    flagged("SOCKS5 proxy", "socks5", choices.socks5, local(15080));
    flagged("HTTP proxy", "http-proxy", choices.httpProxy, local(15081));
  }
  return out;
}

/** `ip:port/proto`, with brackets for IPv6. */
export function listenerKey(l: Pick<PlannedListener, "ip" | "port" | "proto">): string {
  return `${l.ip.includes(":") ? `[${l.ip}]` : l.ip}:${l.port}/${l.proto}`;
}

/** Listeners that want the same socket as an earlier one, with the earlier one's purpose. */
export function duplicateListeners(
  list: readonly PlannedListener[],
): { listener: PlannedListener; first: PlannedListener }[] {
  const seen = new Map<string, PlannedListener>();
  const out: { listener: PlannedListener; first: PlannedListener }[] = [];
  for (const l of list) {
    const k = listenerKey(l);
    const first = seen.get(k);
    if (first) out.push({ listener: l, first });
    else seen.set(k, l);
  }
  return out;
}
