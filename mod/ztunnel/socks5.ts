/**
 * The ztunnel's SOCKS5 front end (RFC 1928), by default on 127.0.0.1:15080:
 * apps that honour `ALL_PROXY=socks5h://127.0.0.1:15080` are meshed without
 * VIPs. Only CONNECT without authentication; IPv4, IPv6 and domain-name
 * targets (names are resolved by the connector, mesh names first).
 *
 * _Decide, then do_: {@link parseSocks5} is a pure incremental parser of
 * the client's first bytes; the socket shell answers with its decision and
 * hands the target to a {@link ProxyConnector}.
 *
 * This file also holds what both explicit-proxy front ends share (the
 * listener shell, stats, refusals, target classification): http_proxy.ts
 * imports it.
 *
 * @module
 */
import net from "node:net";
import { Buffer } from "node:buffer";
import { canonicalIp, isLoopbackIp } from "../config/formats.ts";
import { formatAuthority, type HostPort } from "../hbone/authority.ts";
import type { Logger } from "../log/logger.ts";
import type { ProxyConnector, ProxyFailure, ProxyOpen, ProxyTarget } from "./proxy_connect.ts";
import { listenOn } from "../util/listen.ts";

// ---------------------------------------------------------------------------
// Targets (shared with http_proxy.ts)

/** Result of {@link proxyTarget}: the target, or why the host cannot be one. */
export type ProxyTargetResult =
  | { readonly ok: true; readonly target: ProxyTarget }
  | { readonly ok: false; readonly reason: string };

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const LABEL = /^[a-z0-9_-]{1,63}$/;
// A last label that is a number is an IPv4 address in a form resolvers read
// differently (127.1, 0x7f.1, 0177.0.0.1): refused rather than guessed at.
const NUMERIC_LABEL = /^(0x[0-9a-f]*|[0-9]+)$/;

/**
 * Classifies `host` as an IPv4 literal, an IPv6 literal (brackets optional;
 * canonical text, as `canonicalIp`) or a domain name (lower-cased, one
 * trailing dot dropped, labels of letters, digits, `-` and `_`), with a port
 * in 1-65535. Pure.
 *
 * @example
 * proxyTarget("[::1]", 443); // { ok: true, target: { host: "::1", port: 443, kind: "ipv6" } }
 * proxyTarget("Reviews.default.", 9080); // { ok: true, target: { host: "reviews.default", ... } }
 */
export function proxyTarget(host: string, port: number): ProxyTargetResult {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    return { ok: false, reason: `port ${port} is not in 1-65535` };
  }
  const shown = JSON.stringify(host);
  if (host.startsWith("[") || host.endsWith("]")) {
    const inner = host.slice(1, -1);
    if (!host.startsWith("[") || !host.endsWith("]") || net.isIP(inner) !== 6) {
      return { ok: false, reason: `${shown} is not a bracketed IPv6 address` };
    }
    return { ok: true, target: { host: canonicalIp(inner), port, kind: "ipv6" } };
  }
  if (V4.test(host)) return { ok: true, target: { host, port, kind: "ipv4" } };
  if (host.includes(":")) {
    if (net.isIP(host) !== 6 || host.includes("%")) {
      return { ok: false, reason: `${shown} is not an IPv6 address (zones are not supported)` };
    }
    return { ok: true, target: { host: canonicalIp(host), port, kind: "ipv6" } };
  }
  const name = (host.endsWith(".") ? host.slice(0, -1) : host).toLowerCase();
  if (name === "") return { ok: false, reason: "the host name is empty" };
  if (name.length > 253) {
    return { ok: false, reason: `host name of ${name.length} bytes (max 253)` };
  }
  const labels = name.split(".");
  if (!labels.every((l) => LABEL.test(l))) {
    return {
      ok: false,
      reason: `${shown} is not a host name (labels of 1-63 letters, digits, '-' or '_')`,
    };
  }
  if (NUMERIC_LABEL.test(labels[labels.length - 1])) {
    return { ok: false, reason: `${shown} is not a canonical dotted-quad IPv4 address` };
  }
  return { ok: true, target: { host: name, port, kind: "domain" } };
}

/** `host:port` for logs (`[v6]:port`). */
export function formatTarget(t: ProxyTarget): string {
  return t.kind === "ipv6" ? formatAuthority({ ip: t.host, port: t.port }) : `${t.host}:${t.port}`;
}

// ---------------------------------------------------------------------------
// The SOCKS5 parser (pure)

/** Why a SOCKS5 handshake was refused (a `stats.refused` key). */
export type Socks5Refusal =
  | "bad_version"
  | "no_acceptable_method"
  | "unsupported_command"
  | "unsupported_address_type"
  | "malformed"
  | "timeout"
  | "closed_early";

/** Every {@link Socks5Refusal}, for stats and metrics. */
export const SOCKS5_REFUSALS: readonly Socks5Refusal[] = [
  "bad_version",
  "no_acceptable_method",
  "unsupported_command",
  "unsupported_address_type",
  "malformed",
  "timeout",
  "closed_early",
];

/** SOCKS5 reply codes (RFC 1928 §6). */
export const SOCKS5_REPLY = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/** The one table from a connect failure to its SOCKS5 reply code (as documented in proxy_connect.ts). */
export const SOCKS5_FAILURE_REPLY: Readonly<Record<ProxyFailure, number>> = {
  not_allowed: SOCKS5_REPLY.notAllowed,
  host_unreachable: SOCKS5_REPLY.hostUnreachable,
  connection_refused: SOCKS5_REPLY.connectionRefused,
  timed_out: SOCKS5_REPLY.ttlExpired,
  general: SOCKS5_REPLY.generalFailure,
};

/**
 * The most bytes a greeting and a request take together (2 + 255 method
 * bytes, then 4 + 1 + 255 name bytes + 2): {@link parseSocks5} always
 * decides within this many bytes, which caps what a client can make the
 * server buffer before the request completes.
 */
export const MAX_SOCKS5_HANDSHAKE = 2 + 255 + 4 + 1 + 255 + 2;

/** Method selection `05 00`: no authentication. */
export const SOCKS5_METHOD_NO_AUTH: Uint8Array = Uint8Array.of(0x05, 0x00);
/** Method selection `05 FF`: no acceptable methods. */
export const SOCKS5_NO_ACCEPTABLE_METHOD: Uint8Array = Uint8Array.of(0x05, 0xff);
/** The SOCKS4 "request rejected or failed" reply (code 0x5B), for SOCKS4 clients. */
export const SOCKS4_REJECTED: Uint8Array = Uint8Array.of(0x00, 0x5b, 0, 0, 0, 0, 0, 0);

/**
 * What {@link parseSocks5} made of the bytes so far. `greeted` says the
 * greeting was complete and offered "no authentication": the server owes
 * the client {@link SOCKS5_METHOD_NO_AUTH} before any reply.
 */
export type Socks5Parse =
  | { readonly kind: "need-more"; readonly greeted: boolean }
  | {
    readonly kind: "request";
    readonly greeted: true;
    readonly target: ProxyTarget;
    /** Bytes of greeting and request; the rest is early data for the upstream. */
    readonly consumed: number;
  }
  | {
    readonly kind: "error";
    readonly greeted: boolean;
    readonly reason: Socks5Refusal;
    /** Bytes to send before closing (after `05 00` when greeted), if any. */
    readonly reply?: Uint8Array;
    readonly message: string;
  };

/** A SOCKS5 reply with `code` and BND.ADDR 0.0.0.0:0. */
export function encodeSocks5Reply(code: number): Uint8Array {
  return Uint8Array.of(0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0);
}

/**
 * Parses a SOCKS5 greeting and request from the first bytes a client sent
 * (all of them so far, from byte 0; call again with more). Pure; never
 * throws; decides within {@link MAX_SOCKS5_HANDSHAKE} bytes.
 *
 * @example
 * parseSocks5(Uint8Array.of(5, 1, 0)); // { kind: "need-more", greeted: true }
 */
export function parseSocks5(buf: Uint8Array): Socks5Parse {
  if (buf.length === 0) return { kind: "need-more", greeted: false };
  if (buf[0] !== 0x05) {
    return {
      kind: "error",
      greeted: false,
      reason: "bad_version",
      reply: buf[0] === 0x04 ? SOCKS4_REJECTED : undefined,
      message: buf[0] === 0x04
        ? "SOCKS4 is not supported; use SOCKS5 (socks5h://)"
        : `not a SOCKS5 greeting (first byte 0x${hex(buf[0])})`,
    };
  }
  if (buf.length < 2) return { kind: "need-more", greeted: false };
  const greetingEnd = 2 + buf[1];
  if (buf.length < greetingEnd) return { kind: "need-more", greeted: false };
  const methods = buf.subarray(2, greetingEnd);
  if (!methods.includes(0x00)) {
    return {
      kind: "error",
      greeted: false,
      reason: "no_acceptable_method",
      reply: SOCKS5_NO_ACCEPTABLE_METHOD,
      message: `no acceptable authentication method: offered [${
        [...methods].map(hex).join(", ")
      }], only 00 (no authentication) is supported`,
    };
  }
  return parseRequest(buf, greetingEnd);
}

function parseRequest(buf: Uint8Array, at: number): Socks5Parse {
  const more = { kind: "need-more", greeted: true } as const;
  const fail = (reason: Socks5Refusal, code: number, message: string): Socks5Parse => ({
    kind: "error",
    greeted: true,
    reason,
    reply: encodeSocks5Reply(code),
    message,
  });
  if (buf.length < at + 1) return more;
  if (buf[at] !== 0x05) {
    return fail(
      "bad_version",
      SOCKS5_REPLY.generalFailure,
      `request version 0x${hex(buf[at])}, expected 05`,
    );
  }
  if (buf.length < at + 2) return more;
  const cmd = buf[at + 1];
  if (cmd !== 0x01) {
    const name = ({ 2: "BIND", 3: "UDP ASSOCIATE" } as Record<number, string>)[cmd];
    return fail(
      "unsupported_command",
      SOCKS5_REPLY.commandNotSupported,
      `${name ?? `command 0x${hex(cmd)}`} is not supported, only CONNECT`,
    );
  }
  // buf[at + 2] is RSV: ignored, as most servers do.
  if (buf.length < at + 4) return more;
  const atyp = buf[at + 3];
  const addr = at + 4;
  let host: string, end: number;
  if (atyp === 0x01) {
    end = addr + 4;
    if (buf.length < end + 2) return more;
    host = [...buf.subarray(addr, end)].join(".");
  } else if (atyp === 0x04) {
    end = addr + 16;
    if (buf.length < end + 2) return more;
    const groups: string[] = [];
    for (let i = addr; i < end; i += 2) groups.push(((buf[i] << 8) | buf[i + 1]).toString(16));
    host = canonicalIp(groups.join(":"));
  } else if (atyp === 0x03) {
    if (buf.length < addr + 1) return more;
    const len = buf[addr];
    if (len === 0) return fail("malformed", SOCKS5_REPLY.generalFailure, "empty domain name");
    end = addr + 1 + len;
    if (buf.length < end + 2) return more;
    const name = buf.subarray(addr + 1, end);
    if (name.some((b) => b < 0x21 || b > 0x7e)) {
      return fail(
        "malformed",
        SOCKS5_REPLY.generalFailure,
        "domain name has non-printable or non-ASCII bytes",
      );
    }
    host = Buffer.from(name).toString("latin1");
  } else {
    return fail(
      "unsupported_address_type",
      SOCKS5_REPLY.addressTypeNotSupported,
      `address type 0x${hex(atyp)} is not supported (01 IPv4, 03 domain name, 04 IPv6)`,
    );
  }
  const port = (buf[end] << 8) | buf[end + 1];
  const t = proxyTarget(host, port);
  if (!t.ok) return fail("malformed", SOCKS5_REPLY.generalFailure, `bad target: ${t.reason}`);
  return { kind: "request", greeted: true, target: t.target, consumed: end + 2 };
}

function hex(b: number): string {
  return b.toString(16).padStart(2, "0");
}

// ---------------------------------------------------------------------------
// The listener shell (shared with http_proxy.ts)

/** Connect outcomes counted in {@link ProxyServerStats.connects}. */
export type ProxyConnectOutcome = "ok" | ProxyFailure;

/** Counters of an explicit-proxy front end; live (read them at scrape time). */
export interface ProxyServerStats<R extends string> {
  /** Client connections accepted. */
  connections: number;
  /** Client connections open now: in the handshake, being refused, or tunnelling. */
  active: number;
  /** Requests parsed and handed to the connector. */
  handshakes: number;
  /** Connector outcomes. */
  connects: Record<ProxyConnectOutcome, number>;
  /** Handshakes refused, by reason. */
  refused: Record<R, number>;
}

/** A running explicit-proxy front end. */
export interface ProxyServer<R extends string> {
  /** The bound address (the real port when 0 was asked for). */
  readonly address: HostPort;
  readonly stats: Readonly<ProxyServerStats<R>>;
  /**
   * Stops listening and closes every connection it accepted, tunnels
   * included; resolves when the listener is closed.
   */
  close(): Promise<void>;
  /** Stops accepting new clients; open tunnels go on (the first step of a graceful stop). */
  stopAccepting(): void;
}

/** A running SOCKS5 front end. */
export type Socks5Server = ProxyServer<Socks5Refusal>;

/** Raised when a front end cannot listen; `code` is the cause (`EADDRINUSE`, `ENOTLOOPBACK`, ...). */
export class ProxyListenError extends Error {
  override readonly name = "ProxyListenError";
  constructor(
    readonly code: string,
    message: string,
    readonly address: HostPort,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** What a front end decided about the bytes a client sent so far. */
export type FrontEndStep<R extends string> =
  | { readonly next: "more"; readonly write?: Uint8Array }
  | {
    readonly next: "refuse";
    readonly reason: R;
    /** Written before closing. */
    readonly reply?: Uint8Array;
    readonly message: string;
  }
  | {
    readonly next: "open";
    readonly target: ProxyTarget;
    /** Written at once, before connecting. */
    readonly write?: Uint8Array;
    /** Written when the connector succeeded, before relaying. */
    readonly success: Uint8Array;
    /**
     * Given back to the socket (unshift) for the relay: early data, a
     * rewritten head. Unshifted at once, before the connector is called.
     */
    readonly forward: Uint8Array;
    /** The reply for a failed connect. */
    failure(failure: ProxyFailure, message: string): Uint8Array;
  };

/** One front-end protocol, for {@link listenFrontEnd}. */
export interface FrontEndProtocol<R extends string> {
  /** For messages and logs: "SOCKS5", "HTTP proxy". */
  readonly name: string;
  readonly via: "socks5" | "http";
  readonly reasons: readonly R[];
  /** A new conversation for one client: decides on all bytes received so far. */
  session(): {
    step(buf: Uint8Array): FrontEndStep<R | CommonRefusal>;
    /** The reply when the handshake deadline passes, if any. */
    timeoutReply(): Uint8Array | undefined;
  };
}

/** Options shared by the front ends' `serve*` functions. */
export interface FrontEndOptions {
  /** Where to listen; a loopback address (explicit proxies are local only). */
  listen?: HostPort;
  /** Opens upstreams. */
  connector: ProxyConnector;
  logger: Logger;
  /** Deadline for the client to complete its request (default 10 000 ms). */
  handshakeTimeoutMs?: number;
}

/** How long a refused client gets to read the reply before the socket is destroyed. */
const REFUSAL_LINGER_MS = 2_000;
const EMPTY = new Uint8Array(0);

/** Refusal reasons every front end has, besides its protocol's own. */
export type CommonRefusal = "timeout" | "closed_early";

/**
 * Binds `listen` (loopback only) and runs `protocol` on every accepted
 * connection. Shared by {@link serveSocks5} and `serveHttpProxy`; rejects
 * with {@link ProxyListenError} when it cannot bind.
 */
export async function listenFrontEnd<R extends string>(
  protocol: FrontEndProtocol<R>,
  o: FrontEndOptions & { listen: HostPort },
): Promise<ProxyServer<R | CommonRefusal>> {
  const timeoutMs = o.handshakeTimeoutMs ?? 10_000;
  checkListen(protocol.name, o.listen);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`handshakeTimeoutMs must be a positive number, got ${timeoutMs}`);
  }
  const fe = new FrontEnd(protocol, o.connector, o.logger, timeoutMs);
  await fe.listen(o.listen);
  return fe;
}

/** The socket shell around a {@link FrontEndProtocol}. */
class FrontEnd<R extends string> implements ProxyServer<R | CommonRefusal> {
  readonly stats: ProxyServerStats<R | CommonRefusal>;
  address: HostPort = { ip: "", port: 0 };
  readonly #srv: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #closing = false;

  constructor(
    readonly protocol: FrontEndProtocol<R>,
    readonly connector: ProxyConnector,
    readonly log: Logger,
    readonly timeoutMs: number,
  ) {
    this.stats = {
      connections: 0,
      active: 0,
      handshakes: 0,
      connects: {
        ok: 0,
        not_allowed: 0,
        host_unreachable: 0,
        connection_refused: 0,
        timed_out: 0,
        general: 0,
      },
      refused: Object.fromEntries(
        [...protocol.reasons, "timeout", "closed_early"].map((r) => [r, 0]),
      ) as Record<R | CommonRefusal, number>,
    };
    this.#srv = net.createServer({ allowHalfOpen: true }, (sock) => this.#accept(sock));
  }

  async listen(at: HostPort): Promise<void> {
    const name = this.protocol.name;
    await new Promise<void>((resolve, reject) => {
      this.#srv.once("error", (e) => reject(listenError(name, at, e)));
      this.#srv.listen(listenOn(at), () => {
        this.#srv.removeAllListeners("error");
        this.#srv.on("error", (e) => this.log.error(`${name} listener failed`, { error: e }));
        resolve();
      });
    });
    const a = this.#srv.address() as net.AddressInfo;
    this.address = { ip: a.address, port: a.port };
    this.log.info(`${name} listening`, { address: formatAuthority(this.address) });
  }

  close(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#closing = true;
      if (this.#srv.listening) this.#srv.close(() => resolve());
      else resolve();
      for (const s of this.#sockets) s.destroy();
    });
  }

  stopAccepting(): void {
    if (this.#srv.listening) this.#srv.close();
  }

  #accept(sock: net.Socket): void {
    this.stats.connections++;
    this.stats.active++;
    this.#sockets.add(sock);
    sock.once("close", () => {
      this.stats.active--;
      this.#sockets.delete(sock);
    });
    sock.on("error", () => {});
    sock.setNoDelay(true);
    this.#converse(sock);
  }

  /** Reads until the protocol decides, within the deadline, then refuses or opens. */
  #converse(sock: net.Socket): void {
    const { protocol, stats, log } = this;
    const peer = formatAuthority({ ip: sock.remoteAddress ?? "?", port: sock.remotePort ?? 0 });
    const session = protocol.session();
    let buf: Uint8Array = EMPTY;
    let decided = false;
    const done = () => {
      decided = true;
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("end", onEnd);
      sock.off("close", onClose);
    };
    const refuse = (reason: R | CommonRefusal, message: string, reply?: Uint8Array) => {
      if (decided) return;
      done();
      stats.refused[reason]++;
      log.info(`${protocol.name} request refused`, { peer, reason, message });
      closeAfter(sock, reply);
    };
    const timer = setTimeout(() => {
      refuse("timeout", `no complete request within ${this.timeoutMs} ms`, session.timeoutReply());
    }, this.timeoutMs);
    const onEnd = () => refuse("closed_early", "client closed before completing its request");
    // A reset, or close() of the server, before the request was complete.
    const onClose = () => {
      if (decided) return;
      done();
      if (!this.#closing) stats.refused.closed_early++;
    };
    const onData = (chunk: Uint8Array) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const s = session.step(buf);
      if (s.next === "more") return void (s.write && sock.write(s.write));
      if (s.next === "refuse") return refuse(s.reason, s.message, s.reply);
      done();
      sock.pause();
      // Given back now, in this turn: a socket whose buffer is empty may emit
      // "end" while paused (a client that half-closed after its request), and
      // nothing can be unshifted after that.
      if (s.forward.length > 0) sock.unshift(s.forward);
      stats.handshakes++;
      if (s.write) sock.write(s.write);
      this.#open(sock, peer, s).catch((e) => {
        log.error(`${protocol.name} connection failed`, { peer, error: e });
        sock.destroy();
      });
    };
    sock.on("data", onData);
    sock.on("end", onEnd);
    sock.on("close", onClose);
  }

  async #open(
    sock: net.Socket,
    peer: string,
    s: Extract<FrontEndStep<R>, { next: "open" }>,
  ): Promise<void> {
    const name = this.protocol.name;
    const target = formatTarget(s.target);
    let r: ProxyOpen;
    try {
      r = await this.connector.connect(sock, s.target, this.protocol.via);
    } catch (e) {
      r = { ok: false, failure: "general", message: `connector failed: ${(e as Error).message}` };
    }
    if (!r.ok) {
      this.stats.connects[r.failure]++;
      this.log.info(`${name} connect failed`, {
        peer,
        target,
        failure: r.failure,
        message: r.message,
      });
      return closeAfter(sock, s.failure(r.failure, r.message));
    }
    this.stats.connects.ok++;
    this.log.debug(`${name} connected`, { peer, target });
    // Even if the client left meanwhile, pipe() is what releases the upstream.
    if (s.success.length > 0) sock.write(s.success);
    await r.pipe();
  }
}

/**
 * Sends `reply` (if any), ends the socket and discards what the client
 * still sends, so the reply is not lost to a reset; a client that does not
 * close within {@link REFUSAL_LINGER_MS} is cut off.
 */
function closeAfter(sock: net.Socket, reply?: Uint8Array): void {
  sock.on("data", () => {});
  sock.resume();
  sock.end(reply ?? EMPTY);
  const linger = setTimeout(() => sock.destroy(), REFUSAL_LINGER_MS);
  sock.once("close", () => clearTimeout(linger));
}

function checkListen(name: string, listen: HostPort): void {
  if (net.isIP(listen.ip) === 0) {
    throw new TypeError(`${name} listen address must be an IP address, got "${listen.ip}"`);
  }
  if (!Number.isInteger(listen.port) || listen.port < 0 || listen.port > 65535) {
    throw new RangeError(`${name} listen port must be in 0-65535, got ${listen.port}`);
  }
  if (!isLoopbackIp(listen.ip)) {
    throw new ProxyListenError(
      "ENOTLOOPBACK",
      `${name} cannot listen on ${formatAuthority(listen)}: not a loopback address; ` +
        "explicit proxies are local only (anyone who reaches them is meshed as a local " +
        "workload), use 127.0.0.1 or ::1",
      listen,
    );
  }
}

function listenError(name: string, at: HostPort, e: Error): ProxyListenError {
  const code = (e as { code?: string }).code ?? "ELISTEN";
  const where = formatAuthority(at);
  const why = code === "EADDRINUSE"
    ? "the address is already in use; stop the process holding it " +
      `(ss -ltnp 'sport = :${at.port}') or choose another port`
    : code === "EADDRNOTAVAIL" || code === "EINVAL"
    ? `${at.ip} is not an address of this host; use 127.0.0.1 or ::1`
    : code === "EACCES"
    ? "permission denied (ports below 1024 need privileges); choose a port above 1023"
    : e.message;
  return new ProxyListenError(code, `${name} cannot listen on ${where}: ${why}`, at, { cause: e });
}

// ---------------------------------------------------------------------------
// SOCKS5

/** The default SOCKS5 listen address, as Istio's ztunnel. */
export const SOCKS5_DEFAULT_LISTEN: HostPort = { ip: "127.0.0.1", port: 15080 };

/** Options for {@link serveSocks5}. */
export interface Socks5Options extends FrontEndOptions {
  /** Where to listen, a loopback address (default 127.0.0.1:15080). */
  listen?: HostPort;
}

const SOCKS5_PROTOCOL: FrontEndProtocol<Socks5Refusal> = {
  name: "SOCKS5",
  via: "socks5",
  reasons: SOCKS5_REFUSALS,
  session() {
    let methodSent = false;
    return {
      step(buf) {
        const r = parseSocks5(buf);
        // Clients may wait for `05 00` before sending the request (curl does).
        const greet = r.greeted && !methodSent ? SOCKS5_METHOD_NO_AUTH : undefined;
        if (greet) methodSent = true;
        if (r.kind === "need-more") return { next: "more", write: greet };
        if (r.kind === "error") {
          const reply = greet && r.reply ? Buffer.concat([greet, r.reply]) : greet ?? r.reply;
          return { next: "refuse", reason: r.reason, reply, message: r.message };
        }
        return {
          next: "open",
          target: r.target,
          write: greet,
          success: encodeSocks5Reply(SOCKS5_REPLY.succeeded),
          forward: buf.subarray(r.consumed),
          failure: (f) => encodeSocks5Reply(SOCKS5_FAILURE_REPLY[f]),
        };
      },
      // A client that stalls gets no reply: it is not speaking SOCKS5 in earnest.
      timeoutReply: () => undefined,
    };
  },
};

/**
 * Serves SOCKS5 (RFC 1928) CONNECT without authentication; binds before
 * resolving. Refusals: a greeting without method 00 gets `05 FF`;
 * BIND, UDP ASSOCIATE and other commands get reply 07; unknown address
 * types 08; an empty or invalid domain name or port 0 gets 01; a version
 * other than 5 is closed (SOCKS4 clients first get the SOCKS4 rejection
 * 0x5B); a handshake over the deadline is closed. Connect failures are
 * answered as in proxy_connect.ts. Bytes sent after the request reach the
 * upstream in order.
 *
 * @example
 * const socks = await serveSocks5({ connector, logger });
 * // curl --socks5-hostname 127.0.0.1:15080 http://reviews.default:9080/
 * await socks.close();
 */
export async function serveSocks5(options: Socks5Options): Promise<Socks5Server> {
  return await listenFrontEnd(SOCKS5_PROTOCOL, {
    ...options,
    listen: options.listen ?? SOCKS5_DEFAULT_LISTEN,
  });
}
