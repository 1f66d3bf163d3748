/**
 * Clock skew against the CA: the CA's HTTP `Date` header compared with
 * this host's clock at the middle of the request. Certificates are
 * short-lived and backdated only 2 minutes, so a few seconds matter.
 * {@link skewFromDate} and {@link evaluateSkew} are pure.
 *
 * @module
 */
import { formatSpan } from "./_format.ts";
import type { CheckResult } from "./result.ts";

/** Warn above this skew. */
export const SKEW_WARN_MS = 5_000;
/** Fail above this skew. */
export const SKEW_FAIL_MS = 60_000;

/**
 * The CA's clock minus this host's, in ms, from a `Date` header (whole
 * seconds, so the CA's time was within [date, date+1s)) and the local times
 * the request was sent and the answer arrived. Undefined when the header
 * does not parse.
 */
export function skewFromDate(
  dateHeader: string | undefined,
  sentAt: number,
  receivedAt: number,
): { skewMs: number; uncertaintyMs: number } | undefined {
  const ca = dateHeader ? Date.parse(dateHeader) : NaN;
  if (!Number.isFinite(ca)) return undefined;
  const mid = (sentAt + receivedAt) / 2;
  return { skewMs: ca + 500 - mid, uncertaintyMs: 500 + (receivedAt - sentAt) / 2 };
}

/** The clock result for a measured skew. */
export function evaluateSkew(
  m: { skewMs: number; uncertaintyMs: number },
  ca: string,
): CheckResult {
  const abs = Math.abs(m.skewMs);
  const direction = m.skewMs > 0 ? "behind" : "ahead of";
  const data = { skewMs: Math.round(m.skewMs), uncertaintyMs: Math.round(m.uncertaintyMs) };
  const within = `±${formatSpan(m.uncertaintyMs)}`;
  if (abs <= SKEW_WARN_MS) {
    return {
      name: "clock",
      status: "ok",
      detail: `within ${formatSpan(Math.max(abs, m.uncertaintyMs))} of the CA ${ca}`,
      data,
    };
  }
  const status = abs > SKEW_FAIL_MS ? "fail" : "warn";
  return {
    name: "clock",
    status,
    detail: `this host's clock is about ${formatSpan(abs)} ${direction} the CA ${ca} (${within})`,
    hint: "certificates are short-lived: synchronise the clocks with NTP " +
      "(chrony, or systemd-timesyncd: timedatectl set-ntp true) on this host and the CA",
    data,
  };
}
