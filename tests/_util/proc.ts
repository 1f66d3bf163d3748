/**
 * Starts real `ambit` processes for tests, with the permission flags the
 * compiled binary gets, and reads their JSON log lines.
 *
 * @module
 */
import { AMBIT_PERMISSIONS } from "../../mod/permissions.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MAIN = `${ROOT}main.ts`;

/** A running ambit process whose stderr log lines are collected. */
export class AmbitProcess {
  readonly lines: string[] = [];
  readonly stdout: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #done: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(args: readonly string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...AMBIT_PERMISSIONS, MAIN, ...args],
      cwd: options.cwd ?? ROOT,
      env: { NO_COLOR: "1", ...options.env },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    this.#done = Promise.all([
      this.#pump(this.#child.stderr, this.lines),
      this.#pump(this.#child.stdout, this.stdout),
    ]).then(() => {});
  }

  async #pump(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) !== -1) {
        into.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        for (const w of this.#waiters.splice(0)) w();
      }
    }
    if (buf) into.push(buf);
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Parsed JSON log records so far (non-JSON lines skipped). */
  get records(): Record<string, unknown>[] {
    return this.lines.flatMap((l) => {
      try {
        return [JSON.parse(l)];
      } catch {
        return [];
      }
    });
  }

  /** Waits for a JSON log record matching `pred` that appears after `from` records. */
  async waitForRecord(
    pred: (r: Record<string, unknown>) => boolean,
    options: { timeoutMs?: number; from?: number } = {},
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + (options.timeoutMs ?? 15_000);
    while (true) {
      const found = this.records.slice(options.from ?? 0).find(pred);
      if (found) return found;
      if (Date.now() > deadline) {
        throw new Error(`log record not seen in time; log so far:\n${this.lines.join("\n")}`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, 200);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Sends a signal. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.#child.kill(signal);
    } catch { /* already gone */ }
  }

  /** Waits for exit; returns the exit code. */
  async status(): Promise<number> {
    const s = await this.#child.status;
    await this.#done;
    return s.code;
  }

  /** Stops the process (SIGTERM) and waits for it. */
  async stop(): Promise<number> {
    this.kill("SIGTERM");
    return await this.status();
  }
}

/** Runs ambit to completion; returns exit code, stdout and stderr. */
export async function runAmbit(
  args: readonly string[],
  options: { cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...AMBIT_PERMISSIONS, MAIN, ...args],
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The repository root (ends with "/"). */
export const REPO_ROOT = ROOT;
