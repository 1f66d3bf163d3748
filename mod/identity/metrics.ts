/**
 * Metric families for identity: certificate expiry and fetch failures on
 * nodes, signed and refused requests at the CA.
 *
 * @module
 */
import type { Family } from "../telemetry/prometheus.ts";
import type { CaStats } from "./ca_server.ts";
import type { CertManager } from "./cert_manager.ts";

/** Families of a node's certificate manager. */
export function certManagerFamilies(m: CertManager): Family[] {
  return [
    {
      name: "ambit_certificate_expiry_timestamp_seconds",
      help: "NotAfter of the certificate held for each identity (Unix seconds).",
      type: "gauge",
      samples: () =>
        m.list().filter((s) => s.notAfter).map((s) => ({
          labels: { identity: s.id },
          value: Date.parse(s.notAfter!) / 1000,
        })),
    },
    {
      name: "ambit_certificate_consecutive_failures",
      help: "Failed fetch or renewal attempts in a row for each identity (0 when healthy).",
      type: "gauge",
      samples: () => m.list().map((s) => ({ labels: { identity: s.id }, value: s.failures })),
    },
    {
      name: "ambit_certificate_fetches_total",
      help: "Certificate signing requests sent to the CA.",
      type: "counter",
      samples: () => [{ value: m.stats.fetches }],
    },
    {
      name: "ambit_certificate_fetch_failures_total",
      help: "Certificate signing requests that failed.",
      type: "counter",
      samples: () => [{ value: m.stats.failures }],
    },
  ];
}

/** Families of the CA service. */
export function caFamilies(stats: CaStats): Family[] {
  return [
    {
      name: "ambit_ca_certificates_signed_total",
      help: "Certificates signed by the CA service.",
      type: "counter",
      samples: () => [{ value: stats.signed }],
    },
    {
      name: "ambit_ca_requests_refused_total",
      help: "Signing requests refused, by reason (security events).",
      type: "counter",
      samples: () =>
        Object.entries(stats.refused).map(([code, value]) => ({ labels: { code }, value })),
    },
  ];
}
