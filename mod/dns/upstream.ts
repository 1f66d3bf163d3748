/**
 * Forwarding to the host's resolvers: the `nameserver` lines of
 * /etc/resolv.conf (without the proxy's own address, so it never asks
 * itself), tried in order with a per-try timeout. The client's query is sent
 * unchanged (its ID, flags and EDNS options kept), over UDP for UDP clients
 * and over TCP for TCP clients. A UDP answer with TC set is returned as is:
 * the client retries over TCP, which is then forwarded over TCP.
 *
 * A reply is accepted only from the server asked, with the query's ID, QR set
 * and the same question; SERVFAIL and REFUSED move on to the next server (the
 * last such answer is returned when no server does better).
 *
 * @module
 */
import dgram from "node:dgram";
import net from "node:net";
import { Buffer } from "node:buffer";
import { isIP } from "node:net";
import type { HostPort } from "../hbone/authority.ts";
import { canonicalIp, isLoopbackIp } from "../config/formats.ts";
import { RCODE, readHeader } from "./packet.ts";
import type { DnsTransport } from "./handler.ts";

/** The outcome of {@link DnsForwarder.forward}. */
export type ForwardResult =
  | { readonly ok: true; readonly response: Uint8Array; readonly server: string }
  | { readonly ok: false; readonly error: string };

/** What the server needs from an upstream: forward one raw query. */
export interface DnsForwarder {
  /**
   * Sends `query` upstream and returns the first acceptable reply.
   * `questionWire` (the question's bytes) lets replies be checked against it.
   */
  forward(
    query: Uint8Array,
    o: { transport: DnsTransport; questionWire?: Uint8Array },
  ): Promise<ForwardResult>;
  /** Cancels forwards in flight (they resolve as failures). */
  close(): void;
}

/** Options for {@link Upstream}. */
export interface UpstreamOptions {
  /** Resolvers, in order. */
  readonly servers: readonly HostPort[];
  /** Time for one try at one server, ms (default 2000). */
  readonly timeoutMs?: number;
  /** Queries forwarded at once; more fail at once (default 1024). */
  readonly maxInFlight?: number;
}

/** Options for {@link Upstream.fromResolvConf}. */
export interface ResolvConfOptions extends Omit<UpstreamOptions, "servers"> {
  /** Path of resolv.conf (default `/etc/resolv.conf`). */
  readonly path?: string;
  /** The proxy's own listen addresses, never used as upstreams. */
  readonly exclude?: readonly HostPort[];
}

/** Raised when resolv.conf cannot be read. */
export class ResolvConfError extends Error {
  override readonly name = "ResolvConfError";
  readonly code = "ERESOLVCONF";
}

/**
 * Parses resolv.conf text: the addresses of its `nameserver` lines, port 53,
 * in order, without duplicates and without any in `exclude` (same address and
 * port; an unspecified listen address such as 0.0.0.0 excludes every local
 * loopback address on its port). Comments start with `#` or `;`.
 */
export function parseResolvConf(text: string, exclude: readonly HostPort[] = []): HostPort[] {
  const out: HostPort[] = [];
  const seen = new Set<string>();
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const [key, value] = line.split(/\s+/);
    if (key !== "nameserver" || !value) continue;
    const [addr, zone] = value.split("%");
    if (isIP(addr) === 0) continue;
    const ip = canonicalIp(addr) + (zone ? `%${zone}` : "");
    const server = { ip, port: 53 };
    const key2 = `${ip}:53`;
    if (seen.has(key2) || exclude.some((x) => isSelf(server, x))) continue;
    seen.add(key2);
    out.push(server);
  }
  return out;
}

function isSelf(server: HostPort, listen: HostPort): boolean {
  if (server.port !== listen.port) return false;
  const l = canonicalIp(listen.ip);
  if (l === "0.0.0.0" || l === "::") return isLoopbackIp(server.ip);
  return canonicalIp(server.ip) === l;
}

/** Forwards queries to a list of resolvers over UDP and TCP. */
export class Upstream implements DnsForwarder {
  readonly servers: readonly HostPort[];
  readonly timeoutMs: number;
  readonly maxInFlight: number;
  #inFlight = new Set<() => void>();
  #closed = false;

  constructor(o: UpstreamOptions) {
    for (const s of o.servers) {
      if (
        isIP(s.ip.split("%")[0]) === 0 || !Number.isInteger(s.port) || s.port < 1 || s.port > 65535
      ) {
        throw new TypeError(`upstream resolver "${s.ip}:${s.port}" is not an IP address and port`);
      }
    }
    this.servers = o.servers;
    this.timeoutMs = o.timeoutMs ?? 2000;
    this.maxInFlight = o.maxInFlight ?? 1024;
    if (!(this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${this.timeoutMs}`);
  }

  /**
   * An upstream with the nameservers of resolv.conf.
   *
   * @example
   * ```ts
   * const up = await Upstream.fromResolvConf({ exclude: [{ ip: "127.0.0.1", port: 15053 }] });
   * ```
   */
  static async fromResolvConf(o: ResolvConfOptions = {}): Promise<Upstream> {
    const path = o.path ?? "/etc/resolv.conf";
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) text = "";
      else {
        throw new ResolvConfError(
          `cannot read ${path} for the upstream resolvers: ${(e as Error).message}; ` +
            "make it readable or give the DNS proxy its upstream servers explicitly",
          { cause: e },
        );
      }
    }
    return new Upstream({ ...o, servers: parseResolvConf(text, o.exclude) });
  }

  /** @inheritdoc */
  async forward(
    query: Uint8Array,
    o: { transport: DnsTransport; questionWire?: Uint8Array },
  ): Promise<ForwardResult> {
    if (this.#closed) return { ok: false, error: "the forwarder is closed" };
    if (this.servers.length === 0) return { ok: false, error: "no upstream resolvers configured" };
    if (this.#inFlight.size >= this.maxInFlight) {
      return { ok: false, error: `over ${this.maxInFlight} queries in flight upstream` };
    }
    const errors: string[] = [];
    let fallback: { response: Uint8Array; server: string } | undefined;
    for (const server of this.servers) {
      const label = formatServer(server);
      try {
        const response = await this.#try(server, query, o.transport, o.questionWire);
        const rcode = readHeader(response)!.rcode;
        if (rcode !== RCODE.SERVFAIL && rcode !== RCODE.REFUSED) {
          return { ok: true, response, server: label };
        }
        fallback = { response, server: label };
        errors.push(`${label}: rcode ${rcode}`);
      } catch (e) {
        errors.push(`${label}: ${(e as Error).message}`);
      }
      if (this.#closed) break;
    }
    if (fallback) return { ok: true, ...fallback };
    return { ok: false, error: errors.join("; ") };
  }

  /** @inheritdoc */
  close(): void {
    this.#closed = true;
    for (const cancel of [...this.#inFlight]) cancel();
  }

  #try(
    server: HostPort,
    query: Uint8Array,
    transport: DnsTransport,
    questionWire: Uint8Array | undefined,
  ): Promise<Uint8Array> {
    const accept = (r: Uint8Array) => acceptable(r, query, questionWire);
    return transport === "udp"
      ? this.#guard((done) => udpExchange(server, query, accept, this.timeoutMs, done))
      : this.#guard((done) => tcpExchange(server, query, accept, this.timeoutMs, done));
  }

  /** Runs one exchange, registering its cancel function while it runs. */
  #guard(
    run: (done: { cancel?: () => void }) => Promise<Uint8Array>,
  ): Promise<Uint8Array> {
    const handle: { cancel?: () => void } = {};
    const p = run(handle);
    const cancel = () => handle.cancel?.();
    this.#inFlight.add(cancel);
    return p.finally(() => this.#inFlight.delete(cancel));
  }
}

function formatServer(s: HostPort): string {
  return s.ip.includes(":") ? `[${s.ip}]:${s.port}` : `${s.ip}:${s.port}`;
}

/** A reply to `query`: QR set, same ID, one question equal to ours (ASCII case ignored). */
function acceptable(
  r: Uint8Array,
  query: Uint8Array,
  q: Uint8Array | undefined,
): string | undefined {
  const h = readHeader(r);
  if (!h) return "a reply shorter than a DNS header";
  if (!h.qr) return "a query instead of a reply";
  if (h.id !== ((query[0] << 8) | query[1])) return "a reply with another ID";
  if (!q) return undefined;
  // A truncated reply may come without its question (RFC 2181 allows it).
  if (h.qdcount === 0 && (h.flags & (1 << 9))) return undefined;
  if (h.qdcount !== 1 || r.length < 12 + q.length) return "a reply to another question";
  for (let i = 0; i < q.length; i++) {
    const a = r[12 + i], b = q[i];
    if (a !== b && (a | 0x20) !== (b | 0x20)) return "a reply to another question";
  }
  return undefined;
}

function udpExchange(
  server: HostPort,
  query: Uint8Array,
  accept: (r: Uint8Array) => string | undefined,
  timeoutMs: number,
  handle: { cancel?: () => void },
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const ip = server.ip;
    const sock = dgram.createSocket(isIP(ip.split("%")[0]) === 6 ? "udp6" : "udp4");
    let rejected = "no reply";
    const finish = (err?: Error, value?: Uint8Array) => {
      clearTimeout(timer);
      try {
        sock.close();
      } catch { /* already closed */ }
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(
      () => finish(new Error(`${rejected} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    handle.cancel = () => finish(new Error("cancelled"));
    sock.on("error", (e) => finish(e));
    sock.on("message", (msg: Buffer, rinfo: { address: string; port: number }) => {
      if (
        rinfo.port !== server.port || canonicalIp(rinfo.address) !== canonicalIp(ip.split("%")[0])
      ) {
        return; // not from the server we asked: ignore
      }
      const bad = accept(msg);
      if (bad) {
        rejected = `only ${bad}`;
        return;
      }
      finish(undefined, new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
    });
    sock.send(query, server.port, ip, (e) => {
      if (e) finish(e);
    });
  });
}

function tcpExchange(
  server: HostPort,
  query: Uint8Array,
  accept: (r: Uint8Array) => string | undefined,
  timeoutMs: number,
  handle: { cancel?: () => void },
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: server.ip, port: server.port });
    let buf: Buffer = Buffer.alloc(0);
    const finish = (err?: Error, value?: Uint8Array) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(
      () => finish(new Error(`no TCP reply within ${timeoutMs} ms`)),
      timeoutMs,
    );
    handle.cancel = () => finish(new Error("cancelled"));
    sock.on("error", (e) => finish(e));
    sock.on("connect", () => {
      const frame = Buffer.alloc(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      frame.set(query, 2);
      sock.write(frame);
    });
    sock.on("data", (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) return;
        const msg = new Uint8Array(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        const bad = accept(msg);
        if (!bad) return finish(undefined, msg);
      }
    });
    sock.on("end", () => finish(new Error("the server closed the TCP connection without a reply")));
  });
}
