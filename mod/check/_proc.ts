/**
 * Reading /proc (Linux). Deno refuses /proc paths such as /proc/sys and
 * /proc/<pid>/fd without --allow-all, which ambit does not run with, so
 * these fall back to `cat` and `ls` (--allow-run) when a direct read is
 * refused.
 *
 * @module
 */

export { readProcText } from "../util/proc_fs.ts";

/**
 * Socket inode → pid, for every process whose /proc/<pid>/fd this user may
 * read (`ls -l /proc/[0-9]*\/fd/`, parsed by {@link parseFdListing}).
 */
export async function socketInodeOwners(): Promise<Map<number, number>> {
  const out = await run("sh", ["-c", "ls -l /proc/[0-9]*/fd/ 2>/dev/null"]);
  return out ? parseFdListing(out.text) : new Map();
}

/** Parses `ls -l` of several /proc/<pid>/fd/ directories. Pure. */
export function parseFdListing(text: string): Map<number, number> {
  const owners = new Map<number, number>();
  let pid = 0;
  for (const line of text.split("\n")) {
    const dir = /^\/proc\/([0-9]+)\/fd\/?:$/.exec(line);
    if (dir) {
      pid = Number(dir[1]);
      continue;
    }
    const link = / -> socket:\[([0-9]+)\]$/.exec(line);
    if (link && pid > 0 && !owners.has(Number(link[1]))) owners.set(Number(link[1]), pid);
  }
  return owners;
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; text: string } | undefined> {
  try {
    const o = await new Deno.Command(cmd, {
      args,
      env: { LC_ALL: "C" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return { code: o.code, text: new TextDecoder().decode(o.stdout) };
  } catch {
    return undefined;
  }
}
