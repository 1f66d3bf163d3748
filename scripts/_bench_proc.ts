/**
 * Child processes for the data-plane benchmark: proxies started through a
 * small shell wrapper (log to a file, the real pid reported, killed when the
 * benchmark's end of its stdin closes), line-speaking Deno and Python
 * children, a registry that stops them all on error or signal, and readers
 * for /proc/<pid>/status (VmRSS) and /proc/<pid>/stat (CPU time).
 *
 * @module
 */

/** Something to stop when the benchmark ends, however it ends. */
interface Stoppable {
  stop(): Promise<unknown>;
}

const live = new Set<Stoppable>();

/** Stops every child still running (last started first). */
export async function stopAllChildren(): Promise<void> {
  for (const c of [...live].reverse()) {
    try {
      await c.stop();
    } catch { /* already gone */ }
  }
}

/**
 * The wrapper: runs "$@" in the background with its output appended to the
 * log, prints its pid, and kills it when the benchmark's end of the wrapper's
 * stdin closes (the benchmark died without cleaning up). The pid printed is
 * the proxy itself, so /proc/<pid> is its memory, not the shell's.
 */
const WRAPPER = `
log=$1; shift
exec 3<&0
"$@" </dev/null 3<&- >>"$log" 2>&1 &
p=$!
echo "$p"
(while read -r _ <&3; do :; done; kill -TERM "$p" 2>/dev/null) >/dev/null 2>&1 &
w=$!
wait "$p"; s=$?
kill "$w" 2>/dev/null
exit "$s"
`;

/** A proxy process (ztunnel or stunnel) whose output goes to a log file. */
export class Proc implements Stoppable {
  #exited = false;
  #code: Promise<number>;

  private constructor(
    readonly label: string,
    readonly pid: number,
    readonly log: string,
    readonly child: Deno.ChildProcess,
    readonly stdin: WritableStreamDefaultWriter<Uint8Array>,
  ) {
    this.#code = child.status.then((s) => {
      this.#exited = true;
      return s.code;
    });
    live.add(this);
  }

  /** Starts `cmd` with stdout and stderr appended to `log`. */
  static async start(label: string, cmd: readonly string[], log: string): Promise<Proc> {
    const child = new Deno.Command("/bin/sh", {
      args: ["-c", WRAPPER, "sh", log, ...cmd],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const stdin = child.stdin.getWriter();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    // The wrapper prints the pid at once; a wrapper that does not is killed, ending the read.
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    for (let i = 0; i < 100 && !text.includes("\n"); i++) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 0) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`${label}: the wrapper did not report a pid (got "${text.trim()}")`);
    }
    return new Proc(label, pid, log, child, stdin);
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** The last `n` lines of its log. */
  async tail(n = 20): Promise<string> {
    const text = await Deno.readTextFile(this.log).catch(() => "");
    return text.trimEnd().split("\n").slice(-n).join("\n");
  }

  /** SIGTERM, SIGKILL after `graceMs`; returns the exit code. */
  async stop(graceMs = 5000): Promise<number> {
    live.delete(this);
    if (!this.#exited) {
      try {
        Deno.kill(this.pid, "SIGTERM");
      } catch { /* gone */ }
    }
    const t = setTimeout(() => {
      if (this.#exited) return;
      try {
        Deno.kill(this.pid, "SIGKILL");
      } catch { /* gone */ }
    }, graceMs);
    try {
      return await this.#code;
    } finally {
      clearTimeout(t);
      await this.stdin.close().catch(() => {});
    }
  }
}

/** A child that speaks lines on stdout (JSON results) and ends when its stdin closes. */
export class LineChild implements Stoppable {
  readonly pid: number;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: string[] = [];
  readonly #stderr: string[] = [];
  #waiters: (() => void)[] = [];
  #closed = false;
  readonly #done: Promise<number>;

  constructor(readonly label: string, cmd: string, args: readonly string[]) {
    this.#child = new Deno.Command(cmd, {
      args: [...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.pid = this.#child.pid;
    this.#stdin = this.#child.stdin.getWriter();
    const pumps = Promise.all([
      pumpLines(this.#child.stdout, (l) => {
        this.#lines.push(l);
        this.#wake();
      }),
      pumpLines(this.#child.stderr, (l) => {
        if (this.#stderr.length < 200) this.#stderr.push(l);
      }),
    ]);
    this.#done = Promise.all([this.#child.status, pumps]).then(([s]) => {
      this.#closed = true;
      this.#wake();
      return s.code;
    });
    live.add(this);
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** The next stdout line; rejects when the child exits first or after `timeoutMs`. */
  async line(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.#lines.length === 0) {
      if (this.#closed) {
        throw new Error(`${this.label} exited without a result:\n${this.#stderr.join("\n")}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        await this.stop();
        throw new Error(`${this.label} gave no result within ${timeoutMs} ms`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 1000));
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.#lines.shift()!;
  }

  /** The next stdout line parsed as JSON. */
  async json<T>(timeoutMs: number): Promise<T> {
    const l = await this.line(timeoutMs);
    try {
      return JSON.parse(l) as T;
    } catch {
      throw new Error(`${this.label} printed "${l}", not JSON:\n${this.#stderr.join("\n")}`);
    }
  }

  /** Closes its stdin (the child's cue to finish) and waits for it, killing it after `graceMs`. */
  async stop(graceMs = 5000): Promise<number> {
    live.delete(this);
    await this.#stdin.close().catch(() => {});
    const t = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }, graceMs);
    try {
      return await this.#done;
    } finally {
      clearTimeout(t);
    }
  }
}

async function pumpLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (l: string) => void,
): Promise<void> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) !== -1) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  }
  if (buf) onLine(buf);
}

/** Resident set size of `pid` in bytes (VmRSS), undefined when it is gone. */
/** The benchmark's Deno apps and clients (`_bench_apps.ts`). */
export const BENCH_APPS = new URL("./_bench_apps.ts", import.meta.url).pathname;

/** Runs one client role of `_bench_apps.ts` and returns the JSON line it prints. */
export async function benchClient<T>(role: string, args: string[], timeoutMs: number): Promise<T> {
  const c = new LineChild(`client ${role}`, Deno.execPath(), [
    "run",
    "--allow-net",
    BENCH_APPS,
    role,
    ...args,
  ]);
  try {
    return await c.json<T>(timeoutMs);
  } finally {
    await c.stop();
  }
}

export async function rssBytes(pid: number): Promise<number | undefined> {
  try {
    const m = (await Deno.readTextFile(`/proc/${pid}/status`)).match(/^VmRSS:\s+(\d+) kB/m);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

/** User + system CPU seconds `pid` has used, undefined when it is gone. */
export async function cpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const s = await Deno.readTextFile(`/proc/${pid}/stat`);
    // Fields after "(comm)": state is field 3, utime 14, stime 15.
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Runs a command to completion; throws with its output when it fails. */
export async function run(cmd: string, args: readonly string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args: [...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${text}`);
  return text;
}

/**
 * Runs a benchmark's `main(root)` in a fresh temporary directory: every
 * child is stopped and the directory removed (unless `keep`) however it
 * ends (return, throw, SIGINT, SIGTERM, unhandled rejection); exits with
 * `main`'s code.
 */
export async function runBenchmark(
  name: string,
  main: (root: string) => Promise<number>,
  keep = false,
): Promise<never> {
  const root = await Deno.makeTempDir({ prefix: `ambit-${name}-` });
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    cleaning ??= (async () => {
      await stopAllChildren();
      if (!keep) await Deno.remove(root, { recursive: true }).catch(() => {});
    })();
  let stopping = false;
  const bail = (why: string, code: number) => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${why}: stopping the children${keep ? "" : ` and removing ${root}`}`);
    cleanup().finally(() => Deno.exit(code));
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => bail(sig, 130));
  }
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    console.error(e.reason);
    bail("unhandled rejection", 1);
  });
  let code = 1;
  try {
    code = await main(root);
  } catch (e) {
    if (!stopping) console.error(`${name}: ${(e as Error).stack ?? e}`);
  } finally {
    await cleanup();
  }
  Deno.exit(code);
}
