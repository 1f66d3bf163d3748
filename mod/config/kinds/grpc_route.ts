/**
 * `GRPCRoute` (gateway.networking.k8s.io/v1), attached to a Service and
 * served by that service's waypoint.
 *
 * @module
 */
import { regex } from "../formats.ts";
import { defineKind } from "../kind.ts";
import { def, int, list, obj, oneOf, opt, req, str, unsupported } from "../schema.ts";
import {
  backendFields,
  checkBackend,
  checkFilterFields,
  GATEWAY_API,
  headerFilter,
  headerMatches,
  mirrorFilter,
  noSessionPersistence,
  parentReference,
  routeHostnames,
  routeReferences,
} from "./gateway_common.ts";

const methodMatch = obj({
  type: def(oneOf(["Exact", "RegularExpression"]), "Exact", "How service and method match."),
  service: opt(
    str({ name: "gRPC service", maxLength: 1024 }),
    "Fully qualified service, e.g. helloworld.Greeter.",
  ),
  method: opt(str({ name: "gRPC method", maxLength: 1024 }), "Method name, e.g. SayHello."),
}, {
  title: "GRPCMethodMatch",
  refine(m, at, r) {
    if (m.service === undefined && m.method === undefined) {
      r.error(at, "a method match needs service or method");
    }
    if (m.type === "Exact") {
      if (
        m.service !== undefined &&
        !/^[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$/.test(m.service)
      ) {
        r.error([...at, "service"], `"${m.service}" is not a gRPC service name`);
      }
      if (m.method !== undefined && !/^[A-Za-z_][A-Za-z_0-9]*$/.test(m.method)) {
        r.error([...at, "method"], `"${m.method}" is not a gRPC method name`);
      }
    } else {
      if (m.service !== undefined) regex().check(m.service, [...at, "service"], r);
      if (m.method !== undefined) regex().check(m.method, [...at, "method"], r);
    }
  },
});

const FILTER_FIELDS = {
  RequestHeaderModifier: "requestHeaderModifier",
  ResponseHeaderModifier: "responseHeaderModifier",
  RequestMirror: "requestMirror",
} as const;

const grpcFilter = obj({
  type: req(oneOf(Object.keys(FILTER_FIELDS) as (keyof typeof FILTER_FIELDS)[]), "Which filter."),
  requestHeaderModifier: opt(headerFilter, "Changes request metadata."),
  responseHeaderModifier: opt(headerFilter, "Changes response metadata."),
  requestMirror: opt(mirrorFilter, "Sends a copy of each call to another backend."),
  extensionRef: unsupported("ambit has no filter extensions"),
}, {
  title: "GRPCRouteFilter",
  refine(f, at, r) {
    checkFilterFields(
      f as unknown as Record<string, unknown> & { type: string },
      FILTER_FIELDS,
      at,
      r,
    );
  },
});

const grpcRule = obj({
  name: opt(str({ name: "rule name", maxLength: 253 }), "Rule name."),
  matches: opt(
    list(
      obj({
        method: opt(methodMatch, "gRPC service/method match."),
        headers: opt(headerMatches, "Metadata (header) matches."),
      }, { title: "GRPCRouteMatch" }),
      { maxItems: 64 },
    ),
    "Matches; any one selects the rule. Absent: every call.",
  ),
  filters: opt(list(grpcFilter, { maxItems: 16 }), "Filters, in order."),
  backendRefs: opt(
    list(
      obj({
        ...backendFields,
        weight: def(int({ min: 0, max: 1_000_000 }), 1, "Share of traffic; 0 gets none."),
        filters: opt(list(grpcFilter, { maxItems: 16 }), "Filters for this backend."),
      }, { title: "GRPCBackendRef", refine: checkBackend }),
      { maxItems: 16 },
    ),
    "Where matching calls go, split by weight.",
  ),
  sessionPersistence: noSessionPersistence,
}, { title: "GRPCRouteRule" });

/** Schema of `GRPCRoute.spec`. */
export const grpcRouteSpec = obj({
  parentRefs: req(
    list(parentReference, { minItems: 1, maxItems: 32 }),
    "Services (mesh) or Gateways the route attaches to.",
  ),
  hostnames: opt(routeHostnames, "Host names the route answers for."),
  rules: def(list(grpcRule, { maxItems: 16 }), [{}], "Rules; the most specific match wins."),
}, { title: "GRPCRouteSpec" });

/** The `GRPCRoute` kind. */
export const GRPCRoute = defineKind({
  kind: "GRPCRoute",
  apiVersions: [...GATEWAY_API, "gateway.networking.k8s.io/v1alpha2"],
  namespaced: true,
  specRequired: true,
  doc: "gRPC routing for a Service, served by its waypoint: service/method and metadata matches, " +
    "weighted backends, metadata modifiers and mirroring.",
  spec: grpcRouteSpec,
  references: (res) =>
    routeReferences(
      res.metadata.namespace!,
      res.spec as unknown as Parameters<typeof routeReferences>[1],
    ),
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
    - method: {service: helloworld.Greeter, method: SayHello}
    backendRefs:
    - name: greeter-v2
      port: 50051`,
});
