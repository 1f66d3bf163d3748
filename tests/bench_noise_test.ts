/**
 * The benchmarks' host-noise probe (scripts/_bench_noise.ts) runs a real
 * Python sleeper pinned to each CPU and reports plausible numbers.
 */
import { assertEquals, assertOk as assert } from "./_util/asserts.ts";
import { describeHostNoise, probeHostNoise } from "../scripts/_bench_noise.ts";

Deno.test("host noise probe: one pinned sleeper per CPU, lateness in ms", async () => {
  const n = await probeHostNoise(0.3);
  assertEquals(n.cpus, navigator.hardwareConcurrency);
  // About 1 ms per sleep: at most 300 wake-ups per CPU, and some on each.
  assert(n.wakes > 10 * n.cpus && n.wakes <= 300 * n.cpus, `wakes ${n.wakes}`);
  assert(n.p50LateMs >= 0 && n.p50LateMs <= n.p99LateMs && n.p99LateMs <= n.maxLateMs);
  assert(n.stallsPerSecond >= 0);
  const line = describeHostNoise("before", n);
  assert(line.startsWith("Host noise before") && line.includes(`${n.cpus} CPUs`), line);
});
