/**
 * The two endpoints other machines read: readiness (`/healthz/ready`,
 * default port 15021) and Prometheus metrics (`/metrics` and
 * `/stats/prometheus`, default port 15020). Unlike the admin API they are
 * meant to be reached from elsewhere (a load balancer, a scraper), so they
 * serve nothing but these.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { REUSE_PORT } from "../util/listen.ts";

/** Where a role stands: ready, or what it still waits for. */
export interface Readiness {
  readonly ready: boolean;
  /** What is pending, one line each (empty when ready). */
  readonly pending: readonly string[];
}

/** A running probe server. */
export interface ProbeServer {
  readonly address: { hostname: string; port: number };
  close(): Promise<void>;
}

/** Raised when a probe port cannot be bound. */
export class ProbeListenError extends Error {
  override readonly name = "ProbeListenError";
}

/** Prometheus text format content type. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Serves `GET /healthz/ready`: 200 `ready`, or 500 with one pending item per line. */
export function serveReadiness(
  status: () => Readiness,
  o: { hostname: string; port: number; logger?: Logger },
): ProbeServer {
  return serveProbe("readiness", o, (path) => {
    if (path !== "/healthz/ready") return undefined;
    const r = status();
    return r.ready
      ? new Response("ready\n", { status: 200, headers: { "content-type": "text/plain" } })
      : new Response(`not ready:\n${r.pending.map((p) => `- ${p}\n`).join("")}`, {
        status: 500,
        headers: { "content-type": "text/plain" },
      });
  });
}

/** Serves Prometheus text on `/metrics` and `/stats/prometheus`. */
export function serveMetrics(
  render: () => string,
  o: { hostname: string; port: number; logger?: Logger },
): ProbeServer {
  return serveProbe("metrics", o, (path) => {
    if (path !== "/metrics" && path !== "/stats/prometheus") return undefined;
    return new Response(render(), { headers: { "content-type": PROMETHEUS_CONTENT_TYPE } });
  });
}

function serveProbe(
  what: string,
  o: { hostname: string; port: number; logger?: Logger },
  route: (path: string) => Response | undefined,
): ProbeServer {
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: o.hostname,
      port: o.port,
      reusePort: REUSE_PORT,
      onListen: () => {},
    }, (req) => {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return new Response("only GET\n", { status: 405, headers: { allow: "GET, HEAD" } });
      }
      const res = route(new URL(req.url).pathname);
      if (!res) return new Response(`no ${what} endpoint here\n`, { status: 404 });
      return res;
    });
  } catch (e) {
    const why = e instanceof Deno.errors.PermissionDenied
      ? "ports below 1024 need CAP_NET_BIND_SERVICE (see deploy/systemd/README.md)"
      : e instanceof Deno.errors.AddrNotAvailable
      ? "the address is not on this host"
      : e instanceof Deno.errors.AddrInUse
      ? "another program holds it ('ambit check' names it)"
      : "another process uses it, or the address is not local";
    throw new ProbeListenError(
      `cannot serve ${what} on ${o.hostname}:${o.port}: ${(e as Error).message} ` +
        `(${why}: pass --${what} HOST:PORT or --${what} off)`,
    );
  }
  const addr = server.addr;
  o.logger?.info(`${what} listening`, { address: `${addr.hostname}:${addr.port}` });
  return {
    address: { hostname: addr.hostname, port: addr.port },
    close: () => server.shutdown(),
  };
}
