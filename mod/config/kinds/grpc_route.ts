/**
 * `GRPCRoute` (gateway.networking.k8s.io/v1): gRPC routing for a Service,
 * attached as Gateway API's mesh (GAMMA) profile does it and served by that
 * service's waypoint.
 *
 * @module
 */
import { regex } from "../formats.ts";
import { defineKind } from "../kind.ts";
import { def, list, obj, oneOf, opt, req, str } from "../schema.ts";
import {
  backendFields,
  backendWeight,
  checkBackend,
  checkFilterFields,
  checkFilterList,
  checkRules,
  extensionRef,
  GATEWAY_GROUP,
  headerFilter,
  headerMatches,
  mirrorFilter,
  noDefaultGateways,
  noSessionPersistence,
  parentRefs,
  routeHostnames,
  routeReferences,
  sectionName,
  withCheck,
} from "./gateway_common.ts";

const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

const methodMatch = obj({
  type: def(
    oneOf(["Exact", "RegularExpression"]),
    "Exact",
    "How service and method match: Exact, or RegularExpression.",
  ),
  service: opt(
    str({ name: "gRPC service", maxLength: 1024 }),
    "Fully qualified service name, e.g. helloworld.Greeter; absent matches any service.",
  ),
  method: opt(
    str({ name: "gRPC method", maxLength: 1024 }),
    "Method name, e.g. SayHello; absent matches any method.",
  ),
}, {
  title: "GRPCMethodMatch",
  refine(m, at, r) {
    if (m.service === undefined && m.method === undefined) {
      r.error(at, "a method match needs service or method", "give one or both");
      return;
    }
    if (m.type === "RegularExpression") {
      if (m.service !== undefined) regex().check(m.service, [...at, "service"], r);
      if (m.method !== undefined) regex().check(m.method, [...at, "method"], r);
      return;
    }
    if (m.service !== undefined && !GRPC_SERVICE.test(m.service)) {
      r.error(
        [...at, "service"],
        `"${m.service}" is not a gRPC service name`,
        "dot-separated identifiers, e.g. helloworld.Greeter",
      );
    }
    if (m.method !== undefined && !GRPC_METHOD.test(m.method)) {
      r.error(
        [...at, "method"],
        `"${m.method}" is not a gRPC method name`,
        "an identifier, e.g. SayHello",
      );
    }
  },
});

const FILTER_FIELDS = {
  RequestHeaderModifier: "requestHeaderModifier",
  ResponseHeaderModifier: "responseHeaderModifier",
  RequestMirror: "requestMirror",
  ExtensionRef: "extensionRef",
} as const;

const grpcFilter = obj({
  type: req(
    oneOf(Object.keys(FILTER_FIELDS) as (keyof typeof FILTER_FIELDS)[]),
    "Which filter; the field of the same name holds its settings.",
  ),
  requestHeaderModifier: opt(headerFilter, "Changes request metadata (headers)."),
  responseHeaderModifier: opt(headerFilter, "Changes response metadata (headers)."),
  requestMirror: opt(mirrorFilter, "Sends a copy of each call to another backend."),
  extensionRef: opt(
    extensionRef,
    "An ambit HTTPFault or LocalRateLimit in the route's namespace: {group: ambit.io, kind, name}.",
  ),
}, {
  title: "GRPCRouteFilter",
  doc: "A filter: `type` names it, and the field of that name (and no other) holds its settings.",
  refine: (f, at, r) => checkFilterFields(f, FILTER_FIELDS, at, r),
});

/** Filters of a rule or a backendRef, with upstream's list rules. */
const grpcFilters = withCheck(
  list(grpcFilter, { maxItems: 16 }),
  (filters, at, r) =>
    checkFilterList(filters, at, r, ["RequestHeaderModifier", "ResponseHeaderModifier"]),
);

const grpcRule = obj({
  name: opt(sectionName("rule name"), "Rule name, unique in the route (for logs and metrics)."),
  matches: opt(
    list(
      obj({
        method: opt(methodMatch, "gRPC service and method match."),
        headers: opt(headerMatches("GRPCHeaderMatch"), "Metadata (header) matches; all must hold."),
      }, { title: "GRPCRouteMatch", doc: "Conditions a call must meet; all given must hold." }),
      { maxItems: 64 },
    ),
    "Matches; any one selects the rule. Absent: every call.",
  ),
  filters: opt(grpcFilters, "Filters applied to matching calls, in order."),
  backendRefs: opt(
    list(
      obj({
        ...backendFields,
        weight: backendWeight,
        filters: opt(grpcFilters, "Filters applied only to calls sent to this backend."),
      }, {
        title: "GRPCBackendRef",
        doc: "A backend Service (or ServiceEntry host), its port and weight.",
        refine: checkBackend,
      }),
      { maxItems: 16 },
    ),
    "Where matching calls go, split by weight.",
  ),
  sessionPersistence: noSessionPersistence,
}, { title: "GRPCRouteRule", doc: "Matches, filters and the backends matching calls go to." });

/** Schema of `GRPCRoute.spec`. */
export const grpcRouteSpec = obj({
  parentRefs: req(
    parentRefs,
    'What the route attaches to: for mesh traffic, a Service with group "" and kind Service.',
  ),
  hostnames: opt(
    routeHostnames,
    "Host names the route matches (:authority); `*.` wildcards allowed.",
  ),
  rules: opt(
    withCheck(list(grpcRule, { maxItems: 16 }), checkRules),
    "Rules; the most specific match wins (Gateway API precedence), at most 128 matches in all.",
  ),
  useDefaultGateways: noDefaultGateways,
}, { title: "GRPCRouteSpec" });

/** The `GRPCRoute` kind. */
export const GRPCRoute = defineKind({
  kind: "GRPCRoute",
  apiVersions: [`${GATEWAY_GROUP}/v1`, `${GATEWAY_GROUP}/v1alpha2`],
  namespaced: true,
  specRequired: true,
  doc: 'gRPC routing for a Service, attached with parentRef `{group: "", kind: Service}` and ' +
    "served by the service's waypoint: service/method and metadata matches, weighted backends, " +
    "metadata modifiers, mirroring, and ExtensionRef filters naming an HTTPFault or " +
    "LocalRateLimit. Unlike upstream, parentRefs is required.",
  spec: grpcRouteSpec,
  references: (res) => routeReferences(res.metadata.namespace!, res.spec),
  example: `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata:
  name: greeter
  namespace: shop
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: greeter
  rules:
  - matches:
    - method:
        service: helloworld.Greeter
        method: SayHello
    backendRefs:
    - name: greeter-v2
      port: 50051
  - backendRefs:
    - name: greeter-v1
      port: 50051`,
});
