/**
 * The ring of the consistent-hash balancer (Karger's ring hash, as Envoy's
 * RING_HASH). Each endpoint owns a number of points proportional to its
 * weight; a key belongs to the first point at or after its hash.
 *
 * An endpoint's points depend only on its own key and weight, never on the
 * other endpoints, so removing an endpoint moves exactly the keys it owned
 * and adding one moves only the keys it takes over. The ring is scaled down
 * (proportionally) only when it would exceed {@link MAX_POINTS}.
 *
 * @module
 */
import type { Endpoint } from "../config/snapshot.ts";
import { endpointKey } from "./_endpoint_key.ts";
import { hash32 } from "./_hash32.ts";

/** Points per unit of endpoint weight. */
export const POINTS_PER_WEIGHT = 160;
/** Largest ring; heavier endpoint sets are scaled down to fit. */
export const MAX_POINTS = 1 << 17;

/** A built ring over one endpoint list. */
export interface Ring {
  readonly endpoints: readonly Endpoint[];
  readonly hashes: Uint32Array;
  readonly owners: Uint32Array;
}

/** Builds the ring over `endpoints` (all of weight > 0). */
export function buildRing(endpoints: readonly Endpoint[]): Ring {
  const total = endpoints.reduce((s, e) => s + e.weight, 0);
  const scale = Math.min(1, MAX_POINTS / (POINTS_PER_WEIGHT * total));
  const points: [number, number][] = [];
  endpoints.forEach((ep, owner) => {
    const n = Math.max(1, Math.round(POINTS_PER_WEIGHT * ep.weight * scale));
    const key = endpointKey(ep);
    for (let i = 0; i < n; i++) points.push([hash32(`${key}_${i}`), owner]);
  });
  // Ties (rare) are broken by endpoint key so the order never depends on list order.
  points.sort((a, b) =>
    a[0] - b[0] ||
    (endpointKey(endpoints[a[1]]) < endpointKey(endpoints[b[1]]) ? -1 : 1)
  );
  return {
    endpoints,
    hashes: Uint32Array.from(points, (p) => p[0]),
    owners: Uint32Array.from(points, (p) => p[1]),
  };
}

/** The endpoint owning `hash`: the first point at or after it, wrapping around. */
export function lookupRing(ring: Ring, hash: number): Endpoint {
  const { hashes } = ring;
  let lo = 0;
  let hi = hashes.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (hashes[mid] < hash) lo = mid + 1;
    else hi = mid;
  }
  return ring.endpoints[ring.owners[lo === hashes.length ? 0 : lo]];
}
