/**
 * Outbound: listeners on Service VIPs (and explicit local ports) in
 * userspace, no iptables. Each accepted connection is attributed to a local
 * workload, planned (outbound_plan.ts) and carried over HBONE, or plaintext
 * where the plan says so.
 *
 * @module
 */
import net from "node:net";
import { randomBytes } from "node:crypto";
import { lookup as dnsLookup } from "node:dns/promises";
import type { Duplex } from "node:stream";
import { canonicalIp, parseDuration } from "../config/formats.ts";
import type { ServiceInfo, Snapshot, Workload } from "../config/snapshot.ts";
import type { Logger } from "../log/logger.ts";
import { formatAuthority, type HostPort } from "../hbone/authority.ts";
import { FAILURES, TunnelError, type TunnelFailure } from "../hbone/errors.ts";
import type { HbonePool } from "../hbone/pool.ts";
import { proxyHeaderForPeer } from "../hbone/proxy_protocol.ts";
import { relay } from "../hbone/relay.ts";
import { attributeSource } from "./attribution.ts";
import type { ConnectionRegistry } from "./connections.ts";
import type { LocalView } from "./local_view.ts";
import {
  listenerKey,
  outboundListeners,
  type OutboundListenerSpec,
  type OutboundPlan,
  planOutbound,
  planToAddress,
} from "./outbound_plan.ts";
import type { ProxyConnector, ProxyFailure, ProxyOpen, ProxyTarget } from "./proxy_connect.ts";
import type { Telemetry } from "../telemetry/telemetry.ts";
import {
  serviceLabels,
  type TcpLabels,
  UNKNOWN,
  unknownPeer,
  workloadLabels,
} from "../telemetry/tcp_metrics.ts";
import { socketOwner } from "./sockets.ts";
import { resolveUser } from "./users.ts";
import { listenOn } from "../util/listen.ts";

/** What outbound handling reads from the running ztunnel. */
export interface OutboundContext {
  readonly logger: Logger;
  snapshot(): Snapshot;
  view(): LocalView;
  readonly pool: HbonePool;
  readonly registry: ConnectionRegistry;
  /** Metrics and access log. */
  readonly telemetry: Telemetry;
  /** Mesh addresses of a name for clients in `namespaces` (the DNS table); undefined when not a mesh name. */
  resolveName?(name: string, namespaces: readonly string[]): string | undefined;
}

/** How long an endpoint that failed is avoided. */
const EJECT_MS = 10_000;

/** The outbound listeners of one node, reconciled on every reload. */
export class Outbound {
  #listeners = new Map<string, net.Server>();
  #unhealthy = new Map<string, number>();
  #uids = new Map<string | number, number | undefined>();
  readonly failures: { spec: OutboundListenerSpec; error: string }[] = [];

  constructor(readonly ctx: OutboundContext) {}

  /** Bound listeners. */
  get listening(): string[] {
    return [...this.#listeners.keys()];
  }

  /** Opens and closes listeners to match the config; resolves OS users. */
  async apply(): Promise<void> {
    const log = this.ctx.logger;
    const view = this.ctx.view();
    await this.#resolveUsers(view);
    const want = new Map(
      outboundListeners(this.ctx.snapshot(), view).map((l) => [listenerKey(l), l]),
    );
    for (const [k, srv] of this.#listeners) {
      if (!want.has(k)) {
        srv.close();
        this.#listeners.delete(k);
      }
    }
    this.failures.length = 0;
    await Promise.all([...want].map(async ([k, spec]) => {
      if (this.#listeners.has(k)) return;
      try {
        this.#listeners.set(k, await this.#listen(spec));
      } catch (e) {
        const error = (e as Error).message;
        this.failures.push({ spec, error });
        log.warn("cannot listen for outbound traffic", {
          listen: formatAuthority(spec),
          service: `${spec.service}:${spec.servicePort}`,
          error,
          hint: spec.explicit
            ? "pick a free local address in Node.spec.outbound.ports"
            : "VIPs outside 127.0.0.0/8 must be assigned to a local interface",
        });
      }
    }));
  }

  /** Closes every listener (live connections stay). */
  close(): void {
    for (const s of this.#listeners.values()) s.close();
    this.#listeners.clear();
  }

  async #resolveUsers(view: LocalView): Promise<void> {
    for (const w of view.workloads.values()) {
      if (w.user !== undefined && !this.#uids.has(w.user)) {
        this.#uids.set(w.user, await resolveUser(w.user));
      }
    }
  }

  #listen(spec: OutboundListenerSpec): Promise<net.Server> {
    const srv = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => {
      this.#accept(spec, sock).catch((e) => {
        this.ctx.logger.error("outbound connection failed", { error: e as Error });
        sock.destroy();
      });
    });
    return new Promise((resolve, reject) => {
      srv.once("error", reject);
      srv.listen(listenOn(spec), () => {
        srv.off("error", reject);
        srv.on("error", (e) => this.ctx.logger.warn("outbound listener error", { error: e }));
        resolve(srv);
      });
    });
  }

  async #accept(spec: OutboundListenerSpec, sock: net.Socket): Promise<void> {
    sock.setNoDelay(true);
    sock.on("error", () => {});
    const client = { ip: sock.remoteAddress ?? "", port: sock.remotePort ?? 0 };
    const view = this.ctx.view();
    const source = await this.#attribute(view, sock, client);
    if (source === null) {
      this.#recordRefusal(
        { client, source: undefined, via: "vip", dst: formatAuthority(spec) },
        "unattributed",
        "not attributed to a workload",
      );
      return void sock.destroy();
    }
    const conn: OutboundConnection = {
      client,
      source,
      via: "vip",
      dst: formatAuthority(spec),
      service: this.ctx.snapshot().services.get(spec.service),
    };
    const opened = await this.#open(conn, (unhealthy) =>
      planOutbound(this.ctx.snapshot(), {
        service: spec.service,
        port: spec.servicePort,
        source,
        node: view.node.name,
        unhealthy,
      }), () => sock.destroyed);
    if (!opened.ok) return void sock.destroy();
    await this.#pipe(conn, sock, opened);
  }

  /** The explicit-proxy connector (SOCKS5, HTTP CONNECT) over this outbound path. */
  readonly connector: ProxyConnector = {
    connect: (sock, target, via) => this.#proxyConnect(sock, target, via),
  };

  async #proxyConnect(
    sock: net.Socket,
    target: ProxyTarget,
    via: "socks5" | "http",
  ): Promise<ProxyOpen> {
    try {
      const client = { ip: sock.remoteAddress ?? "", port: sock.remotePort ?? 0 };
      const dst = target.kind === "ipv6"
        ? `[${target.host}]:${target.port}`
        : `${target.host}:${target.port}`;
      const view = this.ctx.view();
      const source = await this.#attribute(view, sock, client);
      if (source === null) {
        this.#recordRefusal(
          { client, source: undefined, via, dst },
          "unattributed",
          "not attributed to a workload",
        );
        return {
          ok: false,
          failure: "not_allowed",
          message: "this connection is not attributed to a mesh workload on this node",
        };
      }
      let ip = target.host;
      if (target.kind === "domain") {
        const namespaces = source ? [source.namespace] : [
          ...new Set(
            [...view.workloads.values()].map((w) => w.namespace),
          ),
        ];
        const found = this.ctx.resolveName?.(target.host, namespaces) ??
          await lookupHost(target.host);
        if (!found) {
          this.#recordRefusal({ client, source, via, dst }, "no_healthy_endpoint", "no such host");
          return { ok: false, failure: "host_unreachable", message: `no such host ${target.host}` };
        }
        ip = found;
      }
      const snapshot = this.ctx.snapshot();
      const conn: OutboundConnection = {
        client,
        source,
        via,
        dst,
        service: snapshot.servicesByVip.get(canonicalIp(ip)),
      };
      const opened = await this.#open(conn, (unhealthy) =>
        planToAddress(this.ctx.snapshot(), {
          ip,
          port: target.port,
          source,
          node: view.node.name,
          unhealthy,
        }), () => sock.destroyed);
      if (!opened.ok) {
        return { ok: false, failure: proxyFailure(opened.error), message: opened.error.message };
      }
      return { ok: true, pipe: () => this.#pipe(conn, sock, opened) };
    } catch (e) {
      this.ctx.logger.error("proxied connection failed", { error: e as Error });
      return { ok: false, failure: "general", message: (e as Error).message };
    }
  }

  #ejected(): Set<string> {
    const now = Date.now();
    const out = new Set<string>();
    for (const [k, until] of this.#unhealthy) {
      if (until > now) out.add(k);
      else this.#unhealthy.delete(k);
    }
    return out;
  }

  /**
   * The local workload that opened `sock`, undefined (allowed unattributed)
   * or null (refused; `sock` is left to the caller).
   */
  async #attribute(
    view: LocalView,
    sock: net.Socket,
    client: HostPort,
  ): Promise<Workload | undefined | null> {
    const candidates = [...view.workloads.values()];
    const needUid = candidates.length > 1 && candidates.some((w) => w.user !== undefined);
    const uid = needUid
      ? await socketOwner(client, { ip: sock.localAddress ?? "", port: sock.localPort ?? 0 })
      : undefined;
    const a = attributeSource(
      candidates.map((w) => ({
        key: w.key,
        identity: w.identity,
        address: w.address,
        user: w.user,
      })),
      { sourceIp: client.ip, uid },
      (u) => this.#uids.get(u),
    );
    if (a.ok) return view.workloads.get(a.workload);
    const allow = this.ctx.snapshot().mesh.defaults.unattributedConnections === "Allow";
    this.ctx.logger.warn(
      allow
        ? "outbound connection not attributed to a workload; sending it without identity"
        : "outbound connection refused: not attributed to a workload",
      { client: formatAuthority(client), uid, reason: a.reason },
    );
    return allow ? undefined : null;
  }

  /**
   * Plans and opens the upstream, trying a second endpoint once when the
   * first cannot be reached; records the refusal when none can be.
   */
  async #open(
    conn: OutboundConnection,
    plan: (unhealthy: Set<string>) => OutboundPlan,
    abandoned: () => boolean,
  ): Promise<Opened | { ok: false; error: TunnelError }> {
    const log = this.ctx.logger;
    let last: TunnelError | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      const p = plan(this.#ejected());
      if (p.kind === "fail") {
        last = new TunnelError(p.failure, p.detail);
        log.warn("outbound connection has nowhere to go", {
          source: conn.source?.key,
          destination: conn.dst,
          reason: p.detail,
        });
        break;
      }
      const started = Date.now();
      try {
        const o = await this.#dialPlan(p, conn);
        if (abandoned()) {
          o.upstream.destroy();
          return { ok: false, error: new TunnelError("connect_failed", "client went away") };
        }
        return { ...o, ok: true, plan: p, started };
      } catch (e) {
        const err = e instanceof TunnelError
          ? e
          : new TunnelError("connect_failed", (e as Error).message);
        last = err;
        const endpoint = "endpoint" in p ? p.endpoint : undefined;
        const retryable = ["connect_failed", "tls_failure", "upstream_refused"].includes(
          err.failure,
        ) || (err.failure === "peer_status" && err.status === 503);
        if (endpoint && retryable) this.#unhealthy.set(endpoint, Date.now() + EJECT_MS);
        log.warn("outbound tunnel failed", {
          source: conn.source?.key,
          destination: p.kind === "hbone" ? p.authority : conn.dst,
          via: formatAuthority(
            p.kind === "direct" || p.kind === "passthrough" ? p.destination : p.nextHop,
          ),
          flag: err.flag,
          error: err.message,
        });
        // A policy denial or a refusal that another endpoint will not change ends here.
        if (!retryable || !endpoint || abandoned()) break;
      }
    }
    const error = last ?? new TunnelError("connect_failed", "no attempt made");
    this.#recordRefusal(conn, error.failure, error.message, error);
    return { ok: false, error };
  }

  async #dialPlan(
    plan: Exclude<OutboundPlan, { kind: "fail" }>,
    conn: OutboundConnection,
  ): Promise<{ upstream: Duplex; peerIdentity?: string }> {
    if (plan.kind === "hbone") {
      const t = await this.ctx.pool.open({
        source: conn.source!.identity,
        expected: plan.expected,
        nextHop: plan.nextHop,
        authority: plan.authority,
        headers: tunnelHeaders(conn.client, plan.hostname, conn.source!),
      });
      return { upstream: t.stream, peerIdentity: t.peerIdentity };
    }
    const to = plan.kind === "plaintext" ? plan.nextHop : plan.destination;
    const upstream = await dial(to, this.ctx.snapshot().mesh.defaults.connectTimeout);
    if (plan.kind === "plaintext") {
      upstream.write(proxyHeaderForPeer(conn.client, plan.destination));
    }
    return { upstream };
  }

  /** Relays an opened connection to its end; tracks, counts and logs it. */
  async #pipe(conn: OutboundConnection, sock: net.Socket, o: Opened): Promise<void> {
    const { upstream, plan } = o;
    if (sock.destroyed) {
      upstream.destroy();
      return;
    }
    const tracked = this.ctx.telemetry.metrics.established(this.#labels(conn, o, "-"));
    const source = conn.source;
    const untrack = this.ctx.registry.add({
      direction: "outbound",
      workload: source?.key ?? "-",
      started: o.started,
      recheck: () =>
        source && !this.ctx.view().workloads.has(source.key)
          ? "source workload left the mesh or this node"
          : undefined,
      close: () => {
        sock.destroy();
        upstream.destroy();
      },
    });
    const r = await relay(sock, upstream, tracked.counters);
    untrack();
    tracked.close();
    this.ctx.telemetry.access({
      direction: "outbound",
      via: conn.via,
      src: formatAuthority(conn.client),
      srcWorkload: source?.key,
      srcIdentity: source?.identity,
      dst: plan.kind === "hbone" ? plan.authority : formatAuthority(plan.destination),
      dstService: conn.service?.hostname,
      dstWorkload: "endpoint" in plan ? plan.endpoint : undefined,
      dstIdentity: o.peerIdentity,
      hop: plan.kind === "hbone" || plan.kind === "plaintext"
        ? (plan.kind === "hbone" && plan.waypoint ? `waypoint ${plan.waypoint} ` : "") +
          formatAuthority(plan.nextHop)
        : undefined,
      bytesReceived: r.aToB,
      bytesSent: r.bToA,
      durationMs: Date.now() - o.started,
      outcome: r.error ? "error" : "ok",
      flag: "-",
      error: r.error?.message,
    });
  }

  #labels(
    conn: OutboundConnection,
    o: Pick<Opened, "plan" | "peerIdentity"> | undefined,
    flag: string,
  ): TcpLabels {
    const plan = o?.plan;
    const endpoint = plan && "endpoint" in plan && plan.endpoint
      ? this.ctx.snapshot().workloads.get(plan.endpoint)
      : undefined;
    return {
      reporter: "source",
      source: conn.source ? workloadLabels(conn.source) : unknownPeer(),
      destination: endpoint
        ? { ...workloadLabels(endpoint), principal: o?.peerIdentity ?? UNKNOWN }
        : unknownPeer(o?.peerIdentity),
      service: conn.service ? serviceLabels(conn.service) : undefined,
      responseFlags: flag,
      securityPolicy: plan?.kind === "hbone"
        ? "mutual_tls"
        : plan === undefined
        ? "unknown"
        : "none",
    };
  }

  #recordRefusal(
    conn: Omit<OutboundConnection, "service"> & { service?: ServiceInfo },
    failure: TunnelFailure,
    detail: string,
    err?: TunnelError,
  ): void {
    const flag = err?.flag ?? FAILURES[failure].flag;
    this.ctx.telemetry.metrics.failed(this.#labels(conn, undefined, flag));
    this.ctx.telemetry.access({
      direction: "outbound",
      via: conn.via,
      src: formatAuthority(conn.client),
      srcWorkload: conn.source?.key,
      srcIdentity: conn.source?.identity,
      dst: conn.dst,
      dstService: conn.service?.hostname,
      bytesReceived: 0,
      bytesSent: 0,
      durationMs: 0,
      outcome: "refused",
      flag,
      error: detail,
    });
  }
}

/** One outbound connection as accepted. */
interface OutboundConnection {
  readonly client: HostPort;
  /** The attributed workload; undefined when unattributed traffic is allowed. */
  readonly source: Workload | undefined;
  readonly via: "vip" | "socks5" | "http";
  /** What the app dialed or asked for. */
  readonly dst: string;
  readonly service?: ServiceInfo;
}

/** An opened upstream. */
interface Opened {
  readonly ok: true;
  readonly upstream: Duplex;
  readonly peerIdentity?: string;
  readonly plan: Exclude<OutboundPlan, { kind: "fail" }>;
  readonly started: number;
}

/** The proxy failure a tunnel error maps to. */
function proxyFailure(e: TunnelError): ProxyFailure {
  switch (e.failure) {
    case "denied":
    case "unattributed":
      return "not_allowed";
    case "no_healthy_endpoint":
    case "no_workload":
    case "not_local":
      return "host_unreachable";
    case "upstream_refused":
      return "connection_refused";
    case "upstream_timeout":
      return "timed_out";
    case "peer_status":
      return e.status === 401 || e.status === 403 ? "not_allowed" : "host_unreachable";
    case "connect_failed":
      return /timed out/.test(e.message) ? "timed_out" : "connection_refused";
    default:
      return "general";
  }
}

/** The first address of a host name from the system resolver; undefined when it has none. */
async function lookupHost(name: string): Promise<string | undefined> {
  try {
    const r = await dnsLookup(name);
    return r.address;
  } catch {
    return undefined;
  }
}

/** `forwarded`, `baggage` and `traceparent`, as Istio's ztunnel sends them. */
export function tunnelHeaders(
  client: HostPort,
  hostname: string | undefined,
  source: Workload,
): Record<string, string> {
  const app = source.labels["app"] ?? source.labels["app.kubernetes.io/name"] ?? source.name;
  const version = source.labels["version"] ?? source.labels["app.kubernetes.io/version"] ??
    "latest";
  return {
    forwarded: `for="${formatAuthority(client)}"` + (hostname ? `;host=${hostname}` : ""),
    baggage: [
      `k8s.namespace.name=${source.namespace}`,
      `k8s.workloadentry.name=${source.name}`,
      `service.name=${app}`,
      `service.version=${version}`,
    ].join(","),
    traceparent: `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-00`,
  };
}

/** TCP connect with a deadline (Go duration string or ms). */
export function dial(to: HostPort, timeout: string | number): Promise<net.Socket> {
  const ms = typeof timeout === "number" ? timeout : parseDuration(timeout) ?? 10_000;
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: to.ip, port: to.port, allowHalfOpen: true, noDelay: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new TunnelError("connect_failed", `connect to ${formatAuthority(to)} timed out`));
    }, ms);
    s.once("connect", () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(new TunnelError("connect_failed", `connect to ${formatAuthority(to)}: ${e.message}`));
    });
  });
}
