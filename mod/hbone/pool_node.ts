/**
 * The HBONE client pool on Deno's `node:http2`, as it was before ambit had
 * its own HTTP/2 (h2/). Kept for A/B measurement only: `AMBIT_HBONE_H2=node`
 * selects it (see pool.ts). Same behaviour and API as {@link HbonePool}.
 *
 * @module
 */
import http2 from "node:http2";
import type tls from "node:tls";
import type { TlsIdentity } from "../identity/tls.ts";
import { dialHbone } from "./dial.ts";
import { formatAuthority } from "./authority.ts";
import { TunnelError } from "./errors.ts";
import { CLIENT_SETTINGS, CONNECTION_WINDOW, DEFAULT_KEEPALIVE } from "./settings.ts";
import { keepalive } from "./server_node.ts";
import type { ClientTunnel, HbonePoolOptions, HbonePoolStats, TunnelRequest } from "./pool.ts";

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

/** A pool of HBONE client connections on node:http2 (A/B only). */
export class NodeHbonePool {
  #conns = new Map<string, Conn[]>();
  #closed = false;
  readonly stats: HbonePoolStats = {
    handshakes: 0,
    handshakeFailures: 0,
    streamsOpened: 0,
    streamsRetried: 0,
  };

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

  /** Graceful end: GOAWAY on every session; resolves once all have closed. */
  drain(): Promise<void> {
    const closing = this.#retireAll().filter((s) => !s.closed).map((s) => {
      const closed = new Promise<void>((r) => s.once("close", () => r()));
      s.close();
      return closed;
    });
    return Promise.all(closing).then(() => {});
  }

  /** Closes every connection at once. */
  close(): void {
    for (const s of this.#retireAll()) s.destroy();
    this.#conns.clear();
  }

  /** No new streams from here on: every connection is marked dead; returns the sessions there are. */
  #retireAll(): http2.ClientHttp2Session[] {
    this.#closed = true;
    const out: http2.ClientHttp2Session[] = [];
    for (const list of this.#conns.values()) {
      for (const c of list) {
        c.dead = true;
        clearTimeout(c.idle);
        if (c.session) out.push(c.session);
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
    const hop = formatAuthority(req.nextHop);
    let socket: tls.TLSSocket;
    try {
      const dialed = await dialHbone({
        identity: id,
        rootsPem: this.options.rootsPem(),
        nextHop: req.nextHop,
        expected: req.expected,
        timeoutMs: this.options.connectTimeoutMs ?? 10_000,
      });
      socket = dialed.socket;
      conn.peerIdentity = dialed.peerIdentity;
    } catch (e) {
      this.stats.handshakeFailures++;
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
