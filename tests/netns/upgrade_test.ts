/**
 * Graceful stop and zero-downtime upgrade, for real, in the network-namespace
 * bed: two hosts, the CA service, a ztunnel per host and the echo app on
 * host B; a client on host A keeps opening new connections every few ms and
 * runs long checksummed transfers through both ztunnels while
 *
 * - a new ztunnel process for host B, then for host A, binds the same ports
 *   (SO_REUSEPORT) and the old one gets SIGTERM: no new connection fails,
 *   no transfer is cut, the old one exits 0 once its tunnels are done;
 * - both ztunnels get SIGTERM in the middle of a 1 GiB transfer: it completes
 *   within the drain deadline, checksums equal, and both exit 0.
 *
 * The hosts set `net.ipv4.tcp_migrate_req=1`, as the install guide says: a
 * connection queued on the old listener when it closes moves to the new one.
 *
 * Needs root and `ip netns` (ignored otherwise); CI runs it.
 */
import { assertEquals, assertIncludes, assertOk } from "../_util/asserts.ts";
import { runAmbit } from "../_util/proc.ts";
import { selfCommand } from "../../mod/lab/self.ts";
import { Bed, type NetnsProcess, netnsUnavailable, sh } from "./_netns.ts";
import { meshAndNodes, service, workload } from "./_mesh_yaml.ts";

const UNAVAILABLE = netnsUnavailable();
const TD = "ambit.upgrade";
const VIP = "127.213.1.10";
const APP = new URL("./_app.ts", import.meta.url).pathname;
const LOAD = new URL("./_load.ts", import.meta.url).pathname;
const START_MS = 30_000;
const DRAIN = "60s";
const id = (sa: string) => `spiffe://${TD}/ns/apps/sa/${sa}`;

function meshYaml(bed: Bed): string {
  return [
    ...meshAndNodes(bed, TD),
    `apiVersion: v1
kind: Namespace
metadata: { name: apps, labels: { istio.io/dataplane-mode: ambient } }`,
    workload("apps", "client-a", "host-a"),
    workload("apps", "echo", "host-b"),
    service("apps", "echo", VIP, 80, 8080),
  ].join("\n---\n") + "\n";
}

interface Summary {
  ms: number;
  shortOk: number;
  longOk: number;
  failures: { kind: string; at: number; error: string }[];
}

class UpgradeMesh {
  readonly ztunnels = new Map<string, NetnsProcess>();
  constructor(readonly bed: Bed, readonly dir: string) {}

  async start(): Promise<void> {
    const cfg = `${this.dir}/mesh`;
    await Deno.mkdir(cfg);
    await Deno.writeTextFile(`${cfg}/mesh.yaml`, meshYaml(this.bed));
    const init = await runAmbit(["ca", "init", "--trust-domain", TD, "--out", `${this.dir}/ca`]);
    assertEquals(init.code, 0, init.stderr);
    for (const h of this.bed.hosts) {
      const r = await runAmbit([
        "ca",
        "issue-node",
        `host-${h.name}`,
        "--ca",
        `${this.dir}/ca`,
        "--out",
        `${this.dir}/cred-${h.name}`,
      ]);
      assertEquals(r.code, 0, r.stderr);
      // As the install guide says (deploy/systemd/90-ambit.conf).
      await sh([
        "ip",
        "netns",
        "exec",
        h.netns,
        "sysctl",
        "-qw",
        `net.ipv4.tcp_migrate_req=${Deno.env.get("AMBIT_MIGRATE_REQ") ?? 1}`,
      ]);
    }
    const ca = this.bed.spawn("ambit ca serve", this.bed.wire.netns, [
      ...selfCommand(),
      "ca",
      "serve",
      "--config",
      cfg,
      "--ca",
      `${this.dir}/ca`,
      "--listen",
      `${this.bed.wire.address}:15012`,
      "--admin",
      "off",
      "--log-format",
      "json",
    ]);
    await ca.waitForRecord((r) => r.msg === "CA service listening", { timeoutMs: START_MS });
    const b = this.bed.host("b");
    const app = this.bed.spawn("app echo", b.netns, [
      Deno.execPath(),
      "run",
      "--allow-net",
      APP,
      "serve",
      "echo",
      b.address,
      "8080",
    ]);
    await app.waitForRecord((r) => r.event === "listening", { timeoutMs: START_MS });
    await Promise.all([this.startZtunnel("a", id("client-a")), this.startZtunnel("b", id("echo"))]);
  }

  /** Starts a ztunnel for host `name` (beside a running one, for an upgrade); resolves when it serves. */
  async startZtunnel(name: string, identity: string, label = ""): Promise<NetnsProcess> {
    const z = this.bed.spawn(`ztunnel host-${name}${label}`, this.bed.host(name).netns, [
      ...selfCommand(),
      "ztunnel",
      "--config",
      `${this.dir}/mesh`,
      "--node",
      `host-${name}`,
      "--credential",
      `${this.dir}/cred-${name}`,
      "--drain",
      DRAIN,
      "--log-format",
      "json",
    ]);
    this.ztunnels.set(name, z);
    await z.waitForRecord((r) => r.msg === "certificate issued" && r.identity === identity, {
      timeoutMs: START_MS,
    });
    await z.waitForRecord((r) => r.msg === "data plane listening", { timeoutMs: START_MS });
    return z;
  }

  /** Starts the load client on host A; `stop()` ends it and returns its summary. */
  load(args: string[]): { stop: () => Promise<Summary>; process: NetnsProcess } {
    const stopFile = `${this.dir}/stop-${crypto.randomUUID()}`;
    const p = this.bed.spawn("load", this.bed.host("a").netns, [
      Deno.execPath(),
      "run",
      "--allow-net",
      "--allow-read",
      LOAD,
      VIP,
      "80",
      "--stop-file",
      stopFile,
      ...args,
    ]);
    return {
      process: p,
      stop: async () => {
        await Deno.writeTextFile(stopFile, "");
        const s = await p.waitForRecord((r) => r.event === "summary", { timeoutMs: 120_000 });
        await p.status();
        return s as unknown as Summary;
      },
    };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test({
  name: "drain and zero-downtime upgrade under steady load, in the network-namespace bed",
  ignore: UNAVAILABLE !== undefined,
}, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "ambit-upgrade-" });
  const bed = await Bed.create(["a", "b"]);
  const mesh = new UpgradeMesh(bed, dir);
  const step = (name: string, fn: () => Promise<void>) =>
    t.step(name, async () => {
      try {
        await fn();
      } catch (e) {
        console.error(bed.logs());
        throw e;
      }
    });
  try {
    await mesh.start();

    for (const host of ["b", "a"]) {
      await step(
        `upgrade host ${host.toUpperCase()}'s ztunnel under load: no new connection fails, no transfer is cut`,
        async () => {
          const old = mesh.ztunnels.get(host)!;
          const identity = id(host === "a" ? "client-a" : "echo");
          // New connections every 3 ms, and three 40 MiB transfers at 8 MiB/s (about 5 s each).
          const load = mesh.load([
            "--short-every",
            "3",
            "--long",
            "3",
            "--long-bytes",
            String(40 * 1024 * 1024),
            "--long-rate",
            String(8 * 1024 * 1024),
          ]);
          await load.process.waitForRecord((r) => r.event === "started", { timeoutMs: START_MS });
          await sleep(800);
          const next = await mesh.startZtunnel(host, identity, " (new)");
          assertOk(
            next.records.some((r) =>
              typeof r.msg === "string" && r.msg.includes("sharing its ports with SO_REUSEPORT")
            ),
            "the new process saw the old one and took over",
          );
          await sleep(500);
          const from = old.records.length;
          old.kill("SIGTERM");
          await old.waitForRecord((r) => r.msg === "draining connections", {
            from,
            timeoutMs: 10_000,
          });
          assertEquals(await old.status(), 0, old.log());
          assertEquals(
            old.records.slice(from).some((r) =>
              r.msg === "drain deadline passed; closing connections"
            ),
            false,
            "every connection finished within the drain deadline",
          );
          // New connections keep working on the new process alone.
          await sleep(500);
          const summary = await load.stop();
          if (Deno.env.get("AMBIT_UPGRADE_DEBUG")) console.error(JSON.stringify(summary));
          assertEquals(summary.failures, [], "failures under load");
          assertEquals(summary.longOk, 3);
          assertOk(summary.shortOk > 200, `only ${summary.shortOk} short connections`);
          const served = next.records.filter((r) =>
            r.msg === (host === "a" ? "outbound connection closed" : "inbound connection closed")
          ).length;
          assertOk(served > 0, "the new process served connections");
        },
      );
    }

    await step(
      "SIGTERM during a 1 GiB checksummed transfer: it completes within the drain deadline, both ztunnels exit 0",
      async () => {
        const load = mesh.load([
          "--short-every",
          "0",
          "--long",
          "1",
          "--long-bytes",
          String(1024 * 1024 * 1024),
        ]);
        await load.process.waitForRecord((r) => r.event === "started", { timeoutMs: START_MS });
        await sleep(1500);
        const [za, zb] = [mesh.ztunnels.get("a")!, mesh.ztunnels.get("b")!];
        const marks = [za.records.length, zb.records.length];
        za.kill("SIGTERM");
        zb.kill("SIGTERM");
        for (const [i, z] of [za, zb].entries()) {
          await z.waitForRecord((r) => r.msg === "draining connections", {
            from: marks[i],
            timeoutMs: 10_000,
          });
        }
        const done = await load.process.waitForRecord((r) => r.event === "long-done", {
          timeoutMs: 120_000,
        });
        assertEquals([done.ok, done.bytes], [true, 1024 * 1024 * 1024], JSON.stringify(done));
        assertOk(!za.exited || !zb.exited, "the ztunnels waited for the transfer");
        for (const [i, z] of [za, zb].entries()) {
          assertEquals(await z.status(), 0, z.log());
          const log = z.records.slice(marks[i]).map((r) => r.msg);
          assertEquals(log.includes("drain deadline passed; closing connections"), false);
          assertIncludes(JSON.stringify(log), "stopped");
        }
        const summary = await load.stop();
        assertEquals(summary.failures, []);
      },
    );
  } finally {
    if (Deno.env.get("AMBIT_NETNS_LOGS")) console.error(bed.logs());
    await bed.close();
    await Deno.remove(dir, { recursive: true });
  }
});
