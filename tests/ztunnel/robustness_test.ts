/**
 * The data plane under awkward peers: byte order and half-close both ways,
 * resets in both directions, a reader that stops reading, a client whose
 * link dies without a FIN, and clients that never finish TLS or the HTTP/2
 * preface. Two in-process ztunnels, real sockets and TLS.
 */
import net from "node:net";
import tls from "node:tls";
import { createHash, randomBytes } from "node:crypto";
import http2 from "node:http2";
import { assertEquals, assertEventually } from "../_util/asserts.ts";
import { freezableProxy } from "../_util/net.ts";
import { addressBlock, testMesh, twoNodeConfig } from "./_mesh.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** A server whose handler gets each accepted socket; tracks open sockets. */
async function appServer(ip: string, port: number, onConn: (s: net.Socket) => void) {
  const open = new Set<net.Socket>();
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => {});
    onConn(s);
  });
  await new Promise<void>((r) => srv.listen(port, ip, () => r()));
  return {
    open,
    close() {
      srv.close();
      for (const s of open) s.destroy();
    },
  };
}

/** Collects a socket's bytes until it ends. */
function collect(s: net.Socket | import("node:stream").Duplex): Promise<Uint8Array> {
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    s.on("data", (d: Uint8Array) => chunks.push(d));
    s.on("end", () => resolve(Buffer.concat(chunks)));
    s.on("close", () => resolve(Buffer.concat(chunks)));
  });
}

Deno.test("bytes arrive whole and in order, and a half-close passes through in each direction", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const reply = randomBytes(8 << 20);
  const serverSaw: Promise<Uint8Array>[] = [];
  // Connection 1: the app reads to EOF, then answers with the hash and 8 MiB.
  // Connection 2: the app says "bye" and half-closes at once, then keeps reading.
  let n = 0;
  const app = await appServer(a(2, 10), 8080, (s) => {
    const got = collect(s);
    serverSaw.push(got);
    if (n++ === 0) {
      got.then((b) => {
        s.write(sha(b));
        s.end(reply);
      });
    } else s.end("bye");
  });
  try {
    await mesh.ztunnel("node-a");
    const zb = await mesh.ztunnel("node-b");
    const payload = randomBytes(24 << 20);
    const c1 = net.connect({
      host: a(3, 1),
      port: 80,
      localAddress: a(1, 10),
      allowHalfOpen: true,
    });
    c1.on("error", () => {});
    const back1 = collect(c1);
    c1.on("connect", () => c1.end(payload));
    const got1 = await back1;
    assertEquals(new TextDecoder().decode(got1.subarray(0, 64)), sha(payload));
    assertEquals(sha(got1.subarray(64)), sha(reply), "8 MiB back, whole and in order");
    assertEquals((await serverSaw[0]).length, payload.length);

    const c2 = net.connect({
      host: a(3, 1),
      port: 80,
      localAddress: a(1, 10),
      allowHalfOpen: true,
    });
    c2.on("error", () => {});
    const back2 = collect(c2);
    assertEquals(new TextDecoder().decode(await back2), "bye", "the app's half-close reached us");
    // Our direction is still open: send after the peer ended.
    const late = randomBytes(3 << 20);
    c2.end(late);
    await assertEventually(() => serverSaw.length === 2);
    assertEquals(sha(await serverSaw[1]), sha(late), "bytes sent after the app half-closed");
    await assertEventually(() => zb.registry.size === 0 && app.open.size === 0);
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("a reset on either side tears down the other side", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const app = await appServer(a(2, 10), 8080, (s) => {
    s.once("data", (d: Uint8Array) => {
      if (new TextDecoder().decode(d) === "reset me") s.resetAndDestroy();
    });
  });
  try {
    const za = await mesh.ztunnel("node-a");
    const zb = await mesh.ztunnel("node-b");
    // The app resets: the client's connection ends.
    const c1 = net.connect({ host: a(3, 1), port: 80, localAddress: a(1, 10) });
    c1.on("error", () => {});
    const closed1 = new Promise((r) => c1.once("close", r));
    c1.on("connect", () => c1.write("reset me"));
    await closed1;
    // The client vanishes: the app's connection closes.
    const c2 = net.connect({ host: a(3, 1), port: 80, localAddress: a(1, 10) });
    c2.on("error", () => {});
    c2.on("connect", () => c2.write("hello"));
    await assertEventually(() => app.open.size === 1);
    c2.resetAndDestroy();
    await assertEventually(() => app.open.size === 0);
    await assertEventually(() => za.registry.size === 0 && zb.registry.size === 0);
    assertEquals([za.pool.openStreams, zb.hboneServer!.openStreams], [0, 0]);
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("a client that stops reading is held back by flow control, not buffered without bound", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const total = 96 << 20;
  let written = 0;
  let lastProgress = Date.now();
  const app = await appServer(a(2, 10), 8080, (s) => {
    const chunk = new Uint8Array(64 << 10);
    const pump = () => {
      while (written < total) {
        written += chunk.length;
        lastProgress = Date.now();
        if (!s.write(chunk)) return void s.once("drain", pump);
      }
      s.end();
    };
    pump();
  });
  try {
    await mesh.ztunnel("node-a");
    await mesh.ztunnel("node-b");
    const c = net.connect({ host: a(3, 1), port: 80, localAddress: a(1, 10) });
    c.pause();
    await new Promise((r) => c.once("connect", r));
    // Wait until the app has been stalled for half a second.
    await assertEventually(() => written > 0 && Date.now() - lastProgress > 500, {
      timeoutMs: 15_000,
    });
    const stalledAt = written;
    assertEquals(
      stalledAt < 48 << 20,
      true,
      `the app could write ${stalledAt >> 20} MiB to a client that reads nothing`,
    );
    // Once the client reads, everything arrives.
    let received = 0;
    c.on("data", (d: Uint8Array) => received += d.length);
    const ended = new Promise((r) => c.once("end", r));
    c.resume();
    await ended;
    assertEquals(received, total);
    console.log(`stalled after ${(stalledAt / 1048576).toFixed(1)} MiB in flight`);
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("a client whose link dies without a FIN loses its tunnels to the PING deadline", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const app = await appServer(a(2, 10), 8080, (s) => s.pipe(s));
  const proxy = await freezableProxy({ ip: a(2, 2), port: 15008 }, { ip: a(2, 1), port: 15008 });
  try {
    const zb = await mesh.ztunnel("node-b", { keepalive: { intervalMs: 100, timeoutMs: 500 } });
    const client = await mesh.issue("spiffe://ambit.test/ns/apps/sa/client");
    const socket = tls.connect({
      host: a(2, 2),
      port: 15008,
      cert: client.certPem,
      key: client.keyPem,
      ca: client.caPem,
      ALPNProtocols: ["h2"],
      checkServerIdentity: () => undefined,
    });
    socket.on("error", () => {});
    await new Promise((r) => socket.once("secureConnect", r));
    const session = http2.connect(`https://${a(2, 2)}:15008`, { createConnection: () => socket });
    session.on("error", () => {});
    const streams = Array.from({ length: 3 }, () => {
      const st = session.request({ ":method": "CONNECT", ":authority": `${a(2, 10)}:8080` }, {
        endStream: false,
      });
      st.on("error", () => {});
      return st;
    });
    await Promise.all(streams.map((st) => new Promise((r) => st.once("response", r))));
    await assertEventually(() => app.open.size === 3 && zb.registry.size === 3);
    proxy.freeze();
    // The server stops hearing PING answers: after 500 ms it drops the
    // connection, its three tunnels and the app's three connections.
    await assertEventually(
      () => app.open.size === 0 && zb.registry.size === 0 && zb.hboneServer!.sessions === 0,
      {
        timeoutMs: 5000,
      },
    );
    session.destroy();
  } finally {
    proxy.close();
    app.close();
    await mesh.close();
  }
});

Deno.test("clients that stall in TCP, TLS or the HTTP/2 preface are dropped at the handshake deadline", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  try {
    const zb = await mesh.ztunnel("node-b", { handshakeTimeoutMs: 400 });
    const client = await mesh.issue("spiffe://ambit.test/ns/apps/sa/client");
    const hop = { host: a(2, 1), port: 15008 };
    const started = Date.now();
    // 1: TCP only, silent. 2: half a TLS record. 3: TLS done, no HTTP/2 preface.
    const silent = net.connect(hop);
    const partial = net.connect(hop, () => partial.write(new Uint8Array([0x16, 0x03, 0x01, 0x02])));
    const noPreface = tls.connect({
      ...hop,
      cert: client.certPem,
      key: client.keyPem,
      ca: client.caPem,
      ALPNProtocols: ["h2"],
      checkServerIdentity: () => undefined,
    });
    const closes = [silent, partial, noPreface].map((s) => {
      s.on("error", () => {});
      s.resume();
      return new Promise<number>((r) => s.once("close", () => r(Date.now() - started)));
    });
    await new Promise((r) => noPreface.once("secureConnect", r));
    const times = await Promise.all(closes);
    for (const [i, t] of times.entries()) {
      assertEquals(t < 5000, true, `client ${i + 1} was held for ${t} ms`);
    }
    await assertEventually(() => zb.hboneServer!.sessions === 0);
    assertEquals(zb.hboneServer!.stats.accepted, 0);
  } finally {
    await mesh.close();
  }
});
