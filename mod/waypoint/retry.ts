/**
 * Retry decisions, as Envoy's router makes them for Istio's
 * VirtualService `http[].retries` and Gateway API HTTPRoute `rules[].retry`.
 *
 * **Conditions** (Envoy `retry_on`): `5xx` (any 5xx, or no answer: connect
 * failure, reset, refused stream, per-try timeout), `gateway-error` (502,
 * 503, 504, and no answer likewise), `reset` (no answer), `connect-failure`,
 * `refused-stream`, `retriable-4xx` (409), `retriable-status-codes` (the
 * listed codes; Istio also accepts bare codes such as `503` in `retryOn`),
 * and the gRPC ones matched on `grpc-status`: `cancelled`,
 * `deadline-exceeded`, `internal`, `resource-exhausted`, `unavailable`.
 * A circuit-breaker overflow is never retried.
 *
 * **Back-off**: Envoy's fully jittered exponential: retry n waits a random
 * time in [0, (2^n - 1) × base), capped at max (default 10 × base); base is
 * 25 ms unless configured (HTTPRoute `backoff`, Istio `backoff`).
 *
 * **Request bodies**: Envoy retries any method, POST included, because it
 * buffers the request body for replay; a body larger than its buffer limit
 * makes the request not retriable. ambit does the same: the data path
 * buffers up to its limit and passes `bodyReplayable: false` when the body
 * outgrew it (or was streamed away). A retry is also decided before any of
 * the response is forwarded, since the decision reads only the status.
 *
 * @module
 */
import type { httpRouteRule } from "../config/kinds/http_route.ts";
import { parseDuration } from "../config/formats.ts";
import type { Infer } from "../config/schema.ts";
import type { Random } from "./_seeded_random.ts";
import { ResilienceConfigError } from "./resilience_error.ts";

export type { Random } from "./_seeded_random.ts";

/** Gateway API `HTTPRoute` `rules[].retry`, as the config schema checks it. */
export type HTTPRouteRetry = NonNullable<Infer<typeof httpRouteRule>["retry"]>;

/** Istio `VirtualService` `http[].retries` (HTTPRetry). */
export interface IstioHTTPRetry {
  /** Retries after the first try; 0 disables retries. */
  attempts?: number;
  /** Timeout of each try, e.g. `2s`. */
  perTryTimeout?: string;
  /** Comma-separated conditions and status codes. */
  retryOn?: string;
  /** Base back-off interval. */
  backoff?: string;
  /** Accepted for compatibility; ambit has no localities to prefer. */
  retryRemoteLocalities?: boolean;
}

/** A retry condition (Envoy `retry_on` name). */
export type RetryCondition =
  | "5xx"
  | "gateway-error"
  | "reset"
  | "connect-failure"
  | "refused-stream"
  | "retriable-4xx"
  | "retriable-status-codes"
  | "cancelled"
  | "deadline-exceeded"
  | "internal"
  | "resource-exhausted"
  | "unavailable";

const GRPC_CONDITION: Partial<Record<RetryCondition, number>> = {
  cancelled: 1,
  "deadline-exceeded": 4,
  "resource-exhausted": 8,
  internal: 13,
  unavailable: 14,
};
const CONDITIONS = new Set<string>([
  "5xx",
  "gateway-error",
  "reset",
  "connect-failure",
  "refused-stream",
  "retriable-4xx",
  "retriable-status-codes",
  ...Object.keys(GRPC_CONDITION),
]);

/** A compiled retry policy. */
export interface RetryPolicy {
  /** Retries after the first try. */
  readonly attempts: number;
  readonly retryOn: ReadonlySet<RetryCondition>;
  /** Codes retried under `retriable-status-codes`. */
  readonly statusCodes: ReadonlySet<number>;
  readonly perTryTimeoutMs?: number;
  readonly backoff: { readonly baseMs: number; readonly maxMs: number };
}

/** How one try ended. */
export type AttemptOutcome =
  | { readonly status: number; readonly grpcStatus?: number }
  | {
    readonly failure:
      | "connect_failure"
      | "reset"
      | "refused_stream"
      | "per_try_timeout"
      | "overflow";
  };

/** The decision for one failed try. */
export type RetryDecision =
  | { readonly retry: true; readonly delayMs: number }
  | {
    readonly retry: false;
    readonly reason: "not_retriable" | "exhausted" | "body_not_replayable";
  };

/** Envoy's default base back-off interval. */
export const DEFAULT_BACKOFF_BASE_MS = 25;

/** Istio's retry policy when a route sets none: 2 retries on connection-level failures and 503. */
export const ISTIO_DEFAULT_RETRY: RetryPolicy = Object.freeze({
  attempts: 2,
  retryOn: new Set<RetryCondition>([
    "connect-failure",
    "refused-stream",
    "unavailable",
    "cancelled",
    "retriable-status-codes",
  ]),
  statusCodes: new Set([503]),
  backoff: { baseMs: DEFAULT_BACKOFF_BASE_MS, maxMs: 10 * DEFAULT_BACKOFF_BASE_MS },
});

const NO_ANSWER: Record<string, readonly RetryCondition[]> = {
  connect_failure: ["connect-failure", "5xx", "gateway-error", "reset"],
  refused_stream: ["refused-stream", "5xx", "gateway-error", "reset"],
  reset: ["5xx", "gateway-error", "reset"],
  per_try_timeout: ["5xx", "gateway-error", "reset"],
  overflow: [],
};

/**
 * Decides whether to retry after try number `attempt` (1 = the first try)
 * ended with `outcome`.
 *
 * @example
 * ```ts
 * shouldRetry(policy, 1, { status: 503 }, { random: Math.random }); // { retry: true, delayMs: 0..24 }
 * ```
 */
export function shouldRetry(
  policy: RetryPolicy,
  attempt: number,
  outcome: AttemptOutcome,
  options: { random?: Random; bodyReplayable?: boolean } = {},
): RetryDecision {
  if (!isRetriable(policy, outcome)) return { retry: false, reason: "not_retriable" };
  if (attempt > policy.attempts) return { retry: false, reason: "exhausted" };
  if (options.bodyReplayable === false) return { retry: false, reason: "body_not_replayable" };
  return { retry: true, delayMs: backoffMs(policy, attempt, options.random ?? Math.random) };
}

/** Whether `outcome` matches one of the policy's conditions. */
export function isRetriable(policy: RetryPolicy, outcome: AttemptOutcome): boolean {
  const on = policy.retryOn;
  if ("failure" in outcome) return NO_ANSWER[outcome.failure].some((c) => on.has(c));
  const { status, grpcStatus } = outcome;
  if (on.has("5xx") && status >= 500) return true;
  if (on.has("gateway-error") && (status === 502 || status === 503 || status === 504)) return true;
  if (on.has("retriable-4xx") && status === 409) return true;
  if (on.has("retriable-status-codes") && policy.statusCodes.has(status)) return true;
  if (grpcStatus === undefined) return false;
  return [...on].some((c) => GRPC_CONDITION[c] === grpcStatus);
}

/** The wait before retry number `retry` (1-based): uniform in [0, min((2^n - 1) × base, max)). */
export function backoffMs(policy: RetryPolicy, retry: number, random: Random): number {
  const { baseMs, maxMs } = policy.backoff;
  const ceiling = Math.min((2 ** Math.min(retry, 30) - 1) * baseMs, maxMs);
  return Math.floor(random() * ceiling);
}

/** The timeout of the next try: the per-try timeout, bounded by what is left of the request's. */
export function tryTimeoutMs(policy: RetryPolicy, remainingMs?: number): number | undefined {
  const per = policy.perTryTimeoutMs;
  if (per === undefined) return remainingMs;
  return remainingMs === undefined ? per : Math.min(per, remainingMs);
}

/** Compiles Istio's `HTTPRetry`; absent, Istio's default policy; `attempts: 0` disables retries. */
export function istioRetryPolicy(retry: IstioHTTPRetry | undefined): RetryPolicy {
  if (retry === undefined) return ISTIO_DEFAULT_RETRY;
  const attempts = retry.attempts ?? 0;
  if (!Number.isInteger(attempts) || attempts < 0) {
    throw new ResilienceConfigError("retries.attempts", `${attempts} is not a whole number >= 0`);
  }
  const parsed = retry.retryOn === undefined ? undefined : parseRetryOn(retry.retryOn);
  return {
    attempts,
    retryOn: parsed?.retryOn ?? ISTIO_DEFAULT_RETRY.retryOn,
    statusCodes: parsed?.statusCodes ?? ISTIO_DEFAULT_RETRY.statusCodes,
    perTryTimeoutMs: optionalMs("retries.perTryTimeout", retry.perTryTimeout),
    backoff: backoffOf("retries.backoff", retry.backoff),
  };
}

/**
 * Compiles an HTTPRoute rule's `retry`: `attempts` retries (default 2, as
 * Istio's) on connection-level failures and on `codes` (default 500, 502,
 * 503, 504); `backendRequest` is the per-try timeout. Absent: Istio's default.
 */
export function httpRouteRetryPolicy(
  retry: HTTPRouteRetry | undefined,
  backendRequest?: string,
): RetryPolicy {
  const perTryTimeoutMs = optionalMs("timeouts.backendRequest", backendRequest);
  if (retry === undefined) return { ...ISTIO_DEFAULT_RETRY, perTryTimeoutMs };
  return {
    attempts: retry.attempts ?? 2,
    retryOn: ISTIO_DEFAULT_RETRY.retryOn,
    statusCodes: new Set(retry.codes ?? [500, 502, 503, 504]),
    perTryTimeoutMs,
    backoff: backoffOf("retry.backoff", retry.backoff),
  };
}

/** Parses Istio's `retryOn`: condition names and bare HTTP status codes. */
export function parseRetryOn(
  text: string,
): { retryOn: Set<RetryCondition>; statusCodes: Set<number> } {
  const retryOn = new Set<RetryCondition>();
  const statusCodes = new Set<number>();
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    if (/^[0-9]+$/.test(item)) {
      const code = Number(item);
      if (code < 100 || code > 599) {
        throw new ResilienceConfigError("retries.retryOn", `${item} is not an HTTP status code`);
      }
      statusCodes.add(code);
      retryOn.add("retriable-status-codes");
    } else if (CONDITIONS.has(item)) {
      retryOn.add(item as RetryCondition);
    } else {
      throw new ResilienceConfigError(
        "retries.retryOn",
        `"${item}" is not a retry condition (expected one of ${
          [...CONDITIONS].join(", ")
        }, or a status code)`,
      );
    }
  }
  return { retryOn, statusCodes };
}

function optionalMs(field: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) {
    throw new ResilienceConfigError(field, `"${value}" is not a positive duration (e.g. 2s)`);
  }
  return ms;
}

function backoffOf(field: string, value: string | undefined): RetryPolicy["backoff"] {
  const baseMs = optionalMs(field, value) ?? DEFAULT_BACKOFF_BASE_MS;
  return { baseMs, maxMs: 10 * baseMs };
}
