/**
 * The embedded demo lab: the config in config/lab (embedded at build time),
 * two ztunnels and a waypoint as real processes on loopback addresses, a hot
 * reload that enrolls a namespace, and a clean stop. Needs no root.
 *
 * @module
 */
import { compileSources } from "../config/compile.ts";
import { ConfigError, formatIssue } from "../config/load.ts";
import type { Snapshot } from "../config/snapshot.ts";
import { LAB_CONFIG } from "./lab_config.ts";
import { AmbitChild } from "./process.ts";
import { selfDisplayName } from "./self.ts";
import { defaultLabDir } from "./lab_dir.ts";
import {
  ask,
  askViaSocks5,
  httpClient,
  type SampleApp,
  startHttpApp,
  startSampleApp,
} from "./apps.ts";
import { initCaDir, loadCaDir } from "../identity/ca_dir.ts";
import type { CertStatus } from "../identity/cert_manager.ts";

/** Options for {@link runLab}. */
export interface LabOptions {
  /** Writes one line of the narrative. */
  out: (line: string) => void;
  /** Directory for the lab's files (default: a new temporary directory, removed after). */
  dir?: string;
  /**
   * `ambit lab up`: after the demo, keep the nodes and sample apps running,
   * write each process's log to `dir/logs/`, report them with `onReady`, and
   * stop only when `until` resolves.
   */
  stayUp?: {
    onReady(processes: LabProcess[]): Promise<void>;
    until: Promise<string>;
  };
}

/** A process the lab started. */
export interface LabProcess {
  readonly label: string;
  readonly pid: number;
  /** Its admin API (host:port). */
  readonly admin: string;
  /** Its log file (only with `stayUp`). */
  readonly log?: string;
}

/** Writes the embedded lab config into `dir`; returns the file paths. */
export async function writeLabConfig(dir: string): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const [name, text] of Object.entries(LAB_CONFIG)) {
    const p = `${dir}/${name}`;
    await Deno.writeTextFile(p, text);
    paths.push(p);
  }
  return paths;
}

/** Runs the demo; returns an exit code. */
export async function runLab(options: LabOptions): Promise<number> {
  const { out } = options;
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "ambit-lab-" });
  const configDir = `${dir}/config`;
  const children: [string, AmbitChild][] = [];
  const apps: SampleApp[] = [];
  const logs = new Map<string, Deno.FsFile>();
  const logPath = (label: string) => `${dir}/logs/${label.replace(/[^a-z0-9-]+/gi, "-")}.log`;
  try {
    if (options.stayUp) await Deno.mkdir(`${dir}/logs`, { recursive: true });
    await writeLabConfig(configDir);
    const sources = await Promise.all(
      Object.keys(LAB_CONFIG).map(async (name) => ({
        file: `${configDir}/${name}`,
        text: await Deno.readTextFile(`${configDir}/${name}`),
      })),
    );
    const compiled = await compileSources(sources);
    if (!compiled.snapshot) throw new ConfigError(compiled.issues);
    const s = compiled.snapshot;
    out(`ambit lab: a two-host mesh on loopback addresses (config: ${configDir})`);
    out("");
    describeMesh(s, out);
    for (const w of compiled.issues) out(`  note: ${formatIssue(w)}`);
    out("");

    // A kept lab directory (--dir) keeps its CA from the last run.
    const ca = await loadCaDir(`${dir}/ca`).catch(() => undefined) ??
      await initCaDir(`${dir}/ca`, { trustDomain: s.mesh.trustDomain });
    out(`CA: trust domain ${ca.trustDomain}, root serial ${ca.roots[0].serialNumber} (${dir}/ca)`);
    out("");
    const start = async (label: string, args: string[]) => {
      let onLine: ((l: string) => void) | undefined;
      if (options.stayUp) {
        const f = await Deno.open(logPath(label), { create: true, append: true });
        logs.set(label, f);
        const enc = new TextEncoder();
        onLine = (l) => f.writeSync(enc.encode(l + "\n"));
      }
      const child = new AmbitChild([
        ...args,
        "--config",
        configDir,
        "--ca-dir",
        `${dir}/ca`,
        "--log-format",
        "json",
      ], { onLine });
      children.push([label, child]);
      const t0 = performance.now();
      await child.waitForRecord((r) => r.msg === "config loaded");
      out(
        `  started ${label.padEnd(26)} pid ${child.pid}, ready in ${
          Math.round(performance.now() - t0)
        } ms`,
      );
      return child;
    };
    out("Starting the nodes (admin APIs on their loopback addresses, port 15000):");
    const admins: [string, string][] = [
      ["node-a", `${s.nodes.get("node-a")!.address}:15000`],
      ["node-b", `${s.nodes.get("node-b")!.address}:15000`],
      ["shop/waypoint", `${s.waypoints.get("shop/waypoint")!.address}:15000`],
    ];
    // Each node's DNS and proxy listeners on its own loopback address, so the two fit on one host.
    const hostPorts = (node: string) => {
      const ip = s.nodes.get(node)!.address;
      return ["--dns", `${ip}:15053`, "--socks5", `${ip}:15080`, "--http-proxy", `${ip}:15081`];
    };
    const nodeA = await start("ztunnel node-a", [
      "ztunnel",
      "--node",
      "node-a",
      "--admin",
      admins[0][1],
      ...hostPorts("node-a"),
    ]);
    await start("ztunnel node-b", [
      "ztunnel",
      "--node",
      "node-b",
      "--admin",
      admins[1][1],
      ...hostPorts("node-b"),
    ]);
    await start("waypoint shop/waypoint", [
      "waypoint",
      "--name",
      "shop/waypoint",
      "--admin",
      admins[2][1],
    ]);
    out("");

    out("Workload certificates (issued on each node; keys never leave it):");
    for (const [label, admin] of admins) {
      const certs = await waitForCerts(admin);
      for (const c of certs) {
        out(
          `  ${label.padEnd(14)} ${c.id.padEnd(44)} serial ${
            c.serial?.slice(0, 12)
          }… until ${c.notAfter}`,
        );
      }
    }
    out("");

    await showTraffic(s, children, apps, out);

    out("Hot reload: label namespace legacy with istio.io/dataplane-mode=ambient (no restart):");
    const nsFile = `${configDir}/namespaces.yaml`;
    const text = await Deno.readTextFile(nsFile);
    const from = nodeA.records.length;
    const t0 = performance.now();
    await Deno.writeTextFile(
      nsFile,
      text.replace(
        "metadata:\n  name: legacy\n",
        "metadata:\n  name: legacy\n  labels:\n    istio.io/dataplane-mode: ambient\n",
      ),
    );
    const enrolled = await nodeA.waitForRecord((r) => r.msg === "workload enrolled", { from });
    out(
      `  node-a enrolled ${enrolled.workload} as ${enrolled.identity} ` +
        `${Math.round(performance.now() - t0)} ms after the file changed`,
    );
    const issued = await nodeA.waitForRecord(
      (r) => r.msg === "certificate issued" && r.identity === enrolled.identity,
      { from },
    );
    out(
      `  node-a obtained its certificate (serial ${String(issued.serial).slice(0, 12)}…) ${
        Math.round(performance.now() - t0)
      } ms after the change`,
    );
    out("");

    if (options.stayUp) {
      const procs = children.map(([label, c]) => ({
        label,
        pid: c.pid,
        admin: admins.find(([n]) => label.endsWith(n))?.[1] ?? "",
        log: logPath(label),
      }));
      describeUp(s, procs, dir, out);
      await options.stayUp.onReady(procs);
      const why = await options.stayUp.until;
      out(`Stopping (${why}):`);
    } else out("Stopping:");
    let clean = true;
    for (const [label, child] of children.splice(0).reverse()) {
      const code = await child.stop();
      clean &&= code === 0;
      out(`  ${label.padEnd(26)} exited ${code}`);
      if (code !== 0) {
        for (const l of child.lines.slice(-8)) out(`    ${l.slice(0, 300)}`);
        for (const r of child.records.slice(-8)) out(`    ${JSON.stringify(r).slice(0, 300)}`);
      }
    }
    out("");
    if (!options.stayUp) {
      const ambit = selfDisplayName();
      out(`Explore: ${ambit} lab up   # the same lab, left running, with where to look`);
      out(`         ${ambit} lab down # stops it`);
      out(
        `         ${ambit} validate config/lab · ${ambit} config dump --config config/lab --node node-a`,
      );
    }
    return clean ? 0 : 1;
  } finally {
    for (const [, child] of children) await child.stop(2000);
    for (const a of apps) a.close();
    for (const f of logs.values()) f.close();
    if (!options.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** What `ambit lab up` leaves running, and how to look at it. */
function describeUp(
  s: Snapshot,
  procs: LabProcess[],
  dir: string,
  out: (l: string) => void,
): void {
  const nodeA = s.nodes.get("node-a")!.address;
  const nodeB = s.nodes.get("node-b")!.address;
  const wp = s.waypoints.get("shop/waypoint")!;
  const productpage = s.workloads.get("shop/productpage")!.address;
  const reviews = s.services.get("shop/reviews")!;
  out("The lab is up. Running:");
  for (const p of procs) {
    out(
      `  ${p.label.padEnd(24)} pid ${String(p.pid).padEnd(8)} admin ${
        p.admin.padEnd(20)
      } log ${p.log}`,
    );
  }
  out("  sample apps ratings, reviews-v1, reviews-v2 (in the lab supervisor)");
  out("");
  const ambit = selfDisplayName();
  out("Look around:");
  out(
    `  ${ambit} status --admin ${nodeA}:15000      # node-a: workloads, certificates, connections`,
  );
  out(`  ${ambit} config dump --admin ${nodeB}:15000 # node-b's effective config`);
  out(`  curl -s http://${nodeB}:15020/metrics      # Istio TCP metrics (reporter=destination)`);
  out(`  curl -s http://${wp.address}:15020/metrics  # the waypoint's request metrics`);
  out(`  dig @${nodeA} -p 15053 ${reviews.hostname}`);
  out(
    `  curl --interface ${productpage} --socks5-hostname ${nodeA}:15080 http://reviews.shop:9080/reviews/1`,
  );
  out(`  tail -f ${dir}/logs/*.log`);
  out("");
  out(`Stop it with: ${ambit} lab down${dir === defaultLabDir() ? "" : ` --dir ${dir}`}`);
  out("");
}

/** Starts the sample apps and sends traffic through the mesh, allowed and denied. */
async function showTraffic(
  s: Snapshot,
  children: [string, AmbitChild][],
  apps: SampleApp[],
  out: (l: string) => void,
): Promise<void> {
  const ratings = s.workloads.get("payments/ratings")!;
  apps.push(
    await startSampleApp("ratings", ratings.address, 9090, {
      proxyProtocol: ratings.proxyProtocol,
    }),
  );
  const nodeB = children.find(([l]) => l === "ztunnel node-b")![1];
  out("Traffic (sample app ratings on 127.0.2.20:9090 reads the PROXY header for its caller):");
  const svc = s.services.get("payments/ratings")!;
  const reviews = s.workloads.get("shop/reviews-v1")!;
  const allowed = await ask("127.0.2.1", 9090, "hello from reviews-v1", reviews.address);
  out(`  reviews-v1 → ratings via node-b port 127.0.2.1:9090:`);
  out(`    ${allowed.reply || `no reply (${allowed.error ?? "closed"})`}`);
  const productpage = s.workloads.get("shop/productpage")!;
  const from = nodeB.records.length;
  const across = await ask(svc.vip, 9090, "hello from productpage", productpage.address);
  // The reviews-v1 connection's close record can arrive after `from`: match productpage's own.
  const carried = await nodeB.waitForRecord(
    (r) => r.msg === "inbound connection closed" && r.src_identity === productpage.identity,
    { from },
  ).catch(() => undefined);
  out(`  productpage → ratings VIP ${svc.vip}:9090 (node-a → HBONE mTLS → node-b):`);
  out(`    ${across.reply || `no reply (${across.error ?? "closed"})`}`);
  if (carried) {
    out(
      `    node-b: ${carried.src_identity} → ${carried.dst_identity}, ` +
        `${carried.bytes_received} bytes in, ${carried.bytes_sent} bytes out`,
    );
  }
  const sleep = s.workloads.get("shop/sleep")!;
  const denied = await ask(svc.vip, 9090, "hello from sleep", sleep.address);
  out(`  sleep → ratings VIP ${svc.vip}:9090 (node-a → HBONE → node-b):`);
  if (denied.reply) out(`    unexpected reply: ${denied.reply}`);
  const rec = await nodeB.waitForRecord((r) => r.msg === "inbound connection denied", {
    from,
  }).catch(() => undefined);
  out(
    rec
      ? `    refused by node-b: ${rec.source} is not allowed (${rec.reason})`
      : `    connection closed without a reply`,
  );
  out("");
  await showNamesAndProxies(s, out);
  await showL7(s, apps, out);
  await showMetrics(s, out);
}

/** Mesh DNS on node-a, then productpage reaching ratings by name through node-a's SOCKS5 proxy. */
async function showNamesAndProxies(s: Snapshot, out: (l: string) => void): Promise<void> {
  const nodeA = s.nodes.get("node-a")!.address;
  const svc = s.services.get("payments/ratings")!;
  out(`Names and proxies (node-a's DNS proxy ${nodeA}:15053, SOCKS5 ${nodeA}:15080):`);
  try {
    const a = await Deno.resolveDns(svc.hostname, "A", {
      nameServer: { ipAddr: nodeA, port: 15053 },
    });
    out(`  dig @${nodeA} -p 15053 ${svc.hostname}  →  ${a.join(", ")}`);
  } catch (e) {
    out(`  DNS query failed: ${(e as Error).message}`);
  }
  const productpage = s.workloads.get("shop/productpage")!;
  const via = await askViaSocks5(
    { ip: nodeA, port: 15080 },
    "ratings.payments",
    9090,
    "hello by name",
    productpage.address,
  );
  out(`  productpage → socks5h://${nodeA}:15080 → ratings.payments:9090:`);
  out(`    ${via.reply || `no reply (${via.error ?? "closed"})`}`);
  out("");
}

/**
 * L7 at the shop waypoint: productpage calls the reviews Service over HTTP;
 * the HTTPRoute splits 90/10 between v1 and v2 and sends user jason to v2,
 * and the L7 policy refuses DELETE.
 */
async function showL7(s: Snapshot, apps: SampleApp[], out: (l: string) => void): Promise<void> {
  const wp = s.waypoints.get("shop/waypoint")!;
  const reviews = s.services.get("shop/reviews")!;
  apps.push(
    ...await Promise.all(
      ["reviews-v1", "reviews-v2"].map((n) => {
        const w = s.workloads.get(`shop/${n}`)!;
        return startHttpApp(n, w.address, w.ports["http"] ?? 9080);
      }),
    ),
  );
  const client = httpClient(s.workloads.get("shop/productpage")!.address);
  try {
    out(
      `L7 at waypoint ${wp.key} (${wp.address}:${wp.port}): productpage → http://${reviews.hostname}:9080`,
    );
    const counts = new Map<string, number>();
    let failed = 0;
    for (let i = 0; i < 50; i++) {
      const r = await client.request(reviews.vip, 9080, `/reviews/${i}`);
      if (r.status !== 200) failed++;
      const who = r.body.split(":")[0] || `status ${r.status}`;
      counts.set(who, (counts.get(who) ?? 0) + 1);
    }
    out(
      `  50 requests, HTTPRoute reviews 90/10: ${
        [...counts].sort().map(([k, v]) => `${k} ${v}`).join(", ")
      }${failed ? ` (${failed} failed)` : ""}`,
    );
    const jason = await client.request(reviews.vip, 9080, "/reviews/1", {
      headers: { "end-user": "jason" },
    });
    out(`  end-user: jason → ${jason.status} ${jason.body || jason.error}`);
    const del = await client.request(reviews.vip, 9080, "/reviews/1", { method: "DELETE" });
    out(
      `  DELETE /reviews/1 → ${del.status} ${
        del.body || del.error
      } (AuthorizationPolicy reviews-no-delete)`,
    );
    try {
      const m = await (await fetch(`http://${wp.address}:15020/metrics`, {
        signal: AbortSignal.timeout(5000),
      })).text();
      for (const line of m.split("\n")) {
        if (!line.startsWith('istio_requests_total{reporter="waypoint"')) continue;
        const label = (k: string) => line.match(new RegExp(`${k}="([^"]*)"`))?.[1] ?? "?";
        out(
          `  istio_requests_total ${label("source_workload")} → ${label("destination_workload")} ` +
            `code=${label("response_code")} flags=${label("response_flags")}: ${
              line.split(" ").pop()
            }`,
        );
      }
    } catch (e) {
      out(`  cannot read the waypoint's metrics: ${(e as Error).message}`);
    }
    out("");
  } finally {
    client.close();
  }
}

/** Istio's TCP metrics as node-b reports them. */
async function showMetrics(s: Snapshot, out: (l: string) => void): Promise<void> {
  const nodeB = s.nodes.get("node-b")!.address;
  const url = `http://${nodeB}:15020/metrics`;
  let text = "";
  try {
    text = await (await fetch(url, { signal: AbortSignal.timeout(5000) })).text();
  } catch (e) {
    out(`Metrics: cannot read ${url}: ${(e as Error).message}`);
    return;
  }
  out(`Metrics (${url}, reporter=destination):`);
  for (const line of text.split("\n")) {
    if (!line.startsWith('istio_tcp_connections_opened_total{reporter="destination"')) continue;
    const label = (k: string) => line.match(new RegExp(`${k}="([^"]*)"`))?.[1] ?? "?";
    out(
      `  istio_tcp_connections_opened_total ${label("source_workload")} → ` +
        `${label("destination_workload")} service=${label("destination_service_name")} ` +
        `flags=${label("response_flags")}: ${line.split(" ").pop()}`,
    );
  }
  out("");
}

/** Polls a node's /certs until every identity it tracks is valid. */
async function waitForCerts(admin: string): Promise<CertStatus[]> {
  const deadline = Date.now() + 15_000;
  while (true) {
    try {
      const res = await fetch(`http://${admin}/certs`);
      const body = await res.json() as { identities: CertStatus[] };
      if (body.identities.length > 0 && body.identities.every((c) => c.state === "valid")) {
        return body.identities;
      }
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`certificates on ${admin} not ready in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function describeMesh(s: Snapshot, out: (l: string) => void): void {
  out(
    `Mesh: trust domain ${s.mesh.trustDomain}, ${s.nodes.size} nodes, ${s.workloads.size} workloads, ` +
      `${s.services.size} services, ${s.waypoints.size} waypoint`,
  );
  for (const n of s.nodes.values()) {
    out(`  node ${n.name} (${n.address})`);
    for (const w of s.workloadsByNode.get(n.name) ?? []) {
      const state = w.enrolled ? w.identity : "not enrolled (namespace not ambient)";
      out(`    ${w.key.padEnd(20)} ${w.address.padEnd(12)} ${state}`);
    }
  }
  for (const svc of s.services.values()) {
    const via = svc.waypoint ? ` via waypoint ${svc.waypoint}` : "";
    const ports = svc.ports.map((p) => p.port).join(",");
    out(
      `  service ${
        svc.hostname.padEnd(36)
      } ${svc.vip}:${ports} → ${svc.endpoints.length} endpoint(s)${via}`,
    );
  }
  for (const wp of s.waypoints.values()) {
    out(`  waypoint ${wp.key} at ${wp.address}:${wp.port} on ${wp.node}`);
  }
}
