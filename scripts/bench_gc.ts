/**
 * Garbage per request (see ARCHITECTURE.md, "Allocation and GC"): starts the
 * waypoint benchmark's processes (app, two ztunnels, the waypoint) with V8's
 * `--trace-gc-nvp`, loads one path with `wrk` at saturation, and reads from
 * each ambit process's log what V8 allocated and promoted to the old
 * generation per request served, and how many young and full collections it
 * ran. Per-request objects should die young: promotion in the tens of bytes
 * per request, not kilobytes, and no full collection in a short run.
 *
 *   deno run -A scripts/bench_gc.ts [--path waypoint|l4] [--seconds 5]
 *     [--connections 16] [--max-promoted 1024] [--keep]
 *
 * Exits 1 when a process promotes more than --max-promoted bytes per
 * request. Needs wrk, and root (or a low net.ipv4.ip_unprivileged_port_start)
 * for the Services' port 80.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { runBenchmark } from "./_bench_proc.ts";
import { parseNum, table, tool } from "./_bench_util.ts";
import {
  addresses,
  PATH_1K,
  probe,
  startApp,
  startWaypointPath,
  targets,
  writeMesh,
} from "./_bench_waypoint_paths.ts";
import { runWrk } from "./_bench_waypoint_wrk.ts";

const { values } = parseArgs({
  options: {
    path: { type: "string", default: "waypoint" },
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "16" },
    "max-promoted": { type: "string", default: "1024" },
    keep: { type: "boolean", default: false },
  },
});
const PATH = values.path;
if (PATH !== "waypoint" && PATH !== "l4") {
  console.error(`bench-gc: --path takes waypoint or l4, not "${PATH}"`);
  Deno.exit(2);
}
const SECONDS = parseNum(values.seconds, "seconds", 1, 600);
const CONNS = parseNum(values.connections, "connections", 1, 1000);
const MAX_PROMOTED = parseNum(values["max-promoted"], "max-promoted", 0, 1 << 30);

/** Bytes allocated and promoted by young collections, and the count of each kind, in a `--trace-gc-nvp` log. */
export function gcTotals(log: string): {
  allocated: number;
  promoted: number;
  young: number;
  full: number;
} {
  const t = { allocated: 0, promoted: 0, young: 0, full: 0 };
  for (const m of log.matchAll(/ GC: (\{.*\})\s*$/gm)) {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(m[1]);
    } catch {
      continue; // a line cut by another write
    }
    if (j.gc === "s") {
      t.young++;
      t.allocated += Number(j.allocated ?? 0);
      t.promoted += Number(j.promoted ?? 0);
    } else t.full++;
  }
  return t;
}

async function main(root: string): Promise<number> {
  await tool("wrk", ["--version"], "apt-get install wrk").catch(() => "wrk");
  const a = addresses();
  await writeMesh(root, a);
  const app = await startApp(a);
  const procs = await startWaypointPath(root, a, {
    logLevel: "info",
    run: 1,
    v8Flags: ["--trace-gc-nvp"],
  });
  const to = targets(a)[PATH as "waypoint" | "l4"];
  const check = await probe(to);
  if (check.status !== 200) throw new Error(`the ${PATH} path answered ${check.status}`);
  // Warm up (JIT, pools), then measure from here on in every log.
  await runWrk(to, {
    path: PATH_1K,
    threads: 1,
    connections: CONNS,
    seconds: 2,
    log: `${root}/wrk-warmup.log`,
  });
  const logs = procs.map((p) => `${root}/${p.label.replace(" ", "-")}-run1.log`);
  const from = await Promise.all(logs.map(async (l) => (await Deno.readTextFile(l)).length));
  const w = await runWrk(to, {
    path: PATH_1K,
    threads: 1,
    connections: CONNS,
    seconds: SECONDS,
    log: `${root}/wrk.log`,
  });
  await new Promise((r) => setTimeout(r, 300));
  const rows: (string | number)[][] = [
    ["process", "allocated B/request", "promoted B/request", "young GCs", "full GCs"],
  ];
  let worst = 0;
  for (const [i, p] of procs.entries()) {
    const t = gcTotals((await Deno.readTextFile(logs[i])).slice(from[i]));
    const per = (n: number) => w.requests > 0 ? Math.round(n / w.requests) : NaN;
    if (PATH === "l4" && p.label === "waypoint") continue; // not on the path
    worst = Math.max(worst, per(t.promoted));
    rows.push([p.label, per(t.allocated), per(t.promoted), t.young, t.full]);
  }
  console.log(
    `GC per request, ${PATH} path, wrk -t1 -c${CONNS} -d${SECONDS}s: ${w.requests} requests ` +
      `(${
        Math.round(w.requestsPerSecond)
      }/s); V8 --trace-gc-nvp, 1 MiB young generation (ambit's flag)`,
  );
  console.log(table(rows));
  for (const p of procs.reverse()) await p.stop();
  await app.stop();
  const ok = worst <= MAX_PROMOTED;
  console.log(
    `${
      ok ? "OK  " : "FAIL"
    } promoted per request, worst process: ${worst} B (limit ${MAX_PROMOTED})`,
  );
  return ok ? 0 : 1;
}

if (import.meta.main) await runBenchmark("bench-gc", main, values.keep);
