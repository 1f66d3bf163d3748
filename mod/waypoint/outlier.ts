/**
 * Outlier detection (passive health checking) as a DestinationRule's
 * `outlierDetection` configures it, with Envoy's semantics:
 *
 * - **Counting.** A 5xx response counts toward `consecutive5xxErrors`
 *   (default 5; 0 turns it off); 502/503/504 also count toward
 *   `consecutiveGatewayErrors` (default off), and any other 5xx resets that
 *   streak. Any non-5xx response resets both. Local-origin failures
 *   (`connect_failure`, `timeout`, `reset`) count as 503, 504 and 503 while
 *   `splitExternalLocalOriginErrors` is false (Envoy maps them that way);
 *   when it is true they count only toward `consecutiveLocalOriginFailures`
 *   (default 5), which any response resets.
 * - **Ejection** happens inline when a streak reaches its threshold, unless
 *   it would make the ejected share exceed `maxEjectionPercent` (default 10);
 *   one ejection is always allowed when none is in force (Envoy's
 *   documented algorithm: "if no hosts have been ejected, Envoy will eject
 *   the host immediately"). A host held back by the cap is ejected on its
 *   next failure if there is room by then (Envoy tries only once per streak).
 * - **Duration**: `baseEjectionTime` (default 30s) × the host's ejection
 *   multiplier, which each ejection raises by one and each sweep that finds
 *   the host healthy lowers by one, capped at Envoy's `max_ejection_time`
 *   (300s; Istio does not expose it). Sweeps run every `interval` (default
 *   10s) from the detector's creation and return hosts whose time is up, so
 *   a host is back at the first sweep after its time.
 * - **minHealthPercent** (default 0, off): below that share of non-ejected
 *   endpoints, `eligible()` returns every endpoint (Envoy's panic mode, which
 *   Istio maps it to); ejections are still tracked.
 *
 * Time comes from the injected clock only; sweeps are computed when the
 * detector is next asked, so it needs no timers.
 *
 * @module
 */
import type { Endpoint } from "../config/snapshot.ts";
import type { Clock } from "../util/clock.ts";
import { endpointKey } from "./_endpoint_key.ts";
import { ResilienceConfigError } from "./resilience_error.ts";
import { durationMs, type OutlierDetectionSettings } from "./traffic_policy.ts";

/** What happened to one request: the upstream's status, or a local-origin failure. */
export type OutlierOutcome = number | "connect_failure" | "timeout" | "reset";

/** Options of {@link OutlierDetector}. */
export interface OutlierOptions {
  /** Time source (default the system clock). */
  clock?: Pick<Clock, "now">;
  /** Longest ejection (Envoy's `max_ejection_time`, default 300 000 ms). */
  maxEjectionTimeMs?: number;
  /** Called when an endpoint is ejected, with the time it may return. */
  onEject?: (key: string, untilMs: number) => void;
}

interface HostState {
  c5xx: number;
  cGateway: number;
  cLocal: number;
  multiplier: number;
  ejectedAt?: number;
}

const GATEWAY = new Set([502, 503, 504]);
const LOCAL_AS_STATUS = { connect_failure: 503, timeout: 504, reset: 503 } as const;

/** Per-upstream outlier detector; see the module doc for the semantics. */
export class OutlierDetector {
  readonly #hosts = new Map<string, HostState>();
  readonly #clock: Pick<Clock, "now">;
  readonly #onEject?: (key: string, untilMs: number) => void;
  readonly #cfg: {
    c5xx: number;
    cGateway: number;
    cLocal: number;
    split: boolean;
    intervalMs: number;
    baseMs: number;
    maxMs: number;
    maxEjectionPercent: number;
    minHealthPercent: number;
  };
  #nextSweep: number;

  constructor(settings: OutlierDetectionSettings = {}, options: OutlierOptions = {}) {
    const intervalMs = durationMs("outlierDetection.interval", settings.interval, 10_000);
    const baseMs = durationMs(
      "outlierDetection.baseEjectionTime",
      settings.baseEjectionTime,
      30_000,
    );
    if (intervalMs <= 0) {
      throw new ResilienceConfigError("outlierDetection.interval", "must be > 0");
    }
    if (baseMs <= 0) {
      throw new ResilienceConfigError("outlierDetection.baseEjectionTime", "must be > 0");
    }
    this.#cfg = {
      c5xx: settings.consecutive5xxErrors ?? 5,
      cGateway: settings.consecutiveGatewayErrors ?? 0,
      cLocal: settings.consecutiveLocalOriginFailures ?? 5,
      split: settings.splitExternalLocalOriginErrors ?? false,
      intervalMs,
      baseMs,
      maxMs: Math.max(baseMs, options.maxEjectionTimeMs ?? 300_000),
      maxEjectionPercent: settings.maxEjectionPercent ?? 10,
      minHealthPercent: settings.minHealthPercent ?? 0,
    };
    this.#clock = options.clock ?? { now: () => Date.now() };
    this.#onEject = options.onEject;
    this.#nextSweep = this.#clock.now() + intervalMs;
  }

  /** Records the outcome of one request to `ep`; may eject it. */
  report(ep: Endpoint, outcome: OutlierOutcome): void {
    this.#catchUp();
    const h = this.#host(endpointKey(ep));
    if (h.ejectedAt !== undefined) return; // late answers from before the ejection
    const { c5xx, cGateway, cLocal, split } = this.#cfg;
    if (typeof outcome !== "number" && split) {
      h.cLocal++;
      if (cLocal > 0 && h.cLocal >= cLocal) this.#tryEject(endpointKey(ep), h);
      return;
    }
    if (typeof outcome === "number") h.cLocal = 0; // the connection worked
    const status = typeof outcome === "number" ? outcome : LOCAL_AS_STATUS[outcome];
    if (status < 500 || status > 599) {
      h.c5xx = 0;
      h.cGateway = 0;
      return;
    }
    h.c5xx++;
    h.cGateway = GATEWAY.has(status) ? h.cGateway + 1 : 0;
    if ((c5xx > 0 && h.c5xx >= c5xx) || (cGateway > 0 && h.cGateway >= cGateway)) {
      this.#tryEject(endpointKey(ep), h);
    }
  }

  /** Whether `ep` is ejected now. */
  isEjected(ep: Endpoint): boolean {
    this.#catchUp();
    return this.#hosts.get(endpointKey(ep))?.ejectedAt !== undefined;
  }

  /** When `ep` may return (epoch ms), or undefined when it is not ejected. */
  ejectedUntil(ep: Endpoint): number | undefined {
    this.#catchUp();
    const h = this.#hosts.get(endpointKey(ep));
    return h?.ejectedAt === undefined ? undefined : h.ejectedAt + this.#duration(h);
  }

  /**
   * The endpoints to balance over: those not ejected, or all of them when the
   * healthy share is below `minHealthPercent`. Also registers `endpoints`, so
   * the ejection cap counts them.
   */
  eligible(endpoints: readonly Endpoint[]): readonly Endpoint[] {
    this.#catchUp();
    for (const ep of endpoints) this.#host(endpointKey(ep));
    const healthy = endpoints.filter((ep) =>
      this.#hosts.get(endpointKey(ep))!.ejectedAt === undefined
    );
    if (healthy.length === endpoints.length) return endpoints;
    if (healthy.length * 100 < this.#cfg.minHealthPercent * endpoints.length) return endpoints;
    return healthy;
  }

  /** Makes `endpoints` the upstream's whole set: state of endpoints that left is dropped. */
  update(endpoints: readonly Endpoint[]): void {
    const keep = new Set(endpoints.map(endpointKey));
    for (const k of [...this.#hosts.keys()]) if (!keep.has(k)) this.#hosts.delete(k);
    for (const k of keep) this.#host(k);
  }

  /** Number of endpoints ejected now. */
  get ejectedCount(): number {
    this.#catchUp();
    return [...this.#hosts.values()].filter((h) => h.ejectedAt !== undefined).length;
  }

  #host(key: string): HostState {
    let h = this.#hosts.get(key);
    if (!h) this.#hosts.set(key, h = { c5xx: 0, cGateway: 0, cLocal: 0, multiplier: 0 });
    return h;
  }

  #tryEject(key: string, h: HostState): void {
    const ejected = [...this.#hosts.values()].filter((x) => x.ejectedAt !== undefined).length;
    const { maxEjectionPercent, baseMs, maxMs } = this.#cfg;
    const fits = (ejected + 1) * 100 <= maxEjectionPercent * this.#hosts.size;
    if (maxEjectionPercent <= 0 || (ejected > 0 && !fits)) return;
    h.ejectedAt = this.#clock.now();
    h.multiplier = Math.min(h.multiplier + 1, Math.ceil(maxMs / baseMs));
    this.#onEject?.(key, h.ejectedAt + this.#duration(h));
  }

  #duration(h: HostState): number {
    return Math.min(this.#cfg.baseMs * h.multiplier, this.#cfg.maxMs);
  }

  /** Runs the sweeps that fell due since the last call. */
  #catchUp(): void {
    const now = this.#clock.now();
    const { intervalMs } = this.#cfg;
    while (this.#nextSweep <= now) {
      if (![...this.#hosts.values()].some((h) => h.ejectedAt !== undefined || h.multiplier > 0)) {
        // Nothing to return or decay: skip the idle sweeps at once.
        this.#nextSweep += (Math.floor((now - this.#nextSweep) / intervalMs) + 1) * intervalMs;
        return;
      }
      this.#sweep(this.#nextSweep);
      this.#nextSweep += intervalMs;
    }
  }

  #sweep(at: number): void {
    for (const h of this.#hosts.values()) {
      if (h.ejectedAt === undefined) {
        if (h.multiplier > 0) h.multiplier--;
      } else if (at >= h.ejectedAt + this.#duration(h)) {
        h.ejectedAt = undefined;
        h.c5xx = h.cGateway = h.cLocal = 0;
      }
    }
  }
}
