/**
 * The waypoint role: an HBONE server (15008, same TLS and identity rules as
 * a ztunnel's) for the services and workloads bound to one Gateway of class
 * `istio-waypoint`. Each tunnel's `:authority` names the original
 * destination; HTTP inside it (HTTP/1.1, h2c, gRPC) goes through the L7 path
 * (l7.ts), other bytes are passed through to an endpoint at L4.
 *
 * @module
 */
import type { Duplex } from "node:stream";
import { type AdminServer, serveAdmin } from "../admin/admin.ts";
import { type ProbeServer, type Readiness, serveMetrics, serveReadiness } from "../admin/probes.ts";
import { parseDuration } from "../config/formats.ts";
import type { WaypointInfo } from "../config/snapshot.ts";
import type { ConfigStore } from "../config/store.ts";
import { parseAuthority } from "../hbone/authority.ts";
import { FAILURES } from "../hbone/errors.ts";
import { HbonePool } from "../hbone/pool.ts";
import { relay } from "../hbone/relay.ts";
import { HboneServer, type ServerTunnel } from "../hbone/server.ts";
import { CLOSE_GRACE_MS, type KeepaliveOptions } from "../hbone/settings.ts";
import { settleWithin } from "../util/settle.ts";
import type { CertificateSource } from "../identity/ca_client.ts";
import { CertManager } from "../identity/cert_manager.ts";
import { certManagerFamilies } from "../identity/metrics.ts";
import type { Logger } from "../log/logger.ts";
import { HttpMetrics } from "../telemetry/http_metrics.ts";
import { type Family, renderPrometheus } from "../telemetry/prometheus.ts";
import { sourceLabels, TcpMetrics, unknownPeer, workloadLabels } from "../telemetry/tcp_metrics.ts";
import { VERSION } from "../version.ts";
import { forwardedFor } from "../ztunnel/inbound.ts";
import {
  type L7Context,
  L7Drain,
  type RequestRecord,
  serveHttp1,
  serveHttp2,
  type TunnelInfo,
} from "./l7.ts";
import { sniff } from "./sniff.ts";
import { OtlpExporter } from "../telemetry/otlp.ts";
import { processFamilies } from "../telemetry/process_metrics.ts";
import { UpstreamPool } from "./upstream_pool.ts";
import { Backends } from "./backends.ts";
import { policyCacheFor, RateLimiters } from "./plan.ts";
import { JwtAuthenticator, type JwtAuthenticatorOptions } from "../policy/jwt.ts";
import { resolveWaypointTarget } from "./target.ts";
import { openEndpoint, openWorkload } from "./upstream.ts";

/** Options for {@link Waypoint.start}. */
export interface WaypointOptions {
  readonly store: ConfigStore;
  /** The Gateway, `namespace/name`. */
  readonly name: string;
  readonly certSource: CertificateSource;
  readonly bundlePem?: string;
  readonly logger: Logger;
  readonly admin?: { hostname: string; port: number };
  readonly metrics?: { hostname: string; port: number };
  readonly readiness?: { hostname: string; port: number };
  /** One record per request (default: none). */
  readonly accessLog?: (r: RequestRecord) => void;
  /** HBONE port (tests); default the Gateway's. */
  readonly port?: number;
  readonly keepalive?: KeepaliveOptions;
  readonly onQuit?: () => void;
  /**
   * Another process of this role and instance holds the ports (an upgrade):
   * obtain certificates first (up to this many ms), then bind, so that no
   * connection the kernel hands this process arrives before it can serve it.
   */
  readonly takeoverMs?: number;
  /** How long to wait for the first bytes to tell HTTP from other protocols (default 1000 ms). */
  readonly sniffTimeoutMs?: number;
  /** JWKS fetching (tests: an injected fetch or clock). */
  readonly jwt?: JwtAuthenticatorOptions;
  /** OTLP/HTTP collector for spans (e.g. http://127.0.0.1:4318); undefined: no export. */
  readonly otlpEndpoint?: string;
  /** Share of new traces sampled, 0..1 (default 1). */
  readonly traceSampling?: number;
}

/** Raised when the Gateway is not in the config. */
export class UnknownWaypointError extends Error {
  override readonly name = "UnknownWaypointError";
}

/** A running waypoint. */
export class Waypoint {
  readonly certs: CertManager;
  readonly pool: HbonePool;
  readonly http = new HttpMetrics();
  readonly tcp = new TcpMetrics();
  /** Load balancers, outlier detectors and circuit breakers by backend host. */
  readonly backends = new Backends();
  #hbone?: HboneServer;
  #admin?: AdminServer;
  #metrics?: ProbeServer;
  #readiness?: ProbeServer;
  #l7: L7Context;
  #live = new Set<Duplex>();
  readonly #drain = new L7Drain();
  #stopping?: string;
  #closing?: Promise<void>;
  #offReload: () => void;

  /** The span exporter, when `otlpEndpoint` is set. */
  readonly spans?: OtlpExporter;
  /** Kept-alive connections to endpoints. */
  readonly upstreams: UpstreamPool;

  private constructor(readonly options: WaypointOptions, wp: WaypointInfo) {
    const log = options.logger;
    if (options.otlpEndpoint) {
      this.spans = new OtlpExporter({
        endpoint: options.otlpEndpoint,
        logger: log.child({ component: "otlp" }),
        resource: {
          "service.name": `${wp.name}.${wp.namespace}`,
          "service.namespace": wp.namespace,
          "k8s.gateway.name": wp.name,
          "service.instance.id": wp.identity,
        },
      });
    }
    this.certs = new CertManager({
      source: options.certSource,
      logger: log,
      bundlePem: options.bundlePem,
    });
    this.certs.sync([wp.identity]);
    this.pool = new HbonePool({
      logger: log.child({ component: "hbone-client" }),
      certificate: (id) => this.certs.get(id),
      rootsPem: () => this.certs.rootsPem,
      maxStreamsPerConnection: options.store.current.mesh.defaults.maxStreamsPerConnection,
      connectTimeoutMs: parseDuration(options.store.current.mesh.defaults.connectTimeout),
      keepalive: options.keepalive,
    });
    this.upstreams = new UpstreamPool({
      snapshot: () => options.store.current,
      waypoint: () => this.info,
      pool: this.pool,
      connectTimeout: () => options.store.current.mesh.defaults.connectTimeout,
    });
    this.#l7 = {
      drain: this.#drain,
      logger: log.child({ component: "l7" }),
      snapshot: () => options.store.current,
      waypoint: () => this.info,
      pool: this.pool,
      metrics: this.http,
      access: options.accessLog ?? (() => {}),
      connectTimeout: () => options.store.current.mesh.defaults.connectTimeout,
      plan: {
        snapshot: () => options.store.current,
        waypoint: () => this.info,
        jwt: new JwtAuthenticator(options.jwt ?? {}),
        policies: () => policies(options.store.current),
        limiters: new RateLimiters(),
      },
      backends: this.backends,
      spans: this.spans,
      sampling: options.traceSampling,
      upstreams: this.upstreams,
    };
    const policies = policyCacheFor();
    this.#offReload = options.store.onReload((o) => {
      if (!o.applied) return;
      const now = options.store.current.waypoints.get(options.name);
      if (!now) {
        log.error("this waypoint is no longer in the config; refusing new tunnels");
        return;
      }
      this.certs.sync([now.identity]);
      this.certs.idle().then(() => this.#hbone?.refresh(), () => {});
      log.info("config updated", { services: this.boundServices().join(",") || "none" });
    });
  }

  /** The Gateway as compiled now (the last known one if it left the config). */
  get info(): WaypointInfo {
    return this.options.store.current.waypoints.get(this.options.name) ?? this.#lastInfo!;
  }
  #lastInfo?: WaypointInfo;

  /** Starts the role; throws UnknownWaypointError when the Gateway is not in the config. */
  static async start(options: WaypointOptions): Promise<Waypoint> {
    const wp = options.store.current.waypoints.get(options.name);
    if (!wp) {
      const known = [...options.store.current.waypoints.keys()].join(", ") || "none";
      throw new UnknownWaypointError(
        `waypoint "${options.name}" is not in the config (waypoints: ${known}); add a Gateway with gatewayClassName istio-waypoint`,
      );
    }
    const w = new Waypoint(options, wp);
    w.#lastInfo = wp;
    try {
      if (options.readiness) {
        w.#readiness = serveReadiness(() => w.readiness(), {
          ...options.readiness,
          logger: options.logger,
        });
      }
      if (options.takeoverMs) await w.certs.idle(options.takeoverMs);
      w.#hbone = await HboneServer.listen({
        listen: { ip: wp.address, port: options.port ?? wp.port },
        logger: options.logger.child({ component: "hbone-server" }),
        trustDomain: () => options.store.current.mesh.trustDomain,
        rootsPem: () => w.certs.rootsPem,
        certificateFor: () => {
          const c = w.certs.peek(w.info.identity);
          return c ? { certPem: c.certPem, keyPem: c.keyPem, serial: c.serial } : undefined;
        },
        onTunnel: (t) => w.#onTunnel(t),
        keepalive: options.keepalive,
      });
      w.certs.idle().then(() => w.#hbone?.refresh(), () => {});
      if (options.metrics) {
        w.#metrics = serveMetrics(() => w.metricsText(), {
          ...options.metrics,
          logger: options.logger,
        });
      }
      if (options.admin) {
        w.#admin = serveAdmin({
          certs: () => ({ node: w.info.node, identities: w.certs.list(), trustBundle: [] }),
          configDump: () => ({
            generation: options.store.generation,
            lastReloadError: options.store.lastFailure ?? null,
            waypoint: w.info,
            services: w.boundServices(),
            certificates: w.certs.list(),
          }),
          metrics: () => w.metricsText(),
          ready: () => w.readiness(),
          logger: options.logger,
          quit: options.onQuit,
          owner: { role: "waypoint", name: options.name },
        }, { ...options.admin, logger: options.logger });
      }
    } catch (e) {
      await w.close();
      throw e;
    }
    return w;
  }

  /** Keys of the services bound to this waypoint. */
  boundServices(): string[] {
    return [...this.options.store.current.services.values()].filter((s) =>
      s.waypoint === this.options.name
    ).map((s) => s.key);
  }

  /** The HBONE server's address. */
  get address(): { ip: string; port: number } | undefined {
    const a = this.#hbone?.address;
    return a ? { ip: a.ip, port: a.port } : undefined;
  }

  /** The metrics server's address, when it runs. */
  get metricsAddress(): { hostname: string; port: number } | undefined {
    return this.#metrics?.address;
  }

  /** The admin server's address, when it runs. */
  get adminAddress(): { hostname: string; port: number } | undefined {
    return this.#admin?.address;
  }

  /** Ready with a certificate and a listener, not while stopping. */
  readiness(): Readiness {
    const pending: string[] = [];
    if (this.#stopping) pending.push(`stopping (${this.#stopping})`);
    if (!this.certs.peek(this.info.identity)) pending.push(`certificate for ${this.info.identity}`);
    if (!this.#hbone) pending.push("HBONE listener");
    return { ready: pending.length === 0, pending };
  }

  /** Every metric family of the waypoint. */
  families(): Family[] {
    return [
      ...this.http.families(),
      ...this.tcp.families(),
      {
        name: "istio_build",
        help: "Istio component build info (ambit's version as the tag).",
        type: "gauge",
        samples: () => [{ labels: { component: "waypoint", tag: VERSION }, value: 1 }],
      },
      ...certManagerFamilies(this.certs),
      ...this.#processFamilies,
    ];
  }

  readonly #processFamilies = processFamilies();

  /** The metrics as Prometheus text. */
  metricsText(): string {
    return renderPrometheus(this.families());
  }

  #onTunnel(t: ServerTunnel): void {
    const log = this.options.logger;
    if (t.method !== "CONNECT") return void t.reject("bad_request", `method ${t.method}`);
    if (this.#stopping) return void t.reject("no_workload", "waypoint stopping");
    const parsed = parseAuthority(t.authority);
    if (!parsed.ok) return void t.reject("bad_authority", parsed.reason);
    const snapshot = this.options.store.current;
    const r = resolveWaypointTarget(snapshot, this.info, parsed.target);
    if (!r.ok) {
      log.info("waypoint tunnel refused", {
        source: t.peerIdentity,
        destination: t.authority,
        reason: r.detail,
      });
      return void t.reject(r.failure, r.detail);
    }
    const client = forwardedFor(t.headers["forwarded"]) ?? t.peerAddress;
    const info: TunnelInfo = {
      target: r.target,
      sourceIdentity: t.peerIdentity,
      source: sourceLabels(snapshot, t.peerIdentity, client.ip, t.headers["baggage"]),
      client,
    };
    const stream = t.accept();
    this.#live.add(stream);
    stream.once("close", () => this.#live.delete(stream));
    stream.on("error", () => {});
    const protocol = r.target.protocol;
    if (protocol === "tcp") return void this.#passThrough(stream, info);
    sniff(stream, protocol === "detect" ? this.options.sniffTimeoutMs ?? 1000 : 30_000).then(
      (kind) => {
        // On a port declared HTTP, anything but the HTTP/2 preface is HTTP/1 (garbage gets 400).
        if (kind === "h2") serveHttp2(this.#l7, stream, info);
        else if (kind === "tcp" && protocol === "detect") this.#passThrough(stream, info);
        else serveHttp1(this.#l7, stream, info);
      },
    );
  }

  /** L4: bytes to an endpoint of the service (or the workload), counted as TCP. */
  async #passThrough(stream: Duplex, info: TunnelInfo): Promise<void> {
    const snapshot = this.options.store.current;
    const o = {
      snapshot,
      waypoint: this.info,
      pool: this.pool,
      connectTimeout: snapshot.mesh.defaults.connectTimeout,
      client: info.client,
    };
    const target = info.target;
    let conn;
    try {
      if (target.kind === "workload") {
        conn = await openWorkload(o, snapshot, target.workload, target.port);
      } else {
        const port = target.port.port;
        const eps = target.service.endpoints.filter((e) =>
          e.ports[port] !== undefined && e.weight > 0
        );
        if (eps.length === 0) throw new Error(`service ${target.service.key} has no endpoints`);
        conn = await openEndpoint(
          o,
          target.service,
          eps[Math.floor(Math.random() * eps.length)],
          port,
        );
      }
    } catch (e) {
      this.options.logger.warn("waypoint passthrough failed", { error: (e as Error).message });
      this.tcp.failed({
        reporter: "destination",
        source: info.source,
        destination: unknownPeer(),
        responseFlags: FAILURES.connect_failed.flag,
        securityPolicy: "mutual_tls",
      });
      stream.destroy();
      return;
    }
    const w = snapshot.workloads.get(conn.workload);
    const tracked = this.tcp.established({
      reporter: "destination",
      source: info.source,
      destination: w ? workloadLabels(w) : unknownPeer(conn.peerIdentity),
      responseFlags: "-",
      securityPolicy: "mutual_tls",
    });
    await relay(stream, conn.stream, tracked.counters);
    tracked.close();
  }

  /** Graceful stop: not ready at once, no new tunnels, live ones get `drainMs`. */
  async shutdown(reason: string, drainMs = 0): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = reason;
    const serverClosed = this.#hbone?.close(false);
    // HTTP connections in the tunnels finish their requests and close; then the tunnels end.
    this.#drain.start();
    const until = Date.now() + drainMs;
    if (this.#live.size > 0 && drainMs > 0) {
      this.options.logger.info("draining connections", {
        tunnels: this.#live.size,
        deadlineMs: drainMs,
      });
    }
    while (this.#live.size > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (this.#live.size > 0 && drainMs > 0) {
      this.options.logger.warn("drain deadline passed; closing connections", {
        left: this.#live.size,
      });
    }
    if (this.#live.size === 0) {
      // Idle upstream tunnels go; then the HBONE connections end cleanly, so
      // no stream's last frames are cut off in a socket's write buffer.
      this.upstreams.close();
      await settleWithin(
        [serverClosed, this.pool.drain()],
        CLOSE_GRACE_MS,
      );
    }
    await this.close();
  }

  /** Stops everything. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stopping ??= "closing";
      this.#offReload();
      for (const s of this.#live) s.destroy();
      this.upstreams.close();
      this.pool.close();
      await this.spans?.close();
      await this.#hbone?.close(true);
      this.certs.close();
      await this.#metrics?.close();
      await this.#admin?.close();
      await this.#readiness?.close();
    })();
    return this.#closing;
  }
}
