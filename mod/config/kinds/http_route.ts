/**
 * `HTTPRoute` (gateway.networking.k8s.io/v1), attached to a Service (mesh,
 * GAMMA) and served by that service's waypoint.
 *
 * @module
 */
import { gatewayDuration, hostname, parseDuration, regex } from "../formats.ts";
import { defineKind } from "../kind.ts";
import {
  def,
  int,
  list,
  obj,
  oneOf,
  oneOfNumber,
  opt,
  port,
  req,
  str,
  unsupported,
} from "../schema.ts";
import {
  backendFields,
  type BackendRefValue,
  checkBackend,
  checkFilterFields,
  GATEWAY_API,
  headerFilter,
  headerMatches,
  mirrorFilter,
  noSessionPersistence,
  type ParentRef,
  parentReference,
  routeHostnames,
  routeReferences,
} from "./gateway_common.ts";

const METHODS = [
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
] as const;

const pathMatch = obj({
  type: def(
    oneOf(["Exact", "PathPrefix", "RegularExpression"]),
    "PathPrefix",
    "How the path matches. PathPrefix matches whole segments: /v2 does not match /v2example.",
  ),
  value: def(str({ maxLength: 1024 }), "/", "The path, or a regular expression."),
}, {
  title: "HTTPPathMatch",
  refine(m, at, r) {
    if (m.type === "RegularExpression") {
      regex().check(m.value, [...at, "value"], r);
      return;
    }
    const problem = pathProblem(m.value);
    if (problem) r.error([...at, "value"], problem);
  },
});

/** Upstream's CEL rules for Exact and PathPrefix values. */
function pathProblem(v: string): string | undefined {
  if (!v.startsWith("/")) return `"${v}" must start with "/"`;
  if (v.includes("//")) return `"${v}" must not contain "//"`;
  if (/(^|\/)\.\.?(\/|$)/.test(v)) return `"${v}" must not contain "/./" or "/../" segments`;
  if (v.includes("%2f") || v.includes("%2F")) return `"${v}" must not contain an encoded "/" (%2F)`;
  if (v.includes("#")) return `"${v}" must not contain "#"`;
  return undefined;
}

const queryMatch = obj({
  type: def(oneOf(["Exact", "RegularExpression"]), "Exact", "How the value matches."),
  name: req(
    str({ name: "query parameter name", minLength: 1, maxLength: 256 }),
    "Query parameter name (case-sensitive).",
  ),
  value: req(str({ maxLength: 1024 }), "Value, or regular expression."),
}, {
  title: "HTTPQueryParamMatch",
  refine(m, at, r) {
    if (m.type === "RegularExpression") regex().check(m.value, [...at, "value"], r);
  },
});

/** One HTTPRouteMatch: all its conditions must hold. */
export const httpRouteMatch = obj({
  path: def(pathMatch, { type: "PathPrefix", value: "/" }, "Path match."),
  headers: opt(headerMatches, "Header matches (all must hold)."),
  queryParams: opt(
    list(queryMatch, {
      maxItems: 16,
      uniqueBy: (q) => q.name,
      uniqueWhat: "query parameter match",
    }),
    "Query parameter matches (all must hold).",
  ),
  method: opt(oneOf(METHODS), "HTTP method."),
}, {
  title: "HTTPRouteMatch",
  doc: "Conditions a request must meet; every given condition must hold.",
});

const pathModifier = obj({
  type: req(
    oneOf(["ReplaceFullPath", "ReplacePrefixMatch"]),
    "Replace the whole path, or the matched prefix.",
  ),
  replaceFullPath: opt(str({ maxLength: 1024 }), "New path, with type ReplaceFullPath."),
  replacePrefixMatch: opt(
    str({ maxLength: 1024 }),
    "Replacement for the matched prefix, with type ReplacePrefixMatch.",
  ),
}, {
  title: "HTTPPathModifier",
  refine(m, at, r) {
    const want = m.type === "ReplaceFullPath" ? "replaceFullPath" : "replacePrefixMatch";
    const other = m.type === "ReplaceFullPath" ? "replacePrefixMatch" : "replaceFullPath";
    if (m[want] === undefined) r.error([...at, want], `type ${m.type} needs "${want}"`);
    if (m[other] !== undefined) {
      r.error([...at, other], `"${other}" is not allowed with type ${m.type}`);
    }
  },
});

const FILTER_FIELDS = {
  RequestHeaderModifier: "requestHeaderModifier",
  ResponseHeaderModifier: "responseHeaderModifier",
  RequestRedirect: "requestRedirect",
  URLRewrite: "urlRewrite",
  RequestMirror: "requestMirror",
} as const;

/** An HTTPRouteFilter. */
export const httpRouteFilter = obj({
  type: req(
    oneOf(Object.keys(FILTER_FIELDS) as (keyof typeof FILTER_FIELDS)[]),
    "Which filter; the field of the same name carries its settings.",
  ),
  requestHeaderModifier: opt(headerFilter, "Changes request headers."),
  responseHeaderModifier: opt(headerFilter, "Changes response headers."),
  requestRedirect: opt(
    obj({
      scheme: opt(oneOf(["http", "https"]), "Scheme of the Location."),
      hostname: opt(hostname(), "Host of the Location."),
      path: opt(pathModifier, "Path of the Location."),
      port: opt(port(), "Port of the Location."),
      statusCode: def(oneOfNumber([301, 302]), 302, "301 or 302."),
    }, { title: "HTTPRequestRedirectFilter" }),
    "Answers with a redirect instead of forwarding.",
  ),
  urlRewrite: opt(
    obj({
      hostname: opt(hostname(), "New Host header."),
      path: opt(pathModifier, "New path."),
    }, { title: "HTTPURLRewriteFilter" }),
    "Rewrites host and path before forwarding.",
  ),
  requestMirror: opt(mirrorFilter, "Sends a copy of each request to another backend."),
  extensionRef: unsupported("ambit has no filter extensions"),
  cors: unsupported("CORS is not implemented by ambit's waypoint yet"),
  externalAuth: unsupported("ambit has no external authorization; use AuthorizationPolicy"),
}, {
  title: "HTTPRouteFilter",
  refine(f, at, r) {
    checkFilterFields(
      f as unknown as Record<string, unknown> & { type: string },
      FILTER_FIELDS,
      at,
      r,
    );
  },
});

/** An HTTPBackendRef: a backend with a weight and its own filters. */
export const httpBackendRef = obj({
  ...backendFields,
  weight: def(
    int({ min: 0, max: 1_000_000 }),
    1,
    "Share of traffic relative to the other backends; 0 gets none.",
  ),
  filters: opt(
    list(httpRouteFilter, { maxItems: 16 }),
    "Filters applied only when this backend is chosen.",
  ),
}, { title: "HTTPBackendRef", doc: "A backend Service and its weight.", refine: checkBackend });

/** An HTTPRouteRule. */
export const httpRouteRule = obj({
  name: opt(str({ name: "rule name", maxLength: 253 }), "Rule name (for status and logs)."),
  matches: def(list(httpRouteMatch, { maxItems: 64 }), [{
    path: { type: "PathPrefix", value: "/" },
  }], "Matches; any one selects the rule."),
  filters: opt(
    list(httpRouteFilter, { maxItems: 16 }),
    "Filters applied to matching requests, in order.",
  ),
  backendRefs: opt(
    list(httpBackendRef, { maxItems: 16 }),
    "Where matching requests go, split by weight.",
  ),
  timeouts: opt(
    obj({
      request: opt(
        gatewayDuration(),
        "Deadline for the whole exchange, retries included (504 after).",
      ),
      backendRequest: opt(gatewayDuration(), "Deadline for one try to a backend (504 after)."),
    }, {
      title: "HTTPRouteTimeouts",
      refine(t, at, r) {
        if (
          t.request && t.backendRequest &&
          parseDuration(t.backendRequest)! > parseDuration(t.request)!
        ) {
          r.error(
            [...at, "backendRequest"],
            `backendRequest ${t.backendRequest} is longer than request ${t.request}`,
          );
        }
      },
    }),
    "Timeouts.",
  ),
  retry: opt(
    obj({
      codes: opt(
        list(int({ name: "HTTP status code", min: 400, max: 599 }), { maxItems: 32 }),
        "Response codes that are retried (500, 502, 503 and 504 when absent).",
      ),
      attempts: opt(int({ min: 0, max: 10 }), "Retries after the first try."),
      backoff: opt(gatewayDuration(), "Wait between tries."),
    }, { title: "HTTPRouteRetry" }),
    "Retries.",
  ),
  sessionPersistence: noSessionPersistence,
}, {
  title: "HTTPRouteRule",
  refine(rule, at, r) {
    const types = (rule.filters ?? []).map((f) => f.type);
    if (types.includes("RequestRedirect") && types.includes("URLRewrite")) {
      r.error([...at, "filters"], "RequestRedirect and URLRewrite cannot be used together");
    }
    for (const t of new Set(types)) {
      if (t !== "RequestMirror" && types.filter((x) => x === t).length > 1) {
        r.error([...at, "filters"], `filter ${t} may appear only once`);
      }
    }
    if (types.includes("RequestRedirect") && rule.backendRefs?.length) {
      r.error([...at, "backendRefs"], "a rule with RequestRedirect must not have backendRefs");
    }
    const usesPrefixRewrite = (rule.filters ?? []).some((f) =>
      (f.type === "URLRewrite" && f.urlRewrite?.path?.type === "ReplacePrefixMatch") ||
      (f.type === "RequestRedirect" && f.requestRedirect?.path?.type === "ReplacePrefixMatch")
    );
    if (usesPrefixRewrite && !rule.matches.every((m) => m.path.type === "PathPrefix")) {
      r.error(
        [...at, "filters"],
        "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match",
      );
    }
  },
});

/** Schema of `HTTPRoute.spec`. */
export const httpRouteSpec = obj({
  parentRefs: req(
    list(parentReference, { minItems: 1, maxItems: 32 }),
    "Services (mesh) or Gateways the route attaches to.",
  ),
  hostnames: opt(routeHostnames, "Host names the route answers for (mesh routes match any)."),
  rules: def(list(httpRouteRule, { maxItems: 16 }), [{
    matches: [{ path: { type: "PathPrefix", value: "/" } }],
  }], "Rules; the most specific match wins (Gateway API precedence)."),
  useDefaultGateways: unsupported("ambit routes attach by parentRefs only"),
}, { title: "HTTPRouteSpec" });

/** The `HTTPRoute` kind. */
export const HTTPRoute = defineKind({
  kind: "HTTPRoute",
  apiVersions: GATEWAY_API,
  namespaced: true,
  specRequired: true,
  doc: 'HTTP routing for a Service (parentRef kind Service, group ""), served by the service\'s ' +
    "waypoint: path, header, query and method matches with Gateway API precedence, weighted " +
    "backends, header modifiers, redirects, rewrites, mirroring, timeouts and retries.",
  spec: httpRouteSpec,
  references: (res) =>
    routeReferences(
      res.metadata.namespace!,
      res.spec as unknown as Parameters<typeof routeReferences>[1],
    ),
  example: `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: shop
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: reviews
  rules:
  - backendRefs:
    - name: reviews-v1
      port: 9080
      weight: 90
    - name: reviews-v2
      port: 9080
      weight: 10`,
});

export type { BackendRefValue, ParentRef };
