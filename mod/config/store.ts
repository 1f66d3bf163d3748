/**
 * The live config of a running node: the current snapshot, hot reload on file
 * changes (debounced) and SIGHUP, and the last reload error. A new snapshot is
 * swapped in only when it compiled cleanly; otherwise the last good one stays.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { compilePath, type CompileResult } from "./compile.ts";
import {
  ConfigError,
  type ConfigIssue,
  ConfigReadError,
  formatIssue,
  isConfigFile,
} from "./load.ts";
import type { Snapshot } from "./snapshot.ts";
import type { WorkerReply, WorkerRequest } from "./worker.ts";
import { decodeSnapshot } from "./snapshot_codec.ts";

/** Why a reload ran. */
export type ReloadReason = "start" | "file change" | "SIGHUP" | "request";

/** What a reload did. */
export interface ReloadOutcome {
  readonly reason: ReloadReason;
  /** The new snapshot was swapped in. */
  readonly applied: boolean;
  /** Sources were byte-identical to the current snapshot's; nothing to do. */
  readonly unchanged: boolean;
  /** Generation in force after the reload. */
  readonly generation: number;
  readonly issues: readonly ConfigIssue[];
  /** Set when the reload was rejected. */
  readonly error?: string;
  readonly durationMs: number;
}

/** The last rejected reload, kept for the admin API and metrics. */
export interface ReloadFailure {
  readonly at: Date;
  readonly reason: ReloadReason;
  readonly error: string;
  readonly issues: readonly ConfigIssue[];
}

/** Options for {@link ConfigStore.open}. */
export interface ConfigStoreOptions {
  /** Logger for reload events. */
  logger?: Logger;
  /** Watch the files and reload on change (default true). */
  watch?: boolean;
  /** Quiet time after the last file event before reloading (default 150 ms). */
  debounceMs?: number;
  /** Reload on SIGHUP (default false; roles turn it on). */
  sighup?: boolean;
  /**
   * Compile large configs (over {@link WORKER_THRESHOLD_BYTES}) in a Worker so
   * the event loop never stalls (default true); false compiles on the main thread.
   */
  worker?: boolean;
}

/** Counters for metrics. */
export interface ReloadStats {
  reloads: number;
  failures: number;
  lastSuccess?: Date;
}

type Compiler = (path: string) => Promise<CompileResult>;

/** Holds the current snapshot and reloads it. */
export class ConfigStore {
  #snapshot: Snapshot;
  #digest: string;
  #generation = 1;
  #lastFailure?: ReloadFailure;
  #listeners = new Set<(o: ReloadOutcome) => void>();
  #running?: Promise<ReloadOutcome>;
  #queued?: Promise<ReloadOutcome>;
  #timer?: ReturnType<typeof setTimeout>;
  #watcher?: Deno.FsWatcher;
  #closed = false;
  #sighup?: () => void;
  readonly stats: ReloadStats = { reloads: 0, failures: 0 };

  private constructor(
    readonly path: string,
    first: CompileResult & { snapshot: Snapshot },
    readonly issues: readonly ConfigIssue[],
    readonly compile: Compiler,
    readonly closeCompiler: () => void,
    readonly logger?: Logger,
  ) {
    this.#snapshot = first.snapshot;
    this.#digest = first.digest;
    this.stats.lastSuccess = new Date();
  }

  /**
   * Loads the config at `path`; throws {@link ConfigError} when it has errors
   * (a node does not start on a bad config) or {@link ConfigReadError}.
   */
  static async open(path: string, options: ConfigStoreOptions = {}): Promise<ConfigStore> {
    const { compile, close } = options.worker === false
      ? { compile: compilePath, close: () => {} }
      : adaptiveCompiler();
    let first: CompileResult;
    try {
      first = await compile(path);
    } catch (e) {
      close();
      throw e;
    }
    if (!first.snapshot) {
      close();
      throw new ConfigError(first.issues);
    }
    const store = new ConfigStore(
      path,
      first as CompileResult & { snapshot: Snapshot },
      first.issues,
      compile,
      close,
      options.logger,
    );
    for (const w of first.issues) options.logger?.warn(formatIssue(w));
    if (options.watch !== false) store.#watch(options.debounceMs ?? 150);
    if (options.sighup) {
      store.#sighup = () => void store.reload("SIGHUP");
      Deno.addSignalListener("SIGHUP", store.#sighup);
    }
    return store;
  }

  /** The snapshot in force. */
  get current(): Snapshot {
    return this.#snapshot;
  }

  /** Increments with every applied reload (starts at 1). */
  get generation(): number {
    return this.#generation;
  }

  /** The last rejected reload, until a later one applies. */
  get lastFailure(): ReloadFailure | undefined {
    return this.#lastFailure;
  }

  /** Calls `fn` after every reload attempt; returns an unsubscribe function. */
  onReload(fn: (o: ReloadOutcome) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Resolves with the next reload outcome that satisfies `pred` (default: any). */
  nextReload(
    pred: (o: ReloadOutcome) => boolean = () => true,
    timeoutMs = 10_000,
  ): Promise<ReloadOutcome> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no matching config reload within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onReload((o) => {
        if (!pred(o)) return;
        clearTimeout(timer);
        off();
        resolve(o);
      });
    });
  }

  /**
   * Reloads now. Concurrent requests coalesce: one runs, and at most one more
   * runs after it so the newest file content is always picked up.
   */
  reload(reason: ReloadReason = "request"): Promise<ReloadOutcome> {
    if (this.#closed) return Promise.reject(new Error("config store is closed"));
    if (!this.#running) {
      this.#running = this.#reloadOnce(reason).finally(() => (this.#running = undefined));
      return this.#running;
    }
    // One is running: queue exactly one follow-up, shared by everyone who asks meanwhile.
    this.#queued ??= this.#running.then(() => {
      this.#queued = undefined;
      return this.reload(reason);
    });
    return this.#queued;
  }

  async #reloadOnce(reason: ReloadReason): Promise<ReloadOutcome> {
    const started = performance.now();
    let outcome: ReloadOutcome;
    try {
      const result = await this.compile(this.path);
      if (result.snapshot && result.digest === this.#digest) {
        outcome = this.#outcome(reason, false, true, result.issues, started);
        this.logger?.log(reason === "file change" ? "debug" : "info", "config unchanged", {
          reason,
          generation: this.#generation,
        });
      } else if (result.snapshot) {
        this.#snapshot = result.snapshot;
        this.#digest = result.digest;
        this.#generation++;
        this.#lastFailure = undefined;
        this.stats.reloads++;
        this.stats.lastSuccess = new Date();
        outcome = this.#outcome(reason, true, false, result.issues, started);
        this.logger?.info("config reload applied", {
          reason,
          generation: this.#generation,
          ms: Math.round(outcome.durationMs),
        });
        for (const w of result.issues) this.logger?.warn(formatIssue(w));
      } else {
        outcome = this.#fail(
          reason,
          new ConfigError(result.issues).message,
          result.issues,
          started,
        );
      }
    } catch (e) {
      const msg = e instanceof ConfigReadError || e instanceof Error ? e.message : String(e);
      outcome = this.#fail(reason, msg, [], started);
    }
    for (const fn of [...this.#listeners]) fn(outcome);
    return outcome;
  }

  #fail(
    reason: ReloadReason,
    error: string,
    issues: readonly ConfigIssue[],
    started: number,
  ): ReloadOutcome {
    this.stats.failures++;
    this.#lastFailure = { at: new Date(), reason, error, issues };
    this.logger?.error("config reload rejected; keeping the last good config", {
      reason,
      generation: this.#generation,
      error,
    });
    return { ...this.#outcome(reason, false, false, issues, started), error };
  }

  #outcome(
    reason: ReloadReason,
    applied: boolean,
    unchanged: boolean,
    issues: readonly ConfigIssue[],
    started: number,
  ): ReloadOutcome {
    return {
      reason,
      applied,
      unchanged,
      generation: this.#generation,
      issues,
      durationMs: performance.now() - started,
    };
  }

  #watch(debounceMs: number): void {
    // Watch the directory (a file's parent, for editors that save by rename).
    let target = this.path;
    let only: string | undefined;
    try {
      if (!Deno.statSync(this.path).isDirectory) {
        const abs = Deno.realPathSync(this.path);
        target = abs.slice(0, abs.lastIndexOf("/")) || "/";
        only = abs.slice(abs.lastIndexOf("/") + 1);
      }
    } catch {
      return;
    }
    this.#watcher = Deno.watchFs(target, { recursive: true });
    (async () => {
      try {
        for await (const ev of this.#watcher!) {
          if (ev.kind === "access") continue;
          const relevant = ev.paths.some((p) => {
            const base = p.slice(p.lastIndexOf("/") + 1);
            return only ? base === only : isConfigFile(base);
          });
          if (!relevant) continue;
          clearTimeout(this.#timer);
          this.#timer = setTimeout(() => void this.reload("file change"), debounceMs);
        }
      } catch (e) {
        if (!this.#closed) this.logger?.error("config watch stopped", { error: e as Error });
      }
    })();
  }

  /** Stops watching, removes the signal handler and the worker. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#watcher?.close();
    if (this.#sighup) Deno.removeSignalListener("SIGHUP", this.#sighup);
    await this.#queued?.catch(() => {});
    await this.#running?.catch(() => {});
    this.closeCompiler();
  }
}

/**
 * Configs up to this size compile on the main thread (a few milliseconds);
 * larger ones in a Worker, so a reload never stalls the data plane.
 */
export const WORKER_THRESHOLD_BYTES = 128 * 1024;

/**
 * Compiles where it is cheapest: the first config (start-up, no traffic yet)
 * and configs whose previous version was small on the main thread, the rest
 * in a Worker made on first need (a Worker costs some 18 MiB, so small
 * meshes never pay for one).
 */
function adaptiveCompiler(): { compile: Compiler; close: () => void } {
  let worker: ReturnType<typeof workerCompiler> | undefined;
  let lastBytes = 0;
  return {
    compile: async (path) => {
      const r = lastBytes <= WORKER_THRESHOLD_BYTES
        ? await compilePath(path)
        : await (worker ??= workerCompiler()).compile(path);
      lastBytes = r.bytes;
      return r;
    },
    close: () => worker?.close(),
  };
}

function workerCompiler(): { compile: Compiler; close: () => void } {
  const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });
  let nextId = 1;
  const waiting = new Map<
    number,
    { resolve: (r: CompileResult) => void; reject: (e: Error) => void }
  >();
  worker.onmessage = (e: MessageEvent<WorkerReply>) => {
    const w = waiting.get(e.data.id);
    if (!w) return;
    waiting.delete(e.data.id);
    if (e.data.ok) {
      const { issues, digest, bytes, snapshot } = e.data.result;
      if (!snapshot) w.resolve({ issues, digest, bytes });
      else {decodeSnapshot(snapshot).then((s) =>
          w.resolve({ issues, digest, bytes, snapshot: s }), w.reject);}
    } else {
      const err = e.data.code === "ECONFIGREAD"
        ? new ConfigReadError(e.data.error)
        : new Error(e.data.error);
      w.reject(err);
    }
  };
  worker.onerror = (e) => {
    e.preventDefault();
    for (const w of waiting.values()) w.reject(new Error(`config worker failed: ${e.message}`));
    waiting.clear();
  };
  return {
    compile: (path) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve, reject });
        worker.postMessage({ id, path } satisfies WorkerRequest);
      }),
    close: () => worker.terminate(),
  };
}
