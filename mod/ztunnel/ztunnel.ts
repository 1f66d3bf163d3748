/**
 * The ztunnel role on one node: follows the config, keeps certificates for
 * the node's enrolled workloads, and runs the data plane: the HBONE server
 * (15008), plaintext inbound (15006), userspace outbound capture on Service
 * VIPs, L4 authorization, and the admin API.
 *
 * @module
 */
import type net from "node:net";
import { dumpSnapshot } from "../config/dump.ts";
import type { Snapshot } from "../config/snapshot.ts";
import type { ConfigStore } from "../config/store.ts";
import { type AdminServer, type AdminSources, serveAdmin } from "../admin/admin.ts";
import type { CertificateSource } from "../identity/ca_client.ts";
import { CertManager } from "../identity/cert_manager.ts";
import type { Logger } from "../log/logger.ts";
import { HbonePool } from "../hbone/pool.ts";
import { HboneServer, type HboneServerOptions, type ServingCert } from "../hbone/server.ts";
import {
  CLOSE_GRACE_MS,
  HBONE_PORT,
  type KeepaliveOptions,
  PLAINTEXT_PORT,
} from "../hbone/settings.ts";
import { settleWithin } from "../util/settle.ts";
import { isIdentitySni, sniForIdentity } from "../hbone/sni.ts";
import { L4PolicyCache } from "../policy/authz.ts";
import { diffViews, type LocalView, localView } from "./local_view.ts";
import { certManagerFamilies } from "../identity/metrics.ts";
import { renderPrometheus } from "../telemetry/prometheus.ts";
import { ConnectionRegistry } from "./connections.ts";
import { handleHboneTunnel, type InboundContext } from "./inbound.ts";
import { Outbound } from "./outbound.ts";
import { servePlaintext } from "./plaintext.ts";
import { HostAddresses } from "./host_addresses.ts";
import { parseDuration } from "../config/formats.ts";
import { type ProbeServer, type Readiness, serveMetrics, serveReadiness } from "../admin/probes.ts";
import type { Family } from "../telemetry/prometheus.ts";
import { quietTelemetry, type Telemetry } from "../telemetry/telemetry.ts";
import { VERSION } from "../version.ts";
import type { DnsServer } from "../dns/server.ts";
import { meshNamesFor } from "../dns/names.ts";
import type { Socks5Server } from "./socks5.ts";
import type { HttpProxyServer } from "./http_proxy.ts";
import { proxyFamilies } from "./proxy_metrics.ts";
import { processFamilies } from "../telemetry/process_metrics.ts";

/** Options for {@link Ztunnel.start}. */
export interface ZtunnelOptions {
  readonly store: ConfigStore;
  readonly node: string;
  readonly certSource: CertificateSource;
  /** Initial trust bundle (the node credential's), PEM. */
  readonly bundlePem?: string;
  readonly logger: Logger;
  /** Loopback address of the admin API; undefined disables it. */
  readonly admin?: { hostname: string; port: number };
  /** Data-plane ports (tests); defaults 15008 and 15006. */
  readonly ports?: { hbone?: number; plaintext?: number };
  /** HBONE keepalive timings (tests). */
  readonly keepalive?: KeepaliveOptions;
  /** TLS handshake and HTTP/2 preface deadline of the HBONE server (tests; default 10 s). */
  readonly handshakeTimeoutMs?: number;
  /** Run without the data plane (identity only). */
  readonly dataPlane?: boolean;
  /** Prometheus `/metrics` and `/stats/prometheus` (15020); undefined disables it. */
  readonly metrics?: { hostname: string; port: number };
  /** Readiness `/healthz/ready` (15021); undefined disables it. */
  readonly readiness?: { hostname: string; port: number };
  /** Metrics and access log sinks (default: counting, no access log). */
  readonly telemetry?: Telemetry;
  /** Called by the admin API's `POST /quitquitquit`. */
  readonly onQuit?: () => void;
  /**
   * Another process of this role and instance holds the ports (an upgrade):
   * obtain certificates first (up to this many ms), then bind, so that no
   * connection the kernel hands this process arrives before it can serve it.
   */
  readonly takeoverMs?: number;
  /** DNS proxy (UDP and TCP); undefined disables it. */
  readonly dns?: { hostname: string; port: number };
  /** SOCKS5 proxy; undefined disables it. */
  readonly socks5?: { hostname: string; port: number };
  /** HTTP proxy (CONNECT and absolute-form http://); undefined disables it. */
  readonly httpProxy?: { hostname: string; port: number };
}

/** A running ztunnel. */
export class Ztunnel {
  #view: LocalView;
  readonly certs: CertManager;
  readonly registry = new ConnectionRegistry();
  readonly pool: HbonePool;
  #admin?: AdminServer;
  #hbone?: HboneServer;
  /** HBONE listeners on workload addresses other than the node's, by address. */
  #hboneByAddress = new Map<string, HboneServer>();
  #inbound?: InboundContext;
  #reconciling: Promise<void> = Promise.resolve();
  #plaintext?: net.Server;
  #outbound?: Outbound;
  #policies?: { snapshot: Snapshot; cache: L4PolicyCache };
  #offReload: () => void;
  #hostAddresses = new HostAddresses();
  #refreshTimer?: ReturnType<typeof setInterval>;
  readonly telemetry: Telemetry;
  #readiness?: ProbeServer;
  #metrics?: ProbeServer;
  #started = false;
  #stopping?: string;
  #closing?: Promise<void>;
  #dns?: DnsServer;
  #socks5?: Socks5Server;
  #httpProxy?: HttpProxyServer;

  private constructor(readonly options: ZtunnelOptions) {
    this.#view = localView(options.store.current, options.node);
    this.telemetry = options.telemetry ?? quietTelemetry();
    this.certs = new CertManager({
      source: options.certSource,
      logger: options.logger,
      bundlePem: options.bundlePem,
    });
    this.pool = new HbonePool({
      logger: options.logger.child({ component: "hbone-client" }),
      certificate: (id) => this.certs.get(id),
      rootsPem: () => this.certs.rootsPem,
      maxStreamsPerConnection: options.store.current.mesh.defaults.maxStreamsPerConnection,
      connectTimeoutMs: this.#connectTimeoutMs(),
      keepalive: options.keepalive,
    });
    this.#offReload = options.store.onReload((o) => {
      if (o.applied) this.#apply();
    });
  }

  /** Starts the role; throws UnknownNodeError when the node is not in the config. */
  static async start(options: ZtunnelOptions): Promise<Ztunnel> {
    const z = new Ztunnel(options);
    try {
      // Readiness first, so a probe sees "not ready" with reasons while the rest starts.
      if (options.readiness) {
        z.#readiness = serveReadiness(() => z.readiness(), {
          ...options.readiness,
          logger: options.logger,
        });
      }
      z.certs.sync(z.identities());
      if (options.takeoverMs) await z.certs.idle(options.takeoverMs);
      if (options.dataPlane !== false) await z.#startDataPlane();
      if (options.metrics) {
        z.#metrics = serveMetrics(() => z.metricsText(), {
          ...options.metrics,
          logger: options.logger,
        });
      }
      if (options.admin) {
        z.#admin = serveAdmin(z.#adminSources(), { ...options.admin, logger: options.logger });
      }
    } catch (e) {
      await z.close();
      throw e;
    }
    z.#logPolicyWarnings();
    z.#started = true;
    return z;
  }

  #adminSources(): AdminSources {
    const o = this.options;
    return {
      certs: () => ({
        node: o.node,
        identities: this.certs.list(),
        trustBundle: describeRoots(this),
      }),
      metrics: () => this.metricsText(),
      configDump: () => ({
        node: o.node,
        generation: o.store.generation,
        lastReloadError: o.store.lastFailure ?? null,
        certificates: this.certs.list(),
        ...dumpSnapshot(o.store.current, { node: o.node }),
      }),
      workloads: () => this.#describeWorkloads(),
      services: () => this.#describeServices(),
      policies: () => this.#describePolicies(),
      ready: () => this.readiness(),
      logger: o.logger,
      quit: o.onQuit,
      owner: { role: "ztunnel", name: o.node },
    };
  }

  /**
   * Ready when the config is loaded, every local workload's certificate is
   * present, and every listener is up; not ready while stopping.
   */
  readiness(): Readiness {
    const pending: string[] = [];
    if (this.#stopping) pending.push(`stopping (${this.#stopping})`);
    if (!this.#started) pending.push("starting");
    for (const id of this.identities()) {
      if (!this.certs.peek(id)) {
        const st = this.certs.list().find((c) => c.id === id);
        pending.push(
          `certificate for ${id}` +
            (st?.failures
              ? ` (${st.failures} failed attempts: ${st.lastError ?? "see logs"})`
              : ""),
        );
      }
    }
    if (this.options.dataPlane !== false) {
      if (!this.#hbone) pending.push("HBONE listener");
      if (!this.#plaintext) pending.push("plaintext listener");
      if (this.options.dns && !this.#dns) pending.push("DNS proxy");
      if (this.options.socks5 && !this.#socks5) pending.push("SOCKS5 proxy");
      if (this.options.httpProxy && !this.#httpProxy) pending.push("HTTP proxy");
      for (const f of this.#outbound?.failures ?? []) {
        pending.push(
          `outbound listener ${f.spec.ip}:${f.spec.port} for ${f.spec.service}:${f.spec.servicePort}: ${f.error}`,
        );
      }
    }
    return { ready: pending.length === 0, pending };
  }

  readonly #processFamilies = processFamilies();

  /** All metric families of this node. */
  families(): Family[] {
    const o = this.options;
    return [
      ...this.telemetry.metrics.families(),
      {
        name: "istio_build",
        help: "Istio component build info (ambit's version as the tag).",
        type: "gauge",
        samples: () => [{ labels: { component: "ztunnel", tag: VERSION }, value: 1 }],
      },
      ...certManagerFamilies(this.certs),
      ...this.#processFamilies,
      {
        name: "ambit_config_reloads_total",
        help: "Config reloads applied (including the initial load).",
        type: "counter",
        samples: () => [{ value: o.store.stats.reloads }],
      },
      {
        name: "ambit_config_reload_failures_total",
        help: "Config reloads rejected (the last good config stayed in force).",
        type: "counter",
        samples: () => [{ value: o.store.stats.failures }],
      },
      {
        name: "ambit_config_generation",
        help: "Generation of the config in force.",
        type: "gauge",
        samples: () => [{ value: o.store.generation }],
      },
      {
        name: "ambit_hbone_pool_connections",
        help: "Open HBONE client connections in the pool.",
        type: "gauge",
        samples: () => [{ value: this.pool.connections }],
      },
      {
        name: "ambit_hbone_pool_streams",
        help: "Open HBONE client streams over pooled connections.",
        type: "gauge",
        samples: () => [{ value: this.pool.openStreams }],
      },
      {
        name: "ambit_hbone_pool_handshakes_total",
        help: "HBONE client connections made (TLS handshakes), by outcome.",
        type: "counter",
        samples: () => [
          { labels: { outcome: "ok" }, value: this.pool.stats.handshakes },
          { labels: { outcome: "failed" }, value: this.pool.stats.handshakeFailures },
        ],
      },
      {
        name: "ambit_connections_active",
        help: "Proxied connections open now, by direction.",
        type: "gauge",
        samples: () => [
          { labels: { direction: "inbound" }, value: this.registry.count("inbound") },
          { labels: { direction: "outbound" }, value: this.registry.count("outbound") },
        ],
      },
      ...proxyFamilies({
        dns: () => this.#dns?.stats,
        socks5: () => this.#socks5?.stats,
        http: () => this.#httpProxy?.stats,
      }),
      {
        name: "ambit_ready",
        help: "1 when the readiness probe answers ready.",
        type: "gauge",
        samples: () => [{ value: this.readiness().ready ? 1 : 0 }],
      },
    ];
  }

  /** The node's metrics as Prometheus text. */
  metricsText(): string {
    return renderPrometheus(this.families());
  }

  #describeWorkloads() {
    return {
      node: this.#view.node.name,
      address: this.#view.node.address,
      workloads: [...this.#view.workloads.values()].map((w) => ({
        key: w.key,
        identity: w.identity,
        address: w.address,
        ports: w.ports,
        labels: w.labels,
        user: w.user,
        services: w.services,
        waypoint: w.waypoint,
        proxyProtocol: w.proxyProtocol,
        certificate: this.certs.list().find((c) => c.id === w.identity)?.state ?? "missing",
      })),
      connections: {
        inbound: this.registry.count("inbound"),
        outbound: this.registry.count("outbound"),
      },
      outboundListeners: this.outboundListeners,
    };
  }

  #describeServices() {
    const s = this.options.store.current;
    return {
      services: [...s.services.values()].map((svc) => ({
        key: svc.key,
        hostname: svc.hostname,
        vip: svc.vip,
        vipAssigned: svc.vipAssigned,
        ports: svc.ports,
        waypoint: svc.waypoint,
        endpoints: svc.endpoints.map((e) => ({
          workload: e.workload,
          node: e.node,
          address: e.address,
          ports: e.ports,
          weight: e.weight,
        })),
      })),
    };
  }

  #describePolicies() {
    const cache = this.#policyCache();
    return {
      workloads: [...this.#view.workloads.values()].map((w) => ({
        workload: w.key,
        policies: cache.forWorkload(w).map((p) => ({
          policy: p.key,
          action: p.action,
          rules: p.rules.length,
          dryRun: p.dryRun,
          warnings: p.warnings,
        })),
      })),
      warnings: cache.warnings(),
    };
  }

  async #startDataPlane(): Promise<void> {
    const log = this.options.logger;
    const node = this.#view.node;
    const ports = this.options.ports ?? {};
    const ctx: InboundContext = {
      logger: log.child({ component: "inbound" }),
      snapshot: () => this.options.store.current,
      telemetry: this.telemetry,
      view: () => this.#view,
      policies: () => this.#policyCache(),
      connectTimeoutMs: () => this.#connectTimeoutMs(),
      isHostAddress: (ip) => this.#hostAddresses.has(ip),
      registry: this.registry,
    };
    this.#inbound = ctx;
    this.#hbone = await HboneServer.listen(this.#hboneOptions(node.address));
    await this.#reconcileWorkloadListeners();
    this.#plaintext = await servePlaintext(ctx, {
      ip: node.address,
      port: ports.plaintext ?? PLAINTEXT_PORT,
    });
    this.#outbound = new Outbound({
      logger: log.child({ component: "outbound" }),
      snapshot: () => this.options.store.current,
      view: () => this.#view,
      pool: this.pool,
      registry: this.registry,
      telemetry: this.telemetry,
      resolveName: (name, namespaces) =>
        meshNamesFor(this.options.store.current).resolve(name, namespaces)?.[0],
    });
    await this.#outbound.apply();
    await this.#startHostListeners();
    this.#refreshTimer = setInterval(() => this.#refreshServers(), 2000);
    this.certs.idle().then(() => this.#refreshServers(), () => {});
    log.info("data plane listening", {
      hbone: [node.address, ...this.#hboneByAddress.keys()].map((ip) =>
        `${ip}:${ports.hbone ?? HBONE_PORT}`
      ),
      plaintext: `${node.address}:${ports.plaintext ?? PLAINTEXT_PORT}`,
      outbound: this.#outbound.listening.length,
    });
  }

  /** DNS proxy, SOCKS5 and HTTP proxy, where configured. */
  async #startHostListeners(): Promise<void> {
    const o = this.options;
    const log = o.logger;
    // Loaded only when enabled: an off listener costs no memory.
    if (o.dns) {
      const { serveDns } = await import("../dns/server.ts");
      const { Upstream } = await import("../dns/upstream.ts");
      const at = { ip: o.dns.hostname, port: o.dns.port };
      this.#dns = await serveDns({
        udp: at,
        tcp: at,
        names: () => meshNamesFor(o.store.current),
        namespacesFor: (ip) => this.#namespacesFor(ip),
        upstream: await Upstream.fromResolvConf({ exclude: [at] }),
        logger: log.child({ component: "dns" }),
      });
    }
    const connector = this.#outbound!.connector;
    if (o.socks5) {
      const { serveSocks5 } = await import("./socks5.ts");
      this.#socks5 = await serveSocks5({
        listen: { ip: o.socks5.hostname, port: o.socks5.port },
        connector,
        logger: log.child({ component: "socks5" }),
      });
    }
    if (o.httpProxy) {
      const { serveHttpProxy } = await import("./http_proxy.ts");
      this.#httpProxy = await serveHttpProxy({
        listen: { ip: o.httpProxy.hostname, port: o.httpProxy.port },
        connector,
        logger: log.child({ component: "http-proxy" }),
      });
    }
  }

  /**
   * Namespaces of the local workloads a client address belongs to: those at
   * that address, else (a loopback client on a host whose workloads share
   * its addresses) every local workload's.
   */
  #namespacesFor(ip: string): string[] {
    const all = [...this.#view.workloads.values()];
    const at = all.filter((w) => w.address === ip);
    return [...new Set((at.length > 0 ? at : all).map((w) => w.namespace))];
  }

  #hboneOptions(ip: string): HboneServerOptions {
    const log = this.options.logger.child({ component: "hbone-server" });
    return {
      listen: { ip, port: this.options.ports?.hbone ?? HBONE_PORT },
      logger: log,
      trustDomain: () => this.options.store.current.mesh.trustDomain,
      rootsPem: () => this.certs.rootsPem,
      certificateFor: (sni) => this.#servingCert(sni, ip),
      onTunnel: (t) => handleHboneTunnel(this.#inbound!, t),
      keepalive: this.options.keepalive,
      handshakeTimeoutMs: this.options.handshakeTimeoutMs,
    };
  }

  /**
   * Keeps an HBONE listener on every address of a local enrolled workload
   * that the host owns, besides the node's own: a client that sends no SNI
   * (Istio's ztunnel dials the pod's IP:15008) then gets the certificate of
   * the workload at the address it dialed. Best effort: an address that
   * cannot be bound is logged and served through the node's address only.
   */
  #reconcileWorkloadListeners(): Promise<void> {
    // A failed pass must not wedge the chain: the next one starts regardless.
    this.#reconciling = this.#reconciling.catch(() => {}).then(async () => {
      const node = this.#view.node.address;
      const want = new Set(
        [...this.#view.workloads.values()].map((w) => w.address).filter((ip) =>
          ip !== node && this.#hostAddresses.has(ip)
        ),
      );
      for (const [ip, srv] of this.#hboneByAddress) {
        if (want.has(ip)) continue;
        this.#hboneByAddress.delete(ip);
        await srv.close(true);
      }
      for (const ip of want) {
        if (this.#hboneByAddress.has(ip)) continue;
        try {
          this.#hboneByAddress.set(ip, await HboneServer.listen(this.#hboneOptions(ip)));
        } catch (e) {
          this.options.logger.warn("no HBONE listener on a workload address", {
            address: ip,
            error: (e as Error).message,
            hint: `clients reach its workloads through the node's address ${node}`,
          });
        }
      }
    });
    return this.#reconciling;
  }

  #refreshServers(): void {
    this.#hbone?.refresh();
    for (const s of this.#hboneByAddress.values()) s.refresh();
  }

  /** The node's current view. */
  get view(): LocalView {
    return this.#view;
  }

  /** SPIFFE IDs of the enrolled workloads on this node. */
  identities(): string[] {
    return [...new Set([...this.#view.workloads.values()].map((w) => w.identity))].sort();
  }

  /** The admin server's address, when it runs. */
  get adminAddress(): { hostname: string; port: number } | undefined {
    return this.#admin?.address;
  }

  /** The metrics server's address, when it runs. */
  get metricsAddress(): { hostname: string; port: number } | undefined {
    return this.#metrics?.address;
  }

  /** The readiness server's address, when it runs. */
  get readinessAddress(): { hostname: string; port: number } | undefined {
    return this.#readiness?.address;
  }

  /** Outbound listeners bound, as `ip:port>service:port`. */
  get outboundListeners(): string[] {
    return this.#outbound?.listening ?? [];
  }

  /** The HBONE server (tests and admin). */
  get hboneServer(): HboneServer | undefined {
    return this.#hbone;
  }

  #connectTimeoutMs(): number {
    return parseDuration(this.options.store.current.mesh.defaults.connectTimeout) ?? 10_000;
  }

  #policyCache(): L4PolicyCache {
    const s = this.options.store.current;
    if (this.#policies?.snapshot !== s) {
      this.#policies = { snapshot: s, cache: new L4PolicyCache(s) };
    }
    return this.#policies.cache;
  }

  #logPolicyWarnings(): void {
    for (const w of this.#policyCache().warnings()) this.options.logger.warn(w);
  }

  /**
   * The certificate for an SNI; for SNI-less clients, that of the workloads
   * at the dialed address when they share one identity, else the default.
   */
  #servingCert(sni: string | undefined, localIp: string): ServingCert | undefined {
    const ids = this.identities();
    let id: string | undefined;
    if (isIdentitySni(sni)) id = ids.find((i) => sniForIdentity(i) === sni);
    if (!id && localIp !== this.#view.node.address) {
      const at = new Set(
        [...this.#view.workloads.values()].filter((w) => w.address === localIp).map((w) =>
          w.identity
        ),
      );
      if (at.size === 1) id = [...at][0];
    }
    id ??= this.#defaultIdentity(ids);
    if (!id) return undefined;
    const c = this.certs.peek(id);
    return c ? { certPem: c.certPem, keyPem: c.keyPem, serial: c.serial } : undefined;
  }

  /** The only identity, else that of the workloads on the node's own address, else the first. */
  #defaultIdentity(ids: string[]): string | undefined {
    if (ids.length <= 1) return ids[0];
    const onNode = new Set(
      [...this.#view.workloads.values()].filter((w) => w.address === this.#view.node.address)
        .map((w) => w.identity),
    );
    return onNode.size === 1 ? [...onNode][0] : ids[0];
  }

  #apply(): void {
    const log = this.options.logger;
    let next: LocalView;
    try {
      next = localView(this.options.store.current, this.options.node);
    } catch (e) {
      log.error("this node is no longer in the config; serving nothing", { error: e as Error });
      next = {
        node: this.#view.node,
        workloads: new Map(),
        byAddress: new Map(),
        knownPorts: new Map(),
      };
    }
    const d = diffViews(this.#view, next);
    for (const k of d.added) {
      log.info("workload enrolled", { workload: k, identity: next.workloads.get(k)!.identity });
    }
    for (const k of d.removed) log.info("workload left", { workload: k });
    for (const k of d.changed) log.info("workload changed", { workload: k });
    this.#view = next;
    this.certs.sync(this.identities());
    this.#logPolicyWarnings();
    const r = this.registry.recheck();
    if (r.closed.length > 0) {
      log.info("reload closed connections", { checked: r.checked, closed: r.closed.length });
    }
    this.#outbound?.apply().catch((e) =>
      log.error("outbound reconfiguration failed", { error: e })
    );
    if (this.#hbone) {
      this.#reconcileWorkloadListeners().catch((e) =>
        log.error("HBONE listener reconfiguration failed", { error: e })
      );
    }
    this.certs.idle().then(() => this.#refreshServers(), () => {});
  }

  /**
   * Graceful stop: readiness turns "not ready", listeners stop accepting,
   * HBONE clients get GOAWAY, and live connections may finish for up to
   * `drainMs`; then everything left is closed.
   */
  async shutdown(reason: string, drainMs = 0): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = reason;
    const log = this.options.logger;
    this.#offReload();
    clearInterval(this.#refreshTimer);
    this.#outbound?.close();
    this.#plaintext?.close();
    this.#socks5?.stopAccepting();
    this.#httpProxy?.stopAccepting();
    await this.#dns?.close();
    this.#dns = undefined;
    const draining = [
      ...[...this.#hboneByAddress.values()].map((srv) => srv.close(false)),
      this.#hbone?.close(false),
    ];
    if (drainMs > 0 && this.registry.size > 0) {
      log.info("draining connections", {
        connections: this.registry.size,
        deadlineMs: drainMs,
        oldest: this.registry.describe(),
      });
      const until = Date.now() + drainMs;
      while (this.registry.size > 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 50));
      }
      if (this.registry.size > 0) {
        log.warn("drain deadline passed; closing connections", {
          left: this.registry.size,
          oldest: this.registry.describe(),
        });
      }
    }
    if (this.registry.size === 0) {
      // Every tunnel is done, but a stream's last frames (its END_STREAM)
      // may still sit in a socket's write buffer: let the HBONE connections
      // end cleanly (GOAWAY, our end, the peer's close) before stopping.
      await settleWithin([...draining, this.pool.drain()], CLOSE_GRACE_MS);
    } else void Promise.allSettled(draining); // not awaited, but a rejection is handled
    await this.close();
  }

  async #closeHostListeners(): Promise<void> {
    const servers = [this.#dns, this.#socks5, this.#httpProxy];
    this.#dns = this.#socks5 = this.#httpProxy = undefined;
    await Promise.allSettled(servers.map((s) => s?.close()));
  }

  /** Stops listeners, connections, timers and the admin, metrics and readiness servers. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const step = (s: string) => this.options.logger.debug("closing", { step: s });
    this.#stopping ??= "closing";
    this.#offReload();
    clearInterval(this.#refreshTimer);
    this.#outbound?.close();
    this.#plaintext?.close();
    step("host listeners");
    await this.#closeHostListeners();
    step("connections");
    this.registry.closeAll("ztunnel stopping");
    this.pool.close();
    await this.#reconciling;
    step("HBONE listeners");
    await Promise.all([...this.#hboneByAddress.values()].map((s) => s.close(true)));
    this.#hboneByAddress.clear();
    await this.#hbone?.close(true);
    this.certs.close();
    step("metrics, admin and readiness");
    await this.#metrics?.close();
    await this.#admin?.close();
    await this.#readiness?.close();
    step("done");
  }
}

function describeRoots(z: Ztunnel) {
  return z.certs.roots.map((r) => ({
    subject: r.subject,
    serial: r.serialNumber,
    notAfter: r.notAfter.toISOString(),
  }));
}
