/**
 * Randomness as a dependency: the engines take a {@link Random} so tests can
 * pass a seeded one and assert exact sequences and distributions.
 *
 * @module
 */

/** A source of uniform numbers in [0, 1), like `Math.random`. */
export type Random = () => number;

/**
 * A deterministic generator (mulberry32) for tests and reproducible runs.
 *
 * @example
 * ```ts
 * const r = seededRandom(42);
 * r(); // always the same first value for seed 42
 * ```
 */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [0, n) drawn from `random`. */
export function randomInt(random: Random, n: number): number {
  return Math.min(n - 1, Math.floor(random() * n));
}
