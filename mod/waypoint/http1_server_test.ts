import { assertEquals, assertRejects } from "../../tests/_util/asserts.ts";
import { Http1RequestError, parseRequestHead, requestFraming } from "./http1_server.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("parseRequestHead: complete, incomplete, leading empty lines, malformed", async () => {
  const h = parseRequestHead(enc("\r\nGET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-A:\tb \r\n\r\nrest"));
  assertEquals(h, {
    method: "GET",
    target: "/a?b=1",
    minor: 1,
    headers: [["host", "x"], ["x-a", "b"]],
    length: 43,
  });
  assertEquals(parseRequestHead(enc("GET / HTTP/1.1\r\nHost: x\r\n")), undefined);
  const bad: [string, number, string][] = [
    ["GET\r\n\r\n", 400, "malformed request line"],
    ["GET / HTTP/2.0\r\n\r\n", 400, "malformed request line"],
    ["GET /a b HTTP/1.1\r\n\r\n", 400, "malformed request line"],
    ["G(T / HTTP/1.1\r\n\r\n", 400, "malformed request line"],
    ["GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "malformed header line"],
    ["GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "malformed header line"],
    ["GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400, "control byte"],
    ["GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", 400, "bare LF"],
    ["GET / HTTP/1.1\nHost: x\n", 400, "bare LF"],
    ["GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, "bare CR"],
    [`GET / HTTP/1.1\r\nX: ${"a".repeat(20_000)}`, 431, "over"],
  ];
  for (const [input, status, msg] of bad) {
    const e = await assertRejects(() => parseRequestHead(enc(input)), Http1RequestError, msg);
    assertEquals((e as Http1RequestError).status, status, input.slice(0, 40));
  }
});

Deno.test("requestFraming: lengths, chunked, Host rules; every smuggling shape is 400", async () => {
  const head = (minor: 0 | 1, ...headers: [string, string][]) => ({
    method: "POST",
    target: "/",
    minor,
    headers,
    length: 0,
  });
  const host: [string, string] = ["host", "x"];
  const ok: [string, ReturnType<typeof head>, unknown][] = [
    ["no body", head(1, host), { kind: "none" }],
    ["length", head(1, host, ["content-length", "5"]), { kind: "length", length: 5 }],
    ["zero length", head(1, host, ["content-length", "0"]), { kind: "none" }],
    ["chunked", head(1, host, ["transfer-encoding", "chunked"]), { kind: "chunked" }],
    ["HTTP/1.0 without Host", head(0), { kind: "none" }],
  ];
  for (const [name, h, want] of ok) assertEquals(requestFraming(h), want, name);
  const bad: [string, ReturnType<typeof head>, string][] = [
    ["CL and TE", head(1, host, ["content-length", "5"], ["transfer-encoding", "chunked"]), "both"],
    ["two lengths", head(1, host, ["content-length", "5"], ["content-length", "6"]), "invalid"],
    ["list of lengths", head(1, host, ["content-length", "5, 6"]), "invalid"],
    ["signed length", head(1, host, ["content-length", "+5"]), "invalid"],
    ["chunked twice", head(1, host, ["transfer-encoding", "chunked, chunked"]), "unsupported"],
    ["not chunked last", head(1, host, ["transfer-encoding", "chunked, gzip"]), "unsupported"],
    ["obfuscated TE", head(1, host, ["transfer-encoding", "xchunked"]), "unsupported"],
    ["no Host", head(1), "no Host"],
    ["two Hosts", head(1, host, ["host", "y"]), "more than one Host"],
  ];
  for (const [, h, msg] of bad) {
    await assertRejects(() => requestFraming(h), Http1RequestError, msg);
  }
});

Deno.test("Http1ServerConnection on a real socket: 200 pipelined requests, answers in order, no listener piles up on the connection", async () => {
  const { default: net } = await import("node:net");
  const { Http1ServerConnection } = await import("./http1_server.ts");
  let serverSide: import("node:net").Socket | undefined;
  let served = 0;
  const srv = net.createServer((sock) => {
    serverSide = sock;
    new Http1ServerConnection(sock, {
      onRequest(req, res) {
        res.onClose(() => {});
        res.onClose(() => {});
        served++;
        res.reply(200, `seen ${req.target}`);
      },
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  const c = net.connect(port, "127.0.0.1");
  let out = "";
  const N = 200;
  let reqs = "";
  for (let i = 0; i < N; i++) reqs += `GET /r${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
  c.write(reqs + "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  c.on("data", (d) => out += d);
  await new Promise((r) => c.on("close", r));
  const order = [...out.matchAll(/seen \/(r\d+|last)/g)].map((m) => m[1]);
  assertEquals(order.length, N + 1);
  assertEquals(order.slice(0, 3), ["r0", "r1", "r2"]);
  assertEquals(order.at(-1), "last");
  assertEquals(served, N + 1);
  // One listener per event from the connection itself, whatever the number of requests.
  for (const ev of ["close", "end", "data", "drain", "timeout"]) {
    assertEquals(
      serverSide!.listenerCount(ev) <= 3,
      true,
      `${ev}: ${serverSide!.listenerCount(ev)}`,
    );
  }
  srv.close();
});
