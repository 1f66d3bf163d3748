/**
 * How the engines name an endpoint: by its workload key, unique within a
 * service's endpoint list.
 *
 * @module
 */
import type { Endpoint } from "../config/snapshot.ts";

/** The key the engines index per-endpoint state by. */
export function endpointKey(ep: Endpoint): string {
  return ep.workload;
}
