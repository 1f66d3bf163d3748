/**
 * `DestinationRule` (networking.istio.io/v1): load balancing, connection
 * limits and outlier detection for a host, applied by waypoints.
 *
 * @module
 */
import { istioDuration, labels } from "../formats.ts";
import { defineKind } from "../kind.ts";
import { bool, int, list, obj, oneOf, opt, req, str, unsupported } from "../schema.ts";
import { ISTIO_NETWORKING } from "./workload_entry.ts";

const consistentHash = obj({
  httpHeaderName: opt(str({ minLength: 1 }), "Hash on this request header."),
  httpCookie: opt(
    obj({
      name: req(str({ minLength: 1 }), "Cookie name."),
      path: opt(str(), "Cookie path."),
      ttl: opt(istioDuration(), "Lifetime of a generated cookie."),
    }, { title: "HTTPCookie" }),
    "Hash on this cookie.",
  ),
  useSourceIp: opt(bool(), "Hash on the source IP."),
  httpQueryParameterName: opt(str({ minLength: 1 }), "Hash on this query parameter."),
  minimumRingSize: unsupported("ambit's ring size is fixed"),
  ringHash: unsupported("ambit's ring size is fixed"),
  maglev: unsupported("ambit uses a ring hash"),
}, {
  title: "ConsistentHashLB",
  refine(h, at, r) {
    const set = ["httpHeaderName", "httpCookie", "useSourceIp", "httpQueryParameterName"].filter((
      k,
    ) =>
      (h as Record<string, unknown>)[k] !== undefined && (h as Record<string, unknown>)[k] !== false
    );
    if (set.length !== 1) {
      r.error(
        at,
        `consistentHash needs exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName (got ${set.length})`,
      );
    }
  },
});

const loadBalancer = obj({
  simple: opt(
    oneOf(["UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST"]),
    "LEAST_REQUEST (default), ROUND_ROBIN, RANDOM; LEAST_CONN is LEAST_REQUEST.",
  ),
  consistentHash: opt(consistentHash, "Sticky load balancing."),
  localityLbSetting: unsupported("locality load balancing is not implemented"),
  warmupDurationSecs: unsupported("slow start is not implemented"),
  warmup: unsupported("slow start is not implemented"),
}, {
  title: "LoadBalancerSettings",
  refine(lb, at, r) {
    if (lb.simple !== undefined && lb.consistentHash !== undefined) {
      r.error(at, "give simple or consistentHash, not both");
    }
    if (lb.simple === "PASSTHROUGH") {
      r.error([...at, "simple"], "PASSTHROUGH is not supported: waypoints pick endpoints");
    }
  },
});

const connectionPool = obj({
  tcp: opt(
    obj({
      maxConnections: opt(int({ min: 1 }), "Most connections to all endpoints of the host."),
      connectTimeout: opt(istioDuration(), "TCP connect timeout."),
      tcpKeepalive: opt(
        obj({
          probes: opt(int({ min: 1 }), "Probes before the connection is dead."),
          time: opt(istioDuration(), "Idle time before probing."),
          interval: opt(istioDuration(), "Between probes."),
        }, { title: "TcpKeepalive" }),
        "TCP keepalive.",
      ),
      maxConnectionDuration: opt(istioDuration(), "Longest life of a connection."),
      idleTimeout: opt(istioDuration(), "Close idle connections after this."),
    }, { title: "TCPSettings" }),
    "TCP limits.",
  ),
  http: opt(
    obj({
      http1MaxPendingRequests: opt(int({ min: 1 }), "Most requests waiting for a connection."),
      http2MaxRequests: opt(int({ min: 1 }), "Most concurrent requests to the host."),
      maxRequestsPerConnection: opt(
        int({ min: 0 }),
        "Requests per connection before it is closed (0: no limit).",
      ),
      maxRetries: opt(int({ min: 0 }), "Most concurrent retries to the host."),
      idleTimeout: opt(istioDuration(), "Close idle connections after this."),
      h2UpgradePolicy: opt(
        oneOf(["DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"]),
        "Whether HTTP/1.1 is upgraded to HTTP/2 upstream.",
      ),
      useClientProtocol: opt(bool(), "Use the client's protocol upstream."),
      maxConcurrentStreams: opt(int({ min: 1 }), "Most streams per HTTP/2 connection."),
    }, { title: "HTTPSettings" }),
    "HTTP limits.",
  ),
}, { title: "ConnectionPoolSettings" });

const outlierDetection = obj({
  consecutive5xxErrors: opt(
    int({ min: 0 }),
    "Eject an endpoint after this many 5xx in a row (Istio default 5).",
  ),
  consecutiveGatewayErrors: opt(int({ min: 0 }), "Eject after this many 502/503/504 in a row."),
  consecutiveLocalOriginFailures: opt(
    int({ min: 0 }),
    "Eject after this many connect failures in a row.",
  ),
  splitExternalLocalOriginErrors: opt(bool(), "Count connect failures separately."),
  consecutiveErrors: unsupported("deprecated upstream; use consecutive5xxErrors"),
  interval: opt(istioDuration(), "Between ejection sweeps (default 10s)."),
  baseEjectionTime: opt(
    istioDuration(),
    "Ejection time, times the number of ejections (default 30s).",
  ),
  maxEjectionPercent: opt(
    int({ min: 0, max: 100 }),
    "Most endpoints ejected at once, percent (default 10).",
  ),
  minHealthPercent: opt(
    int({ min: 0, max: 100 }),
    "Below this share of healthy endpoints, outlier detection is off.",
  ),
}, { title: "OutlierDetection" });

const trafficPolicyFields = {
  loadBalancer: opt(loadBalancer, "Load balancing."),
  connectionPool: opt(connectionPool, "Connection limits."),
  outlierDetection: opt(outlierDetection, "Ejecting failing endpoints."),
  tls: unsupported("mesh traffic is always mutual TLS with mesh identities"),
  portLevelSettings: unsupported("set policies per host; per-port settings are not implemented"),
  tunnel: unsupported("ambit tunnels with HBONE only"),
  proxyProtocol: unsupported("use the WorkloadEntry's PROXY protocol opt-in"),
  retryBudget: unsupported("use HTTPRoute retry"),
};

const trafficPolicy = obj(trafficPolicyFields, { title: "TrafficPolicy" });

/** Schema of `DestinationRule.spec`. */
export const destinationRuleSpec = obj({
  host: req(
    str({ name: "host", minLength: 1 }),
    "Service host: short name (resolved in the rule's namespace) or FQDN.",
  ),
  trafficPolicy: opt(trafficPolicy, "Policies for the whole host."),
  subsets: opt(
    list(
      obj({
        name: req(
          str({
            name: "subset name",
            validate: (
              s,
            ) => (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s)
              ? undefined
              : `"${s}" is not a valid subset name`),
          }),
          "Subset name.",
        ),
        labels: opt(labels(), "Endpoints carrying these labels."),
        trafficPolicy: opt(trafficPolicy, "Overrides for this subset."),
      }, { title: "Subset" }),
      { uniqueBy: (s) => s.name, uniqueWhat: "subset name" },
    ),
    "Named endpoint groups.",
  ),
  exportTo: opt(
    list(str({ name: "namespace or . or *" })),
    "Visibility: ambit applies rules mesh-wide; accepted for compatibility.",
  ),
  workloadSelector: unsupported("DestinationRules apply at the waypoint of the host"),
}, { title: "DestinationRuleSpec" });

/** The `DestinationRule` kind. */
export const DestinationRule = defineKind({
  kind: "DestinationRule",
  apiVersions: ISTIO_NETWORKING,
  namespaced: true,
  specRequired: true,
  doc: "Load balancing (LEAST_REQUEST default, ROUND_ROBIN, RANDOM, consistent hash), connection " +
    "pool limits and outlier detection for a host, applied by the waypoint serving it.",
  spec: destinationRuleSpec,
  example: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: shop
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    outlierDetection:
      consecutive5xxErrors: 5
      baseEjectionTime: 30s`,
});
