/**
 * Whether a certificate's validity period is fine now: not yet valid and
 * expired fail; close to expiry (within a threshold, or past a share of its
 * lifetime) warns. Pure: the time is an argument.
 *
 * @module
 */
import { formatDate, formatSpan } from "./_format.ts";

/** The dates of a certificate. */
export interface ValidityPeriod {
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Options for {@link evaluateValidity}. */
export interface ValidityOptions {
  readonly now: Date;
  /** Warn when it expires within this long. */
  readonly warnWithinMs: number;
  /** Warn past this share of the lifetime (default 0.8, Istio's renewal point is 0.5). */
  readonly lifetimeShare?: number;
  /** What to do when it expires soon or has expired, e.g. the re-issue command. */
  readonly renewHint: string;
}

/** The verdict on one certificate's dates. */
export interface ValidityVerdict {
  readonly status: "ok" | "warn" | "fail";
  readonly detail: string;
  readonly hint?: string;
  /** Milliseconds until notAfter (negative once expired). */
  readonly remainingMs: number;
}

/** The hint when a certificate is not valid yet: the clock, most likely. */
export const CLOCK_HINT =
  "this host's clock may be behind: compare it with the CA (the clock check) and run chrony or systemd-timesyncd";

/**
 * Evaluates `cert`'s dates at `o.now`.
 *
 * @example
 * ```ts
 * const v = evaluateValidity(
 *   { notBefore: new Date("2026-01-01"), notAfter: new Date("2026-01-03") },
 *   { now: new Date("2026-01-02T23:00:00Z"), warnWithinMs: 7 * 86400e3, renewHint: "re-issue" },
 * );
 * // v.status === "warn": expires in 1h
 * ```
 */
export function evaluateValidity(cert: ValidityPeriod, o: ValidityOptions): ValidityVerdict {
  const now = o.now.getTime();
  const start = cert.notBefore.getTime();
  const end = cert.notAfter.getTime();
  const remainingMs = end - now;
  const until = formatDate(cert.notAfter);
  if (now < start) {
    return {
      status: "fail",
      detail: `not valid until ${formatDate(cert.notBefore)} (in ${formatSpan(start - now)})`,
      hint: CLOCK_HINT,
      remainingMs,
    };
  }
  if (remainingMs <= 0) {
    return {
      status: "fail",
      detail: `expired ${until} (${formatSpan(-remainingMs)} ago)`,
      hint: o.renewHint,
      remainingMs,
    };
  }
  if (remainingMs <= o.warnWithinMs) {
    return {
      status: "warn",
      detail: `expires in ${formatSpan(remainingMs)} (${until})`,
      hint: o.renewHint,
      remainingMs,
    };
  }
  const share = o.lifetimeShare ?? 0.8;
  const lifetime = end - start;
  if (lifetime > 0 && now - start >= share * lifetime) {
    return {
      status: "warn",
      detail: `${Math.floor(((now - start) / lifetime) * 100)}% of its lifetime used, expires in ${
        formatSpan(remainingMs)
      } (${until})`,
      hint: o.renewHint,
      remainingMs,
    };
  }
  return {
    status: "ok",
    detail: `valid until ${until} (${formatSpan(remainingMs)} left)`,
    remainingMs,
  };
}
