/**
 * Builds the route table of one Service port from a config snapshot: every
 * HTTPRoute and GRPCRoute attached to the Service (or to its waypoint
 * Gateway), each match compiled and sorted by Gateway API precedence. Tables
 * are cached per snapshot, so a reload builds new ones lazily.
 *
 * Which routes apply (GEP-1294, GAMMA):
 * - routes whose parentRef is the Service; `parentRefs[].port` (or a
 *   `sectionName` naming a Service port) limits them to that port. A route
 *   in the Service's namespace is a producer route and applies to every
 *   client; one in another namespace is a consumer route and applies only to
 *   clients in its own namespace, instead of the producer routes.
 * - only when no Service-attached route applies to the port: routes whose
 *   parentRef is the Service's waypoint Gateway. For these `hostnames` match
 *   the request's `:authority`; for Service parents they are ignored, as
 *   GEP-1294 says implementations should not infer anything from them.
 * - only one route type per Service port: when GRPCRoutes and HTTPRoutes are
 *   both attached, the GRPCRoutes apply (GEP-1294) and the HTTPRoutes are
 *   rejected; on the waypoint Gateway the older route wins a clash between
 *   types with intersecting hostnames (GRPCRouteSpec.hostnames).
 *
 * @module
 */
import type { Resource } from "../config/kind.ts";
import type { Snapshot } from "../config/snapshot.ts";
import { compileAction, type RuleAction, type RuleSpec } from "./_actions.ts";
import { hostnamesIntersect } from "./_hostname.ts";
import {
  type CompiledMatch,
  compileGrpcMatch,
  compileHttpMatch,
  type GrpcMatchSpec,
  type HttpMatchSpec,
} from "./_matchers.ts";
import { UnknownRouteTargetError } from "./errors.ts";

export type { Backend, Retry, RuleAction, Timeouts } from "./_actions.ts";
export type { GrpcMatchSpec, HttpMatchSpec } from "./_matchers.ts";

/** The route kinds the table holds. */
export type RouteKind = "HTTPRoute" | "GRPCRoute";

/** One match of one rule of one route, ready to test. */
export interface RouteEntry {
  /** `HTTPRoute/<namespace>/<name>` or `GRPCRoute/<namespace>/<name>`. */
  readonly route: string;
  readonly kind: RouteKind;
  /** Hostnames the route matches; empty matches every host (and for Service parents). */
  readonly hostnames: readonly string[];
  readonly ruleIndex: number;
  readonly ruleName?: string;
  readonly matchIndex: number;
  /** The match as configured, defaults applied; undefined for a GRPCRoute rule without matches. */
  readonly match?: HttpMatchSpec | GrpcMatchSpec;
  readonly compiled: CompiledMatch;
  readonly action: RuleAction;
}

/** Routes that apply together, entries in precedence order. */
export interface RouteGroup {
  readonly entries: readonly RouteEntry[];
  /** Whether `hostnames` take part in matching (waypoint Gateway parents only). */
  readonly matchHostnames: boolean;
}

/** The routes of one Service port. */
export interface RouteTable {
  /** `namespace/name` of the Service. */
  readonly service: string;
  readonly port: number;
  /** Routes in the Service's namespace attached to it; for every client. */
  readonly producer?: RouteGroup;
  /** Consumer routes, by the namespace of the clients they apply to. */
  readonly consumers: ReadonlyMap<string, RouteGroup>;
  /** Routes attached to the Service's waypoint Gateway; used when no Service route applies. */
  readonly gateway?: RouteGroup;
  /** Routes not applied and why, dropped mirrors, ignored hostnames: for the waypoint's log. */
  readonly problems: readonly string[];
}

const cache = new WeakMap<Snapshot, Map<string, RouteTable>>();

/**
 * The route table of `service` (`namespace/name`) port `port`, built once
 * per snapshot.
 *
 * @throws {UnknownRouteTargetError} the snapshot has no such Service or port.
 * @example
 * ```ts
 * const table = routeTableFor(snapshot, "shop/reviews", 9080);
 * ```
 */
export function routeTableFor(snapshot: Snapshot, service: string, port: number): RouteTable {
  let tables = cache.get(snapshot);
  if (!tables) cache.set(snapshot, tables = new Map());
  const key = `${service}:${port}`;
  let table = tables.get(key);
  if (!table) tables.set(key, table = buildTable(snapshot, service, port));
  return table;
}

interface ParentRef {
  readonly kind: string;
  readonly namespace?: string;
  readonly name: string;
  readonly sectionName?: string;
  readonly port?: number;
}

interface RouteSpec {
  readonly parentRefs: readonly ParentRef[];
  readonly hostnames?: readonly string[];
  readonly rules?: readonly (RuleSpec & { matches?: readonly unknown[] })[];
}

function buildTable(snapshot: Snapshot, service: string, port: number): RouteTable {
  const svc = snapshot.services.get(service);
  if (!svc) {
    throw new UnknownRouteTargetError(
      `no Service "${service}" in the config; give a Service as namespace/name`,
    );
  }
  const portInfo = svc.ports.find((p) => p.port === port);
  if (!portInfo) {
    throw new UnknownRouteTargetError(
      `Service "${service}" has no port ${port} (ports: ${
        svc.ports.map((p) => p.port).join(", ") || "none"
      })`,
    );
  }
  const problems: string[] = [];
  const attached = (snapshot.routesByParent.get(`Service/${service}`) ?? []).filter((r) =>
    spec(r).parentRefs.some((p) =>
      p.kind === "Service" && (p.namespace ?? r.metadata.namespace) === svc.namespace &&
      p.name === svc.name && (p.port === undefined || p.port === port) &&
      (p.sectionName === undefined || p.sectionName === portInfo.name)
    )
  );
  const producer = attached.filter((r) => r.metadata.namespace === svc.namespace);
  const byNs = new Map<string, Resource[]>();
  for (const r of attached) {
    if (r.metadata.namespace === svc.namespace) continue;
    byNs.set(r.metadata.namespace!, [...(byNs.get(r.metadata.namespace!) ?? []), r]);
  }
  const consumers = new Map<string, RouteGroup>();
  for (const [ns, routes] of byNs) consumers.set(ns, serviceGroup(snapshot, routes, problems));
  const gatewayRoutes = svc.waypoint ? waypointRoutes(snapshot, svc.waypoint) : [];
  return {
    service,
    port,
    producer: producer.length ? serviceGroup(snapshot, producer, problems) : undefined,
    consumers,
    gateway: gatewayRoutes.length
      ? group(snapshot, gatewayConflicts(gatewayRoutes, problems), true, problems)
      : undefined,
    problems,
  };
}

function spec(r: Resource): RouteSpec {
  return r.spec as RouteSpec;
}

function waypointRoutes(snapshot: Snapshot, waypoint: string): Resource[] {
  const wp = snapshot.waypoints.get(waypoint);
  const [ns, name] = waypoint.split("/");
  return (snapshot.routesByParent.get(`Gateway/${waypoint}`) ?? []).filter((r) =>
    spec(r).parentRefs.some((p) =>
      p.kind === "Gateway" && (p.namespace ?? r.metadata.namespace) === ns && p.name === name &&
      (p.port === undefined || p.port === wp?.port)
    )
  );
}

/** GEP-1294: one route type per Service port, GRPCRoute first. */
function serviceGroup(snapshot: Snapshot, routes: Resource[], problems: string[]): RouteGroup {
  const grpc = routes.some((r) => r.kind === "GRPCRoute");
  const kept = routes.filter((r) => {
    if (grpc && r.kind === "HTTPRoute") {
      problems.push(
        `${routeKey(r)} not applied: GRPCRoutes attach to the same Service port and take ` +
          "precedence over HTTPRoutes (GEP-1294); attach it to another port or remove one",
      );
      return false;
    }
    if (spec(r).hostnames?.length) {
      problems.push(
        `${routeKey(r)}: hostnames ignored for a Service parent (GEP-1294); ` +
          "match the Host header with a header match instead",
      );
    }
    return true;
  });
  return group(snapshot, kept, false, problems);
}

/** GRPCRouteSpec.hostnames: of an HTTPRoute and a GRPCRoute whose hostnames meet, the older applies. */
function gatewayConflicts(routes: Resource[], problems: string[]): Resource[] {
  const accepted: Resource[] = [];
  for (const r of [...routes].sort(compareRoutes)) {
    const clash = accepted.find((a) =>
      a.kind !== r.kind && hostnamesIntersect(spec(a).hostnames ?? [], spec(r).hostnames ?? [])
    );
    if (clash) {
      problems.push(
        `${routeKey(r)} not applied: its hostnames overlap those of the older ${routeKey(clash)}`,
      );
    } else accepted.push(r);
  }
  return accepted;
}

/** The route's key in decisions and logs. */
export function routeKey(r: Resource): string {
  return `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`;
}

/** Oldest first (no timestamp counts as newest), then `namespace/name`. */
function compareRoutes(a: Resource, b: Resource): number {
  const age = (r: Resource) => {
    const t = r.metadata.creationTimestamp ? Date.parse(r.metadata.creationTimestamp) : NaN;
    return Number.isNaN(t) ? Infinity : t;
  };
  const ta = age(a), tb = age(b);
  if (ta !== tb) return ta < tb ? -1 : 1;
  const na = `${a.metadata.namespace}/${a.metadata.name}`;
  const nb = `${b.metadata.namespace}/${b.metadata.name}`;
  return na < nb ? -1 : na > nb ? 1 : 0;
}

function group(
  snapshot: Snapshot,
  routes: Resource[],
  matchHostnames: boolean,
  problems: string[],
): RouteGroup {
  const ordered = [...routes].sort(compareRoutes);
  const entries: (RouteEntry & { order: number })[] = [];
  ordered.forEach((r, order) => {
    for (const e of routeEntries(snapshot, r, matchHostnames, problems)) {
      entries.push({ ...e, order });
    }
  });
  entries.sort((a, b) =>
    compareKind(a, b) || compareKeys(a.compiled.key, b.compiled.key) || a.order - b.order ||
    a.ruleIndex - b.ruleIndex || a.matchIndex - b.matchIndex
  );
  return { entries: entries.map(({ order: _, ...e }) => e), matchHostnames };
}

function compareKind(a: RouteEntry, b: RouteEntry): number {
  return a.kind === b.kind ? 0 : a.kind === "GRPCRoute" ? -1 : 1;
}

function compareKeys(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (b[i] ?? 0) - (a[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function routeEntries(
  snapshot: Snapshot,
  r: Resource,
  matchHostnames: boolean,
  problems: string[],
): RouteEntry[] {
  const s = spec(r);
  const ns = r.metadata.namespace!;
  const kind = r.kind as RouteKind;
  const route = routeKey(r);
  const hostnames = matchHostnames ? (s.hostnames ?? []).map((h) => h.toLowerCase()) : [];
  return (s.rules ?? []).flatMap((rule, ruleIndex) => {
    const action = compileAction(snapshot, ns, rule, problems, `${route} rules[${ruleIndex}]`);
    const base = { route, kind, hostnames, ruleIndex, ruleName: rule.name, action };
    if (kind === "HTTPRoute") {
      return (rule.matches as HttpMatchSpec[]).map((match, matchIndex) => ({
        ...base,
        matchIndex,
        match,
        compiled: compileHttpMatch(match),
      }));
    }
    const matches = (rule.matches ?? []) as GrpcMatchSpec[];
    if (matches.length === 0) {
      return [{ ...base, matchIndex: 0, compiled: compileGrpcMatch(undefined) }];
    }
    return matches.map((match, matchIndex) => ({
      ...base,
      matchIndex,
      match,
      compiled: compileGrpcMatch(match),
    }));
  });
}
