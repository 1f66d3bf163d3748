/**
 * The HTTP proxy front end with real sockets: curl through CONNECT (-p) and
 * absolute-form, IPv6 targets, connect failures, and a raw client sending
 * garbage, non-proxy requests, oversized and smuggling heads, slowly or
 * truncated; leak checks after each test.
 */
import type net from "node:net";
import { assertEquals, assertIncludes, assertOk, assertRejects } from "../_util/asserts.ts";
import { type HttpProxyServer, serveHttpProxy } from "../../mod/ztunnel/http_proxy.ts";
import { ProxyListenError } from "../../mod/ztunnel/socks5.ts";
import {
  curl,
  FakeConnector,
  hasIpv6Loopback,
  rawClient,
  type RawResult,
  type SeenRequest,
  testLogger,
  type Upstream,
  withFrontEnd,
} from "./_fixtures.ts";

interface World {
  proxy: HttpProxyServer;
  url: string;
  connector: FakeConnector;
  echo: Upstream;
  web: Upstream;
  web6?: Upstream;
}

/** Runs `fn` against an HTTP proxy, then checks that no socket was left open anywhere. */
function withProxy(
  fn: (w: World) => Promise<void>,
  o: { handshakeTimeoutMs?: number; maxHeaderBytes?: number } = {},
): Promise<void> {
  return withFrontEnd(
    (connector) =>
      serveHttpProxy({
        listen: { ip: "127.0.0.1", port: 0 },
        connector,
        logger: testLogger(),
        ...o,
      }),
    (w) => fn({ ...w, proxy: w.server, url: `http://127.0.0.1:${w.server.address.port}` }),
  );
}

/** Status code and body of a raw response. */
function response(r: RawResult): { status: number; body: string } {
  const [head, ...body] = r.text.split("\r\n\r\n");
  return { status: Number(head.split(" ")[1]), body: body.join("\r\n\r\n") };
}

/** A good CONNECT that must still work after a refusal. */
async function stillServes(w: World): Promise<void> {
  const ok = "HTTP/1.1 200 Connection established\r\n\r\n";
  const r = await rawClient(w.proxy.address, ["CONNECT echo.mesh:7 HTTP/1.1\r\n\r\nping"], {
    onData: (all, s) => {
      if (all.length >= ok.length + 4) s.end();
    },
  });
  assertEquals(r.text, ok + "ping");
}

Deno.test("curl through CONNECT (-p) and absolute-form reaches mesh names", async () => {
  await withProxy(async (w) => {
    const port = w.web.address.port;
    const tunnel = await curl(["-x", w.url, "-p", `http://web.mesh:${port}/via/connect`]);
    assertEquals(tunnel.code, 0, tunnel.stderr);
    const t: SeenRequest = JSON.parse(tunnel.stdout);
    assertEquals([t.url, t.headers.host], ["/via/connect", `web.mesh:${port}`]);
    assertEquals(w.connector.calls.at(-1), {
      target: { host: "web.mesh", port, kind: "domain" },
      via: "http",
    });

    const plain = await curl([
      "-x",
      w.url,
      "-H",
      "Connection: X-Secret",
      "-H",
      "X-Secret: hop",
      "-H",
      "Proxy-Authorization: Basic eDp5",
      "-d",
      "body=1",
      `http://web.mesh:${port}/via/absolute?q=1`,
    ]);
    assertEquals(plain.code, 0, plain.stderr);
    const p: SeenRequest = JSON.parse(plain.stdout);
    assertEquals([p.method, p.url, p.body], ["POST", "/via/absolute?q=1", "body=1"]);
    assertEquals(p.headers.host, `web.mesh:${port}`);
    assertEquals(p.headers.connection, "close");
    for (const h of ["proxy-connection", "proxy-authorization", "x-secret"]) {
      assertEquals(p.headers[h], undefined, `${h} reached the upstream`);
    }
    assertEquals(p.headers["content-length"], "6");

    // Two http:// URLs by address in one curl: one request per proxy connection, so
    // curl, told Connection: close, opens a second one.
    const before = w.proxy.stats.connections;
    const byIp = await curl([
      "-x",
      w.url,
      `http://127.0.0.1:${port}/1`,
      `http://127.0.0.1:${port}/2`,
    ]);
    assertEquals(byIp.code, 0, byIp.stderr);
    assertEquals(byIp.stdout.split("}{").length, 2, byIp.stdout);
    assertIncludes(byIp.stdout, `"url":"/2"`);
    assertEquals(w.connector.calls.at(-1)?.target.kind, "ipv4");
    assertEquals(w.proxy.stats.connections - before, 2);
    assertEquals(w.proxy.stats.connects.ok, 4);
  });
});

Deno.test("IPv6 targets work through CONNECT and absolute-form", async () => {
  if (!hasIpv6Loopback()) return;
  await withProxy(async (w) => {
    const port = w.web6!.address.port;
    for (const args of [["-p"], []]) {
      const r = await curl(["-x", w.url, ...args, `http://[::1]:${port}/six`]);
      assertEquals(r.code, 0, r.stderr);
      const seen: SeenRequest = JSON.parse(r.stdout);
      assertEquals([seen.url, seen.headers.host], ["/six", `[::1]:${port}`]);
      assertEquals(w.connector.calls.at(-1)?.target, { host: "::1", port, kind: "ipv6" });
    }
  });
});

Deno.test("connect failures are answered 403, 502 or 504 with the reason", async () => {
  await withProxy(async (w) => {
    const rows: [string, number, string][] = [
      ["denied.mesh", 403, "not allowed: denied.mesh is not_allowed"],
      ["nowhere.mesh", 502, "host unreachable"],
      ["unknown.mesh", 502, "host unreachable: no such name unknown.mesh"],
      ["refused.mesh", 502, "connection refused"],
      ["slow.mesh", 504, "connect timed out"],
      ["broken.mesh", 502, "connect failed"],
      ["throws.mesh", 502, "connector failed: connector bug"],
    ];
    for (const [name, status, text] of rows) {
      for (const head of [`CONNECT ${name}:80 HTTP/1.1`, `GET http://${name}/ HTTP/1.1`]) {
        const r = response(await rawClient(w.proxy.address, [`${head}\r\nHost: ${name}\r\n\r\n`]));
        assertEquals(r.status, status, head);
        assertIncludes(r.body, text);
      }
    }
    assertEquals(w.proxy.stats.connects, {
      ok: 0,
      not_allowed: 2,
      host_unreachable: 4,
      connection_refused: 2,
      timed_out: 2,
      general: 4,
    });
    const c = await curl(["-x", w.url, "-p", "-o", "/dev/null", "http://denied.mesh/"]);
    assertIncludes(c.stderr, "403");
    const a = await curl(["-x", w.url, "-w", "%{http_code}", "http://denied.mesh/"]);
    assertIncludes(a.stdout, "not allowed");
    assertIncludes(a.stdout, "403");
    await stillServes(w);
  });
});

Deno.test("bad proxy requests are refused with the documented status and the server keeps serving", async () => {
  await withProxy(async (w) => {
    const rows: [string, (string | Uint8Array)[], number, string, string][] = [
      [
        "TLS to the proxy port",
        [Uint8Array.of(0x16, 3, 1, 2, 0, 1, 0, 1, 0xfc, 3, 3)],
        400,
        "malformed",
        "method",
      ],
      [
        "binary garbage",
        [Uint8Array.of(0, 1, 2, 3, 0xff, 0x0d, 0x0a, 0x0d, 0x0a)],
        400,
        "malformed",
        "",
      ],
      [
        "origin-form",
        ["GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
        400,
        "not_proxy_request",
        "HTTP_PROXY",
      ],
      [
        "https absolute-form",
        ["GET https://web.mesh/ HTTP/1.1\r\n\r\n"],
        400,
        "unsupported_scheme",
        "CONNECT",
      ],
      [
        "ftp absolute-form",
        ["GET ftp://web.mesh/ HTTP/1.1\r\n\r\n"],
        400,
        "unsupported_scheme",
        "ftp",
      ],
      ["CONNECT without a port", ["CONNECT web.mesh HTTP/1.1\r\n\r\n"], 400, "malformed", "port"],
      ["CONNECT port 0", ["CONNECT web.mesh:0 HTTP/1.1\r\n\r\n"], 400, "malformed", "1-65535"],
      [
        "Content-Length with Transfer-Encoding",
        ["POST http://web.mesh/ HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
        400,
        "ambiguous_framing",
        "Transfer-Encoding",
      ],
      [
        "two Content-Length",
        ["POST http://web.mesh/ HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd"],
        400,
        "ambiguous_framing",
        "Content-Length",
      ],
      [
        "obs-fold",
        ["GET http://web.mesh/ HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"],
        400,
        "malformed",
        "folding",
      ],
      ["bare LF", ["GET http://web.mesh/ HTTP/1.1\nHost: a\n\n"], 400, "malformed", "CRLF"],
      ["HTTP/2 preface", ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"], 505, "malformed", "HTTP/1.1"],
      [
        "17 KiB of headers",
        [`GET http://web.mesh/ HTTP/1.1\r\n${`X-Pad: ${"p".repeat(1000)}\r\n`.repeat(17)}\r\n`],
        431,
        "headers_too_large",
        "16384",
      ],
      [
        "an endless header line",
        ["GET http://web.mesh/ HTTP/1.1\r\nX: ", "y".repeat(20_000), "y".repeat(20_000)],
        431,
        "headers_too_large",
        "",
      ],
    ];
    for (const [what, writes, status, reason, text] of rows) {
      const key = reason as keyof typeof w.proxy.stats.refused;
      const before = w.proxy.stats.refused[key];
      const raw = await rawClient(w.proxy.address, writes);
      const r = response(raw);
      assertEquals(r.status, status, `${what}: ${raw.text.slice(0, 200)}`);
      assertIncludes(r.body, text);
      assertEquals(raw.closed, "end", `${what}: closed with ${raw.closed}, not a clean end`);
      assertEquals(w.proxy.stats.refused[key], before + 1, what);
      await stillServes(w);
    }
    for (
      const [what, writes] of [
        ["truncated request line, then close", ["CONNECT web.me"]],
        ["truncated headers, then close", ["GET http://web.mesh/ HTTP/1.1\r\nHost: web"]],
        ["connect, then close at once", []],
      ] as [string, string[]][]
    ) {
      const before = w.proxy.stats.refused.closed_early;
      const raw = await rawClient(w.proxy.address, writes, { end: true });
      assertEquals([raw.text, raw.closed], ["", "end"], what);
      assertEquals(w.proxy.stats.refused.closed_early, before + 1, what);
    }
    assertEquals(w.proxy.stats.handshakes, w.proxy.stats.connects.ok);
  });
});

Deno.test("a head that does not arrive by the deadline gets 408", async () => {
  await withProxy(async (w) => {
    const loris = await rawClient(w.proxy.address, [
      "GET http://web.mesh/ HTTP/1.1\r\n",
      "X-A: 1\r\n",
      "X-B: 2\r\n",
    ], {
      gapMs: 60,
    });
    const silent = await rawClient(w.proxy.address, []);
    for (const r of [loris, silent]) {
      assertEquals(response(r).status, 408);
      assertEquals(r.closed, "end");
      assertOk(r.ms >= 250 && r.ms < 2000, `closed after ${r.ms} ms`);
    }
    assertEquals(w.proxy.stats.refused.timeout, 2);
    await stillServes(w);
  }, { handshakeTimeoutMs: 300 });
});

Deno.test("bytes after the head reach the upstream in order: CONNECT early data and request bodies", async () => {
  await withProxy(async (w) => {
    const ok = "HTTP/1.1 200 Connection established\r\n\r\n";
    const payload = "client hello before the 200 ".repeat(40);
    const untilAll = (n: number) => (all: Uint8Array, s: net.Socket) => {
      if (all.length >= n) s.end();
    };
    const once = await rawClient(w.proxy.address, [
      `CONNECT echo.mesh:1 HTTP/1.1\r\nHost: echo.mesh:1\r\n\r\n${payload}`,
    ], {
      onData: untilAll(ok.length + payload.length),
    });
    assertEquals(once.text, ok + payload);
    // One byte at a time through the head, then the payload in pieces.
    const head = "CONNECT echo.mesh:1 HTTP/1.1\r\n\r\n";
    const pieces = [...head];
    for (let i = 0; i < payload.length; i += 97) pieces.push(payload.slice(i, i + 97));
    const frag = await rawClient(w.proxy.address, pieces, {
      gapMs: 1,
      onData: untilAll(ok.length + payload.length),
    });
    assertEquals(frag.text, ok + payload);

    // Absolute-form: a chunked body sent with the head and after it; the upstream closes
    // after its answer (Connection: close) and that ends the client connection too.
    // (No half-close here: Deno's node:http server drops a request whose client sent FIN.)
    const body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    const post = await rawClient(w.proxy.address, [
      `POST http://web.mesh:${w.web.address.port}/up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n` +
      `Proxy-Connection: keep-alive\r\n\r\n${body.slice(0, 9)}`,
      body.slice(9),
    ]);
    const r = response(post);
    assertEquals(r.status, 200, post.text);
    const seen: SeenRequest = JSON.parse(r.body);
    assertEquals([seen.method, seen.url, seen.body], ["POST", "/up", "hello world"]);
    assertEquals(seen.headers["proxy-connection"], undefined);
    assertEquals(w.proxy.stats.connects.ok, 3);
  });
});

Deno.test("serveHttpProxy() checks its options and says what to fix when it cannot listen", async () => {
  const logger = testLogger();
  const connector = new FakeConnector();
  // Another program (no SO_REUSEPORT) holds the port; a second ambit could share it.
  const other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const first = { address: { ip: "127.0.0.1", port: other.addr.port }, close: () => other.close() };
  try {
    const e = await assertRejects(
      () => serveHttpProxy({ listen: first.address, connector, logger }),
      ProxyListenError,
      "HTTP proxy cannot listen on 127.0.0.1",
    ) as ProxyListenError;
    assertEquals(e.code, "EADDRINUSE");
  } finally {
    await first.close();
  }
  await assertRejects(
    () => serveHttpProxy({ listen: { ip: "0.0.0.0", port: 0 }, connector, logger }),
    ProxyListenError,
    "not a loopback address",
  );
  await assertRejects(
    () => serveHttpProxy({ connector, logger, maxHeaderBytes: 10 }),
    RangeError,
    "maxHeaderBytes",
  );
});
