/**
 * Istio's TCP metrics as its ztunnel reports them:
 * `istio_tcp_connections_opened_total`, `istio_tcp_connections_closed_total`,
 * `istio_tcp_received_bytes_total` (client to server) and
 * `istio_tcp_sent_bytes_total` (server to client), with the standard labels.
 *
 * The data path keeps plain counters: a live connection's relay counters
 * are read at scrape time, so bytes of long-lived connections show while
 * they flow, and nothing is formatted until Prometheus asks.
 *
 * @module
 */
import type { RelayCounters } from "../hbone/relay.ts";
import type { ServiceInfo, Snapshot, Workload } from "../config/snapshot.ts";
import type { Family } from "./prometheus.ts";

/** Label values Istio uses when it does not know one. */
export const UNKNOWN = "unknown";

/** What the labels say about one side of a connection. */
export interface PeerLabels {
  readonly workload: string;
  readonly namespace: string;
  readonly principal: string;
  readonly app: string;
  readonly version: string;
  readonly canonicalService: string;
  readonly canonicalRevision: string;
  readonly cluster: string;
}

/** The service a connection was addressed to. */
export interface ServiceLabels {
  /** FQDN, e.g. `reviews.bookinfo.svc.cluster.local`. */
  readonly host: string;
  readonly name: string;
  readonly namespace: string;
}

/** Everything that identifies one series of the TCP metrics. */
export interface TcpLabels {
  readonly reporter: "source" | "destination";
  readonly source: PeerLabels;
  readonly destination: PeerLabels;
  readonly service?: ServiceLabels;
  /** Istio `response_flags`: `-` for a connection that was made. */
  readonly responseFlags: string;
  readonly securityPolicy: "mutual_tls" | "none" | "unknown";
}

/** An unknown peer, with the principal when it is known. */
export function unknownPeer(principal?: string): PeerLabels {
  return {
    workload: UNKNOWN,
    namespace: UNKNOWN,
    principal: principal ?? UNKNOWN,
    app: UNKNOWN,
    version: UNKNOWN,
    canonicalService: UNKNOWN,
    canonicalRevision: UNKNOWN,
    cluster: UNKNOWN,
  };
}

/**
 * Labels of a workload, with Istio's fallbacks: app from `app` or
 * `app.kubernetes.io/name`, version from `version` or
 * `app.kubernetes.io/version`; canonical service and revision from
 * `service.istio.io/canonical-*`, else app (else the workload name) and
 * version (else `latest`).
 */
export function workloadLabels(w: Workload, cluster = UNKNOWN): PeerLabels {
  const l = w.labels;
  const app = l["app"] ?? l["app.kubernetes.io/name"];
  const version = l["version"] ?? l["app.kubernetes.io/version"];
  return {
    workload: w.name,
    namespace: w.namespace,
    principal: w.identity,
    app: app ?? UNKNOWN,
    version: version ?? UNKNOWN,
    canonicalService: l["service.istio.io/canonical-name"] ?? app ?? w.name,
    canonicalRevision: l["service.istio.io/canonical-revision"] ?? version ?? "latest",
    cluster,
  };
}

/** Labels of a service. */
export function serviceLabels(s: Pick<ServiceInfo, "hostname" | "name" | "namespace">) {
  return { host: s.hostname, name: s.name, namespace: s.namespace } satisfies ServiceLabels;
}

/**
 * The source of an inbound tunnel: the workload with that identity (at the
 * forwarded address when several share it), else what the sender's
 * `baggage` header says (Istio's ztunnel reads the same keys), else only
 * the principal.
 */
export function sourceLabels(
  snapshot: Snapshot,
  identity: string | undefined,
  ip: string | undefined,
  baggage: string | string[] | undefined,
): PeerLabels {
  if (identity) {
    const ws = snapshot.workloadsByIdentity.get(identity) ?? [];
    const w = ws.length === 1 ? ws[0] : ws.find((x) => x.address === ip);
    if (w) return workloadLabels(w);
  } else if (ip) {
    for (const m of snapshot.workloadsByAddress.values()) {
      const at = m.get(ip);
      if (at?.length === 1) return { ...workloadLabels(at[0]), principal: UNKNOWN };
    }
  }
  const b = parseBaggage(baggage);
  const peer = unknownPeer(identity);
  if (Object.keys(b).length === 0) return peer;
  const ns = b["k8s.namespace.name"];
  return {
    ...peer,
    workload: b["k8s.workloadentry.name"] ?? b["k8s.deployment.name"] ?? b["k8s.pod.name"] ??
      UNKNOWN,
    namespace: ns ?? UNKNOWN,
    app: b["service.name"] ?? UNKNOWN,
    version: b["service.version"] ?? UNKNOWN,
    canonicalService: b["service.name"] ?? UNKNOWN,
    canonicalRevision: b["service.version"] ?? UNKNOWN,
    cluster: b["k8s.cluster.name"] ?? UNKNOWN,
  };
}

/** `k=v,k2=v2` (W3C baggage, properties dropped); bounded so a hostile header costs little. */
export function parseBaggage(h: string | string[] | undefined): Record<string, string> {
  const s = (Array.isArray(h) ? h.join(",") : h ?? "").slice(0, 4096);
  const out: Record<string, string> = {};
  for (const part of s.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).split(";")[0].trim();
    if (k && v) {
      try {
        out[k] = decodeURIComponent(v);
      } catch {
        out[k] = v;
      }
    }
  }
  return out;
}

/** The flat Prometheus label set of a series, in Istio's order. */
export function labelSet(l: TcpLabels): Record<string, string> {
  const s = l.source;
  const d = l.destination;
  return {
    reporter: l.reporter,
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
    request_protocol: "tcp",
    response_flags: l.responseFlags,
    connection_security_policy: l.securityPolicy,
  };
}

interface Series {
  readonly labels: Record<string, string>;
  opened: number;
  closed: number;
  /** Bytes of closed connections. */
  received: number;
  sent: number;
  /** Live connections of this series. */
  readonly live: Set<RelayCounters>;
}

/** A connection that was made; its relay updates `counters`. */
export interface TrackedTcp {
  /** Live byte counts: `aToB` client to server (received), `bToA` server to client (sent). */
  readonly counters: RelayCounters;
  /** Records the close (once). */
  close(): void;
}

/** The TCP metrics of one ztunnel. */
export class TcpMetrics {
  #series = new Map<string, Series>();
  /** When false, nothing is recorded (for measuring the cost of metrics). */
  enabled = true;

  #get(l: TcpLabels): Series {
    const labels = labelSet(l);
    const key = Object.values(labels).join("\u0000");
    let s = this.#series.get(key);
    if (!s) {
      s = { labels, opened: 0, closed: 0, received: 0, sent: 0, live: new Set() };
      this.#series.set(key, s);
    }
    return s;
  }

  /** Counts a connection that was made; bytes flow through the returned counters. */
  established(l: TcpLabels): TrackedTcp {
    const counters: RelayCounters = { aToB: 0, bToA: 0 };
    if (!this.enabled) return { counters, close: () => {} };
    const s = this.#get(l);
    s.opened++;
    s.live.add(counters);
    let done = false;
    return {
      counters,
      close: () => {
        if (done) return;
        done = true;
        s.live.delete(counters);
        s.closed++;
        s.received += counters.aToB;
        s.sent += counters.bToA;
      },
    };
  }

  /** Counts a connection that failed before it was made (opened and closed, with its flag). */
  failed(l: TcpLabels): void {
    if (!this.enabled) return;
    const s = this.#get(l);
    s.opened++;
    s.closed++;
  }

  /** Number of series (for tests and the admin API). */
  get seriesCount(): number {
    return this.#series.size;
  }

  /** The four Istio families. */
  families(): Family[] {
    const all = () => [...this.#series.values()];
    const bytes = (s: Series, k: "aToB" | "bToA") => {
      let n = k === "aToB" ? s.received : s.sent;
      for (const c of s.live) n += c[k];
      return n;
    };
    return [
      {
        name: "istio_tcp_connections_opened_total",
        help: "Total TCP connections opened.",
        type: "counter",
        samples: () => all().map((s) => ({ labels: s.labels, value: s.opened })),
      },
      {
        name: "istio_tcp_connections_closed_total",
        help: "Total TCP connections closed.",
        type: "counter",
        samples: () => all().map((s) => ({ labels: s.labels, value: s.closed })),
      },
      {
        name: "istio_tcp_received_bytes_total",
        help: "Total bytes received from the client (request direction) on TCP connections.",
        type: "counter",
        samples: () => all().map((s) => ({ labels: s.labels, value: bytes(s, "aToB") })),
      },
      {
        name: "istio_tcp_sent_bytes_total",
        help: "Total bytes sent to the client (response direction) on TCP connections.",
        type: "counter",
        samples: () => all().map((s) => ({ labels: s.labels, value: bytes(s, "bToA") })),
      },
    ];
  }
}
