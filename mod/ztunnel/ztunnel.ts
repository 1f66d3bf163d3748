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
import { type AdminServer, serveAdmin } from "../admin/admin.ts";
import type { CertificateSource } from "../identity/ca_client.ts";
import { CertManager } from "../identity/cert_manager.ts";
import type { Logger } from "../log/logger.ts";
import { HbonePool } from "../hbone/pool.ts";
import { HboneServer, type HboneServerOptions, type ServingCert } from "../hbone/server.ts";
import { HBONE_PORT, type KeepaliveOptions, PLAINTEXT_PORT } from "../hbone/settings.ts";
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

  private constructor(readonly options: ZtunnelOptions) {
    this.#view = localView(options.store.current, options.node);
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
    z.certs.sync(z.identities());
    try {
      if (options.dataPlane !== false) await z.#startDataPlane();
    } catch (e) {
      await z.close();
      throw e;
    }
    z.#logPolicyWarnings();
    if (options.admin) {
      z.#admin = serveAdmin({
        certs: () => ({
          node: options.node,
          identities: z.certs.list(),
          trustBundle: describeRoots(z),
        }),
        metrics: () => renderPrometheus(certManagerFamilies(z.certs)),
        configDump: () => ({
          generation: options.store.generation,
          lastReloadError: options.store.lastFailure,
          ...dumpSnapshot(options.store.current, { node: options.node }),
        }),
      }, { ...options.admin, logger: options.logger });
    }
    return z;
  }

  async #startDataPlane(): Promise<void> {
    const log = this.options.logger;
    const node = this.#view.node;
    const ports = this.options.ports ?? {};
    const ctx: InboundContext = {
      logger: log.child({ component: "inbound" }),
      view: () => this.#view,
      policies: () => this.#policyCache(),
      connectTimeoutMs: () => this.#connectTimeoutMs(),
      isHostAddress: (ip) => this.#hostAddresses.has(ip),
      registry: this.registry,
    };
    this.#inbound = ctx;
    this.#hbone = await HboneServer.listen(this.#hboneOptions(node.address));
    await this.#reconcileWorkloadListeners();
    this.#plaintext = await servePlaintext(
      { ...ctx, snapshot: () => this.options.store.current },
      { ip: node.address, port: ports.plaintext ?? PLAINTEXT_PORT },
    );
    this.#outbound = new Outbound({
      logger: log.child({ component: "outbound" }),
      snapshot: () => this.options.store.current,
      view: () => this.#view,
      pool: this.pool,
      registry: this.registry,
    });
    await this.#outbound.apply();
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

  /** Stops listeners, connections, timers and the admin server. */
  async close(): Promise<void> {
    this.#offReload();
    clearInterval(this.#refreshTimer);
    this.#outbound?.close();
    this.#plaintext?.close();
    this.registry.closeAll("ztunnel stopping");
    this.pool.close();
    await this.#reconciling;
    await Promise.all([...this.#hboneByAddress.values()].map((s) => s.close(true)));
    this.#hboneByAddress.clear();
    await this.#hbone?.close(true);
    this.certs.close();
    await this.#admin?.close();
  }
}

function describeRoots(z: Ztunnel) {
  return z.certs.roots.map((r) => ({
    subject: r.subject,
    serial: r.serialNumber,
    notAfter: r.notAfter.toISOString(),
  }));
}
