import { assertEquals, assertRejects } from "../../tests/_util/asserts.ts";
import {
  ChunkedDecoder,
  Http1ResponseError,
  parseResponseHead,
  requestHead,
  responseFraming,
} from "./http1_client.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("parseResponseHead: complete, incomplete and malformed heads", async () => {
  const ok = parseResponseHead(enc("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A:  b \r\n\r\nok"));
  assertEquals(ok, {
    minor: 1,
    status: 200,
    headers: [["content-length", "2"], ["x-a", "b"]],
    length: 48,
  });
  assertEquals(parseResponseHead(enc("HTTP/1.0 204\r\n\r\n"))?.status, 204);
  assertEquals(parseResponseHead(enc("HTTP/1.1 200 OK\r\nX: y\r\n")), undefined);
  const bad: [string, string][] = [
    ["HTTP/2 200 OK\r\n\r\n", "malformed status line"],
    ["HTTP/1.1 99 Low\r\n\r\n", "malformed status line"],
    ["HTTP/1.1 200 OK\r\n folded\r\n\r\n", "malformed header"],
    ["HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "malformed header name"],
    ["HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "malformed header line"],
    ["HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "control byte"],
    ["HTTP/1.1 200 OK\nX: a\r\n\r\n", "malformed status line"],
  ];
  for (const [head, msg] of bad) {
    await assertRejects(() => parseResponseHead(enc(head)), Http1ResponseError, msg);
  }
  await assertRejects(
    () => parseResponseHead(enc(`HTTP/1.1 200 OK\r\nX: ${"a".repeat(100)}`), 64),
    Http1ResponseError,
    "over 64 bytes",
  );
});

Deno.test("responseFraming: RFC 9112 message body length, conflicts refused", async () => {
  const head = (status: number, ...headers: [string, string][]) => ({
    minor: 1 as const,
    status,
    headers,
    length: 0,
  });
  const cases: [string, string, ReturnType<typeof head>, unknown][] = [
    ["HEAD has no body", "HEAD", head(200, ["content-length", "10"]), { kind: "none" }],
    ["204", "GET", head(204), { kind: "none" }],
    ["304", "GET", head(304, ["content-length", "5"]), { kind: "none" }],
    ["length", "GET", head(200, ["content-length", "5"]), { kind: "length", length: 5 }],
    ["same length twice", "GET", head(200, ["content-length", "5, 5"]), {
      kind: "length",
      length: 5,
    }],
    ["chunked", "GET", head(200, ["transfer-encoding", "Chunked"]), { kind: "chunked" }],
    ["to close", "GET", head(200), { kind: "close" }],
  ];
  for (const [name, method, h, want] of cases) assertEquals(responseFraming(method, h), want, name);
  const bad: [string, ReturnType<typeof head>, string][] = [
    ["CL and TE", head(200, ["content-length", "5"], ["transfer-encoding", "chunked"]), "both"],
    ["two lengths", head(200, ["content-length", "5"], ["content-length", "6"]), "invalid"],
    ["negative", head(200, ["content-length", "-1"]), "invalid"],
    ["gzip coding", head(200, ["transfer-encoding", "gzip, chunked"]), "unsupported"],
  ];
  for (const [, h, msg] of bad) {
    await assertRejects(() => responseFraming("GET", h), Http1ResponseError, msg);
  }
});

Deno.test("ChunkedDecoder: pieces split anywhere, trailers, the rest returned; malformed refused", async () => {
  const body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nGrpc-Status: 0\r\n\r\nNEXT";
  for (const step of [1, 2, 3, 7, body.length]) {
    let out = "";
    const d = new ChunkedDecoder((c) => out += new TextDecoder().decode(c));
    let rest: Uint8Array | undefined;
    for (let i = 0; i < body.length && !rest; i += step) {
      rest = d.push(enc(body.slice(i, i + step)));
    }
    assertEquals(out, "hello world", `step ${step}`);
    assertEquals(d.trailers, [["grpc-status", "0"]]);
    // What follows the body in the piece that ended it comes back.
    assertEquals(new TextDecoder().decode(rest!).length > 0 || step < 5, true);
  }
  const bad: [string, string][] = [
    ["zz\r\n", "malformed chunk size"],
    ["5\r\nhello!\r\n", "longer than its size"],
    ["5\nhello\r\n", "bare LF"],
    [`${"f".repeat(13)}\r\n`, "malformed chunk size"],
    ["0\r\nBad Trailer: x\r\n\r\n", "malformed trailer"],
  ];
  for (const [input, msg] of bad) {
    const d = new ChunkedDecoder(() => {});
    await assertRejects(() => d.push(enc(input)), Http1ResponseError, msg);
  }
});

Deno.test("requestHead: framing set by the client, nothing that could split the head", async () => {
  const h = requestHead("POST", "/a?b=1", [["host", "x"], ["content-length", "9"], [
    "transfer-encoding",
    "chunked",
  ]], ["content-length", "3"]);
  assertEquals(
    new TextDecoder().decode(h),
    "POST /a?b=1 HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n",
  );
  await assertRejects(() => requestHead("GET", "/", [["x", "a\r\nInjected: 1"]], undefined), Error);
  await assertRejects(() => requestHead("GET", "/ HTTP/1.1\r\n", [], undefined), Error);
  await assertRejects(() => requestHead("G ET", "/", [], undefined), Error);
});
