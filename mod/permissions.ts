/**
 * The Deno permission flags ambit runs with: the `ambit` task, the compiled
 * binary and the tests that start ambit processes all use exactly these (a
 * test keeps deno.json's task in step).
 *
 * @module
 */
export const AMBIT_PERMISSIONS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
];

/**
 * V8 flags ambit runs with. A 1 MiB young generation keeps each scavenge
 * short: with V8's default (up to 16 MiB) the data plane's p99 latency was
 * set by 3-5 ms collection pauses; with 1 MiB it is not, and idle memory is
 * lower. Throughput is unchanged (scripts/bench_dataplane.ts).
 */
export const AMBIT_V8_FLAGS: readonly string[] = ["--max-semi-space-size=1"];

/**
 * Unstable Deno APIs ambit uses: `--unstable-net` for `reusePort` on
 * `Deno.serve` (admin, metrics and readiness bind with SO_REUSEPORT like every
 * other listener, for zero-downtime upgrades: mod/util/listen.ts).
 */
export const AMBIT_UNSTABLE_FLAGS: readonly string[] = ["--unstable-net"];

/** What `deno run` and `deno compile` take for ambit: the V8 flags, unstable APIs, then the permissions. */
export const AMBIT_RUN_FLAGS: readonly string[] = [
  `--v8-flags=${AMBIT_V8_FLAGS.join(",")}`,
  ...AMBIT_UNSTABLE_FLAGS,
  ...AMBIT_PERMISSIONS,
];
