/**
 * `HTTPRoute` (gateway.networking.k8s.io/v1): HTTP routing for a Service,
 * attached as Gateway API's mesh (GAMMA) profile and Istio's waypoints do it,
 * and served by that service's waypoint.
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
  type Path,
  port,
  type Reporter,
  req,
  str,
  unsupported,
} from "../schema.ts";
import {
  backendFields,
  backendWeight,
  checkBackend,
  checkFilterFields,
  checkFilterList,
  checkRules,
  extensionRef,
  GATEWAY_API,
  headerFilter,
  headerMatches,
  headerName,
  mirrorFilter,
  noDefaultGateways,
  noSessionPersistence,
  parentRefs,
  routeHostnames,
  routeReferences,
  sectionName,
  UNSUPPORTED_FILTERS,
  withCheck,
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

const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$/;

/** Upstream's CEL rules for Exact and PathPrefix values; the first one broken. */
function pathProblem(v: string): [message: string, hint?: string] | undefined {
  if (!v.startsWith("/")) return [`"${v}" must start with "/"`];
  for (const bad of ["//", "/./", "/../", "%2f", "%2F", "#"]) {
    if (v.includes(bad)) return [`"${v}" must not contain "${bad}"`];
  }
  for (const bad of ["/..", "/."]) {
    if (v.endsWith(bad)) return [`"${v}" must not end with "${bad}"`];
  }
  if (!PATH_CHARS.test(v)) {
    return [
      `"${v}" has characters a path may not contain`,
      "percent-encode them, e.g. %20 for a space",
    ];
  }
  return undefined;
}

const pathMatch = obj({
  type: def(
    oneOf(["Exact", "PathPrefix", "RegularExpression"]),
    "PathPrefix",
    "How the path matches. PathPrefix matches whole segments: /v2 matches /v2/x but not /v2x.",
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
    if (problem) r.error([...at, "value"], ...problem);
  },
});

const queryMatch = obj({
  type: def(oneOf(["Exact", "RegularExpression"]), "Exact", "How the value matches."),
  name: req(headerName("query parameter name"), "Query parameter name (case-sensitive)."),
  value: req(
    str({ name: "query parameter value", minLength: 1, maxLength: 1024 }),
    "Value, or regular expression.",
  ),
}, {
  title: "HTTPQueryParamMatch",
  refine(m, at, r) {
    if (m.type === "RegularExpression") regex().check(m.value, [...at, "value"], r);
  },
});

/** One HTTPRouteMatch: every condition given must hold. */
export const httpRouteMatch = obj({
  path: def(pathMatch, { type: "PathPrefix", value: "/" }, "Path match."),
  headers: opt(headerMatches("HTTPHeaderMatch"), "Header matches; all must hold."),
  queryParams: opt(
    list(queryMatch, {
      maxItems: 16,
      uniqueBy: (q) => q.name,
      uniqueWhat: "query parameter match",
    }),
    "Query parameter matches; all must hold.",
  ),
  method: opt(oneOf(METHODS), "HTTP method."),
}, {
  title: "HTTPRouteMatch",
  doc: "Conditions a request must meet; every condition given must hold.",
});

const pathModifier = obj({
  type: req(
    oneOf(["ReplaceFullPath", "ReplacePrefixMatch"]),
    "Replace the whole path, or the prefix the rule's PathPrefix match matched.",
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
  ExtensionRef: "extensionRef",
} as const;

const FILTER_TYPES = [
  ...Object.keys(FILTER_FIELDS) as (keyof typeof FILTER_FIELDS)[],
  ...Object.keys(UNSUPPORTED_FILTERS) as ("CORS" | "ExternalAuth")[],
];

/** An HTTPRouteFilter. */
export const httpRouteFilter = obj({
  type: req(
    oneOf(FILTER_TYPES),
    "Which filter; the field of the same name holds its settings. CORS and ExternalAuth are " +
      "refused.",
  ),
  requestHeaderModifier: opt(headerFilter, "Changes request headers."),
  responseHeaderModifier: opt(headerFilter, "Changes response headers."),
  requestRedirect: opt(
    obj({
      scheme: opt(oneOf(["http", "https"]), "Scheme of the Location; default the request's."),
      hostname: opt(hostname(), "Host of the Location; default the request's."),
      path: opt(pathModifier, "Path of the Location; default the request's."),
      port: opt(port(), "Port of the Location; default derived from the scheme."),
      statusCode: def(oneOfNumber([301, 302, 303, 307, 308]), 302, "Redirect status code."),
    }, { title: "HTTPRequestRedirectFilter" }),
    "Answers with a redirect instead of forwarding.",
  ),
  urlRewrite: opt(
    obj({
      hostname: opt(hostname(), "New Host header."),
      path: opt(pathModifier, "New path."),
    }, { title: "HTTPURLRewriteFilter" }),
    "Rewrites the Host header and path before forwarding.",
  ),
  requestMirror: opt(mirrorFilter, "Sends a copy of each request to another backend."),
  extensionRef: opt(
    extensionRef,
    "An ambit HTTPFault or LocalRateLimit in the route's namespace: {group: ambit.io, kind, name}.",
  ),
  cors: unsupportedFilter("CORS"),
  externalAuth: unsupportedFilter("ExternalAuth"),
}, {
  title: "HTTPRouteFilter",
  doc: "A filter: `type` names it, and the field of that name (and no other) holds its settings.",
  refine: (f, at, r) => checkFilterFields(f, FILTER_FIELDS, at, r),
});

function unsupportedFilter(type: string) {
  return unsupported(UNSUPPORTED_FILTERS[type]);
}

/** Filters of a rule or a backendRef, with upstream's list rules. */
const httpFilters = withCheck(
  list(httpRouteFilter, { maxItems: 16 }),
  (filters, at, r) =>
    checkFilterList(
      filters,
      at,
      r,
      ["RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite"],
      ["RequestRedirect", "URLRewrite"],
    ),
);

/** An HTTPBackendRef: a backend with a weight and its own filters. */
export const httpBackendRef = obj({
  ...backendFields,
  weight: backendWeight,
  filters: opt(httpFilters, "Filters applied only to requests sent to this backend."),
}, {
  title: "HTTPBackendRef",
  doc: "A backend Service (or ServiceEntry host), its port and weight.",
  refine: checkBackend,
});

type Filter = { type: string; requestRedirect?: PathHolder; urlRewrite?: PathHolder };
type PathHolder = { path?: { type: string } };

/** ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix. */
function checkPrefixRewrites(
  filters: readonly Filter[],
  matches: readonly { path: { type: string } }[],
  at: Path,
  r: Reporter,
): void {
  filters.forEach((f, i) => {
    const field = f.type === "URLRewrite" ? "urlRewrite" : "requestRedirect";
    if (f[field]?.path?.type !== "ReplacePrefixMatch") return;
    if (matches.length === 1 && matches[0].path.type === "PathPrefix") return;
    r.error(
      [...at, i, field, "path", "type"],
      "ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix",
      matches.length === 1
        ? `the rule's match is of type ${matches[0].path.type}`
        : `the rule has ${matches.length} matches`,
    );
  });
}

/** An HTTPRouteRule. */
export const httpRouteRule = obj({
  name: opt(sectionName("rule name"), "Rule name, unique in the route (for logs and metrics)."),
  matches: def(
    list(httpRouteMatch, { maxItems: 64 }),
    [{ path: { type: "PathPrefix", value: "/" } }],
    "Matches; any one selects the rule.",
  ),
  filters: opt(httpFilters, "Filters applied to matching requests, in order."),
  backendRefs: opt(
    list(httpBackendRef, { maxItems: 16 }),
    "Where matching requests go, split by weight.",
  ),
  timeouts: opt(
    obj({
      request: opt(
        gatewayDuration(),
        "Deadline for the whole exchange, retries included; 504 after. 0s disables it.",
      ),
      backendRequest: opt(
        gatewayDuration(),
        "Deadline for one try to a backend; 504 after. At most `request`.",
      ),
    }, {
      title: "HTTPRouteTimeouts",
      refine(t, at, r) {
        if (t.request === undefined || t.backendRequest === undefined) return;
        const request = parseDuration(t.request)!;
        if (request !== 0 && parseDuration(t.backendRequest)! > request) {
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
        list(int({ name: "HTTP status code", min: 400, max: 599 }), {
          uniqueBy: String,
          uniqueWhat: "code",
        }),
        "Response codes that are retried (400-599).",
      ),
      attempts: opt(int({ min: 1 }), "Retries after the first try."),
      backoff: opt(gatewayDuration(), "Wait before each retry."),
    }, { title: "HTTPRouteRetry" }),
    "Retries.",
  ),
  sessionPersistence: noSessionPersistence,
}, {
  title: "HTTPRouteRule",
  doc: "Matches, filters and the backends matching requests go to.",
  refine(rule, at, r) {
    const filters = rule.filters ?? [];
    if (rule.backendRefs?.length && filters.some((f) => f.type === "RequestRedirect")) {
      r.error(
        [...at, "backendRefs"],
        "a rule with a RequestRedirect filter must not have backendRefs",
      );
    }
    checkPrefixRewrites(filters, rule.matches, [...at, "filters"], r);
    rule.backendRefs?.forEach((b, i) =>
      checkPrefixRewrites(b.filters ?? [], rule.matches, [...at, "backendRefs", i, "filters"], r)
    );
  },
});

/** Schema of `HTTPRoute.spec`. */
export const httpRouteSpec = obj({
  parentRefs: req(
    parentRefs,
    'What the route attaches to: for mesh traffic, a Service with group "" and kind Service.',
  ),
  hostnames: opt(
    routeHostnames,
    "Host names the route matches (Host header); `*.` wildcards allowed.",
  ),
  rules: def(
    withCheck(list(httpRouteRule, { minItems: 1, maxItems: 16 }), checkRules),
    [{ matches: [{ path: { type: "PathPrefix", value: "/" } }] }],
    "Rules; the most specific match wins (Gateway API precedence), at most 128 matches in all.",
  ),
  useDefaultGateways: noDefaultGateways,
}, { title: "HTTPRouteSpec" });

/** The `HTTPRoute` kind. */
export const HTTPRoute = defineKind({
  kind: "HTTPRoute",
  apiVersions: GATEWAY_API,
  namespaced: true,
  specRequired: true,
  doc: 'HTTP routing for a Service, attached with parentRef `{group: "", kind: Service}` as in ' +
    "Istio's ambient mode and served by the service's waypoint: path, header, query and method " +
    "matches with Gateway API precedence, weighted backends, header modifiers, redirects, rewrites, " +
    "mirroring, timeouts, retries, and fault injection and rate limits through ExtensionRef " +
    "filters naming an HTTPFault or LocalRateLimit. Unlike upstream, parentRefs is required: a " +
    "route without a parent would apply nowhere.",
  spec: httpRouteSpec,
  references: (res) => routeReferences(res.metadata.namespace!, res.spec),
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
    port: 9080
  rules:
  - matches:
    - headers:
      - name: end-user
        value: jason
    backendRefs:
    - name: reviews-v2
      port: 9080
  - backendRefs:
    - name: reviews-v1
      port: 9080
      weight: 90
    - name: reviews-v2
      port: 9080
      weight: 10
    timeouts:
      request: 5s`,
});
