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
