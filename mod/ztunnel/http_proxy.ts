/**
 * The ztunnel's HTTP/1.1 explicit-proxy front end, by default on
 * 127.0.0.1:15081: apps that honour `HTTPS_PROXY` / `HTTP_PROXY` are
 * meshed without VIPs.
 *
 * - `CONNECT host:port` (authority-form; `[v6]:port`) is answered
 *   `200 Connection established` and becomes a byte tunnel.
 * - An absolute-form `GET http://host[:port]/path` (what clients send for
 *   `http://` URLs through a proxy) is forwarded in origin-form with
 *   hop-by-hop and `Proxy-*` headers dropped and `Connection: close`, and
 *   then relayed as bytes: **one request per client connection**, the
 *   upstream closes after its response and the client reconnects. Bytes
 *   after the head (the body, and anything a client pipelines after it)
 *   are passed on unparsed; the upstream was told `Connection: close`.
 *   `Upgrade` is dropped as hop-by-hop (WebSocket clients use CONNECT), no
 *   `Via` is added (as Envoy), and `Host` is set from the URL.
 *
 * _Decide, then do_: {@link parseProxyRequest} is a pure incremental parser
 * of the request head that also makes every refusal decision; the socket
 * shell (shared with socks5.ts) answers and hands the target to a
 * `ProxyConnector` (proxy_connect.ts).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { HostPort } from "../hbone/authority.ts";
import type { ProxyFailure, ProxyTarget } from "./proxy_connect.ts";
import {
  type FrontEndOptions,
  type FrontEndProtocol,
  listenFrontEnd,
  type ProxyServer,
  proxyTarget,
  type ProxyTargetResult,
} from "./socks5.ts";

/** Why an HTTP proxy request was refused (a `stats.refused` key). */
export type HttpProxyRefusal =
  | "malformed"
  | "headers_too_large"
  | "not_proxy_request"
  | "unsupported_scheme"
  | "ambiguous_framing"
  | "timeout"
  | "closed_early";

/** Every {@link HttpProxyRefusal}, for stats and metrics. */
export const HTTP_PROXY_REFUSALS: readonly HttpProxyRefusal[] = [
  "malformed",
  "headers_too_large",
  "not_proxy_request",
  "unsupported_scheme",
  "ambiguous_framing",
  "timeout",
  "closed_early",
];

/** The default HTTP proxy listen address. */
export const HTTP_PROXY_DEFAULT_LISTEN: HostPort = { ip: "127.0.0.1", port: 15081 };
/** The default cap on a request head (request line and headers). */
export const DEFAULT_MAX_HEADER_BYTES = 16 * 1024;
/** Most header fields in one request head. */
const MAX_HEADER_FIELDS = 100;

/** What {@link parseProxyRequest} made of the bytes so far. */
export type HttpProxyParse =
  | { readonly kind: "need-more" }
  | {
    readonly kind: "error";
    /** 400, 431 or 505. */
    readonly status: number;
    readonly reason: HttpProxyRefusal;
    readonly message: string;
  }
  | {
    readonly kind: "connect";
    readonly target: ProxyTarget;
    /** Bytes of the head; the rest is early tunnel data. */
    readonly consumed: number;
  }
  | {
    readonly kind: "forward";
    readonly target: ProxyTarget;
    /** Bytes of the head; the rest is the request body (and whatever follows). */
    readonly consumed: number;
    readonly method: string;
    /** The origin-form target sent upstream. */
    readonly path: string;
    /** The head to send upstream (latin1 text, ends with an empty line). */
    readonly head: string;
  };

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TOKEN_PREFIX = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]*$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/([0-9])\.([0-9])$/;
// Control characters other than HTAB are not allowed in field values (RFC 9110 §5.5).
// deno-lint-ignore no-control-regex
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const BARE_CR_LF = /\r(?!\n)|(?<!\r)\n/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
/** Headers that never pass a proxy (RFC 9110 §7.6.1), besides those `Connection` lists. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "upgrade",
]);
/** Framing headers kept even when `Connection` lists them (dropping one would change framing). */
const FRAMING = new Set(["content-length", "transfer-encoding", "host"]);

/**
 * Parses an HTTP/1.x proxy request head from the first bytes a client sent
 * (all of them so far; call again with more), and decides: a CONNECT
 * target, a request to forward (with the rewritten head), more bytes
 * needed, or a refusal with its status. Pure; never throws. Strict on
 * purpose: lines end with CRLF, no obs-fold, no whitespace before a colon,
 * one Host, one Content-Length, no Content-Length with Transfer-Encoding.
 *
 * @example
 * parseProxyRequest(new TextEncoder().encode("CONNECT [::1]:443 HTTP/1.1\r\n\r\n"));
 * // { kind: "connect", target: { host: "::1", port: 443, kind: "ipv6" }, consumed: 30 }
 */
export function parseProxyRequest(
  buf: Uint8Array,
  maxHeaderBytes: number = DEFAULT_MAX_HEADER_BYTES,
): HttpProxyParse {
  let start = 0; // RFC 9112 §2.2: empty lines before the request line are ignored
  while (buf[start] === 0x0d && buf[start + 1] === 0x0a) start += 2;
  const view = Buffer.from(buf.buffer, buf.byteOffset, Math.min(buf.length, maxHeaderBytes));
  const end = view.indexOf("\r\n\r\n", start, "latin1");
  if (end < 0) {
    if (buf.length >= maxHeaderBytes) {
      return refuse(431, "headers_too_large", `request head over ${maxHeaderBytes} bytes`);
    }
    return checkPartial(view.toString("latin1", start));
  }
  const text = view.toString("latin1", start, end);
  if (BARE_CR_LF.test(text)) return malformed("a line ends without CRLF (bare CR or LF)");
  const lines = text.split("\r\n");
  const m = REQUEST_LINE.exec(lines[0]);
  if (!m) {
    return malformed(
      `malformed request line ${JSON.stringify(lines[0].slice(0, 100))}; ` +
        "expected METHOD TARGET HTTP/1.1",
    );
  }
  const [, method, target, major, minor] = m;
  if (major !== "1" || (minor !== "0" && minor !== "1")) {
    return refuse(505, "malformed", `HTTP/${major}.${minor} is not supported, use HTTP/1.1`);
  }
  const headers = parseHeaders(lines.slice(1));
  if (typeof headers === "string") return malformed(headers);
  if (headers.length > MAX_HEADER_FIELDS) {
    return refuse(431, "headers_too_large", `more than ${MAX_HEADER_FIELDS} header fields`);
  }
  const req: Head = { method, target, minor, headers, consumed: end + 4 };
  return method === "CONNECT" ? connectRequest(req) : forwardRequest(req);
}

interface Head {
  readonly method: string;
  readonly target: string;
  readonly minor: string;
  readonly headers: readonly [string, string][];
  readonly consumed: number;
}

/** Refuses early what can never become a request, so garbage is not held until the deadline. */
function checkPartial(text: string): HttpProxyParse {
  const crlf = text.indexOf("\r\n");
  const line = crlf < 0 ? text : text.slice(0, crlf);
  const sp = line.indexOf(" ");
  const method = sp < 0 ? line : line.slice(0, sp);
  if (!TOKEN_PREFIX.test(method) || (sp === 0)) {
    return malformed("not an HTTP request (the request line must start with a method)");
  }
  const tail = text.endsWith("\r") ? text.slice(0, -1) : text;
  if (BARE_CR_LF.test(tail)) return malformed("a line ends without CRLF (bare CR or LF)");
  return { kind: "need-more" };
}

function parseHeaders(lines: readonly string[]): [string, string][] | string {
  const out: [string, string][] = [];
  for (const line of lines) {
    if (line.startsWith(" ") || line.startsWith("\t")) {
      return "obsolete line folding in headers is not accepted";
    }
    const colon = line.indexOf(":");
    const name = colon < 0 ? "" : line.slice(0, colon);
    if (!TOKEN.test(name)) {
      return `malformed header line ${JSON.stringify(line.slice(0, 100))}; expected Name: value`;
    }
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (BAD_VALUE.test(value)) return `header ${name} has control characters`;
    out.push([name, value]);
  }
  return out;
}

function connectRequest(req: Head): HttpProxyParse {
  const t = parseAuthorityForm(req.target);
  if (!t.ok) return malformed(`CONNECT target ${JSON.stringify(req.target)}: ${t.reason}`);
  const cl = values(req.headers, "content-length");
  if (values(req.headers, "transfer-encoding").length > 0 || cl.some((v) => v !== "0")) {
    return refuse(400, "ambiguous_framing", "a CONNECT request has no body");
  }
  return { kind: "connect", target: t.target, consumed: req.consumed };
}

/** `host:port` or `[v6]:port`, port required. */
function parseAuthorityForm(s: string): ProxyTargetResult {
  let host: string, port: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0 || s[close + 1] !== ":") return { ok: false, reason: "expected [ipv6]:port" };
    host = s.slice(0, close + 1);
    port = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0) return { ok: false, reason: "expected host:port (the port is required)" };
    host = s.slice(0, colon);
    port = s.slice(colon + 1);
    if (host.includes(":")) return { ok: false, reason: "an IPv6 address needs brackets" };
  }
  if (!/^[0-9]{1,5}$/.test(port)) return { ok: false, reason: "the port must be 1-65535" };
  return proxyTarget(host, Number(port));
}

function forwardRequest(req: Head): HttpProxyParse {
  const { target } = req;
  if (target.startsWith("/") || target === "*") {
    return refuse(
      400,
      "not_proxy_request",
      "this is an HTTP proxy, not a web server: send absolute-form requests " +
        "(GET http://host/path) or CONNECT host:port, e.g. set HTTP_PROXY / HTTPS_PROXY",
    );
  }
  const scheme = SCHEME.exec(target)?.[1].toLowerCase();
  if (scheme === undefined) {
    return malformed(
      `request target ${JSON.stringify(target.slice(0, 100))} is not absolute-form ` +
        "(http://host/path); host:port targets are for CONNECT",
    );
  }
  if (scheme === "https") {
    return refuse(
      400,
      "unsupported_scheme",
      "https:// URLs go through CONNECT (set HTTPS_PROXY): the proxy does not speak TLS",
    );
  }
  if (scheme !== "http") {
    return refuse(
      400,
      "unsupported_scheme",
      `${scheme}:// is not supported; only http:// requests and CONNECT`,
    );
  }
  const rest = target.slice("http://".length);
  const authEnd = rest.search(/[/?#]/);
  const authority = authEnd < 0 ? rest : rest.slice(0, authEnd);
  if (authority.includes("@")) return malformed("credentials in the URL are not supported");
  const t = parseUrlAuthority(authority);
  if (!t.ok) return malformed(`URL host ${JSON.stringify(authority)}: ${t.reason}`);
  let path = (authEnd < 0 ? "" : rest.slice(authEnd)).replace(/#.*$/, "");
  if (!path.startsWith("/")) path = "/" + path;
  const framing = checkFraming(req);
  if (framing) return framing;
  return {
    kind: "forward",
    target: t.target,
    consumed: req.consumed,
    method: req.method,
    path,
    head: rewriteHead(req, path, t.target),
  };
}

/** `host`, `host:` or `host:port` (default 80). */
function parseUrlAuthority(s: string): ProxyTargetResult {
  const colon = s.lastIndexOf(":");
  const bracketed = s.startsWith("[");
  const hasPort = colon >= 0 && (!bracketed || s[colon - 1] === "]");
  const host = hasPort ? s.slice(0, colon) : s;
  const portText = hasPort ? s.slice(colon + 1) : "";
  if (!bracketed && host.includes(":")) {
    return { ok: false, reason: "an IPv6 address needs brackets" };
  }
  if (portText !== "" && !/^[0-9]{1,5}$/.test(portText)) {
    return { ok: false, reason: "the port must be 1-65535" };
  }
  return proxyTarget(host, portText === "" ? 80 : Number(portText));
}

/** Refuses what two parsers could frame differently (request smuggling). */
function checkFraming(req: Head): HttpProxyParse | undefined {
  const hosts = values(req.headers, "host");
  if (hosts.length > 1) return malformed("more than one Host header");
  const cl = values(req.headers, "content-length");
  const te = values(req.headers, "transfer-encoding");
  const ambiguous = (m: string) => refuse(400, "ambiguous_framing", m);
  if (cl.length > 1) return ambiguous("more than one Content-Length");
  if (cl.length === 1 && !/^[0-9]{1,15}$/.test(cl[0])) {
    return ambiguous(`Content-Length ${JSON.stringify(cl[0])} is not a number`);
  }
  if (te.length === 0) return undefined;
  if (cl.length > 0) return ambiguous("both Content-Length and Transfer-Encoding");
  if (req.minor === "0") return ambiguous("Transfer-Encoding in an HTTP/1.0 request");
  const codings = te.join(",").split(",").map((c) => c.trim().toLowerCase());
  if (codings[codings.length - 1] !== "chunked") {
    return ambiguous(`Transfer-Encoding ${JSON.stringify(te.join(", "))} does not end in chunked`);
  }
  return undefined;
}

function rewriteHead(req: Head, path: string, t: ProxyTarget): string {
  const listed = new Set(
    values(req.headers, "connection").flatMap((v) => v.split(",")).map((s) =>
      s.trim().toLowerCase()
    ).filter((s) => !FRAMING.has(s)),
  );
  const host = (t.kind === "ipv6" ? `[${t.host}]` : t.host) + (t.port === 80 ? "" : `:${t.port}`);
  let out = `${req.method} ${path} HTTP/1.${req.minor}\r\nHost: ${host}\r\n`;
  for (const [name, value] of req.headers) {
    const n = name.toLowerCase();
    // RFC 9112 §3.2.2: a proxy replaces Host with the request target's.
    if (n === "host" || HOP_BY_HOP.has(n) || listed.has(n) || n.startsWith("proxy-")) continue;
    out += `${name}: ${value}\r\n`;
  }
  return out + "Connection: close\r\n\r\n";
}

function values(headers: readonly [string, string][], name: string): string[] {
  return headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

function refuse(status: number, reason: HttpProxyRefusal, message: string): HttpProxyParse {
  return { kind: "error", status, reason, message };
}

function malformed(message: string): HttpProxyParse {
  return refuse(400, "malformed", message);
}

// ---------------------------------------------------------------------------
// Responses

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: "Bad Request",
  403: "Forbidden",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
  502: "Bad Gateway",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** The one table from a connect failure to its HTTP status and text (as in proxy_connect.ts). */
export const HTTP_FAILURE_STATUS: Readonly<
  Record<ProxyFailure, { readonly status: number; readonly text: string }>
> = {
  not_allowed: { status: 403, text: "not allowed" },
  host_unreachable: { status: 502, text: "host unreachable" },
  connection_refused: { status: 502, text: "connection refused by the destination" },
  timed_out: { status: 504, text: "connect timed out" },
  general: { status: 502, text: "connect failed" },
};

/** The reply to a CONNECT that succeeded. */
export const CONNECT_ESTABLISHED: Uint8Array = new TextEncoder().encode(
  "HTTP/1.1 200 Connection established\r\n\r\n",
);

/** A complete `Connection: close` response with a one-line text body. */
export function httpErrorResponse(status: number, message: string): Uint8Array {
  const body = Buffer.from(`${message}\n`, "utf8");
  return Buffer.concat([
    Buffer.from(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n` +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
      "latin1",
    ),
    body,
  ]);
}

// ---------------------------------------------------------------------------
// The server

/** A running HTTP proxy front end. */
export type HttpProxyServer = ProxyServer<HttpProxyRefusal>;

/** Options for {@link serveHttpProxy}. */
export interface HttpProxyOptions extends FrontEndOptions {
  /** Where to listen, a loopback address (default 127.0.0.1:15081). */
  listen?: HostPort;
  /** Cap on the request head; over it the answer is 431 (default 16 KiB). */
  maxHeaderBytes?: number;
}

function httpProtocol(maxHeaderBytes: number): FrontEndProtocol<HttpProxyRefusal> {
  return {
    name: "HTTP proxy",
    via: "http",
    reasons: HTTP_PROXY_REFUSALS,
    session: () => ({
      step(buf) {
        const r = parseProxyRequest(buf, maxHeaderBytes);
        if (r.kind === "need-more") return { next: "more" };
        if (r.kind === "error") {
          return {
            next: "refuse",
            reason: r.reason,
            reply: httpErrorResponse(r.status, r.message),
            message: r.message,
          };
        }
        const rest = buf.subarray(r.consumed);
        const failure = (f: ProxyFailure, message: string) => {
          const { status, text } = HTTP_FAILURE_STATUS[f];
          return httpErrorResponse(status, `${text}: ${message}`);
        };
        if (r.kind === "connect") {
          return {
            next: "open",
            target: r.target,
            success: CONNECT_ESTABLISHED,
            forward: rest,
            failure,
          };
        }
        // The rewritten head reaches the upstream through the relay, ahead of the body.
        return {
          next: "open",
          target: r.target,
          success: new Uint8Array(0),
          forward: Buffer.concat([Buffer.from(r.head, "latin1"), rest]),
          failure,
        };
      },
      timeoutReply: () => httpErrorResponse(408, "the request head did not arrive in time"),
    }),
  };
}

/**
 * Serves an HTTP/1.1 explicit proxy (CONNECT and absolute-form `http://`
 * requests, one request per connection); binds before resolving. Refusals:
 * 400 for a malformed head, an origin-form (non-proxy) request, `https://`
 * or other schemes in absolute-form and ambiguous body framing; 431 for a
 * head over `maxHeaderBytes`; 505 for HTTP versions other than 1.0/1.1;
 * 408 when the head misses the deadline. Connect failures: 403, 502, 504
 * with a text body saying why.
 *
 * @example
 * const proxy = await serveHttpProxy({ connector, logger });
 * // HTTPS_PROXY=http://127.0.0.1:15081 curl https://reviews.default:9443/
 * await proxy.close();
 */
export async function serveHttpProxy(options: HttpProxyOptions): Promise<HttpProxyServer> {
  const max = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  if (!Number.isInteger(max) || max < 256) {
    throw new RangeError(`maxHeaderBytes must be an integer of at least 256, got ${max}`);
  }
  return await listenFrontEnd(httpProtocol(max), {
    ...options,
    listen: options.listen ?? HTTP_PROXY_DEFAULT_LISTEN,
  });
}
