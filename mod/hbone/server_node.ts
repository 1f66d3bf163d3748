/**
 * The HBONE server on Deno's `node:http2`, as it was before ambit had its
 * own HTTP/2 (h2/). Kept for A/B measurement only: `AMBIT_HBONE_H2=node`
 * selects it (see server.ts). Same behaviour and API as {@link HboneServer}.
 *
 * @module
 */
import http2 from "node:http2";
import tls from "node:tls";
import { peerIdentity, secureContextOptions } from "../identity/tls.ts";
import type { HostPort } from "./authority.ts";
import { FAILURES } from "./errors.ts";
import type { HboneServerOptions, HboneServerStats, ServerTunnel, ServingCert } from "./server.ts";
import {
  CONNECTION_WINDOW,
  DEFAULT_KEEPALIVE,
  type KeepaliveOptions,
  SERVER_SETTINGS,
} from "./settings.ts";
import { listenOn } from "../util/listen.ts";

/** A listening HBONE server on node:http2 (A/B only). */
export class NodeHboneServer {
  #server: http2.Http2SecureServer;
  #sessions = new Set<http2.ServerHttp2Session>();
  #contexts = new Map<string, tls.SecureContext>();
  #defaultKey = "";
  readonly stats: HboneServerStats = {
    sessions: 0,
    streams: 0,
    handshakeFailures: 0,
    accepted: 0,
    rejected: 0,
  };

  private constructor(readonly options: HboneServerOptions) {
    const def = options.certificateFor(undefined);
    this.#server = http2.createSecureServer({
      ...(def ? secureContextOptions(def, options.rootsPem()) : {}),
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
      allowHTTP1: false,
      handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
      settings: SERVER_SETTINGS,
      SNICallback: (name, cb) => {
        const c = options.certificateFor(name);
        cb(null, c ? this.#context(c) : undefined);
      },
    });
    if (def) this.#defaultKey = contextKey(def, options.rootsPem());
    // Tunnels carry interactive traffic: no Nagle delay; TCP keepalive finds dead peers too.
    this.#server.on("connection", (socket: import("node:net").Socket) => {
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 30_000);
    });
    this.#server.on("session", (s) => this.#onSession(s));
    this.#server.on("stream", (stream, headers) => this.#onStream(stream, headers));
    this.#server.on("unknownProtocol", (socket: tls.TLSSocket) => {
      this.stats.handshakeFailures++;
      options.logger.debug("HBONE client did not negotiate h2; closing", {
        peer: socket.remoteAddress,
      });
      socket.destroy();
    });
    this.#server.on("tlsClientError", (err: Error, socket: tls.TLSSocket) => {
      this.stats.handshakeFailures++;
      options.logger.debug("HBONE TLS handshake failed", {
        peer: socket?.remoteAddress,
        error: err.message,
      });
    });
  }

  /** Binds the listener; rejects when the address is taken or not local. */
  static async listen(options: HboneServerOptions): Promise<NodeHboneServer> {
    const s = new NodeHboneServer(options);
    await new Promise<void>((resolve, reject) => {
      s.#server.once("error", (e: Error) =>
        reject(
          new Error(
            `cannot listen for HBONE on ${options.listen.ip}:${options.listen.port}: ${e.message}; ` +
              "the node's address (Node.spec.address) must be assigned to this host and the port free",
            { cause: e },
          ),
        ));
      s.#server.listen(listenOn(options.listen), () => {
        s.#server.removeAllListeners("error");
        s.#server.on("error", (e) => options.logger.error("HBONE listener error", { error: e }));
        resolve();
      });
    });
    return s;
  }

  /** The bound address. */
  get address(): HostPort {
    const a = this.#server.address() as { address: string; port: number };
    return { ip: a.address, port: a.port };
  }

  /** Re-reads the default certificate and trust bundle (after rotation or reload). */
  refresh(): void {
    const def = this.options.certificateFor(undefined);
    if (!def) return;
    const key = contextKey(def, this.options.rootsPem());
    if (key === this.#defaultKey) return;
    this.#defaultKey = key;
    this.#server.setSecureContext(secureContextOptions(def, this.options.rootsPem()));
    this.#contexts.clear();
  }

  /** Open connections. */
  get sessions(): number {
    return this.#sessions.size;
  }

  /** Open streams over all connections. */
  get openStreams(): number {
    let n = 0;
    for (const s of this.#sessions) n += sessionStates.get(s)?.streams ?? 0;
    return n;
  }

  /** Stops accepting; closes idle connections, and all of them when `force`. */
  async close(force = true): Promise<void> {
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    for (const s of this.#sessions) {
      if (force) s.destroy();
      else s.close();
    }
    await closed;
  }

  #context(c: ServingCert): tls.SecureContext {
    const roots = this.options.rootsPem();
    const key = contextKey(c, roots);
    let ctx = this.#contexts.get(key);
    if (!ctx) {
      if (this.#contexts.size > 256) this.#contexts.clear();
      ctx = tls.createSecureContext(secureContextOptions(c, roots));
      this.#contexts.set(key, ctx);
    }
    return ctx;
  }

  #onSession(session: http2.ServerHttp2Session): void {
    const socket = session.socket as tls.TLSSocket;
    const log = this.options.logger;
    let identity: string;
    try {
      identity = peerIdentity(socket, this.options.trustDomain());
    } catch (e) {
      this.stats.handshakeFailures++;
      log.warn("HBONE client refused", {
        peer: `${socket.remoteAddress}:${socket.remotePort}`,
        error: (e as Error).message,
      });
      session.destroy();
      socket.destroy();
      return;
    }
    identities.set(session, identity);
    const state: SessionState = { streams: 0, armIdle: () => {} };
    sessionStates.set(session, state);
    this.#sessions.add(session);
    this.stats.sessions++;
    try {
      session.setLocalWindowSize(CONNECTION_WINDOW);
    } catch { /* closed already */ }
    const stopKeepalive = keepalive(session, this.options.keepalive ?? DEFAULT_KEEPALIVE, () => {
      log.info("HBONE client stopped answering PINGs; closing", { peer: identity });
    });
    // A client that finished TLS but never sends its HTTP/2 preface and
    // SETTINGS (or a first stream) holds a socket for nothing: drop it.
    const prefaceMs = this.options.handshakeTimeoutMs ?? 10_000;
    const preface = setTimeout(() => {
      log.info("HBONE client sent no HTTP/2 preface in time; closing", {
        peer: identity,
        timeoutMs: prefaceMs,
      });
      session.destroy();
    }, prefaceMs);
    session.once("remoteSettings", () => clearTimeout(preface));
    let idle: ReturnType<typeof setTimeout> | undefined;
    const idleMs = this.options.idleTimeoutMs ?? 600_000;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => session.close(), idleMs);
    };
    armIdle();
    state.armIdle = armIdle;
    session.on("stream", () => clearTimeout(idle));
    session.on("error", (err) => log.debug("HBONE session error", { error: err.message }));
    session.on("close", () => {
      clearTimeout(idle);
      clearTimeout(preface);
      stopKeepalive();
      this.#sessions.delete(session);
    });
  }

  #onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const session = stream.session!;
    const identity = identities.get(session);
    if (identity === undefined) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    this.stats.streams++;
    const state = sessionStates.get(session)!;
    state.streams++;
    const socket = session.socket as tls.TLSSocket;
    const closers: (() => void)[] = [];
    let closed = false;
    stream.on("error", () => {});
    stream.on("close", () => {
      closed = true;
      state.streams--;
      for (const fn of closers.splice(0)) fn();
      if (!session.destroyed && state.streams === 0) state.armIdle();
    });
    const stats = this.stats;
    const tunnel: ServerTunnel = {
      method: String(headers[":method"] ?? ""),
      authority: headers[":authority"] as string | undefined,
      headers,
      peerIdentity: identity,
      peerAddress: { ip: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 },
      localAddress: { ip: socket.localAddress ?? "", port: socket.localPort ?? 0 },
      isClosed: () => closed || stream.destroyed,
      onClose(fn) {
        if (closed || stream.destroyed) fn();
        else closers.push(fn);
      },
      accept() {
        stats.accepted++;
        stream.respond({ ":status": 200 });
        return stream;
      },
      reject(failure, detail) {
        stats.rejected++;
        if (stream.destroyed || stream.headersSent) {
          stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
          return;
        }
        const status = FAILURES[failure].status || 503;
        stream.respond({ ":status": status, "content-type": "text/plain" });
        stream.end(`${FAILURES[failure].text}${detail ? `: ${detail}` : ""}\n`);
      },
    };
    try {
      this.options.onTunnel(tunnel);
    } catch (e) {
      this.options.logger.error("HBONE tunnel handler failed", { error: e as Error });
      tunnel.reject("no_workload", "internal error");
    }
  }
}

const identities = new WeakMap<http2.Http2Session, string>();

interface SessionState {
  streams: number;
  armIdle: () => void;
}

const sessionStates = new WeakMap<http2.Http2Session, SessionState>();

function contextKey(c: ServingCert, roots: string): string {
  return `${c.serial}|${roots.length}|${roots.slice(-64)}`;
}

/**
 * PINGs `session` every `intervalMs`; destroys it when nothing was answered
 * for `timeoutMs`. Returns a stop function.
 */
export function keepalive(
  session: http2.Http2Session,
  opts: KeepaliveOptions,
  onDead: () => void,
): () => void {
  let lastAck = Date.now();
  const timer = setInterval(() => {
    if (session.destroyed || session.closed) {
      clearInterval(timer);
      return;
    }
    if (Date.now() - lastAck > opts.timeoutMs) {
      clearInterval(timer);
      onDead();
      session.destroy();
      return;
    }
    try {
      session.ping((err) => {
        if (!err) lastAck = Date.now();
      });
    } catch { /* too many outstanding pings: count as unanswered */ }
  }, opts.intervalMs);
  return () => clearInterval(timer);
}
