/**
 * Compiles what a rule does: its filters, backends (each checked against the
 * snapshot), timeouts and retry policy.
 *
 * @module
 */
import { parseDuration } from "../config/formats.ts";
import type { Snapshot } from "../config/snapshot.ts";
import type { BackendTarget, ExtensionFilter, MirrorTarget, RouteFilter } from "./filters.ts";

/** A weighted backend of a rule. */
export interface Backend extends BackendTarget {
  /** Relative share of the rule's requests; 0 gets none. */
  readonly weight: number;
  /** Filters for requests sent to this backend, after the rule's. */
  readonly filters: readonly RouteFilter[];
  /** Why the backend cannot be used; requests picked for it get a 500. */
  readonly invalid?: string;
}

/** Timeouts in milliseconds; absent means none (the spec's "0s" disables one too). */
export interface Timeouts {
  /** The whole exchange, retries included. */
  readonly request?: number;
  /** One try to a backend. */
  readonly backendRequest?: number;
}

/** A rule's retry policy (HTTPRoute `rules[].retry`). */
export interface Retry {
  /** Retries after the first try. */
  readonly attempts: number;
  /** Response codes that are retried (connect failures always are). */
  readonly codes: readonly number[];
  /** Minimum wait before each retry. */
  readonly backoffMs: number;
}

/** What a matching rule does. */
export interface RuleAction {
  readonly filters: readonly RouteFilter[];
  readonly backends: readonly Backend[];
  readonly timeouts: Timeouts;
  readonly retry?: Retry;
  /** Valid RequestMirror targets of the rule's filters. */
  readonly mirrors: readonly MirrorTarget[];
}

/** Defaults when `retry` is given without them: Istio's attempts, the spec's must-retry codes. */
export const RETRY_DEFAULTS = { attempts: 2, codes: [500, 502, 503, 504], backoffMs: 25 } as const;

/** The checked shape of a backendRef or a mirror's backendRef. */
interface BackendRefSpec {
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
  readonly port?: number;
  readonly weight?: number;
  readonly filters?: readonly FilterSpec[];
}

/** The checked shape of a route filter (HTTP or gRPC). */
// deno-lint-ignore no-explicit-any
type FilterSpec = { readonly type: string } & Record<string, any>;

/** The checked shape of a rule, the parts common to HTTPRoute and GRPCRoute. */
export interface RuleSpec {
  readonly name?: string;
  readonly filters?: readonly FilterSpec[];
  readonly backendRefs?: readonly BackendRefSpec[];
  readonly timeouts?: { readonly request?: string; readonly backendRequest?: string };
  readonly retry?: {
    readonly codes?: number[];
    readonly attempts?: number;
    readonly backoff?: string;
  };
}

/** Compiles a rule of a route in namespace `ns`; problems (dropped mirrors) go to `problems`. */
export function compileAction(
  snapshot: Snapshot,
  ns: string,
  rule: RuleSpec,
  problems: string[],
  where: string,
): RuleAction {
  const filters = compileFilters(snapshot, ns, rule.filters ?? [], problems, where);
  const backends = (rule.backendRefs ?? []).map((b, i) =>
    compileBackend(snapshot, ns, b, problems, `${where} backendRefs[${i}]`)
  );
  return {
    filters,
    backends,
    timeouts: compileTimeouts(rule.timeouts),
    retry: rule.retry && {
      attempts: rule.retry.attempts ?? RETRY_DEFAULTS.attempts,
      codes: rule.retry.codes ?? RETRY_DEFAULTS.codes,
      backoffMs: rule.retry.backoff !== undefined
        ? parseDuration(rule.retry.backoff)!
        : RETRY_DEFAULTS.backoffMs,
    },
    mirrors: filters.flatMap((f) => f.type === "RequestMirror" ? [f.mirror] : []),
  };
}

/** Parses `timeouts`; "0s" (disabled) and absent are left out. */
export function compileTimeouts(t: RuleSpec["timeouts"]): Timeouts {
  const ms = (s: string | undefined) => {
    const v = s === undefined ? undefined : parseDuration(s);
    return v === undefined || v === 0 ? undefined : v;
  };
  const request = ms(t?.request), backendRequest = ms(t?.backendRequest);
  return {
    ...(request !== undefined ? { request } : {}),
    ...(backendRequest !== undefined ? { backendRequest } : {}),
  };
}

function compileBackend(
  snapshot: Snapshot,
  ns: string,
  b: BackendRefSpec,
  problems: string[],
  where: string,
): Backend {
  const target = resolveTarget(snapshot, ns, b);
  return {
    kind: target.kind,
    service: target.service,
    port: target.port,
    weight: b.weight ?? 1,
    filters: compileFilters(snapshot, ns, b.filters ?? [], problems, where),
    ...(target.invalid ? { invalid: target.invalid } : {}),
  };
}

/** Resolves a backend reference; `invalid` says why it cannot be used. */
function resolveTarget(
  snapshot: Snapshot,
  ns: string,
  b: BackendRefSpec,
): BackendTarget & { invalid?: string } {
  const port = b.port ?? 0;
  if (b.kind === "Hostname") {
    const svc = snapshot.servicesByHost.get(b.name);
    if (svc) return { kind: "Hostname", service: b.name, port, invalid: portProblem(svc, port) };
    const se = snapshot.serviceEntries.find((r) =>
      (r.spec as { hosts: string[] }).hosts.some((h) => h === b.name)
    );
    if (!se) {
      return {
        kind: "Hostname",
        service: b.name,
        port,
        invalid: `no Service or ServiceEntry has host "${b.name}"`,
      };
    }
    const ports = (se.spec as { ports?: { number: number }[] }).ports;
    const bad = ports?.length && !ports.some((p) => p.number === port);
    return {
      kind: "Hostname",
      service: b.name,
      port,
      invalid: bad ? `ServiceEntry host "${b.name}" has no port ${port}` : undefined,
    };
  }
  const key = `${b.namespace ?? ns}/${b.name}`;
  const svc = snapshot.services.get(key);
  if (!svc) return { kind: "Service", service: key, port, invalid: `Service "${key}" not found` };
  return { kind: "Service", service: key, port, invalid: portProblem(svc, port) };
}

function portProblem(
  svc: { key: string; ports: readonly { port: number }[] },
  port: number,
): string | undefined {
  if (svc.ports.some((p) => p.port === port)) return undefined;
  return `Service "${svc.key}" has no port ${port} (ports: ${
    svc.ports.map((p) => p.port).join(", ") || "none"
  })`;
}

function compileFilters(
  snapshot: Snapshot,
  ns: string,
  filters: readonly FilterSpec[],
  problems: string[],
  where: string,
): RouteFilter[] {
  const out: RouteFilter[] = [];
  filters.forEach((f, i) => {
    switch (f.type) {
      case "RequestHeaderModifier":
        out.push({ type: f.type, modifier: f.requestHeaderModifier });
        break;
      case "ResponseHeaderModifier":
        out.push({ type: f.type, modifier: f.responseHeaderModifier });
        break;
      case "RequestRedirect":
        out.push({ type: f.type, redirect: f.requestRedirect });
        break;
      case "URLRewrite":
        out.push({ type: f.type, rewrite: f.urlRewrite });
        break;
      case "RequestMirror": {
        const m = f.requestMirror;
        const target = resolveTarget(snapshot, ns, m.backendRef);
        if (target.invalid) {
          // The spec: a mirror whose referent cannot be found is dropped.
          problems.push(`${where} filters[${i}]: mirror dropped: ${target.invalid}`);
          break;
        }
        const [numerator, denominator] = m.fraction
          ? [m.fraction.numerator, m.fraction.denominator]
          : [m.percent ?? 100, 100];
        const { kind, service, port } = target;
        out.push({ type: f.type, mirror: { kind, service, port, numerator, denominator } });
        break;
      }
      case "ExtensionRef": {
        // The config check guarantees the kind, and that the resource exists in `ns`.
        const { group, kind, name } = f.extensionRef as Omit<ExtensionFilter, "type" | "key">;
        out.push({ type: f.type, group, kind, name, key: `${ns}/${name}` });
        break;
      }
    }
  });
  return out;
}
