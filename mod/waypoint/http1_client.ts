/**
 * The waypoint's HTTP/1.1 client toward apps: one request at a time on a
 * duplex (an HBONE stream to the endpoint's node), keep-alive reuse through
 * {@link Http1Pool}. It replaces node:http's client on this path, which cost
 * about three times the CPU per request (its agent, request and parser
 * objects): the request head is written in one piece with a buffered body,
 * the response is parsed straight from the stream's chunks.
 *
 * Responses are read strictly (RFC 9112): a status line `HTTP/1.x NNN`,
 * token header names, no obsolete line folding, no bare CR or LF, head size
 * limited; `content-length` and `transfer-encoding` together, differing
 * `content-length`s or a transfer coding other than `chunked` are errors
 * (the caller answers 502): what a smuggling attempt from the app side needs
 * is refused. Interim 1xx answers are skipped; HEAD, 204 and 304 have no
 * body; without framing the body runs to the end of the stream (and the
 * connection is not reused).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { type Duplex, Writable } from "node:stream";
import type { HeaderList } from "./headers.ts";

/** Largest response head (status line and headers) accepted, bytes. */
export const MAX_RESPONSE_HEAD = 64 * 1024;
/** Largest chunk-size line or trailer section accepted, bytes. */
const MAX_CHUNK_LINE = 4096;

/** A response the client cannot accept (malformed, too large, or closed early). */
export class Http1ResponseError extends Error {
  /** The connection closed (or was closed) rather than carrying a bad response. */
  readonly closed: boolean;
  constructor(message: string, opts: { closed?: boolean } = {}) {
    super(message);
    this.name = "Http1ResponseError";
    this.closed = opts.closed ?? false;
  }
}

/** A parsed response head. */
export interface ResponseHead {
  readonly minor: 0 | 1;
  readonly status: number;
  /** Names lower case, in order. */
  readonly headers: HeaderList;
  /** Bytes of the head, blank line included. */
  readonly length: number;
}

/** An RFC 9110 token (method, header name). */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?:[ \t][^\r\n]*)?$/;
const BAD_VALUE = /[\0\r\n]/;

/** Index of CR LF CR LF in `b` from `from`, or -1. */
export function headEnd(b: Uint8Array, from: number): number {
  for (let i = Math.max(0, from); i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

/**
 * Parses the response head at the start of `b`: undefined while incomplete;
 * throws {@link Http1ResponseError} when malformed or over `max` bytes.
 */
export function parseResponseHead(
  b: Uint8Array,
  max = MAX_RESPONSE_HEAD,
): ResponseHead | undefined {
  const end = headEnd(b, 0);
  if (end < 0) {
    if (b.length > max) throw new Http1ResponseError(`response head over ${max} bytes`);
    return undefined;
  }
  if (end + 4 > max) throw new Http1ResponseError(`response head over ${max} bytes`);
  const text = Buffer.from(b.buffer, b.byteOffset, end).toString("latin1");
  const lines = text.split("\r\n");
  const m = STATUS_LINE.exec(lines[0]);
  if (!m) throw new Http1ResponseError(`malformed status line "${lines[0].slice(0, 80)}"`);
  const headers: HeaderList = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Http1ResponseError(`malformed header line "${line.slice(0, 80)}"`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) {
      throw new Http1ResponseError(`malformed header name "${name.slice(0, 80)}"`);
    }
    const value = line.slice(colon + 1).trim();
    if (BAD_VALUE.test(value)) throw new Http1ResponseError(`header "${name}" has a control byte`);
    headers.push([name.toLowerCase(), value]);
  }
  return { minor: m[1] === "0" ? 0 : 1, status: Number(m[2]), headers, length: end + 4 };
}

/** How a response body is delimited. */
export type BodyFraming =
  | { readonly kind: "none" }
  | { readonly kind: "length"; readonly length: number }
  | { readonly kind: "chunked" }
  | { readonly kind: "close" };

/** The body framing of a response to `method` (RFC 9112 §6.3); throws on conflicting framing. */
export function responseFraming(method: string, head: ResponseHead): BodyFraming {
  const te: string[] = [];
  const cl: string[] = [];
  for (const [k, v] of head.headers) {
    if (k === "transfer-encoding") te.push(v);
    else if (k === "content-length") cl.push(v);
  }
  if (method === "HEAD" || head.status < 200 || head.status === 204 || head.status === 304) {
    return { kind: "none" };
  }
  if (te.length > 0) {
    if (cl.length > 0) {
      throw new Http1ResponseError("response has both transfer-encoding and content-length");
    }
    const codings = te.join(",").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new Http1ResponseError(`unsupported transfer-encoding "${te.join(", ")}"`);
    }
    return { kind: "chunked" };
  }
  if (cl.length > 0) {
    const values = new Set(cl.flatMap((v) => v.split(",").map((s) => s.trim())));
    const [v] = values;
    if (values.size !== 1 || !/^\d{1,15}$/.test(v)) {
      throw new Http1ResponseError(`invalid content-length "${cl.join(", ")}"`);
    }
    return { kind: "length", length: Number(v) };
  }
  return { kind: "close" };
}

/** Whether the connection may carry another request after this response. */
function keepAlive(head: ResponseHead): boolean {
  const conn = head.headers.filter(([k]) => k === "connection").flatMap(([, v]) =>
    v.toLowerCase().split(",").map((s) => s.trim())
  );
  if (conn.includes("close")) return false;
  return head.minor === 1 || conn.includes("keep-alive");
}

/**
 * Decodes a chunked body incrementally: `push` takes the stream's bytes and
 * calls `onData` per piece of chunk data; returns the bytes after the last
 * chunk and trailers once the body is complete, else undefined.
 */
export class ChunkedDecoder {
  #state: "size" | "data" | "data-crlf" | "trailers" = "size";
  #remaining = 0;
  #line = "";
  #trailers: HeaderList = [];

  constructor(readonly onData: (chunk: Uint8Array) => void) {}

  /** The trailer fields, once complete. */
  get trailers(): HeaderList {
    return this.#trailers;
  }

  /** Feeds bytes; the unused rest once the body ended, else undefined. Throws on malformed input. */
  push(b: Uint8Array): Uint8Array | undefined {
    let i = 0;
    while (i < b.length) {
      if (this.#state === "data") {
        const n = Math.min(this.#remaining, b.length - i);
        this.onData(b.subarray(i, i + n));
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = "data-crlf";
        continue;
      }
      // Line-oriented states: collect one line.
      const lf = b.indexOf(10, i);
      const stop = lf < 0 ? b.length : lf + 1;
      this.#line += Buffer.from(b.buffer, b.byteOffset + i, stop - i).toString("latin1");
      i = stop;
      if (this.#line.length > MAX_CHUNK_LINE) {
        throw new Http1ResponseError("chunk line or trailers too long");
      }
      if (lf < 0) break;
      if (!this.#line.endsWith("\r\n")) throw new Http1ResponseError("bare LF in chunked body");
      const line = this.#line.slice(0, -2);
      this.#line = "";
      if (this.#state === "data-crlf") {
        if (line !== "") throw new Http1ResponseError("chunk data longer than its size");
        this.#state = "size";
      } else if (this.#state === "size") {
        const m = /^([0-9a-fA-F]{1,12})[ \t]*(?:;.*)?$/.exec(line);
        if (!m) throw new Http1ResponseError(`malformed chunk size "${line.slice(0, 40)}"`);
        this.#remaining = parseInt(m[1], 16);
        this.#state = this.#remaining === 0 ? "trailers" : "data";
      } else {
        if (line === "") return b.subarray(i);
        const colon = line.indexOf(":");
        const name = colon > 0 ? line.slice(0, colon) : "";
        if (!TOKEN.test(name)) throw new Http1ResponseError("malformed trailer field");
        const value = line.slice(colon + 1).trim();
        if (BAD_VALUE.test(value)) throw new Http1ResponseError("trailer has a control byte");
        this.#trailers.push([name.toLowerCase(), value]);
      }
    }
    return undefined;
  }
}

/** A request to send: a head and a buffered body, or a body streamed through `bodyWriter`. */
export interface Http1Request {
  readonly method: string;
  readonly path: string;
  /** End-to-end headers; framing (`content-length`/`transfer-encoding`) is set here. */
  readonly headers: HeaderList;
  /** The whole body, or undefined to stream it (through {@link Http1Exchange.bodyWriter}). */
  readonly body?: readonly Uint8Array[];
  /** With a streamed body: its declared length, if the client declared one. */
  readonly contentLength?: number;
}

/** What the client reports about the response. */
export interface Http1Events {
  onHead(status: number, headers: HeaderList): void;
  /** A piece of the body; false asks the client to pause until `resume()`. */
  onData(chunk: Uint8Array): boolean;
  onEnd(trailers: HeaderList): void;
  /** The exchange failed; `beforeResponse` when no response head had arrived. */
  onError(error: Error, beforeResponse: boolean): void;
}

const METHODS_WITH_BODY = new Set(["POST", "PUT", "PATCH"]);
const FRAMING = new Set(["content-length", "transfer-encoding"]);

/** The request head's bytes. Throws when a name or value could split the head. */
export function requestHead(
  method: string,
  path: string,
  headers: HeaderList,
  framing: [string, string] | undefined,
): Buffer {
  if (!TOKEN.test(method) || /[\s\0]/.test(path) || path === "") {
    throw new Http1ResponseError(`cannot send request line "${method} ${path.slice(0, 80)}"`);
  }
  let s = `${method} ${path} HTTP/1.1\r\n`;
  for (const [k, v] of headers) {
    if (FRAMING.has(k)) continue;
    if (!TOKEN.test(k) || BAD_VALUE.test(v)) {
      throw new Http1ResponseError(`cannot send header "${k.slice(0, 80)}": invalid characters`);
    }
    s += `${k}: ${v}\r\n`;
  }
  if (framing) s += `${framing[0]}: ${framing[1]}\r\n`;
  return Buffer.from(s + "\r\n", "latin1");
}

/** One HTTP/1.1 connection over a duplex stream, one exchange at a time. */
export class Http1Connection {
  #buf: Uint8Array = new Uint8Array(0);
  #ex?: Http1Exchange;
  #closed = false;
  /** When it went idle (ms, performance.now()), for the pool. */
  idleSince = 0;
  /** Requests it carried. */
  requests = 0;

  constructor(readonly stream: Duplex) {
    stream.on("data", (c: Uint8Array) => this.#onData(c));
    stream.on("end", () => this.#onEnd());
    stream.on("error", (e: Error) => this.#fail(e));
    stream.on("close", () => this.#onClose());
  }

  /** Whether the stream is gone (closed, ended by the app, or failed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether a request is in progress. */
  get busy(): boolean {
    return this.#ex !== undefined;
  }

  /** Called when an exchange ended and the connection may be reused. */
  onIdle?: (conn: Http1Connection) => void;

  /** Sends `req`; the response comes through `events`. */
  request(req: Http1Request, events: Http1Events): Http1Exchange {
    if (this.#ex) throw new Error("Http1Connection: a request is already in progress");
    if (this.#closed) {
      throw new Http1ResponseError("the upstream connection is closed", { closed: true });
    }
    this.requests++;
    const ex = new Http1Exchange(this, req, events);
    this.#ex = ex;
    try {
      ex.start();
    } catch (e) {
      this.#ex = undefined; // nothing was written: the connection stays usable
      throw e;
    }
    return ex;
  }

  /** Tears the connection down. */
  destroy(): void {
    this.#closed = true;
    this.stream.destroy();
  }

  /** @internal The exchange finished: reuse when both sides are complete and kept alive. */
  finished(ex: Http1Exchange, reusable: boolean): void {
    if (this.#ex !== ex) return;
    this.#ex = undefined;
    if (!reusable || this.#closed || this.#buf.length > 0) {
      this.destroy();
      return;
    }
    this.onIdle?.(this);
  }

  #onData(c: Uint8Array): void {
    const ex = this.#ex;
    if (!ex) {
      if (c.length > 0) {
        // Bytes nobody asked for: the connection cannot be trusted any more.
        this.#buf = c;
        this.destroy();
      }
      return;
    }
    const input = this.#buf.length === 0 ? c : concat(this.#buf, c);
    this.#buf = new Uint8Array(0);
    try {
      const rest = ex.feed(input);
      if (rest && rest.length > 0) {
        // An incomplete head waits for more; bytes beyond a finished response
        // were not asked for (no pipelining): the connection is not reused.
        if (this.#ex === ex) this.#buf = rest;
        else this.destroy();
      }
    } catch (e) {
      ex.fail(e as Error);
    }
  }

  #onEnd(): void {
    this.#closed = true;
    const ex = this.#ex;
    if (ex) ex.streamEnded();
    queueMicrotask(() => this.stream.destroy());
  }

  #fail(e: Error): void {
    this.#closed = true;
    this.#ex?.fail(e);
  }

  #onClose(): void {
    this.#closed = true;
    this.#ex?.fail(new Http1ResponseError("the upstream connection closed", { closed: true }));
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** One request/response on an {@link Http1Connection}. */
export class Http1Exchange {
  #head?: ResponseHead;
  #framing?: BodyFraming;
  #remaining = 0;
  #chunked?: ChunkedDecoder;
  #done = false;
  #requestDone = false;
  #responseDone = false;
  #chunkedRequest = false;
  #paused = false;

  constructor(
    readonly conn: Http1Connection,
    readonly req: Http1Request,
    readonly events: Http1Events,
  ) {}

  /** Whether a response head arrived. */
  get responded(): boolean {
    return this.#head !== undefined;
  }

  /** @internal Writes the head (and a buffered body). */
  start(): void {
    const { req } = this;
    const s = this.conn.stream;
    if (req.body) {
      let n = 0;
      for (const c of req.body) n += c.length;
      const framing: [string, string] | undefined =
        n > 0 || METHODS_WITH_BODY.has(req.method) || req.headers.some(([k]) =>
            k === "content-length"
          )
          ? ["content-length", String(n)]
          : undefined;
      const head = requestHead(req.method, req.path, req.headers, framing);
      s.write(req.body.length === 0 ? head : Buffer.concat([head, ...req.body]));
      this.#requestDone = true;
    } else {
      this.#chunkedRequest = req.contentLength === undefined;
      const framing: [string, string] = this.#chunkedRequest
        ? ["transfer-encoding", "chunked"]
        : ["content-length", String(req.contentLength)];
      s.write(requestHead(req.method, req.path, req.headers, framing));
    }
  }

  /** A writable for a streamed request body (chunk-encoded when no length was declared). */
  bodyWriter(): Writable {
    const s = this.conn.stream;
    const chunked = this.#chunkedRequest;
    return new Writable({
      write: (chunk: Uint8Array, _enc, cb) => {
        if (this.#done) return cb();
        if (chunk.length === 0) return cb();
        const ok = chunked
          ? s.write(Buffer.concat([
            Buffer.from(`${chunk.length.toString(16)}\r\n`, "latin1"),
            chunk,
            CRLF,
          ]))
          : s.write(chunk);
        if (ok) cb();
        else s.once("drain", () => cb());
      },
      final: (cb) => {
        if (!this.#done && chunked) s.write(LAST_CHUNK);
        this.#requestDone = true;
        this.#maybeFinish();
        cb();
      },
    });
  }

  /** Resumes reading after `onData` returned false. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.conn.stream.resume();
  }

  /** @internal Consumes response bytes; returns bytes beyond this response. */
  feed(b: Uint8Array): Uint8Array | undefined {
    let input = b;
    while (!this.#head) {
      const head = parseResponseHead(input);
      if (!head) return input;
      input = input.subarray(head.length);
      if (head.status >= 100 && head.status < 200) {
        if (head.status === 101) throw new Http1ResponseError("the app switched protocols (101)");
        continue; // interim answer (100 Continue, 103 Early Hints): the final one follows
      }
      this.#framing = responseFraming(this.req.method, head);
      this.#head = head;
      this.events.onHead(head.status, head.headers);
      if (this.#done) return undefined;
      if (this.#framing.kind === "none") return this.#bodyEnd([], input);
      if (this.#framing.kind === "length") {
        this.#remaining = this.#framing.length;
        if (this.#remaining === 0) return this.#bodyEnd([], input);
      }
      if (this.#framing.kind === "chunked") {
        this.#chunked = new ChunkedDecoder((c) => this.#data(c));
      }
    }
    if (this.#responseDone || input.length === 0) return input;
    switch (this.#framing!.kind) {
      case "length": {
        const n = Math.min(this.#remaining, input.length);
        this.#remaining -= n;
        this.#data(input.subarray(0, n));
        return this.#remaining === 0 ? this.#bodyEnd([], input.subarray(n)) : undefined;
      }
      case "chunked": {
        const rest = this.#chunked!.push(input);
        return rest ? this.#bodyEnd(this.#chunked!.trailers, rest) : undefined;
      }
      default:
        this.#data(input);
        return undefined;
    }
  }

  #data(c: Uint8Array): void {
    if (this.#done || c.length === 0) return;
    if (!this.events.onData(c) && !this.#paused) {
      this.#paused = true;
      this.conn.stream.pause();
    }
  }

  #bodyEnd(trailers: HeaderList, rest: Uint8Array): Uint8Array {
    this.#responseDone = true;
    if (!this.#done) this.events.onEnd(trailers);
    if (!this.#requestDone && !this.#done) {
      // Answered before the request body was sent (an early 413, say): what is
      // left of the body goes nowhere, and the connection is not reused.
      this.#done = true;
      this.conn.finished(this, false);
    }
    this.#maybeFinish();
    return rest;
  }

  #maybeFinish(): void {
    if (!this.#responseDone || !this.#requestDone || this.#done) return;
    this.#done = true;
    const reusable = this.#framing?.kind !== "close" && keepAlive(this.#head!);
    this.conn.finished(this, reusable);
  }

  /** @internal The app ended its side. */
  streamEnded(): void {
    if (this.#head && this.#framing?.kind === "close" && !this.#responseDone) {
      this.#bodyEnd([], new Uint8Array(0));
      return;
    }
    this.fail(
      new Http1ResponseError("the upstream connection closed before the response ended", {
        closed: true,
      }),
    );
  }

  /** Abandons the exchange (timeout, client gone, or an error): the connection is closed. */
  fail(e: Error): void {
    if (this.#done) return;
    this.#done = true;
    const before = this.#head === undefined;
    this.conn.finished(this, false);
    if (!this.#responseDone) this.events.onError(e, before);
  }
}

const CRLF = Buffer.from("\r\n", "latin1");
const LAST_CHUNK = Buffer.from("0\r\n\r\n", "latin1");

/** Options of an {@link Http1Pool}. */
export interface Http1PoolOptions {
  /** Idle connections kept (the most recently used ones). */
  readonly maxIdle?: number;
  /** An idle connection older than this is closed, ms. */
  readonly idleMs?: number;
}

/** Keep-alive HTTP/1.1 connections to one endpoint, opened on demand, reused most-recent first. */
export class Http1Pool {
  #idle: Http1Connection[] = [];
  #open = new Set<Http1Connection>();
  #closed = false;
  readonly maxIdle: number;
  readonly idleMs: number;

  constructor(readonly dial: () => Promise<Duplex>, opts: Http1PoolOptions = {}) {
    this.maxIdle = opts.maxIdle ?? 16;
    this.idleMs = opts.idleMs ?? 60_000;
  }

  /** Open connections (busy and idle). */
  get size(): number {
    return this.#open.size;
  }

  /** Connections opened so far. */
  opened = 0;

  /** An idle connection, or a new one; `reused` tells which (a reused one may have gone stale). */
  async acquire(): Promise<{ conn: Http1Connection; reused: boolean }> {
    this.#prune();
    while (this.#idle.length > 0) {
      const c = this.#idle.pop()!;
      if (!c.closed) return { conn: c, reused: true };
    }
    const stream = await this.dial();
    this.opened++;
    const conn = new Http1Connection(stream);
    if (this.#closed) {
      conn.destroy();
      throw new Http1ResponseError("the upstream pool is closed");
    }
    this.#open.add(conn);
    stream.once("close", () => {
      this.#open.delete(conn);
      const i = this.#idle.indexOf(conn);
      if (i >= 0) this.#idle.splice(i, 1);
    });
    conn.onIdle = (c) => this.#release(c);
    return { conn, reused: false };
  }

  #release(c: Http1Connection): void {
    if (this.#closed || c.closed) return c.destroy();
    c.idleSince = performance.now();
    this.#idle.push(c);
    if (this.#idle.length > this.maxIdle) this.#idle.shift()!.destroy();
  }

  #prune(): void {
    const old = performance.now() - this.idleMs;
    while (this.#idle.length > 0 && this.#idle[0].idleSince < old) this.#idle.shift()!.destroy();
  }

  /** Closes every connection. */
  destroy(): void {
    this.#closed = true;
    for (const c of this.#open) c.destroy();
    this.#open.clear();
    this.#idle = [];
  }
}
