import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import { httpErrorResponse, type HttpProxyParse, parseProxyRequest } from "./http_proxy.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const parse = (s: string, max?: number) => parseProxyRequest(enc(s), max);

type Want =
  | "need-more"
  | { status: number; reason: string; includes?: string }
  | { connect: string; kind: string; port: number }
  | { forward: string; kind: string; port: number; head: string };

function summary(r: HttpProxyParse, want: Want): Want {
  if (r.kind === "need-more") return "need-more";
  if (r.kind === "error") {
    const includes = typeof want === "object" && "includes" in want ? want.includes : undefined;
    return {
      status: r.status,
      reason: r.reason,
      ...(includes !== undefined
        ? { includes: r.message.includes(includes) ? includes : r.message }
        : {}),
    };
  }
  if (r.kind === "connect") {
    return { connect: r.target.host, kind: r.target.kind, port: r.target.port };
  }
  return { forward: r.target.host, kind: r.target.kind, port: r.target.port, head: r.head };
}

const bad = (reason: string, includes?: string, status = 400): Want => ({
  status,
  reason,
  ...(includes ? { includes } : {}),
});

const ROWS: [string, string, Want][] = [
  // CONNECT
  [
    "CONNECT a name",
    "CONNECT reviews.default:9080 HTTP/1.1\r\nHost: reviews.default:9080\r\n\r\n",
    {
      connect: "reviews.default",
      kind: "domain",
      port: 9080,
    },
  ],
  ["CONNECT an IPv4 address, HTTP/1.0", "CONNECT 10.0.0.5:443 HTTP/1.0\r\n\r\n", {
    connect: "10.0.0.5",
    kind: "ipv4",
    port: 443,
  }],
  ["CONNECT bracketed IPv6", "CONNECT [2001:DB8::1]:443 HTTP/1.1\r\n\r\n", {
    connect: "2001:db8::1",
    kind: "ipv6",
    port: 443,
  }],
  ["empty lines before the request line", "\r\n\r\nCONNECT a.b:1 HTTP/1.1\r\n\r\n", {
    connect: "a.b",
    kind: "domain",
    port: 1,
  }],
  ["CONNECT without a port", "CONNECT example.com HTTP/1.1\r\n\r\n", bad("malformed", "required")],
  ["CONNECT port 0", "CONNECT example.com:0 HTTP/1.1\r\n\r\n", bad("malformed", "1-65535")],
  ["CONNECT port 65536", "CONNECT a:65536 HTTP/1.1\r\n\r\n", bad("malformed", "1-65535")],
  ["CONNECT port not a number", "CONNECT a:https HTTP/1.1\r\n\r\n", bad("malformed", "1-65535")],
  [
    "CONNECT IPv6 without brackets",
    "CONNECT ::1:443 HTTP/1.1\r\n\r\n",
    bad("malformed", "brackets"),
  ],
  ["CONNECT to a URL", "CONNECT http://a/ HTTP/1.1\r\n\r\n", bad("malformed")],
  ["CONNECT with a body", "CONNECT a:1 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", {
    status: 400,
    reason: "ambiguous_framing",
  }],
  ["CONNECT chunked", "CONNECT a:1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", {
    status: 400,
    reason: "ambiguous_framing",
  }],
  // Absolute-form
  [
    "GET rewritten to origin-form with hop-by-hop and Proxy-* headers dropped",
    "GET http://Web.Mesh:8080/a/b?c=d HTTP/1.1\r\nHost: wrong.example\r\nUser-Agent: curl/8\r\n" +
    "Proxy-Connection: Keep-Alive\r\nProxy-Authorization: Basic eA==\r\nConnection: keep-alive, X-Hop\r\n" +
    "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nAccept: */*\r\n\r\n",
    {
      forward: "web.mesh",
      kind: "domain",
      port: 8080,
      head:
        "GET /a/b?c=d HTTP/1.1\r\nHost: web.mesh:8080\r\nUser-Agent: curl/8\r\nAccept: */*\r\n" +
        "Connection: close\r\n\r\n",
    },
  ],
  ["no path, default port", "GET http://web HTTP/1.1\r\n\r\n", {
    forward: "web",
    kind: "domain",
    port: 80,
    head: "GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n",
  }],
  [
    "query without a path, empty port, fragment dropped",
    "GET http://web:?q#frag HTTP/1.0\r\n\r\n",
    {
      forward: "web",
      kind: "domain",
      port: 80,
      head: "GET /?q HTTP/1.0\r\nHost: web\r\nConnection: close\r\n\r\n",
    },
  ],
  ["IPv6 URL", "HEAD http://[::1]:8080/x HTTP/1.1\r\n\r\n", {
    forward: "::1",
    kind: "ipv6",
    port: 8080,
    head: "HEAD /x HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
  }],
  [
    "POST with a Content-Length keeps it",
    "POST http://10.0.0.1/ HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    {
      forward: "10.0.0.1",
      kind: "ipv4",
      port: 80,
      head: "POST / HTTP/1.1\r\nHost: 10.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
    },
  ],
  [
    "chunked POST, and Connection cannot drop framing headers",
    "POST http://a/ HTTP/1.1\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
    {
      forward: "a",
      kind: "domain",
      port: 80,
      head: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    },
  ],
  ["https URL", "GET https://a/ HTTP/1.1\r\n\r\n", bad("unsupported_scheme", "CONNECT")],
  ["ftp URL", "GET ftp://a/ HTTP/1.1\r\n\r\n", bad("unsupported_scheme", "ftp://")],
  ["origin-form: not a proxy request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", {
    status: 400,
    reason: "not_proxy_request",
    includes: "HTTP_PROXY",
  }],
  ["asterisk-form", "OPTIONS * HTTP/1.1\r\n\r\n", bad("not_proxy_request")],
  ["authority-form without CONNECT", "GET a:80 HTTP/1.1\r\n\r\n", bad("malformed", "CONNECT")],
  ["lower-case connect is not CONNECT", "connect a:80 HTTP/1.1\r\n\r\n", bad("malformed")],
  ["credentials in the URL", "GET http://u:p@a/ HTTP/1.1\r\n\r\n", bad("malformed", "credentials")],
  ["bad URL host", "GET http://a_b!/ HTTP/1.1\r\n\r\n", bad("malformed", "URL host")],
  ["unbracketed IPv6 URL", "GET http://::1/ HTTP/1.1\r\n\r\n", bad("malformed", "brackets")],
  // Framing (smuggling)
  [
    "two Content-Length",
    "POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
    {
      status: 400,
      reason: "ambiguous_framing",
    },
  ],
  ["a Content-Length list", "POST http://a/ HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", {
    status: 400,
    reason: "ambiguous_framing",
  }],
  [
    "Content-Length with Transfer-Encoding",
    "POST http://a/ HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    bad("ambiguous_framing", "both"),
  ],
  [
    "Transfer-Encoding not ending in chunked",
    "POST http://a/ HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    bad("ambiguous_framing", "chunked"),
  ],
  [
    "Transfer-Encoding in HTTP/1.0",
    "POST http://a/ HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    bad("ambiguous_framing", "1.0"),
  ],
  [
    "two Host headers",
    "GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    bad("malformed", "Host"),
  ],
  // Malformed heads
  ["space before the colon", "GET http://a/ HTTP/1.1\r\nHost : a\r\n\r\n", bad("malformed")],
  ["header without a colon", "GET http://a/ HTTP/1.1\r\nHost\r\n\r\n", bad("malformed")],
  ["obs-fold", "GET http://a/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n", bad("malformed", "folding")],
  ["control character in a value", "GET http://a/ HTTP/1.1\r\nX: a\x01b\r\n\r\n", bad("malformed")],
  ["bare LF in the head", "GET http://a/ HTTP/1.1\nX: a\r\n\r\n", bad("malformed", "CRLF")],
  ["two spaces in the request line", "GET  http://a/ HTTP/1.1\r\n\r\n", bad("malformed")],
  ["no version", "GET http://a/\r\n\r\n", bad("malformed")],
  ["HTTP/2.0", "GET http://a/ HTTP/2.0\r\n\r\n", bad("malformed", "HTTP/2.0", 505)],
  ["HTTP/1.2", "GET http://a/ HTTP/1.2\r\n\r\n", bad("malformed", undefined, 505)],
  ["101 headers", `GET http://a/ HTTP/1.1\r\n${"X: y\r\n".repeat(101)}\r\n`, {
    status: 431,
    reason: "headers_too_large",
  }],
  // Partial heads: wait, or refuse early what can never be a request
  ["partial CONNECT", "CONNECT exa", "need-more"],
  ["partial head", "GET http://a/ HTTP/1.1\r\nHost: a\r", "need-more"],
  ["TLS ClientHello", "\x16\x03\x01\x02\x00\x01", bad("malformed", "method")],
  ["leading space", " GET", bad("malformed")],
  ["bare LF, head incomplete", "GET http://a/ HTTP/1.1\nHost: a\n", bad("malformed", "CRLF")],
];

Deno.test("parseProxyRequest() decides on each table row", () => {
  for (const [what, text, want] of ROWS) {
    assertEquals(summary(parse(text), want), want, what);
  }
});

Deno.test("parseProxyRequest() reports the head length; the body stays for the relay", () => {
  const text = "POST http://a/ HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
  const r = parse(text + "hello");
  assertOk(r.kind === "forward");
  assertEquals(r.consumed, text.length);
  const c = parse("\r\nCONNECT a:1 HTTP/1.1\r\n\r\n\x16\x03");
  assertOk(c.kind === "connect");
  assertEquals(c.consumed, "\r\nCONNECT a:1 HTTP/1.1\r\n\r\n".length);
});

Deno.test("parseProxyRequest() needs more for every strict prefix of a head", () => {
  const text = "GET http://web.mesh/ HTTP/1.1\r\nHost: web.mesh\r\nAccept: */*\r\n\r\n";
  for (let n = 0; n < text.length; n++) {
    assertEquals(parse(text.slice(0, n)), { kind: "need-more" }, `prefix ${n}`);
  }
  assertEquals(parse(text).kind, "forward");
});

Deno.test("parseProxyRequest() answers 431 once the head passes the cap", () => {
  const big = `GET http://a/ HTTP/1.1\r\nX: ${"y".repeat(300)}\r\n\r\n`;
  assertEquals(parse(big, 256), {
    kind: "error",
    status: 431,
    reason: "headers_too_large",
    message: "request head over 256 bytes",
  });
  assertEquals(parse(big.slice(0, 255), 256).kind, "need-more");
  assertEquals(parse(big, big.length).kind, "forward");
  assertEquals(parse(big.slice(0, -1), big.length).kind, "need-more");
});

Deno.test("httpErrorResponse() is a complete response that closes the connection", () => {
  const text = new TextDecoder().decode(httpErrorResponse(403, "not allowed: policy ✗"));
  const [head, body] = text.split("\r\n\r\n");
  assertEquals(head.split("\r\n"), [
    "HTTP/1.1 403 Forbidden",
    "Content-Type: text/plain; charset=utf-8",
    `Content-Length: ${enc(body).length}`,
    "Connection: close",
  ]);
  assertEquals(body, "not allowed: policy ✗\n");
});
