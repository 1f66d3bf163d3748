/**
 * The ztunnel role on one node: follows the config, keeps certificates for
 * the node's enrolled workloads, serves the admin API.
 *
 * @module
 */
import { dumpSnapshot } from "../config/dump.ts";
import type { ConfigStore } from "../config/store.ts";
import { type AdminServer, serveAdmin } from "../admin/admin.ts";
import type { CertificateSource } from "../identity/ca_client.ts";
import { CertManager } from "../identity/cert_manager.ts";
import type { Logger } from "../log/logger.ts";
import { diffViews, type LocalView, localView } from "./local_view.ts";
import { certManagerFamilies } from "../identity/metrics.ts";
import { renderPrometheus } from "../telemetry/prometheus.ts";

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
}

/** A running ztunnel. */
export class Ztunnel {
  #view: LocalView;
  readonly certs: CertManager;
  #admin?: AdminServer;
  #offReload: () => void;

  private constructor(readonly options: ZtunnelOptions) {
    this.#view = localView(options.store.current, options.node);
    this.certs = new CertManager({
      source: options.certSource,
      logger: options.logger,
      bundlePem: options.bundlePem,
    });
    this.#offReload = options.store.onReload((o) => {
      if (o.applied) this.#apply();
    });
  }

  /** Starts the role; throws UnknownNodeError when the node is not in the config. */
  static start(options: ZtunnelOptions): Ztunnel {
    const z = new Ztunnel(options);
    z.certs.sync(z.identities());
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

  /** The node's current view. */
  get view(): LocalView {
    return this.#view;
  }

  /** SPIFFE IDs of the enrolled workloads on this node. */
  identities(): string[] {
    return [...new Set([...this.#view.workloads.values()].map((w) => w.identity))];
  }

  /** The admin server's address, when it runs. */
  get adminAddress(): { hostname: string; port: number } | undefined {
    return this.#admin?.address;
  }

  #apply(): void {
    const log = this.options.logger;
    let next: LocalView;
    try {
      next = localView(this.options.store.current, this.options.node);
    } catch (e) {
      log.error("this node is no longer in the config; serving nothing", { error: e as Error });
      this.#view = { node: this.#view.node, workloads: new Map() };
      this.certs.sync([]);
      return;
    }
    const d = diffViews(this.#view, next);
    for (const k of d.added) {
      log.info("workload enrolled", { workload: k, identity: next.workloads.get(k)!.identity });
    }
    for (const k of d.removed) log.info("workload left", { workload: k });
    for (const k of d.changed) log.info("workload changed", { workload: k });
    this.#view = next;
    this.certs.sync(this.identities());
  }

  /** Stops timers and the admin server. */
  async close(): Promise<void> {
    this.#offReload();
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
