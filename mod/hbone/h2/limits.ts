/**
 * Abuse limits of an HTTP/2 connection and the token bucket that enforces
 * the rate-based ones.
 *
 * @module
 */

/** Limits that keep a misbehaving peer from costing unbounded memory or CPU. */
export interface H2Limits {
  /** Largest decoded header list (RFC 9113 §10.5.1), octets as HPACK counts them. */
  readonly maxHeaderListSize: number;
  /** Largest compressed header block, HEADERS plus CONTINUATION (CVE-2024-27316). */
  readonly maxHeaderBlockSize: number;
  /** Most CONTINUATION frames in one header block. */
  readonly maxContinuations: number;
  /** Streams the peer may reset before they were answered: burst, then per second (CVE-2023-44487). */
  readonly earlyResets: Rate;
  /** Frames that carry nothing (PING, SETTINGS, PRIORITY, empty DATA, unknown types). */
  readonly emptyFrames: Rate;
  /** Control frames we answer with while the socket is not draining (PING and SETTINGS floods). */
  readonly maxQueuedControl: number;
}

/** A burst and a sustained rate. */
export interface Rate {
  readonly burst: number;
  readonly perSecond: number;
}

/** The defaults: generous for real clients, fatal for floods. */
export const DEFAULT_LIMITS: H2Limits = {
  maxHeaderListSize: 64 << 10,
  maxHeaderBlockSize: 64 << 10,
  maxContinuations: 64,
  earlyResets: { burst: 1000, perSecond: 200 },
  emptyFrames: { burst: 10_000, perSecond: 2_000 },
  maxQueuedControl: 10_000,
};

/** A token bucket: {@link take} fails once the burst is spent faster than the rate refills it. */
export class TokenBucket {
  #tokens: number;
  #at: number;

  constructor(readonly rate: Rate, readonly now: () => number = Date.now) {
    this.#tokens = rate.burst;
    this.#at = now();
  }

  /** Takes one token; false when none is left. */
  take(): boolean {
    const t = this.now();
    if (t > this.#at) {
      this.#tokens = Math.min(
        this.rate.burst,
        this.#tokens + (t - this.#at) * this.rate.perSecond / 1000,
      );
      this.#at = t;
    }
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}
