/**
 * Reading /proc on Linux. Deno refuses every /proc path (/proc/net/tcp,
 * /proc/sys/…, /proc/<pid>/…) without --allow-all, which ambit does not run
 * with; a refused read falls back to `cat` (--allow-run). The first refusal
 * is remembered, so later reads go to `cat` at once.
 *
 * @module
 */

let direct = true;

/** A /proc file's text, or undefined when it cannot be read (absent, not Linux). */
export async function readProcText(path: string): Promise<string | undefined> {
  if (direct) {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotCapable)) return undefined;
      direct = false;
    }
  }
  try {
    const o = await new Deno.Command("cat", {
      args: [path],
      env: { LC_ALL: "C" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return o.code === 0 ? new TextDecoder().decode(o.stdout) : undefined;
  } catch {
    return undefined;
  }
}
