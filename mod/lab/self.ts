/**
 * How to start another ambit process: the compiled binary runs itself; from
 * source, Deno runs main.ts with ambit's permission flags.
 *
 * @module
 */
import { AMBIT_RUN_FLAGS } from "../permissions.ts";

/** The argv prefix that starts ambit (before the subcommand). */
export function selfCommand(): string[] {
  const exec = Deno.execPath();
  const base = exec.slice(exec.lastIndexOf("/") + 1);
  if (base === "deno" || base === "deno.exe") {
    return [exec, "run", ...AMBIT_RUN_FLAGS, new URL("../../main.ts", import.meta.url).pathname];
  }
  return [exec];
}

/** How a user runs ambit the way this process was started: `ambit`, or `deno task ambit` from source. */
export function selfDisplayName(): string {
  return selfCommand().length === 1 ? "ambit" : "deno task ambit";
}
