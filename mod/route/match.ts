/**
 * The routing decision for one request to a Service port: which rule of
 * which route applies and what to do with the request, as a value (the
 * waypoint turns `no_route` into 404 and `no_valid_backend` into 500).
 *
 * Precedence (Gateway API HTTPRouteRule.matches, GRPCRouteRule.matches):
 * the matching hostname first (waypoint Gateway parents only: most
 * characters of a matching non-wildcard hostname, then of any matching
 * hostname); then for HTTPRoute an Exact path, the longest PathPrefix, a
 * RegularExpression path, a method match, most header matches, most query
 * matches; for GRPCRoute most characters of a matching service, then method,
 * most header matches; then the oldest route, `namespace/name`, rule order.
 *
 * @module
 */
import type { Backend, Retry, Timeouts } from "./_actions.ts";
import { compareHostScore, type HostScore, hostScore } from "./_hostname.ts";
import { grpcCall, type ParsedRequest } from "./_matchers.ts";
import { authorityHost, type Header, queryParams, splitTarget } from "./_request.ts";
import type {
  GrpcMatchSpec,
  HttpMatchSpec,
  RouteEntry,
  RouteGroup,
  RouteKind,
  RouteTable,
} from "./compile.ts";
import type { MirrorTarget, RouteFilter } from "./filters.ts";

/** The request as the waypoint received it. */
export interface RouteRequest {
  readonly method: string;
  /** Raw request target: path and query, as sent. */
  readonly path: string;
  /** `:authority` (or Host). */
  readonly authority: string;
  readonly headers: readonly Header[];
  /** A gRPC call (content-type application/grpc); only these match GRPCRoutes. */
  readonly grpc?: boolean;
  /** Namespace of the client, when known: selects consumer routes of that namespace. */
  readonly sourceNamespace?: string;
}

/** A rule matched: forward (or redirect) as it says. */
export interface RouteDecision {
  readonly kind: "route";
  /** `HTTPRoute/<ns>/<name>` or `GRPCRoute/<ns>/<name>`. */
  readonly route: string;
  readonly routeKind: RouteKind;
  readonly ruleIndex: number;
  readonly ruleName?: string;
  readonly matchIndex: number;
  /** The match that selected the rule; undefined for a GRPCRoute rule without matches. */
  readonly match?: HttpMatchSpec | GrpcMatchSpec;
  /** The PathPrefix value that matched (for ReplacePrefixMatch filters). */
  readonly matchedPrefix?: string;
  /** Weighted backends (pick one with `pickBackend`); an invalid one means 500. */
  readonly backends: readonly Backend[];
  /**
   * The rule's filters in order (apply with `applyRequestFilters`); ExtensionRef filters name
   * the snapshot's `faults` / `rateLimits` entries the waypoint applies.
   */
  readonly filters: readonly RouteFilter[];
  readonly timeouts: Timeouts;
  readonly retry?: Retry;
  /** Mirror targets of the rule's filters (each backend's are in its filters). */
  readonly mirrors: readonly MirrorTarget[];
}

/** The outcome of routing one request. */
export type Decision =
  | RouteDecision
  /** Routes apply but none matches: answer 404. */
  | { readonly kind: "no_route" }
  /** The matching rule has nothing valid to send to: answer 500. */
  | {
    readonly kind: "no_valid_backend";
    readonly route: string;
    readonly ruleIndex: number;
    readonly reason: string;
  }
  /** No route applies to the Service port: send the request to the Service itself. */
  | { readonly kind: "default" };

/**
 * Routes `req` with `table`.
 *
 * @example
 * ```ts
 * const d = routeRequest(table, { method: "GET", path: "/v2/x", authority: "web", headers: [] });
 * if (d.kind === "route") pickBackend(d.backends);
 * ```
 */
export function routeRequest(table: RouteTable, req: RouteRequest): Decision {
  const group = selectGroup(table, req.sourceNamespace);
  if (!group) return { kind: "default" };
  const entry = bestEntry(group, req);
  if (!entry) return { kind: "no_route" };
  const { action } = entry;
  const redirects = action.filters.some((f) => f.type === "RequestRedirect");
  const problem = backendProblem(action.backends, redirects);
  if (problem) {
    return {
      kind: "no_valid_backend",
      route: entry.route,
      ruleIndex: entry.ruleIndex,
      reason: problem,
    };
  }
  const prefix = entry.compiled.prefix;
  return {
    kind: "route",
    route: entry.route,
    routeKind: entry.kind,
    ruleIndex: entry.ruleIndex,
    ...(entry.ruleName !== undefined ? { ruleName: entry.ruleName } : {}),
    matchIndex: entry.matchIndex,
    ...(entry.match !== undefined ? { match: entry.match } : {}),
    ...(prefix !== undefined ? { matchedPrefix: prefix } : {}),
    backends: action.backends,
    filters: action.filters,
    timeouts: action.timeouts,
    ...(action.retry ? { retry: action.retry } : {}),
    mirrors: action.mirrors,
  };
}

/** Consumer routes of the client's namespace, else producer routes, else the waypoint's. */
function selectGroup(table: RouteTable, sourceNamespace?: string): RouteGroup | undefined {
  const consumer = sourceNamespace === undefined ? undefined : table.consumers.get(sourceNamespace);
  return consumer ?? table.producer ?? table.gateway;
}

function parse(req: RouteRequest): ParsedRequest {
  const { path, query } = splitTarget(req.path);
  const grpc = req.grpc ? grpcCall(path) : undefined;
  return {
    method: req.method,
    path,
    query: queryParams(query),
    headers: req.headers,
    ...(grpc ? { grpc } : {}),
  };
}

/** The first entry that matches in precedence order; with hostnames, the best host score first. */
function bestEntry(group: RouteGroup, req: RouteRequest): RouteEntry | undefined {
  const parsed = parse(req);
  const host = group.matchHostnames ? authorityHost(req.authority) : "";
  let best: RouteEntry | undefined;
  let bestScore: HostScore | undefined;
  for (const e of group.entries) {
    if (e.kind === "GRPCRoute" && !req.grpc) continue;
    const score = group.matchHostnames ? hostScore(e.hostnames, host) : undefined;
    if (group.matchHostnames && !score) continue;
    if (bestScore && score && compareHostScore(score, bestScore) >= 0) continue;
    if (!e.compiled.test(parsed)) continue;
    if (!group.matchHostnames) return e;
    best = e;
    bestScore = score;
  }
  return best;
}

/** Why a matched rule cannot forward, or undefined when it can. */
function backendProblem(backends: readonly Backend[], redirects: boolean): string | undefined {
  if (redirects) return undefined;
  if (backends.length === 0) return "the rule has no backendRefs";
  const valid = backends.filter((b) => !b.invalid);
  if (valid.length === 0) {
    return `no valid backend: ${backends.map((b) => b.invalid).join("; ")}`;
  }
  if (valid.every((b) => b.weight === 0)) {
    return backends.length === valid.length
      ? "every backend has weight 0"
      : `every valid backend has weight 0; ${
        backends.filter((b) => b.invalid).map((b) => b.invalid).join("; ")
      }`;
  }
  return undefined;
}
