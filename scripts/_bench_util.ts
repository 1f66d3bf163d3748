/**
 * Helpers the benchmarks share: option parsing, rounding and medians, plain
 * text tables, the machine's load, a bare Deno process's RSS, tool versions.
 *
 * @module
 */
import { LineChild, rssBytes, run } from "./_bench_proc.ts";

/** Parses a number option within bounds. */
export function parseNum(s: string, flag: string, min: number, max: number): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new RangeError(`--${flag} "${s}" is not a number from ${min} to ${max}`);
  }
  return n;
}

/** Median of `xs` (NaN when empty). */
export const median = (xs: readonly number[]): number => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)] : NaN;
};

/** Rounded to 1, 2, 3 decimals. */
export const r1 = (x: number) => Math.round(x * 10) / 10;
/** Rounded to 2 decimals. */
export const r2 = (x: number) => Math.round(x * 100) / 100;
/** Rounded to 3 decimals. */
export const r3 = (x: number) => Math.round(x * 1000) / 1000;
/** Bytes to MiB. */
export const mib = (b: number) => b / 2 ** 20;

/** A table row: a label, then numbers or text. */
export type Row = (string | number)[];

/** A plain text table: the first row is the header, numbers right-aligned. */
export function table(rows: Row[]): string {
  const cell = (v: string | number) =>
    typeof v === "number" && !Number.isFinite(v) ? "-" : String(v);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => cell(r[c] ?? "").length)));
  return rows.map((r, i) => {
    const line = widths.map((w, c) =>
      c === 0 ? cell(r[c] ?? "").padEnd(w) : cell(r[c] ?? "").padStart(w)
    )
      .join("  ");
    return i === 0 ? `${line}\n${widths.map((w) => "-".repeat(w)).join("  ")}` : line;
  }).join("\n");
}

/** The 1, 5 and 15 minute load averages. */
export async function loadavg(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3)
    .join(" ");
}

/** RSS of a Deno process that only waits, for context. */
export async function bareDenoRssMiB(): Promise<number> {
  const c = new LineChild("bare deno", Deno.execPath(), [
    "eval",
    "console.log('ready'); await Deno.stdin.readable.getReader().read();",
  ]);
  try {
    await c.line(30_000);
    await new Promise((r) => setTimeout(r, 500));
    return r1(mib((await rssBytes(c.pid)) ?? NaN));
  } finally {
    await c.stop();
  }
}

/** The version line of a tool the benchmark needs, or an error saying how to install it. */
export async function tool(cmd: string, args: string[], hint: string): Promise<string> {
  try {
    return (await run(cmd, args)).split("\n").find((l) => /\d+\.\d+/.test(l))?.trim() ?? cmd;
  } catch (e) {
    throw new Error(`${cmd} is needed (${hint}): ${(e as Error).message.split("\n")[0]}`);
  }
}
