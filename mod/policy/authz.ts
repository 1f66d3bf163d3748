/**
 * L4 AuthorizationPolicy as a ztunnel enforces it, pure: which policies
 * apply to a destination workload, how each compiles (L7 fields dropped as
 * Istio's ztunnel does, with warnings), and the decision for a connection.
 * A deny is a returned value, not an exception.
 *
 * Semantics follow istiod's conversion for ztunnel and ztunnel's RBAC:
 * strings match exact, `prefix*`, `*suffix` or `*` (present, non-empty);
 * `serviceAccounts` are `namespace/name` (a bare name means the policy's
 * namespace) and match exactly; `ipBlocks` and the `source.ip` /
 * `destination.ip` conditions take addresses or CIDR blocks (IPv4-mapped
 * IPv6 peers count as IPv4). Policies annotated `istio.io/dry-run: "true"`
 * are evaluated but never enforced.
 *
 * @module
 */
import { isIP } from "node:net";
import { type Cidr, cidrContains, parseCidr, unmapIp } from "../config/formats.ts";
import type { Resource } from "../config/kind.ts";
import { matches, type Snapshot, type Workload } from "../config/snapshot.ts";

/** What a ztunnel knows about a connection. */
export interface L4Connection {
  /** `spiffe://td/ns/x/sa/y`; undefined for plaintext. */
  readonly sourceIdentity?: string;
  readonly sourceIp: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
}

/** The decision and what made it. */
export interface L4Decision {
  readonly allow: boolean;
  /** `namespace/name` of the deciding policy (comma-separated when no ALLOW policy matched). */
  readonly policy?: string;
  readonly reason: string;
  /** Set when dry-run policies would have decided otherwise: `would deny: <reason>`. */
  readonly dryRun?: string;
}

/** The connection's attributes, parsed once per evaluation. */
interface Facts {
  /** The SPIFFE ID without `spiffe://`. */
  readonly principal?: string;
  readonly namespace?: string;
  readonly serviceAccount?: string;
  readonly sourceIp: string;
  readonly destinationIp: string;
  readonly destinationPort: number;
}

type Match = (f: Facts) => boolean;

interface CompiledRule {
  readonly match: Match;
}

/** One policy, compiled for L4. */
export interface CompiledPolicy {
  readonly key: string;
  readonly action: "ALLOW" | "DENY" | "AUDIT" | "CUSTOM";
  /** Rules a ztunnel enforces (ALLOW rules with L7 fields are gone). Any may match. */
  readonly rules: readonly CompiledRule[];
  readonly warnings: readonly string[];
  /** Annotated `istio.io/dry-run: "true"`: evaluated, never enforced. */
  readonly dryRun: boolean;
}

/** The `when` keys a ztunnel can check (istiod's `l4WhenAttributes`). */
const L4_WHEN = new Set([
  "source.ip",
  "source.namespace",
  "source.principal",
  "destination.ip",
  "destination.port",
]);
const L7_SOURCE = [
  "requestPrincipals",
  "notRequestPrincipals",
  "remoteIpBlocks",
  "notRemoteIpBlocks",
];
const L7_OPERATION = ["hosts", "notHosts", "methods", "notMethods", "paths", "notPaths"];
const DRY_RUN_ANNOTATION = "istio.io/dry-run";
const TO_WAYPOINT = "Attach the policy to a waypoint with targetRefs.";

// deno-lint-ignore no-explicit-any
type Spec = any;

/**
 * Istio string match: `*` is presence (any non-empty value), a leading `*`
 * is a suffix match, a trailing `*` a prefix match, anything else exact.
 *
 * @example
 * stringMatch("cluster.local/ns/shop/*", "cluster.local/ns/shop/sa/web"); // true
 */
export function stringMatch(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (pattern === "*") return value !== "";
  if (pattern.startsWith("*")) return value.endsWith(pattern.slice(1));
  if (pattern.endsWith("*")) return value.startsWith(pattern.slice(0, -1));
  return value === pattern;
}

const SPIFFE_ID = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

function factsOf(c: L4Connection): Facts {
  const id = c.sourceIdentity?.match(SPIFFE_ID);
  return {
    principal: id ? c.sourceIdentity!.slice("spiffe://".length) : undefined,
    namespace: id?.[2],
    serviceAccount: id ? `${id[2]}/${id[3]}` : undefined,
    sourceIp: unmapIp(c.sourceIp),
    destinationIp: unmapIp(c.destinationIp),
    destinationPort: c.destinationPort,
  };
}

function inCidr(block: Cidr | undefined, ip: string): boolean {
  return block !== undefined && isIP(ip) !== 0 && cidrContains(block, ip);
}

/** A field: the positive list must match one value; the `not` list none. */
function field<T>(
  values: readonly T[] | undefined,
  notValues: readonly T[] | undefined,
  test: (v: T, f: Facts) => boolean,
): Match[] {
  const out: Match[] = [];
  if (values?.length) out.push((f) => values.some((v) => test(v, f)));
  if (notValues?.length) out.push((f) => !notValues.some((v) => test(v, f)));
  return out;
}

function all(ms: readonly Match[]): Match {
  return (f) => ms.every((m) => m(f));
}

function any(ms: readonly Match[]): Match {
  return (f) => ms.some((m) => m(f));
}

/** `ns/sa` as written, or a bare `sa` in the policy's namespace. */
function serviceAccounts(list: string[] | undefined, ns: string): string[] | undefined {
  return list?.map((v) => (v.includes("/") ? v : `${ns}/${v}`));
}

function cidrs(list: string[] | undefined): (Cidr | undefined)[] | undefined {
  return list?.map((v) => parseCidr(v));
}

function ports(list: string[] | undefined): number[] | undefined {
  return list?.map((v) => (/^[0-9]{1,5}$/.test(v) ? Number(v) : NaN));
}

function sourceMatchers(s: Spec, ns: string): Match[] {
  return [
    ...field(s.principals, s.notPrincipals, (v: string, f) => stringMatch(v, f.principal)),
    ...field(s.namespaces, s.notNamespaces, (v: string, f) => stringMatch(v, f.namespace)),
    ...field(
      serviceAccounts(s.serviceAccounts, ns),
      serviceAccounts(s.notServiceAccounts, ns),
      (v, f) => v === f.serviceAccount,
    ),
    ...field(cidrs(s.ipBlocks), cidrs(s.notIpBlocks), (b, f) => inCidr(b, f.sourceIp)),
  ];
}

function operationMatchers(o: Spec): Match[] {
  return field(ports(o.ports), ports(o.notPorts), (p, f) => p === f.destinationPort);
}

/**
 * One L4 `when` condition. Values that can never match (not an address, not
 * a port; the schema checks only `destination.port` values) are reported
 * through `warn`.
 */
function whenMatchers(w: Spec, warn: (text: string) => void): Match[] {
  const key: string = w.key;
  const unusable = (what: string, bad: (v: string) => boolean) => {
    for (const [list, label] of [[w.values, "value"], [w.notValues, "notValue"]] as const) {
      for (const v of (list ?? []) as string[]) {
        if (bad(v)) warn(`when ${key} ${label} "${v}" is not ${what}; it never matches.`);
      }
    }
  };
  switch (key) {
    case "source.ip":
    case "destination.ip": {
      unusable("an IP address or CIDR block", (v) => parseCidr(v) === undefined);
      const side = key === "source.ip" ? "sourceIp" : "destinationIp";
      return field(cidrs(w.values), cidrs(w.notValues), (b, f) => inCidr(b, f[side]));
    }
    case "destination.port": {
      unusable("a port number", (v) => Number.isNaN(ports([v])![0]));
      return field(ports(w.values), ports(w.notValues), (p, f) => p === f.destinationPort);
    }
    case "source.namespace":
      return field(w.values, w.notValues, (v: string, f) => stringMatch(v, f.namespace));
    case "source.principal":
      return field(w.values, w.notValues, (v: string, f) => stringMatch(v, f.principal));
  }
  return [];
}

/** The L7 fields a rule uses (non-empty lists and non-L4 `when` keys), in order, once each. */
function l7FieldsOf(rule: Spec): string[] {
  const found: string[] = [];
  const used = (x: unknown) => Array.isArray(x) ? x.length > 0 : x !== undefined && x !== null;
  for (const f of rule.from ?? []) {
    for (const k of L7_SOURCE) if (used(f?.source?.[k])) found.push(k);
  }
  for (const t of rule.to ?? []) {
    for (const k of L7_OPERATION) if (used(t?.operation?.[k])) found.push(k);
  }
  for (const w of rule.when ?? []) if (!L4_WHEN.has(w?.key)) found.push(String(w?.key));
  return [...new Set(found)];
}

/** The L4 part of a rule: `from` entries OR, `to` entries OR, `when` conditions AND, all ANDed. */
function compileRule(rule: Spec, ns: string, warn: (text: string) => void): CompiledRule {
  const from: Match[] = (rule.from ?? []).map((f: Spec) =>
    all(sourceMatchers(f?.source ?? {}, ns))
  );
  const to: Match[] = (rule.to ?? []).map((t: Spec) => all(operationMatchers(t?.operation ?? {})));
  const when = (rule.when ?? []).filter((w: Spec) => L4_WHEN.has(w?.key))
    .flatMap((w: Spec) => whenMatchers(w, warn));
  const parts: Match[] = [];
  if (from.length) parts.push(any(from));
  if (to.length) parts.push(any(to));
  parts.push(...when);
  return { match: all(parts) };
}

/** Policy-level warnings for actions a ztunnel cannot carry out as Istio's proxies do. */
function actionWarnings(key: string, action: CompiledPolicy["action"]): string[] {
  if (action === "CUSTOM") {
    return [
      `AuthorizationPolicy ${key}: action CUSTOM needs an external authorizer, which a ztunnel cannot consult; connections matching its rules are denied.`,
    ];
  }
  if (action === "AUDIT") {
    return [
      `AuthorizationPolicy ${key}: action AUDIT has no effect at a ztunnel (ambit writes no audit log); it never changes the decision.`,
    ];
  }
  return [];
}

/**
 * Compiles one AuthorizationPolicy for enforcement at a ztunnel: an ALLOW
 * rule with L7 fields is dropped (it can only ever match less, so dropping it
 * may deny); a DENY or CUSTOM rule keeps its L4 part (so it may deny more).
 * Both produce a warning.
 */
export function compileL4Policy(res: Resource): CompiledPolicy {
  const spec: Spec = res.spec ?? {};
  const ns = res.metadata.namespace ?? "";
  const key = `${ns}/${res.metadata.name}`;
  const action = (spec.action ?? "ALLOW") as CompiledPolicy["action"];
  const warnings: string[] = actionWarnings(key, action);
  const rules: CompiledRule[] = [];
  const written: Spec[] = spec.rules ?? [];
  written.forEach((rule: Spec, i: number) => {
    const at = `AuthorizationPolicy ${key} rule ${i}`;
    const l7 = l7FieldsOf(rule ?? {});
    if (l7.length > 0 && action === "ALLOW") {
      warnings.push(
        `${at}: ALLOW rule uses L7 fields (${
          l7.join(", ")
        }) that a ztunnel cannot check; the rule is ignored, which may deny traffic. ${TO_WAYPOINT}`,
      );
      return;
    }
    if (l7.length > 0 && action !== "AUDIT") {
      warnings.push(
        `${at}: ${action} rule uses L7 fields (${
          l7.join(", ")
        }); a ztunnel enforces only its L4 part, so it denies more than written. ${TO_WAYPOINT}`,
      );
    }
    rules.push(compileRule(rule ?? {}, ns, (text) => warnings.push(`${at}: ${text}`)));
  });
  if (action === "ALLOW" && written.length > 0 && rules.length === 0) {
    warnings.push(
      `AuthorizationPolicy ${key}: every rule was ignored, so at a ztunnel it allows nothing (connections to the workloads it selects are denied unless another ALLOW policy matches).`,
    );
  }
  return { key, action, rules, warnings, dryRun: isDryRun(res) };
}

/** Istio reads the annotation with Go's `strconv.ParseBool`. */
function isDryRun(res: Resource): boolean {
  const v = res.metadata.annotations?.[DRY_RUN_ANNOTATION];
  return v !== undefined && ["1", "t", "T", "true", "TRUE", "True"].includes(v);
}

function hasTargetRefs(spec: Spec): boolean {
  return Boolean(spec?.targetRef) || (spec?.targetRefs?.length ?? 0) > 0;
}

/** Whether a policy applies to workload `w` at a ztunnel (targetRef policies are for waypoints). */
export function appliesTo(res: Resource, w: Workload, rootNamespace: string): boolean {
  const spec: Spec = res.spec ?? {};
  if (hasTargetRefs(spec)) return false;
  const ns = res.metadata.namespace;
  if (ns !== w.namespace && ns !== rootNamespace) return false;
  const sel = spec.selector?.matchLabels;
  if (!sel || Object.keys(sel).length === 0) return true;
  return matches(sel, w.labels);
}

/** The policies a ztunnel enforces for destination workload `w`: mesh-wide first, then its namespace's. */
export function policiesForWorkload(s: Snapshot, w: Workload): readonly Resource[] {
  const root = s.mesh.rootNamespace;
  const cands = [
    ...(s.authorizationPolicies.byNamespace.get(root) ?? []),
    ...(w.namespace === root ? [] : s.authorizationPolicies.byNamespace.get(w.namespace) ?? []),
  ];
  return cands.filter((p) => appliesTo(p, w, root));
}

function matchesAny(p: CompiledPolicy, f: Facts): boolean {
  return p.rules.some((r) => r.match(f));
}

/** Istio's order over enforced policies. */
function decide(policies: readonly CompiledPolicy[], f: Facts): L4Decision {
  for (const p of policies) {
    if (p.action === "CUSTOM" && matchesAny(p, f)) {
      return {
        allow: false,
        policy: p.key,
        reason:
          `CUSTOM policy ${p.key} matched; a ztunnel cannot consult an external authorizer, so it denies`,
      };
    }
  }
  for (const p of policies) {
    if (p.action === "DENY" && matchesAny(p, f)) {
      return { allow: false, policy: p.key, reason: `DENY policy ${p.key} matched` };
    }
  }
  const allows = policies.filter((p) => p.action === "ALLOW");
  if (allows.length === 0) return { allow: true, reason: "no ALLOW policy applies" };
  for (const p of allows) {
    if (matchesAny(p, f)) {
      return { allow: true, policy: p.key, reason: `ALLOW policy ${p.key} matched` };
    }
  }
  return {
    allow: false,
    policy: allows.map((p) => p.key).join(","),
    reason: `no ALLOW policy matched (${allows.map((p) => p.key).join(", ")})`,
  };
}

/**
 * The decision, in Istio's order: a CUSTOM policy whose rules match denies
 * (a ztunnel cannot ask its external authorizer: fail closed); then any
 * matching DENY denies; without ALLOW policies, allow; any matching ALLOW
 * allows; otherwise deny. AUDIT never changes the decision. Dry-run policies
 * do not count; when they would have changed the outcome, `dryRun` says how.
 *
 * @example
 * evaluateL4([], { sourceIp: "10.0.0.1", destinationIp: "10.0.0.2", destinationPort: 80 });
 * // { allow: true, reason: "no ALLOW policy applies" }
 */
export function evaluateL4(policies: readonly CompiledPolicy[], c: L4Connection): L4Decision {
  const f = factsOf(c);
  const enforced = policies.filter((p) => !p.dryRun);
  const decision = decide(enforced, f);
  if (enforced.length === policies.length) return decision;
  const would = decide(policies, f);
  if (would.allow === decision.allow) return decision;
  return { ...decision, dryRun: `would ${would.allow ? "allow" : "deny"}: ${would.reason}` };
}

/** Compiles each policy once per snapshot and the set per workload once. */
export class L4PolicyCache {
  #compiled = new Map<Resource, CompiledPolicy>();
  #byWorkload = new Map<string, readonly CompiledPolicy[]>();

  constructor(readonly snapshot: Snapshot) {}

  /** The compiled policies for destination workload `w`. */
  forWorkload(w: Workload): readonly CompiledPolicy[] {
    let list = this.#byWorkload.get(w.key);
    if (!list) {
      list = policiesForWorkload(this.snapshot, w).map((r) => this.#compile(r));
      this.#byWorkload.set(w.key, list);
    }
    return list;
  }

  /**
   * Warnings of every policy a ztunnel would enforce, and of targetRef
   * policies that target a Service no waypoint serves (so nothing enforces them).
   */
  warnings(): string[] {
    const out: string[] = [];
    for (const r of this.snapshot.authorizationPolicies.all) {
      const spec: Spec = r.spec ?? {};
      if (hasTargetRefs(spec)) out.push(...this.#unboundTargets(r, spec));
      else out.push(...this.#compile(r).warnings);
    }
    return out;
  }

  #unboundTargets(r: Resource, spec: Spec): string[] {
    const s = this.snapshot;
    const ns = r.metadata.namespace!;
    const refs: { kind: string; name: string; namespace?: string }[] = [
      ...(spec.targetRef ? [spec.targetRef] : []),
      ...(spec.targetRefs ?? []),
    ];
    const out: string[] = [];
    for (const t of refs) {
      if (t.kind !== "Service") continue;
      const svcKey = `${t.namespace ?? ns}/${t.name}`;
      const svc = s.services.get(svcKey);
      const wp = svc?.waypoint ? s.waypoints.get(svc.waypoint) : undefined;
      if (svc && (!wp || (wp.for !== "service" && wp.for !== "all"))) {
        out.push(
          `AuthorizationPolicy ${ns}/${r.metadata.name} targets Service ${svcKey}, which has no waypoint for service traffic, so nothing enforces it (label the Service or its namespace with istio.io/use-waypoint).`,
        );
      }
    }
    return out;
  }

  #compile(r: Resource): CompiledPolicy {
    let c = this.#compiled.get(r);
    if (!c) {
      c = compileL4Policy(r);
      this.#compiled.set(r, c);
    }
    return c;
  }
}
