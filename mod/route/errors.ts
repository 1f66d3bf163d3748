/**
 * Errors of the route engine.
 *
 * @module
 */

/** A route table was asked for a service or port the snapshot does not have. */
export class UnknownRouteTargetError extends Error {
  /** Stable code users match on. */
  readonly code = "EROUTETARGET";
  override name = "UnknownRouteTargetError";
}
