/**
 * The HBONE client: a pool of mutual-TLS HTTP/2 connections keyed by
 * (source identity, expected destination identities, next hop), carrying
 * many CONNECT streams each (up to a cap, then another connection). Concurrent
 * first requests for one key share one handshake; connections without
 * streams close after an idle period; PINGs find dead peers. TLS is
 * node:tls (dial.ts), HTTP/2 ambit's own (h2/).
 *
 * @module
 */
import type { Duplex } from "node:stream";
import type { Logger } from "../log/logger.ts";
import type { TlsIdentity } from "../identity/tls.ts";
import { formatAuthority, type HostPort } from "./authority.ts";
import { dialHbone } from "./dial.ts";
import { TunnelError } from "./errors.ts";
import { H2Connection } from "./h2/connection.ts";
import { ErrorCode } from "./h2/errors.ts";
import type { H2Stream } from "./h2/stream.ts";
import {
  CLIENT_SETTINGS,
  CONNECTION_WINDOW,
  DEFAULT_KEEPALIVE,
  type KeepaliveOptions,
  useNodeHttp2,
} from "./settings.ts";

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
  ready: Promise<H2Connection>;
  h2?: H2Connection;
  peerIdentity?: string;
  idle?: ReturnType<typeof setTimeout>;
}

/** Counters for the admin API and tests. */
export interface HbonePoolStats {
  handshakes: number;
  handshakeFailures: number;
  streamsOpened: number;
  /** Streams opened again after the peer refused them unprocessed (it was draining). */
  streamsRetried: number;
}

/** A pool of HBONE client connections. */
export class HbonePool {
  #conns = new Map<string, Conn[]>();
  #closed = false;
  readonly stats: HbonePoolStats = {
    handshakes: 0,
    handshakeFailures: 0,
    streamsOpened: 0,
    streamsRetried: 0,
  };

  constructor(readonly options: HbonePoolOptions) {
    // A/B measurement only: the same API on node:http2 (pool_node.ts).
    if (NodeHbonePool) return new NodeHbonePool(options) as unknown as HbonePool;
  }

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
    // A stream the peer refused unprocessed (REFUSED_STREAM, or above a
    // GOAWAY's last stream: the peer is draining, e.g. for an upgrade) is
    // opened again on a new connection; nothing reached the destination.
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#open(req);
      } catch (e) {
        if (!(e instanceof RefusedStream) || attempt >= 3 || this.#closed) {
          throw e instanceof RefusedStream ? e.tunnelError : e;
        }
        this.stats.streamsRetried++;
        this.options.logger.debug("HBONE stream refused unprocessed; retrying", {
          peer: formatAuthority(req.nextHop),
          authority: req.authority,
          attempt,
        });
      }
    }
  }

  async #open(req: TunnelRequest): Promise<ClientTunnel> {
    if (this.#closed) throw new TunnelError("connect_failed", "HBONE pool is closed");
    const key = `${req.source}|${[...req.expected].sort().join(",")}|${
      formatAuthority(req.nextHop)
    }`;
    const { conn, fresh } = this.#acquire(key, req);
    let h2: H2Connection;
    try {
      h2 = await conn.ready;
    } catch (e) {
      this.#release(conn);
      throw e;
    }
    let stream: H2Stream;
    try {
      stream = h2.request({ ":method": "CONNECT", ":authority": req.authority, ...req.headers });
    } catch (e) {
      this.#release(conn);
      conn.dead = true;
      this.#drop(conn);
      const err = new TunnelError(
        "connect_failed",
        `could not open a stream: ${(e as Error).message}`,
      );
      // Nothing was sent: the connection was already going away.
      throw h2.closed || !h2.usable ? new RefusedStream(err) : err;
    }
    this.stats.streamsOpened++;
    stream.once("close", () => this.#release(conn));
    return await answer(stream, req, () => ({
      stream,
      peerIdentity: conn.peerIdentity!,
      newConnection: fresh,
    }));
  }

  /**
   * Graceful end: no new streams; each connection gets GOAWAY and closes
   * once its streams are done. Resolves when all have closed, so a stopping
   * process does not cut off frames still in a socket's write buffer.
   */
  drain(): Promise<void> {
    const ending = this.#retireAll().map((h2) => {
      h2.close();
      return h2.whenClosed;
    });
    return Promise.all(ending).then(() => {});
  }

  /** Closes every connection at once. */
  close(): void {
    for (const h2 of this.#retireAll()) h2.destroy();
    this.#conns.clear();
  }

  /** No new streams from here on: every connection is marked dead; returns those that connected. */
  #retireAll(): H2Connection[] {
    this.#closed = true;
    const out: H2Connection[] = [];
    for (const list of this.#conns.values()) {
      for (const c of list) {
        c.dead = true;
        clearTimeout(c.idle);
        if (c.h2) out.push(c.h2);
      }
    }
    return out;
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
      conn.h2?.close();
    }, this.options.idleTimeoutMs ?? 300_000);
  }

  #drop(conn: Conn): void {
    const list = this.#conns.get(conn.key);
    if (!list) return;
    const i = list.indexOf(conn);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.#conns.delete(conn.key);
  }

  async #connect(conn: Conn, req: TunnelRequest): Promise<H2Connection> {
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
    const hop = formatAuthority(req.nextHop);
    let dialed;
    try {
      dialed = await dialHbone({
        identity: id,
        rootsPem: this.options.rootsPem(),
        nextHop: req.nextHop,
        expected: req.expected,
        timeoutMs: this.options.connectTimeoutMs ?? 10_000,
      });
    } catch (e) {
      this.stats.handshakeFailures++;
      log.warn("HBONE connection failed", { peer: hop, error: (e as Error).message });
      throw e;
    }
    conn.peerIdentity = dialed.peerIdentity;
    const max = conn.maxStreams;
    const h2 = new H2Connection(dialed.socket, {
      role: "client",
      settings: CLIENT_SETTINGS,
      connectionWindow: CONNECTION_WINDOW,
      keepalive: this.options.keepalive ?? DEFAULT_KEEPALIVE,
      onDead: () => log.warn("HBONE peer stopped answering PINGs; closing", { peer: hop }),
      onSettings: (s) => {
        conn.maxStreams = Math.min(max, s.maxConcurrentStreams);
      },
      onGoaway: () => {
        conn.dead = true;
        this.#drop(conn);
      },
      onClose: (err) => {
        conn.dead = true;
        clearTimeout(conn.idle);
        this.#drop(conn);
        if (err) log.debug("HBONE session error", { peer: hop, error: err.message });
      },
    });
    conn.h2 = h2;
    return h2;
  }
}

/** A stream the peer did not process (RFC 9113 §8.7): safe to open again. */
class RefusedStream extends Error {
  constructor(readonly tunnelError: TunnelError) {
    super(tunnelError.message);
  }
}

/** The node:http2 pool, loaded only when selected (it costs memory otherwise). */
const NodeHbonePool = useNodeHttp2() ? (await import("./pool_node.ts")).NodeHbonePool : null;

/**
 * Waits for the answer to a CONNECT: resolves with `tunnel()` on 200,
 * rejects with `peer_status` (status and body text) on anything else, and
 * with `connect_failed` when the stream fails or closes first.
 */
function answer(
  stream: H2Stream,
  req: TunnelRequest,
  tunnel: () => ClientTunnel,
): Promise<ClientTunnel> {
  return new Promise<ClientTunnel>((resolve, reject) => {
    const onError = (err: Error) => {
      const e = new TunnelError(
        "connect_failed",
        `stream to ${req.authority} failed: ${err.message}`,
      );
      reject(stream.rstCode === ErrorCode.REFUSED_STREAM ? new RefusedStream(e) : e);
    };
    const onClose = () => {
      reject(
        new TunnelError("connect_failed", `stream to ${req.authority} closed before an answer`),
      );
    };
    stream.once("error", onError);
    stream.once("close", onClose);
    stream.onResponse = (status) => {
      stream.onResponse = null;
      if (status === 200) {
        stream.off("error", onError);
        stream.off("close", onClose);
        stream.on("error", () => {});
        resolve(tunnel());
        return;
      }
      let body = "";
      stream.setEncoding("utf8");
      stream.on("data", (d: string) => {
        if (body.length < 512) body += d;
      });
      const done = () => {
        reject(
          new TunnelError(
            "peer_status",
            `${req.nextHop.ip} answered ${status} for ${req.authority}${
              body ? `: ${body.trim()}` : ""
            }`,
            status,
          ),
        );
        // The answer is complete: nothing will be sent on this stream.
        stream.destroy();
      };
      stream.once("end", done);
      stream.once("close", done);
    };
  });
}
