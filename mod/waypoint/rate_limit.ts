/**
 * Local rate limiting as Envoy's `local_ratelimit` filter: a token bucket
 * that starts full with `maxTokens` and gains `tokensPerFill` (default 1)
 * every `fillInterval` (at least 50 ms, as Envoy requires), never holding
 * more than `maxTokens`. Fills are discrete, at multiples of the interval
 * from the limiter's creation, as Envoy's fill timer adds them. A request
 * takes one token or is refused.
 *
 * Scope: one {@link LocalRateLimiter} per route rule (per-route limit) or one
 * for the whole waypoint, as the data path chooses; the bucket is per
 * process, as Envoy's is per Envoy process.
 *
 * Refusals answer **429** (configurable `status`) with body
 * `local_rate_limited`, response flag `RL` and header
 * `x-envoy-ratelimited: true`, as Envoy does. With
 * `enableXRateLimitHeaders: "DRAFT_VERSION_03"` every answer (allowed or
 * refused) also carries the IETF draft-03 headers Envoy sends:
 * `x-ratelimit-limit` (maxTokens), `x-ratelimit-remaining` (tokens left)
 * and `x-ratelimit-reset` (seconds to the next fill, rounded up).
 *
 * {@link LocalRateLimitConfig} mirrors Envoy's `LocalRateLimit` in camelCase;
 * the config kind `LocalRateLimit` (`mod/config/kinds/local_rate_limit.ts`)
 * carries it, and a checked spec can be passed as it is.
 *
 * @module
 */
import { parseDuration } from "../config/formats.ts";
import type { Clock } from "../util/clock.ts";
import { ResilienceConfigError } from "./resilience_error.ts";

/** Envoy `LocalRateLimit` (the parts ambit uses). */
export interface LocalRateLimitConfig {
  tokenBucket: {
    /** Bucket size, and the tokens it starts with. 0 refuses everything. */
    maxTokens: number;
    /** Tokens added per fill (default 1). */
    tokensPerFill?: number;
    /** Time between fills, e.g. `1s`; at least 50ms. */
    fillInterval: string;
  };
  /** Status of a refusal (default 429). */
  status?: number;
  /** Send the draft-03 `x-ratelimit-*` headers (default `OFF`). */
  enableXRateLimitHeaders?: "OFF" | "DRAFT_VERSION_03";
}

/** The outcome of one {@link LocalRateLimiter.take}. */
export interface RateLimitDecision {
  readonly allowed: boolean;
  /** Status to answer when refused. */
  readonly status: number;
  /** Headers to add to the response (refused: always some; allowed: only with draft-03). */
  readonly headers: Readonly<Record<string, string>>;
}

/** Response flag of a locally rate-limited request. */
export const RATE_LIMITED_FLAG = "RL";
/** Body of a refusal, as Envoy's. */
export const RATE_LIMITED_BODY = "local_rate_limited";

/** A token bucket; see the module doc. */
export class LocalRateLimiter {
  readonly #max: number;
  readonly #perFill: number;
  readonly #intervalMs: number;
  readonly #status: number;
  readonly #draft03: boolean;
  readonly #clock: Pick<Clock, "now">;
  #tokens: number;
  #lastFill: number;

  constructor(config: LocalRateLimitConfig, options: { clock?: Pick<Clock, "now"> } = {}) {
    const b = config.tokenBucket;
    const field = "localRateLimit.tokenBucket";
    if (!Number.isInteger(b.maxTokens) || b.maxTokens < 0) {
      throw new ResilienceConfigError(
        `${field}.maxTokens`,
        `${b.maxTokens} is not a whole number >= 0`,
      );
    }
    const perFill = b.tokensPerFill ?? 1;
    if (!Number.isInteger(perFill) || perFill < 1) {
      throw new ResilienceConfigError(
        `${field}.tokensPerFill`,
        `${perFill} is not a whole number >= 1`,
      );
    }
    const interval = parseDuration(b.fillInterval);
    if (interval === undefined || interval < 50) {
      throw new ResilienceConfigError(
        `${field}.fillInterval`,
        `"${b.fillInterval}" is not a duration of at least 50ms`,
      );
    }
    const status = config.status ?? 429;
    if (!Number.isInteger(status) || status < 400 || status > 599) {
      throw new ResilienceConfigError("localRateLimit.status", `${status} is not in 400-599`);
    }
    this.#max = b.maxTokens;
    this.#perFill = perFill;
    this.#intervalMs = interval;
    this.#status = status;
    this.#draft03 = config.enableXRateLimitHeaders === "DRAFT_VERSION_03";
    this.#clock = options.clock ?? { now: () => Date.now() };
    this.#tokens = this.#max;
    this.#lastFill = this.#clock.now();
  }

  /** Takes a token if there is one. */
  tryTake(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }

  /** Takes a token and says what to answer, with the headers to add. */
  take(): RateLimitDecision {
    const allowed = this.tryTake();
    const headers: Record<string, string> = {};
    if (!allowed) headers["x-envoy-ratelimited"] = "true";
    if (this.#draft03) {
      headers["x-ratelimit-limit"] = String(this.#max);
      headers["x-ratelimit-remaining"] = String(this.#tokens);
      headers["x-ratelimit-reset"] = String(Math.ceil(this.msToNextFill() / 1000));
    }
    return { allowed, status: this.#status, headers };
  }

  /** Tokens in the bucket now. */
  get tokens(): number {
    this.#refill();
    return this.#tokens;
  }

  /** Milliseconds until the next fill. */
  msToNextFill(): number {
    this.#refill();
    return this.#lastFill + this.#intervalMs - this.#clock.now();
  }

  #refill(): void {
    const fills = Math.floor((this.#clock.now() - this.#lastFill) / this.#intervalMs);
    if (fills <= 0) return;
    this.#lastFill += fills * this.#intervalMs;
    this.#tokens = Math.min(this.#max, this.#tokens + fills * this.#perFill);
  }
}
