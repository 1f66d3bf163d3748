/**
 * Istio's request metrics as a waypoint reports them (`reporter="waypoint"`):
 * `istio_requests_total`, `istio_request_duration_milliseconds`,
 * `istio_request_bytes` and `istio_response_bytes` (histograms), with the
 * standard labels plus `response_code`, `grpc_response_status` and
 * `request_protocol` (`http` or `grpc`).
 *
 * @module
 */
import { bucketIndex, type Family } from "./prometheus.ts";
import type { PeerLabels, ServiceLabels } from "./tcp_metrics.ts";
import { UNKNOWN } from "./tcp_metrics.ts";

/** Istio's duration buckets, milliseconds. */
export const DURATION_BUCKETS_MS: readonly number[] = [
  0.5,
  1,
  5,
  10,
  25,
  50,
  100,
  250,
  500,
  1000,
  2500,
  5000,
  10000,
  30000,
  60000,
  300000,
  600000,
  1800000,
  3600000,
];

/** Istio's size buckets, bytes: 1 to 10^9 by powers of ten. */
export const SIZE_BUCKETS: readonly number[] = Array.from({ length: 10 }, (_, i) => 10 ** i);

/** The labels of one request series. */
export interface RequestLabels {
  readonly source: PeerLabels;
  readonly destination: PeerLabels;
  readonly service?: ServiceLabels;
  readonly protocol: "http" | "grpc";
  readonly responseCode: number;
  /** gRPC status from the trailers (or headers); undefined for plain HTTP. */
  readonly grpcStatus?: string;
  /** Istio response flags (`-` when none; `UF`, `UO`, `NR`, `DI`, `FI`, `RL`, `UT`, `URX`...). */
  readonly responseFlags: string;
  readonly securityPolicy: "mutual_tls" | "none" | "unknown";
}

/** One finished request. */
export interface RequestObservation {
  readonly labels: RequestLabels;
  readonly durationMs: number;
  readonly requestBytes: number;
  readonly responseBytes: number;
}

interface Series {
  readonly labels: Record<string, string>;
  requests: number;
  readonly duration: number[];
  durationSum: number;
  readonly reqBytes: number[];
  reqSum: number;
  readonly respBytes: number[];
  respSum: number;
}

/** The flat Prometheus label set of a request series, in Istio's order. */
export function requestLabelSet(l: RequestLabels): Record<string, string> {
  const s = l.source;
  const d = l.destination;
  return {
    reporter: "waypoint",
    source_workload: s.workload,
    source_canonical_service: s.canonicalService,
    source_canonical_revision: s.canonicalRevision,
    source_workload_namespace: s.namespace,
    source_principal: s.principal,
    source_app: s.app,
    source_version: s.version,
    source_cluster: s.cluster,
    destination_service: l.service?.host ?? UNKNOWN,
    destination_service_namespace: l.service?.namespace ?? UNKNOWN,
    destination_service_name: l.service?.name ?? UNKNOWN,
    destination_workload: d.workload,
    destination_canonical_service: d.canonicalService,
    destination_canonical_revision: d.canonicalRevision,
    destination_workload_namespace: d.namespace,
    destination_principal: d.principal,
    destination_app: d.app,
    destination_version: d.version,
    destination_cluster: d.cluster,
    request_protocol: l.protocol,
    response_code: String(l.responseCode),
    grpc_response_status: l.grpcStatus ?? "",
    response_flags: l.responseFlags,
    connection_security_policy: l.securityPolicy,
  };
}

/** The request metrics of one waypoint. */
export class HttpMetrics {
  #series = new Map<string, Series>();

  /** Records one finished request. */
  observe(o: RequestObservation): void {
    const l = o.labels;
    // The label set is built only for a new series; the key is made of what varies.
    const key = [
      l.source.principal,
      l.source.workload,
      l.source.namespace,
      l.source.app,
      l.source.version,
      l.destination.principal,
      l.destination.workload,
      l.destination.namespace,
      l.destination.app,
      l.destination.version,
      l.service?.host ?? "",
      l.protocol,
      l.responseCode,
      l.grpcStatus ?? "",
      l.responseFlags,
      l.securityPolicy,
    ].join("\u0000");
    let s = this.#series.get(key);
    if (!s) {
      s = {
        labels: requestLabelSet(l),
        requests: 0,
        duration: new Array(DURATION_BUCKETS_MS.length + 1).fill(0),
        durationSum: 0,
        reqBytes: new Array(SIZE_BUCKETS.length + 1).fill(0),
        reqSum: 0,
        respBytes: new Array(SIZE_BUCKETS.length + 1).fill(0),
        respSum: 0,
      };
      this.#series.set(key, s);
    }
    s.requests++;
    s.duration[bucketIndex(DURATION_BUCKETS_MS, o.durationMs)]++;
    s.durationSum += o.durationMs;
    s.reqBytes[bucketIndex(SIZE_BUCKETS, o.requestBytes)]++;
    s.reqSum += o.requestBytes;
    s.respBytes[bucketIndex(SIZE_BUCKETS, o.responseBytes)]++;
    s.respSum += o.responseBytes;
  }

  /** The four Istio families. */
  families(): Family[] {
    const all = () => [...this.#series.values()];
    return [
      {
        name: "istio_requests_total",
        help: "Requests handled by the waypoint.",
        type: "counter",
        samples: () => all().map((s) => ({ labels: s.labels, value: s.requests })),
      },
      {
        name: "istio_request_duration_milliseconds",
        help: "Request duration, from the first request byte to the last response byte.",
        type: "histogram",
        bounds: DURATION_BUCKETS_MS,
        samples: () =>
          all().map((s) => ({
            labels: s.labels,
            counts: s.duration,
            sum: Math.round(s.durationSum * 1000) / 1000,
          })),
      },
      {
        name: "istio_request_bytes",
        help: "Request body sizes.",
        type: "histogram",
        bounds: SIZE_BUCKETS,
        samples: () => all().map((s) => ({ labels: s.labels, counts: s.reqBytes, sum: s.reqSum })),
      },
      {
        name: "istio_response_bytes",
        help: "Response body sizes.",
        type: "histogram",
        bounds: SIZE_BUCKETS,
        samples: () =>
          all().map((s) => ({ labels: s.labels, counts: s.respBytes, sum: s.respSum })),
      },
    ];
  }
}
