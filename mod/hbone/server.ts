/**
 * The HBONE server: mutual TLS 1.3 with ALPN h2 on port 15008, HTTP/2
 * CONNECT streams, one per proxied TCP connection. It authenticates the
 * peer (chain to the trust bundle, a workload SPIFFE ID in the trust
 * domain) before any stream is handled, then hands each CONNECT to
 * `onTunnel`, which decides (policy, upstream) and answers. TLS is
 * node:tls; HTTP/2 is ambit's own (h2/, RFC 9113), which costs a fraction of
 * node:http2's CPU per byte (`AMBIT_HBONE_H2=node` selects node:http2 for A/B).
 *
 * Certificate choice: an ambit client sends an SNI naming the identity it
 * expects (sni.ts); a client without SNI (Istio's ztunnel, other stacks)
 * gets the default certificate, which the ztunnel sets to the identity of
 * the workloads at this address when that is unambiguous.
 *
 * @module
 */
import tls from "node:tls";
import type { Duplex } from "node:stream";
import type { Logger } from "../log/logger.ts";
import { peerIdentity, secureContextOptions, type TlsIdentity } from "../identity/tls.ts";
import type { HostPort } from "./authority.ts";
import { FAILURES, type TunnelFailure } from "./errors.ts";
import { H2Connection } from "./h2/connection.ts";
import { ErrorCode } from "./h2/errors.ts";
import type { H2Headers } from "./h2/headers.ts";
import type { H2Stream } from "./h2/stream.ts";
import {
  CONNECTION_WINDOW,
  DEFAULT_KEEPALIVE,
  type KeepaliveOptions,
  SERVER_SETTINGS,
  useNodeHttp2,
} from "./settings.ts";
import { listenOn } from "../util/listen.ts";

/** A certificate with a stable key for caching its TLS context. */
export interface ServingCert extends TlsIdentity {
  /** Changes whenever the certificate does (e.g. the serial). */
  readonly serial: string;
}

/** One CONNECT (or other) request on an authenticated HBONE connection. */
export interface ServerTunnel {
  readonly method: string;
  readonly authority: string | undefined;
  readonly headers: Readonly<H2Headers>;
  /** The client's verified SPIFFE ID. */
  readonly peerIdentity: string;
  /** The client's TCP address (its node). */
  readonly peerAddress: HostPort;
  /** The address the client connected to. */
  readonly localAddress: HostPort;
  /** True once the stream is gone (client reset, connection lost, answered). */
  isClosed(): boolean;
  /** Runs `fn` when the stream closes (immediately if it already has). */
  onClose(fn: () => void): void;
  /** Answers 200 and returns the stream to relay bytes on. */
  accept(): Duplex;
  /** Answers with the failure's status and ends the stream. */
  reject(failure: TunnelFailure, detail?: string): void;
}

/** Options for {@link HboneServer.listen}. */
export interface HboneServerOptions {
  readonly listen: HostPort;
  readonly logger: Logger;
  /** The mesh's trust domain (read per connection, so reloads apply). */
  trustDomain(): string;
  /** Trust bundle, PEM. */
  rootsPem(): string;
  /** Certificate to present for an SNI (undefined: the default one). */
  certificateFor(sni: string | undefined): ServingCert | undefined;
  /** Called for each request on an authenticated connection. */
  onTunnel(t: ServerTunnel): void;
  readonly keepalive?: KeepaliveOptions;
  /** TLS handshake and HTTP/2 preface deadline (default 10 s). */
  readonly handshakeTimeoutMs?: number;
  /** Close connections without streams after this long (default 10 min). */
  readonly idleTimeoutMs?: number;
}

/** Counters for tests and the admin API. */
export interface HboneServerStats {
  sessions: number;
  streams: number;
  handshakeFailures: number;
  accepted: number;
  rejected: number;
}

/** A listening HBONE server. */
export class HboneServer {
  #server: tls.Server;
  #conns = new Map<H2Connection, ConnState>();
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
    this.#server = tls.createServer({
      ...(def ? secureContextOptions(def, options.rootsPem()) : {}),
      requestCert: true,
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
      handshakeTimeout: options.handshakeTimeoutMs ?? 10_000,
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
    this.#server.on("secureConnection", (socket: tls.TLSSocket) => this.#onSecure(socket));
    this.#server.on("tlsClientError", (err: Error, socket: tls.TLSSocket) => {
      this.stats.handshakeFailures++;
      options.logger.debug("HBONE TLS handshake failed", {
        peer: socket?.remoteAddress,
        error: err.message,
      });
      // Deno's node:tls leaves the socket open after a handshake timeout.
      socket?.destroy();
    });
  }

  /** Binds the listener; rejects when the address is taken or not local. */
  static async listen(options: HboneServerOptions): Promise<HboneServer> {
    if (NodeHboneServer) {
      // A/B measurement only: the same API on node:http2 (server_node.ts).
      return await NodeHboneServer.listen(options) as unknown as HboneServer;
    }
    const s = new HboneServer(options);
    await new Promise<void>((resolve, reject) => {
      s.#server.once("error", (e: Error) =>
        reject(
          new Error(
            `cannot listen for HBONE on ${options.listen.ip}:${options.listen.port}: ${e.message}; ` +
              hboneListenHint((e as { code?: string }).code),
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
    return this.#conns.size;
  }

  /** Open streams over all connections. */
  get openStreams(): number {
    let n = 0;
    for (const s of this.#conns.values()) n += s.streams;
    return n;
  }

  /**
   * Stops accepting. With `force`, every connection is destroyed at once;
   * without, each gets GOAWAY and closes when its streams are done, and the
   * promise resolves once all of them have closed (their last frames sent).
   */
  async close(force = true): Promise<void> {
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    const conns = [...this.#conns.keys()];
    for (const c of conns) {
      if (force) c.destroy();
      else c.close();
    }
    await Promise.all([closed, ...conns.map((c) => c.whenClosed)]);
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

  /** A TLS handshake finished: check the peer, then speak HTTP/2. */
  #onSecure(socket: tls.TLSSocket): void {
    const log = this.options.logger;
    socket.on("error", () => {});
    if (socket.alpnProtocol !== "h2") {
      this.stats.handshakeFailures++;
      log.debug("HBONE client did not negotiate h2; closing", { peer: socket.remoteAddress });
      socket.destroy();
      return;
    }
    let identity: string;
    try {
      identity = peerIdentity(socket, this.options.trustDomain());
    } catch (e) {
      this.stats.handshakeFailures++;
      log.warn("HBONE client refused", {
        peer: `${socket.remoteAddress}:${socket.remotePort}`,
        error: (e as Error).message,
      });
      socket.destroy();
      return;
    }
    this.stats.sessions++;
    const peer: HostPort = { ip: socket.remoteAddress ?? "", port: socket.remotePort ?? 0 };
    const local: HostPort = { ip: socket.localAddress ?? "", port: socket.localPort ?? 0 };
    const state: ConnState = { identity, peer, local, streams: 0, armIdle: () => {} };
    let idle: ReturnType<typeof setTimeout> | undefined;
    const conn: H2Connection = new H2Connection(socket, {
      role: "server",
      settings: SERVER_SETTINGS,
      connectionWindow: CONNECTION_WINDOW,
      keepalive: this.options.keepalive ?? DEFAULT_KEEPALIVE,
      onDead: () => log.info("HBONE client stopped answering PINGs; closing", { peer: identity }),
      onSettings: (_s, first) => {
        if (first) clearTimeout(preface);
      },
      onStream: (stream) => {
        clearTimeout(idle);
        this.#onStream(conn, state, stream);
      },
      onClose: (err) => {
        clearTimeout(idle);
        clearTimeout(preface);
        this.#conns.delete(conn);
        if (err) log.debug("HBONE session error", { peer: identity, error: err.message });
      },
    });
    this.#conns.set(conn, state);
    // A client that finished TLS but never sends its HTTP/2 preface and
    // SETTINGS holds a socket for nothing: drop it.
    const prefaceMs = this.options.handshakeTimeoutMs ?? 10_000;
    const preface = setTimeout(() => {
      log.info("HBONE client sent no HTTP/2 preface in time; closing", {
        peer: identity,
        timeoutMs: prefaceMs,
      });
      conn.destroy();
    }, prefaceMs);
    const idleMs = this.options.idleTimeoutMs ?? 600_000;
    state.armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => conn.close(), idleMs);
    };
    state.armIdle();
  }

  #onStream(conn: H2Connection, state: ConnState, stream: H2Stream): void {
    this.stats.streams++;
    state.streams++;
    const closers: (() => void)[] = [];
    let closed = false;
    stream.on("error", () => {});
    stream.on("close", () => {
      closed = true;
      state.streams--;
      for (const fn of closers.splice(0)) fn();
      if (!conn.closed && state.streams === 0) state.armIdle();
    });
    const stats = this.stats;
    const headers = stream.headers;
    const tunnel: ServerTunnel = {
      method: String(headers[":method"] ?? ""),
      authority: headers[":authority"] as string | undefined,
      headers,
      peerIdentity: state.identity,
      peerAddress: state.peer,
      localAddress: state.local,
      // A method, not a getter: an object literal with a closure getter gets
      // a hidden class of its own, allocated in the old generation, which
      // keeps the tunnel's objects alive past young collections (see
      // ARCHITECTURE.md, "Allocation and GC").
      isClosed: () => closed || stream.destroyed,
      onClose(fn) {
        if (closed || stream.destroyed) fn();
        else closers.push(fn);
      },
      accept() {
        stats.accepted++;
        stream.respond(200);
        return stream;
      },
      reject(failure, detail) {
        stats.rejected++;
        if (stream.destroyed || stream.headersSent) {
          stream.close(ErrorCode.REFUSED_STREAM);
          return;
        }
        const status = FAILURES[failure].status || 503;
        stream.respond(status, { "content-type": "text/plain" });
        // A complete answer, then RST_STREAM(NO_ERROR): the client need not
        // send the rest of its request (RFC 9113 §8.1), and the stream is freed.
        stream.end(`${FAILURES[failure].text}${detail ? `: ${detail}` : ""}\n`, () => {
          if (!stream.destroyed) stream.close(ErrorCode.NO_ERROR);
        });
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

interface ConnState {
  readonly identity: string;
  readonly peer: HostPort;
  readonly local: HostPort;
  /** Streams whose Duplex has not closed yet. */
  streams: number;
  armIdle: () => void;
}

/** The node:http2 server, loaded only when selected (it costs memory otherwise). */
const NodeHboneServer = useNodeHttp2() ? (await import("./server_node.ts")).NodeHboneServer : null;

function contextKey(c: ServingCert, roots: string): string {
  return `${c.serial}|${roots.length}|${roots.slice(-64)}`;
}

/** What to do when the HBONE listener cannot bind, by error code. */
function hboneListenHint(code?: string): string {
  if (code === "EACCES") {
    return "ports below 1024 need CAP_NET_BIND_SERVICE (see deploy/systemd/README.md)";
  }
  if (code === "EADDRINUSE") return "another program holds the port ('ambit check' names it)";
  if (code === "EADDRNOTAVAIL") {
    return "the node's address (Node.spec.address) must be assigned to this host";
  }
  return "the node's address (Node.spec.address) must be assigned to this host and the port free";
}
