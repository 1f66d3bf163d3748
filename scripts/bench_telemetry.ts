/**
 * The cost of TCP metrics on the data path: single-stream throughput and
 * new connections per second through two ztunnels (client → node-a's
 * ztunnel on a Service VIP → HBONE → node-b's ztunnel → app) with metrics
 * on (the default) and with `--metrics off`, alternating in the same run
 * so both see the same machine. Medians over --runs; the ratio off/on is
 * the cost. Writes JSON (default .bench/telemetry.json).
 *
 *   deno run -A scripts/bench_telemetry.ts [--runs 5] [--bytes 256MiB] [--conn-seconds 3]
 *
 * Needs no root; the paths and apps are those of bench_dataplane.ts.
 */
import { parseArgs } from "node:util";
import { addresses, PORTS, startAmbitPair, targets, writeMesh } from "./_bench_paths.ts";
import { BENCH_APPS, benchClient, LineChild, stopAllChildren } from "./_bench_proc.ts";
import { median, r2 } from "./_bench_util.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    bytes: { type: "string", default: "256" },
    "conn-seconds": { type: "string", default: "3" },
    json: { type: "string", default: ".bench/telemetry.json" },
  },
});
const RUNS = Number(values.runs);
const BYTES = Number(values.bytes) * 2 ** 20;
const CONN_SECONDS = Number(values["conn-seconds"]);
const APPS = BENCH_APPS;

async function main(root: string): Promise<void> {
  const a = addresses();
  await writeMesh(root, a);
  const app = new LineChild("app", Deno.execPath(), [
    "run",
    "--allow-net",
    APPS,
    "app",
    "--echo",
    `${a.app}:${PORTS.echo}`,
    "--sink",
    `${a.app}:${PORTS.sink}`,
  ]);
  if (await app.line(30_000) !== "ready") throw new Error("the app did not start");
  const t = targets(a).ambit;
  const results: Record<"on" | "off", { mibPerSecond: number[]; connsPerSecond: number[] }> = {
    on: { mibPerSecond: [], connsPerSecond: [] },
    off: { mibPerSecond: [], connsPerSecond: [] },
  };
  for (let run = 0; run < RUNS; run++) {
    // Alternate which goes first, so drift favours neither.
    const order = run % 2 === 0 ? (["on", "off"] as const) : (["off", "on"] as const);
    for (const mode of order) {
      const procs = await startAmbitPair(root, a, {
        logLevel: "info",
        run: run + 1,
        metrics: mode === "on",
      });
      try {
        // Warm up: JIT, pool, certificates.
        await benchClient("throughput", [
          "--to",
          `${t.sink.hostname}:${t.sink.port}`,
          "--bytes",
          String(32 << 20),
          "--chunk",
          String(128 << 10),
          "--timeout-ms",
          "60000",
        ], 90_000);
        const tp = await benchClient<{ mibPerSecond: number; complete?: boolean; error?: string }>(
          "throughput",
          [
            "--to",
            `${t.sink.hostname}:${t.sink.port}`,
            "--bytes",
            String(BYTES),
            "--chunk",
            String(128 << 10),
            "--timeout-ms",
            "120000",
          ],
          150_000,
        );
        if (tp.error || !tp.complete) throw new Error(`throughput (${mode}): ${tp.error}`);
        const cr = await benchClient<{ perSecond: number; errors: number }>("connrate", [
          "--to",
          `${t.echo.hostname}:${t.echo.port}`,
          "--seconds",
          String(CONN_SECONDS),
          "--concurrency",
          "16",
          "--size",
          "1024",
        ], (CONN_SECONDS + 30) * 1000);
        results[mode].mibPerSecond.push(r2(tp.mibPerSecond));
        results[mode].connsPerSecond.push(Math.round(cr.perSecond));
        console.error(
          `run ${run + 1}/${RUNS} metrics ${mode}: ${r2(tp.mibPerSecond)} MiB/s, ${
            Math.round(cr.perSecond)
          } conns/s`,
        );
      } finally {
        for (const p of procs.reverse()) await p.stop();
      }
    }
  }
  await app.stop();
  const summary = {
    on: {
      mibPerSecond: median(results.on.mibPerSecond),
      connsPerSecond: median(results.on.connsPerSecond),
    },
    off: {
      mibPerSecond: median(results.off.mibPerSecond),
      connsPerSecond: median(results.off.connsPerSecond),
    },
  };
  const ratio = {
    throughputOnOverOff: r2(summary.on.mibPerSecond / summary.off.mibPerSecond),
    connRateOnOverOff: r2(summary.on.connsPerSecond / summary.off.connsPerSecond),
  };
  console.log(`metrics  throughput MiB/s  new conns/s   (medians of ${RUNS} runs)`);
  console.log(
    `on       ${String(summary.on.mibPerSecond).padEnd(17)} ${summary.on.connsPerSecond}`,
  );
  console.log(
    `off      ${String(summary.off.mibPerSecond).padEnd(17)} ${summary.off.connsPerSecond}`,
  );
  console.log(
    `on/off   ${String(ratio.throughputOnOverOff).padEnd(17)} ${ratio.connRateOnOverOff}`,
  );
  const out = values.json!;
  await Deno.mkdir(out.slice(0, out.lastIndexOf("/")) || ".", { recursive: true });
  await Deno.writeTextFile(
    out,
    JSON.stringify({ at: new Date().toISOString(), runs: results, summary, ratio }, null, 2) +
      "\n",
  );
  console.log(`wrote ${out}`);
}

if (import.meta.main) {
  const root = await Deno.makeTempDir({ prefix: "ambit-bench-telemetry-" });
  let code = 0;
  try {
    await main(root);
  } catch (e) {
    console.error(`bench_telemetry: ${(e as Error).stack ?? e}`);
    code = 1;
  } finally {
    await stopAllChildren();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
  Deno.exit(code);
}
