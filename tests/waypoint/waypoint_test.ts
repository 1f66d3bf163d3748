/**
 * The waypoint's data path in process: client → node-a's ztunnel (VIP) →
 * HBONE → waypoint → HBONE (waypoint identity) → node-b's ztunnel → app.
 * Real ztunnels, a real waypoint, real HTTP servers and clients (curl).
 */
import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import { assertEquals, assertEventually, assertIncludes } from "../_util/asserts.ts";
import { addressBlock, testMesh } from "../ztunnel/_mesh.ts";
import { meshHead } from "./_mesh_head.ts";

const id = (sa: string) => `spiffe://ambit.test/ns/apps/sa/${sa}`;

function config(a: (n: number, h: number) => string, extra = ""): string {
  return `
${meshHead(a)}---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: web, namespace: apps }
spec:
  node: node-b
  address: ${a(2, 10)}
  serviceAccount: web
  labels: { app: web, version: v1 }
  ports: { http: 8080, grpc: 8081, tcp: 8082 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: apps, labels: { istio.io/use-waypoint: waypoint } }
spec:
  clusterIP: ${a(3, 1)}
  selector: { app: web }
  ports:
    - { name: http, port: 80, targetPort: http, appProtocol: http }
    - { name: grpc, port: 81, targetPort: grpc, appProtocol: grpc }
    - { name: tcp, port: 82, targetPort: tcp }
${extra}`;
}

/** An HTTP/1.1 + h2c app that describes each request it got. */
async function webApp(ip: string) {
  const seen: { path: string; headers: http.IncomingHttpHeaders; peer: string }[] = [];
  const h1 = http.createServer((req, res) => {
    seen.push({ path: req.url!, headers: req.headers, peer: req.socket.remoteAddress! });
    let body = "";
    req.on("data", (c) => body += c);
    req.on("end", () => {
      res.setHeader("x-app", "web");
      res.end(`web ${req.method} ${req.url} body=${body.length}`);
    });
  });
  await new Promise<void>((r) => h1.listen(8080, ip, r));
  const h2 = http2.createServer();
  h2.on("stream", (s, h) => {
    seen.push({ path: String(h[":path"]), headers: h as http.IncomingHttpHeaders, peer: "" });
    let n = 0;
    s.on("data", (c: Uint8Array) => n += c.length);
    s.on("end", () => {
      s.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      s.on("wantTrailers", () => s.sendTrailers({ "grpc-status": "0", "grpc-message": "ok" }));
      s.end(`h2 ${h[":path"]} body=${n}`);
    });
  });
  await new Promise<void>((r) => h2.listen(8081, ip, r));
  const tcp = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => tcp.listen(8082, ip, r));
  return {
    seen,
    close: () => {
      h1.close();
      h2.close();
      tcp.close();
    },
  };
}

type Mesh = Awaited<ReturnType<typeof testMesh>>;
type Waypoint = Awaited<ReturnType<Mesh["waypoint"]>>;

/**
 * Starts the bed (node-a, node-b, the waypoint) around `app`, runs `body`,
 * then closes everything (AMBIT_TEST_LOGS=1 prints the mesh's logs).
 */
async function onWaypointPath<A extends { close(): void }>(
  a: (n: number, h: number) => string,
  startApp: () => Promise<A>,
  body: (ctx: { mesh: Mesh; wp: Waypoint; app: A }) => Promise<void>,
): Promise<void> {
  const mesh = await testMesh(config(a));
  const app = await startApp();
  try {
    await mesh.ztunnel("node-a");
    await mesh.ztunnel("node-b");
    const wp = await mesh.waypoint("apps/waypoint");
    await body({ mesh, wp, app });
  } finally {
    if (Deno.env.get("AMBIT_TEST_LOGS")) {
      for (const l of mesh.logs) console.error(JSON.stringify(l));
    }
    app.close();
    await mesh.close();
  }
}

/**
 * Sends `parts` to the waypoint path of service web (one write each, 50 ms
 * apart) from the client's address and reads until the connection closes.
 */
function rawHttp(
  a: (n: number, h: number) => string,
  parts: string[],
  timeoutMs = 5000,
): Promise<string> {
  return new Promise<string>((resolve) => {
    const s = net.connect({ host: a(3, 1), port: 80, localAddress: a(1, 10) });
    let out = "";
    s.on("connect", async () => {
      for (const [i, p] of parts.entries()) {
        if (i > 0) await new Promise((r) => setTimeout(r, 50));
        s.write(p);
      }
    });
    s.on("data", (c) => out += c);
    s.on("error", () => {});
    s.on("close", () => resolve(out));
    setTimeout(() => s.destroy(), timeoutMs);
  });
}

async function curl(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command("curl", { args: ["-sS", "--max-time", "10", ...args] })
    .output();
  const d = new TextDecoder();
  return { code: r.code, out: d.decode(r.stdout), err: d.decode(r.stderr) };
}

Deno.test("HTTP/1.1 and h2c through the waypoint reach the app with the caller's identity; metrics say reporter=waypoint", async () => {
  const a = addressBlock();
  await onWaypointPath(a, () => webApp(a(2, 10)), async ({ wp, app }) => {
    const url = `http://${a(3, 1)}/hello?x=1`;
    const r = await curl(["--interface", a(1, 10), "-i", url]);
    assertEquals(r.code, 0, r.err);
    assertIncludes(r.out, "HTTP/1.1 200");
    assertIncludes(r.out, "x-app: web");
    assertIncludes(r.out, "web GET /hello?x=1 body=0");
    const got = app.seen.at(-1)!;
    assertEquals(
      got.headers["x-forwarded-client-cert"],
      `By=${id("waypoint")};URI=${id("client")}`,
    );
    assertEquals(got.headers["x-forwarded-for"], a(1, 10));
    assertEquals(
      /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/.test(String(got.headers.traceparent)),
      true,
    );
    // A client's own x-forwarded-client-cert is never passed on.
    await curl(["--interface", a(1, 10), "-H", "x-forwarded-client-cert: URI=spiffe://evil", url]);
    assertEquals(
      app.seen.at(-1)!.headers["x-forwarded-client-cert"],
      `By=${id("waypoint")};URI=${id("client")}`,
    );
    // A POST body, and h2c with prior knowledge.
    const post = await curl(["--interface", a(1, 10), "-d", "abc=123", url]);
    assertIncludes(post.out, "web POST /hello?x=1 body=7");
    // Bodies too large to buffer stream through: with a length, and chunked without one.
    const big = await Deno.makeTempFile();
    await Deno.writeFile(big, new Uint8Array(3 << 20).fill(97));
    try {
      const large = await curl(["--interface", a(1, 10), "--data-binary", `@${big}`, url]);
      assertIncludes(large.out, `web POST /hello?x=1 body=${3 << 20}`);
      const chunked = await curl([
        "--interface",
        a(1, 10),
        "-H",
        "transfer-encoding: chunked",
        "--data-binary",
        `@${big}`,
        url,
      ]);
      assertIncludes(chunked.out, `web POST /hello?x=1 body=${3 << 20}`);
      assertEquals(app.seen.at(-1)!.headers["transfer-encoding"], "chunked");
    } finally {
      await Deno.remove(big);
    }
    const h2 = await curl(["--interface", a(1, 10), "--http2-prior-knowledge", url]);
    assertEquals(h2.code, 0, h2.err);
    assertIncludes(h2.out, "body=0");
    // The trace id the caller sent is kept.
    const tid = "4bf92f3577b34da6a3ce929d0e0e4736";
    await curl(["--interface", a(1, 10), "-H", `traceparent: 00-${tid}-00f067aa0ba902b7-01`, url]);
    assertEquals(String(app.seen.at(-1)!.headers.traceparent).split("-")[1], tid);

    await assertEventually(() =>
      wp.metricsText().includes('istio_requests_total{reporter="waypoint",source_workload="client"')
    );
    const text = wp.metricsText();
    const line = text.split("\n").find((l) =>
      l.startsWith('istio_requests_total{reporter="waypoint"') &&
      l.includes('response_code="200"') &&
      l.includes('request_protocol="http"')
    )!;
    assertIncludes(line, `source_principal="${id("client")}"`);
    assertIncludes(line, 'destination_service="web.apps.svc.cluster.local"');
    assertIncludes(line, 'destination_workload="web"');
    assertIncludes(line, `destination_principal="${id("web")}"`);
    assertEquals(Number(line.split(" ").pop()) >= 5, true, line);
    assertIncludes(text, 'istio_request_duration_milliseconds_bucket{reporter="waypoint"');
    assertIncludes(text, 'le="0.5"');
    assertIncludes(text, "istio_request_bytes_sum");
    assertIncludes(text, "istio_response_bytes_count");
  });
});

Deno.test("gRPC-style h2 with trailers and non-HTTP bytes on a TCP port pass through the waypoint", async () => {
  const a = addressBlock();
  await onWaypointPath(a, () => webApp(a(2, 10)), async ({ wp }) => {
    // h2 with trailers, as gRPC does, from a client bound to the client workload's address.
    const session = http2.connect(`http://${a(3, 1)}:81`, {
      createConnection: () => net.connect({ host: a(3, 1), port: 81, localAddress: a(1, 10) }),
    });
    const res = await new Promise<{ body: string; trailers: http2.IncomingHttpHeaders }>(
      (resolve, reject) => {
        const s = session.request({
          ":method": "POST",
          ":path": "/pkg.Echo/Say",
          "content-type": "application/grpc",
          te: "trailers",
        });
        let body = "";
        let trailers: http2.IncomingHttpHeaders = {};
        s.on("data", (c) => body += c);
        s.on("trailers", (t) => trailers = t);
        s.on("end", () => resolve({ body, trailers }));
        s.on("error", reject);
        s.end("12345");
      },
    );
    session.close();
    assertEquals(res.body, "h2 /pkg.Echo/Say body=5");
    assertEquals(res.trailers["grpc-status"], "0");
    await assertEventually(() =>
      wp.metricsText().includes(
        'request_protocol="grpc",response_code="200",grpc_response_status="0"',
      )
    );
    // Plain bytes on the TCP port: echoed end to end.
    const echoed = await new Promise<string>((resolve) => {
      const s = net.connect({ host: a(3, 1), port: 82, localAddress: a(1, 10) });
      let out = "";
      s.on("connect", () => s.end("raw bytes"));
      s.on("data", (c) => out += c);
      s.on("close", () => resolve(out));
    });
    assertEquals(echoed, "raw bytes");
  });
});

Deno.test("malformed HTTP and smuggling attempts get 400 from the waypoint and never reach the app", async () => {
  const a = addressBlock();
  await onWaypointPath(a, () => webApp(a(2, 10)), async ({ app }) => {
    const raw = (payload: string) => rawHttp(a, [payload], 3000);
    const before = app.seen.length;
    const cases: [string, string, string][] = [
      [
        "Content-Length with Transfer-Encoding",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        "400",
      ],
      [
        "two Content-Lengths",
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "400",
      ],
      ["garbage request line", "GET\r\n\r\n", "400"],
      [
        "oversized header block",
        `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`,
        "431",
      ],
    ];
    for (const [name, payload, status] of cases) {
      const out = await raw(payload);
      assertIncludes(out.split("\r\n")[0] ?? "", status, `${name}: ${out.slice(0, 80)}`);
    }
    assertEquals(app.seen.length, before, "nothing reached the app");
    assertEquals(app.seen.some((s) => s.path === "/smuggled"), false);
  });
});

Deno.test("gRPC through the waypoint with Python's grpcio on both ends: unary with trailers, bidirectional streaming, an unknown method", async () => {
  const a = addressBlock();
  const mesh = await testMesh(config(a));
  const py = new URL("./py/grpc_peer.py", import.meta.url).pathname;
  const server = new Deno.Command("/usr/bin/python3", {
    args: [py, "serve", `${a(2, 10)}:8081`],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const first = await reader.read();
    assertEquals(first.value?.trim(), "ready");
    await mesh.ztunnel("node-a");
    await mesh.ztunnel("node-b");
    const wp = await mesh.waypoint("apps/waypoint");
    const out = await new Deno.Command("/usr/bin/python3", {
      args: [py, "call", `${a(3, 1)}:81`],
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    const r = JSON.parse(text);
    assertEquals(r.unary, `hello world from By=${id("waypoint")};URI=${id("client")}`);
    assertEquals(r.code, "OK");
    assertEquals(r.trailers["x-served-by"], "py-grpc");
    assertEquals(r.stream, ["0:a", "1:b", "2:c"]);
    assertEquals(r.missing, "UNIMPLEMENTED");
    const m = wp.metricsText();
    assertIncludes(m, 'request_protocol="grpc",response_code="200",grpc_response_status="0"');
    assertIncludes(m, 'request_protocol="grpc",response_code="200",grpc_response_status="12"');
  } finally {
    server.kill();
    await server.status;
    await mesh.close();
  }
});

Deno.test("one span per request is exported as OTLP/HTTP JSON in the caller's trace", async () => {
  const a = addressBlock();
  const mesh = await testMesh(config(a));
  const app = await webApp(a(2, 10));
  const bodies: unknown[] = [];
  const collector = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      if (new URL(req.url).pathname === "/v1/traces") bodies.push(await req.json());
      return new Response("{}");
    },
  );
  try {
    await mesh.ztunnel("node-a");
    await mesh.ztunnel("node-b");
    const wp = await mesh.waypoint("apps/waypoint", {
      otlpEndpoint: `http://127.0.0.1:${collector.addr.port}`,
    });
    const tid = "4bf92f3577b34da6a3ce929d0e0e4736";
    const r = await curl([
      "--interface",
      a(1, 10),
      "-H",
      `traceparent: 00-${tid}-00f067aa0ba902b7-01`,
      `http://${a(3, 1)}/traced`,
    ]);
    assertEquals(r.code, 0, r.err);
    await curl(["--interface", a(1, 10), `http://${a(3, 1)}/root`]);
    await wp.spans!.flush();
    type Span = {
      traceId: string;
      parentSpanId?: string;
      name: string;
      kind: number;
      attributes: { key: string; value: Record<string, unknown> }[];
    };
    const spans: Span[] = bodies.flatMap((b) =>
      (b as { resourceSpans: { scopeSpans: { spans: Span[] }[] }[] }).resourceSpans.flatMap((rs) =>
        rs.scopeSpans.flatMap((ss) => ss.spans)
      )
    );
    assertEquals(spans.length, 2);
    const traced = spans.find((s) => s.traceId === tid)!;
    assertEquals(traced.parentSpanId, "00f067aa0ba902b7");
    assertEquals(traced.kind, 2);
    assertEquals(traced.name, "GET web.apps.svc.cluster.local");
    const attr = (s: Span, k: string) => s.attributes.find((x) => x.key === k)?.value;
    assertEquals(attr(traced, "http.response.status_code"), { intValue: "200" });
    assertEquals(attr(traced, "url.path"), { stringValue: "/traced" });
    // The app saw this hop's span as the parent.
    const seen = String(app.seen.find((s) => s.path === "/traced")!.headers.traceparent);
    assertEquals(seen.split("-")[1], tid);
    const root = spans.find((s) => s.traceId !== tid)!;
    assertEquals(root.parentSpanId, undefined);
    const resource = (bodies[0] as { resourceSpans: { resource: { attributes: unknown[] } }[] })
      .resourceSpans[0].resource.attributes;
    assertEquals(JSON.stringify(resource).includes("waypoint.apps"), true);
  } finally {
    app.close();
    await mesh.close();
    await collector.shutdown();
  }
});

/**
 * A raw TCP app that answers each request by its path with scripted bytes
 * (keep-alive, chunked, to-close, interim 100, and malformed or smuggling
 * answers); counts the connections it accepted.
 */
async function scriptedApp(ip: string) {
  const answers: Record<string, string> = {
    "/ok": "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    "/chunked":
      "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    "/continue": "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nafter",
    "/to-close": "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end",
    "/both":
      "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nsmuggled",
    "/fold": "HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\ncontent-length: 2\r\n\r\nok",
    "/garbage": "HTTP/1.1 OK\r\n\r\n",
  };
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    let buf = "";
    s.on("data", (c) => {
      buf += c;
      let i;
      while ((i = buf.indexOf("\r\n\r\n")) >= 0) {
        const path = buf.slice(0, i).split(" ")[1];
        buf = buf.slice(i + 4);
        const a = answers[path] ?? "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        s.write(a);
        if (path === "/to-close") s.end();
      }
    });
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(8080, ip, r));
  return { connections: () => connections, close: () => server.close() };
}

Deno.test("the waypoint's HTTP/1.1 client: keep-alive reuse, chunked, interim and to-close answers; malformed and smuggling answers are 502 and nothing extra reaches the client", async () => {
  const a = addressBlock();
  await onWaypointPath(a, () => scriptedApp(a(2, 10)), async ({ app }) => {
    const get = (path: string) =>
      rawHttp(a, [`GET ${path} HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n`]);
    const status = (r: string) => r.split("\r\n")[0];
    const body = (r: string) => r.slice(r.indexOf("\r\n\r\n") + 4);
    for (let i = 0; i < 3; i++) {
      const r = await get("/ok");
      assertEquals(status(r), "HTTP/1.1 200 OK", r);
      assertEquals(body(r), "ok");
    }
    assertEquals(app.connections(), 1, "three requests, one pooled connection to the app");
    const chunked = await get("/chunked");
    assertEquals(status(chunked), "HTTP/1.1 200 OK", chunked);
    assertIncludes(chunked.toLowerCase(), "transfer-encoding: chunked");
    assertIncludes(body(chunked), "abc");
    assertIncludes(body(chunked), "de");
    const cont = await get("/continue");
    assertEquals(status(cont), "HTTP/1.1 200 OK", cont);
    assertEquals(body(cont), "afte");
    const toClose = await get("/to-close");
    assertEquals(status(toClose), "HTTP/1.1 200 OK", toClose);
    assertIncludes(body(toClose), "until the end");
    for (const path of ["/both", "/fold", "/garbage"]) {
      const r = await get(path);
      assertEquals(status(r), "HTTP/1.1 502 Bad Gateway", `${path}: ${r.slice(0, 120)}`);
      assertEquals(r.includes("smuggled"), false, `${path}: ${r}`);
    }
    // The pool still works after the failures (each closed its connection).
    assertEquals(body(await get("/ok")), "ok");
  });
});

Deno.test("the waypoint's HTTP/1.1 server: pipelined requests answered in order, HTTP/1.0, 100-continue, chunked upload, HEAD; bad heads are 400 and reach nothing", async () => {
  const a = addressBlock();
  await onWaypointPath(a, () => webApp(a(2, 10)), async ({ app }) => {
    const raw = (...parts: string[]) => rawHttp(a, parts, 8000);
    const pipelined = await raw(
      "GET /one HTTP/1.1\r\nHost: web\r\n\r\nGET /two HTTP/1.1\r\nHost: web\r\n\r\n" +
        "GET /three HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n",
    );
    const order = [...pipelined.matchAll(/web GET (\/\w+)/g)].map((m) => m[1]);
    assertEquals(order, ["/one", "/two", "/three"]);
    assertEquals(pipelined.split("HTTP/1.1 200 OK").length - 1, 3);

    const http10 = await raw("GET /old HTTP/1.0\r\nHost: web\r\n\r\n");
    assertIncludes(http10, "HTTP/1.1 200 OK");
    assertIncludes(http10, "web GET /old body=0");

    const cont = await raw(
      "POST /up HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
      "hello",
    );
    assertEquals(cont.startsWith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK"), true, cont);
    assertIncludes(cont, "web POST /up body=5");

    const chunked = await raw(
      "POST /c HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
      "3\r\nabc\r\n",
      "4\r\ndefg\r\n0\r\n\r\n",
    );
    assertIncludes(chunked, "web POST /c body=7");

    const head = await raw("HEAD /h HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n");
    assertIncludes(head, "HTTP/1.1 200 OK");
    assertEquals(head.includes("web HEAD"), false, "no body after HEAD");

    const before = app.seen.length;
    for (
      const bad of [
        "GET / HTTP/1.1\r\n\r\n", // no Host
        "GET / HTTP/1.1\r\nHost: web\r\nHost: evil\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: web\r\nX: a\r\n  folded\r\n\r\n",
        "GET / HTTP/1.1\nHost: web\n\n",
        "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "CONNECT web:80 HTTP/1.1\r\nHost: web:80\r\n\r\n",
      ]
    ) {
      const r = await raw(bad);
      assertEquals(r.split("\r\n")[0], "HTTP/1.1 400 Bad Request", JSON.stringify(bad));
    }
    assertEquals(app.seen.length, before, "nothing reached the app");
  });
});
