/**
 * Reuse of the waypoint's connections to endpoints: per endpoint and port,
 * a pool of HTTP/1.1 keep-alive connections carried on HBONE streams
 * (http1_client.ts), and one
 * HTTP/2 session (gRPC, h2c) carried on one HBONE stream. A request then
 * costs no new tunnel and no new connection to the app. Pooled tunnels
 * carry the waypoint itself as the client (`forwarded`), as Istio's
 * waypoint connects from its own address; the app learns the original
 * client from `x-forwarded-for`.
 *
 * @module
 */
import http2 from "node:http2";
import type { Endpoint, ServiceInfo, Snapshot, WaypointInfo } from "../config/snapshot.ts";
import type { HbonePool } from "../hbone/pool.ts";
import { type EndpointConnection, openEndpoint } from "./upstream.ts";
import { Http1Pool } from "./http1_client.ts";

/** What opening a connection needs. */
export interface UpstreamPoolEnv {
  snapshot(): Snapshot;
  waypoint(): WaypointInfo;
  readonly pool: HbonePool;
  connectTimeout(): string;
}

/** Upstream connection pools and sessions by endpoint. */
export class UpstreamPool {
  #h1 = new Map<string, Http1Pool>();
  #sessions = new Map<string, Promise<http2.ClientHttp2Session>>();

  constructor(readonly env: UpstreamPoolEnv) {}

  #opener(svc: ServiceInfo, ep: Endpoint, port: number): () => Promise<EndpointConnection> {
    return () => {
      const wp = this.env.waypoint();
      return openEndpoint(
        {
          snapshot: this.env.snapshot(),
          waypoint: wp,
          pool: this.env.pool,
          connectTimeout: this.env.connectTimeout(),
          client: { ip: wp.address, port: 0 },
        },
        svc,
        ep,
        port,
      );
    };
  }

  /** The keep-alive HTTP/1.1 connections to `ep`'s port for service port `port`. */
  h1(svc: ServiceInfo, ep: Endpoint, port: number): Http1Pool {
    const key = `${ep.workload}|${ep.address}:${ep.ports[port]}|${svc.key}`;
    let p = this.#h1.get(key);
    if (!p) {
      const open = this.#opener(svc, ep, port);
      p = new Http1Pool(() => open().then((c) => c.stream), { maxIdle: 16, idleMs: 60_000 });
      this.#h1.set(key, p);
    }
    return p;
  }

  /** HTTP/1.1 connections toward apps: open now, and opened in all. */
  h1Stats(): { open: number; opened: number } {
    let open = 0;
    let opened = 0;
    for (const p of this.#h1.values()) {
      open += p.size;
      opened += p.opened;
    }
    return { open, opened };
  }

  /** A shared HTTP/2 session to `ep` (opened on first use, replaced when it closes). */
  session(
    svc: ServiceInfo,
    ep: Endpoint,
    port: number,
    authority: string,
  ): Promise<http2.ClientHttp2Session> {
    const key = `${ep.workload}|${ep.address}:${ep.ports[port]}|${svc.key}`;
    const have = this.#sessions.get(key);
    if (have) return have;
    const p = this.#opener(svc, ep, port)().then((conn) => {
      const s = http2.connect(`http://${authority || "upstream"}`, {
        createConnection: () => conn.stream,
      } as unknown as http2.SecureClientSessionOptions);
      s.on("error", () => {});
      const forget = () => {
        if (this.#sessions.get(key) === p) this.#sessions.delete(key);
      };
      s.once("close", forget);
      s.once("goaway", forget);
      conn.stream.once("close", forget);
      return s;
    });
    p.catch(() => {
      if (this.#sessions.get(key) === p) this.#sessions.delete(key);
    });
    this.#sessions.set(key, p);
    return p;
  }

  /** Forgets the session to `ep` (after it failed). */
  dropSession(svc: ServiceInfo, ep: Endpoint, port: number): void {
    const key = `${ep.workload}|${ep.address}:${ep.ports[port]}|${svc.key}`;
    const p = this.#sessions.get(key);
    this.#sessions.delete(key);
    p?.then((s) => s.destroy(), () => {});
  }

  /** Closes every pooled connection. */
  close(): void {
    for (const p of this.#h1.values()) p.destroy();
    this.#h1.clear();
    for (const p of this.#sessions.values()) p.then((s) => s.destroy(), () => {});
    this.#sessions.clear();
  }
}
