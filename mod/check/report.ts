/**
 * How `ambit check` prints its results: text (a line per check, the items
 * that need attention under it, a summary line) or one JSON object. Pure.
 *
 * @module
 */
import {
  type CheckItem,
  type CheckResult,
  countStatuses,
  exitCodeFor,
  summaryLine,
} from "./result.ts";

/** What `--output json` prints. */
export interface CheckReport {
  /** True when nothing failed (warnings allowed). */
  readonly ok: boolean;
  readonly exitCode: number;
  readonly role: "ztunnel" | "waypoint";
  /** The node, or the waypoint as namespace/name. */
  readonly name: string;
  readonly summary: Record<string, number>;
  readonly checks: readonly CheckResult[];
}

/** The JSON report. */
export function jsonReport(
  results: readonly CheckResult[],
  who: { role: "ztunnel" | "waypoint"; name: string },
): CheckReport {
  const exitCode = exitCodeFor(results);
  return {
    ok: exitCode === 0,
    exitCode,
    role: who.role,
    name: who.name,
    summary: countStatuses(results),
    checks: results,
  };
}

/** Names of checks whose every item is listed in text output, not only the problems. */
const LIST_ALL = new Set(["peers"]);

/**
 * The text report: `ok    config        5 files, ...`, then for each check its
 * hint and the items that are not ok (every item for peers), then the summary.
 */
export function textReport(results: readonly CheckResult[]): string[] {
  const width = Math.max(12, ...results.map((r) => r.name.length));
  const lines: string[] = [];
  for (const r of results) {
    lines.push(`${r.status.padEnd(5)} ${r.name.padEnd(width)}  ${r.detail}`);
    const items = (r.items ?? []).filter((i) => LIST_ALL.has(r.name) || i.status !== "ok");
    const hints = new Set(items.filter(needsHint).map((i) => i.hint));
    // One hint shared by every listed item is said once, after them.
    const shared = hints.size === 1 && items.filter(needsHint).length > 1;
    for (const i of items) lines.push(...itemLines(i, !shared));
    const hint = shared ? [...hints][0] : hints.size === 0 ? r.hint : undefined;
    if (hint && r.status !== "ok" && r.status !== "skip") lines.push(`      hint: ${hint}`);
  }
  lines.push(summaryLine(results));
  return lines;
}

function needsHint(i: CheckItem): boolean {
  return i.hint !== undefined && i.status !== "ok" && i.status !== "skip";
}

function itemLines(i: CheckItem, withHint: boolean): string[] {
  const out = [`      ${i.status.padEnd(5)} ${i.subject}: ${i.detail}`];
  if (withHint && needsHint(i)) out.push(`            hint: ${i.hint}`);
  return out;
}
