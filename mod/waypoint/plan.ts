/**
 * Planning one request at the waypoint, before any byte goes upstream:
 * RequestAuthentication (JWT), L7 AuthorizationPolicy, then routing
 * (HTTPRoute/GRPCRoute: match, filters, redirect, weighted backend), giving
 * either an answer the waypoint makes itself or the upstream request with
 * its backend service, retry policy, timeouts and response header changes.
 *
 * @module
 */
import type { ServiceInfo, Snapshot, WaypointInfo } from "../config/snapshot.ts";
import type { Resource } from "../config/kind.ts";
import { decideFault, FAULT_ABORT_FLAG, type HTTPFaultInjection } from "./fault.ts";
import {
  type LocalRateLimitConfig,
  LocalRateLimiter,
  RATE_LIMITED_BODY,
  RATE_LIMITED_FLAG,
} from "./rate_limit.ts";
import { evaluateL7, L7PolicyCache } from "../policy/l7_authz.ts";
import {
  type JwtAuthenticator,
  jwtRulesOf,
  requestAuthenticationsForService,
} from "../policy/jwt.ts";
import {
  applyRequestFilters,
  type BackendTarget,
  type HeaderModifier,
  pickBackend,
  type RouteFilter,
  routeRequest,
  routeTableFor,
} from "../route/mod.ts";
import { UNKNOWN } from "../telemetry/tcp_metrics.ts";
import { getHeader, type HeaderList } from "./headers.ts";
import { httpRouteRetryPolicy, ISTIO_DEFAULT_RETRY, type RetryPolicy } from "./retry.ts";
import type { TunnelInfo } from "./l7.ts";

/** The request as the client sent it (headers already in waypoint form). */
export interface PlanRequest {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly headers: HeaderList;
  readonly grpc: boolean;
}

/** What to do with a request. */
export type RequestPlan =
  | {
    readonly kind: "reply";
    readonly status: number;
    readonly body: string;
    /** Istio response flag. */
    readonly flags: string;
    readonly headers?: HeaderList;
    readonly reason?: string;
  }
  | {
    readonly kind: "forward";
    /** The service whose endpoints take it (a route's backend, or the addressed service). */
    readonly backend: ServiceInfo;
    readonly port: number;
    readonly request: PlanRequest;
    readonly retry: RetryPolicy;
    /** Whole exchange, retries included. */
    readonly timeoutMs?: number;
    readonly responseModifiers: readonly HeaderModifier[];
    readonly mirrors: readonly BackendTarget[];
    /** `HTTPRoute/ns/name` that routed it, for logs. */
    readonly route?: string;
  };

/** What planning reads. */
export interface PlanEnv {
  snapshot(): Snapshot;
  waypoint(): WaypointInfo;
  readonly jwt: JwtAuthenticator;
  /** L7 policies compiled per snapshot. */
  policies(): L7PolicyCache;
  /** Token buckets by LocalRateLimit key; they keep their tokens across reloads. */
  readonly limiters: RateLimiters;
  readonly random?: () => number;
}

/** The token bucket of each LocalRateLimit, rebuilt only when its spec changes. */
export class RateLimiters {
  #byKey = new Map<string, { spec: string; limiter: LocalRateLimiter }>();

  /** Takes a token from the bucket of `res`. */
  take(res: Resource): ReturnType<LocalRateLimiter["take"]> {
    const key = `${res.metadata.namespace}/${res.metadata.name}`;
    const spec = JSON.stringify(res.spec);
    let e = this.#byKey.get(key);
    if (!e || e.spec !== spec) {
      e = { spec, limiter: new LocalRateLimiter(res.spec as LocalRateLimitConfig) };
      this.#byKey.set(key, e);
    }
    return e.limiter.take();
  }
}

/** A rate-limit refusal, as Envoy answers it. */
function rateLimited(d: ReturnType<LocalRateLimiter["take"]>, what: string): RequestPlan {
  return {
    kind: "reply",
    status: d.status,
    body: RATE_LIMITED_BODY,
    flags: RATE_LIMITED_FLAG,
    headers: Object.entries(d.headers),
    reason: `rate limited by ${what}`,
  };
}

/** Applies the HTTPFault and LocalRateLimit filters of a route rule (or backend). */
async function applyExtensions(
  env: PlanEnv,
  snapshot: Snapshot,
  filters: readonly RouteFilter[],
  grpc: boolean,
): Promise<RequestPlan | { delayMs: number } | undefined> {
  let delayMs = 0;
  for (const f of filters) {
    if (f.type !== "ExtensionRef") continue;
    if (f.kind === "LocalRateLimit") {
      const res = snapshot.rateLimits.get(f.key);
      if (!res) continue;
      const d = env.limiters.take(res);
      if (!d.allowed) return rateLimited(d, `LocalRateLimit ${f.key}`);
    } else if (f.kind === "HTTPFault") {
      const res = snapshot.faults.get(f.key);
      if (!res) continue;
      const d = decideFault(res.spec as HTTPFaultInjection, env.random ?? Math.random);
      if (d.delayMs) {
        delayMs += d.delayMs;
        await new Promise((r) => setTimeout(r, d.delayMs));
      }
      if (d.abort) {
        return {
          kind: "reply",
          status: grpc && d.abort.grpcStatus !== undefined ? 200 : d.abort.status,
          body: "fault filter abort",
          flags: FAULT_ABORT_FLAG,
          headers: d.abort.grpcStatus !== undefined
            ? [["grpc-status", String(d.abort.grpcStatus)], ["grpc-message", "fault filter abort"]]
            : undefined,
          reason: `HTTPFault ${f.key}`,
        };
      }
    }
  }
  return delayMs > 0 ? { delayMs } : undefined;
}

const jwtRuleCache = new WeakMap<Snapshot, Map<string, ReturnType<typeof jwtRulesOf>>>();

/** The JWT rules for a service at a waypoint, computed once per snapshot. */
function jwtRulesFor(s: Snapshot, service: string, waypoint: string) {
  let m = jwtRuleCache.get(s);
  if (!m) jwtRuleCache.set(s, m = new Map());
  const key = `${service}|${waypoint}`;
  let rules = m.get(key);
  if (!rules) {
    m.set(key, rules = jwtRulesOf(requestAuthenticationsForService(s, service, waypoint)));
  }
  return rules;
}

/** Caches an L7PolicyCache per snapshot. */
export function policyCacheFor(): (s: Snapshot) => L7PolicyCache {
  let last: { s: Snapshot; c: L7PolicyCache } | undefined;
  return (s) => {
    if (last?.s !== s) last = { s, c: new L7PolicyCache(s) };
    return last.c;
  };
}

/** Plans a request to a Service bound to the waypoint. */
export async function planRequest(
  env: PlanEnv,
  info: TunnelInfo,
  service: ServiceInfo,
  port: number,
  req: PlanRequest,
): Promise<RequestPlan> {
  const snapshot = env.snapshot();
  const wp = env.waypoint();
  let headers = req.headers;

  // 1. RequestAuthentication: a token present must verify; none is fine here.
  const rules = jwtRulesFor(snapshot, service.key, wp.key);
  let auth;
  if (rules.length > 0) {
    const r = await env.jwt.authenticate(rules, {
      path: req.path,
      headers,
      host: req.authority,
    });
    if (!r.ok) {
      return {
        kind: "reply",
        status: r.status,
        body: r.body,
        flags: "UAEX",
        headers: [["www-authenticate", r.wwwAuthenticate]],
        reason: r.reason,
      };
    }
    auth = r.auth;
    const drop = new Set(r.headerEdits.remove.map((h) => h.toLowerCase()));
    headers = [
      ...headers.filter(([k]) => !drop.has(k)),
      ...r.headerEdits.set.map(([k, v]) => [k.toLowerCase(), v] as [string, string]),
    ];
  }

  // 2. L7 AuthorizationPolicy.
  const policies = env.policies().forService(service.key, wp.key);
  if (policies.length > 0) {
    const xff = getHeader(headers, "x-forwarded-for")?.split(",")[0]?.trim();
    const d = evaluateL7(policies, {
      sourcePrincipal: info.sourceIdentity,
      sourceIp: info.client.ip,
      remoteIp: xff || info.client.ip,
      sourceNamespace: info.source.namespace !== UNKNOWN ? info.source.namespace : undefined,
      method: req.method,
      host: req.authority,
      path: req.path,
      port,
      headers,
      auth,
      destinationIp: service.vip,
    });
    if (!d.allow) {
      return {
        kind: "reply",
        status: d.status ?? 403,
        body: d.body ?? "RBAC: access denied",
        flags: "RBAC",
        reason: d.reason,
      };
    }
  }

  // 3. Local rate limits of the whole waypoint.
  for (const res of snapshot.rateLimitsByWaypoint.get(wp.key) ?? []) {
    const d = env.limiters.take(res);
    if (!d.allowed) {
      return rateLimited(d, `LocalRateLimit ${res.metadata.namespace}/${res.metadata.name}`);
    }
  }

  // 4. Routing.
  const table = routeTableFor(snapshot, service.key, port);
  const routed = routeRequest(table, {
    method: req.method,
    path: req.path,
    authority: req.authority,
    headers,
    grpc: req.grpc,
    sourceNamespace: info.source.namespace !== UNKNOWN ? info.source.namespace : undefined,
  });
  const request = { ...req, headers };
  if (routed.kind === "default") {
    return {
      kind: "forward",
      backend: service,
      port,
      request,
      retry: ISTIO_DEFAULT_RETRY,
      responseModifiers: [],
      mirrors: [],
    };
  }
  if (routed.kind === "no_route") {
    return { kind: "reply", status: 404, body: "", flags: "NR", reason: "no route matched" };
  }
  if (routed.kind === "no_valid_backend") {
    return { kind: "reply", status: 500, body: "", flags: "NC", reason: routed.reason };
  }
  const random = env.random ?? Math.random;
  const filterOptions = { listenerPort: port, matchedPrefix: routed.matchedPrefix, random };
  const f = applyRequestFilters(
    { scheme: "http", authority: req.authority, path: req.path, headers },
    routed.filters,
    filterOptions,
  );
  if (f.kind === "redirect") {
    return {
      kind: "reply",
      status: f.redirect.status,
      body: "",
      flags: "-",
      headers: [["location", f.redirect.location]],
      reason: `redirect by ${routed.route}`,
    };
  }
  const ext = await applyExtensions(env, snapshot, routed.filters, req.grpc);
  if (ext && "kind" in ext) return ext;
  const backend = pickBackend(routed.backends, random);
  if (!backend || backend.invalid) {
    return {
      kind: "reply",
      status: 500,
      body: "",
      flags: "NC",
      reason: backend?.invalid ?? "no backend with weight above 0",
    };
  }
  const bext = await applyExtensions(env, snapshot, backend.filters, req.grpc);
  if (bext && "kind" in bext) return bext;
  const bf = applyRequestFilters(f.request, backend.filters, filterOptions);
  if (bf.kind === "redirect") {
    return {
      kind: "reply",
      status: bf.redirect.status,
      body: "",
      flags: "-",
      headers: [["location", bf.redirect.location]],
    };
  }
  const svc = backend.kind === "Service" ? snapshot.services.get(backend.service) : undefined;
  if (!svc) {
    return {
      kind: "reply",
      status: 500,
      body: "",
      flags: "NC",
      reason: `backend ${backend.kind} ${backend.service} is not a mesh Service`,
    };
  }
  const retry = routed.retry
    ? httpRouteRetryPolicy(
      {
        attempts: routed.retry.attempts,
        codes: [...routed.retry.codes],
        backoff: `${routed.retry.backoffMs}ms`,
      } as Parameters<typeof httpRouteRetryPolicy>[0],
    )
    : ISTIO_DEFAULT_RETRY;
  return {
    kind: "forward",
    backend: svc,
    port: backend.port,
    request: {
      ...req,
      path: bf.request.path,
      authority: bf.request.authority,
      headers: bf.request.headers.map(([k, v]) => [k, v] as [string, string]),
    },
    retry: routed.timeouts.backendRequest !== undefined
      ? { ...retry, perTryTimeoutMs: routed.timeouts.backendRequest }
      : retry,
    timeoutMs: routed.timeouts.request,
    responseModifiers: [...f.response, ...bf.response],
    mirrors: [...f.mirrors, ...bf.mirrors],
    route: routed.route,
  };
}
