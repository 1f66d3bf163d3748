/**
 * `ambit ztunnel` and `ambit waypoint`: start a node role on a mesh config,
 * follow reloads, stop on SIGTERM/SIGINT.
 *
 * @module
 */
import { ConfigStore } from "../config/store.ts";
import { localView, UnknownNodeError } from "../ztunnel/local_view.ts";
// The roles are loaded only by the command that runs them: a ztunnel does
// not carry the waypoint's code (routes, JWT) in memory, nor the reverse.
import type { Ztunnel } from "../ztunnel/ztunnel.ts";
import type { Waypoint } from "../waypoint/waypoint.ts";
import { adminAddress, certSource, IDENTITY_OPTIONS } from "./identity_opts.ts";
import { type Command, type Context, EXIT_OK, requireOption, UsageError } from "./command.ts";
import { untilStopSignal } from "./signals.ts";
import { drainMs, listenFlag, ZTUNNEL_LISTEN_OPTIONS } from "./node_opts.ts";
import { type AccessLog, accessLog } from "../telemetry/access_log.ts";
import { TcpMetrics } from "../telemetry/tcp_metrics.ts";
import { AdminInUseError, claimAdminAddress } from "../admin/owner.ts";
import type { AdminOwner } from "../admin/admin.ts";
import type { Logger } from "../log/logger.ts";

/** How long a process taking over from a running one waits for its certificates before binding. */
const TAKEOVER_CERT_WAIT_MS = 30_000;

/**
 * {@link claimAdminAddress}, with a conflict reported as a usage error (exit
 * 2); returns how long to wait for certificates when taking over.
 */
async function claimAdmin(
  at: { hostname: string; port: number },
  me: AdminOwner,
  logger: Logger,
): Promise<number | undefined> {
  try {
    // Taking over from a running process of the same instance: certificates first.
    return (await claimAdminAddress(at, me, logger)) ? TAKEOVER_CERT_WAIT_MS : undefined;
  } catch (e) {
    if (e instanceof AdminInUseError) throw new UsageError(e.message);
    throw e;
  }
}

/** Istio's TCP metrics, recorded unless `--metrics off`. */
function tcpMetrics(ctx: Context): TcpMetrics {
  const m = new TcpMetrics();
  m.enabled = ctx.options.metrics !== "off";
  return m;
}
import { METRICS_PORT, READINESS_PORT } from "../hbone/settings.ts";

const configOption = {
  config: {
    type: "string",
    short: "c",
    arg: "PATH",
    description: "mesh config file or directory (watched; SIGHUP reloads)",
  },
} as const;

/** `ambit ztunnel`. */
export const ztunnelCommand: Command = {
  name: "ztunnel",
  summary: "Run the per-host L4 proxy (identity, mTLS via HBONE, L4 policy) for one node",
  options: {
    ...configOption,
    node: {
      type: "string",
      short: "n",
      arg: "NAME",
      description: "this host's Node name in the config",
    },
    ...IDENTITY_OPTIONS,
    ...ZTUNNEL_LISTEN_OPTIONS,
  },
  description: `
Loads the mesh config, keeps it current (file changes and SIGHUP reload it;
an invalid change is rejected and the last good config stays in force),
obtains and renews certificates for the enrolled workloads placed on --node,
and runs the data plane: the HBONE server on the node's address :15008
(mutual TLS 1.3, HTTP/2 CONNECT, L4 authorization), plaintext inbound on
:15006 (PERMISSIVE only), and userspace outbound capture on Service VIPs and
Node spec.outbound.ports. Apps that honour ALL_PROXY or HTTPS_PROXY reach
the mesh through the SOCKS5 (--socks5) and HTTP (--http-proxy) proxies, and
mesh names resolve through the DNS proxy (--dns). Metrics (Istio's TCP
metrics) are on --metrics, readiness on --readiness, and the admin API
(/config_dump, /workloads, /services, /policies, /certs, /logging,
/quitquitquit) on --admin. SIGTERM or POST /quitquitquit stop gracefully:
readiness turns 500, listeners close, live connections get --drain to finish.`,
  examples: [
    "ambit ztunnel --config /etc/ambit/mesh --node node-a --credential /etc/ambit/node",
    "ambit ztunnel --config /etc/ambit/mesh --node node-a --credential /etc/ambit/node --access-log /var/log/ambit/access.log",
    "ambit ztunnel --config config/lab --node node-a --ca-dir ./lab-ca   # lab only",
  ],
  async run(ctx) {
    const path = requireOption(ctx, "config");
    const node = requireOption(ctx, "node");
    const admin = adminAddress(ctx);
    const drain = drainMs(ctx);
    // Every flag is checked before anything starts.
    const hostPorts = {
      dns: listenFlag(ctx, "dns"),
      socks5: listenFlag(ctx, "socks5"),
      httpProxy: listenFlag(ctx, "http-proxy"),
    };
    listenFlag(ctx, "metrics");
    listenFlag(ctx, "readiness");
    const logger = ctx.logger.child({ role: "ztunnel", node });
    const store = await ConfigStore.open(path, { logger, sighup: true });
    let z: Ztunnel | undefined;
    let closeSource = () => {};
    let access: AccessLog | undefined;
    let quit!: () => void;
    const quitRequested = new Promise<string>((r) => quit = () => r("POST /quitquitquit"));
    try {
      if (!store.current.nodes.has(node)) localView(store.current, node); // throws with the node list
      const nodeAddress = store.current.nodes.get(node)!.address;
      access = accessLog({
        target: ctx.options["access-log"] as string,
        format: ctx.options["log-format"] === "json" ? "json" : "text",
        logger,
      });
      const takeoverMs = admin
        ? await claimAdmin(admin, { role: "ztunnel", name: node }, logger)
        : undefined;
      const src = await certSource(ctx, store.current, logger);
      closeSource = src.close;
      const { Ztunnel } = await import("../ztunnel/ztunnel.ts");
      z = await Ztunnel.start({
        store,
        node,
        certSource: src.source,
        bundlePem: src.bundlePem,
        logger,
        admin,
        metrics: listenFlag(ctx, "metrics", { hostname: nodeAddress, port: METRICS_PORT }),
        readiness: listenFlag(ctx, "readiness", { hostname: nodeAddress, port: READINESS_PORT }),
        ...hostPorts,
        telemetry: { metrics: tcpMetrics(ctx), access: access.write },
        onQuit: quit,
        takeoverMs,
      });
    } catch (e) {
      closeSource();
      access?.close();
      await store.close();
      if (e instanceof UnknownNodeError) throw new UsageError(e.message);
      throw e;
    }
    logger.info("config loaded", {
      generation: store.generation,
      workloads: [...z.view.workloads.keys()].join(",") || "none",
    });
    const reason = await Promise.race([untilStopSignal(logger), quitRequested]);
    await z.shutdown(reason, drain);
    closeSource();
    access.close();
    await store.close();
    logger.info("stopped", { reason });
    return EXIT_OK;
  },
};

/** `ambit waypoint`. */
export const waypointCommand: Command = {
  name: "waypoint",
  summary: "Run an L7 waypoint proxy for the services and namespaces bound to it",
  options: {
    ...configOption,
    name: {
      type: "string",
      arg: "NS/NAME",
      description: "the waypoint's Gateway (class istio-waypoint) as namespace/name",
    },
    ...IDENTITY_OPTIONS,
    metrics: ZTUNNEL_LISTEN_OPTIONS.metrics,
    readiness: ZTUNNEL_LISTEN_OPTIONS.readiness,
    "access-log": {
      type: "string",
      arg: "stderr|off",
      description: "one record per request, with the logs (stderr) or off",
      default: "stderr",
      choices: ["stderr", "off"],
    },
    drain: ZTUNNEL_LISTEN_OPTIONS.drain,
    "otlp-endpoint": {
      type: "string",
      arg: "URL",
      description:
        "export one span per request as OTLP/HTTP JSON to URL/v1/traces (e.g. http://127.0.0.1:4318)",
    },
    "trace-sampling": {
      type: "string",
      arg: "PERCENT",
      description: "share of new traces sampled (a caller's traceparent decides for its own)",
      default: "100",
    },
  },
  description: `
Loads the mesh config and follows reloads, obtains and renews the waypoint's
certificate (spiffe://<td>/ns/<namespace>/sa/<gateway name>, as Istio's
waypoints) and serves HBONE on the Gateway's address and port (15008) for
the services (istio.io/use-waypoint) and workloads bound to it. HTTP/1.1,
h2c and gRPC inside the tunnels go through the L7 path; other bytes are
passed through. Request metrics (istio_requests_total, ...) are on
--metrics, readiness on --readiness, the admin API on --admin. The
credential is the credential of the Node the Gateway names (annotation
ambit.io/node).`,
  examples: [
    "ambit waypoint --config /etc/ambit/mesh --name shop/waypoint --credential /etc/ambit/node",
  ],
  async run(ctx) {
    const path = requireOption(ctx, "config");
    const name = requireOption(ctx, "name");
    if (!/^[^/]+\/[^/]+$/.test(name)) {
      throw new UsageError(`--name must be namespace/name, got "${name}"`);
    }
    const admin = adminAddress(ctx);
    const drain = drainMs(ctx);
    listenFlag(ctx, "metrics");
    listenFlag(ctx, "readiness");
    const sampling = Number(ctx.options["trace-sampling"]);
    if (!Number.isFinite(sampling) || sampling < 0 || sampling > 100) {
      throw new UsageError(
        `--trace-sampling "${ctx.options["trace-sampling"]}" is not a percentage from 0 to 100`,
      );
    }
    const otlp = ctx.options["otlp-endpoint"] as string | undefined;
    if (otlp !== undefined && !/^https?:\/\/[^/]+/.test(otlp)) {
      throw new UsageError(`--otlp-endpoint "${otlp}" is not an http:// or https:// URL`);
    }
    const logger = ctx.logger.child({ role: "waypoint", waypoint: name });
    const store = await ConfigStore.open(path, { logger, sighup: true });
    let src;
    let w: Waypoint;
    let quit!: () => void;
    const quitRequested = new Promise<string>((r) => quit = () => r("POST /quitquitquit"));
    try {
      const wp = store.current.waypoints.get(name);
      if (!wp) {
        const known = [...store.current.waypoints.keys()].join(", ") || "none";
        throw new UsageError(
          `waypoint "${name}" is not in the config (waypoints: ${known}); add a Gateway with gatewayClassName istio-waypoint`,
        );
      }
      const takeoverMs = admin
        ? await claimAdmin(admin, { role: "waypoint", name }, logger)
        : undefined;
      src = await certSource(ctx, store.current, logger);
      const requests = logger.child({ component: "access" });
      const { Waypoint } = await import("../waypoint/waypoint.ts");
      w = await Waypoint.start({
        store,
        name,
        certSource: src.source,
        bundlePem: src.bundlePem,
        logger,
        admin,
        metrics: listenFlag(ctx, "metrics", { hostname: wp.address, port: METRICS_PORT }),
        readiness: listenFlag(ctx, "readiness", { hostname: wp.address, port: READINESS_PORT }),
        accessLog: ctx.options["access-log"] === "off"
          ? undefined
          : (r) => requests.info("request", r),
        onQuit: quit,
        otlpEndpoint: otlp,
        takeoverMs,
        traceSampling: sampling / 100,
      });
      logger.info("config loaded", {
        generation: store.generation,
        address: `${wp.address}:${wp.port}`,
        identity: wp.identity,
        services: w.boundServices().join(",") || "none",
      });
    } catch (e) {
      src?.close();
      await store.close();
      throw e;
    }
    const reason = await Promise.race([untilStopSignal(logger), quitRequested]);
    await w.shutdown(reason, drain);
    src.close();
    await store.close();
    logger.info("stopped", { reason });
    return EXIT_OK;
  },
};
