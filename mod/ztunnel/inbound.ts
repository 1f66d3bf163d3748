/**
 * Inbound: a CONNECT arriving over HBONE (or a plaintext connection on
 * 15006) is resolved to a local workload, checked against L4 policy,
 * connected to the workload's address, optionally prefixed with a PROXY v2
 * header, and relayed. `resolveInbound` is the pure decision.
 *
 * @module
 */
import net from "node:net";
import type { Duplex } from "node:stream";
import type { Snapshot, Workload } from "../config/snapshot.ts";
import type { Logger } from "../log/logger.ts";
import { type HostPort, parseAuthority } from "../hbone/authority.ts";
import { FAILURES, type TunnelFailure } from "../hbone/errors.ts";
import { proxyHeaderForPeer } from "../hbone/proxy_protocol.ts";
import { relay } from "../hbone/relay.ts";
import type { ServerTunnel } from "../hbone/server.ts";
import { AMBIT_PORTS } from "../hbone/settings.ts";
import { canonicalIp, isLoopbackIp, unmapIp } from "../config/formats.ts";
import { evaluateL4, type L4Connection, type L4PolicyCache } from "../policy/authz.ts";
import type { ConnectionRegistry } from "./connections.ts";
import type { LocalView } from "./local_view.ts";
import type { Telemetry } from "../telemetry/telemetry.ts";
import {
  type PeerLabels,
  type ServiceLabels,
  serviceLabels,
  sourceLabels,
  type TcpLabels,
  UNKNOWN,
  unknownPeer,
  workloadLabels,
} from "../telemetry/tcp_metrics.ts";

/** Outcome of {@link resolveInbound}. */
export type InboundTarget =
  | { readonly ok: true; readonly workload: Workload }
  | { readonly ok: false; readonly failure: TunnelFailure; readonly detail: string };

/**
 * Which local workload `target` names. Refuses ambit's own ports on the
 * host's addresses and addresses with no workload on this node (400); a
 * port declared by a workload outside the mesh, and, on addresses the host
 * itself owns (`isHostAddress`: loopback, its interfaces, where services
 * bound to 0.0.0.0 answer too), any port no enrolled workload declares
 * (spec.ports, Service targetPorts) (503). On an address the host does not
 * own, a lone enrolled workload serves every port, as an Istio pod does.
 */
export function resolveInbound(
  view: LocalView,
  target: HostPort,
  isHostAddress: (ip: string) => boolean = (ip) => isLoopbackIp(ip) || ip === view.node.address,
): InboundTarget {
  const hostOwned = isHostAddress(target.ip) || target.ip === view.node.address;
  if (AMBIT_PORTS.has(target.port) && hostOwned) {
    return { ok: false, failure: "self_port", detail: `port ${target.port}` };
  }
  const at = view.byAddress.get(target.ip) ?? [];
  if (at.length === 0) {
    return {
      ok: false,
      failure: "not_local",
      detail: `${target.ip} is not a workload address on node ${view.node.name}`,
    };
  }
  const enrolled = at.filter((w) => view.workloads.has(w.key));
  if (enrolled.length === 0) {
    return {
      ok: false,
      failure: "no_workload",
      detail: `${at.map((w) => w.key).join(", ")} not in the mesh`,
    };
  }
  const declares = (w: Workload) => view.knownPorts.get(w.key)?.has(target.port) === true;
  const serving = enrolled.filter(declares);
  if (serving.length > 0) return { ok: true, workload: serving[0] };
  const owner = at.find(declares);
  if (owner) {
    return {
      ok: false,
      failure: "no_workload",
      detail:
        `port ${target.port} at ${target.ip} belongs to ${owner.key}, which is not in the mesh`,
    };
  }
  if (enrolled.length === 1 && !hostOwned) return { ok: true, workload: enrolled[0] };
  return {
    ok: false,
    failure: "no_workload",
    detail: `no workload at ${target.ip} declares port ${target.port}` +
      (hostOwned
        ? " (on the host's own addresses only declared ports are served: add it to the WorkloadEntry's spec.ports or a Service's targetPort)"
        : ""),
  };
}

/** What inbound handling reads from the running ztunnel. */
export interface InboundContext {
  readonly logger: Logger;
  snapshot(): Snapshot;
  view(): LocalView;
  policies(): L4PolicyCache;
  connectTimeoutMs(): number;
  /** Whether an address is the host's own (loopback, an interface's); see resolveInbound. */
  isHostAddress(ip: string): boolean;
  readonly registry: ConnectionRegistry;
  /** Metrics and access log. */
  readonly telemetry: Telemetry;
}

/** Who an inbound connection comes from and what it was addressed to, for telemetry. */
export interface InboundOrigin {
  readonly via: "hbone" | "plaintext";
  /** Client `ip:port` as seen (the sending node for HBONE). */
  readonly peer: string;
  readonly sourceIdentity?: string;
  readonly source: PeerLabels;
  readonly service?: ServiceLabels;
}

/**
 * The service an inbound connection was addressed to: the `host=` the
 * sending ztunnel put in `forwarded`, else the only service of the
 * workload that maps a port to the target port.
 */
export function inboundService(
  snapshot: Snapshot,
  forwarded: string | string[] | undefined,
  w: Workload | undefined,
  port: number,
): ServiceLabels | undefined {
  const f = Array.isArray(forwarded) ? forwarded[0] : forwarded;
  const host = f?.match(/(?:^|;)\s*host="?([^";,\s]+)"?/i)?.[1]?.toLowerCase();
  if (host) {
    const s = snapshot.servicesByHost.get(host);
    return s ? serviceLabels(s) : { host, name: UNKNOWN, namespace: UNKNOWN };
  }
  if (!w) return undefined;
  const matching = w.services.map((k) => snapshot.services.get(k)).filter((s) =>
    s?.endpoints.some((e) => e.workload === w.key && Object.values(e.ports).includes(port))
  );
  return matching.length === 1 ? serviceLabels(matching[0]!) : undefined;
}

/** Metrics labels of an inbound connection. */
function inboundLabels(o: InboundOrigin, w: Workload | undefined, flag: string): TcpLabels {
  return {
    reporter: "destination",
    source: o.source,
    destination: w ? workloadLabels(w) : unknownPeer(),
    service: o.service,
    responseFlags: flag,
    securityPolicy: o.via === "hbone" ? "mutual_tls" : "none",
  };
}

/** Counts and logs an inbound connection refused before it was made. */
export function recordInboundRefusal(
  ctx: InboundContext,
  o: InboundOrigin,
  target: string,
  w: Workload | undefined,
  failure: TunnelFailure,
  detail: string,
): void {
  const flag = FAILURES[failure].flag;
  ctx.telemetry.metrics.failed(inboundLabels(o, w, flag));
  ctx.telemetry.access({
    direction: "inbound",
    via: o.via,
    src: o.peer,
    srcWorkload: knownKey(o.source),
    srcIdentity: o.sourceIdentity,
    dst: target,
    dstService: o.service?.host,
    dstWorkload: w?.key,
    dstIdentity: w?.identity,
    bytesReceived: 0,
    bytesSent: 0,
    durationMs: 0,
    outcome: "refused",
    flag,
    error: `${FAILURES[failure].text}: ${detail}`,
  });
}

function knownKey(p: PeerLabels): string | undefined {
  return p.workload === UNKNOWN ? undefined : `${p.namespace}/${p.workload}`;
}

/** Handles one HBONE request. */
export function handleHboneTunnel(ctx: InboundContext, t: ServerTunnel): void {
  const log = ctx.logger;
  if (t.method !== "CONNECT") return void t.reject("bad_request", `method ${t.method}`);
  if (t.headers[":protocol"] !== undefined) {
    return void t.reject("bad_request", "extended CONNECT (:protocol) is not HBONE");
  }
  const parsed = parseAuthority(t.authority);
  if (!parsed.ok) return void t.reject("bad_authority", parsed.reason);
  const target = parsed.target;
  const view = ctx.view();
  const snapshot = ctx.snapshot();
  // The client workload's address, from the `forwarded` header the sending
  // ztunnel sets (Istio's ztunnel originates from the pod's own IP instead;
  // ambit cannot), else the sending node's address.
  const source = forwardedFor(t.headers["forwarded"]) ?? t.peerAddress;
  const origin = (w: Workload | undefined): InboundOrigin => ({
    via: "hbone",
    peer: `${t.peerAddress.ip}:${t.peerAddress.port}`,
    sourceIdentity: t.peerIdentity,
    source: sourceLabels(snapshot, t.peerIdentity, source.ip, t.headers["baggage"]),
    service: inboundService(snapshot, t.headers["forwarded"], w, target.port),
  });
  const refuse = (w: Workload | undefined, failure: TunnelFailure, detail: string) => {
    recordInboundRefusal(ctx, origin(w), t.authority ?? "", w, failure, detail);
    t.reject(failure, detail);
  };
  // A connection to a workload's own address carries tunnels to that workload only.
  const dialed = canonicalIp(unmapIp(t.localAddress.ip));
  if (dialed !== view.node.address && dialed !== canonicalIp(target.ip)) {
    return void refuse(
      undefined,
      "bad_authority",
      `sent to ${dialed}:15008 but names ${target.ip}`,
    );
  }
  const resolved = resolveInbound(view, target, (ip) => ctx.isHostAddress(ip));
  if (!resolved.ok) {
    log.info("inbound tunnel refused", {
      source: t.peerIdentity,
      destination: t.authority,
      reason: resolved.detail,
    });
    return void refuse(undefined, resolved.failure, resolved.detail);
  }
  const w = resolved.workload;
  const conn: L4Connection = {
    sourceIdentity: t.peerIdentity,
    sourceIp: source.ip,
    destinationIp: target.ip,
    destinationPort: target.port,
  };
  const decision = evaluateL4(ctx.policies().forWorkload(w), conn);
  if (!decision.allow) {
    log.info("inbound connection denied", {
      source: t.peerIdentity,
      workload: w.key,
      destination: t.authority,
      policy: decision.policy,
      reason: decision.reason,
    });
    return void refuse(w, "denied", decision.reason);
  }
  if (decision.dryRun) {
    log.info("inbound connection allowed; a dry-run policy would deny it", {
      source: t.peerIdentity,
      workload: w.key,
      destination: t.authority,
      dryRun: decision.dryRun,
    });
  }
  deliver(ctx, {
    workload: w,
    target,
    conn,
    source,
    origin: origin(w),
    closed: () => t.isClosed(),
    onClose: (fn) => t.onClose(fn),
    accept: () => t.accept(),
    reject: (f, d) => t.reject(f, d),
  });
}

/** A request to deliver to a local workload (from HBONE or plaintext). */
export interface Delivery {
  readonly workload: Workload;
  readonly target: HostPort;
  readonly conn: L4Connection;
  /** The original client, for the PROXY header. */
  readonly source: HostPort;
  /** Who sent it, for telemetry. */
  readonly origin: InboundOrigin;
  closed(): boolean;
  onClose(fn: () => void): void;
  accept(): Duplex;
  reject(f: TunnelFailure, detail: string): void;
}

/** Connects to the workload, answers, relays, tracks, counts and logs. */
export function deliver(ctx: InboundContext, d: Delivery): void {
  const log = ctx.logger;
  const started = Date.now();
  const timeoutMs = ctx.connectTimeoutMs();
  const dst = `${d.target.ip}:${d.target.port}`;
  const fail = (f: TunnelFailure, detail: string) => {
    recordInboundRefusal(ctx, d.origin, dst, d.workload, f, detail);
    d.reject(f, detail);
  };
  const upstream = net.connect({
    host: d.target.ip,
    port: d.target.port,
    allowHalfOpen: true,
    noDelay: true,
  });
  let connected = false;
  const timer = setTimeout(() => {
    if (connected) return;
    upstream.destroy();
    log.warn("inbound upstream connect timed out", {
      workload: d.workload.key,
      destination: dst,
      timeoutMs,
    });
    fail("upstream_timeout", `${dst} after ${timeoutMs} ms`);
  }, timeoutMs);
  d.onClose(() => {
    if (!connected) {
      clearTimeout(timer);
      upstream.destroy();
    }
  });
  upstream.once("error", (err: Error & { code?: string }) => {
    if (connected) return;
    clearTimeout(timer);
    log.info("inbound upstream connect failed", {
      workload: d.workload.key,
      destination: dst,
      error: err.message,
    });
    fail("upstream_refused", `${dst}: ${err.code ?? err.message}`);
  });
  upstream.once("connect", () => {
    connected = true;
    clearTimeout(timer);
    if (d.closed()) {
      upstream.destroy();
      return;
    }
    if (d.workload.proxyProtocol) {
      upstream.write(proxyHeaderForPeer(d.source, d.target, d.conn.sourceIdentity));
    }
    const stream = d.accept();
    const tracked = ctx.telemetry.metrics.established(inboundLabels(d.origin, d.workload, "-"));
    const untrack = ctx.registry.add({
      direction: "inbound",
      workload: d.workload.key,
      started,
      recheck: () => {
        const view = ctx.view();
        const w = view.workloads.get(d.workload.key);
        if (!w) return "workload left the mesh or this node";
        const decision = evaluateL4(ctx.policies().forWorkload(w), d.conn);
        return decision.allow ? undefined : `denied by policy after reload: ${decision.reason}`;
      },
      close: (reason) => {
        log.info("closing inbound connection", { workload: d.workload.key, reason });
        stream.destroy();
        upstream.destroy();
      },
    });
    relay(stream, upstream, tracked.counters).then((r) => {
      untrack();
      tracked.close();
      ctx.telemetry.access({
        direction: "inbound",
        via: d.origin.via,
        src: d.origin.peer,
        srcWorkload: knownKey(d.origin.source),
        srcIdentity: d.conn.sourceIdentity,
        dst,
        dstService: d.origin.service?.host,
        dstWorkload: d.workload.key,
        dstIdentity: d.workload.identity,
        bytesReceived: r.aToB,
        bytesSent: r.bToA,
        durationMs: Date.now() - started,
        outcome: r.error ? "error" : "ok",
        flag: "-",
        error: r.error?.message,
      });
    });
  });
}

/** The client address from a `forwarded: for="ip:port"` header. */
export function forwardedFor(header: string | string[] | undefined): HostPort | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  const m = h?.match(/for="?\[?([0-9a-fA-F.:]+?)\]?:([0-9]{1,5})"?/);
  if (!m || net.isIP(m[1]) === 0) return undefined;
  return { ip: m[1], port: Number(m[2]) };
}
