/**
 * What the data path reports to: TCP metrics and the access log.
 *
 * @module
 */
import type { AccessSink } from "./access_log.ts";
import { TcpMetrics } from "./tcp_metrics.ts";

/** The data path's telemetry sinks. */
export interface Telemetry {
  readonly metrics: TcpMetrics;
  readonly access: AccessSink;
}

/** Telemetry that counts but writes no access log (tests, embedded use). */
export function quietTelemetry(): Telemetry {
  return { metrics: new TcpMetrics(), access: () => {} };
}
