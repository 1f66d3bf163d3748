/**
 * The results of `ambit check`: one named result per check (`ok`, `warn`,
 * `fail` or `skip`), each with a one-line detail, a hint for what to do
 * when it is not ok, and optional items (one port, one peer). Pure.
 *
 * @module
 */

/** How a check came out. */
export type CheckStatus = "ok" | "warn" | "fail" | "skip";

/** One thing a check looked at: a port, a peer, a certificate, a config issue. */
export interface CheckItem {
  readonly status: CheckStatus;
  /** What was looked at, e.g. `127.0.0.1:15053/udp dns` or `node-b 10.0.0.2:15008`. */
  readonly subject: string;
  readonly detail: string;
  readonly hint?: string;
}

/** The outcome of one check. */
export interface CheckResult {
  /** Stable name: config, ports, certificates, ca, peers, clock, upgrade. */
  readonly name: string;
  readonly status: CheckStatus;
  /** One line saying what was found. */
  readonly detail: string;
  /** What to do; present for warn and fail. */
  readonly hint?: string;
  readonly items?: readonly CheckItem[];
  /** Measurements for machines (RTTs, skew, expiry), in `--output json`. */
  readonly data?: Readonly<Record<string, unknown>>;
}

/** Counts of results by status. */
export type StatusCounts = Record<CheckStatus, number>;

const RANK: Record<CheckStatus, number> = { skip: 0, ok: 1, warn: 2, fail: 3 };

/** The worse of statuses: fail over warn over ok over skip; `ok` for none. */
export function worstStatus(statuses: Iterable<CheckStatus>): CheckStatus {
  let worst: CheckStatus | undefined;
  for (const s of statuses) if (worst === undefined || RANK[s] > RANK[worst]) worst = s;
  return worst ?? "ok";
}

/** Counts results by status. */
export function countStatuses(results: readonly { status: CheckStatus }[]): StatusCounts {
  const c: StatusCounts = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const r of results) c[r.status]++;
  return c;
}

/** Exit status of `ambit check`: 1 when any check failed, else 0 (warnings allowed). */
export function exitCodeFor(results: readonly CheckResult[]): 0 | 1 {
  return results.some((r) => r.status === "fail") ? 1 : 0;
}

/** The summary line, e.g. `5 ok, 1 warning, 1 failed, 0 skipped: not ready to run`. */
export function summaryLine(results: readonly CheckResult[]): string {
  const c = countStatuses(results);
  const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  const verdict = c.fail > 0
    ? "fix the failures above before starting"
    : c.warn > 0
    ? "ready to start (see the warnings)"
    : "ready to start";
  return `${c.ok} ok, ${plural(c.warn, "warning", "warnings")}, ${c.fail} failed, ` +
    `${c.skip} skipped: ${verdict}`;
}
