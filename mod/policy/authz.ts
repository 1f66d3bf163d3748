/**
 * L4 AuthorizationPolicy as a ztunnel enforces it, pure: which policies
 * apply to a destination workload, how each compiles (L7 fields dropped as
 * Istio's ztunnel does, with warnings), and the decision for a connection.
 * A deny is a returned value, not an exception.
 *
 * @module
 */
import { isIP } from "node:net";
import { cidrContains, parseCidr } from "../config/formats.ts";
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
  /** `namespace/name` of the deciding policy. */
  readonly policy?: string;
  readonly reason: string;
}

type Match = (c: L4Connection) => boolean;

interface CompiledRule {
  readonly match: Match;
}

/** One policy, compiled for L4. */
export interface CompiledPolicy {
  readonly key: string;
  readonly action: "ALLOW" | "DENY" | "AUDIT" | "CUSTOM";
  readonly rules: readonly CompiledRule[];
  readonly warnings: readonly string[];
}

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

// deno-lint-ignore no-explicit-any
type Spec = any;

/** Istio string match: exact, `prefix*`, `*suffix`, `*` (present). */
export function stringMatch(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (pattern === "*") return true;
  if (pattern.endsWith("*")) return value.startsWith(pattern.slice(0, -1));
  if (pattern.startsWith("*")) return value.endsWith(pattern.slice(1));
  return value === pattern;
}

function principalOf(c: L4Connection): string | undefined {
  return c.sourceIdentity?.replace(/^spiffe:\/\//, "");
}

function namespaceOf(c: L4Connection): string | undefined {
  return c.sourceIdentity?.match(/\/ns\/([^/]+)\/sa\//)?.[1];
}

function serviceAccountOf(c: L4Connection): string | undefined {
  const m = c.sourceIdentity?.match(/\/ns\/([^/]+)\/sa\/([^/]+)$/);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

function ipIn(block: string, ip: string): boolean {
  const b = block.includes("/") ? block : `${block}/${isIP(block) === 6 ? 128 : 32}`;
  const cidr = parseCidr(b);
  if (!cidr) return false;
  try {
    return cidrContains(cidr, ip.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, "$1"));
  } catch {
    return false;
  }
}

/** A field: positive list must match one; `not` list must match none. */
function field(
  values: string[] | undefined,
  notValues: string[] | undefined,
  test: (v: string, c: L4Connection) => boolean,
): Match[] {
  const out: Match[] = [];
  if (values?.length) out.push((c) => values.some((v) => test(v, c)));
  if (notValues?.length) out.push((c) => !notValues.some((v) => test(v, c)));
  return out;
}

function all(ms: Match[]): Match {
  return (c) => ms.every((m) => m(c));
}

function sourceMatchers(s: Spec): Match[] {
  return [
    ...field(s.principals, s.notPrincipals, (v, c) => stringMatch(v, principalOf(c))),
    ...field(s.namespaces, s.notNamespaces, (v, c) => stringMatch(v, namespaceOf(c))),
    ...field(s.serviceAccounts, s.notServiceAccounts, (v, c) => v === serviceAccountOf(c)),
    ...field(s.ipBlocks, s.notIpBlocks, (v, c) => ipIn(v, c.sourceIp)),
  ];
}

function operationMatchers(o: Spec): Match[] {
  return field(o.ports, o.notPorts, (v, c) => Number(v) === c.destinationPort);
}

function whenMatcher(w: Spec): Match[] {
  const test = (v: string, c: L4Connection): boolean => {
    switch (w.key) {
      case "source.ip":
        return ipIn(v, c.sourceIp);
      case "source.namespace":
        return stringMatch(v, namespaceOf(c));
      case "source.principal":
        return stringMatch(v, principalOf(c));
      case "destination.ip":
        return ipIn(v, c.destinationIp);
      case "destination.port":
        return Number(v) === c.destinationPort;
    }
    return false;
  };
  return field(w.values, w.notValues, test);
}

/** Compiles one AuthorizationPolicy for enforcement at a ztunnel. */
export function compileL4Policy(res: Resource): CompiledPolicy {
  const spec: Spec = res.spec ?? {};
  const key = `${res.metadata.namespace}/${res.metadata.name}`;
  const action = (spec.action ?? "ALLOW") as CompiledPolicy["action"];
  const warnings: string[] = [];
  const rules: CompiledRule[] = [];
  (spec.rules ?? []).forEach((rule: Spec, i: number) => {
    const l7: string[] = [];
    for (const f of rule.from ?? []) {
      for (const k of L7_SOURCE) if (f.source?.[k]) l7.push(k);
    }
    for (const t of rule.to ?? []) {
      for (const k of L7_OPERATION) if (t.operation?.[k]) l7.push(k);
    }
    for (const w of rule.when ?? []) if (!L4_WHEN.has(w.key)) l7.push(w.key);
    const fields = [...new Set(l7)];
    if (fields.length > 0 && action === "ALLOW") {
      warnings.push(
        `AuthorizationPolicy ${key} rule ${i}: ALLOW rule uses L7 fields (${
          fields.join(", ")
        }) that a ztunnel cannot check; the rule is ignored, which may deny traffic. Attach the policy to a waypoint with targetRefs.`,
      );
      return;
    }
    if (fields.length > 0) {
      warnings.push(
        `AuthorizationPolicy ${key} rule ${i}: ${action} rule uses L7 fields (${
          fields.join(", ")
        }); a ztunnel enforces only its L4 part, so it ${
          action === "DENY" ? "denies more than written" : "matches more than written"
        }. Attach the policy to a waypoint with targetRefs.`,
      );
    }
    const from = (rule.from ?? []).map((f: Spec) => all(sourceMatchers(f.source ?? {})));
    const to = (rule.to ?? []).map((t: Spec) => all(operationMatchers(t.operation ?? {})));
    const when = (rule.when ?? []).filter((w: Spec) => L4_WHEN.has(w.key)).flatMap(whenMatcher);
    const parts: Match[] = [];
    if (from.length) parts.push((c) => from.some((m: Match) => m(c)));
    if (to.length) parts.push((c) => to.some((m: Match) => m(c)));
    parts.push(...when);
    rules.push({ match: all(parts) });
  });
  return { key, action, rules, warnings };
}

/** Whether a policy applies to workload `w` at a ztunnel (targetRef policies are for waypoints). */
export function appliesTo(res: Resource, w: Workload, rootNamespace: string): boolean {
  const spec: Spec = res.spec ?? {};
  if (spec.targetRef || spec.targetRefs?.length) return false;
  const ns = res.metadata.namespace;
  if (ns !== w.namespace && ns !== rootNamespace) return false;
  const sel = spec.selector?.matchLabels;
  if (!sel || Object.keys(sel).length === 0) return true;
  return matches(sel, w.labels);
}

/** The policies a ztunnel enforces for destination workload `w`. */
export function policiesForWorkload(s: Snapshot, w: Workload): readonly Resource[] {
  const root = s.mesh.rootNamespace;
  const cands = [
    ...(s.authorizationPolicies.byNamespace.get(root) ?? []),
    ...(w.namespace === root ? [] : s.authorizationPolicies.byNamespace.get(w.namespace) ?? []),
  ];
  return cands.filter((p) => appliesTo(p, w, root));
}

/**
 * The decision: CUSTOM is unsupported and denies (fail closed); any matching
 * DENY denies; without ALLOW policies, allow; any matching ALLOW allows;
 * otherwise deny. AUDIT never changes the decision.
 */
export function evaluateL4(policies: readonly CompiledPolicy[], c: L4Connection): L4Decision {
  for (const p of policies) {
    if (p.action === "CUSTOM") {
      return { allow: false, policy: p.key, reason: `CUSTOM policy ${p.key} is not supported` };
    }
  }
  for (const p of policies) {
    if (p.action === "DENY" && p.rules.some((r) => r.match(c))) {
      return { allow: false, policy: p.key, reason: `DENY policy ${p.key} matched` };
    }
  }
  const allows = policies.filter((p) => p.action === "ALLOW");
  if (allows.length === 0) return { allow: true, reason: "no ALLOW policy applies" };
  for (const p of allows) {
    if (p.rules.some((r) => r.match(c))) {
      return { allow: true, policy: p.key, reason: `ALLOW policy ${p.key} matched` };
    }
  }
  return {
    allow: false,
    policy: allows.map((p) => p.key).join(","),
    reason: `no ALLOW policy matched (${allows.map((p) => p.key).join(", ")})`,
  };
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

  /** Warnings of every policy a ztunnel would enforce (not targetRef ones). */
  warnings(): string[] {
    const out: string[] = [];
    for (const r of this.snapshot.authorizationPolicies.all) {
      const spec: Spec = r.spec ?? {};
      if (spec.targetRef || spec.targetRefs?.length) continue;
      out.push(...this.#compile(r).warnings);
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
