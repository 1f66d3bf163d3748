/**
 * The one table from each HBONE failure to its HTTP status, Istio
 * `response_flags` value and log text. Inbound answers with it; outbound
 * logs and counts with it.
 *
 * @module
 */

/** Why a tunnel was not made. */
export type TunnelFailure =
  | "bad_request"
  | "bad_authority"
  | "not_local"
  | "self_port"
  | "denied"
  | "no_workload"
  | "upstream_refused"
  | "upstream_timeout"
  | "no_healthy_endpoint"
  | "identity_mismatch"
  | "tls_failure"
  | "unattributed"
  | "peer_status"
  | "connect_failed"
  | "no_certificate";

interface FailureInfo {
  /** HTTP status a server answers with (0: no answer, the stream or connection is reset). */
  readonly status: number;
  /** Istio `response_flags`. */
  readonly flag: string;
  readonly text: string;
}

/** Status, metric flag and text per failure. */
export const FAILURES: Readonly<Record<TunnelFailure, FailureInfo>> = {
  bad_request: { status: 400, flag: "-", text: "not an HTTP/2 CONNECT request" },
  bad_authority: { status: 400, flag: "-", text: "bad :authority" },
  not_local: { status: 400, flag: "-", text: "address is not a workload on this node" },
  self_port: { status: 400, flag: "-", text: "tunnels to ambit's own ports are refused" },
  denied: { status: 401, flag: "DENY", text: "denied by authorization policy" },
  no_workload: { status: 503, flag: "NR", text: "no such workload or port on this node" },
  upstream_refused: { status: 503, flag: "UF", text: "upstream refused the connection" },
  upstream_timeout: { status: 503, flag: "UF", text: "upstream connect timed out" },
  no_healthy_endpoint: { status: 503, flag: "UH", text: "no healthy endpoint" },
  identity_mismatch: { status: 0, flag: "TLS_FAILURE", text: "peer identity mismatch" },
  tls_failure: { status: 0, flag: "TLS_FAILURE", text: "TLS handshake failed" },
  unattributed: { status: 0, flag: "DENY", text: "connection not attributable to a workload" },
  peer_status: { status: 0, flag: "CONNECT", text: "tunnel refused by the peer" },
  connect_failed: { status: 0, flag: "CONNECT", text: "could not reach the peer node" },
  no_certificate: { status: 0, flag: "CONNECT", text: "no certificate for the source identity" },
};

/** A tunnel that could not be made, with its failure kind. */
export class TunnelError extends Error {
  override readonly name = "TunnelError";
  readonly code = "ETUNNEL";
  constructor(
    readonly failure: TunnelFailure,
    message: string,
    /** HTTP status the peer answered, for `peer_status`. */
    readonly status?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
  /** Istio response flag for metrics and logs. */
  get flag(): string {
    return FAILURES[this.failure].flag;
  }
}
