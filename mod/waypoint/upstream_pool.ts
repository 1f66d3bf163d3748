/**
 * Reuse of the waypoint's connections to endpoints: per endpoint and port,
 * an HTTP/1.1 keep-alive agent whose sockets are HBONE streams, and one
 * HTTP/2 session (gRPC, h2c) carried on one HBONE stream. A request then
 * costs no new tunnel and no new connection to the app. Pooled tunnels
 * carry the waypoint itself as the client (`forwarded`), as Istio's
 * waypoint connects from its own address; the app learns the original
 * client from `x-forwarded-for`.
 *
 * @module
 */
import http from "node:http";
import http2 from "node:http2";
import type { Duplex } from "node:stream";
import type { Endpoint, ServiceInfo, Snapshot, WaypointInfo } from "../config/snapshot.ts";
import type { HbonePool } from "../hbone/pool.ts";
import { type EndpointConnection, openEndpoint } from "./upstream.ts";

/** What opening a connection needs. */
export interface UpstreamPoolEnv {
  snapshot(): Snapshot;
  waypoint(): WaypointInfo;
  readonly pool: HbonePool;
  connectTimeout(): string;
}

/** An HTTP agent whose connections are HBONE streams to one endpoint. */
/** Listeners node:http leaves behind on a reused socket: [event, function name]. */
const STALE_LISTENERS: readonly [string, string][] = [
  ["error", "freeSocketErrorListener"],
  ["timeout", "emitRequestTimeout"],
];

class TunnelAgent extends http.Agent {
  constructor(readonly open: () => Promise<EndpointConnection>) {
    super({ keepAlive: true, maxSockets: 64, maxFreeSockets: 16, timeout: 60_000 });
  }

  /** Opens a tunnel; answers through `cb` (Node's asynchronous form: no socket is returned). */
  override createConnection(
    _options: http.ClientRequestArgs,
    cb?: (err: Error | null, stream: Duplex) => void,
  ): Duplex {
    this.open().then((c) => {
      // The app ended its side (e.g. its keep-alive timeout closed an idle
      // connection): the agent only drops sockets that close, and a tunnel
      // stream stays half-open, so close it here, after the parser saw the end.
      c.stream.once("end", () => queueMicrotask(() => c.stream.destroy()));
      cb?.(null, c.stream);
    }, (e) => cb?.(e as Error, undefined as never));
    return undefined as unknown as Duplex;
  }

  // Tunnel streams are not TCP sockets: no setKeepAlive/unref/ref.
  override keepSocketAlive(_socket: unknown): boolean {
    return true;
  }

  /**
   * Deno's node:http leaves a request's listeners on a kept-alive socket
   * (an error listener added when it goes back to the free list, and the
   * request-timeout listener): a tunnel carried one more of each per request,
   * about 900 after 1,000 requests. Drop the stale ones, as Node does, before
   * the next request adds its own.
   */
  override reuseSocket(socket: Duplex, _req: unknown): void {
    for (const [event, name] of STALE_LISTENERS) {
      for (const l of socket.listeners(event)) {
        if ((l as { name?: string }).name === name) {
          socket.removeListener(event, l as (...args: unknown[]) => void);
        }
      }
    }
  }
}

/** Upstream agents and sessions by endpoint. */
export class UpstreamPool {
  #agents = new Map<string, TunnelAgent>();
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

  /** The keep-alive agent for HTTP/1.1 to `ep`'s port for service port `port`. */
  agent(svc: ServiceInfo, ep: Endpoint, port: number): http.Agent {
    const key = `${ep.workload}|${ep.address}:${ep.ports[port]}|${svc.key}`;
    let a = this.#agents.get(key);
    if (!a) {
      a = new TunnelAgent(this.#opener(svc, ep, port));
      this.#agents.set(key, a);
    }
    return a;
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
    for (const a of this.#agents.values()) a.destroy();
    this.#agents.clear();
    for (const p of this.#sessions.values()) p.then((s) => s.destroy(), () => {});
    this.#sessions.clear();
  }
}
