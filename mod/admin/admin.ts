/**
 * The admin API (default 127.0.0.1:15000), built with hono. Local only: it
 * binds to a loopback address and refuses requests from anywhere else.
 *
 * @module
 */
import { isIP } from "node:net";
import { Hono } from "hono";
import { type Logger, parseLevel } from "../log/logger.ts";
import { isLoopbackIp } from "../config/formats.ts";
import { PROMETHEUS_CONTENT_TYPE } from "./probes.ts";
import { REUSE_PORT } from "../util/listen.ts";

/** What the admin API serves; each role fills in what it has. */
export interface AdminSources {
  /** `/certs`: identities held, serials and expiry. */
  certs?: () => unknown;
  /** `/config_dump`: effective snapshot and last reload error. */
  configDump?: () => unknown;
  /** `/stats/prometheus`: Prometheus text. */
  metrics?: () => string;
  /** `/workloads`: the node's workloads. */
  workloads?: () => unknown;
  /** `/services`: services and their endpoints. */
  services?: () => unknown;
  /** `/policies`: policies in force per workload. */
  policies?: () => unknown;
  /** `/ready`: readiness, as the readiness port reports it. */
  ready?: () => { ready: boolean; pending: readonly string[] };
  /** `/logging`: the logger whose level `POST /logging?level=debug` changes. */
  logger?: Logger;
  /** `POST /quitquitquit`: start a graceful stop. */
  quit?: () => void;
  /** Which role and instance this process is, reported with `/ready` and `/`. */
  owner?: AdminOwner;
}

/** The role and instance behind an admin address (e.g. ztunnel node-a). */
export interface AdminOwner {
  /** "ztunnel", "waypoint" or "ca". */
  readonly role: string;
  /** The node, the waypoint's namespace/name, or the CA's trust domain. */
  readonly name: string;
}

/** Raised when the admin address is not a loopback address. */
export class AdminAddressError extends Error {
  override readonly name = "AdminAddressError";
}

/** Builds the admin app (testable with `app.request()`). */
export function adminApp(sources: AdminSources): Hono<{ Bindings: { remote?: string } }> {
  const app = new Hono<{ Bindings: { remote?: string } }>();
  app.use("*", async (c, next) => {
    const remote = c.env?.remote;
    if (remote !== undefined && !isLoopbackIp(remote)) {
      return c.json({ error: "the admin API answers only on localhost" }, 403);
    }
    // A web page the operator opens cannot reach it by a name that resolves to loopback.
    const host = (c.req.header("host") ?? "").replace(/:[0-9]+$/, "").replace(/^\[|\]$/g, "");
    if (host !== "" && host !== "localhost" && !(isIP(host) !== 0 && isLoopbackIp(host))) {
      return c.json({
        error: `the admin API answers only to Host localhost or a loopback address (got ${host})`,
      }, 403);
    }
    return await next();
  });
  const json = (name: string, f?: () => unknown) => {
    if (f) app.get(`/${name}`, (c) => c.json(f()));
    return f ? [`/${name}`] : [];
  };
  const endpoints = [
    ...json("certs", sources.certs),
    ...json("config_dump", sources.configDump),
    ...json("workloads", sources.workloads),
    ...json("services", sources.services),
    ...json("policies", sources.policies),
    // The pid tells two processes apart while an upgrade shares the port (SO_REUSEPORT).
    ...json(
      "ready",
      sources.ready && (() => ({ ...sources.ready!(), pid: Deno.pid, ...sources.owner })),
    ),
  ];
  if (sources.metrics) {
    endpoints.push("/stats/prometheus");
    app.get(
      "/stats/prometheus",
      (c) => c.body(sources.metrics!(), 200, { "content-type": PROMETHEUS_CONTENT_TYPE }),
    );
  }
  const logger = sources.logger;
  if (logger) {
    endpoints.push("/logging");
    app.get("/logging", (c) => c.json({ level: logger.level }));
    app.post("/logging", (c) => {
      const want = c.req.query("level");
      const level = want === undefined ? undefined : parseLevel(want);
      if (!level) {
        return c.json({
          error: `level must be one of error, warn, info, debug, trace (got ${
            want === undefined ? "none" : JSON.stringify(want)
          })`,
          usage: "POST /logging?level=debug",
        }, 400);
      }
      const from = logger.level;
      logger.setLevel(level);
      logger.info("log level changed", { from, to: level });
      return c.json({ level, previous: from });
    });
  }
  const quit = sources.quit;
  if (quit) {
    endpoints.push("/quitquitquit");
    app.post("/quitquitquit", (c) => {
      queueMicrotask(quit);
      return c.text("stopping\n");
    });
    app.get("/quitquitquit", (c) => c.json({ error: "use POST /quitquitquit" }, 405));
  }
  app.get("/", (c) => c.json({ ...sources.owner, pid: Deno.pid, endpoints }));
  app.notFound((c) => c.json({ error: `no admin endpoint ${new URL(c.req.url).pathname}` }, 404));
  return app;
}

/** A running admin server. */
export interface AdminServer {
  readonly address: { hostname: string; port: number };
  close(): Promise<void>;
}

/** Serves the admin API on a loopback `hostname:port`; binds before returning. */
export function serveAdmin(
  sources: AdminSources,
  o: { hostname: string; port: number; logger?: Logger },
): AdminServer {
  if (!isLoopbackIp(o.hostname) && o.hostname !== "localhost") {
    throw new AdminAddressError(
      `admin address ${o.hostname} is not a loopback address; the admin API is local only`,
    );
  }
  const app = adminApp(sources);
  const server = Deno.serve({
    hostname: o.hostname,
    port: o.port,
    // Shared with the next process during a zero-downtime upgrade (see mod/util/listen.ts).
    reusePort: REUSE_PORT,
    onListen: () => {},
  }, (req, info) => app.fetch(req, { remote: (info.remoteAddr as Deno.NetAddr).hostname }));
  const addr = server.addr as Deno.NetAddr;
  o.logger?.info("admin API listening", { address: `${addr.hostname}:${addr.port}` });
  return {
    address: { hostname: addr.hostname, port: addr.port },
    close: () => server.shutdown(),
  };
}
