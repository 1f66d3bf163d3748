/**
 * Connection-pool limits as Envoy's circuit breakers, from a DestinationRule's
 * `connectionPool`:
 *
 * | kind         | setting                         | on overflow (what the caller does)              |
 * | ------------ | ------------------------------- | ----------------------------------------------- |
 * | `connection` | `tcp.maxConnections`            | open no new connection; queue as `pending`      |
 * | `pending`    | `http.http1MaxPendingRequests`  | answer 503, response flag `UO`                  |
 * | `request`    | `http.http2MaxRequests`         | answer 503, response flag `UO`                  |
 * | `retry`      | `http.maxRetries`               | do not retry; return the last upstream answer   |
 *
 * `http2MaxRequests` bounds concurrent requests whatever the protocol (it is
 * Envoy's `max_requests`). Unset limits are unlimited, as Istio sets them
 * (its defaults are 2^32-1, not Envoy's 1024). `maxRequestsPerConnection`
 * is not a concurrency limit: {@link CircuitBreaker.connectionSpent} tells
 * when a connection has carried its share (0 or unset: no limit).
 *
 * @example
 * ```ts
 * const slot = breaker.tryAcquire("request");
 * if (!slot.ok) return respond(slot.status, slot.flag); // 503 UO
 * try { await forward(); } finally { slot.release(); }
 * ```
 *
 * @module
 */
import type { ConnectionPoolSettings } from "./traffic_policy.ts";

/** What a slot is taken for. */
export type LimitKind = "connection" | "pending" | "request" | "retry";

/** A slot was free: call `release` exactly once when done (later calls do nothing). */
export interface Acquired {
  readonly ok: true;
  release(): void;
}

/** The limit is reached: the circuit breaker is open for `kind`. */
export interface Overflow {
  readonly ok: false;
  readonly kind: LimitKind;
  readonly limit: number;
  /** Status to answer with (`pending`, `request`); callers of `connection`/`retry` see the table. */
  readonly status: 503;
  /** Istio/Envoy response flag: upstream overflow. */
  readonly flag: "UO";
}

/** Per-upstream circuit breaker over the connection-pool limits. */
export class CircuitBreaker {
  readonly #limits: Readonly<Record<LimitKind, number>>;
  readonly #inUse: Record<LimitKind, number> = { connection: 0, pending: 0, request: 0, retry: 0 };
  readonly #overflows: Record<LimitKind, number> = {
    connection: 0,
    pending: 0,
    request: 0,
    retry: 0,
  };
  readonly #perConnection: number;

  constructor(settings: ConnectionPoolSettings = {}) {
    const max = (n: number | undefined) => n ?? Infinity;
    this.#limits = {
      connection: max(settings.tcp?.maxConnections),
      pending: max(settings.http?.http1MaxPendingRequests),
      request: max(settings.http?.http2MaxRequests),
      retry: max(settings.http?.maxRetries),
    };
    this.#perConnection = settings.http?.maxRequestsPerConnection || Infinity;
  }

  /** Takes a slot of `kind`, or reports the overflow (and counts it). */
  tryAcquire(kind: LimitKind): Acquired | Overflow {
    const limit = this.#limits[kind];
    if (this.#inUse[kind] >= limit) {
      this.#overflows[kind]++;
      return { ok: false, kind, limit, status: 503, flag: "UO" };
    }
    this.#inUse[kind]++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.#inUse[kind]--;
      },
    };
  }

  /** Whether a connection that has carried `requests` requests must not take another. */
  connectionSpent(requests: number): boolean {
    return requests >= this.#perConnection;
  }

  /** Slots in use, limits and overflow counts per kind (for metrics and the admin API). */
  stats(): Record<LimitKind, { inUse: number; limit: number; overflows: number }> {
    const out = {} as Record<LimitKind, { inUse: number; limit: number; overflows: number }>;
    for (const k of Object.keys(this.#inUse) as LimitKind[]) {
      out[k] = { inUse: this.#inUse[k], limit: this.#limits[k], overflows: this.#overflows[k] };
    }
    return out;
  }
}
