/**
 * The one error type of the waypoint's resilience engines: a setting that
 * cannot be used, with the field path so the operator can find it.
 *
 * @module
 */

/** A load-balancing, outlier, pool, retry, fault or rate-limit setting that is unusable. */
export class ResilienceConfigError extends Error {
  override readonly name = "ResilienceConfigError";
  readonly code = "ERESILIENCE";
  constructor(
    /** Field path, e.g. `outlierDetection.interval`. */
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}
