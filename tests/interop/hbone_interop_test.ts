/**
 * HBONE interop: ambit against implementations that share no code with it.
 * ambit's server is driven by Go's net/http HTTP/2 client and by Python's
 * ssl + h2; ambit's client (HbonePool, and a whole ztunnel outbound path)
 * tunnels through a Go net/http HTTP/2 server. See _peers.ts.
 */
import { createHash } from "node:crypto";
import net from "node:net";
import { assertEquals, assertEventually, assertIncludes, assertOk } from "../_util/asserts.ts";
import { addressBlock, testMesh } from "../ztunnel/_mesh.ts";
import { echoServer, talk } from "../ztunnel/_apps.ts";
import { initCaDir } from "../../mod/identity/ca_dir.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueLeaf,
  toPem,
} from "../../mod/identity/certs.ts";
import { HbonePool } from "../../mod/hbone/pool.ts";
import { TunnelError } from "../../mod/hbone/errors.ts";
import { Logger } from "../../mod/log/logger.ts";
import type { Duplex } from "node:stream";
import {
  type CaseResult,
  goPeer,
  type GoServer,
  haveGo,
  havePythonH2,
  runGoClient,
  runPythonClient,
  startGoServer,
  writeCreds,
} from "./_peers.ts";

const TD = "ambit.test";
const id = (sa: string) => `spiffe://${TD}/ns/apps/sa/${sa}`;
const MiB = 1 << 20;

/**
 * node-b (127.N.2.1) hosts `echo` and `blocked`, both with service account
 * `echo`, so its only identity is sa/echo; `blocked` lets only sa/friend in.
 * Every workload declares ports 8080 (the echo app) and 8081 (nothing listens).
 * node-c (127.N.4.1) hosts two identities, sa/alpha and sa/beta. node-a
 * (127.N.1.1) hosts `client`; Service `echo` (VIP 127.N.3.1:80) selects `echo`.
 */
function config(a: (n: number, h: number) => string): string {
  const node = (name: string, addr: string) =>
    `---
apiVersion: ambit.io/v1alpha1
kind: Node
metadata: { name: ${name} }
spec: { address: ${addr} }
`;
  // Ports are declared: on the host's own (loopback) addresses only declared ports are served.
  const wl = (name: string, nodeName: string, addr: string, sa: string) =>
    `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: apps }
spec:
  node: ${nodeName}
  address: ${addr}
  serviceAccount: ${sa}
  labels: { app: ${name} }
  ports: { tcp: 8080, spare: 8081 }
`;
  return `
apiVersion: ambit.io/v1alpha1
kind: Mesh
metadata: { name: mesh }
spec: { trustDomain: ${TD}, defaults: { connectTimeout: 2s } }
${node("node-a", a(1, 1))}${node("node-b", a(2, 1))}${node("node-c", a(4, 1))}---
apiVersion: v1
kind: Namespace
metadata: { name: apps, labels: { istio.io/dataplane-mode: ambient } }
${wl("client", "node-a", a(1, 10), "client")}${wl("echo", "node-b", a(2, 10), "echo")}${
    wl("blocked", "node-b", a(2, 11), "echo")
  }${wl("alpha", "node-c", a(4, 10), "alpha")}${wl("beta", "node-c", a(4, 11), "beta")}---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: apps }
spec:
  clusterIP: ${a(3, 1)}
  selector: { app: echo }
  ports: [{ name: tcp, port: 80, targetPort: 8080 }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: blocked-from-nobody, namespace: apps }
spec:
  selector: { matchLabels: { app: blocked } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["${TD}/ns/apps/sa/friend"] } }] }]
`;
}

/** ambit's SNI for an expected identity, computed here from its documented form (sni.ts). */
function identitySni(spiffeId: string): string {
  return `${createHash("sha256").update(spiffeId).digest("hex").slice(0, 32)}.hbone.ambit.invalid`;
}

function show(r: Record<string, CaseResult>): string {
  return JSON.stringify(r, null, 1);
}

function assertTls(r: CaseResult, name: string) {
  assertEquals([r.tlsVersion, r.alpn], ["TLSv1.3", "h2"], `${name}: TLS 1.3 with ALPN h2`);
  assertOk(/AES_(128|256)_GCM/.test(r.cipher ?? ""), `${name}: AES-GCM suite, got ${r.cipher}`);
}

Deno.test({
  name: "Go net/http HTTP/2 client: ambit's HBONE server tunnels, half-closes, refuses and " +
    "presents the destination's SPIFFE ID",
  ignore: !haveGo,
  async fn() {
    await goPeer(); // build before the clock of anything else starts
    const a = addressBlock();
    const mesh = await testMesh(config(a));
    const app = await echoServer(a(2, 10), 8080);
    const appSockets = new Set<unknown>();
    app.on("connection", (sock) => {
      appSockets.add(sock);
      sock.on("close", () => appSockets.delete(sock));
    });
    const dir = await Deno.makeTempDir({ prefix: "ambit-interop-" });
    try {
      const zb = await mesh.ztunnel("node-b");
      const stranger = await writeCreds(dir, "stranger", await mesh.issue(id("stranger")));
      const echo = `${a(2, 10)}:8080`;
      const r = await runGoClient({
        ...stranger,
        addr: `${a(2, 1)}:15008`,
        // As an HBONE client must, Go refuses any other server identity.
        expect: id("echo"),
        cases: [
          { name: "echo", op: "echo", authority: echo, send: "hello from go", prefix: "echo:" },
          {
            name: "early",
            op: "early",
            authority: echo,
            send: "sent before the 200",
            prefix: "echo:",
          },
          {
            name: "earlyclose",
            op: "earlyclose",
            authority: echo,
            send: "sent and ended before the 200",
            prefix: "echo:",
          },
          { name: "reset", op: "reset", authority: echo, send: "then RST_STREAM", prefix: "echo:" },
          { name: "bulk", op: "bulk", authority: echo, bytes: 8 * MiB, prefix: "echo:" },
          { name: "halfclose", op: "halfclose", authority: echo, bytes: 2 * MiB, prefix: "echo:" },
          {
            name: "parallel",
            op: "parallel",
            authority: echo,
            send: "p",
            prefix: "echo:",
            streams: 32,
          },
          { name: "bad-authority", op: "status", authority: "echo.apps:8080" },
          { name: "denied", op: "status", authority: `${a(2, 11)}:8080` },
          { name: "no-listener", op: "status", authority: `${a(2, 10)}:8081` },
          { name: "not-local", op: "status", authority: `${a(9, 9)}:8080` },
        ],
      });
      const msg = show(r) + "\n" +
        mesh.logs.filter((l) => l.level !== "debug").map((l) => JSON.stringify(l)).join("\n");
      // The server's certificate: the destination workload's SPIFFE ID, alone.
      assertEquals(r.echo.peer, [id("echo")], msg);
      assertTls(r.echo, "echo");
      assertEquals(r.echo.proto, "HTTP/2.0", msg);
      // Echoed while both directions were open; nothing more after our END_STREAM.
      assertEquals(
        [r.echo.status, r.echo.body, r.echo.tail ?? ""],
        [200, "echo:hello from go", ""],
        msg,
      );
      // Data sent right behind the CONNECT headers, before the 200, is not lost.
      assertEquals([r.early.status, r.early.body], [200, "echo:sent before the 200"], msg);
      // ... also when the client also ended its side (DATA, END_STREAM) before the 200.
      assertEquals(
        [r.earlyclose.status, r.earlyclose.body, r.earlyclose.error],
        [200, "echo:sent and ended before the 200", undefined],
        msg,
      );
      // A tunnel the client resets after its echo (its app connection is checked below).
      assertEquals([r.reset.error, r.reset.body], [undefined, "echo:then RST_STREAM"], msg);
      // 8 MiB full duplex, byte for byte.
      assertEquals(r.bulk.error, undefined, msg);
      assertEquals([r.bulk.sent, r.bulk.recv], [8 * MiB, 8 * MiB], msg);
      assertEquals(r.bulk.recvSha, r.bulk.sentSha, msg);
      // All written and END_STREAM sent before reading a byte: everything still comes back.
      assertEquals(r.halfclose.error, undefined, msg);
      assertEquals([r.halfclose.recv, r.halfclose.recvSha], [2 * MiB, r.halfclose.sentSha], msg);
      assertEquals([r.parallel.ok, r.parallel.error], [32, undefined], msg);
      // Refusals, with the documented status and text.
      assertEquals(r["bad-authority"].status, 400, msg);
      assertIncludes(r["bad-authority"].body!, "not an IP address and port");
      assertEquals(r.denied.status, 401, msg);
      assertIncludes(r.denied.body!, "denied by authorization policy");
      assertEquals(r["no-listener"].status, 503, msg);
      assertIncludes(r["no-listener"].body!, "upstream refused");
      assertEquals(r["not-local"].status, 400, msg);
      // Go pooled every stream on one connection, and ambit saw who it was.
      assertEquals(r.summary.handshakes, 1, msg);
      assertEquals(zb.hboneServer!.stats.sessions, 1);
      const closed = (await assertEventually(() =>
        mesh.logs.find((l) =>
          l.msg === "inbound connection closed"
        )
      ))!;
      assertEquals(closed.src_identity, id("stranger"));
      assertEquals(closed.dst_identity, id("echo"));
      // Every app connection closed, the reset one too.
      await assertEventually(() =>
        zb.hboneServer!.openStreams === 0 && zb.registry.size === 0 && appSockets.size === 0
      );
      assertEquals(app.connections, 6 + 32, "one app connection per accepted tunnel");

      // TLS 1.2 is refused during the handshake, before any HTTP.
      const before = zb.hboneServer!.stats.handshakeFailures;
      const old = await runGoClient({
        ...stranger,
        addr: `${a(2, 1)}:15008`,
        maxTls: "1.2",
        cases: [{ name: "tls12", op: "status", authority: echo }],
      });
      assertEquals(old.tls12.status, undefined, show(old));
      assertIncludes(old.tls12.error ?? "", "protocol version");
      await assertEventually(() => zb.hboneServer!.stats.handshakeFailures > before);
    } finally {
      app.close();
      await mesh.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Go client on a node with several identities: ambit's identity SNI picks the " +
    "destination's certificate; without SNI, dialing the workload's address does",
  ignore: !haveGo,
  async fn() {
    const a = addressBlock();
    const mesh = await testMesh(config(a));
    const dir = await Deno.makeTempDir({ prefix: "ambit-interop-" });
    try {
      await mesh.ztunnel("node-c");
      const creds = await writeCreds(dir, "stranger", await mesh.issue(id("stranger")));
      const probe = (sni?: string) =>
        runGoClient({
          ...creds,
          addr: `${a(4, 1)}:15008`,
          sni,
          cases: [{ name: "beta", op: "status", authority: `${a(4, 11)}:8080` }],
        });
      const withSni = await probe(identitySni(id("beta")));
      assertEquals(withSni.beta.peer, [id("beta")], show(withSni));
      assertEquals(withSni.beta.status, 503, "no app listens; the tunnel itself was accepted");
      assertIncludes(withSni.beta.body ?? "", "upstream refused");
      // An SNI-less client (Go by default, Istio's ztunnel) that dials the
      // node's address gets the node's default certificate, one of its
      // identities...
      const without = await probe();
      assertEquals(without.beta.peer?.length, 1, show(without));
      assertOk([id("alpha"), id("beta")].includes(without.beta.peer![0]), show(without));
      // ...and one that dials the workload's own address, as Istio's ztunnel
      // dials a pod's IP:15008, gets that workload's certificate.
      const direct = await runGoClient({
        ...creds,
        addr: `${a(4, 11)}:15008`,
        cases: [
          { name: "beta", op: "status", authority: `${a(4, 11)}:8080` },
          { name: "alpha", op: "status", authority: `${a(4, 10)}:8080` },
        ],
      });
      assertEquals(direct.beta.peer, [id("beta")], show(direct));
      assertEquals(direct.beta.status, 503, "no app listens; the tunnel itself was accepted");
      // A connection to beta's address carries tunnels to beta only.
      assertEquals(direct.alpha.status, 400, show(direct));
      assertIncludes(direct.alpha.body ?? "", `names ${a(4, 10)}`);
    } finally {
      await mesh.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a CONNECT with END_STREAM on its HEADERS (Go, no request body) reaches the app as " +
    "end of input, and the app's answer comes back",
  // node:http2 has emitted "end" for such a stream before relay() starts;
  // relay() passes that end on at once (a regression test for a hang).
  ignore: !haveGo,
  async fn() {
    const a = addressBlock();
    const mesh = await testMesh(config(a));
    // Speaks once its input ended (as a "read all, then answer" protocol does).
    const app = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on("error", () => {});
      s.resume();
      s.on("end", () => s.end("bye after EOF"));
    });
    await new Promise<void>((r) => app.listen(8080, a(2, 10), r));
    const dir = await Deno.makeTempDir({ prefix: "ambit-interop-" });
    try {
      await mesh.ztunnel("node-b");
      const creds = await writeCreds(dir, "stranger", await mesh.issue(id("stranger")));
      const r = await runGoClient({
        ...creds,
        addr: `${a(2, 1)}:15008`,
        cases: [{ name: "nobody", op: "nobody", authority: `${a(2, 10)}:8080`, timeoutMs: 3000 }],
      });
      assertEquals(
        [r.nobody.status, r.nobody.body, r.nobody.error],
        [200, "bye after EOF", undefined],
        show(r),
      );
    } finally {
      app.close();
      await mesh.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Python ssl + h2 client: ambit's HBONE server tunnels 1 MiB and refuses by policy",
  ignore: !havePythonH2,
  async fn() {
    const a = addressBlock();
    const mesh = await testMesh(config(a));
    const app = await echoServer(a(2, 10), 8080);
    const dir = await Deno.makeTempDir({ prefix: "ambit-interop-" });
    try {
      const zb = await mesh.ztunnel("node-b");
      const creds = await writeCreds(dir, "stranger", await mesh.issue(id("stranger")));
      const echo = `${a(2, 10)}:8080`;
      const r = await runPythonClient({
        ...creds,
        addr: `${a(2, 1)}:15008`,
        cases: [
          { name: "echo", authority: echo, send: "hello from python", prefix: "echo:" },
          { name: "bulk", authority: echo, bytes: MiB, prefix: "echo:" },
          { name: "denied", authority: `${a(2, 11)}:8080` },
          { name: "bad-authority", authority: "echo.apps:8080" },
        ],
      });
      const msg = show(r);
      assertEquals(r.echo.peer, [id("echo")], msg);
      assertTls(r.echo, "echo");
      // The HTTP/2 settings and connection window, as h2 parsed them.
      assertEquals(r.echo.settings, {
        maxConcurrentStreams: 200,
        initialWindowSize: 4 * MiB,
        maxFrameSize: MiB,
        connectionWindow: 16 * MiB,
      }, msg);
      assertEquals([r.echo.status, r.echo.body], [200, "echo:hello from python"], msg);
      assertEquals([r.bulk.status, r.bulk.prefixOk, r.bulk.recv], [200, true, MiB], msg);
      assertEquals(r.bulk.recvSha, r.bulk.sentSha, msg);
      assertEquals(r.denied.status, 401, msg);
      assertIncludes(r.denied.body!, "denied by authorization policy");
      assertEquals(r["bad-authority"].status, 400, msg);
      assertEquals(zb.hboneServer!.stats.sessions, 1, "one connection for all streams");
      await assertEventually(() => zb.hboneServer!.openStreams === 0 && zb.registry.size === 0);
    } finally {
      app.close();
      await mesh.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Writes `payload`, ends the stream and collects everything until the peer ends it. */
function exchange(stream: Duplex, payload: Uint8Array): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    stream.on("data", (d: Uint8Array) => chunks.push(d));
    stream.once("error", reject);
    stream.once("end", () => {
      const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let o = 0;
      for (const c of chunks) {
        out.set(c, o);
        o += c.length;
      }
      resolve(out);
    });
    stream.end(payload);
  });
}

/** Collects a stream's text as it arrives. */
function textReader(stream: Duplex): { text(): string; ended: Promise<void> } {
  let text = "";
  stream.setEncoding("utf8");
  stream.on("data", (d: string) => text += d);
  const ended = new Promise<void>((resolve, reject) => {
    stream.once("end", resolve);
    stream.once("error", reject);
  });
  return { text: () => text, ended };
}

function sha256(b: Uint8Array): string {
  return createHash("sha256").update(b).digest("hex");
}

function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(b.subarray(o, o + 65536));
  return b;
}

Deno.test({
  name: "ambit's HbonePool through a Go net/http HBONE server: tunnels, pools, checks the " +
    "server's identity, and is seen as its own",
  ignore: !haveGo,
  async fn() {
    const a = addressBlock();
    const mesh = await testMesh(config(a));
    const app = await echoServer(a(2, 10), 8080);
    const dir = await Deno.makeTempDir({ prefix: "ambit-interop-" });
    const appSockets = new Set<unknown>();
    app.on("connection", (sock) => {
      appSockets.add(sock);
      sock.on("close", () => appSockets.delete(sock));
    });
    const servers: { close(): Promise<void> }[] = [];
    const logs: Record<string, unknown>[] = [];
    const clientCreds = await mesh.issue(id("client"));
    const pool = new HbonePool({
      logger: new Logger({ level: "debug", format: "json", sink: (l) => logs.push(JSON.parse(l)) }),
      certificate: (who) =>
        who === id("client")
          ? Promise.resolve(clientCreds)
          : Promise.reject(new Error(`no certificate for ${who}`)),
      rootsPem: () => clientCreds.caPem,
    });
    try {
      const good = await startGoServer(
        `${a(2, 1)}:0`,
        await writeCreds(dir, "echo", await mesh.issue(id("echo"))),
        { trustDomain: TD },
      );
      servers.push(good);
      const open = (authority: string, expected = [id("echo")], hop = good) =>
        pool.open({
          source: id("client"),
          expected,
          nextHop: { ip: hop.ip, port: hop.port },
          authority,
          headers: { forwarded: `for="${a(1, 10)}:5555";host=echo.apps.svc.cluster.local` },
        });
      const t = await open(`${a(2, 10)}:8080`);
      assertEquals(t.peerIdentity, id("echo"));
      const reply = await exchange(t.stream, new TextEncoder().encode("hello from ambit"));
      assertEquals(new TextDecoder().decode(reply), "echo:hello from ambit");

      // 4 MiB each way on three tunnels at once, one pooled connection.
      const payloads = [randomBytes(4 * MiB), randomBytes(4 * MiB), randomBytes(4 * MiB)];
      const tunnels = await Promise.all(payloads.map(() => open(`${a(2, 10)}:8080`)));
      assertEquals(tunnels.map((x) => x.newConnection), [false, false, false]);
      const replies = await Promise.all(tunnels.map((x, i) => exchange(x.stream, payloads[i])));
      for (const [i, r] of replies.entries()) {
        assertEquals(new TextDecoder().decode(r.subarray(0, 5)), "echo:");
        assertEquals(sha256(r.subarray(5)), sha256(payloads[i]), `tunnel ${i}`);
      }
      assertEquals(pool.stats.handshakes, 1);

      // ambit resets a live tunnel (RST_STREAM): the Go server's handler ends.
      const doomed = await open(`${a(2, 10)}:8080`);
      const rd = textReader(doomed.stream);
      doomed.stream.write("doomed");
      await assertEventually(() => rd.text() === "echo:doomed");
      doomed.stream.destroy();

      // The Go server's 503 (nothing listens) reaches the pool as peer_status.
      const refused = await open(`${a(2, 10)}:8081`).then(() => undefined, (e) => e);
      assertOk(refused instanceof TunnelError, String(refused));
      assertEquals([refused.failure, refused.status], ["peer_status", 503]);

      // What the Go server saw: ambit's client SPIFFE ID, HTTP/2 CONNECT, our headers.
      await assertEventually(() => good.events.filter((e) => e.event === "closed").length === 5);
      const connects = good.events.filter((e) => e.event === "connect");
      assertEquals(connects.length, 6, good.stderr());
      for (const e of connects) {
        assertEquals([e.method, e.proto, e.peer], ["CONNECT", "HTTP/2.0", [id("client")]]);
      }
      assertEquals(connects.map((e) => e.status), [200, 200, 200, 200, 200, 503]);
      assertIncludes(connects[0].headers!.forwarded, "host=echo.apps.svc.cluster.local");
      assertEquals(good.events.filter((e) => e.event === "conn").length, 1, "one connection");
      const closed = good.events.filter((e) => e.event === "closed");
      assertEquals(
        closed.map((e) => e.up).sort((x, y) => x! - y!),
        [6, 16, 4 * MiB, 4 * MiB, 4 * MiB],
      );
      await assertEventually(() => appSockets.size === 0, { message: "app connections closed" });

      // A Go server with another identity (same CA) is refused by the pool.
      const impostor = await startGoServer(
        `${a(2, 2)}:0`,
        await writeCreds(dir, "impostor", await mesh.issue(id("impostor"))),
      );
      servers.push(impostor);
      const mismatch = await open(`${a(2, 10)}:8080`, [id("echo")], impostor).then(
        () => undefined,
        (e) => e,
      );
      assertOk(mismatch instanceof TunnelError, String(mismatch));
      assertEquals(mismatch.failure, "identity_mismatch");
      assertIncludes(mismatch.message, id("impostor"));

      // A Go server whose certificate chains to another CA: a TLS failure.
      const other = await initCaDir(`${dir}/other-ca`, { trustDomain: TD });
      const keys = await generateKeyPair();
      const foreignLeaf = await issueLeaf({
        id: id("echo"),
        publicKey: keys.publicKey,
        signer: other.signer,
        now: new Date(),
        ttlMs: 3_600_000,
      });
      const foreign = await startGoServer(
        `${a(2, 3)}:0`,
        await writeCreds(dir, "foreign", {
          certPem: toPem([foreignLeaf, ...other.chain]),
          keyPem: await exportPrivateKeyPem(keys.privateKey),
          caPem: clientCreds.caPem,
        }),
      );
      servers.push(foreign);
      const untrusted = await open(`${a(2, 10)}:8080`, [id("echo")], foreign).then(
        () => undefined,
        (e) => e,
      );
      assertOk(untrusted instanceof TunnelError, String(untrusted));
      assertEquals(untrusted.failure, "tls_failure");
      // Neither impostor nor foreign server was sent a request.
      assertEquals(impostor.events.filter((e) => e.event === "connect").length, 0);
      assertEquals(foreign.events.filter((e) => e.event === "connect").length, 0);
    } finally {
      pool.close();
      for (const s of servers) await s.close();
      app.close();
      await mesh.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "Go's HTTP/2 client and server answer ambit's keepalive PINGs: idle tunnels survive",
  ignore: !haveGo,
  async fn() {
    const a = addressBlock();
    const mesh = await testMesh(config(a));
    const app = await echoServer(a(2, 10), 8080);
    const dir = await Deno.makeTempDir({ prefix: "ambit-interop-" });
    // PING every 100 ms, drop after 1.5 s unanswered; each tunnel then idles 2.5 s.
    const keepalive = { intervalMs: 100, timeoutMs: 1500 };
    const idleMs = 2500;
    const logs: Record<string, unknown>[] = [];
    const clientCreds = await mesh.issue(id("client"));
    const pool = new HbonePool({
      logger: new Logger({ level: "debug", format: "json", sink: (l) => logs.push(JSON.parse(l)) }),
      certificate: () => Promise.resolve(clientCreds),
      rootsPem: () => clientCreds.caPem,
      keepalive,
    });
    let server: GoServer | undefined;
    try {
      const zb = await mesh.ztunnel("node-b", { keepalive });
      const stranger = await writeCreds(dir, "stranger", await mesh.issue(id("stranger")));
      server = await startGoServer(
        `${a(2, 2)}:0`,
        await writeCreds(dir, "echo", await mesh.issue(id("echo"))),
      );
      const go = server;
      // ambit client -> Go server: a tunnel idle across many PINGs, then used again.
      const viaPool = async () => {
        const t = await pool.open({
          source: id("client"),
          expected: [id("echo")],
          nextHop: { ip: go.ip, port: go.port },
          authority: `${a(2, 10)}:8080`,
        });
        const rd = textReader(t.stream);
        t.stream.write("before ");
        await assertEventually(() => rd.text() === "echo:before ");
        // Idle on purpose: the point is the time without traffic.
        await new Promise((r) => setTimeout(r, idleMs));
        t.stream.end("after");
        await rd.ended;
        return rd.text();
      };
      // Control: a client that reads nothing (Python, sleeping) does not answer, and is dropped.
      const deaf = havePythonH2
        ? runPythonClient({
          ...await writeCreds(dir, "deaf", await mesh.issue(id("deaf"))),
          addr: `${a(2, 1)}:15008`,
          cases: [{ name: "deaf", authority: `${a(2, 10)}:8080`, send: "x", holdMs: idleMs }],
        })
        : undefined;
      // Go client -> ambit server, at the same time.
      const [r, viaGo] = await Promise.all([
        runGoClient({
          ...stranger,
          addr: `${a(2, 1)}:15008`,
          cases: [{
            name: "idle",
            op: "echo",
            authority: `${a(2, 10)}:8080`,
            send: "still?",
            prefix: "echo:",
            holdMs: idleMs,
          }],
        }),
        viaPool(),
      ]);
      const dropped = [...mesh.logs, ...logs].filter((l) => /PINGs/.test(String(l.msg)));
      const why = JSON.stringify(dropped);
      assertEquals(
        dropped.map((l) => l.peer).filter((p) => p !== id("deaf")),
        [],
        `no Go connection was dropped for unanswered PINGs: ${why}`,
      );
      if (deaf) {
        const d = await deaf;
        assertOk(d.deaf.error !== undefined && d.deaf.status === undefined, show(d));
        assertEquals(
          dropped.map((l) => l.peer),
          [id("deaf")],
          `the deaf client was dropped: ${why}`,
        );
      }
      assertEquals([r.idle.error, r.idle.body], [undefined, "echo:still?still?"], show(r));
      // One connection each: the Go client's was never replaced (plus the deaf one).
      assertEquals([r.summary.handshakes, zb.hboneServer!.stats.sessions], [1, deaf ? 2 : 1]);
      assertEquals(viaGo, "echo:before after");
      assertEquals(pool.stats.handshakes, 1);
      assertEquals(go.events.filter((e) => e.event === "conn").length, 1);
    } finally {
      pool.close();
      await server?.close();
      app.close();
      await mesh.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "full path: a ztunnel's VIP outbound reaches an app behind a Go HBONE server standing " +
    "in for the destination node",
  ignore: !haveGo,
  async fn() {
    const a = addressBlock();
    const mesh = await testMesh(config(a));
    const app = await echoServer(a(2, 10), 8080);
    const dir = await Deno.makeTempDir({ prefix: "ambit-interop-" });
    let go: { close(): Promise<void> } | undefined;
    try {
      // node-b runs no ztunnel: the Go server holds its HBONE address.
      const server = await startGoServer(
        `${a(2, 1)}:15008`,
        await writeCreds(dir, "echo", await mesh.issue(id("echo"))),
        { trustDomain: TD },
      );
      go = server;
      const za = await mesh.ztunnel("node-a");
      const r = await talk(a(3, 1), 80, "through a go node", a(1, 10));
      assertEquals(r, { reply: "echo:through a go node", error: undefined }, server.stderr());
      const big = "0123456789abcdef".repeat(2 * MiB / 16);
      const r2 = await talk(a(3, 1), 80, big, a(1, 10));
      assertEquals(r2.reply.length, big.length + 5);
      assertOk(r2.reply === `echo:${big}`, "2 MiB came back intact");
      assertEquals(za.pool.stats.handshakes, 1);

      const connects = server.events.filter((e) => e.event === "connect");
      assertEquals(connects.length, 2);
      const [c] = connects;
      assertEquals([c.method, c.proto, c.status], ["CONNECT", "HTTP/2.0", 200]);
      assertEquals(c.authority, `${a(2, 10)}:8080`, "the endpoint, not the VIP");
      assertEquals(c.peer, [id("client")]);
      assertOk(
        new RegExp(`^for="${a(1, 10).replaceAll(".", "\\.")}:\\d+";host=echo\\.apps\\.`)
          .test(c.headers!.forwarded ?? ""),
        `forwarded: ${c.headers!.forwarded}`,
      );
      assertIncludes(c.headers!.baggage ?? "", "k8s.namespace.name=apps");
      assertOk(
        /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/.test(c.headers!.traceparent ?? ""),
        `traceparent: ${c.headers!.traceparent}`,
      );
      await assertEventually(() => za.registry.size === 0);
    } finally {
      await go?.close();
      app.close();
      await mesh.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
