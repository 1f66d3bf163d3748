/**
 * A/B benchmark of the HBONE HTTP/2 layer: ambit's own (mod/hbone/h2) against
 * Deno's node:http2 (`AMBIT_HBONE_H2=node`), through two real `ambit
 * ztunnel` processes (VIP → HBONE → app), the two variants alternating in one
 * run so both see the same machine. It reports, per variant, medians of:
 * single-stream throughput and the proxies' CPU seconds per GiB (the CPU
 * figure is the robust one on a shared machine), and sequential 1 KiB echo
 * round trips (p50, p99) with the proxies' CPU per request.
 *
 *   deno run -A scripts/bench_hbone.ts [--runs 3] [--bytes 256MiB] [--echoes 4000]
 *
 * `deno task bench:dataplane` remains the benchmark against direct TCP and
 * stunnel; this one isolates the HTTP/2 implementation.
 *
 * @module
 */
import net from "node:net";
import { parseArgs } from "node:util";
import { AMBIT_RUN_FLAGS } from "../mod/permissions.ts";
import { addresses, PORTS, writeMesh } from "./_bench_paths.ts";
import { BENCH_APPS, benchClient, cpuSeconds, LineChild } from "./_bench_proc.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    bytes: { type: "string", default: "256MiB" },
    echoes: { type: "string", default: "4000" },
  },
});
const RUNS = Number(values.runs);
const MIB = Number(values.bytes.replace(/MiB$/i, ""));
const ECHOES = Number(values.echoes);
if (!(RUNS >= 1) || !(MIB >= 1) || !(ECHOES >= 10)) {
  throw new RangeError("--runs, --bytes (in MiB) and --echoes must be positive numbers");
}

type Variant = "ambit-h2" | "node-http2";

interface Sample {
  mibPerSecond: number;
  cpuPerGiB: number;
  rttP50: number;
  rttP99: number;
  cpuUsPerEcho: number;
}

/** Starts node-b's and node-a's ztunnels on `variant`; resolves once both hold certificates. */
async function startPair(dir: string, variant: Variant, a = addresses()) {
  const procs: Deno.ChildProcess[] = [];
  for (const [node, ip] of [["node-b", a.nodeB], ["node-a", a.nodeA]]) {
    procs.push(
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...AMBIT_RUN_FLAGS,
          new URL("../main.ts", import.meta.url).pathname,
          "ztunnel",
          ...["--config", `${dir}/mesh`, "--node", node, "--ca-dir", `${dir}/ca`],
          ...["--admin", `${ip}:15000`, "--dns", "off", "--socks5", "off", "--http-proxy", "off"],
          ...["--log-level", "error"],
        ],
        env: { AMBIT_HBONE_H2: variant === "node-http2" ? "node" : "ambit" },
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn(),
    );
    const deadline = Date.now() + 30_000;
    for (let ok = false; !ok;) {
      if (Date.now() > deadline) throw new Error(`ztunnel ${node} got no certificates in 30 s`);
      try {
        const r = await fetch(`http://${ip}:15000/certs`, { signal: AbortSignal.timeout(2000) });
        const b = await r.json() as { identities: { state: string }[] };
        ok = b.identities.length > 0 && b.identities.every((c) => c.state === "valid");
      } catch { /* not up yet */ }
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
  }
  return procs;
}

/** Sequential 1 KiB echoes; a 1 ms pause every 4 keeps it from being a pure spin. */
async function echoes(host: string, port: number, count: number): Promise<number[]> {
  const s = net.connect({ host, port, noDelay: true });
  await new Promise((r, j) => s.once("connect", r).once("error", j));
  const msg = new Uint8Array(1024).fill(0x78);
  const out: number[] = [];
  let got = 0;
  let done: () => void = () => {};
  s.on("data", (d: Uint8Array) => {
    got += d.length;
    if (got >= msg.length) {
      got -= msg.length;
      done();
    }
  });
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await new Promise<void>((r) => {
      done = r;
      s.write(msg);
    });
    out.push(performance.now() - t);
    if (i % 4 === 0) await new Promise((r) => setTimeout(r, 1));
  }
  s.destroy();
  return out;
}

/** CPU seconds used so far by `ps`, together. */
async function cpu(ps: Deno.ChildProcess[]): Promise<number> {
  let n = 0;
  for (const p of ps) n += (await cpuSeconds(p.pid)) ?? NaN;
  return n;
}

const quantile = (v: number[], q: number) =>
  [...v].sort((x, y) => x - y)[Math.floor(q * (v.length - 1))];
const median = (v: number[]) => quantile(v, 0.5);

async function sample(dir: string, variant: Variant): Promise<Sample> {
  const a = addresses();
  const procs = await startPair(dir, variant, a);
  try {
    const sink = `${a.vip}:${PORTS.vipSink}`;
    await benchClient("throughput", ["--to", sink, "--bytes", String(16 << 20)], 60_000);
    const c0 = await cpu(procs);
    const t = await benchClient<{ mibPerSecond: number }>(
      "throughput",
      ["--to", sink, "--bytes", String(MIB << 20)],
      300_000,
    );
    const c1 = await cpu(procs);
    await echoes(a.vip, PORTS.vipEcho, 300);
    const rtt = await echoes(a.vip, PORTS.vipEcho, ECHOES);
    const c2 = await cpu(procs);
    return {
      mibPerSecond: t.mibPerSecond,
      cpuPerGiB: (c1 - c0) / (MIB / 1024),
      rttP50: quantile(rtt, 0.5),
      rttP99: quantile(rtt, 0.99),
      cpuUsPerEcho: (c2 - c1) * 1e6 / ECHOES,
    };
  } finally {
    for (const p of procs) {
      try {
        p.kill("SIGTERM");
      } catch { /* gone */ }
    }
    for (const p of procs) await p.status;
  }
}

const dir = await Deno.makeTempDir({ prefix: "ambit-bench-hbone-" });
const a = addresses();
await writeMesh(dir, a);
const app = new LineChild("app", Deno.execPath(), [
  "run",
  "--allow-net",
  BENCH_APPS,
  "app",
  ...["--echo", `${a.app}:${PORTS.echo}`, "--sink", `${a.app}:${PORTS.sink}`],
]);
const samples: Record<Variant, Sample[]> = { "ambit-h2": [], "node-http2": [] };
try {
  await app.line(30_000);
  const direct = await echoes(a.app, PORTS.echo, ECHOES);
  for (let run = 1; run <= RUNS; run++) {
    for (
      const v of (run % 2 ? ["ambit-h2", "node-http2"] : ["node-http2", "ambit-h2"]) as Variant[]
    ) {
      const s = await sample(dir, v);
      samples[v].push(s);
      console.error(`run ${run}/${RUNS} ${v}: ${JSON.stringify(s)}`);
    }
  }
  const f = (n: number, d = 2) => n.toFixed(d).padStart(8);
  console.log(
    `HBONE HTTP/2 A/B, two ambit ztunnels, medians of ${RUNS} run(s); ${MIB} MiB stream, ` +
      `${ECHOES} sequential 1 KiB echoes (direct TCP: p50 ${median(direct).toFixed(3)} ms)`,
  );
  console.log("variant       MiB/s  CPU s/GiB  echo p50 ms  echo p99 ms  CPU µs/echo");
  for (const v of ["ambit-h2", "node-http2"] as Variant[]) {
    const m = (k: keyof Sample) => median(samples[v].map((s) => s[k]));
    console.log(
      `${v.padEnd(10)}${f(m("mibPerSecond"), 0)}${f(m("cpuPerGiB"))}   ${f(m("rttP50"), 3)}    ` +
        `${f(m("rttP99"), 3)}     ${f(m("cpuUsPerEcho"), 0)}`,
    );
  }
} finally {
  await app.stop();
  await Deno.remove(dir, { recursive: true });
}
