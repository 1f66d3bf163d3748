/**
 * A small command framework over `node:util` parseArgs: subcommands, strict
 * options, generated `--help`, and exit codes (0 ok, 1 runtime failure,
 * 2 usage or config error).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, ConfigReadError } from "../config/load.ts";
import { type Format, type Level, Logger, parseLevel } from "../log/logger.ts";

/** Exit code: success. */
export const EXIT_OK = 0;
/** Exit code: the command ran and failed. */
export const EXIT_FAILURE = 1;
/** Exit code: bad usage or a bad config. */
export const EXIT_USAGE = 2;

/** Raised for bad command lines; printed with the command's usage, exit 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  readonly code = "EUSAGE";
}

/** One option of a command. */
export interface OptionSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  readonly multiple?: boolean;
  /** Placeholder in help, e.g. "PATH". */
  readonly arg?: string;
  readonly description: string;
  /** Default shown in help (and applied for strings). */
  readonly default?: string;
  /** Allowed values for a string option. */
  readonly choices?: readonly string[];
}

/** Values parsed from the command line. */
export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/** What a command's `run` receives. */
export interface Context {
  readonly options: OptionValues;
  readonly args: readonly string[];
  readonly logger: Logger;
  /** Writes a line to stdout. */
  readonly out: (line: string) => void;
  /** The command path, e.g. "ambit ca init". */
  readonly path: string;
}

/** A command or a group of subcommands. */
export interface Command {
  readonly name: string;
  /** One line for the parent's command list. */
  readonly summary: string;
  /** Positional arguments, e.g. "<path>". */
  readonly usage?: string;
  /** Paragraphs shown under the usage line. */
  readonly description?: string;
  readonly options?: Readonly<Record<string, OptionSpec>>;
  /** Number of positional arguments accepted: [min, max]. Default [0, 0]. */
  readonly positionals?: readonly [number, number];
  readonly subcommands?: readonly Command[];
  /** Examples shown at the end of help. */
  readonly examples?: readonly string[];
  run?(ctx: Context): Promise<number> | number;
}

/** An `--output text|json` (or other formats) option. */
export function outputOption(formats: readonly string[] = ["text", "json"]): OptionSpec {
  return {
    type: "string",
    arg: "FORMAT",
    description: formats.join(" or "),
    default: formats[0],
    choices: formats,
  };
}

/** Parses a `host:port` option value; throws {@link UsageError} naming the flag. */
export function parseHostPort(value: string, flag: string): { hostname: string; port: number } {
  const i = value.lastIndexOf(":");
  const port = Number(value.slice(i + 1));
  if (i <= 0 || !/^[0-9]+$/.test(value.slice(i + 1)) || port > 65535) {
    throw new UsageError(`--${flag} "${value}" is not host:port`);
  }
  return { hostname: value.slice(0, i).replace(/^\[|\]$/g, ""), port };
}

/** Options every command accepts. */
export const GLOBAL_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  "log-level": {
    type: "string",
    arg: "LEVEL",
    description: "error, warn, info, debug or trace",
    default: "info",
    choices: ["error", "warn", "info", "debug", "trace"],
  },
  "log-format": {
    type: "string",
    arg: "FORMAT",
    description: "text (readable) or json (one object per line)",
    default: "text",
    choices: ["text", "json"],
  },
  help: { type: "boolean", short: "h", description: "show this help" },
};

const encoder = new TextEncoder();

/** Runs `root` with `argv`; returns the exit code. Never throws. */
export async function runCli(
  root: Command,
  argv: readonly string[],
  io: { out?: (s: string) => void; err?: (s: string) => void } = {},
): Promise<number> {
  const out = io.out ?? ((s: string) => Deno.stdout.writeSync(encoder.encode(s + "\n")));
  const err = io.err ?? ((s: string) => Deno.stderr.writeSync(encoder.encode(s + "\n")));
  // Walk down the subcommands named on the command line.
  let cmd = root;
  let path = root.name;
  let rest = [...argv];
  while (cmd.subcommands && rest.length > 0 && !rest[0].startsWith("-")) {
    const sub = cmd.subcommands.find((c) => c.name === rest[0]);
    if (!sub) {
      if (cmd.run && (cmd.positionals?.[1] ?? 0) > 0) break;
      err(`${path}: unknown command "${rest[0]}"\n`);
      err(helpText(cmd, path));
      return EXIT_USAGE;
    }
    cmd = sub;
    path += ` ${sub.name}`;
    rest = rest.slice(1);
  }
  let parsed: { values: OptionValues; positionals: string[] };
  const specs = { ...GLOBAL_OPTIONS, ...cmd.options };
  try {
    parsed = parseArgs({
      args: rest,
      options: Object.fromEntries(
        Object.entries(specs).map(([k, s]) => [k, {
          type: s.type,
          ...(s.short ? { short: s.short } : {}),
          ...(s.multiple ? { multiple: true } : {}),
        }]),
      ),
      allowPositionals: true,
      strict: true,
    }) as { values: OptionValues; positionals: string[] };
  } catch (e) {
    err(`${path}: ${(e as Error).message.replace(/\. To specify a positional.*$/s, "")}\n`);
    err(usageLine(cmd, path) + `\nRun '${path} --help' for details.`);
    return EXIT_USAGE;
  }
  if (parsed.values.help) {
    out(helpText(cmd, path));
    return EXIT_OK;
  }
  if (!cmd.run) {
    err(
      rest.length === 0 ? `${path}: missing command\n` : `${path}: unknown command "${rest[0]}"\n`,
    );
    err(helpText(cmd, path));
    return EXIT_USAGE;
  }
  for (const [k, s] of Object.entries(specs)) {
    const v = parsed.values[k];
    if (v === undefined && s.default !== undefined && s.type === "string") {
      parsed.values[k] = s.default;
    }
    if (
      typeof parsed.values[k] === "string" && s.choices &&
      !s.choices.includes(parsed.values[k] as string)
    ) {
      err(`${path}: --${k} must be one of ${s.choices.join(", ")}, got "${parsed.values[k]}"`);
      err(usageLine(cmd, path) + `\nRun '${path} --help' for details.`);
      return EXIT_USAGE;
    }
  }
  const [min, max] = cmd.positionals ?? [0, 0];
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    err(
      parsed.positionals.length < min
        ? `${path}: missing argument ${cmd.usage ?? ""}`.trimEnd()
        : `${path}: unexpected argument "${parsed.positionals[max]}"`,
    );
    err(usageLine(cmd, path) + `\nRun '${path} --help' for details.`);
    return EXIT_USAGE;
  }
  const logger = new Logger({
    level: parseLevel(parsed.values["log-level"] as string) as Level,
    format: parsed.values["log-format"] as Format,
  });
  try {
    return await cmd.run({ options: parsed.values, args: parsed.positionals, logger, out, path });
  } catch (e) {
    if (e instanceof UsageError) {
      err(`${path}: ${e.message}`);
      err(usageLine(cmd, path) + `\nRun '${path} --help' for details.`);
      return EXIT_USAGE;
    }
    if (e instanceof ConfigReadError) {
      err(`${path}: ${e.message}`);
      err(usageLine(cmd, path) + `\nRun '${path} --help' for details.`);
      return EXIT_USAGE;
    }
    if (e instanceof ConfigError) {
      err(`${path}: ${e.message}`);
      return EXIT_USAGE;
    }
    err(`${path}: ${(e as Error).message ?? e}`);
    if (logger.enabled("debug") && e instanceof Error && e.stack) err(e.stack);
    return EXIT_FAILURE;
  }
}

function usageLine(cmd: Command, path: string): string {
  const opts = cmd.options && Object.keys(cmd.options).length > 0 ? " [options]" : "";
  const sub = cmd.subcommands && !cmd.run ? " <command>" : cmd.subcommands ? " [command]" : "";
  return `Usage: ${path}${sub}${opts}${cmd.usage ? " " + cmd.usage : ""}`;
}

/** The `--help` text of a command. */
export function helpText(cmd: Command, path: string): string {
  const lines = [usageLine(cmd, path), "", cmd.summary];
  if (cmd.description) lines.push("", cmd.description.trim());
  if (cmd.subcommands?.length) {
    lines.push("", "Commands:");
    const w = Math.max(...cmd.subcommands.map((c) => c.name.length));
    for (const c of cmd.subcommands) lines.push(`  ${c.name.padEnd(w)}  ${c.summary}`);
  }
  const section = (title: string, specs: Readonly<Record<string, OptionSpec>>) => {
    const rows = Object.entries(specs).map(([k, s]) => {
      const flag = `${s.short ? `-${s.short}, ` : ""}--${k}${
        s.type === "string" ? ` ${s.arg ?? "VALUE"}` : ""
      }`;
      const extra = s.default !== undefined ? ` (default ${s.default})` : "";
      return [flag, s.description + extra + (s.multiple ? "; repeatable" : "")];
    });
    if (rows.length === 0) return;
    const w = Math.max(...rows.map((r) => r[0].length));
    lines.push("", title);
    for (const [f, d] of rows) lines.push(`  ${f.padEnd(w)}  ${d}`);
  };
  if (cmd.options) section("Options:", cmd.options);
  section("Global options:", GLOBAL_OPTIONS);
  if (cmd.examples?.length) {
    lines.push("", "Examples:");
    for (const e of cmd.examples) lines.push(`  ${e}`);
  }
  if (cmd.subcommands?.length) {
    lines.push("", `Run '${path} <command> --help' for a command's options.`);
  }
  return lines.join("\n");
}

/** Reads a required string option or throws {@link UsageError}. */
export function requireOption(ctx: Context, name: string): string {
  const v = ctx.options[name];
  if (typeof v !== "string" || v === "") throw new UsageError(`missing --${name}`);
  return v;
}
