/**
 * The DestinationRule setting types the engines take, inferred from the
 * config schema (`mod/config/kinds/destination_rule.ts`) so they cannot drift,
 * and the duration parser they share.
 *
 * @module
 */
import type { destinationRuleSpec } from "../config/kinds/destination_rule.ts";
import { parseDuration } from "../config/formats.ts";
import type { Infer } from "../config/schema.ts";
import { ResilienceConfigError } from "./resilience_error.ts";

/** `DestinationRule.spec`, as checked and defaulted by the config pipeline. */
export type DestinationRuleSpec = Infer<typeof destinationRuleSpec>;
/** `spec.trafficPolicy` (also a subset's). */
export type TrafficPolicy = NonNullable<DestinationRuleSpec["trafficPolicy"]>;
/** `trafficPolicy.loadBalancer`. */
export type LoadBalancerSettings = NonNullable<TrafficPolicy["loadBalancer"]>;
/** `loadBalancer.consistentHash`. */
export type ConsistentHashSettings = NonNullable<LoadBalancerSettings["consistentHash"]>;
/** `trafficPolicy.connectionPool`. */
export type ConnectionPoolSettings = NonNullable<TrafficPolicy["connectionPool"]>;
/** `trafficPolicy.outlierDetection`. */
export type OutlierDetectionSettings = NonNullable<TrafficPolicy["outlierDetection"]>;

/** Parses a duration setting to milliseconds, or `fallback` when absent. */
export function durationMs(field: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined) {
    throw new ResilienceConfigError(field, `"${value}" is not a duration (e.g. 10s, 100ms)`);
  }
  return ms;
}
