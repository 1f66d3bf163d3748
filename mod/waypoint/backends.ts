/**
 * Per-backend resilience state of a waypoint, by service host: the load
 * balancer, the outlier detector and the circuit breaker that the host's
 * DestinationRule asks for. Balancers and breakers follow config changes;
 * outlier state survives reloads (an ejected endpoint stays ejected).
 *
 * @module
 */
import type { Endpoint, ServiceInfo, Snapshot } from "../config/snapshot.ts";
import { type Balancer, createBalancer } from "./lb.ts";
import { OutlierDetector } from "./outlier.ts";
import { CircuitBreaker } from "./pool_limits.ts";
import type { TrafficPolicy } from "./traffic_policy.ts";

/** The state for one backend host. */
export interface BackendState {
  readonly balancer: Balancer;
  /** Only when the DestinationRule sets outlierDetection (Istio has none by default). */
  readonly outlier?: OutlierDetector;
  readonly breaker: CircuitBreaker;
  /** Endpoints serving `port` with a weight above 0. */
  endpoints(port: number): readonly Endpoint[];
}

/** The DestinationRule traffic policy for a service host (the oldest rule's). */
export function trafficPolicyFor(s: Snapshot, host: string): TrafficPolicy | undefined {
  const rules = s.destinationRules.get(host) ?? [];
  const spec = rules[0]?.spec as { trafficPolicy?: TrafficPolicy } | undefined;
  return spec?.trafficPolicy;
}

/** Backend states of one waypoint. */
export class Backends {
  #states = new Map<string, { key: string; state: BackendState }>();
  #outliers = new Map<string, { key: string; detector?: OutlierDetector }>();

  constructor(readonly options: { random?: () => number; now?: () => number } = {}) {}

  /** Endpoint keys ejected now, by host (for the admin API and logs). */
  ejected(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [host, o] of this.#outliers) if (o.detector) out[host] = o.detector.ejectedCount;
    return out;
  }

  #bySnapshot = new WeakMap<Snapshot, Map<string, BackendState>>();

  /** The state for `svc` under `snapshot`'s DestinationRules (worked out once per snapshot). */
  for(snapshot: Snapshot, svc: ServiceInfo): BackendState {
    let m = this.#bySnapshot.get(snapshot);
    if (!m) this.#bySnapshot.set(snapshot, m = new Map());
    let st = m.get(svc.key);
    if (!st) m.set(svc.key, st = this.#resolve(snapshot, svc));
    return st;
  }

  #resolve(snapshot: Snapshot, svc: ServiceInfo): BackendState {
    const policy = trafficPolicyFor(snapshot, svc.hostname);
    const key = JSON.stringify(policy ?? {});
    const outlier = this.#outlier(svc.hostname, policy);
    const have = this.#states.get(svc.hostname);
    if (have && have.key === key && have.state.outlier === outlier) {
      return { ...have.state, endpoints: (port) => serving(snapshot, svc, port) };
    }
    const state: BackendState = {
      balancer: createBalancer(policy?.loadBalancer, { random: this.options.random }),
      outlier,
      breaker: new CircuitBreaker(policy?.connectionPool),
      endpoints: (port) => serving(snapshot, svc, port),
    };
    this.#states.set(svc.hostname, { key, state });
    return state;
  }

  #outlier(host: string, policy: TrafficPolicy | undefined): OutlierDetector | undefined {
    const key = JSON.stringify(policy?.outlierDetection ?? null);
    const have = this.#outliers.get(host);
    if (have && have.key === key) return have.detector;
    const now = this.options.now;
    const detector = policy?.outlierDetection
      ? new OutlierDetector(policy.outlierDetection, now ? { clock: { now } } : {})
      : undefined;
    this.#outliers.set(host, { key, detector });
    return detector;
  }
}

function serving(snapshot: Snapshot, svc: ServiceInfo, port: number): Endpoint[] {
  const now = snapshot.services.get(svc.key) ?? svc;
  return now.endpoints.filter((e) => e.ports[port] !== undefined && e.weight > 0);
}
