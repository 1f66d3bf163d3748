/**
 * The HBONE server's answers to good and bad requests, with a raw HTTP/2
 * client (node:http2) holding certificates from the mesh CA or elsewhere.
 */
import net from "node:net";
import http2 from "node:http2";
import tls from "node:tls";
import { assertEquals, assertEventually, assertIncludes } from "../_util/asserts.ts";
import { initCaDir } from "../../mod/identity/ca_dir.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueLeaf,
  toPem,
} from "../../mod/identity/certs.ts";
import { addressBlock, testMesh } from "./_mesh.ts";
import { echoServer } from "./_apps.ts";

function config(a: (n: number, h: number) => string, extra = "") {
  return `
apiVersion: ambit.io/v1alpha1
kind: Mesh
metadata: { name: mesh }
spec: { trustDomain: ambit.test, defaults: { connectTimeout: 1s } }
---
apiVersion: ambit.io/v1alpha1
kind: Node
metadata: { name: node-b }
spec: { address: ${a(2, 1)} }
---
apiVersion: v1
kind: Namespace
metadata: { name: apps, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: echo, namespace: apps }
spec:
  node: node-b
  address: ${a(2, 10)}
  serviceAccount: echo
  labels: { app: echo }
  ports: { tcp: 8080, spare: 8081, stuck: 8082 }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: blocked, namespace: apps }
spec:
  node: node-b
  address: ${a(2, 11)}
  serviceAccount: blocked
  labels: { app: blocked }
  ports: { tcp: 8080 }
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: blocked-from-nobody, namespace: apps }
spec:
  selector: { matchLabels: { app: blocked } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: ["ambit.test/ns/apps/sa/friend"] } }] }]
${extra}`;
}

interface Answer {
  status?: number;
  body: string;
  reset?: string;
  tlsError?: string;
}

/** Opens one raw HBONE stream and collects the answer. */
async function request(
  hop: string,
  creds: { certPem?: string; keyPem?: string; caPem: string },
  headers: Record<string, string>,
  send?: string,
): Promise<Answer> {
  const [ip, port] = hop.split(":");
  const socket = tls.connect({
    host: ip,
    port: Number(port),
    cert: creds.certPem,
    key: creds.keyPem,
    ca: creds.caPem,
    ALPNProtocols: ["h2"],
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("secureConnect", () => resolve());
      socket.once("error", reject);
    });
  } catch (e) {
    return { body: "", tlsError: (e as Error).message };
  }
  const session = http2.connect(`https://${hop}`, { createConnection: () => socket });
  session.on("error", () => {});
  try {
    return await new Promise<Answer>((resolve) => {
      const out: Answer = { body: "" };
      session.once("close", () => resolve({ ...out, reset: out.reset ?? "session closed" }));
      const st = session.request(headers, { endStream: false });
      st.setEncoding("utf8");
      st.on("response", (h) => out.status = Number(h[":status"]));
      st.on("data", (d: string) => out.body += d);
      st.on("error", (e) => out.reset = e.message);
      st.on("close", () => resolve(out));
      if (send !== undefined) st.end(send);
    });
  } finally {
    session.destroy();
  }
}

Deno.test("HBONE server: each request gets the documented answer; bad TLS peers are reset", async () => {
  const a = addressBlock();
  const mesh = await testMesh(config(a));
  const app = await echoServer(a(2, 10), 8080);
  try {
    const z = await mesh.ztunnel("node-b");
    const hop = `${a(2, 1)}:15008`;
    const friend = await mesh.issue("spiffe://ambit.test/ns/apps/sa/friend");
    const connect = (authority: string) => ({ ":method": "CONNECT", ":authority": authority });

    const ok = await request(hop, friend, connect(`${a(2, 10)}:8080`), "hi");
    assertEquals([ok.status, ok.body], [200, "echo:hi"]);

    const cases: [string, Record<string, string>, number, string][] = [
      [
        "GET",
        { ":method": "GET", ":path": "/", ":scheme": "https", ":authority": `${a(2, 10)}:8080` },
        400,
        "not an HTTP/2 CONNECT",
      ],
      ["host name", connect("echo.apps:8080"), 400, "not an IP address and port"],
      ["no port", connect(a(2, 10)), 400, "not an IP address and port"],
      ["port 0", connect(`${a(2, 10)}:0`), 400, "not an IP address and port"],
      ["oversized", connect(`${"1".repeat(100)}:80`), 400, "more than 64"],
      ["not local", connect(`${a(9, 9)}:8080`), 400, "not a workload address on node node-b"],
      ["own port", connect(`${a(2, 1)}:15000`), 400, "ambit's own ports"],
      ["refused", connect(`${a(2, 10)}:8081`), 503, "refused"],
      ["undeclared port", connect(`${a(2, 10)}:22`), 503, "no workload at"],
    ];
    for (const [name, headers, status, text] of cases) {
      const r = await request(hop, friend, headers);
      assertEquals(r.status, status, `${name}: ${JSON.stringify(r)}`);
      assertIncludes(r.body, text, name);
    }
    const stranger = await mesh.issue("spiffe://ambit.test/ns/apps/sa/stranger");
    const denied = await request(hop, stranger, connect(`${a(2, 11)}:8080`));
    assertEquals(denied.status, 401);

    // TLS peers refused before any stream: no cert, expired, another CA, another trust domain.
    const other = await initCaDir(await Deno.makeTempDir(), { trustDomain: "other.test" });
    const keys = await generateKeyPair();
    const foreign = {
      certPem: toPem([
        await issueLeaf({
          id: "spiffe://ambit.test/ns/apps/sa/friend",
          publicKey: keys.publicKey,
          signer: other.signer,
          now: new Date(),
          ttlMs: 3_600_000,
        }),
      ]),
      keyPem: await exportPrivateKeyPem(keys.privateKey),
      caPem: friend.caPem,
    };
    const expired = await mesh.issue("spiffe://ambit.test/ns/apps/sa/friend", {
      now: new Date(Date.now() - 7_200_000),
      ttlMs: 3_600_000,
    });
    const wrongDomain = await mesh.issue("spiffe://elsewhere.test/ns/apps/sa/friend");
    const tlsCases: [string, { certPem?: string; keyPem?: string; caPem: string }, string][] = [
      ["no client certificate", { caPem: friend.caPem }, "no client certificate"],
      ["expired", expired, "certificate has expired"],
      ["another CA", foreign, "not signed by a trusted root"],
      ["another trust domain", wrongDomain, 'trust domain "elsewhere.test"'],
    ];
    for (const [name, creds, logText] of tlsCases) {
      const from = mesh.logs.length;
      const r = await request(hop, creds, connect(`${a(2, 10)}:8080`), "x");
      assertEquals(r.status, undefined, `${name}: ${JSON.stringify(r)}`);
      await assertEventually(
        () =>
          mesh.logs.slice(from).some((l) =>
            l.msg === "HBONE client refused" && String(l.error).includes(logText)
          ),
        { message: name },
      );
    }
    assertEquals(app.connections, 1, "only the good request reached the app");
    await assertEventually(() => z.hboneServer!.openStreams === 0 && z.registry.size === 0);
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("10,000 streams opened and abandoned leave no stream, socket or connection behind", async () => {
  const a = addressBlock();
  const mesh = await testMesh(config(a));
  const app = await echoServer(a(2, 10), 8080);
  const appSockets = new Set<unknown>();
  app.on("connection", (s) => {
    appSockets.add(s);
    s.on("close", () => appSockets.delete(s));
  });
  try {
    const z = await mesh.ztunnel("node-b");
    const friend = await mesh.issue("spiffe://ambit.test/ns/apps/sa/friend");
    const hop = `${a(2, 1)}:15008`;
    const open = async () => {
      const socket = tls.connect({
        host: a(2, 1),
        port: 15008,
        cert: friend.certPem,
        key: friend.keyPem,
        ca: friend.caPem,
        ALPNProtocols: ["h2"],
        checkServerIdentity: () => undefined,
      });
      await new Promise((r) => socket.once("secureConnect", r));
      const session = http2.connect(`https://${hop}`, { createConnection: () => socket });
      session.on("error", () => {});
      return session;
    };
    let session = await open();
    let sessions = 1;
    let abandoned = 0;
    for (let batch = 0; batch < 100; batch++) {
      if (session.destroyed || session.closed) {
        // The server may drop a connection that resets streams abusively
        // (HTTP/2 rapid-reset protection); a fresh one carries on.
        session = await open();
        sessions++;
      }
      const s = session;
      await Promise.all(Array.from({ length: 100 }, (_, i) =>
        new Promise<void>((resolve) => {
          let st: http2.ClientHttp2Stream;
          try {
            st = s.request({ ":method": "CONNECT", ":authority": `${a(2, 10)}:8080` }, {
              endStream: false,
            });
          } catch {
            return resolve();
          }
          abandoned++;
          st.on("error", () => {});
          st.on("close", () => resolve());
          // Half abandon at once, half after the tunnel is up.
          if (i % 2 === 0) st.close(http2.constants.NGHTTP2_CANCEL);
          else st.on("response", () => st.close(http2.constants.NGHTTP2_CANCEL));
        })));
    }
    session.destroy();
    console.log(`abandoned ${abandoned} streams over ${sessions} connection(s)`);
    assertEquals(abandoned >= 10_000, true, `only ${abandoned} streams were opened`);
    await assertEventually(
      () =>
        z.hboneServer!.openStreams === 0 && z.registry.size === 0 && appSockets.size === 0 &&
        z.hboneServer!.sessions === 0,
      { timeoutMs: 20_000 },
    );
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("an upstream that never accepts the connection gets 503 after the connect timeout", async () => {
  const a = addressBlock();
  const mesh = await testMesh(config(a));
  // A listener with a full accept queue: Linux drops further SYNs, so a
  // connect neither succeeds nor fails until the caller gives up.
  const stuck = new Deno.Command("/usr/bin/python3", {
    args: [
      "-c",
      "import socket,sys,time\ns=socket.socket()\ns.bind((sys.argv[1],8082))\ns.listen(0)\n" +
      "print('ready',flush=True)\ntime.sleep(60)",
      a(2, 10),
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const fillers: net.Socket[] = [];
  try {
    const reader = stuck.stdout.getReader();
    await reader.read();
    reader.releaseLock();
    // Fill the accept queue (backlog 0 holds one, plus one in the SYN queue).
    for (let i = 0; i < 3; i++) {
      const s = net.connect({ host: a(2, 10), port: 8082 });
      s.on("error", () => {});
      fillers.push(s);
    }
    await new Promise((r) => setTimeout(r, 200));
    await mesh.ztunnel("node-b");
    const friend = await mesh.issue("spiffe://ambit.test/ns/apps/sa/friend");
    const started = Date.now();
    const r = await request(`${a(2, 1)}:15008`, friend, {
      ":method": "CONNECT",
      ":authority": `${a(2, 10)}:8082`,
    });
    assertEquals(r.status, 503, JSON.stringify(r));
    assertIncludes(r.body, "upstream connect timed out");
    const took = Date.now() - started;
    assertEquals(took >= 900 && took < 5000, true, `answered after ${took} ms (timeout 1 s)`);
  } finally {
    for (const s of fillers) s.destroy();
    stuck.kill();
    await stuck.status;
    await stuck.stdout.cancel().catch(() => {});
    await mesh.close();
  }
});
