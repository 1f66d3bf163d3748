/**
 * Load balancers over a service's endpoints, as a DestinationRule's
 * `trafficPolicy.loadBalancer` asks: LEAST_REQUEST (the default; LEAST_CONN
 * and UNSPECIFIED mean it too), ROUND_ROBIN, RANDOM and consistentHash.
 *
 * A balancer is per upstream (service, or subset) and keeps the state its
 * policy needs (round-robin positions, requests in flight). The caller
 * passes the candidate endpoints on every pick, already filtered by outlier
 * detection (`OutlierDetector.eligible`), so an ejected endpoint is never
 * picked. Endpoints of weight 0 are out of rotation (ambit's WorkloadEntry
 * semantics).
 *
 * @example
 * ```ts
 * const lb = createBalancer({ simple: "ROUND_ROBIN" });
 * const pick = lb.pick(detector.eligible(service.endpoints), { headers });
 * if (!pick) return respond(503, "UH");
 * lb.onStart(pick.endpoint);
 * try { await forward(pick.endpoint); } finally { lb.onEnd(pick.endpoint); }
 * ```
 *
 * @module
 */
import type { Endpoint } from "../config/snapshot.ts";
import {
  ConsistentHashPicker,
  type Pick,
  randomCookieValue,
  type RequestContext,
} from "./_consistent_hash.ts";
import { endpointKey } from "./_endpoint_key.ts";
import { type Random, randomInt } from "./_seeded_random.ts";
import type { LoadBalancerSettings } from "./traffic_policy.ts";

export { type Pick, readCookie, type RequestContext } from "./_consistent_hash.ts";
export { type Random, seededRandom } from "./_seeded_random.ts";

/** The policy a balancer implements. */
export type BalancerKind = "LEAST_REQUEST" | "ROUND_ROBIN" | "RANDOM" | "CONSISTENT_HASH";

/** A load balancer for one upstream. */
export interface Balancer {
  readonly kind: BalancerKind;
  /** Chooses among `endpoints` (weight 0 skipped); undefined when none is usable (answer 503, flag `UH`). */
  pick(endpoints: readonly Endpoint[], ctx?: RequestContext): Pick | undefined;
  /** A request to `ep` started (LEAST_REQUEST counts requests in flight). */
  onStart(ep: Endpoint): void;
  /** A request to `ep` ended, however it ended. */
  onEnd(ep: Endpoint): void;
}

/** Options of {@link createBalancer}. */
export interface BalancerOptions {
  /** Uniform [0, 1) source (default `Math.random`). */
  random?: Random;
  /** Value of a generated hash cookie (default 16 random hex digits). */
  newCookieValue?: () => string;
}

/** Builds the balancer for `settings` (absent: LEAST_REQUEST). */
export function createBalancer(
  settings: LoadBalancerSettings | undefined,
  options: BalancerOptions = {},
): Balancer {
  const random = options.random ?? Math.random;
  const active = new ActiveRequests();
  const base = {
    onStart: (ep: Endpoint) => active.start(ep),
    onEnd: (ep: Endpoint) => active.end(ep),
  };
  if (settings?.consistentHash) {
    const picker = new ConsistentHashPicker(
      settings.consistentHash,
      random,
      options.newCookieValue ?? randomCookieValue,
    );
    return { kind: "CONSISTENT_HASH", ...base, pick: usable((eps, ctx) => picker.pick(eps, ctx)) };
  }
  switch (settings?.simple) {
    case "ROUND_ROBIN": {
      const rr = new SmoothRoundRobin();
      return { kind: "ROUND_ROBIN", ...base, pick: usable((eps) => ({ endpoint: rr.next(eps) })) };
    }
    case "RANDOM":
      return {
        kind: "RANDOM",
        ...base,
        pick: usable((eps) => ({ endpoint: weightedRandom(eps, (e) => e.weight, random) })),
      };
    default:
      return {
        kind: "LEAST_REQUEST",
        ...base,
        pick: usable((eps) => ({ endpoint: leastRequest(eps, active, random) })),
      };
  }
}

/** Wraps a picker: drops weight-0 endpoints and answers undefined when nothing is left. */
function usable(
  pick: (eps: readonly Endpoint[], ctx: RequestContext) => Pick,
): (eps: readonly Endpoint[], ctx?: RequestContext) => Pick | undefined {
  return (eps, ctx = {}) => {
    const list = eps.every((e) => e.weight > 0) ? eps : eps.filter((e) => e.weight > 0);
    return list.length === 0 ? undefined : pick(list, ctx);
  };
}

/** Requests in flight per endpoint. */
class ActiveRequests {
  readonly #n = new Map<string, number>();
  get(ep: Endpoint): number {
    return this.#n.get(endpointKey(ep)) ?? 0;
  }
  start(ep: Endpoint): void {
    this.#n.set(endpointKey(ep), this.get(ep) + 1);
  }
  end(ep: Endpoint): void {
    const n = this.get(ep) - 1;
    if (n > 0) this.#n.set(endpointKey(ep), n);
    else this.#n.delete(endpointKey(ep));
  }
}

/**
 * Smooth weighted round robin (nginx's): equal weights rotate in list order;
 * unequal weights interleave (weights 2,1 give a,b,a) instead of bursting.
 */
class SmoothRoundRobin {
  #current = new Map<string, number>();

  next(eps: readonly Endpoint[]): Endpoint {
    let total = 0;
    let best: Endpoint = eps[0];
    let bestCw = -Infinity;
    const next = new Map<string, number>();
    for (const ep of eps) {
      const cw = (this.#current.get(endpointKey(ep)) ?? 0) + ep.weight;
      next.set(endpointKey(ep), cw);
      total += ep.weight;
      if (cw > bestCw) [best, bestCw] = [ep, cw];
    }
    next.set(endpointKey(best), bestCw - total);
    this.#current = next; // endpoints that left the list lose their state
    return best;
  }
}

/**
 * Envoy's LEAST_REQUEST: with equal weights, the power of two choices (two
 * random endpoints, the one with fewer requests in flight; ties keep the
 * first draw). With unequal weights Envoy schedules by weight / (active + 1);
 * ambit draws at random with those effective weights (the same expectation,
 * without Envoy's EDF scheduler).
 */
function leastRequest(eps: readonly Endpoint[], active: ActiveRequests, random: Random): Endpoint {
  if (eps.length === 1) return eps[0];
  if (eps.every((e) => e.weight === eps[0].weight)) {
    const a = eps[randomInt(random, eps.length)];
    const b = eps[randomInt(random, eps.length)];
    return active.get(b) < active.get(a) ? b : a;
  }
  return weightedRandom(eps, (e) => e.weight / (active.get(e) + 1), random);
}

/** One endpoint, chosen with probability proportional to `weight`. */
function weightedRandom(
  eps: readonly Endpoint[],
  weight: (e: Endpoint) => number,
  random: Random,
): Endpoint {
  const total = eps.reduce((s, e) => s + weight(e), 0);
  let r = random() * total;
  for (const ep of eps) {
    r -= weight(ep);
    if (r < 0) return ep;
  }
  return eps[eps.length - 1];
}
