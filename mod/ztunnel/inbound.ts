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
import type { Workload } from "../config/snapshot.ts";
import type { Logger } from "../log/logger.ts";
import { type HostPort, parseAuthority } from "../hbone/authority.ts";
import { type TunnelFailure } from "../hbone/errors.ts";
import { proxyHeaderForPeer } from "../hbone/proxy_protocol.ts";
import { relay } from "../hbone/relay.ts";
import type { ServerTunnel } from "../hbone/server.ts";
import { AMBIT_PORTS } from "../hbone/settings.ts";
import { canonicalIp, isLoopbackIp, unmapIp } from "../config/formats.ts";
import { evaluateL4, type L4Connection, type L4PolicyCache } from "../policy/authz.ts";
import type { ConnectionRegistry } from "./connections.ts";
import type { LocalView } from "./local_view.ts";

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
  view(): LocalView;
  policies(): L4PolicyCache;
  connectTimeoutMs(): number;
  /** Whether an address is the host's own (loopback, an interface's); see resolveInbound. */
  isHostAddress(ip: string): boolean;
  readonly registry: ConnectionRegistry;
  /** Called when a connection closes, for telemetry. */
  onClosed?(e: ConnectionRecord): void;
}

/** One finished connection, for the access log and metrics. */
export interface ConnectionRecord {
  readonly direction: "inbound" | "outbound";
  readonly source: string;
  readonly sourceIdentity?: string;
  readonly destination: string;
  readonly workload: string;
  readonly destinationIdentity?: string;
  readonly sent: number;
  readonly received: number;
  readonly durationMs: number;
  readonly error?: string;
  readonly flag: string;
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
  // A connection to a workload's own address carries tunnels to that workload only.
  const dialed = canonicalIp(unmapIp(t.localAddress.ip));
  if (dialed !== view.node.address && dialed !== canonicalIp(target.ip)) {
    return void t.reject("bad_authority", `sent to ${dialed}:15008 but names ${target.ip}`);
  }
  const resolved = resolveInbound(view, target, (ip) => ctx.isHostAddress(ip));
  if (!resolved.ok) {
    log.info("inbound tunnel refused", {
      source: t.peerIdentity,
      destination: t.authority,
      reason: resolved.detail,
    });
    return void t.reject(resolved.failure, resolved.detail);
  }
  const w = resolved.workload;
  // The client workload's address, from the `forwarded` header the sending
  // ztunnel sets (Istio's ztunnel originates from the pod's own IP instead;
  // ambit cannot), else the sending node's address.
  const source = forwardedFor(t.headers["forwarded"]) ?? t.peerAddress;
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
    return void t.reject("denied", decision.reason);
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
    peerLabel: `${t.peerAddress.ip}:${t.peerAddress.port}`,
    closed: () => t.closed,
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
  readonly peerLabel: string;
  closed(): boolean;
  onClose(fn: () => void): void;
  accept(): Duplex;
  reject(f: TunnelFailure, detail: string): void;
}

/** Connects to the workload, answers, relays, tracks and logs. */
export function deliver(ctx: InboundContext, d: Delivery): void {
  const log = ctx.logger;
  const started = Date.now();
  const timeoutMs = ctx.connectTimeoutMs();
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
      destination: `${d.target.ip}:${d.target.port}`,
      timeoutMs,
    });
    d.reject("upstream_timeout", `${d.target.ip}:${d.target.port} after ${timeoutMs} ms`);
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
      destination: `${d.target.ip}:${d.target.port}`,
      error: err.message,
    });
    d.reject("upstream_refused", `${d.target.ip}:${d.target.port}: ${err.code ?? err.message}`);
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
    const counters = { aToB: 0, bToA: 0 };
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
    relay(stream, upstream, counters).then((r) => {
      untrack();
      const rec: ConnectionRecord = {
        direction: "inbound",
        source: d.peerLabel,
        sourceIdentity: d.conn.sourceIdentity,
        destination: `${d.target.ip}:${d.target.port}`,
        workload: d.workload.key,
        destinationIdentity: d.workload.identity,
        sent: r.bToA,
        received: r.aToB,
        durationMs: Date.now() - started,
        error: r.error?.message,
        flag: "-",
      };
      log.info("inbound connection closed", { ...rec });
      ctx.onClosed?.(rec);
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
