/**
 * Starts real `ambit` processes for tests with exactly the permission flags
 * the compiled binary gets.
 *
 * @module
 */
import { AmbitChild } from "../../mod/lab/process.ts";
import { selfCommand } from "../../mod/lab/self.ts";

/** A running ambit process (see {@link AmbitChild}). */
export class AmbitProcess extends AmbitChild {}

/** Runs ambit to completion; returns exit code, stdout and stderr. */
export async function runAmbit(
  args: readonly string[],
  options: { cwd?: string; stdin?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const [cmd, ...pre] = selfCommand();
  const out = await new Deno.Command(cmd, {
    args: [...pre, ...args],
    cwd: options.cwd ?? REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The repository root (ends with "/"). */
export const REPO_ROOT = new URL("../../", import.meta.url).pathname;

/** Flags that turn off a ztunnel's host-wide listeners (DNS, SOCKS5, HTTP proxy on 127.0.0.1), so parallel tests do not collide. */
export const NO_HOST_PORTS: readonly string[] = [
  "--dns",
  "off",
  "--socks5",
  "off",
  "--http-proxy",
  "off",
];
