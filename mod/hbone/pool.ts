/**
 * The HBONE client: a pool of mutual-TLS HTTP/2 connections keyed by
 * (source identity, expected destination identities, next hop), carrying
 * many CONNECT streams each (up to a cap, then another connection). Concurrent
 * first requests for one key share one handshake; connections without
 * streams close after an idle period; PINGs find dead peers.
 *
 * @module
 */
import http2 from "node:http2";
import tls from "node:tls";
import type { Duplex } from "node:stream";
import type { Logger } from "../log/logger.ts";
import { spiffeIdOf, x509 } from "../identity/certs.ts";
import { secureContextOptions, type TlsIdentity } from "../identity/tls.ts";
import { formatAuthority, type HostPort } from "./authority.ts";
import { TunnelError } from "./errors.ts";
import {
  CLIENT_SETTINGS,
  CONNECTION_WINDOW,
  DEFAULT_KEEPALIVE,
  type KeepaliveOptions,
} from "./settings.ts";
import { keepalive } from "./server.ts";
import { sniForIdentity } from "./sni.ts";

/** What to open a tunnel to, and as whom. */
export interface TunnelRequest {
  /** The local workload's SPIFFE ID (its certificate is the client certificate). */
  readonly source: string;
  /** Server identities accepted (the destination workload's or the waypoint's). */
  readonly expected: readonly string[];
  /** The peer's HBONE address (node or waypoint, port 15008). */
  readonly nextHop: HostPort;
  /** `:authority`: the destination `ip:port`. */
  readonly authority: string;
  /** Extra request headers (forwarded, baggage, traceparent). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** An open tunnel: the stream to relay on and who answered. */
export interface ClientTunnel {
  readonly stream: Duplex;
  readonly peerIdentity: string;
  /** Whether this tunnel made a new connection (false: reused a pooled one). */
  readonly newConnection: boolean;
}

/** Options for {@link HbonePool}. */
export interface HbonePoolOptions {
  readonly logger: Logger;
  /** The client certificate for a source identity. */
  certificate(id: string): Promise<TlsIdentity>;
  /** Trust bundle, PEM. */
  rootsPem(): string;
  /** Streams per connection before another is opened (default 100). */
  readonly maxStreamsPerConnection?: number;
  /** Close connections without streams after this long (default 5 min). */
  readonly idleTimeoutMs?: number;
  /** TCP connect + TLS handshake deadline (default 10 s). */
  readonly connectTimeoutMs?: number;
  readonly keepalive?: KeepaliveOptions;
}

interface Conn {
  readonly key: string;
  streams: number;
  maxStreams: number;
  dead: boolean;
  ready: Promise<http2.ClientHttp2Session>;
  session?: http2.ClientHttp2Session;
  peerIdentity?: string;
  idle?: ReturnType<typeof setTimeout>;
}

/** Counters for the admin API and tests. */
export interface HbonePoolStats {
  handshakes: number;
  handshakeFailures: number;
  streamsOpened: number;
}

/** A pool of HBONE client connections. */
export class HbonePool {
  #conns = new Map<string, Conn[]>();
  #closed = false;
  readonly stats: HbonePoolStats = { handshakes: 0, handshakeFailures: 0, streamsOpened: 0 };

  constructor(readonly options: HbonePoolOptions) {}

  /** Open connections, over all keys. */
  get connections(): number {
    let n = 0;
    for (const list of this.#conns.values()) n += list.filter((c) => !c.dead).length;
    return n;
  }

  /** Streams open over all connections. */
  get openStreams(): number {
    let n = 0;
    for (const list of this.#conns.values()) for (const c of list) n += c.streams;
    return n;
  }

  /**
   * Opens a CONNECT stream; resolves once the peer answered 200. Rejects
   * with a {@link TunnelError}: `peer_status` (with the status) when the
   * peer refused, `identity_mismatch`, `tls_failure` or `connect_failed`.
   */
  async open(req: TunnelRequest): Promise<ClientTunnel> {
    if (this.#closed) throw new TunnelError("connect_failed", "HBONE pool is closed");
    const key = `${req.source}|${[...req.expected].sort().join(",")}|${
      formatAuthority(req.nextHop)
    }`;
    const { conn, fresh } = this.#acquire(key, req);
    let session: http2.ClientHttp2Session;
    try {
      session = await conn.ready;
    } catch (e) {
      this.#release(conn);
      throw e;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({
        ":method": "CONNECT",
        ":authority": req.authority,
        ...req.headers,
      }, { endStream: false });
    } catch (e) {
      this.#release(conn);
      conn.dead = true;
      throw new TunnelError("connect_failed", `could not open a stream: ${(e as Error).message}`);
    }
    this.stats.streamsOpened++;
    stream.once("close", () => this.#release(conn));
    return await new Promise<ClientTunnel>((resolve, reject) => {
      const onError = (err: Error) => {
        reject(
          new TunnelError("connect_failed", `stream to ${req.authority} failed: ${err.message}`),
        );
      };
      stream.once("error", onError);
      stream.once("close", () => {
        reject(
          new TunnelError("connect_failed", `stream to ${req.authority} closed before an answer`),
        );
      });
      stream.once("response", (headers) => {
        const status = Number(headers[":status"]);
        if (status === 200) {
          stream.off("error", onError);
          stream.on("error", () => {});
          resolve({ stream, peerIdentity: conn.peerIdentity!, newConnection: fresh });
          return;
        }
        let body = "";
        stream.setEncoding("utf8");
        stream.on("data", (d: string) => {
          if (body.length < 512) body += d;
        });
        const done = () =>
          reject(
            new TunnelError(
              "peer_status",
              `${req.nextHop.ip} answered ${status} for ${req.authority}${
                body ? `: ${body.trim()}` : ""
              }`,
              status,
            ),
          );
        stream.once("end", done);
        stream.once("close", done);
      });
    });
  }

  /** Closes every connection. */
  close(): void {
    this.#closed = true;
    for (const list of this.#conns.values()) {
      for (const c of list) {
        c.dead = true;
        clearTimeout(c.idle);
        c.session?.destroy();
      }
    }
    this.#conns.clear();
  }

  #acquire(key: string, req: TunnelRequest): { conn: Conn; fresh: boolean } {
    const list = this.#conns.get(key) ?? [];
    this.#conns.set(key, list);
    for (const c of list) {
      if (!c.dead && c.streams < c.maxStreams) {
        c.streams++;
        clearTimeout(c.idle);
        return { conn: c, fresh: false };
      }
    }
    const max = this.options.maxStreamsPerConnection ?? 100;
    const conn: Conn = {
      key,
      streams: 1,
      maxStreams: max,
      dead: false,
      ready: Promise.resolve(undefined as never),
    };
    conn.ready = this.#connect(conn, req);
    conn.ready.catch(() => {
      conn.dead = true;
      this.#drop(conn);
    });
    list.push(conn);
    return { conn, fresh: true };
  }

  #release(conn: Conn): void {
    conn.streams--;
    if (conn.streams > 0 || conn.dead) return;
    clearTimeout(conn.idle);
    conn.idle = setTimeout(() => {
      if (conn.streams > 0) return;
      conn.dead = true;
      this.#drop(conn);
      conn.session?.close();
    }, this.options.idleTimeoutMs ?? 300_000);
  }

  #drop(conn: Conn): void {
    const list = this.#conns.get(conn.key);
    if (!list) return;
    const i = list.indexOf(conn);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#conns.delete(conn.key);
  }

  async #connect(conn: Conn, req: TunnelRequest): Promise<http2.ClientHttp2Session> {
    const log = this.options.logger;
    let id: TlsIdentity;
    try {
      id = await this.options.certificate(req.source);
    } catch (e) {
      throw new TunnelError(
        "no_certificate",
        `no certificate for ${req.source}: ${(e as Error).message}`,
      );
    }
    this.stats.handshakes++;
    const socket = tls.connect({
      ...secureContextOptions(id, this.options.rootsPem()),
      host: req.nextHop.ip,
      port: req.nextHop.port,
      servername: sniForIdentity(req.expected[0]),
      ALPNProtocols: ["h2"],
      rejectUnauthorized: false,
      // Names are not checked, identities are (verifyServer).
      checkServerIdentity: () => undefined,
    });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    const hop = formatAuthority(req.nextHop);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new TunnelError(
              "connect_failed",
              `no TLS handshake with ${hop} within ${this.options.connectTimeoutMs ?? 10_000} ms`,
            ),
          );
        }, this.options.connectTimeoutMs ?? 10_000);
        socket.once("secureConnect", () => {
          clearTimeout(timer);
          resolve();
        });
        socket.once("error", (err: Error & { code?: string }) => {
          clearTimeout(timer);
          const tlsErr = /SSL|TLS|alert|handshake/i.test(`${err.code} ${err.message}`);
          reject(
            new TunnelError(
              tlsErr ? "tls_failure" : "connect_failed",
              `${tlsErr ? "TLS handshake with" : "cannot connect to"} ${hop}: ${err.message}`,
            ),
          );
        });
        socket.once("close", () => {
          clearTimeout(timer);
          reject(new TunnelError("tls_failure", `${hop} closed the connection during TLS`));
        });
      });
      conn.peerIdentity = verifyServer(socket, req.expected, hop);
    } catch (e) {
      this.stats.handshakeFailures++;
      socket.destroy();
      log.warn("HBONE connection failed", { peer: hop, error: (e as Error).message });
      throw e;
    }
    const session = http2.connect(`https://${hop}`, {
      createConnection: () => socket,
      settings: CLIENT_SETTINGS,
      maxSessionMemory: 64,
    });
    conn.session = session;
    session.on(
      "error",
      (err) => log.debug("HBONE session error", { peer: hop, error: err.message }),
    );
    const stop = keepalive(session, this.options.keepalive ?? DEFAULT_KEEPALIVE, () => {
      log.warn("HBONE peer stopped answering PINGs; closing", { peer: hop });
    });
    session.once("close", () => {
      stop();
      conn.dead = true;
      clearTimeout(conn.idle);
      this.#drop(conn);
    });
    session.once("goaway", () => {
      conn.dead = true;
      this.#drop(conn);
    });
    session.once("remoteSettings", (s) => {
      if (s.maxConcurrentStreams !== undefined) {
        conn.maxStreams = Math.min(conn.maxStreams, s.maxConcurrentStreams);
      }
    });
    await new Promise<void>((resolve, reject) => {
      if (session.connecting === false) return resolve();
      session.once("connect", () => resolve());
      session.once(
        "error",
        (err) => reject(new TunnelError("connect_failed", `HTTP/2 with ${hop}: ${err.message}`)),
      );
    });
    try {
      session.setLocalWindowSize(CONNECTION_WINDOW);
    } catch { /* closed */ }
    return session;
  }
}

/** The server's SPIFFE ID after checking chain and expected identity. */
function verifyServer(socket: tls.TLSSocket, expected: readonly string[], hop: string): string {
  const cert = socket.getPeerCertificate();
  let id: string | undefined;
  try {
    id = cert?.raw
      ? spiffeIdOf(new x509.X509Certificate(new Uint8Array(cert.raw).slice()))
      : undefined;
  } catch { /* stays undefined */ }
  if (!socket.authorized) {
    throw new TunnelError(
      "tls_failure",
      `server ${hop} (${id ?? "no SPIFFE ID"}) is not trusted: ${socket.authorizationError}`,
    );
  }
  if (socket.alpnProtocol !== "h2") {
    throw new TunnelError("tls_failure", `server ${hop} did not negotiate h2`);
  }
  if (id === undefined || !expected.includes(id)) {
    throw new TunnelError(
      "identity_mismatch",
      `server ${hop} is ${id ?? "without a SPIFFE ID"}, expected ${expected.join(" or ")}`,
    );
  }
  return id;
}
