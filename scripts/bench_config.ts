/**
 * Config scale benchmark. Acceptance: a generated config with 2,000
 * workloads, 500 services and 500 policies validates and compiles in under
 * 1 s, and a reload of it does not stall other work for more than 50 ms.
 *
 * 1. Validate + compile: in a fresh process per layout, the sources are read
 *    once, then compileSources() runs N times (the first run is cold: no JIT
 *    warm-up), then the pipeline phases N times more for a breakdown; `ambit validate --strict` is timed end to end as a
 *    subprocess, next to `ambit version` (the runtime's and CLI's startup).
 *    Both for a directory of files and for one big file.
 * 2. Reload stall: a child process opens a ConfigStore on the directory
 *    (file watching, worker compile, as a node does), runs a 1 ms heartbeat
 *    timer recording how late each tick is (the event-loop stall), and edits
 *    a file K times (a service port, alternating, so each is a real change),
 *    awaiting each applied reload. The same heartbeat then runs, store open
 *    and idle, for as long again (the baseline). Repeated with
 *    `worker: false` (compile on the main thread) to show what the worker
 *    saves.
 * 3. Memory of the child after loading and after the reloads
 *    (Deno.memoryUsage() after a full GC).
 *
 * Prints a table, writes .bench/config.json, and exits 1 when a target is
 * missed (every in-process compile < 1 s; largest stall with the worker < 50 ms).
 *
 *   deno run -A scripts/bench_config.ts [--runs 7] [--reloads 10]
 *     [--workloads 2000 --services 500 --policies 500 --nodes 20 --namespaces 20]
 */
import { parseArgs } from "node:util";
import { compileSources } from "../mod/config/compile.ts";
import { checkReferences, indexResources } from "../mod/config/crossref.ts";
import { parseSources, readSources } from "../mod/config/load.ts";
import { buildSnapshot } from "../mod/config/snapshot.ts";
import { ConfigStore } from "../mod/config/store.ts";
import {
  ACCEPTANCE,
  assertScaleConfigCompiles,
  type ScaleOptions,
  writeScaleConfig,
} from "./gen_scale_config.ts";

/** Targets from the acceptance criteria. */
const COMPILE_TARGET_MS = 1000;
const STALL_TARGET_MS = 50;
/** The file and service the reload benchmark edits (service 1 is the first in ns-1.yaml). */
const EDITED_FILE = "ns-1.yaml";
const EDITED_SERVICE = "ns-1/svc-1";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "7" },
    reloads: { type: "string", default: "10" },
    workloads: { type: "string" },
    services: { type: "string" },
    policies: { type: "string" },
    nodes: { type: "string" },
    namespaces: { type: "string" },
    // Internal: run one reload-stall measurement in this (child) process.
    child: { type: "string" },
    dir: { type: "string" },
  },
});
const RUNS = Number(values.runs);
const RELOADS = Number(values.reloads);

// --- statistics -------------------------------------------------------------

const sorted = (xs: readonly number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: readonly number[]) => sorted(xs)[Math.floor(xs.length / 2)];
const p99 = (xs: readonly number[]) =>
  sorted(xs)[Math.min(xs.length - 1, Math.floor(xs.length * 0.99))];
const round = (x: number) => Math.round(x * 10) / 10;
const mib = (bytes: number) => round(bytes / 1024 / 1024);

interface Spread {
  medianMs: number;
  minMs: number;
  maxMs: number;
  firstMs: number;
}
const spread = (xs: number[]): Spread => ({
  medianMs: round(median(xs)),
  minMs: round(Math.min(...xs)),
  maxMs: round(Math.max(...xs)),
  firstMs: round(xs[0]),
});

// --- 1. validate + compile ---------------------------------------------------

interface CompileBench {
  files: number;
  bytes: number;
  resources: number;
  compile: Spread;
  /** Medians per pipeline phase, from separate runs. */
  phasesMedianMs: { parse: number; crossref: number; snapshot: number };
}

async function benchCompile(dir: string): Promise<CompileBench> {
  const sources = await readSources(dir);
  const times: number[] = [];
  let resources = 0;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = await compileSources(sources);
    times.push(performance.now() - t0);
    if (!r.snapshot || r.issues.length > 0) {
      throw new Error(`generated config does not compile cleanly: ${r.issues[0]?.message}`);
    }
    resources = r.snapshot.resources.length;
  }
  // The same pipeline as compileSourcesSync, phase by phase.
  const parse: number[] = [], crossref: number[] = [], snapshot: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const parsed = parseSources(sources);
    const t1 = performance.now();
    const index = indexResources(parsed.resources, parsed.issues, parsed.lineOf);
    checkReferences(index, parsed.issues, parsed.lineOf);
    const t2 = performance.now();
    const snap = buildSnapshot(index, parsed.issues, parsed.lineOf);
    const t3 = performance.now();
    if (!snap) throw new Error("generated config does not compile");
    parse.push(t1 - t0);
    crossref.push(t2 - t1);
    snapshot.push(t3 - t2);
  }
  return {
    files: sources.length,
    bytes: sources.reduce((n, s) => n + new TextEncoder().encode(s.text).length, 0),
    resources,
    compile: spread(times),
    phasesMedianMs: {
      parse: round(median(parse)),
      crossref: round(median(crossref)),
      snapshot: round(median(snapshot)),
    },
  };
}

const MAIN_TS = new URL("../main.ts", import.meta.url).pathname;

/** Runs `ambit <args>` as `deno task bench` would find it; returns wall time. */
async function timeCli(args: string[], expect?: string): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN_TS, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t0;
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success || (expect && !text.includes(expect))) {
    throw new Error(
      `ambit ${args.join(" ")} failed (exit ${out.code}):\n${text}${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return round(ms);
}

// --- 2 + 3. reload stall and memory (child process) ---------------------------

interface StallStats {
  ticks: number;
  maxStallMs: number;
  p99StallMs: number;
  /** Ticks more than 10 ms late. */
  over10ms: number;
}

interface Memory {
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
}

/** What one child reports. */
interface ChildResult {
  mode: "worker" | "main-thread";
  reloads: number;
  reloadMs: Spread;
  /** Wall time of the whole reload sequence (edits, debounce, compiles). */
  windowMs: number;
  duringReloads: StallStats;
  baselineNoReloads: StallStats;
  memory: { beforeLoad: Memory; afterLoad: Memory; afterReloads: Memory };
}

/** Runs a 1 ms heartbeat while `work` runs; returns how late each tick was. */
async function heartbeat(work: () => Promise<void>): Promise<number[]> {
  const late: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    late.push(Math.max(0, now - last - 1));
    last = now;
  }, 1);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return late;
}

const stallStats = (late: number[]): StallStats => ({
  ticks: late.length,
  maxStallMs: round(Math.max(...late)),
  p99StallMs: round(p99(late)),
  over10ms: late.filter((x) => x > 10).length,
});

function memory(): Memory {
  (globalThis as { gc?: () => void }).gc?.();
  const m = Deno.memoryUsage();
  return {
    rssMiB: mib(m.rss),
    heapUsedMiB: mib(m.heapUsed),
    heapTotalMiB: mib(m.heapTotal),
    externalMiB: mib(m.external),
  };
}

async function childReloadStall(dir: string, mode: ChildResult["mode"]): Promise<ChildResult> {
  const file = `${dir}/${EDITED_FILE}`;
  const original = await Deno.readTextFile(file);
  const edited = original.replace("    port: 80\n", "    port: 8000\n");
  if (edited === original) throw new Error(`no "port: 80" to edit in ${file}`);
  const portOf = (s: ConfigStore) => s.current.services.get(EDITED_SERVICE)?.ports[0].port;

  const beforeLoad = memory();
  const store = await ConfigStore.open(dir, { worker: mode === "worker" });
  try {
    const afterLoad = memory();
    if (portOf(store) !== 80) throw new Error(`${EDITED_SERVICE} is not the first service edited`);
    const reloadMs: number[] = [];
    const t0 = performance.now();
    const during = await heartbeat(async () => {
      for (let i = 0; i < RELOADS; i++) {
        const port = i % 2 === 0 ? 8000 : 80;
        const applied = store.nextReload((o) => o.applied && portOf(store) === port, 60_000);
        await Deno.writeTextFile(file, i % 2 === 0 ? edited : original);
        const o = await applied;
        reloadMs.push(o.durationMs);
      }
    });
    const windowMs = performance.now() - t0;
    if (store.generation !== 1 + RELOADS) {
      throw new Error(`expected generation ${1 + RELOADS}, got ${store.generation}`);
    }
    const afterReloads = memory();
    const baseline = await heartbeat(() => new Promise((r) => setTimeout(r, windowMs)));
    return {
      mode,
      reloads: RELOADS,
      reloadMs: spread(reloadMs),
      windowMs: round(windowMs),
      duringReloads: stallStats(during),
      baselineNoReloads: stallStats(baseline),
      memory: { beforeLoad, afterLoad, afterReloads },
    };
  } finally {
    await store.close();
    await Deno.writeTextFile(file, original);
  }
}

type ChildMode = "compile" | ChildResult["mode"];

/** Runs one measurement in a fresh process (a cold isolate, its own heap). */
async function runChild(mode: "compile", dir: string): Promise<CompileBench>;
async function runChild(mode: ChildResult["mode"], dir: string): Promise<ChildResult>;
async function runChild(mode: ChildMode, dir: string): Promise<CompileBench | ChildResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--v8-flags=--expose-gc",
      new URL(import.meta.url).pathname,
      "--child",
      mode,
      "--dir",
      dir,
      "--runs",
      String(RUNS),
      "--reloads",
      String(RELOADS),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`benchmark child (${mode}) failed, exit ${out.code}`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

// --- report -------------------------------------------------------------------

function table(rows: (string | number)[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  return rows.map((r, i) => {
    const line = r.map((v, c) =>
      c === 0 ? String(v).padEnd(widths[c]) : String(v).padStart(widths[c])
    ).join("  ");
    return i === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("  ")}` : line;
  }).join("\n");
}

async function main(): Promise<number> {
  const sizes: ScaleOptions = { ...ACCEPTANCE };
  for (const k of ["workloads", "services", "policies", "nodes", "namespaces"] as const) {
    if (values[k] !== undefined) sizes[k] = Number(values[k]);
  }
  const root = await Deno.makeTempDir({ prefix: "ambit-bench-config-" });
  try {
    const multiDir = `${root}/multi`, singleDir = `${root}/single`;
    await writeScaleConfig(multiDir, sizes);
    await writeScaleConfig(singleDir, { ...sizes, singleFile: true });
    await assertScaleConfigCompiles(multiDir, sizes);
    await assertScaleConfigCompiles(singleDir, sizes);

    console.error("compiling in-process…");
    const multi = await runChild("compile", multiDir);
    const single = await runChild("compile", singleDir);
    console.error("timing the CLI…");
    const cli = {
      versionMs: await timeCli(["version"]),
      validateMultiMs: await timeCli(["validate", "--strict", multiDir], ": valid"),
      validateSingleMs: await timeCli(["validate", "--strict", singleDir], ": valid"),
    };
    console.error(`reloading ${RELOADS} times with the worker, then on the main thread…`);
    const worker = await runChild("worker", multiDir);
    const mainThread = await runChild("main-thread", multiDir);

    const compileWorstMs = Math.max(multi.compile.maxMs, single.compile.maxMs);
    const result = {
      at: new Date().toISOString(),
      runtime: { deno: Deno.version.deno, v8: Deno.version.v8, os: Deno.build.os },
      cpus: navigator.hardwareConcurrency,
      sizes,
      runs: RUNS,
      compile: { multiFile: multi, singleFile: single },
      cli,
      reload: {
        worker,
        mainThread,
        workerVsBaseline: {
          maxRatio: round(
            worker.duringReloads.maxStallMs / Math.max(worker.baselineNoReloads.maxStallMs, 0.1),
          ),
          p99Ratio: round(
            worker.duringReloads.p99StallMs / Math.max(worker.baselineNoReloads.p99StallMs, 0.1),
          ),
        },
      },
      targets: {
        compileMs: { limit: COMPILE_TARGET_MS, worst: compileWorstMs },
        stallMs: { limit: STALL_TARGET_MS, worst: worker.duringReloads.maxStallMs },
        compileMet: compileWorstMs < COMPILE_TARGET_MS,
        stallMet: worker.duringReloads.maxStallMs < STALL_TARGET_MS,
      },
    };

    const kib = (b: number) => `${Math.round(b / 1024)} KiB`;
    console.log(
      `\nConfig scale: ${sizes.workloads} workloads, ${sizes.services} services, ` +
        `${sizes.policies} policies, ${sizes.nodes} nodes, ${sizes.namespaces} namespaces ` +
        `(${multi.resources} resources); Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs\n`,
    );
    const c = (b: CompileBench) => [
      b.compile.medianMs,
      b.compile.minMs,
      b.compile.maxMs,
      b.compile.firstMs,
      `${b.phasesMedianMs.parse}/${b.phasesMedianMs.crossref}/${b.phasesMedianMs.snapshot}`,
    ];
    console.log(table([
      [
        `validate+compile, ms (${RUNS} runs)`,
        "median",
        "min",
        "max",
        "first",
        "parse/xref/snapshot",
      ],
      [`directory (${multi.files} files, ${kib(multi.bytes)})`, ...c(multi)],
      [`one file (${kib(single.bytes)})`, ...c(single)],
    ]));
    console.log();
    console.log(table([
      ["CLI end to end (subprocess), ms", "wall"],
      ["ambit version (startup only)", cli.versionMs],
      ["ambit validate --strict <directory>", cli.validateMultiMs],
      ["ambit validate --strict <one file>", cli.validateSingleMs],
    ]));
    console.log();
    const s = (x: StallStats) => [x.maxStallMs, x.p99StallMs, x.over10ms, x.ticks];
    console.log(table([
      ["event-loop stall (1 ms heartbeat), ms", "max", "p99", ">10ms", "ticks", "reload median"],
      [`${RELOADS} reloads, worker compile`, ...s(worker.duringReloads), worker.reloadMs.medianMs],
      ["  baseline: idle, same duration", ...s(worker.baselineNoReloads), "-"],
      [
        `${RELOADS} reloads, main-thread compile`,
        ...s(mainThread.duringReloads),
        mainThread.reloadMs.medianMs,
      ],
      ["  baseline: idle, same duration", ...s(mainThread.baselineNoReloads), "-"],
    ]));
    console.log(
      `worker stall vs baseline: max ×${result.reload.workerVsBaseline.maxRatio}, ` +
        `p99 ×${result.reload.workerVsBaseline.p99Ratio}\n`,
    );
    const m = (x: Memory) => [x.rssMiB, x.heapUsedMiB, x.heapTotalMiB, x.externalMiB];
    console.log(table([
      ["memory after GC, MiB", "rss", "heapUsed", "heapTotal", "external"],
      ["worker: before loading", ...m(worker.memory.beforeLoad)],
      ["worker: config loaded", ...m(worker.memory.afterLoad)],
      [`worker: after ${RELOADS} reloads`, ...m(worker.memory.afterReloads)],
      ["main thread: config loaded", ...m(mainThread.memory.afterLoad)],
      [`main thread: after ${RELOADS} reloads`, ...m(mainThread.memory.afterReloads)],
    ]));
    console.log();

    const out = new URL("../.bench/config.json", import.meta.url).pathname;
    await Deno.mkdir(new URL("../.bench/", import.meta.url).pathname, { recursive: true });
    await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");
    console.log(`wrote ${out}`);

    let failed = false;
    if (result.targets.compileMet) {
      console.log(
        `OK   validate+compile: worst run ${compileWorstMs} ms < ${COMPILE_TARGET_MS} ms`,
      );
    } else {
      failed = true;
      console.error(
        `FAIL validate+compile took ${compileWorstMs} ms in the worst run; the target is under ${COMPILE_TARGET_MS} ms`,
      );
    }
    if (result.targets.stallMet) {
      console.log(
        `OK   reload stall: worst ${worker.duringReloads.maxStallMs} ms < ${STALL_TARGET_MS} ms`,
      );
    } else {
      failed = true;
      console.error(
        `FAIL a reload stalled the event loop for ${worker.duringReloads.maxStallMs} ms; the target is under ${STALL_TARGET_MS} ms`,
      );
    }
    return failed ? 1 : 0;
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

if (import.meta.main) {
  const { child, dir } = values;
  if (child !== undefined) {
    if (!["compile", "worker", "main-thread"].includes(child) || !dir) {
      console.error("--child compile|worker|main-thread needs --dir");
      Deno.exit(2);
    }
    const r = child === "compile"
      ? await benchCompile(dir)
      : await childReloadStall(dir, child as ChildResult["mode"]);
    console.log(JSON.stringify(r));
  } else {
    Deno.exitCode = await main();
  }
}
