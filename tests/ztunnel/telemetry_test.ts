/**
 * Telemetry, readiness and admin of a running ztunnel: Istio's TCP metrics
 * after real traffic (names, labels, counts, `promtool check metrics`), the
 * access log, readiness through start-up and shutdown, and the admin API.
 */
import net from "node:net";
import {
  assertEquals,
  assertEventually,
  assertIncludes,
  assertOk as assert,
} from "../_util/asserts.ts";
import { addressBlock, testMesh, twoNodeConfig } from "./_mesh.ts";
import { echoServer, talk } from "./_apps.ts";
import { LocalCa } from "../../mod/identity/ca_client.ts";
import { TcpMetrics } from "../../mod/telemetry/tcp_metrics.ts";
import type { AccessRecord } from "../../mod/telemetry/access_log.ts";
import { AdminAddressError, adminApp, serveAdmin } from "../../mod/admin/admin.ts";
import { Logger } from "../../mod/log/logger.ts";

const CLIENT = "spiffe://ambit.test/ns/apps/sa/client";
const ECHO = "spiffe://ambit.test/ns/apps/sa/echo";

/** Parses Prometheus text into samples. */
function samples(text: string): { name: string; labels: Record<string, string>; value: number }[] {
  const out = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/);
    assert(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2];
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function find(
  all: ReturnType<typeof samples>,
  name: string,
  match: Record<string, string>,
): number[] {
  return all.filter((s) =>
    s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)
  ).map((s) => s.value);
}

async function promtool(text: string): Promise<{ code: number; output: string }> {
  const p = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const r = await p.output();
  const dec = new TextDecoder();
  return { code: r.code, output: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

const DENY_CLIENT = `
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-client, namespace: apps }
spec:
  action: DENY
  rules: [{ from: [{ source: { principals: ["cluster.local/ns/apps/sa/client", "ambit.test/ns/apps/sa/client"] } }] }]
`;

Deno.test("metrics after traffic: Istio's TCP names, labels and counts on both sides; promtool accepts them", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const app = await echoServer(a(2, 10), 8080);
  const access: AccessRecord[] = [];
  try {
    const za = await mesh.ztunnel("node-a", {
      extra: {
        metrics: { hostname: a(1, 1), port: 0 },
        telemetry: { metrics: new TcpMetrics(), access: (r) => access.push(r) },
      },
    });
    const zb = await mesh.ztunnel("node-b", {
      extra: { metrics: { hostname: a(2, 1), port: 0 } },
    });
    const payloads = ["one", "two two", "three three three"];
    for (const p of payloads) {
      const r = await talk(a(3, 1), 80, p, a(1, 10));
      assertEquals(r.reply, `echo:${p}`);
    }
    await assertEventually(() => za.registry.size === 0 && zb.registry.size === 0);
    const scrape = async (z: typeof za, path: string) => {
      const addr = z.metricsAddress!;
      const res = await fetch(`http://${addr.hostname}:${addr.port}${path}`);
      assertEquals(res.status, 200);
      assertIncludes(res.headers.get("content-type")!, "text/plain; version=0.0.4");
      return await res.text();
    };
    const textA = await scrape(za, "/metrics");
    const textB = await scrape(zb, "/stats/prometheus");
    const sent = payloads.reduce((n, p) => n + p.length, 0);
    const echoed = payloads.reduce((n, p) => n + 5 + p.length, 0);
    const common = {
      source_workload: "client",
      source_workload_namespace: "apps",
      source_principal: CLIENT,
      source_app: "client",
      source_canonical_service: "client",
      source_canonical_revision: "latest",
      destination_service: "echo.apps.svc.cluster.local",
      destination_service_name: "echo",
      destination_service_namespace: "apps",
      destination_workload: "echo",
      destination_workload_namespace: "apps",
      destination_principal: ECHO,
      destination_app: "echo",
      request_protocol: "tcp",
      response_flags: "-",
      connection_security_policy: "mutual_tls",
    };
    for (
      const [text, reporter] of [[textA, "source"], [textB, "destination"]] as const
    ) {
      const all = samples(text);
      const m = { ...common, reporter };
      assertEquals(find(all, "istio_tcp_connections_opened_total", m), [3], reporter);
      assertEquals(find(all, "istio_tcp_connections_closed_total", m), [3], reporter);
      assertEquals(find(all, "istio_tcp_received_bytes_total", m), [sent], reporter);
      assertEquals(find(all, "istio_tcp_sent_bytes_total", m), [echoed], reporter);
      assertEquals(find(all, "istio_build", { component: "ztunnel" }), [1]);
      assertEquals(find(all, "ambit_config_reloads_total", {}).length, 1);
      assertEquals(find(all, "ambit_hbone_pool_connections", {}).length, 1);
      const lint = await promtool(text);
      assertEquals(lint, { code: 0, output: "" }, `promtool on the ${reporter} side`);
    }
    // The node that sent holds one pooled connection to node-b.
    assertEquals(find(samples(textA), "ambit_hbone_pool_connections", {}), [1]);

    // The access log: one record per connection, with identities and bytes.
    assertEquals(access.length, 3);
    const rec = access[2];
    assertEquals(rec.direction, "outbound");
    assertEquals(rec.via, "vip");
    assertEquals(rec.srcWorkload, "apps/client");
    assertEquals(rec.srcIdentity, CLIENT);
    assertEquals(rec.dst, `${a(2, 10)}:8080`);
    assertEquals(rec.dstService, "echo.apps.svc.cluster.local");
    assertEquals(rec.dstWorkload, "apps/echo");
    assertEquals(rec.dstIdentity, ECHO);
    assertEquals(rec.hop, `${a(2, 1)}:15008`);
    assertEquals([rec.bytesReceived, rec.bytesSent], [payloads[2].length, 5 + payloads[2].length]);
    assertEquals([rec.outcome, rec.flag], ["ok", "-"]);

    // A denied connection: the destination counts it with DENY, the source with CONNECT.
    await mesh.reconfigure(twoNodeConfig(a, DENY_CLIENT));
    const denied = await talk(a(3, 1), 80, "nope", a(1, 10));
    assertEquals(denied.reply, "");
    await assertEventually(() => access.length === 4);
    assertEquals([access[3].outcome, access[3].flag], ["refused", "CONNECT"]);
    const flagged = (all: ReturnType<typeof samples>, reporter: string, flag: string) => ({
      opened: find(all, "istio_tcp_connections_opened_total", { reporter, response_flags: flag }),
      closed: find(all, "istio_tcp_connections_closed_total", { reporter, response_flags: flag }),
    });
    assertEquals(flagged(samples(await scrape(zb, "/metrics")), "destination", "DENY"), {
      opened: [1],
      closed: [1],
    });
    assertEquals(flagged(samples(await scrape(za, "/metrics")), "source", "CONNECT"), {
      opened: [1],
      closed: [1],
    });
    // The established series did not move.
    assertEquals(
      find(samples(await scrape(zb, "/metrics")), "istio_tcp_connections_opened_total", {
        ...common,
        reporter: "destination",
      }),
      [3],
    );
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("bytes of a long-lived connection show in the metrics while it is open", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const app = await echoServer(a(2, 10), 8080);
  try {
    const za = await mesh.ztunnel("node-a", { extra: { metrics: { hostname: a(1, 1), port: 0 } } });
    await mesh.ztunnel("node-b");
    const sock = net.connect({ host: a(3, 1), port: 80, localAddress: a(1, 10) });
    await new Promise((r) => sock.once("connect", r));
    sock.write("x".repeat(1000));
    const metric = async () => {
      const res = await fetch(`http://${a(1, 1)}:${za.metricsAddress!.port}/metrics`);
      const all = samples(await res.text());
      return {
        received: find(all, "istio_tcp_received_bytes_total", { reporter: "source" }),
        opened: find(all, "istio_tcp_connections_opened_total", { reporter: "source" }),
        closed: find(all, "istio_tcp_connections_closed_total", { reporter: "source" }),
      };
    };
    await assertEventually(async () => (await metric()).received[0] === 1000);
    assertEquals(await metric(), { received: [1000], opened: [1], closed: [0] });
    sock.destroy();
    await assertEventually(async () => (await metric()).closed[0] === 1);
    assertEquals((await metric()).received, [1000], "closing does not count the bytes twice");
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("readiness: 500 with what is pending while certificates are fetched, 200 when ready, 500 while stopping", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const ca = new LocalCa(mesh.ca, 3_600_000);
  const slow = {
    async sign(csr: string) {
      await gate;
      return ca.sign(csr);
    },
  };
  const app = await echoServer(a(2, 10), 8080);
  try {
    const z = await mesh.ztunnel("node-a", {
      noWait: true,
      extra: { readiness: { hostname: a(1, 1), port: 0 }, certSource: slow },
    });
    await mesh.ztunnel("node-b");
    const url = `http://${a(1, 1)}:${z.readinessAddress!.port}/healthz/ready`;
    const probe = async () => {
      const res = await fetch(url);
      return { status: res.status, body: await res.text() };
    };
    const before = await probe();
    assertEquals(before.status, 500);
    assertIncludes(before.body, `certificate for ${CLIENT}`);
    assertEquals((await fetch(url.replace("/healthz/ready", "/other"))).status, 404);
    assertEquals((await fetch(url, { method: "POST" })).status, 405);
    release();
    await assertEventually(async () => (await probe()).status === 200);
    assertEquals((await probe()).body, "ready\n");

    // Shutdown with a live connection: not ready at once, while it drains.
    const sock = net.connect({ host: a(3, 1), port: 80, localAddress: a(1, 10) });
    await new Promise((r) => sock.once("connect", r));
    sock.write("hold");
    await assertEventually(() => z.registry.size === 1);
    const stopped = z.shutdown("test stop", 10_000);
    const during = await probe();
    assertEquals(during.status, 500);
    assertIncludes(during.body, "stopping (test stop)");
    assertEquals(z.registry.size, 1, "the live connection drains");
    sock.end();
    await stopped;
    const after = await fetch(url).then(() => "answered", (e) => (e as Error).name);
    assertEquals(after, "TypeError", "the readiness port is closed after stopping");
  } finally {
    release();
    app.close();
    await mesh.close();
  }
});

Deno.test("admin API: views, logging level at run time, quitquitquit, localhost only", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a, DENY_CLIENT));
  let quits = 0;
  try {
    const z = await mesh.ztunnel("node-b", {
      extra: { admin: { hostname: a(2, 1), port: 0 }, onQuit: () => quits++ },
    });
    const base = `http://${a(2, 1)}:${z.adminAddress!.port}`;
    const get = async (path: string, init?: RequestInit) => {
      const res = await fetch(base + path, init);
      return { status: res.status, body: await res.json() };
    };
    const index = await get("/");
    for (
      const e of [
        "/certs",
        "/config_dump",
        "/workloads",
        "/services",
        "/policies",
        "/logging",
        "/quitquitquit",
        "/stats/prometheus",
      ]
    ) assert(index.body.endpoints.includes(e), e);

    const w = await get("/workloads");
    assertEquals(w.body.node, "node-b");
    assertEquals(w.body.workloads.map((x: { key: string }) => x.key), ["apps/echo"]);
    assertEquals(w.body.workloads[0].identity, ECHO);
    assertEquals(w.body.workloads[0].certificate, "valid");

    const s = await get("/services");
    const echo = s.body.services.find((x: { key: string }) => x.key === "apps/echo");
    assertEquals(echo.vip, a(3, 1));
    assertEquals(echo.endpoints[0].workload, "apps/echo");

    const p = await get("/policies");
    assertEquals(p.body.workloads[0].policies[0].policy, "apps/deny-client");
    assertEquals(p.body.workloads[0].policies[0].action, "DENY");

    const dump = await fetch(base + "/config_dump").then((r) => r.text());
    assertIncludes(dump, '"generation"');
    assertIncludes(dump, '"lastReloadError"');
    assertIncludes(dump, '"certificates"');
    assert(!/PRIVATE KEY/.test(dump), "no key in the config dump");
    assert(!/PRIVATE KEY/.test(await fetch(base + "/certs").then((r) => r.text())));

    assertEquals(await get("/logging"), { status: 200, body: { level: "debug" } });
    assertEquals(await get("/logging?level=warn", { method: "POST" }), {
      status: 200,
      body: { level: "warn", previous: "debug" },
    });
    assertEquals(z.options.logger.level, "warn");
    const bad = await get("/logging?level=loud", { method: "POST" });
    assertEquals(bad.status, 400);
    assertIncludes(bad.body.error, "level must be one of error, warn, info, debug, trace");
    assertEquals(z.options.logger.level, "warn", "a bad level changes nothing");

    assertEquals((await get("/quitquitquit")).status, 405);
    assertEquals(quits, 0);
    const q = await fetch(base + "/quitquitquit", { method: "POST" });
    assertEquals([q.status, await q.text()], [200, "stopping\n"]);
    await assertEventually(() => quits === 1);

    // Localhost only: a remote peer or a Host that is not loopback is refused.
    const app = adminApp({ workloads: () => ({}) });
    const remote = await app.request("http://127.0.0.1/workloads", {}, { remote: "10.1.2.3" });
    assertEquals(remote.status, 403);
    assertIncludes(await remote.text(), "only on localhost");
    for (const host of ["evil.example", "127.evil.example", "10.0.0.1"]) {
      const r = await app.request("http://x/workloads", { headers: { host } }, {
        remote: "127.0.0.1",
      });
      assertEquals(r.status, 403, host);
    }
    for (const host of ["localhost:15000", "127.0.0.1:15000", "[::1]:15000"]) {
      const r = await app.request("http://x/workloads", { headers: { host } }, {
        remote: "127.0.0.1",
      });
      assertEquals(r.status, 200, host);
    }
    let err: unknown;
    try {
      serveAdmin({}, { hostname: "0.0.0.0", port: 0, logger: new Logger({ sink: () => {} }) });
    } catch (e) {
      err = e;
    }
    assert(err instanceof AdminAddressError);
    assertIncludes((err as Error).message, "not a loopback address");
  } finally {
    await mesh.close();
  }
});
