/**
 * `LocalRateLimit` (ambit.io/v1alpha1): a token bucket at the waypoint, the
 * settings of Envoy's `local_ratelimit` filter in camelCase. With
 * `targetRefs` (waypoint Gateways in its namespace) it applies to every
 * request those waypoints serve; without, only where a route rule (or a
 * backendRef) names it with an ExtensionRef filter. The waypoint applies it
 * with `LocalRateLimiter` (`mod/waypoint/rate_limit.ts`).
 *
 * @module
 */
import { dnsLabel, istioDuration, parseDuration } from "../formats.ts";
import { defineKind, type Reference } from "../kind.ts";
import { def, didYouMean, type Infer, int, list, obj, oneOf, opt, refine, req } from "../schema.ts";
import { apiGroup, GATEWAY_GROUP, kindName, objectName } from "./gateway_common.ts";
import { AMBIT_API } from "./mesh.ts";

/** Envoy's smallest fill interval. */
const MIN_FILL_MS = 50;

const fillInterval = refine(
  istioDuration(),
  "duration",
  (s) => parseDuration(s)! < MIN_FILL_MS ? `"${s}" is shorter than the minimum 50ms` : undefined,
  "Envoy requires a fill interval of at least 50ms",
);

const tokenBucket = obj({
  maxTokens: req(
    int({ min: 1 }),
    "Bucket size, and the tokens it starts with; each request takes one or is refused.",
  ),
  tokensPerFill: def(int({ min: 1 }), 1, "Tokens added at each fill, up to maxTokens."),
  fillInterval: req(fillInterval, "Time between fills, such as 1s; at least 50ms."),
}, {
  title: "TokenBucket",
  doc: "Starts full; gains tokensPerFill every fillInterval, never holding more than maxTokens.",
});

/** A waypoint the limit applies to (Istio's PolicyTargetReference, kind Gateway only). */
const waypointTargetRef = obj({
  group: opt(apiGroup(), `API group: ${GATEWAY_GROUP}.`),
  kind: req(kindName(), "Kind of the target: Gateway (a waypoint, class istio-waypoint)."),
  name: req(objectName(), "Name of the waypoint Gateway."),
  namespace: opt(dnsLabel("namespace"), "Must be the LocalRateLimit's own namespace when given."),
}, {
  title: "PolicyTargetReference",
  refine(t, at, r) {
    if (t.kind !== "Gateway") {
      const near = didYouMean(t.kind, ["Gateway"]);
      r.error(
        [...at, "kind"],
        `targetRef kind "${t.kind}" is not supported by LocalRateLimit`,
        near
          ? `did you mean "Gateway"?`
          : "target a waypoint Gateway; to limit one route, name the LocalRateLimit in an " +
            "ExtensionRef filter of its rule",
      );
    } else if (t.group !== undefined && t.group !== GATEWAY_GROUP) {
      r.error(
        [...at, "group"],
        `group must be "${GATEWAY_GROUP}" for kind Gateway, got "${t.group}"`,
      );
    }
  },
});

/** Schema of `LocalRateLimit.spec`. */
export const localRateLimitSpec = obj({
  tokenBucket: req(tokenBucket, "The token bucket."),
  status: def(
    int({ name: "HTTP status code", min: 400, max: 599 }),
    429,
    "Status of a refused request, 400 to 599 (body local_rate_limited, header " +
      "x-envoy-ratelimited: true, response flag RL).",
  ),
  enableXRateLimitHeaders: def(
    oneOf(["OFF", "DRAFT_VERSION_03"]),
    "OFF",
    "DRAFT_VERSION_03: every response also carries x-ratelimit-limit, x-ratelimit-remaining and " +
      "x-ratelimit-reset (IETF draft 03), as Envoy sends them.",
  ),
  targetRefs: opt(
    list(waypointTargetRef, {
      minItems: 1,
      maxItems: 16,
      uniqueBy: (t) => t.name,
      uniqueWhat: "targetRef",
    }),
    "Waypoint Gateways in this namespace: the limit applies to every request they serve, in one " +
      "bucket per waypoint. Absent: it applies only where a route's ExtensionRef filter names it.",
  ),
}, { title: "LocalRateLimitSpec" });

/** Checked `LocalRateLimit.spec`; assignable to the waypoint's `LocalRateLimitConfig`. */
export type LocalRateLimitSpec = Infer<typeof localRateLimitSpec>;

/** The `LocalRateLimit` kind. */
export const LocalRateLimit = defineKind({
  kind: "LocalRateLimit",
  apiVersions: [AMBIT_API],
  namespaced: true,
  specRequired: true,
  doc: "A token bucket at the waypoint, as Envoy's local rate limit: a request takes a token or " +
    "is refused with `status` (429). With `targetRefs` it applies to every request of those " +
    "waypoints; without, only where an HTTPRoute or GRPCRoute rule, or one of its backendRefs, " +
    "names it with the filter `{type: ExtensionRef, extensionRef: {group: ambit.io, kind: " +
    "LocalRateLimit, name: <name>}}` (same namespace; one LocalRateLimit per filter list; a " +
    "route may not name one that has targetRefs). Buckets are per waypoint process.",
  spec: localRateLimitSpec,
  check(res, r) {
    const ns = res.metadata.namespace!;
    res.spec.targetRefs?.forEach((t, i) => {
      if (t.namespace !== undefined && t.namespace !== ns) {
        r.error(
          ["spec", "targetRefs", i, "namespace"],
          `targetRef namespace "${t.namespace}" differs from the LocalRateLimit's "${ns}"`,
          "a LocalRateLimit may only target waypoints in its own namespace",
        );
      }
    });
  },
  references: (res): Reference[] =>
    (res.spec.targetRefs ?? []).map((t, i) => ({
      path: ["spec", "targetRefs", i, "name"],
      kinds: ["Gateway"],
      namespace: res.metadata.namespace!,
      name: t.name,
    })),
  example: `apiVersion: ambit.io/v1alpha1
kind: LocalRateLimit
metadata:
  name: waypoint-limit
  namespace: shop
spec:
  tokenBucket:
    maxTokens: 100
    tokensPerFill: 100
    fillInterval: 1s
  enableXRateLimitHeaders: DRAFT_VERSION_03
  targetRefs:
  - kind: Gateway
    group: gateway.networking.k8s.io
    name: waypoint`,
});
