/**
 * Endpoint fixtures shared by the resilience engines' tests.
 *
 * @module
 */
import type { Endpoint } from "../config/snapshot.ts";

/** An endpoint named `shop/<name>`, weight 1 unless given. */
export function ep(name: string, weight = 1): Endpoint {
  return { workload: `shop/${name}`, node: "node-a", address: "10.0.0.1", ports: {}, weight };
}

/** Endpoints `e0` … `e<n-1>`. */
export function eps(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) => ep(`e${i}`));
}

/** The short names (`a` for `shop/a`) of `list`. */
export function names(list: readonly (Endpoint | undefined)[]): string[] {
  return list.map((e) => e?.workload.slice("shop/".length) ?? "-");
}
