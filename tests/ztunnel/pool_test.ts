/**
 * The HBONE client pool against a real ztunnel: shared first handshakes,
 * the per-connection stream cap, idle close, dead-peer detection, failed
 * connects, and the request headers that reach the peer.
 */
import http2 from "node:http2";
import { assertEquals, assertEventually, assertIncludes } from "../_util/asserts.ts";
import { freezableProxy } from "../_util/net.ts";
import { HbonePool, type TunnelRequest } from "../../mod/hbone/pool.ts";
import { HboneServer, type ServerTunnel } from "../../mod/hbone/server.ts";
import { TunnelError } from "../../mod/hbone/errors.ts";
import type { TlsIdentity } from "../../mod/identity/tls.ts";
import { Logger } from "../../mod/log/logger.ts";
import type { Duplex } from "node:stream";
import { addressBlock, type TestMesh, testMesh, twoNodeConfig } from "./_mesh.ts";
import { echoServer, talk } from "./_apps.ts";

const CLIENT = "spiffe://ambit.test/ns/apps/sa/client";
const ECHO = "spiffe://ambit.test/ns/apps/sa/echo";

function poolFor(mesh: TestMesh, opts: Partial<ConstructorParameters<typeof HbonePool>[0]> = {}) {
  const certs = new Map<string, Promise<TlsIdentity>>();
  return new HbonePool({
    logger: new Logger({ level: "error" }),
    certificate: (id) => {
      if (!certs.has(id)) certs.set(id, mesh.issue(id));
      return certs.get(id)!;
    },
    rootsPem: () => mesh.ca.roots.map((r) => r.toString("pem")).join("\n"),
    ...opts,
  });
}

/** Reads one echo round trip on an open tunnel. */
async function roundTrip(stream: Duplex, text: string): Promise<string> {
  stream.setEncoding("utf8");
  let got = "";
  const want = `echo:${text}`;
  await new Promise<void>((resolve, reject) => {
    const onData = (d: string) => {
      got += d;
      if (got.length >= want.length) {
        stream.off("data", onData);
        resolve();
      }
    };
    stream.on("data", onData);
    stream.once("error", reject);
    stream.write(text);
  });
  return got;
}

Deno.test("HbonePool: concurrent first requests share one handshake; the stream cap opens another connection; idle connections close", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const app = await echoServer(a(2, 10), 8080);
  const pool = poolFor(mesh, { maxStreamsPerConnection: 5, idleTimeoutMs: 300 });
  try {
    const zb = await mesh.ztunnel("node-b");
    const req: TunnelRequest = {
      source: CLIENT,
      expected: [ECHO],
      nextHop: { ip: a(2, 1), port: 15008 },
      authority: `${a(2, 10)}:8080`,
    };
    // Five at once: one handshake between them.
    const first = await Promise.all(Array.from({ length: 5 }, () => pool.open(req)));
    assertEquals(pool.stats.handshakes, 1);
    assertEquals(pool.connections, 1);
    assertEquals(first.filter((t) => t.newConnection).length, 1);
    assertEquals(first.map((t) => t.peerIdentity), Array(5).fill(ECHO));
    // Twelve more: the first connection is full, so two more open (5 + 5 + 5 ≥ 17 > 15 → 4).
    const more = await Promise.all(Array.from({ length: 12 }, () => pool.open(req)));
    assertEquals(pool.connections, 4);
    assertEquals(pool.stats.handshakes, 4);
    assertEquals(zb.hboneServer!.sessions, 4);
    const all = [...first, ...more];
    const replies = await Promise.all(all.map((t, i) => roundTrip(t.stream, `n${i}`)));
    assertEquals(replies, all.map((_, i) => `echo:n${i}`));
    assertEquals(pool.openStreams, 17);
    // A different source identity is a different key: its own connection.
    const other = await pool.open({ ...req, source: "spiffe://ambit.test/ns/apps/sa/other" });
    assertEquals(other.newConnection, true);
    assertEquals(pool.connections, 5);
    for (const t of [...all, other]) {
      t.stream.resume();
      t.stream.end();
    }
    await assertEventually(() => pool.openStreams === 0);
    // Without streams for 300 ms every connection closes, on both sides.
    await assertEventually(() => pool.connections === 0 && zb.hboneServer!.sessions === 0);
    assertEquals(app.connections, 18);
    // And the next request opens a fresh one.
    const again = await pool.open(req);
    assertEquals(again.newConnection, true);
    again.stream.destroy();
  } finally {
    pool.close();
    app.close();
    await mesh.close();
  }
});

Deno.test("HbonePool: a refused connect fails fast with connect_failed and leaves nothing pooled", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const pool = poolFor(mesh, { connectTimeoutMs: 2000 });
  try {
    const started = Date.now();
    const err = await pool.open({
      source: CLIENT,
      expected: [ECHO],
      nextHop: { ip: a(2, 1), port: 15008 },
      authority: `${a(2, 10)}:8080`,
    }).then(() => undefined, (e) => e);
    assertEquals(err instanceof TunnelError && err.failure, "connect_failed");
    assertIncludes(err.message, `cannot connect to ${a(2, 1)}:15008`);
    assertEquals(
      Date.now() - started < 1500,
      true,
      "a refused connect does not wait out the timeout",
    );
    assertEquals([pool.connections, pool.openStreams], [0, 0]);
    assertEquals(pool.stats.handshakeFailures, 1);
  } finally {
    pool.close();
    await mesh.close();
  }
});

Deno.test("HbonePool: a peer that stops answering PINGs is dropped with its streams, never reused", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const app = await echoServer(a(2, 10), 8080);
  const pool = poolFor(mesh, {
    keepalive: { intervalMs: 100, timeoutMs: 500 },
    connectTimeoutMs: 1000,
  });
  const proxy = await freezableProxy({ ip: a(2, 2), port: 15008 }, { ip: a(2, 1), port: 15008 });
  try {
    await mesh.ztunnel("node-b");
    const req: TunnelRequest = {
      source: CLIENT,
      expected: [ECHO],
      nextHop: { ip: a(2, 2), port: 15008 },
      authority: `${a(2, 10)}:8080`,
    };
    const t = await pool.open(req);
    assertEquals(await roundTrip(t.stream, "before"), "echo:before");
    const streamClosed = new Promise((r) => t.stream.once("close", r));
    proxy.freeze();
    await streamClosed;
    await assertEventually(() => pool.connections === 0);
    const err = await pool.open(req).then(() => undefined, (e) => e);
    assertEquals(err instanceof TunnelError, true, "a frozen path cannot carry a new handshake");
    assertEquals(pool.stats.handshakes, 2, "the dead connection was not reused");
  } finally {
    pool.close();
    proxy.close();
    app.close();
    await mesh.close();
  }
});

Deno.test("outbound tunnels carry forwarded, baggage and traceparent as Istio's ztunnel sends them", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const seen: ServerTunnel[] = [];
  const echoCert = await mesh.issue(ECHO);
  // A bare HBONE server stands in for node-b, so the test sees the request as sent.
  const server = await HboneServer.listen({
    listen: { ip: a(2, 1), port: 15008 },
    logger: new Logger({ level: "error" }),
    trustDomain: () => "ambit.test",
    rootsPem: () => echoCert.caPem,
    certificateFor: () => ({ ...echoCert, serial: "1" }),
    onTunnel: (t) => {
      seen.push(t);
      const s = t.accept();
      s.on("data", () => {});
      s.on("end", () => s.end("ok"));
    },
  });
  try {
    await mesh.ztunnel("node-a");
    const r = await talk(a(3, 1), 80, "x", a(1, 10));
    assertEquals(r.reply, "ok");
    assertEquals(seen.length, 1);
    const h = seen[0].headers;
    assertEquals(h[":method"], "CONNECT");
    assertEquals(h[":authority"], `${a(2, 10)}:8080`);
    assertEquals(h[":path"], undefined);
    assertEquals(h[":scheme"], undefined);
    assertEquals(seen[0].peerIdentity, CLIENT);
    assertIncludes(String(h["forwarded"]), `for="${a(1, 10)}:`);
    assertIncludes(String(h["forwarded"]), ";host=echo.apps.svc.cluster.local");
    const baggage = String(h["baggage"]);
    for (const part of ["k8s.namespace.name=apps", "service.name=client"]) {
      assertIncludes(baggage, part);
    }
    assertEquals(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/.test(String(h["traceparent"])), true);
    assertEquals(seen[0].headers[http2.constants.HTTP2_HEADER_CONTENT_LENGTH], undefined);
  } finally {
    await server.close();
    await mesh.close();
  }
});
