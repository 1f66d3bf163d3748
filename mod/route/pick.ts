/**
 * Weighted choice of a backend, as the Gateway API splits traffic: each
 * backend gets weight / (sum of weights) of the requests; weight 0 gets none.
 *
 * @module
 */

/**
 * Picks one of `backends` with probability proportional to its weight.
 * `random` returns a number in [0, 1) (inject a seeded one in tests).
 * Undefined when every weight is 0 (or the list is empty). Invalid backends
 * keep their share, so the waypoint answers 500 for it as the spec asks.
 *
 * @example
 * ```ts
 * pickBackend([{ weight: 90, name: "v1" }, { weight: 10, name: "v2" }], () => 0.95); // v2
 * ```
 */
export function pickBackend<B extends { readonly weight: number }>(
  backends: readonly B[],
  random: () => number = Math.random,
): B | undefined {
  let total = 0;
  for (const b of backends) total += Math.max(0, b.weight);
  if (total === 0) return undefined;
  const r = random() * total;
  let acc = 0;
  let last: B | undefined;
  for (const b of backends) {
    if (b.weight <= 0) continue;
    acc += b.weight;
    last = b;
    if (r < acc) return b;
  }
  return last; // only for random() values at (or rounding to) 1
}
