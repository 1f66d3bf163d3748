/**
 * The admin API (default 127.0.0.1:15000), built with hono. Local only: it
 * binds to a loopback address and refuses requests from anywhere else.
 *
 * @module
 */
import { Hono } from "hono";
import type { Logger } from "../log/logger.ts";
import { isLoopbackIp } from "../config/formats.ts";

/** What the admin API serves; each role fills in what it has. */
export interface AdminSources {
  /** `/certs`: identities held, serials and expiry. */
  certs?: () => unknown;
  /** `/config_dump`: effective snapshot and last reload error. */
  configDump?: () => unknown;
  /** `/stats/prometheus`: Prometheus text. */
  metrics?: () => string;
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
    return await next();
  });
  app.get("/", (c) =>
    c.json({
      endpoints: [
        ...(sources.certs ? ["/certs"] : []),
        ...(sources.configDump ? ["/config_dump"] : []),
        ...(sources.metrics ? ["/stats/prometheus"] : []),
      ],
    }));
  if (sources.certs) app.get("/certs", (c) => c.json(sources.certs!()));
  if (sources.configDump) app.get("/config_dump", (c) => c.json(sources.configDump!()));
  if (sources.metrics) {
    app.get(
      "/stats/prometheus",
      (c) =>
        c.body(sources.metrics!(), 200, {
          "content-type": "text/plain; version=0.0.4; charset=utf-8",
        }),
    );
  }
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
    onListen: () => {},
  }, (req, info) => app.fetch(req, { remote: (info.remoteAddr as Deno.NetAddr).hostname }));
  const addr = server.addr as Deno.NetAddr;
  o.logger?.info("admin API listening", { address: `${addr.hostname}:${addr.port}` });
  return {
    address: { hostname: addr.hostname, port: addr.port },
    close: () => server.shutdown(),
  };
}
