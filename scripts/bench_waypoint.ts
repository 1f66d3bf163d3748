/**
 * Waypoint benchmark (issue 6): 1 KiB HTTP/1.1 keep-alive requests (`GET /1k`)
 * in the same run, side by side over these paths on loopback addresses:
 *   direct    client → app (the baseline)
 *   nginx     client → nginx reverse proxy (1 worker, upstream keepalive 32) → app
 *   waypoint  client → node-a's ztunnel (Service VIP:80) → HBONE → ambit waypoint
 *             (L7) → HBONE → node-b's ztunnel → app
 *   l4        (context) the same two ztunnels through a second Service without
 *             the waypoint: what the waypoint hop adds is waypoint minus l4
 * Every proxy is its own process (`nginx -c CONF`, `ambit ztunnel`, `ambit
 * waypoint`, access logs off), and so are the app (`Deno.serve`) and the load
 * clients (`wrk`; /usr/bin/python3 for the fixed-rate client, since Deno's
 * timers fire ~1 ms late).
 *
 * 1. Fixed-rate latency: --rate requests/s for --seconds over one keep-alive
 *    connection, then over each further count in --latency-conns (default
 *    1,16), one request in flight per connection, latency from the scheduled
 *    send time (no coordinated omission); p50, p99, the p99 each path adds
 *    over direct, and the rate it kept up. Meanwhile, the CPU time (utime +
 *    stime from /proc/<pid>/stat, per wall second: vCPU) and peak VmRSS of
 *    every process on the path.
 * 2. Maximum request rate: `wrk -t1 -c --wrk-connections -d --wrk-seconds
 *    --latency`, requests/s and wrk's latency percentiles.
 *
 * Each run starts every process fresh (app, nginx, two ztunnels, waypoint),
 * waits for their certificates and readiness, checks each path with one
 * request, warms every path up (1 s of wrk), then measures (1) and then (2) on
 * the paths back to back: the fixed-rate part first, so the memory at --rate
 * is not what a saturation run left behind (that is reported separately,
 * "after wrk"). Medians over --runs. Prints a table, writes JSON (default
 * .bench/waypoint.json), and exits 1 when a target is missed, a path failed
 * (its processes' last log lines are printed) or a child died by itself:
 * - p99 added by the waypoint path over direct at --rate over one connection ≤ 2 ms;
 * - the waypoint path keeps up with --rate (95 %) over some --latency-conns count;
 * - at the first such count, the waypoint ≤ 0.5 vCPU and peak VmRSS ≤ 100 MiB.
 *
 *   deno run -A scripts/bench_waypoint.ts [--quick] [--runs 3] [--rate 1000]
 *     [--seconds 5] [--warmup 0.5] [--latency-conns 1,16] [--wrk-seconds 5]
 *     [--wrk-connections 16] [--log-level info] [--json FILE] [--keep]
 *
 * --quick: 1 run, 2 s of fixed rate, 2 s of wrk (about 40 s); explicit options
 * still win. --keep leaves the temporary directory (configs, certificates,
 * process logs, wrk reports) in place.
 *
 * Needs nginx, wrk and /usr/bin/python3, and root (or a low
 * net.ipv4.ip_unprivileged_port_start) for the Services' port 80.
 */
import { parseArgs } from "node:util";
import { LineChild, Proc, runBenchmark } from "./_bench_proc.ts";
import { HTTP_LATENCY_CLIENT_PY } from "./_bench_waypoint_http_py.ts";
import { hostNoiseLines, type MachineEnv, probeHostNoise } from "./_bench_noise.ts";
import {
  type Addresses,
  addresses,
  type HostPort,
  PATH_1K,
  type PathName,
  PATHS,
  probe,
  startApp,
  startNginx,
  startWaypointPath,
  targets,
  treeCpuSeconds,
  treeRssBytes,
  writeMesh,
} from "./_bench_waypoint_paths.ts";
import { runWrk, type WrkResult } from "./_bench_waypoint_wrk.ts";
import {
  bareDenoRssMiB,
  loadavg,
  median,
  mib,
  parseNum,
  r1,
  r2,
  r3,
  type Row,
  table,
  tool,
} from "./_bench_util.ts";

const ADDED_P99_TARGET_MS = 2;
const VCPU_TARGET = 0.5;
const RSS_TARGET_MIB = 100;

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    runs: { type: "string" },
    rate: { type: "string", default: "1000" },
    seconds: { type: "string" },
    warmup: { type: "string", default: "0.5" },
    "latency-conns": { type: "string", default: "1,16" },
    "wrk-seconds": { type: "string" },
    "wrk-connections": { type: "string", default: "16" },
    "log-level": { type: "string", default: "info" },
    json: { type: "string" },
    keep: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (values.help) {
  const doc = await Deno.readTextFile(new URL(import.meta.url));
  console.log(doc.slice(doc.indexOf("/**") + 3, doc.indexOf("*/")).replace(/^ \* ?/gm, ""));
  Deno.exit(0);
}

const Q = values.quick;
const pick = (v: string | undefined, full: string, quick: string) => v ?? (Q ? quick : full);
const RUNS = parseNum(pick(values.runs, "3", "1"), "runs", 1, 100);
const RATE = parseNum(values.rate, "rate", 1, 100_000);
const SECONDS = parseNum(pick(values.seconds, "5", "2"), "seconds", 0.1, 3600);
const WARMUP = parseNum(values.warmup, "warmup", 0, 60);
const LAT_CONNS = values["latency-conns"].split(",").map((s) =>
  parseNum(s, "latency-conns", 1, 1000)
);
const WRK_SECONDS = parseNum(pick(values["wrk-seconds"], "5", "2"), "wrk-seconds", 1, 3600);
const WRK_CONNS = parseNum(values["wrk-connections"], "wrk-connections", 1, 10_000);
const LOG_LEVEL = values["log-level"];
const JSON_OUT = values.json ?? new URL("../.bench/waypoint.json", import.meta.url).pathname;
const SIZE = 1024;

// --- statistics -------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- one measurement of each kind ------------------------------------------------

/** A process whose CPU and memory are read from /proc (with its descendants: nginx's worker). */
interface Watched {
  readonly label: string;
  readonly pid: number;
}

/** What a process used during the measured part of a fixed-rate run. */
interface Usage {
  vcpu: number;
  peakRssBytes: number;
  cpuUsPerRequest: number;
}

interface LatencyRun {
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  serviceP50Ms: number;
  serviceP99Ms: number;
  sendLagP99Ms: number;
  requests: number;
  expected: number;
  /** Answers counted (scheduled after the warm-up). */
  measured: number;
  /** Counted requests still unanswered when the client stopped waiting (their latency: so far). */
  unanswered: number;
  /** Whether the path kept up with the rate: 95 % of it, nothing left unanswered. */
  keptUp: boolean;
  errors: number;
  statuses: Record<string, number>;
  firstError?: string | null;
  reconnects: number;
  /** Seconds between the client's "measuring" line and its result. */
  wallSeconds: number;
  /** Measured answers per wall second: below the rate when the path cannot keep up. */
  achievedRps: number;
  usage: Record<string, Usage>;
  error?: string;
}

interface RunRecord {
  run: number;
  /** VmRSS after start, certificates and the check request. */
  idleRss: Record<string, number>;
  /** VmRSS after every measurement of the run (after the wrk saturation runs). */
  afterTrafficRss: Record<string, number>;
  latency: Record<string, Partial<Record<PathName, LatencyRun>>>;
  wrk: Partial<Record<PathName, WrkResult>>;
  /** What went wrong on a path, with the logs of its processes. */
  failures: Partial<Record<PathName, string>>;
  /** Exit status of each child when it was stopped at the end of the run. */
  exits: Record<string, number>;
  /** Other trouble (a child that did not stop cleanly). */
  problems: string[];
}

/** Samples VmRSS of `procs` every 100 ms until stopped; the peaks. */
function rssSampler(procs: readonly Watched[]): { stop(): Promise<Record<string, number>> } {
  const peak: Record<string, number> = Object.fromEntries(procs.map((p) => [p.label, NaN]));
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const p of procs) {
        const v = await treeRssBytes(p.pid);
        if (Number.isFinite(v) && !(v <= peak[p.label])) peak[p.label] = v;
      }
      await sleep(100);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

async function cpuOf(procs: readonly Watched[]): Promise<number[]> {
  return await Promise.all(procs.map((p) => treeCpuSeconds(p.pid)));
}

async function rssOf(procs: readonly Watched[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const p of procs) out[p.label] = await treeRssBytes(p.pid);
  return out;
}

/** The fixed-rate client on `to`, with the CPU and memory of `procs` while it measures. */
async function latency(
  py: string,
  to: HostPort,
  conns: number,
  procs: readonly Watched[],
): Promise<LatencyRun> {
  const c = new LineChild("latency client (python3)", "/usr/bin/python3", [
    py,
    to.hostname,
    String(to.port),
    PATH_1K,
    String(RATE),
    String(SECONDS),
    String(conns),
    String(SIZE),
    String(WARMUP),
  ]);
  const timeoutMs = (WARMUP + SECONDS + 30) * 1000;
  try {
    let first = await c.json<Record<string, unknown>>(timeoutMs);
    let before: number[] = [], t0 = NaN;
    let rss: ReturnType<typeof rssSampler> | undefined;
    if (first.phase === "measuring") {
      [before, t0] = [await cpuOf(procs), performance.now()];
      rss = rssSampler(procs);
      first = await c.json<Record<string, unknown>>(timeoutMs);
    }
    const r = first as unknown as
      & Omit<LatencyRun, "usage" | "wallSeconds" | "achievedRps" | "keptUp">
      & { error: string | null };
    const after = await cpuOf(procs);
    const wall = (performance.now() - t0) / 1000;
    const peaks = rss ? await rss.stop() : {};
    const usage: Record<string, Usage> = {};
    procs.forEach((p, i) => {
      const cpu = after[i] - before[i];
      usage[p.label] = {
        vcpu: r3(cpu / wall),
        peakRssBytes: peaks[p.label] ?? NaN,
        cpuUsPerRequest: Math.round(cpu * 1e6 / Math.max(1, r.measured)),
      };
    });
    const error = r.error ??
      (r.errors > 0
        ? `${r.errors} of ${r.requests} answers were errors (${
          JSON.stringify(r.statuses)
        }); first: ${r.firstError}`
        : r.reconnects > 0
        ? `the keep-alive connection was reopened ${r.reconnects} time(s) (${r.firstError})`
        : undefined);
    const achievedRps = Math.round(r.measured / wall);
    const keptUp = achievedRps >= 0.95 * RATE && r.unanswered === 0;
    return { ...r, wallSeconds: r3(wall), achievedRps, keptUp, usage, error: error ?? undefined };
  } finally {
    await c.stop();
  }
}

// --- one run: fresh processes, check, warm-up, every metric on every path ---------

type Procs = Record<PathName, Watched[]>;

/** Exit codes of a stopped child that mean it stopped as asked (143: SIGTERM, not handled). */
const CLEAN_EXITS = new Set([0, 143]);

async function oneRun(run: number, root: string, a: Addresses, py: string): Promise<RunRecord> {
  const log = (s: string) => console.error(`run ${run + 1}/${RUNS}: ${s}`);
  log("starting the app, nginx, the ztunnels and the waypoint");
  const rec: RunRecord = {
    run: run + 1,
    idleRss: {},
    afterTrafficRss: {},
    latency: {},
    wrk: {},
    failures: {},
    exits: {},
    problems: [],
  };
  const started: (Proc | LineChild)[] = [];
  try {
    const app = await startApp(a);
    started.push(app);
    const nginx = await startNginx(`${root}/nginx`, a, run + 1);
    started.push(nginx);
    const mesh = await startWaypointPath(root, a, { logLevel: LOG_LEVEL, run: run + 1 });
    started.push(...mesh);
    const [zB, wp, zA] = mesh;
    await measureRun(rec, root, a, py, log, {
      procs: {
        direct: [app],
        nginx: [nginx, app],
        waypoint: [wp, zA, zB, app],
        l4: [zA, zB, app],
      },
      logs: { direct: [], nginx: [nginx], waypoint: [zA, wp, zB], l4: [zA, zB] },
    });
    return rec;
  } finally {
    await stopAll(started.reverse(), rec);
  }
}

const SIGNALS: Record<number, string> = { 134: "SIGABRT", 137: "SIGKILL", 139: "SIGSEGV" };

/** Stops `procs` in order, recording each exit status; one that died by itself is a problem. */
async function stopAll(procs: readonly (Proc | LineChild)[], rec: RunRecord): Promise<void> {
  let previous = "";
  for (const p of procs) {
    const gone = p instanceof Proc && p.exited;
    const code = rec.exits[p.label] = await p.stop();
    if (gone || !CLEAN_EXITS.has(code)) {
      const how = gone
        ? `had exited by itself (status ${code}${SIGNALS[code] ? `, ${SIGNALS[code]}` : ""}) ` +
          `before it was stopped${previous ? `, after ${previous} was stopped` : ""}`
        : `exited with status ${code}${SIGNALS[code] ? ` (${SIGNALS[code]})` : ""} when stopped`;
      const tail = p instanceof Proc ? `; its log (${p.log}), last lines:\n${await p.tail(8)}` : "";
      rec.problems.push(`${p.label} ${how}${tail}`);
    }
    previous = p.label;
  }
}

/** Check, warm-up, then the fixed-rate runs and wrk, each on every working path in turn. */
async function measureRun(
  rec: RunRecord,
  root: string,
  a: Addresses,
  py: string,
  log: (s: string) => void,
  o: { procs: Procs; logs: Record<PathName, Proc[]> },
): Promise<void> {
  const t = targets(a);
  const fail = async (p: PathName, what: string) => {
    const tails = await Promise.all(
      o.logs[p].map(async (x) => `--- ${x.label} (${x.log}), last lines:\n${await x.tail(30)}`),
    );
    rec.failures[p] ??= [what, ...tails].join("\n");
    log(`the ${p} path failed: ${what.split("\n")[0]}`);
  };
  const all = [...new Set(Object.values(o.procs).flat())];
  for (const p of PATHS) await check(p, t[p], fail);
  await sleep(500);
  rec.idleRss = await rssOf(all);
  const ok = () => PATHS.filter((p) => !rec.failures[p]);
  log("warming up every path (1 s of wrk each)");
  for (const p of ok()) await warmUp(p, t[p], root, fail);
  for (const n of LAT_CONNS) {
    rec.latency[n] = {};
    for (const p of ok()) {
      log(`${RATE} requests/s over ${n} connection(s), ${p}`);
      try {
        const l = rec.latency[n][p] = await latency(py, t[p], n, o.procs[p]);
        if (l.error) await fail(p, `fixed rate over ${n} connection(s): ${l.error}`);
      } catch (e) {
        await fail(p, `fixed rate over ${n} connection(s): ${(e as Error).message}`);
      }
    }
  }
  for (const p of ok()) {
    log(`maximum requests/s (wrk -t1 -c${WRK_CONNS} -d${WRK_SECONDS}s), ${p}`);
    const w = rec.wrk[p] = await runWrk(t[p], {
      path: PATH_1K,
      threads: 1,
      connections: WRK_CONNS,
      seconds: WRK_SECONDS,
      log: `${root}/wrk-${p}-run${rec.run}.log`,
    });
    const bad = w.error ?? wrkErrors(w);
    if (bad) await fail(p, `wrk: ${bad}`);
  }
  await sleep(1000);
  rec.afterTrafficRss = await rssOf(all);
}

function wrkErrors(w: WrkResult): string | undefined {
  const parts = [
    w.non2xx ? `${w.non2xx} non-2xx/3xx answers` : "",
    w.socketErrors ? `${w.socketErrorDetail}` : "",
  ].filter(Boolean);
  return parts.length ? `${parts.join("; ")} of ${w.requests} requests` : undefined;
}

/** One `GET /1k` (connection: close); a failure is recorded, not thrown. */
async function check(
  p: PathName,
  to: HostPort,
  fail: (p: PathName, what: string) => Promise<void>,
): Promise<void> {
  try {
    const r = await probe(to);
    const len = Number(r.head.match(/^content-length:\s*(\d+)/im)?.[1] ?? NaN);
    if (!r.head) await fail(p, `GET ${PATH_1K}: the connection closed without an answer`);
    else if (r.status !== 200 || (Number.isFinite(len) && len !== SIZE)) {
      await fail(p, `GET ${PATH_1K} answered:\n${r.head}\n\n${r.body.slice(0, 500)}`);
    }
  } catch (e) {
    await fail(p, `GET ${PATH_1K} failed: ${(e as Error).message}`);
  }
}

/** One second of wrk with 4 connections (JIT, pools); errors fail the path. */
async function warmUp(
  p: PathName,
  to: HostPort,
  root: string,
  fail: (p: PathName, what: string) => Promise<void>,
): Promise<void> {
  const w = await runWrk(to, {
    path: PATH_1K,
    threads: 1,
    connections: 4,
    seconds: 1,
    log: `${root}/wrk-warmup-${p}.log`,
  });
  const bad = w.error ?? wrkErrors(w);
  if (bad) await fail(p, `warm-up: ${bad}`);
}

// --- summary and report ------------------------------------------------------------

/** The processes whose usage is reported, and the path on which it is measured. */
const WATCHED: readonly [label: string, path: PathName, name: string][] = [
  ["waypoint", "waypoint", "waypoint"],
  ["ztunnel node-a", "waypoint", "ztunnel node-a (client side)"],
  ["ztunnel node-b", "waypoint", "ztunnel node-b (app side)"],
  ["nginx", "nginx", "nginx (master + 1 worker)"],
  ["app", "waypoint", "app (Deno.serve), waypoint path"],
  ["app", "direct", "app (Deno.serve), direct"],
  ["ztunnel node-a", "l4", "ztunnel node-a, L4 path (no waypoint)"],
  ["ztunnel node-b", "l4", "ztunnel node-b, L4 path (no waypoint)"],
];

/** The processes whose memory is reported. */
const MEMORY: readonly [label: string, name: string][] = [
  ["waypoint", "waypoint"],
  ["ztunnel node-a", "ztunnel node-a (client side)"],
  ["ztunnel node-b", "ztunnel node-b (app side)"],
  ["nginx", "nginx (master + 1 worker)"],
  ["app", "app (Deno.serve)"],
];

function summarize(runs: RunRecord[]) {
  const per = <T>(f: (r: RunRecord) => T) => runs.map(f);
  const byPath = (f: (r: RunRecord, p: PathName) => number | undefined) =>
    Object.fromEntries(PATHS.map((p) => [p, median(per((r) => f(r, p) ?? NaN))])) as Record<
      PathName,
      number
    >;
  const wrk = {
    requestsPerSecond: byPath((r, p) => r.wrk[p]?.requestsPerSecond),
    p50Ms: byPath((r, p) => r.wrk[p]?.p50Ms),
    p99Ms: byPath((r, p) => r.wrk[p]?.p99Ms),
  };
  const latency = Object.fromEntries(LAT_CONNS.map((n) => {
    const m = (f: (l: LatencyRun) => number) =>
      byPath((r, p) => r.latency[n]?.[p] ? f(r.latency[n][p]!) : NaN);
    const added = (f: (l: LatencyRun) => number) => {
      const v = byPath((r, p) => {
        const [l, d] = [r.latency[n]?.[p], r.latency[n]?.direct];
        return l && d ? f(l) - f(d) : NaN;
      });
      return Object.fromEntries(PATHS.map((p) => [p, r3(v[p])])) as Record<PathName, number>;
    };
    return [n, {
      p50Ms: m((l) => l.p50Ms),
      p99Ms: m((l) => l.p99Ms),
      p999Ms: m((l) => l.p999Ms),
      maxMs: m((l) => l.maxMs),
      serviceP50Ms: m((l) => l.serviceP50Ms),
      achievedRps: m((l) => l.achievedRps),
      /** In how many runs the path did not keep up with the rate. */
      fellBehind: Object.fromEntries(
        PATHS.map((p) => [p, runs.filter((r) => r.latency[n]?.[p]?.keptUp === false).length]),
      ) as Record<PathName, number>,
      sendLagP99Ms: m((l) => l.sendLagP99Ms),
      // Per run, the path's value minus direct's in the same run; then the median.
      addedP50Ms: added((l) => l.p50Ms),
      addedP99Ms: added((l) => l.p99Ms),
    }];
  }));
  const usageAt = (n: number) =>
    WATCHED.map(([label, path, name]) => {
      const u = (f: (x: Usage) => number) =>
        median(per((r) => {
          const x = r.latency[n]?.[path]?.usage[label];
          return x ? f(x) : NaN;
        }));
      return {
        label,
        path,
        name,
        vcpu: r3(u((x) => x.vcpu)),
        peakRssMiB: r1(mib(u((x) => x.peakRssBytes))),
        cpuUsPerRequest: Math.round(u((x) => x.cpuUsPerRequest)),
      };
    });
  const usage = Object.fromEntries(LAT_CONNS.map((n) => [n, usageAt(n)]));
  const memory = MEMORY.map(([label, name]) => ({
    label,
    name,
    idleRssMiB: r1(mib(median(per((r) => r.idleRss[label] ?? NaN)))),
    afterTrafficRssMiB: r1(mib(median(per((r) => r.afterTrafficRss[label] ?? NaN)))),
  }));
  return { wrk, latency, usage, memory };
}

type Summary = ReturnType<typeof summarize>;
/** The machine a run was on, and the proxies' versions. */
interface Env extends MachineEnv {
  nginx: string;
  wrk: string;
}

function report(s: Summary, env: Env): string[] {
  return [
    `Waypoint: HTTP/1.1 GET ${PATH_1K} (${SIZE} B answers), direct vs nginx vs ambit waypoint ` +
    `(ztunnel → HBONE → waypoint → HBONE → ztunnel); medians of ${RUNS} run(s)`,
    `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs; ${env.nginx}; ${env.wrk}; ` +
    `${env.python}; addresses ${env.block}`,
    `Load average (1/5/15 min) before ${env.loadBefore}, after ${env.loadAfter}: ` +
    "other work on the machine shows up in every number, most in the p99s.",
    ...hostNoiseLines(env),
    "Processes: wrk and the Python fixed-rate client, the app (Deno.serve), nginx (1 worker), two " +
    "ztunnels and the waypoint: all separate, all sharing the same CPUs. Access logs are off " +
    "(ztunnels and waypoint --access-log off, nginx access_log off); ambit logs at " +
    `${LOG_LEVEL}.`,
    "",
    ...trafficTable(s),
    ...usageTable(s, env),
  ];
}

function trafficTable(s: Summary): string[] {
  const ratio = (x: number, y: number) => r2(x / y);
  const row = (name: string, v: Record<PathName, number>, fmt = r2, ratios = true): Row => [
    name,
    fmt(v.direct),
    fmt(v.nginx),
    fmt(v.waypoint),
    ratios ? ratio(v.waypoint, v.direct) : "",
    ratios ? ratio(v.waypoint, v.nginx) : "",
    fmt(v.l4),
  ];
  const rows: Row[] = [
    ["", "direct", "nginx", "waypoint", "wp/direct", "wp/nginx", "L4 only"],
  ];
  for (const n of LAT_CONNS) {
    const l = s.latency[n];
    const what = `${RATE} req/s over ${n} keep-alive conn${n > 1 ? "s" : ""}, p50 ms`;
    rows.push(row(what, l.p50Ms, r3));
    rows.push(row("  p99 ms", l.p99Ms, r3));
    rows.push(row("  p99.9 ms", l.p999Ms, r3));
    rows.push(row("  max ms", l.maxMs, r3));
    rows.push(row("  p50 added over direct, ms", l.addedP50Ms, r3, false));
    rows.push(row("  p99 added over direct, ms", l.addedP99Ms, r3, false));
    rows.push(row("  service time p50 ms (sent → answered)", l.serviceP50Ms, r3));
    rows.push(row("  achieved req/s (measured part)", l.achievedRps, Math.round));
  }
  rows.push(
    row(
      `max requests/s, wrk -t1 -c${WRK_CONNS} ${WRK_SECONDS}s`,
      s.wrk.requestsPerSecond,
      Math.round,
    ),
  );
  rows.push(row("  wrk p50 ms", s.wrk.p50Ms, r3));
  rows.push(row("  wrk p99 ms", s.wrk.p99Ms, r3));
  const lag = LAT_CONNS.map((n) => Math.max(...PATHS.map((p) => s.latency[n].sendLagP99Ms[p])));
  const behind = LAT_CONNS.flatMap((n) =>
    PATHS.filter((p) => s.latency[n].fellBehind[p] > 0).map((p) =>
      `${p} over ${n} conn${n > 1 ? "s" : ""} in ${s.latency[n].fellBehind[p]} of ${RUNS} run(s)`
    )
  );
  return [
    table(rows),
    ...(behind.length
      ? [
        `Did not keep up with ${RATE} req/s: ${behind.join("; ")}. Its latencies grow with the ` +
        "length of the run (requests still unanswered 10 s after the last scheduled one count " +
        "with their latency so far: the percentiles are lower bounds).",
      ]
      : []),
    `The fixed-rate client sent p99 ${r3(Math.max(...lag))} ms behind schedule at worst ` +
    "(counted in the latencies, measured from the scheduled time; one request in flight per " +
    "connection, so a path slower than the interval falls behind and its latencies grow).",
    "L4 only (context, not a target): the same two ztunnels and HBONE to the same app through " +
    "a Service without the waypoint: what the waypoint hop itself adds is waypoint minus L4.",
    "",
  ];
}

function usageTable(s: Summary, env: Env): string[] {
  const rows: Row[] = [[
    "per process, during the fixed-rate runs",
    "vCPU",
    "CPU µs/request",
    "peak VmRSS MiB",
  ]];
  for (const n of LAT_CONNS) {
    const rps = s.latency[n].achievedRps;
    rows.push([
      `${RATE} req/s over ${n} conn${n > 1 ? "s" : ""} (achieved: waypoint path ${
        Math.round(rps.waypoint)
      }, nginx ${Math.round(rps.nginx)})`,
      "",
      "",
      "",
    ]);
    for (const u of s.usage[n]) {
      rows.push([`  ${u.name}`, u.vcpu, u.cpuUsPerRequest, u.peakRssMiB]);
    }
  }
  const mem: Row[] = [["VmRSS MiB", "idle", "after wrk"]];
  for (const m of s.memory) mem.push([m.name, m.idleRssMiB, m.afterTrafficRssMiB]);
  mem.push(["  (a bare Deno process that only waits)", env.bareDenoRssMiB, ""]);
  return [
    table(rows),
    "vCPU: utime+stime (/proc/<pid>/stat, nginx with its worker) per wall second of the measured " +
    "part; CPU µs/request: the same per measured answer; peak VmRSS: sampled every 100 ms.",
    "",
    table(mem),
    "idle: after start, certificates and one request per path; after wrk: at the end of the run.",
    "",
  ];
}

/**
 * The fixed-rate measurement the waypoint's CPU and memory are judged on: the
 * first connection count at which the waypoint path kept up with the rate
 * (95 %), else the one with the highest rate it reached.
 */
function judgedConns(s: Summary): { n: number; achieved: number; reached: boolean } {
  const at = LAT_CONNS.map((n) => ({ n, achieved: s.latency[n].achievedRps.waypoint }));
  const reached = at.find((x) => x.achieved >= 0.95 * RATE);
  if (reached) return { ...reached, reached: true };
  const best = at.reduce((
    b,
    x,
  ) => (x.achieved > b.achieved || !Number.isFinite(b.achieved) ? x : b));
  return { ...best, reached: false };
}

function targetsMet(s: Summary) {
  const n0 = LAT_CONNS[0];
  const added = s.latency[n0].addedP99Ms.waypoint;
  const j = judgedConns(s);
  const wp = s.usage[j.n].find((u) => u.label === "waypoint")!;
  const at = `at ${RATE} req/s over ${j.n} conn${j.n > 1 ? "s" : ""}` +
    (j.reached ? "" : ` (reached only ${Math.round(j.achieved)} req/s)`);
  return [
    {
      name: `p99 added by the waypoint path over direct at ${RATE} req/s (${n0} conn), ms` +
        (s.latency[n0].fellBehind.waypoint > 0 ? " (it fell behind: a lower bound)" : ""),
      value: r3(added),
      limit: `≤ ${ADDED_P99_TARGET_MS}`,
      met: added <= ADDED_P99_TARGET_MS,
    },
    {
      name: `waypoint path keeps up with ${RATE} req/s (best of ${LAT_CONNS.join(", ")} conns)`,
      value: Math.round(j.achieved),
      limit: `≥ ${0.95 * RATE}`,
      met: j.reached,
    },
    {
      name: `waypoint CPU ${at}, vCPU`,
      value: wp.vcpu,
      limit: `≤ ${VCPU_TARGET}`,
      met: j.reached && wp.vcpu <= VCPU_TARGET,
    },
    {
      name: `waypoint peak VmRSS ${at}, MiB`,
      value: wp.peakRssMiB,
      limit: `≤ ${RSS_TARGET_MIB}`,
      met: j.reached && wp.peakRssMiB <= RSS_TARGET_MIB,
    },
  ];
}

// --- main ----------------------------------------------------------------------------

/** Everything that went wrong (each also makes the exit status 1), with the processes' logs. */
function problemsOf(runs: readonly RunRecord[]): string[] {
  return runs.flatMap((r) => [
    ...PATHS.filter((p) => r.failures[p]).map((p) => `run ${r.run}, ${p} path: ${r.failures[p]}`),
    ...r.problems.map((x) => `run ${r.run}: ${x}`),
  ]);
}

const SETTINGS = {
  runs: RUNS,
  rate: RATE,
  seconds: SECONDS,
  warmup: WARMUP,
  latencyConnections: LAT_CONNS,
  wrkSeconds: WRK_SECONDS,
  wrkConnections: WRK_CONNS,
  responseBytes: SIZE,
  logLevel: LOG_LEVEL,
  accessLogs: "off",
};

async function main(root: string): Promise<number> {
  const a = addresses();
  const env: Env = {
    nginx: (await tool("nginx", ["-v"], "apt-get install nginx")).replace("nginx version: ", ""),
    wrk: (await tool("wrk", ["--version"], "apt-get install wrk").catch(() => "wrk"))
      .replace(/ \[.*$/, ""),
    python: await tool("/usr/bin/python3", ["--version"], "the latency client is Python 3"),
    block: a.block,
    loadBefore: await loadavg(),
    loadAfter: "",
    bareDenoRssMiB: await bareDenoRssMiB(),
  };
  await writeMesh(root, a);
  const py = `${root}/http_latency.py`;
  await Deno.writeTextFile(py, HTTP_LATENCY_CLIENT_PY);

  env.noiseBefore = await probeHostNoise();
  const runs: RunRecord[] = [];
  for (let r = 0; r < RUNS; r++) runs.push(await oneRun(r, root, a, py));
  env.loadAfter = await loadavg();
  env.noiseAfter = await probeHostNoise();

  const summary = summarize(runs);
  const targets = targetsMet(summary);
  console.log(report(summary, env).join("\n"));
  for (const t of targets) {
    console.log(`${t.met ? "OK  " : "FAIL"} ${t.name}: ${t.value} (target ${t.limit})`);
  }
  const problems = problemsOf(runs);
  for (const p of problems) console.log(`\nWARN ${p}`);

  const result = {
    at: new Date().toISOString(),
    runtime: { deno: Deno.version.deno, v8: Deno.version.v8, cpus: navigator.hardwareConcurrency },
    tools: env,
    settings: SETTINGS,
    summary,
    targets,
    problems,
    runs,
  };
  await Deno.mkdir(JSON_OUT.slice(0, JSON_OUT.lastIndexOf("/")) || ".", { recursive: true });
  await Deno.writeTextFile(JSON_OUT, JSON.stringify(result, null, 2) + "\n");
  console.log(`wrote ${JSON_OUT}${values.keep ? `; logs kept in ${root}` : ""}`);
  return targets.every((t) => t.met) && problems.length === 0 ? 0 : 1;
}

if (import.meta.main) await runBenchmark("bench-waypoint", main, values.keep);
