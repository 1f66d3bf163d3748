/**
 * In-process data plane: two ztunnels on loopback addresses, a real echo
 * app, real TLS and HTTP/2 between them.
 */
import { assertEquals, assertEventually, assertIncludes } from "../_util/asserts.ts";
import { addressBlock, testMesh, twoNodeConfig as meshConfig } from "./_mesh.ts";
import { echoServer, talk } from "./_apps.ts";

Deno.test("a connection to a Service VIP reaches the app on another node through HBONE", async () => {
  const a = addressBlock();
  const mesh = await testMesh(meshConfig(a));
  const app = await echoServer(a(2, 10), 8080);
  try {
    const za = await mesh.ztunnel("node-a");
    const zb = await mesh.ztunnel("node-b");
    const r = await talk(a(3, 1), 80, "hello mesh", a(1, 10));
    if (r.error) {
      console.log(
        mesh.logs.filter((l) => l.level !== "debug" || /HBONE/.test(String(l.msg))).map((l) =>
          JSON.stringify(l)
        ).join("\n"),
      );
    }
    assertEquals(r, { reply: "echo:hello mesh", error: undefined });
    assertEquals(za.pool.stats.handshakes, 1);
    const r2 = await talk(a(3, 1), 80, "again", a(1, 10));
    assertEquals(r2.reply, "echo:again");
    assertEquals(za.pool.stats.handshakes, 1, "the pooled connection is reused");
    await assertEventually(() => zb.registry.size === 0 && za.registry.size === 0);
    const inbound = mesh.logs.filter((l) => l.msg === "inbound connection closed");
    assertEquals(inbound[0].src_identity, "spiffe://ambit.test/ns/apps/sa/client");
    assertEquals(inbound[0].dst_identity, "spiffe://ambit.test/ns/apps/sa/echo");
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("a policy change closes live connections it now denies, and refuses new ones", async () => {
  const a = addressBlock();
  const mesh = await testMesh(meshConfig(a));
  const app = await echoServer(a(2, 10), 8080);
  try {
    await mesh.ztunnel("node-a");
    const zb = await mesh.ztunnel("node-b");
    const net = await import("node:net");
    const live = net.connect({ host: a(3, 1), port: 80, localAddress: a(1, 10) });
    let got = "";
    live.setEncoding("utf8");
    live.on("data", (d: string) => got += d);
    live.on("error", () => {});
    const closed = new Promise((r) => live.on("close", r));
    live.write("first");
    await assertEventually(() => got === "echo:first");
    await mesh.reconfigure(meshConfig(
      a,
      `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: only-friends, namespace: apps }
spec:
  selector: { matchLabels: { app: echo } }
  rules: [{ from: [{ source: { principals: ["ambit.test/ns/apps/sa/friend"] } }] }]`,
    ));
    await closed;
    assertEquals(zb.registry.size, 0);
    const r = await talk(a(3, 1), 80, "again", a(1, 10));
    assertEquals(r.reply, "");
    assertEquals(
      mesh.logs.some((l) =>
        l.msg === "inbound connection denied" && l.policy === "apps/only-friends"
      ),
      true,
    );
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("the client refuses a server whose identity is not the expected one", async () => {
  const a = addressBlock();
  const mesh = await testMesh(meshConfig(a));
  try {
    const za = await mesh.ztunnel("node-a");
    await mesh.ztunnel("node-b");
    const err = await za.pool.open({
      source: "spiffe://ambit.test/ns/apps/client",
      expected: ["spiffe://ambit.test/ns/apps/sa/impostor"],
      nextHop: { ip: a(2, 1), port: 15008 },
      authority: `${a(2, 10)}:8080`,
    }).then(() => undefined, (e) => e);
    assertEquals(err?.failure, "no_certificate");
    const err2 = await za.pool.open({
      source: "spiffe://ambit.test/ns/apps/sa/client",
      expected: ["spiffe://ambit.test/ns/apps/sa/impostor"],
      nextHop: { ip: a(2, 1), port: 15008 },
      authority: `${a(2, 10)}:8080`,
    }).then(() => undefined, (e) => e);
    assertEquals(err2?.failure, "identity_mismatch");
    assertIncludes(String(err2?.message), "expected spiffe://ambit.test/ns/apps/sa/impostor");
  } finally {
    await mesh.close();
  }
});

Deno.test("plaintext inbound on 15006 is refused under STRICT and accepted under PERMISSIVE", async () => {
  const a = addressBlock();
  const strict = `---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }`;
  const mesh = await testMesh(meshConfig(a, strict));
  const app = await echoServer(a(2, 10), 8080);
  try {
    await mesh.ztunnel("node-b");
    const { encodeProxyV2 } = await import("../../mod/hbone/proxy_protocol.ts");
    const header = encodeProxyV2({
      source: { ip: "127.0.0.1", port: 40000 },
      destination: { ip: a(2, 10), port: 8080 },
    });
    const payload = new Uint8Array([...header, ...new TextEncoder().encode("plain")]);
    const refused = await talk(a(2, 1), 15006, payload);
    assertEquals(refused.reply, "");
    assertEquals(app.connections, 0);
    await mesh.reconfigure(meshConfig(a, strict.replace("STRICT", "PERMISSIVE")));
    const ok = await talk(a(2, 1), 15006, payload);
    assertEquals(ok.reply, "echo:plain");
    const garbage = await talk(a(2, 1), 15006, "GET / HTTP/1.1\r\n\r\n");
    assertEquals(garbage.reply, "");
    assertEquals(app.connections, 1);
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("a workload that opts into PROXY protocol learns the caller's SPIFFE ID", async () => {
  const a = addressBlock();
  const mesh = await testMesh(
    meshConfig(a).replace("serviceAccount: echo,", "serviceAccount: echo, proxyProtocol: true,"),
  );
  const { startSampleApp, ask } = await import("../../mod/lab/apps.ts");
  const app = await startSampleApp("echo", a(2, 10), 8080, { proxyProtocol: true });
  try {
    await mesh.ztunnel("node-a");
    await mesh.ztunnel("node-b");
    const r = await ask(a(3, 1), 80, "who am i", a(1, 10));
    assertEquals(r.reply, "echo: who am i (from spiffe://ambit.test/ns/apps/sa/client)");
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("ipBlocks and source.ip match the client workload's address, not its node's", async () => {
  const a = addressBlock();
  const policy = (cidr: string) =>
    `---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: by-address, namespace: apps }
spec:
  selector: { matchLabels: { app: echo } }
  rules: [{ from: [{ source: { ipBlocks: ["${cidr}"] } }] }]`;
  const mesh = await testMesh(meshConfig(a, policy(`${a(1, 10)}/32`)));
  const app = await echoServer(a(2, 10), 8080);
  try {
    await mesh.ztunnel("node-a");
    await mesh.ztunnel("node-b");
    assertEquals((await talk(a(3, 1), 80, "by workload", a(1, 10))).reply, "echo:by workload");
    await mesh.reconfigure(meshConfig(a, policy(`${a(1, 1)}/32`)));
    assertEquals((await talk(a(3, 1), 80, "by node", a(1, 10))).reply, "");
    assertEquals(app.connections, 1);
  } finally {
    app.close();
    await mesh.close();
  }
});
