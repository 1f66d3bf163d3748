/**
 * The waypoint's HTTP/1.1 server inside a tunnel: requests are parsed
 * straight from the tunnel stream's chunks and answered on it, one at a
 * time (pipelined requests wait their turn). It replaces node:http's server
 * on this path, which cost most of the waypoint's CPU per request (its
 * parser binding, IncomingMessage/ServerResponse and socket machinery).
 *
 * Requests are read strictly (RFC 9112), and what request smuggling needs is
 * refused with 400 before anything is forwarded: `content-length` with
 * `transfer-encoding`, differing or malformed lengths, a transfer coding
 * other than `chunked`, obsolete line folding, bare CR or LF, control bytes
 * in values, a missing or repeated `Host` in HTTP/1.1; a head over 16 KiB
 * is 431; a malformed chunked body closes the connection. `Expect:
 * 100-continue` is answered at once. Responses are framed here: the
 * handler's `content-length`, else chunked (HTTP/1.1, trailers when
 * declared), else to the end of the connection (HTTP/1.0). Idle keep-alive
 * connections close after 5 s, a head must arrive within 60 s (as
 * node:http's defaults).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { STATUS_CODES } from "node:http";
import { type Duplex, Readable } from "node:stream";
import type { HeaderList } from "./headers.ts";
import { ChunkedDecoder, headEnd, TOKEN } from "./http1_client.ts";

/** Largest request head accepted (431 beyond), bytes. */
export const MAX_REQUEST_HEAD = 16 * 1024;
/** An idle keep-alive connection closes after this, ms. */
export const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** A request head must be complete this long after its first byte, ms. */
export const HEADERS_TIMEOUT_MS = 60_000;
/** Bytes of pipelined requests held while one is answered before reading pauses. */
const MAX_PIPELINED = 64 * 1024;

/** A request the server refuses before the handler sees it. */
export class Http1RequestError extends Error {
  constructor(readonly status: 400 | 431, message: string) {
    super(message);
    this.name = "Http1RequestError";
  }
}

/** A parsed request head. */
export interface RequestHead {
  readonly method: string;
  /** The request target as sent (origin form `/p?q`, or absolute form). */
  readonly target: string;
  readonly minor: 0 | 1;
  /** Names lower case, in order. */
  readonly headers: HeaderList;
  /** Bytes of the head, blank line included (leading empty lines too). */
  readonly length: number;
}

const REQUEST_LINE = /^([^ ]+) ([^ ]+) HTTP\/1\.([01])$/;
// deno-lint-ignore no-control-regex
const CTL = /[\x00-\x08\x0a-\x1f\x7f]/;
// deno-lint-ignore no-control-regex
const TARGET_BAD = /[\x00-\x20\x7f]/;

/**
 * Parses the request head at the start of `b`: undefined while incomplete;
 * throws {@link Http1RequestError} (400, or 431 over `max` bytes).
 */
export function parseRequestHead(b: Uint8Array, max = MAX_REQUEST_HEAD): RequestHead | undefined {
  // At least one empty line before a request is ignored (RFC 9112 §2.2).
  let start = 0;
  while (start + 1 < b.length && b[start] === 13 && b[start + 1] === 10) start += 2;
  const end = headEnd(b, start);
  // A bare LF or CR in the head: refused at once rather than waited on.
  const scan = end < 0 ? b.length : end;
  for (let i = start; i < scan; i++) {
    if (b[i] === 10 && (i === 0 || b[i - 1] !== 13)) {
      throw new Http1RequestError(400, "bare LF in the request head");
    }
    if (b[i] === 13 && i + 1 < b.length && b[i + 1] !== 10) {
      throw new Http1RequestError(400, "bare CR in the request head");
    }
  }
  if (end < 0) {
    if (b.length - start > max) throw new Http1RequestError(431, `request head over ${max} bytes`);
    return undefined;
  }
  if (end + 4 - start > max) throw new Http1RequestError(431, `request head over ${max} bytes`);
  const text = Buffer.from(b.buffer, b.byteOffset + start, end - start).toString("latin1");
  const lines = text.split("\r\n");
  const m = REQUEST_LINE.exec(lines[0]);
  if (!m || !TOKEN.test(m[1]) || TARGET_BAD.test(m[2])) {
    throw new Http1RequestError(400, `malformed request line "${lines[0].slice(0, 80)}"`);
  }
  const headers: HeaderList = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) {
      throw new Http1RequestError(400, `malformed header line "${line.slice(0, 80)}"`);
    }
    const value = line.slice(colon + 1).trim();
    if (CTL.test(value)) throw new Http1RequestError(400, `header "${name}" has a control byte`);
    headers.push([name.toLowerCase(), value]);
  }
  return {
    method: m[1],
    target: m[2],
    minor: m[3] === "0" ? 0 : 1,
    headers,
    length: end + 4,
  };
}

/** How a request body is delimited: no body, a length, or chunked. */
export type RequestFraming =
  | { readonly kind: "none" }
  | { readonly kind: "length"; readonly length: number }
  | { readonly kind: "chunked" };

/** The body framing of a request (RFC 9112 §6.3); throws 400 on anything ambiguous. */
export function requestFraming(head: RequestHead): RequestFraming {
  const te: string[] = [];
  const cl: string[] = [];
  let hosts = 0;
  for (const [k, v] of head.headers) {
    if (k === "transfer-encoding") te.push(v);
    else if (k === "content-length") cl.push(v);
    else if (k === "host") hosts++;
  }
  if (head.minor === 1 && hosts !== 1) {
    throw new Http1RequestError(400, hosts === 0 ? "no Host header" : "more than one Host header");
  }
  if (te.length > 0) {
    if (cl.length > 0) {
      throw new Http1RequestError(400, "both transfer-encoding and content-length");
    }
    const codings = te.join(",").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
    if (codings.length !== 1 || codings[0] !== "chunked") {
      throw new Http1RequestError(400, `unsupported transfer-encoding "${te.join(", ")}"`);
    }
    return { kind: "chunked" };
  }
  if (cl.length > 0) {
    const values = new Set(cl.flatMap((v) => v.split(",").map((s) => s.trim())));
    const [v] = values;
    if (values.size !== 1 || !/^\d{1,15}$/.test(v)) {
      throw new Http1RequestError(400, `invalid content-length "${cl.join(", ")}"`);
    }
    return Number(v) === 0 ? { kind: "none" } : { kind: "length", length: Number(v) };
  }
  return { kind: "none" };
}

/** Whether the client keeps the connection for another request. */
function clientKeepsAlive(head: { readonly minor: 0 | 1; readonly headers: HeaderList }): boolean {
  let close = false;
  let keep = false;
  for (const [k, v] of head.headers) {
    if (k !== "connection") continue;
    for (const t of v.toLowerCase().split(",")) {
      const x = t.trim();
      if (x === "close") close = true;
      else if (x === "keep-alive") keep = true;
    }
  }
  return !close && (head.minor === 1 || keep);
}

/** A request as the handler gets it. */
export interface Http1ServerRequest {
  readonly method: string;
  readonly target: string;
  readonly minor: 0 | 1;
  readonly headers: HeaderList;
  /** Whether the request is framed with a body (a length, even 0, or chunked). */
  readonly hasBody: boolean;
  /** The body (ended at once when there is none). */
  readonly body: Readable;
}

/**
 * A request without a body makes its (empty, ended) `body` stream only if
 * someone asks: most requests are GETs, and a Readable per request is a
 * good share of the waypoint's garbage.
 */
class BodilessRequest implements Http1ServerRequest {
  readonly hasBody = false;
  #body?: Readable;

  constructor(
    readonly method: string,
    readonly target: string,
    readonly minor: 0 | 1,
    readonly headers: HeaderList,
  ) {}

  get body(): Readable {
    if (!this.#body) {
      this.#body = new Readable({ read() {} });
      this.#body.push(null);
    }
    return this.#body;
  }
}

let dateCache = "";
let dateAt = 0;
/** The `Date` header value, recomputed at most once a second. */
function httpDate(): string {
  const now = Date.now();
  if (now - dateAt >= 1000) {
    dateAt = now - (now % 1000);
    dateCache = new Date(now).toUTCString();
  }
  return dateCache;
}

const CRLF = Buffer.from("\r\n", "latin1");

/** The answer to one request. */
export class Http1ServerResponse {
  #conn: Http1ServerConnection;
  #headersSent = false;
  #finished = false;
  #chunked = false;
  #noBody = false;
  #trailersAllowed = false;
  /** Close the connection after this response (set before `writeHead`). */
  last = false;

  constructor(conn: Http1ServerConnection, readonly request: Http1ServerRequest) {
    this.#conn = conn;
  }

  /** Whether the head went out. */
  get headersSent(): boolean {
    return this.#headersSent;
  }

  /** Whether the response ended. */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * Sends the status line and `headers` (end-to-end ones; framing and
   * `connection` are set here). Throws if a name or value could split the head.
   */
  writeHead(status: number, headers: HeaderList): void {
    if (this.#headersSent) throw new Error("Http1ServerResponse: head already sent");
    const req = this.request;
    const keep = !this.last && this.#conn.mayKeepAlive(this);
    this.#noBody = req.method === "HEAD" || status === 204 || status === 304 ||
      (status >= 100 && status < 200);
    let s = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Unknown"}\r\n`;
    let length = false;
    let date = false;
    for (const [k, v] of headers) {
      if (k === "transfer-encoding" || k === "connection" || k === "keep-alive") continue;
      if (!TOKEN.test(k) || /[\0\r\n]/.test(v)) {
        throw new Error(`cannot send response header "${k.slice(0, 80)}": invalid characters`);
      }
      if (k === "content-length") length = true;
      else if (k === "date") date = true;
      else if (k === "trailer") this.#trailersAllowed = true;
      s += `${k}: ${v}\r\n`;
    }
    if (!date) s += `date: ${httpDate()}\r\n`;
    let close = !keep;
    if (!this.#noBody && !length) {
      if (req.minor === 1) {
        this.#chunked = true;
        s += "transfer-encoding: chunked\r\n";
      } else close = true; // HTTP/1.0: the body runs to the end of the connection
    }
    if (close) this.last = true;
    s += close ? "connection: close\r\n" : req.minor === 0 ? "connection: keep-alive\r\n" : "";
    this.#headersSent = true;
    // Held for body bytes written in the same turn: head and body leave in one
    // write; a head whose body comes later still leaves at the end of the turn.
    this.#head = Buffer.from(s + "\r\n", "latin1");
    queueMicrotask(() => {
      if (this.#head && !this.#conn.stream.destroyed) this.#send();
    });
  }

  #head?: Buffer;

  /** Writes `b` with the held head in front of it. */
  #send(b?: Uint8Array): boolean {
    const head = this.#head;
    if (head) {
      this.#head = undefined;
      return this.#conn.stream.write(b && b.length > 0 ? Buffer.concat([head, b]) : head);
    }
    return b && b.length > 0 ? this.#conn.stream.write(b) : true;
  }

  /** Writes body bytes; false when the tunnel is full (wait for `onDrain`). */
  write(chunk: Uint8Array): boolean {
    if (this.#finished || this.#noBody || chunk.length === 0) return true;
    if (!this.#chunked) return this.#send(chunk);
    return this.#send(
      Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`, "latin1"), chunk, CRLF]),
    );
  }

  /** Runs `f` once the tunnel can take more. */
  onDrain(f: () => void): void {
    this.#conn.stream.once("drain", f);
  }

  /** Ends the response; trailers go out when the head declared `trailer` and the body is chunked. */
  end(trailers?: HeaderList): void {
    if (this.#finished) return;
    if (!this.#headersSent) this.writeHead(200, [["content-length", "0"]]);
    this.#finished = true;
    if (this.#chunked) {
      let t = "0\r\n";
      if (trailers && this.#trailersAllowed) {
        for (const [k, v] of trailers) {
          if (TOKEN.test(k) && !/[\0\r\n]/.test(v)) t += `${k}: ${v}\r\n`;
        }
      }
      this.#send(Buffer.from(t + "\r\n", "latin1"));
    } else this.#send();
    this.#conn.responseEnded(this);
  }

  /** A whole answer: status, headers and a text body. */
  reply(status: number, body: string, headers: HeaderList = []): void {
    const b = Buffer.from(body, "utf8");
    this.writeHead(status, [...headers, ["content-length", String(b.length)]]);
    if (b.length > 0) this.write(b);
    this.end();
  }

  /** Aborts: the tunnel is torn down. */
  destroy(): void {
    this.#finished = true;
    this.#head = undefined;
    this.#conn.stream.destroy();
  }

  /** Runs `f` if the tunnel closes before the response ended. */
  onClose(f: () => void): void {
    if (this.#finished) return;
    // Kept here, not as a listener on the tunnel: a kept-alive tunnel carries
    // many responses, and one listener each would pile up on it.
    (this.closeHandlers ??= []).push(f);
  }

  /** @internal What runs if the tunnel closes first. */
  closeHandlers?: (() => void)[];
}

/** What the connection tells its owner. */
export interface Http1ServerHandlers {
  onRequest(req: Http1ServerRequest, res: Http1ServerResponse): void;
  /** A request refused before the handler (400/431 was sent, the connection closes). */
  onClientError?(err: Error): void;
  /** A response ended (`last`: the connection closes after it). */
  onResponseEnd?(res: Http1ServerResponse): void;
}

/** One HTTP/1.1 server connection over a tunnel stream. */
export class Http1ServerConnection {
  #buf: Uint8Array = new Uint8Array(0);
  /** The request whose body is being read, and its decoder state. */
  #body?: {
    stream: Readable;
    remaining: number;
    chunked?: ChunkedDecoder;
  };
  #res?: Http1ServerResponse;
  #closing = false;
  #paused = false;
  #headTimer?: ReturnType<typeof setTimeout>;

  constructor(readonly stream: Duplex, readonly handlers: Http1ServerHandlers) {
    stream.on("data", (c: Uint8Array) => this.#onData(c));
    stream.on("end", () => this.#onEnd());
    stream.on("error", () => {});
    stream.on("close", () => this.#onClose());
    // Inactivity either way; only an idle connection (no request in progress) closes.
    stream.on("timeout", () => {
      if (!this.#res && this.#buf.length === 0) stream.destroy();
    });
    // Tunnel streams (HTTP/2 streams) time out as sockets do.
    (stream as Duplex & { setTimeout?: (ms: number) => unknown }).setTimeout?.(
      KEEP_ALIVE_TIMEOUT_MS,
    );
  }

  /** Whether a request is being answered. */
  get busy(): boolean {
    return this.#res !== undefined;
  }

  /** Ends the connection once the response in progress (if any) ended. */
  close(): void {
    this.#closing = true;
    if (this.#res) this.#res.last = true;
    else this.stream.end();
  }

  /** @internal Whether the response may leave the connection open. */
  mayKeepAlive(res: Http1ServerResponse): boolean {
    if (this.#closing) return false;
    // An unread request body cannot be skipped safely: close instead.
    if (this.#body && this.#res === res) return false;
    return clientKeepsAlive(res.request);
  }

  /** @internal */
  responseEnded(res: Http1ServerResponse): void {
    if (this.#res !== res) return;
    this.#res = undefined;
    this.handlers.onResponseEnd?.(res);
    if (res.last || this.#closing) {
      this.#closing = true;
      this.#body = undefined;
      this.stream.end();
      return;
    }
    if (this.#paused) {
      this.#paused = false;
      this.stream.resume();
    }
    if (this.#buf.length > 0) queueMicrotask(() => this.#drainBuffered());
  }

  #drainBuffered(): void {
    if (this.#res || this.#closing || this.stream.destroyed) return;
    this.#onData(new Uint8Array(0));
  }

  #onData(c: Uint8Array): void {
    if (this.#closing) return;
    let input = this.#buf.length === 0 ? c : concat(this.#buf, c);
    this.#buf = new Uint8Array(0);
    try {
      while (input.length > 0) {
        if (this.#body) {
          input = this.#feedBody(input);
          continue;
        }
        if (this.#res) {
          // Pipelined: wait for the answer in progress.
          this.#buf = input;
          if (input.length > MAX_PIPELINED && !this.#paused) {
            this.#paused = true;
            this.stream.pause();
          }
          return;
        }
        const head = parseRequestHead(input);
        if (!head) {
          this.#buf = input;
          if (input.length > 0 && this.#headTimer === undefined) {
            this.#headTimer = setTimeout(() => {
              this.#refuse(new Http1RequestError(400, "request head not complete in time"));
            }, HEADERS_TIMEOUT_MS);
          }
          return;
        }
        clearTimeout(this.#headTimer);
        this.#headTimer = undefined;
        input = input.subarray(head.length);
        this.#start(head);
      }
    } catch (e) {
      if (e instanceof Http1RequestError) this.#refuse(e);
      else {
        // A malformed chunked body mid-request: the handler's body fails, the tunnel closes.
        this.#body?.stream.destroy(e as Error);
        this.#body = undefined;
        this.handlers.onClientError?.(e as Error);
        this.stream.destroy();
      }
    }
  }

  #start(head: RequestHead): void {
    const framing = requestFraming(head);
    if (head.method === "CONNECT") throw new Http1RequestError(400, "CONNECT is not served here");
    const req = framing.kind === "none"
      ? new BodilessRequest(head.method, head.target, head.minor, head.headers)
      : this.#requestWithBody(head, framing);
    const res = new Http1ServerResponse(this, req);
    this.#res = res;
    this.handlers.onRequest(req, res);
  }

  /** A request whose body arrives after its head: the body stream, its decoder, 100-continue. */
  #requestWithBody(
    head: RequestHead,
    framing: Exclude<RequestFraming, { kind: "none" }>,
  ): Http1ServerRequest {
    const body = new Readable({
      read: () => {
        if (this.#paused && !this.#res?.finished) {
          this.#paused = false;
          this.stream.resume();
        }
      },
    });
    const req: Http1ServerRequest = {
      method: head.method,
      target: head.target,
      minor: head.minor,
      headers: head.headers,
      hasBody: true,
      body,
    };
    this.#body = framing.kind === "length"
      ? { stream: body, remaining: framing.length }
      : { stream: body, remaining: 0, chunked: new ChunkedDecoder((c) => this.#push(c)) };
    const expect = head.headers.find(([k]) => k === "expect")?.[1].toLowerCase();
    if (expect === "100-continue" && head.minor === 1) {
      this.stream.write(Buffer.from("HTTP/1.1 100 Continue\r\n\r\n", "latin1"));
    }
    return req;
  }

  #push(c: Uint8Array): void {
    if (c.length === 0 || !this.#body) return;
    if (!this.#body.stream.push(c) && !this.#paused) {
      this.#paused = true;
      this.stream.pause();
    }
  }

  /** Body bytes of the current request; returns what follows its end. */
  #feedBody(input: Uint8Array): Uint8Array {
    const b = this.#body!;
    if (b.chunked) {
      const rest = b.chunked.push(input);
      if (!rest) return new Uint8Array(0);
      this.#endBody();
      return rest;
    }
    const n = Math.min(b.remaining, input.length);
    b.remaining -= n;
    this.#push(input.subarray(0, n));
    if (b.remaining === 0) this.#endBody();
    return input.subarray(n);
  }

  #endBody(): void {
    const b = this.#body!;
    this.#body = undefined;
    b.stream.push(null);
  }

  #refuse(e: Http1RequestError): void {
    clearTimeout(this.#headTimer);
    this.#closing = true;
    this.handlers.onClientError?.(e);
    const text = e.status === 431 ? "Request Header Fields Too Large" : "Bad Request";
    if (this.#res || !this.stream.writable) {
      this.stream.destroy();
      return;
    }
    this.stream.end(
      Buffer.from(
        `HTTP/1.1 ${e.status} ${text}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
        "latin1",
      ),
    );
  }

  #onEnd(): void {
    // The client ended its side: a body cut short fails; otherwise finish what is in progress.
    if (this.#body) {
      this.#body.stream.destroy(new Error("the client closed before the request body ended"));
      this.#body = undefined;
    }
    this.#closing = true;
    if (!this.#res) this.stream.end();
    else this.#res.last = true;
  }

  #onClose(): void {
    clearTimeout(this.#headTimer);
    this.#closing = true;
    const res = this.#res;
    if (res && !res.finished) { for (const f of res.closeHandlers ?? []) f(); }
    if (this.#body) {
      this.#body.stream.destroy(new Error("the tunnel closed before the request body ended"));
      this.#body = undefined;
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
