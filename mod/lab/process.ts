/**
 * A child ambit process whose JSON log records can be awaited: used by the
 * lab to start nodes and by tests to drive real processes.
 *
 * @module
 */
import { selfCommand } from "./self.ts";

/** A log record (one JSON line). */
export type LogRecord = Record<string, unknown>;

/** Options for {@link LoggedChild}. */
export interface LoggedChildOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Called with every stderr line as it arrives. */
  onLine?: (line: string) => void;
  /** A name for failure messages (default: the command). */
  label?: string;
}

/**
 * A running child process whose output is kept line by line: stderr in
 * `lines`, stdout in `stdout`, and JSON lines of either in `records`, which
 * can be awaited.
 */
export class LoggedChild {
  /** Raw stderr lines. */
  readonly lines: string[] = [];
  /** Raw stdout lines. */
  readonly stdout: string[] = [];
  /** Parsed JSON records from stderr and stdout. */
  readonly records: LogRecord[] = [];
  readonly pid: number;
  readonly label: string;
  readonly #child: Deno.ChildProcess;
  readonly #done: Promise<void>;
  #waiters: (() => void)[] = [];
  #exited = false;

  constructor(argv: readonly string[], options: LoggedChildOptions = {}) {
    const [cmd, ...args] = argv;
    this.label = options.label ?? argv.join(" ");
    this.#child = new Deno.Command(cmd, {
      args,
      cwd: options.cwd,
      env: { NO_COLOR: "1", ...options.env },
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    this.pid = this.#child.pid;
    const parse = (l: string) => {
      if (!l.startsWith("{")) return;
      try {
        this.records.push(JSON.parse(l));
      } catch { /* not a record */ }
    };
    this.#done = Promise.all([
      this.#pump(this.#child.stderr, (l) => {
        this.lines.push(l);
        options.onLine?.(l);
        parse(l);
      }),
      this.#pump(this.#child.stdout, (l) => {
        this.stdout.push(l);
        parse(l);
      }),
    ]).then(() => {
      this.#exited = true;
      this.#wake();
    });
  }

  /** Whether the process has exited and its output ended. */
  get exited(): boolean {
    return this.#exited;
  }

  /** Its output so far, for failure messages. */
  log(): string {
    return `--- ${this.label} (pid ${this.pid}) ---\n${[...this.lines, ...this.stdout].join("\n")}`;
  }

  async #pump(stream: ReadableStream<Uint8Array>, onLine: (l: string) => void): Promise<void> {
    let buf = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) !== -1) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      this.#wake();
    }
    if (buf) onLine(buf);
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /**
   * Waits for a record matching `pred` at index `from` or later. Rejects when
   * the process exits first or after `timeoutMs`, quoting its log.
   */
  async waitForRecord(
    pred: (r: LogRecord) => boolean,
    options: { timeoutMs?: number; from?: number } = {},
  ): Promise<LogRecord> {
    const deadline = Date.now() + (options.timeoutMs ?? 15_000);
    while (true) {
      const found = this.records.slice(options.from ?? 0).find(pred);
      if (found) return found;
      if (this.#exited) throw new Error(`process exited; its log:\n${this.log()}`);
      if (Date.now() > deadline) {
        throw new Error(`log record not seen in time; log:\n${this.log()}`);
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, Math.min(100, deadline - Date.now())));
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Sends a signal (ignored when the process is gone). */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.#child.kill(signal);
    } catch { /* already gone */ }
  }

  /** Waits for exit and the end of its output; returns the exit code. */
  async status(): Promise<number> {
    const s = await this.#child.status;
    await this.#done;
    return s.code;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; returns the exit code. */
  async stop(graceMs = 10_000): Promise<number> {
    this.kill("SIGTERM");
    const t = setTimeout(() => this.kill("SIGKILL"), graceMs);
    try {
      return await this.status();
    } finally {
      clearTimeout(t);
    }
  }
}

/** Options for {@link AmbitChild}. */
export interface AmbitChildOptions extends LoggedChildOptions {
  /** Words to run ambit under, e.g. `["ip", "netns", "exec", "ns1"]`. */
  prefix?: readonly string[];
}

/** A running ambit process (this program, with the compiled binary's permissions). */
export class AmbitChild extends LoggedChild {
  constructor(args: readonly string[], options: AmbitChildOptions = {}) {
    super([...(options.prefix ?? []), ...selfCommand(), ...args], {
      label: `ambit ${args.join(" ")}`,
      ...options,
    });
  }
}
