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
import { parseDuration } from "../config/formats.ts";
import type { Snapshot, Workload } from "../config/snapshot.ts";
import type { Logger } from "../log/logger.ts";
import { formatAuthority, type HostPort } from "../hbone/authority.ts";
import { FAILURES, TunnelError } from "../hbone/errors.ts";
import type { HbonePool } from "../hbone/pool.ts";
import { proxyHeaderForPeer } from "../hbone/proxy_protocol.ts";
import { relay } from "../hbone/relay.ts";
import { attributeSource } from "./attribution.ts";
import type { ConnectionRegistry } from "./connections.ts";
import type { ConnectionRecord } from "./inbound.ts";
import type { LocalView } from "./local_view.ts";
import {
  listenerKey,
  outboundListeners,
  type OutboundListenerSpec,
  type OutboundPlan,
  planOutbound,
} from "./outbound_plan.ts";
import { socketOwner } from "./sockets.ts";
import { resolveUser } from "./users.ts";

/** What outbound handling reads from the running ztunnel. */
export interface OutboundContext {
  readonly logger: Logger;
  snapshot(): Snapshot;
  view(): LocalView;
  readonly pool: HbonePool;
  readonly registry: ConnectionRegistry;
  onClosed?(e: ConnectionRecord): void;
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
      srv.listen(spec.port, spec.ip, () => {
        srv.off("error", reject);
        srv.on("error", (e) => this.ctx.logger.warn("outbound listener error", { error: e }));
        resolve(srv);
      });
    });
  }

  async #accept(spec: OutboundListenerSpec, sock: net.Socket): Promise<void> {
    const log = this.ctx.logger;
    sock.setNoDelay(true);
    sock.on("error", () => {});
    const client = { ip: sock.remoteAddress ?? "", port: sock.remotePort ?? 0 };
    const view = this.ctx.view();
    const source = await this.#attribute(view, sock, client);
    if (source === null) return;
    let plan: OutboundPlan | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      plan = planOutbound(this.ctx.snapshot(), {
        service: spec.service,
        port: spec.servicePort,
        source,
        node: view.node.name,
        unhealthy: this.#ejected(),
      });
      if (plan.kind === "fail") break;
      const ok = await this.#carry(plan, sock, client, source);
      if (ok) return;
      if (sock.destroyed) return;
    }
    if (plan?.kind === "fail") {
      log.warn("outbound connection has nowhere to go", {
        source: source?.key,
        service: `${spec.service}:${spec.servicePort}`,
        reason: plan.detail,
      });
    }
    sock.destroy();
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

  /** The local workload that opened `sock`, undefined (allowed unattributed) or null (refused). */
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
    if (allow) return undefined;
    sock.destroy();
    return null;
  }

  /** Carries the connection along `plan`; false when the hop failed before any byte moved. */
  async #carry(
    plan: Exclude<OutboundPlan, { kind: "fail" }>,
    sock: net.Socket,
    client: HostPort,
    source: Workload | undefined,
  ): Promise<boolean> {
    const log = this.ctx.logger;
    const started = Date.now();
    let upstream: import("node:stream").Duplex;
    let peerIdentity: string | undefined;
    try {
      if (plan.kind === "hbone") {
        const t = await this.ctx.pool.open({
          source: source!.identity,
          expected: plan.expected,
          nextHop: plan.nextHop,
          authority: plan.authority,
          headers: tunnelHeaders(client, plan.hostname, source!),
        });
        upstream = t.stream;
        peerIdentity = t.peerIdentity;
      } else {
        const to = plan.kind === "plaintext" ? plan.nextHop : plan.destination;
        upstream = await dial(to, this.ctx.snapshot().mesh.defaults.connectTimeout);
        if (plan.kind === "plaintext") {
          upstream.write(proxyHeaderForPeer(client, plan.destination));
        }
      }
    } catch (e) {
      const err = e as Error;
      const endpoint = "endpoint" in plan ? plan.endpoint : undefined;
      const retryable = !(err instanceof TunnelError) ||
        ["connect_failed", "tls_failure", "upstream_refused"].includes(err.failure) ||
        (err.failure === "peer_status" && err.status === 503);
      if (endpoint && retryable) this.#unhealthy.set(endpoint, Date.now() + EJECT_MS);
      log.warn("outbound tunnel failed", {
        source: source?.key,
        destination: plan.kind === "hbone" ? plan.authority : undefined,
        via: formatAuthority(plan.kind === "direct" ? plan.destination : plan.nextHop),
        flag: err instanceof TunnelError ? FAILURES[err.failure].flag : "CONNECT",
        error: err.message,
      });
      // A policy denial or a refusal that another endpoint will not change ends here.
      if (!retryable || !endpoint) sock.destroy();
      return false;
    }
    if (sock.destroyed) {
      upstream.destroy();
      return true;
    }
    const counters = { aToB: 0, bToA: 0 };
    const untrack = this.ctx.registry.add({
      direction: "outbound",
      workload: source?.key ?? "-",
      started,
      recheck: () =>
        source && !this.ctx.view().workloads.has(source.key)
          ? "source workload left the mesh or this node"
          : undefined,
      close: () => {
        sock.destroy();
        upstream.destroy();
      },
    });
    const destination = plan.kind === "hbone" ? plan.authority : formatAuthority(plan.destination);
    const r = await relay(sock, upstream, counters);
    untrack();
    const rec: ConnectionRecord = {
      direction: "outbound",
      source: formatAuthority(client),
      sourceIdentity: source?.identity,
      destination,
      workload: source?.key ?? "-",
      destinationIdentity: peerIdentity,
      sent: r.aToB,
      received: r.bToA,
      durationMs: Date.now() - started,
      error: r.error?.message,
      flag: "-",
    };
    log.info("outbound connection closed", {
      ...rec,
      via: "waypoint" in plan ? plan.waypoint : undefined,
    });
    this.ctx.onClosed?.(rec);
    return true;
  }
}

/** `forwarded`, `baggage` and `traceparent`, as Istio's ztunnel sends them. */
export function tunnelHeaders(
  client: HostPort,
  hostname: string,
  source: Workload,
): Record<string, string> {
  const app = source.labels["app"] ?? source.labels["app.kubernetes.io/name"] ?? source.name;
  const version = source.labels["version"] ?? source.labels["app.kubernetes.io/version"] ??
    "latest";
  return {
    forwarded: `for="${formatAuthority(client)}";host=${hostname}`,
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
