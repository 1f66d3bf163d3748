/**
 * The host's own noise, measured beside a benchmark so its p99s can be read
 * against it: on a VM, the hypervisor can stop a vCPU for milliseconds (other
 * guests, memory scanning), and every process on the path waits. No proxy can
 * add less p99 latency than the host takes away.
 *
 * The probe is one Python process per CPU, pinned to it, that sleeps 1 ms at
 * a time for a few seconds on an otherwise idle machine and records how late
 * each wake-up came. A wake-up more than 1 ms late means that CPU did not run
 * the probe when its timer fired: the vCPU was not scheduled, or something
 * else held it.
 *
 * @module
 */
import { r3 } from "./_bench_util.ts";

/** What the probe saw, over all CPUs. */
export interface HostNoise {
  /** Seconds measured per CPU. */
  readonly seconds: number;
  /** CPUs probed. */
  readonly cpus: number;
  /** Wake-ups in all. */
  readonly wakes: number;
  /** Median lateness of a wake-up, ms. */
  readonly p50LateMs: number;
  /** 99th percentile lateness, ms. */
  readonly p99LateMs: number;
  /** The latest wake-up, ms. */
  readonly maxLateMs: number;
  /** Wake-ups more than 1 ms late, per second per CPU. */
  readonly stallsPerSecond: number;
}

const PROBE_PY = String.raw`
import json, os, sys, time
cpu, seconds = int(sys.argv[1]), float(sys.argv[2])
try:
    os.sched_setaffinity(0, {cpu})
except OSError:
    pass
late = []
end = time.perf_counter() + seconds
while True:
    t = time.perf_counter()
    if t >= end:
        break
    time.sleep(0.001)
    late.append(time.perf_counter() - t - 0.001)
print(json.dumps(late))
`;

/**
 * Runs the probe on every CPU at once for `seconds`. Call it while the
 * benchmark's own processes are idle.
 */
export async function probeHostNoise(seconds = 3): Promise<HostNoise> {
  const cpus = Math.max(1, navigator.hardwareConcurrency || 1);
  const outs = await Promise.all(
    Array.from({ length: cpus }, (_, cpu) =>
      new Deno.Command("python3", {
        args: ["-c", PROBE_PY, String(cpu), String(seconds)],
        stdout: "piped",
        stderr: "piped",
      }).output()),
  );
  const late: number[] = [];
  for (const o of outs) {
    if (!o.success) {
      throw new Error(`host noise probe failed: ${new TextDecoder().decode(o.stderr).trim()}`);
    }
    for (const s of JSON.parse(new TextDecoder().decode(o.stdout)) as number[]) late.push(s * 1000);
  }
  late.sort((a, b) => a - b);
  const at = (q: number) =>
    late.length ? late[Math.min(late.length - 1, Math.floor(late.length * q))] : NaN;
  return {
    seconds,
    cpus,
    wakes: late.length,
    p50LateMs: r3(at(0.5)),
    p99LateMs: r3(at(0.99)),
    maxLateMs: r3(late.at(-1) ?? NaN),
    stallsPerSecond: Math.round(late.filter((x) => x > 1).length / seconds / cpus * 10) / 10,
  };
}

/** One line for a report. */
export function describeHostNoise(label: string, n: HostNoise): string {
  return `Host noise ${label} (1 ms sleeps pinned to each of ${n.cpus} CPUs for ${n.seconds} s, ` +
    `nothing else running): wake-ups late by p50 ${n.p50LateMs} ms, p99 ${n.p99LateMs} ms, ` +
    `worst ${n.maxLateMs} ms; ${n.stallsPerSecond} per second per CPU more than 1 ms late.`;
}

/** What every benchmark reports about the machine a run was on. */
export interface MachineEnv {
  python: string;
  block: string;
  loadBefore: string;
  loadAfter: string;
  bareDenoRssMiB: number;
  noiseBefore?: HostNoise;
  noiseAfter?: HostNoise;
}

/** The report lines for the host noise measured before and after the runs. */
export function hostNoiseLines(env: MachineEnv): string[] {
  return [
    ...(env.noiseBefore ? [describeHostNoise("before", env.noiseBefore)] : []),
    ...(env.noiseAfter ? [describeHostNoise("after", env.noiseAfter)] : []),
  ];
}
