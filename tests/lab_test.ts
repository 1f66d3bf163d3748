/** The README's demo command, as a user runs it. */
import { assertEquals, assertIncludes } from "./_util/asserts.ts";
import { runAmbit } from "./_util/proc.ts";

Deno.test("ambit lab runs the demo end to end and leaves no process behind", async () => {
  const t0 = performance.now();
  const { code, stdout, stderr } = await runAmbit(["lab"]);
  assertEquals(code, 0, stdout + stderr);
  for (
    const line of [
      "Mesh: trust domain ambit.lab, 2 nodes, 6 workloads, 5 services, 1 waypoint",
      "shop/reviews-v1      127.0.2.11   spiffe://ambit.lab/ns/shop/sa/reviews",
      "legacy/batch         127.0.1.30   not enrolled (namespace not ambient)",
      "started ztunnel node-a",
      "spiffe://ambit.lab/ns/shop/sa/waypoint",
      "ratings: hello from reviews-v1 (from spiffe://ambit.lab/ns/shop/sa/reviews)",
      "ratings: hello from productpage (from spiffe://ambit.lab/ns/shop/sa/productpage)",
      "node-b: spiffe://ambit.lab/ns/shop/sa/productpage → spiffe://ambit.lab/ns/payments/sa/ratings",
      "refused by node-b: spiffe://ambit.lab/ns/shop/sa/sleep is not allowed",
      "dig @127.0.1.1 -p 15053 ratings.payments.svc.cluster.local  →  127.10.0.20",
      "ratings: hello by name (from spiffe://ambit.lab/ns/shop/sa/productpage)",
      "istio_tcp_connections_opened_total productpage → ratings service=ratings flags=-: 2",
      "istio_tcp_connections_opened_total sleep → ratings service=ratings flags=DENY: 1",
      "L7 at waypoint shop/waypoint (127.0.2.100:15008)",
      "end-user: jason → 200 reviews-v2: GET /reviews/1",
      "DELETE /reviews/1 → 403 RBAC: access denied",
      "istio_requests_total productpage → unknown code=403 flags=RBAC: 1",
      "node-a enrolled legacy/batch as spiffe://ambit.lab/ns/legacy/sa/batch",
      "node-a obtained its certificate",
      "ztunnel node-a             exited 0",
    ]
  ) assertIncludes(stdout, line);
  const seconds = (performance.now() - t0) / 1000;
  assertEquals(seconds < 60, true, `lab took ${seconds} s`);
  const ps = await new Deno.Command("pgrep", { args: ["-f", "--ca-dir /tmp/ambit-lab-"] }).output();
  assertEquals(new TextDecoder().decode(ps.stdout).trim(), "", "no lab process left");
});

Deno.test("ambit lab up leaves the lab running; lab down stops every process and removes it", async () => {
  const base = await Deno.makeTempDir({ prefix: "ambit-labup-" });
  const dir = `${base}/lab`;
  const running = async () => {
    const ps = await new Deno.Command("pgrep", { args: ["-f", dir] }).output();
    return new TextDecoder().decode(ps.stdout).trim().split("\n").filter((l) => l !== "");
  };
  try {
    const t0 = performance.now();
    const up = await runAmbit(["lab", "up", "--dir", dir]);
    assertEquals(up.code, 0, up.stdout + up.stderr);
    const seconds = (performance.now() - t0) / 1000;
    assertEquals(seconds < 60, true, `lab up took ${seconds} s`);
    for (
      const line of [
        "refused by node-b: spiffe://ambit.lab/ns/shop/sa/sleep is not allowed",
        "DELETE /reviews/1 → 403 RBAC: access denied",
        "The lab is up. Running:",
        `log ${dir}/logs/ztunnel-node-a.log`,
        "status --admin 127.0.1.1:15000",
        `lab down --dir ${dir}`,
      ]
    ) assertIncludes(up.stdout, line);
    // It keeps running after `up` returned: the supervisor and its three nodes.
    assertEquals((await running()).length >= 4, true, `running: ${await running()}`);
    const status = await runAmbit(["status", "--admin", "127.0.1.1:15000"]);
    assertEquals(status.code, 0, status.stdout + status.stderr);
    assertIncludes(status.stdout, "node node-a (127.0.1.1): ready");
    // The sample apps stay up too: an HTTP request through the waypoint, after their keep-alive ran out.
    await new Promise((r) => setTimeout(r, 5500));
    const curl = await new Deno.Command("curl", {
      args: [
        "-sS",
        "--max-time",
        "5",
        "--interface",
        "127.0.1.10",
        "--socks5-hostname",
        "127.0.1.1:15080",
        "http://reviews.shop:9080/reviews/7",
      ],
    }).output();
    assertIncludes(new TextDecoder().decode(curl.stdout), ": GET /reviews/7");
    const again = await runAmbit(["lab", "up", "--dir", dir]);
    assertEquals(again.code, 1);
    assertIncludes(again.stdout, `a lab is already running in ${dir}`);

    const down = await runAmbit(["lab", "down", "--dir", dir]);
    assertEquals(down.code, 0, down.stdout + down.stderr);
    assertIncludes(down.stdout, "ztunnel node-a           pid");
    assertIncludes(down.stdout, `removed ${dir}`);
    assertEquals(await running(), [], "no lab process left");
    const none = await runAmbit(["lab", "down", "--dir", dir]);
    assertEquals(none.code, 0);
    assertIncludes(none.stdout, `no lab is running in ${dir}`);
  } finally {
    for (const pid of await running()) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch { /* gone */ }
    }
    await Deno.remove(base, { recursive: true });
  }
});
