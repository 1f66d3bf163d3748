/**
 * Builds single `ambit` binaries for linux x86_64 and aarch64 into dist/,
 * with exactly the permission flags of `deno task ambit` (mod/permissions.ts).
 * `deno compile` downloads a runtime for each target; where that download is
 * not reachable, this says so and exits 1.
 *
 *   deno task compile [--target x86_64-unknown-linux-gnu]
 */
import { parseArgs } from "node:util";
import { AMBIT_RUN_FLAGS } from "../mod/permissions.ts";

/** The targets `deno task compile` builds by default. */
export const TARGETS = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu"];
const root = new URL("../", import.meta.url).pathname;

/** The `deno compile` arguments for `target`: exactly ambit's run flags, plus the config worker. */
export function compileArgs(target: string): string[] {
  return [
    "compile",
    ...AMBIT_RUN_FLAGS,
    "--include",
    `${root}mod/config/worker.ts`,
    "--target",
    target,
    "--output",
    `${root}dist/ambit-${target}`,
    `${root}main.ts`,
  ];
}

/** The line of `deno compile`'s error output that names the failed download. */
export function downloadError(stderr: string): string {
  // deno-lint-ignore no-control-regex
  const lines = stderr.replace(/\x1b\[[0-9;]*m/g, "").split("\n").map((l) => l.trim());
  return lines.find((l) => /error sending request|dns error/i.test(l))?.replace(/^\d+: /, "") ??
    lines.find((l) => l.startsWith("error:")) ?? stderr.trim().split("\n")[0];
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { target: { type: "string", multiple: true } } });
  const targets = values.target ?? TARGETS;
  let failed = 0;
  for (const target of targets) {
    const out = `${root}dist/ambit-${target}`;
    const r = await new Deno.Command(Deno.execPath(), {
      args: compileArgs(target),
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(r.stderr);
    if (r.success) {
      console.log(`built ${out}`);
      continue;
    }
    failed++;
    if (
      /download|dl\.deno\.land|error sending request|dns error|Connection refused|timed out/i.test(
        err,
      )
    ) {
      console.error(
        `compile for ${target}: deno compile needs to download the Deno runtime for this target, and ` +
          `that download is not reachable from this machine. Run 'deno task compile' where it is ` +
          `(or set DENORT_BIN to a local denort binary). Details: ${downloadError(err)}`,
      );
    } else console.error(`compile for ${target} failed:\n${err}`);
  }
  Deno.exit(failed ? 1 : 0);
}
