/**
 * `ambit lab up` and `ambit lab down`: the demo lab left running for
 * exploration. `up` starts a supervisor (`ambit lab up --foreground`) in its
 * own session, with its output in `DIR/lab.out`, prints that output until
 * the lab is up, and returns. The supervisor runs the demo, keeps the nodes
 * and sample apps running, and records itself and its processes in
 * `DIR/lab.json`. `down` stops the supervisor (which stops its processes
 * cleanly), makes sure every recorded process is gone, and removes DIR when
 * `up` created it.
 *
 * @module
 */
import { runLab } from "./lab.ts";
import type { LabProcess } from "./lab.ts";
import { selfCommand } from "./self.ts";
import { defaultLabDir } from "./lab_dir.ts";

/** `DIR/lab.json`. */
export interface LabState {
  /** The supervisor's pid. */
  readonly pid: number;
  readonly state: "starting" | "up" | "failed";
  readonly dir: string;
  /** Whether `lab up` created DIR (then `lab down` removes it). */
  readonly ownsDir: boolean;
  readonly startedAt: string;
  readonly processes: readonly LabProcess[];
  readonly error?: string;
}

/** Raised when a lab is already running in the directory. */
export class LabRunningError extends Error {
  override readonly name = "LabRunningError";
}

const stateFile = (dir: string) => `${dir}/lab.json`;

/** Reads `DIR/lab.json`; undefined when there is none. */
export async function readLabState(dir: string): Promise<LabState | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(stateFile(dir))) as LabState;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    if (e instanceof SyntaxError) return undefined;
    throw e;
  }
}

async function writeLabState(dir: string, s: LabState): Promise<void> {
  await Deno.writeTextFile(`${stateFile(dir)}.tmp`, JSON.stringify(s, null, 2) + "\n");
  await Deno.rename(`${stateFile(dir)}.tmp`, stateFile(dir));
}

/**
 * Whether `pid` runs and is an ambit or lab process (not a reused pid).
 * Asks `ps`: Deno lets only --allow-all read /proc/<pid>/cmdline.
 */
export function labProcessAlive(pid: number): boolean {
  try {
    const r = new Deno.Command("ps", {
      args: ["-o", "stat=,args=", "-p", String(pid)],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    const line = new TextDecoder().decode(r.stdout).trim();
    // Not there, or a zombie (exited, not yet reaped by its parent).
    if (!r.success || line === "" || line.startsWith("Z")) return false;
    return /main\.ts|ambit|lab/.test(line);
  } catch {
    // No ps: whether the pid exists at all.
    try {
      Deno.statSync(`/proc/${pid}`);
      return true;
    } catch {
      return false;
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until none of `pids` runs or `ms` passed; returns those still running. */
async function waitGone(pids: number[], ms: number): Promise<number[]> {
  const until = Date.now() + ms;
  let left = pids.filter(labProcessAlive);
  while (left.length > 0 && Date.now() < until) {
    await sleep(50);
    left = left.filter(labProcessAlive);
  }
  return left;
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch { /* gone */ }
}

/**
 * `ambit lab up --foreground`: runs the lab in this process until SIGTERM or
 * SIGINT, keeping `DIR/lab.json` current.
 */
export async function superviseLab(o: {
  dir: string;
  ownsDir: boolean;
  out: (l: string) => void;
}): Promise<number> {
  await Deno.mkdir(o.dir, { recursive: true });
  const base = {
    pid: Deno.pid,
    dir: o.dir,
    ownsDir: o.ownsDir,
    startedAt: new Date().toISOString(),
    processes: [] as LabProcess[],
  };
  await writeLabState(o.dir, { ...base, state: "starting" });
  let stop!: (why: string) => void;
  const until = new Promise<string>((r) => stop = r);
  const handlers: [Deno.Signal, () => void][] = (["SIGTERM", "SIGINT", "SIGHUP"] as const).map(
    (sig) => [sig, () => stop(sig)],
  );
  for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
  try {
    const code = await runLab({
      out: o.out,
      dir: o.dir,
      stayUp: {
        onReady: (processes) => writeLabState(o.dir, { ...base, processes, state: "up" }),
        until,
      },
    });
    await Deno.remove(stateFile(o.dir)).catch(() => {});
    return code;
  } catch (e) {
    await writeLabState(o.dir, { ...base, state: "failed", error: (e as Error).message });
    throw e;
  } finally {
    for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  }
}

/**
 * `ambit lab up`: starts the supervisor in the background, prints its
 * narrative until the lab is up, returns 0 (1 when it failed to come up).
 */
export async function labUp(o: {
  dir?: string;
  out: (l: string) => void;
  timeoutMs?: number;
}): Promise<number> {
  const dir = o.dir ?? defaultLabDir();
  const existing = await readLabState(dir);
  if (existing && labProcessAlive(existing.pid)) {
    throw new LabRunningError(
      `a lab is already running in ${dir} (supervisor pid ${existing.pid}); ` +
        `stop it with: ambit lab down${o.dir ? ` --dir ${dir}` : ""}`,
    );
  }
  if (existing) await stopRecorded(existing, () => {}); // a crashed lab's leftovers
  let ownsDir = false;
  try {
    await Deno.stat(dir);
  } catch {
    ownsDir = true;
  }
  await Deno.mkdir(dir, { recursive: true });
  const outFile = `${dir}/lab.out`;
  await Deno.writeTextFile(outFile, "");
  const argv = [
    ...selfCommand(),
    "lab",
    "up",
    "--foreground",
    "--dir",
    dir,
    ...(ownsDir ? ["--owns-dir"] : []),
  ];
  // Its own session (setsid), so it outlives this terminal; output to DIR/lab.out.
  const script = 'out="$1"; shift; if command -v setsid >/dev/null 2>&1; then exec setsid "$@" ' +
    '</dev/null >>"$out" 2>&1; else exec "$@" </dev/null >>"$out" 2>&1; fi';
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", script, "sh", outFile, ...argv],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  let printed = 0;
  const flush = async () => {
    const text = await Deno.readTextFile(outFile).catch(() => "");
    const lines = text.split("\n");
    // Only complete lines.
    for (; printed < lines.length - 1; printed++) o.out(lines[printed]);
  };
  const deadline = Date.now() + (o.timeoutMs ?? 90_000);
  let exited = false;
  child.status.then(() => exited = true);
  while (true) {
    await flush();
    const s = await readLabState(dir);
    if (s?.state === "up") {
      await flush();
      return 0;
    }
    if (s?.state === "failed" || (exited && (!s || !labProcessAlive(s.pid)))) {
      await sleep(100);
      await flush();
      o.out(`ambit lab up: the lab did not come up${s?.error ? `: ${s.error}` : ""}`);
      if (s) await stopRecorded(s, o.out);
      return 1;
    }
    if (Date.now() > deadline) {
      o.out(
        `ambit lab up: the lab was not up after ${Math.round((o.timeoutMs ?? 90_000) / 1000)} s`,
      );
      if (s) await stopRecorded(s, o.out);
      return 1;
    }
    await sleep(100);
  }
}

/** Stops the supervisor and every process it recorded; returns the pids that would not stop. */
async function stopRecorded(s: LabState, out: (l: string) => void): Promise<number[]> {
  if (labProcessAlive(s.pid)) {
    signal(s.pid, "SIGTERM");
    if ((await waitGone([s.pid], 30_000)).length > 0) signal(s.pid, "SIGKILL");
  }
  const pids = s.processes.map((p) => p.pid);
  let left = await waitGone(pids, 1_000);
  for (const p of left) signal(p, "SIGTERM");
  left = await waitGone(left, 10_000);
  for (const p of left) signal(p, "SIGKILL");
  left = await waitGone(left, 2_000);
  for (const p of s.processes) {
    out(
      `  ${p.label.padEnd(24)} pid ${p.pid} ${left.includes(p.pid) ? "STILL RUNNING" : "stopped"}`,
    );
  }
  return left;
}

/** `ambit lab down`: stops what `lab up` started in `dir`; returns an exit code. */
export async function labDown(o: { dir?: string; out: (l: string) => void }): Promise<number> {
  const dir = o.dir ?? defaultLabDir();
  const s = await readLabState(dir);
  if (!s) {
    o.out(`no lab is running in ${dir} (no ${stateFile(dir)})`);
    return 0;
  }
  o.out(`Stopping the lab in ${dir} (supervisor pid ${s.pid}):`);
  const left = await stopRecorded(s, o.out);
  if (left.length > 0) {
    o.out(`ambit lab down: pids ${left.join(", ")} did not stop`);
    return 1;
  }
  await Deno.remove(stateFile(dir)).catch(() => {});
  if (s.ownsDir) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    o.out(`removed ${dir}`);
  } else o.out(`kept ${dir} (config, CA, logs)`);
  return 0;
}
