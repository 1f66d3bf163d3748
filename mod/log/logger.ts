/**
 * Structured logging: readable text for people, JSON lines for machines.
 * Every record has a level, a message and flat fields.
 *
 * @module
 */

/** Log levels, most severe first. */
export const LEVELS = ["error", "warn", "info", "debug", "trace"] as const;
/** A log level. */
export type Level = typeof LEVELS[number];
/** Output format. */
export type Format = "text" | "json";

/** Flat structured fields of a log record. */
export type Fields = Record<string, unknown>;

/** Where records go; default writes lines to stderr. */
export type Sink = (line: string) => void;

const encoder = new TextEncoder();
const stderrSink: Sink = (line) => {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
};

/** Options for {@link Logger}. */
export interface LoggerOptions {
  /** Most verbose level written (default "info"). */
  level?: Level;
  /** Output format (default "text"). */
  format?: Format;
  /** Where lines go (default stderr). */
  sink?: Sink;
  /** Fields on every record, e.g. `{ role: "ztunnel", node: "node-a" }`. */
  fields?: Fields;
  /** Clock, for tests. */
  now?: () => Date;
}

/** A logger. Children share level and sink with their parent, so `setLevel` affects all. */
export class Logger {
  #state: { level: Level; format: Format; sink: Sink; now: () => Date };
  readonly #fields: Fields;

  constructor(options: LoggerOptions = {}) {
    this.#state = {
      level: options.level ?? "info",
      format: options.format ?? "text",
      sink: options.sink ?? stderrSink,
      now: options.now ?? (() => new Date()),
    };
    this.#fields = options.fields ?? {};
  }

  /** A logger that adds `fields` to every record. */
  child(fields: Fields): Logger {
    const l = new Logger({ fields: { ...this.#fields, ...fields } });
    l.#state = this.#state;
    return l;
  }

  /** Current level. */
  get level(): Level {
    return this.#state.level;
  }

  /** Changes the level for this logger, its parent and all children. */
  setLevel(level: Level): void {
    this.#state.level = level;
  }

  /** Whether records at `level` are written. */
  enabled(level: Level): boolean {
    return LEVELS.indexOf(level) <= LEVELS.indexOf(this.#state.level);
  }

  error(msg: string, fields?: Fields): void {
    this.log("error", msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.log("warn", msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.log("info", msg, fields);
  }
  debug(msg: string, fields?: Fields): void {
    this.log("debug", msg, fields);
  }
  trace(msg: string, fields?: Fields): void {
    this.log("trace", msg, fields);
  }

  /** Writes one record if `level` is enabled. */
  log(level: Level, msg: string, fields?: Fields): void {
    if (!this.enabled(level)) return;
    const all = { ...this.#fields, ...fields };
    const time = this.#state.now().toISOString();
    this.#state.sink(
      this.#state.format === "json"
        ? JSON.stringify({ time, level, msg, ...normalise(all) })
        : `${time} ${level.toUpperCase().padEnd(5)} ${msg}${formatFields(all)}`,
    );
  }
}

function normalise(fields: Fields): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) {
    out[k] = v instanceof Error ? v.message : v;
  }
  return out;
}

function formatFields(fields: Fields): string {
  let out = "";
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    const s = v instanceof Error ? v.message : typeof v === "string" ? v : JSON.stringify(v);
    out += ` ${k}=${/[\s"=]/.test(s) || s === "" ? JSON.stringify(s) : s}`;
  }
  return out;
}

/** Parses a level name; undefined when unknown. */
export function parseLevel(s: string): Level | undefined {
  return (LEVELS as readonly string[]).includes(s) ? (s as Level) : undefined;
}
