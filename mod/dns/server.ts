/**
 * The ztunnel's DNS proxy (default 127.0.0.1:15053, UDP and TCP): mesh names
 * are answered from the config (authoritative, short TTL), everything else is
 * forwarded to the host's resolvers. The decisions are in handler.ts and
 * names.ts; this file is the socket shell: UDP datagrams, TCP with 2-byte
 * length framing (several queries per connection, answered as they complete,
 * idle timeout, connection limit), truncation for UDP, counters, and
 * rate-limited debug logs for bad input. Nothing a client sends can throw
 * out of a handler.
 *
 * @module
 */
import dgram from "node:dgram";
import net from "node:net";
import { Buffer } from "node:buffer";
import type { HostPort } from "../hbone/authority.ts";
import type { Level, Logger } from "../log/logger.ts";
import {
  decideQuery,
  DNS_OUTCOMES,
  type DnsOutcome,
  type DnsTransport,
  fitUdp,
  type ParsedQuery,
  ResponseCache,
  servfail,
  udpLimit,
} from "./handler.ts";
import type { MeshNames } from "./names.ts";
import type { DnsForwarder } from "./upstream.ts";
import { listenOn, REUSE_PORT } from "../util/listen.ts";

/** The default listen address of the DNS proxy (Istio's ztunnel port). */
export const DEFAULT_DNS_ADDRESS: HostPort = Object.freeze({ ip: "127.0.0.1", port: 15053 });

/** Options for {@link serveDns}. */
export interface DnsServerOptions {
  /**
   * UDP listen address; `false` for no UDP. Default: the TCP address, else
   * 127.0.0.1:15053. Port 0 picks a free port, shared with TCP when both use
   * the same IP with port 0.
   */
  readonly udp?: HostPort | false;
  /** TCP listen address; `false` for no TCP. Default: the UDP address, else 127.0.0.1:15053. */
  readonly tcp?: HostPort | false;
  /** The current mesh name table; called per query so reloads apply at once. */
  names(): MeshNames;
  /** Namespaces of the workloads behind a client address (for short names). */
  namespacesFor(clientIp: string): readonly string[];
  /** Where non-mesh queries go. */
  readonly upstream: DnsForwarder;
  readonly logger: Logger;
  /** TTL of mesh answers, seconds (default 30). */
  readonly ttl?: number;
  /** Open TCP connections at most; more are closed at once (default 256). */
  readonly maxTcpConnections?: number;
  /** A TCP connection with nothing in flight is closed after this long idle, ms (default 10000). */
  readonly tcpIdleMs?: number;
  /** Queries in flight per TCP connection before reading pauses (default 32). */
  readonly maxTcpPipeline?: number;
}

/** Query counters by transport and outcome, plus a few event counters. */
export interface DnsStats {
  readonly queries: Readonly<Record<DnsTransport, Record<DnsOutcome, number>>>;
  /** UDP responses sent truncated (TC set). */
  truncated: number;
  /** TCP connections closed on accept because of `maxTcpConnections`. */
  tcpConnectionsRejected: number;
  /** Open TCP connections. */
  tcpConnections: number;
}

/** A running DNS proxy. */
export interface DnsServer {
  /** The bound UDP address, if serving UDP. */
  readonly udp?: HostPort;
  /** The bound TCP address, if serving TCP. */
  readonly tcp?: HostPort;
  readonly stats: DnsStats;
  /**
   * Stops listening, closes TCP connections and cancels forwards in flight
   * (this closes `upstream`: give a new server a new upstream).
   */
  close(): Promise<void>;
}

/** Raised when the proxy cannot bind; the message says which address and what to do. */
export class DnsBindError extends Error {
  override readonly name = "DnsBindError";
  readonly code = "EDNSBIND";
  constructor(
    readonly transport: DnsTransport,
    readonly address: HostPort,
    cause: unknown,
  ) {
    super(bindMessage(transport, address, cause), { cause });
  }
}

function bindMessage(transport: DnsTransport, a: HostPort, cause: unknown): string {
  const code = (cause as { code?: string })?.code;
  const where = `${transport.toUpperCase()} ${a.ip.includes(":") ? `[${a.ip}]` : a.ip}:${a.port}`;
  const why = code === "EADDRINUSE"
    ? "the address is already in use (another DNS server, or another ztunnel on this host); " +
      "stop it or give the DNS proxy another address"
    : code === "EACCES"
    ? "permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE, " +
      "so run with that capability or use a port such as 15053"
    : code === "EADDRNOTAVAIL"
    ? "the IP address is not on this host; use a local address such as 127.0.0.1"
    : (cause as Error)?.message ?? String(cause);
  return `cannot bind the DNS proxy to ${where}: ${why}`;
}

/** New zeroed counters. */
export function newDnsStats(): DnsStats {
  const zero = () =>
    Object.fromEntries(DNS_OUTCOMES.map((o) => [o, 0])) as Record<DnsOutcome, number>;
  return {
    queries: { udp: zero(), tcp: zero() },
    truncated: 0,
    tcpConnectionsRejected: 0,
    tcpConnections: 0,
  };
}

/**
 * Starts the DNS proxy; resolves once every listener is bound, rejects with
 * {@link DnsBindError} otherwise.
 *
 * @example
 * ```ts
 * const dns = await serveDns({
 *   names: () => meshNamesFor(store.snapshot),
 *   namespacesFor: (ip) => localNamespaces(ip),
 *   upstream: await Upstream.fromResolvConf({ exclude: [DEFAULT_DNS_ADDRESS] }),
 *   logger,
 * });
 * ```
 */
export async function serveDns(o: DnsServerOptions): Promise<DnsServer> {
  const ttl = o.ttl ?? 30;
  if (!Number.isInteger(ttl) || ttl < 0) {
    throw new RangeError(`DNS answer ttl must be a whole number of seconds ≥ 0, got ${ttl}`);
  }
  const udpAt = o.udp === false ? undefined : o.udp ?? (o.tcp || DEFAULT_DNS_ADDRESS);
  const tcpAt = o.tcp === false ? undefined : o.tcp ?? (o.udp || DEFAULT_DNS_ADDRESS);
  if (!udpAt && !tcpAt) {
    throw new TypeError("serveDns() needs a UDP or a TCP address, both are false");
  }
  const stats = newDnsStats();
  const core = new Core(o, ttl, stats);
  const bound = await bindBoth(core, udpAt, tcpAt, o);
  o.logger.info("dns proxy listening", {
    udp: bound.udp && fmt(bound.udp.address),
    tcp: bound.tcp && fmt(bound.tcp.address),
  });
  let closing: Promise<void> | undefined;
  return {
    udp: bound.udp?.address,
    tcp: bound.tcp?.address,
    stats,
    close() {
      closing ??= (async () => {
        core.closed = true;
        o.upstream.close();
        await Promise.all([bound.udp?.close(), bound.tcp?.close()]);
      })();
      return closing;
    },
  };
}

function fmt(a: HostPort): string {
  return a.ip.includes(":") ? `[${a.ip}]:${a.port}` : `${a.ip}:${a.port}`;
}

interface Bound {
  readonly address: HostPort;
  close(): Promise<void>;
}

async function bindBoth(
  core: Core,
  udpAt: HostPort | undefined,
  tcpAt: HostPort | undefined,
  o: DnsServerOptions,
): Promise<{ udp?: Bound; tcp?: Bound }> {
  const shared = udpAt && tcpAt && udpAt.port === 0 && tcpAt.port === 0 && udpAt.ip === tcpAt.ip;
  // UDP sockets whose port was taken for TCP stay open until the end, so the
  // kernel does not hand the same port out again.
  const rejected: Bound[] = [];
  try {
    for (let attempt = 0;; attempt++) {
      const udp = udpAt ? await listenUdp(core, udpAt) : undefined;
      try {
        const at = shared ? { ip: tcpAt.ip, port: udp!.address.port } : tcpAt;
        const tcp = at ? await listenTcp(core, at, o) : undefined;
        return { udp, tcp };
      } catch (e) {
        // With port 0, UDP's free port may be taken for TCP: pick another pair.
        const inUse = (e as { cause?: { code?: string } }).cause?.code === "EADDRINUSE";
        if (!(shared && inUse && attempt < 16)) {
          await udp?.close();
          throw e;
        }
        if (udp) rejected.push(udp);
      }
    }
  } finally {
    await Promise.all(rejected.map((b) => b.close()));
  }
}

/** State shared by the listeners: options, counters, the per-query path. */
class Core {
  closed = false;
  readonly #log: RateLimitedLog;
  /** Encoded mesh answers, one cache per name table (a reload brings a new table). */
  readonly #caches = new WeakMap<MeshNames, ResponseCache>();
  constructor(readonly o: DnsServerOptions, readonly ttl: number, readonly stats: DnsStats) {
    this.#log = new RateLimitedLog(o.logger);
  }

  /**
   * Answers one message: calls `send` exactly once, with the response or
   * with nothing when none goes back; at once for mesh names and refusals,
   * after the upstream for the rest. Never throws.
   */
  answer(
    bytes: Uint8Array,
    client: string,
    transport: DnsTransport,
    sendOnce: (response?: Uint8Array) => void,
  ): void {
    let query: ParsedQuery | undefined;
    let sent = false;
    const send = (response?: Uint8Array) => {
      if (sent) return;
      sent = true;
      sendOnce(response);
    };
    try {
      const names = this.o.names();
      const decision = decideQuery(bytes, {
        ttl: this.ttl,
        zone: names.zone,
        cache: this.#cacheFor(names),
        // Only short names need the client's namespaces: compute them on demand.
        lookup: (name, type) => names.lookup(name, type, this.#context(client)),
      });
      if (decision.kind === "drop") {
        this.#count(transport, "dropped");
        this.#log.debug("dns query dropped", { client, transport, reason: decision.detail });
        return send();
      }
      query = decision.query;
      if (decision.kind === "forward") {
        return void this.#forward(bytes, decision.query, client, transport, send);
      }
      this.#count(transport, decision.outcome);
      if (decision.outcome === "formerr" || decision.outcome === "notimp") {
        this.#log.debug("dns query refused", {
          client,
          transport,
          outcome: decision.outcome,
          reason: decision.detail,
        });
      }
      send(this.#fit(decision.response, query, transport));
    } catch (e) {
      this.#failed(e, query, client, transport, send);
    }
  }

  async #forward(
    bytes: Uint8Array,
    q: ParsedQuery,
    client: string,
    transport: DnsTransport,
    send: (response?: Uint8Array) => void,
  ): Promise<void> {
    try {
      const r = await this.o.upstream.forward(bytes, { transport, questionWire: q.questionWire });
      if (this.closed) return send();
      if (r.ok) {
        this.#count(transport, "forwarded");
        return send(this.#fit(r.response, q, transport));
      }
      this.#count(transport, "servfail");
      this.#log.debug("dns forward failed", {
        client,
        transport,
        name: q.question.name,
        error: r.error,
      });
      send(this.#fit(servfail(q, r.error), q, transport));
    } catch (e) {
      this.#failed(e, q, client, transport, send);
    }
  }

  /** A bug, not bad input: answer SERVFAIL when there is a query to answer; never crash. */
  #failed(
    e: unknown,
    query: ParsedQuery | undefined,
    client: string,
    transport: DnsTransport,
    send: (response?: Uint8Array) => void,
  ): void {
    this.#log.log("warn", "dns query failed", { client, transport, error: e as Error });
    this.#count(transport, "servfail");
    try {
      send(query && !this.closed ? servfail(query, String(e)) : undefined);
    } catch { /* the socket is gone */ }
  }

  #cacheFor(names: MeshNames): ResponseCache {
    let cache = this.#caches.get(names);
    if (!cache) {
      cache = new ResponseCache();
      this.#caches.set(names, cache);
    }
    return cache;
  }

  #context(client: string): { readonly namespaces: readonly string[] } {
    return new LazyNamespaces(this.o, client);
  }

  #fit(response: Uint8Array, query: ParsedQuery | undefined, transport: DnsTransport): Uint8Array {
    if (transport === "tcp") return response;
    const r = fitUdp(response, query, udpLimit(query));
    if (r.truncated) this.stats.truncated++;
    return r.response;
  }

  #count(transport: DnsTransport, outcome: DnsOutcome): void {
    this.stats.queries[transport][outcome]++;
  }

  debug(msg: string, fields: Record<string, unknown>): void {
    this.#log.debug(msg, fields);
  }
}

function listenUdp(core: Core, at: HostPort): Promise<Bound> {
  // SO_REUSEADDR: a newer process bound to the same address receives the
  // queries from then on (Linux gives UDP datagrams to the newest socket), so an
  // upgrade hands DNS over without a gap. Deno's node:dgram has no reusePort.
  const sock = dgram.createSocket({
    type: at.ip.includes(":") ? "udp6" : "udp4",
    reuseAddr: REUSE_PORT,
  });
  return new Promise((resolve, reject) => {
    const onBindError = (e: Error) => {
      try {
        sock.close();
      } catch { /* not open */ }
      reject(new DnsBindError("udp", at, e));
    };
    sock.once("error", onBindError);
    sock.bind(at.port, at.ip, () => {
      sock.off("error", onBindError);
      sock.on("error", (e) => core.debug("dns udp socket error", { error: e }));
      const a = sock.address();
      sock.on("message", (msg: Buffer, rinfo: { address: string; port: number }) => {
        const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
        core.answer(bytes, rinfo.address, "udp", (resp) => {
          if (!resp || core.closed) return;
          sock.send(resp, rinfo.port, rinfo.address, (e) => {
            if (e) core.debug("dns udp send failed", { client: rinfo.address, error: e });
          });
        });
      });
      resolve({
        address: { ip: a.address, port: a.port },
        close: () => new Promise<void>((r) => sock.close(() => r())),
      });
    });
  });
}

function listenTcp(core: Core, at: HostPort, o: DnsServerOptions): Promise<Bound> {
  const maxConns = o.maxTcpConnections ?? 256;
  const idleMs = o.tcpIdleMs ?? 10_000;
  const pipeline = o.maxTcpPipeline ?? 32;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.on("error", () => {});
    if (sockets.size >= maxConns || core.closed) {
      core.stats.tcpConnectionsRejected++;
      core.debug("dns tcp connection refused: too many connections", {
        client: sock.remoteAddress,
        limit: maxConns,
      });
      sock.destroy();
      return;
    }
    sockets.add(sock);
    core.stats.tcpConnections = sockets.size;
    sock.once("close", () => {
      sockets.delete(sock);
      core.stats.tcpConnections = sockets.size;
    });
    serveTcpConnection(core, sock, idleMs, pipeline);
  });
  return new Promise((resolve, reject) => {
    srv.once("error", (e) => reject(new DnsBindError("tcp", at, e)));
    srv.listen(listenOn(at), () => {
      srv.removeAllListeners("error");
      srv.on("error", (e) => core.debug("dns tcp server error", { error: e }));
      const a = srv.address() as net.AddressInfo;
      resolve({
        address: { ip: a.address, port: a.port },
        close: () =>
          new Promise<void>((r) => {
            srv.close(() => r());
            for (const s of sockets) s.destroy();
          }),
      });
    });
  });
}

/** One TCP client: frames in, answers out as they complete (RFC 7766 allows any order). */
function serveTcpConnection(core: Core, sock: net.Socket, idleMs: number, pipeline: number): void {
  const client = sock.remoteAddress ?? "";
  let buf: Buffer = Buffer.alloc(0);
  let inFlight = 0;
  let ended = false;
  sock.setTimeout(idleMs, () => {
    if (inFlight === 0) sock.destroy();
  });
  const maybeEnd = () => {
    if (ended && inFlight === 0 && !sock.destroyed) sock.end();
  };
  sock.on("end", () => {
    ended = true;
    maybeEnd();
  });
  sock.on("data", (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    while (buf.length >= 2) {
      const len = buf.readUInt16BE(0);
      if (buf.length < 2 + len) break;
      const msg = new Uint8Array(buf.subarray(2, 2 + len));
      buf = buf.subarray(2 + len);
      inFlight++;
      if (inFlight >= pipeline) sock.pause();
      core.answer(msg, client, "tcp", (resp) => {
        inFlight--;
        if (resp && !sock.destroyed && !core.closed) {
          const frame = Buffer.alloc(2 + resp.length);
          frame.writeUInt16BE(resp.length, 0);
          frame.set(resp, 2);
          sock.write(frame);
        }
        if (inFlight < pipeline && sock.isPaused()) sock.resume();
        maybeEnd();
      });
    }
  });
}

/** Logs for per-query events: at most `burst` per `windowMs`, then one summary. */
class RateLimitedLog {
  #windowStart = 0;
  #count = 0;
  #suppressed = 0;
  constructor(
    readonly logger: Logger,
    readonly burst = 20,
    readonly windowMs = 10_000,
    readonly now: () => number = Date.now,
  ) {}

  debug(msg: string, fields: Record<string, unknown>): void {
    this.log("debug", msg, fields);
  }

  log(level: Level, msg: string, fields: Record<string, unknown>): void {
    if (!this.logger.enabled(level)) return;
    const t = this.now();
    if (t - this.#windowStart >= this.windowMs) {
      if (this.#suppressed > 0) {
        this.logger.log(level, "dns log records suppressed", {
          suppressed: this.#suppressed,
          windowMs: this.windowMs,
        });
      }
      this.#windowStart = t;
      this.#count = 0;
      this.#suppressed = 0;
    }
    if (this.#count++ < this.burst) this.logger.log(level, msg, fields);
    else this.#suppressed++;
  }
}

/**
 * The asking client's namespaces, looked up only if a short name needs them.
 * A class rather than an object literal with a getter: such a literal gets a
 * hidden class of its own per query, allocated in the old generation.
 */
class LazyNamespaces {
  constructor(
    readonly o: { namespacesFor(clientIp: string): readonly string[] },
    readonly client: string,
  ) {}

  get namespaces(): readonly string[] {
    return this.o.namespacesFor(this.client);
  }
}
