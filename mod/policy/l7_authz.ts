/**
 * L7 AuthorizationPolicy as a waypoint enforces it, pure: which policies
 * apply to a service's traffic (targetRefs), how each compiles, and the
 * decision for one HTTP request. A deny is a returned value (403
 * `RBAC: access denied`), not an exception.
 *
 * Semantics follow istiod's translation to Envoy RBAC
 * (pilot/pkg/security/authz/model):
 * - strings match exact, `prefix*`, `*suffix` or `*` (see {@link stringMatch});
 *   for headers and methods `*` means present (even empty), as Envoy's
 *   `present_match`;
 * - `hosts` compare case-insensitively with the request host's port removed;
 * - `requestPrincipals` split at the last `/` into issuer and subject, each
 *   matched as istiod does (`*`: both non-empty; `iss/*`: any subject);
 * - `request.auth.audiences`, `.presenter` and `.claims[a][b]` match a string
 *   claim, or any element of a list claim; top-level `scope` and `permission`
 *   strings are space-delimited lists (Envoy's payload normalization);
 *   numbers and booleans never match;
 * - paths are normalized as Istio's default `BASE` option (see
 *   {@link normalizePath}); `{*}` and `{**}` path templates are supported;
 * - a value that cannot be used (not an address, not a port, an unknown or
 *   Envoy-specific `when` key) drops an ALLOW rule (it allows less) and is
 *   left out of a DENY, AUDIT or CUSTOM rule (it matches more), as istiod's
 *   `checkError`; both warn.
 *
 * @module
 */
import { isIP } from "node:net";
import { type Cidr, cidrContains, parseCidr, unmapIp } from "../config/formats.ts";
import type { Resource } from "../config/kind.ts";
import type { Snapshot } from "../config/snapshot.ts";
import { stringMatch } from "./authz.ts";
import { targetedPolicies } from "./l7_targets.ts";

export { stringMatch };

/** Status of an RBAC denial, as Envoy answers. */
export const RBAC_DENIED_STATUS = 403;
/** Body of a 403 from the waypoint's authorization. */
export const RBAC_DENIED_BODY = "RBAC: access denied";

/** The verified JWT of a request, from RequestAuthentication (`jwt.ts`). */
export interface L7Auth {
  /** `<iss>/<sub>`. */
  readonly principal: string;
  readonly audiences: readonly string[];
  /** The `azp` claim. */
  readonly presenter?: string;
  /** The verified payload. */
  readonly claims: Readonly<Record<string, unknown>>;
}

/** What a waypoint knows about one HTTP request. */
export interface L7Request {
  /** Peer identity, `td/ns/x/sa/y` (a leading `spiffe://` is removed); undefined without mTLS. */
  readonly sourcePrincipal?: string;
  /** The peer's address (the client as the HBONE tunnel reports it). */
  readonly sourceIp: string;
  /** The original client (X-Forwarded-For / PROXY); the caller defaults it to `sourceIp`. */
  readonly remoteIp: string;
  /** Defaults to the namespace in `sourcePrincipal`. */
  readonly sourceNamespace?: string;
  readonly method: string;
  /** `:authority` / `Host`, possibly with a port. */
  readonly host: string;
  /** The request target as received, with its query. */
  readonly path: string;
  /** Destination port. */
  readonly port: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly auth?: L7Auth;
  /** For the `destination.ip` condition. */
  readonly destinationIp?: string;
  /** For the `connection.sni` condition. */
  readonly sni?: string;
}

/** The decision and what made it. */
export interface L7Decision {
  readonly allow: boolean;
  /** `namespace/name` of the deciding policy (comma-separated when no ALLOW policy matched). */
  readonly policy?: string;
  readonly reason: string;
  /** On deny: 403, or 400 for a request Istio refuses before authorization (bad path, lower-case method). */
  readonly status?: 400 | 403;
  /** On deny: `RBAC: access denied` (403) or `Bad Request` (400). */
  readonly body?: string;
  /** Set when dry-run policies would have decided otherwise: `would deny: <reason>`. */
  readonly dryRun?: string;
  /** Keys of the AUDIT policies that matched (the request should be audit-logged). */
  readonly audit?: readonly string[];
}

/** The request's attributes, normalized once per evaluation. */
interface Facts {
  readonly principal?: string;
  readonly namespace?: string;
  /** `ns/sa` from the principal. */
  readonly serviceAccount?: string;
  readonly sourceIp: string;
  readonly remoteIp: string;
  readonly destinationIp?: string;
  readonly port: number;
  readonly sni?: string;
  readonly method: string;
  /** Lower case, without port. */
  readonly host: string;
  /** Normalized, without query. */
  readonly path: string;
  /** Lower-case name → values joined with `,`. */
  readonly headers: ReadonlyMap<string, string>;
  readonly auth?: L7Auth & { readonly iss?: string; readonly sub?: string };
}

type Match = (f: Facts) => boolean;

/** One policy, compiled for a waypoint. */
export interface CompiledL7Policy {
  readonly key: string;
  readonly action: "ALLOW" | "DENY" | "AUDIT" | "CUSTOM";
  /** Any may match. Rules istiod would drop are gone. */
  readonly rules: readonly Match[];
  readonly warnings: readonly string[];
  /** Annotated `istio.io/dry-run: "true"`: evaluated, never enforced. */
  readonly dryRun: boolean;
}

// deno-lint-ignore no-explicit-any
type Spec = any;

const DRY_RUN_ANNOTATION = "istio.io/dry-run";
const SPIFFE_ID = /^([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

// ---------------------------------------------------------------------------
// Request normalization

/** Unreserved characters Istio's BASE normalization decodes from `%HH`. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * The path Istio's default normalization (`BASE`: Envoy `normalize_path`)
 * evaluates: the query and fragment are cut off; `%HH` of an unreserved
 * character (letters, digits, `-._~`) is decoded once (`%2F` and `%5C` stay
 * encoded); `\` becomes `/`; `.` and `..` segments are resolved (RFC 3986
 * 5.2.4, never above the root). Slashes are not merged (`MERGE_SLASHES` is
 * not the default). Returns undefined for what Istio refuses with 400: `%00`,
 * or a path not starting with `/` (other than `*`).
 *
 * @example
 * normalizePath("/public/./data/%61bc/../xyz?v=1"); // "/public/data/xyz"
 */
export function normalizePath(target: string): string | undefined {
  let path = target;
  const cut = path.search(/[?#]/);
  if (cut >= 0) path = path.slice(0, cut);
  if (path === "*") return path;
  if (!path.startsWith("/") && !path.startsWith("\\")) return undefined;
  if (/%00/.test(path)) return undefined;
  path = path.replace(/%([0-9A-Fa-f]{2})/g, (all, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(c) ? c : all;
  });
  path = path.replaceAll("\\", "/");
  return removeDotSegments(path);
}

function removeDotSegments(path: string): string {
  const segments = path.split("/").slice(1);
  const out: string[] = [];
  segments.forEach((s, i) => {
    const last = i === segments.length - 1;
    if (s === ".") {
      if (last) out.push("");
    } else if (s === "..") {
      out.pop();
      if (last) out.push("");
    } else out.push(s);
  });
  return "/" + out.join("/");
}

/** The host without its port, lower case (`[::1]:80` → `[::1]`). */
function hostOf(authority: string): string {
  const h = authority.toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.lastIndexOf(":");
  return colon >= 0 && h.indexOf(":") === colon && /^[0-9]*$/.test(h.slice(colon + 1))
    ? h.slice(0, colon)
    : h;
}

function authFacts(a: L7Auth | undefined): Facts["auth"] {
  if (!a) return undefined;
  const slash = a.principal.lastIndexOf("/");
  const iss = typeof a.claims.iss === "string"
    ? a.claims.iss
    : slash >= 0
    ? a.principal.slice(0, slash)
    : a.principal;
  const sub = typeof a.claims.sub === "string"
    ? a.claims.sub
    : slash >= 0
    ? a.principal.slice(slash + 1)
    : undefined;
  return { ...a, iss, sub };
}

function factsOf(r: L7Request, path: string): Facts {
  const principal = r.sourcePrincipal?.replace(/^spiffe:\/\//, "") || undefined;
  const id = principal?.match(SPIFFE_ID);
  const headers = new Map<string, string>();
  for (const [name, value] of r.headers) {
    const k = name.toLowerCase();
    const prev = headers.get(k);
    headers.set(k, prev === undefined ? value : `${prev},${value}`);
  }
  return {
    principal,
    namespace: r.sourceNamespace ?? id?.[2],
    serviceAccount: id ? `${id[2]}/${id[3]}` : undefined,
    sourceIp: unmapIp(r.sourceIp),
    remoteIp: unmapIp(r.remoteIp),
    destinationIp: r.destinationIp === undefined ? undefined : unmapIp(r.destinationIp),
    port: r.port,
    sni: r.sni,
    method: r.method,
    host: hostOf(r.host),
    path,
    headers,
    auth: authFacts(r.auth),
  };
}

// ---------------------------------------------------------------------------
// Value matchers

/** Envoy header match as istiod writes it: `*` is presence, even of an empty value. */
function headerMatch(pattern: string, value: string | undefined): boolean {
  if (value === undefined) return false;
  return pattern === "*" ? true : stringMatch(pattern, value);
}

function hostMatch(pattern: string, host: string): boolean {
  return stringMatch(pattern.toLowerCase(), host);
}

/** A compiled `paths` value: a path template (`{*}`, `{**}`) or an Istio string match. */
function pathMatcher(pattern: string): (path: string) => boolean {
  if (!pattern.includes("{*}") && !pattern.includes("{**}")) {
    return (p) => stringMatch(pattern, p);
  }
  const re = new RegExp(
    "^" +
      pattern.split(/(\{\*\*\}|\{\*\})/).map((part) =>
        part === "{**}"
          ? ".*"
          : part === "{*}"
          ? "[^/]+"
          : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
      ).join("") + "$",
  );
  return (p) => re.test(p);
}

/** istiod's `requestPrincipalGenerator`: issuer and subject matched separately. */
function requestPrincipalMatch(pattern: string, a: Facts["auth"]): boolean {
  if (!a || a.iss === undefined) return false;
  const iss = a.iss, sub = a.sub ?? "";
  const any = (v: string) => v !== "";
  const idx = pattern.lastIndexOf("/");
  const found = idx >= 0;
  const pIss = found ? pattern.slice(0, idx) : pattern;
  const pSub = found ? pattern.slice(idx + 1) : "";
  if (pattern === "*") return any(iss) && any(sub);
  if (pattern.startsWith("*")) {
    if (!found) return any(iss) && sub.endsWith(pattern.slice(1));
    return (pIss === "*" ? any(iss) : iss.endsWith(pIss.slice(1))) && sub === pSub;
  }
  if (pattern.endsWith("*")) {
    if (!found) return iss.startsWith(pattern.slice(0, -1)) && any(sub);
    return iss === pIss && (pSub === "*" ? any(sub) : sub.startsWith(pSub.slice(0, -1)));
  }
  return iss === pIss && sub === pSub;
}

const SPACE_DELIMITED = new Set(["scope", "permission"]);

/** The string values of a claim path: a string, or the strings of a list. */
function claimValues(a: Facts["auth"], path: readonly string[]): string[] {
  if (!a) return [];
  let v: unknown = a.claims;
  for (const k of path) {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return [];
    v = (v as Record<string, unknown>)[k];
  }
  if (typeof v === "string") {
    return path.length === 1 && SPACE_DELIMITED.has(path[0]) ? v.split(" ").filter(Boolean) : [v];
  }
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  return [];
}

function inCidr(block: Cidr, ip: string | undefined): boolean {
  return ip !== undefined && isIP(ip) !== 0 && cidrContains(block, ip);
}

// ---------------------------------------------------------------------------
// Compilation

/** What compiling one rule needs: the policy's namespace and how to treat bad values. */
interface RuleContext {
  readonly ns: string;
  readonly action: CompiledL7Policy["action"];
  readonly warn: (text: string) => void;
  /** Set when an ALLOW rule must be dropped. */
  dropped: boolean;
}

/** A bad value: ALLOW drops the rule, other actions leave the value out. */
function bad(ctx: RuleContext, text: string): undefined {
  if (ctx.action === "ALLOW") {
    ctx.dropped = true;
    ctx.warn(`${text}; the ALLOW rule is ignored, which may deny traffic.`);
  } else {
    ctx.warn(`${text}; it is left out of the ${ctx.action} rule, which then matches more.`);
  }
  return undefined;
}

/**
 * A field: the positive list must match one value, the `not` list none.
 * `parse` turns a written value into a test, or reports it unusable.
 */
function field(
  label: string,
  values: readonly string[] | undefined,
  notValues: readonly string[] | undefined,
  parse: (v: string, label: string) => ((f: Facts) => boolean) | undefined,
): Match[] {
  const out: Match[] = [];
  const compile = (list: readonly string[], l: string) =>
    list.map((v) => parse(v, l)).filter((t): t is (f: Facts) => boolean => t !== undefined);
  if (values?.length) {
    const tests = compile(values, label);
    if (tests.length) out.push((f) => tests.some((t) => t(f)));
  }
  if (notValues?.length) {
    const tests = compile(notValues, `not ${label}`);
    if (tests.length) out.push((f) => !tests.some((t) => t(f)));
  }
  return out;
}

function all(ms: readonly Match[]): Match {
  return (f) => ms.every((m) => m(f));
}

function any(ms: readonly Match[]): Match {
  return (f) => ms.some((m) => m(f));
}

/** Parsers for the kinds of values fields and conditions take. */
function cidrTest(ctx: RuleContext, side: "sourceIp" | "remoteIp" | "destinationIp") {
  return (v: string, label: string) => {
    const block = parseCidr(v);
    if (!block) return bad(ctx, `${label} "${v}" is not an IP address or CIDR block`);
    return (f: Facts) => inCidr(block, f[side]);
  };
}

function portTest(ctx: RuleContext) {
  return (v: string, label: string) => {
    const n = /^[0-9]{1,5}$/.test(v) ? Number(v) : NaN;
    if (!(n >= 0 && n <= 65535)) return bad(ctx, `${label} "${v}" is not a port number`);
    return (f: Facts) => f.port === n;
  };
}

function serviceAccountTest(ctx: RuleContext) {
  return (v: string) => {
    const want = v.includes("/") ? v : `${ctx.ns}/${v}`;
    return (f: Facts) => f.serviceAccount === want;
  };
}

const str = (get: (f: Facts) => string | undefined) => (v: string) => (f: Facts) =>
  stringMatch(v, get(f));

function sourceMatchers(s: Spec, ctx: RuleContext): Match[] {
  return [
    ...field("principals", s.principals, s.notPrincipals, str((f) => f.principal)),
    ...field(
      "requestPrincipals",
      s.requestPrincipals,
      s.notRequestPrincipals,
      (v) => (f) => requestPrincipalMatch(v, f.auth),
    ),
    ...field("namespaces", s.namespaces, s.notNamespaces, str((f) => f.namespace)),
    ...field("serviceAccounts", s.serviceAccounts, s.notServiceAccounts, serviceAccountTest(ctx)),
    ...field("ipBlocks", s.ipBlocks, s.notIpBlocks, cidrTest(ctx, "sourceIp")),
    ...field("remoteIpBlocks", s.remoteIpBlocks, s.notRemoteIpBlocks, cidrTest(ctx, "remoteIp")),
  ];
}

function operationMatchers(o: Spec, ctx: RuleContext): Match[] {
  return [
    ...field("hosts", o.hosts, o.notHosts, (v, label) => {
      if (/:[0-9]+$/.test(v) && !v.endsWith("]")) {
        ctx.warn(
          `${label} "${v}" has a port; request hosts are compared without their port, so it never matches.`,
        );
      }
      return (f) => hostMatch(v, f.host);
    }),
    ...field("ports", o.ports, o.notPorts, portTest(ctx)),
    ...field("methods", o.methods, o.notMethods, (v) => (f) => headerMatch(v, f.method)),
    ...field("paths", o.paths, o.notPaths, (v) => {
      const m = pathMatcher(v);
      return (f) => m(f.path);
    }),
  ];
}

const HEADER_KEY = /^request\.headers\[([^\[\]]+)\]$/;
const CLAIMS_KEY = /^request\.auth\.claims((\[[^\[\]]+\])+)$/;

/** One `when` condition; an unusable key makes the whole condition unusable. */
function whenMatchers(w: Spec, ctx: RuleContext): Match[] {
  const key = String(w?.key);
  const f = (parse: (v: string, label: string) => ((f: Facts) => boolean) | undefined) =>
    field(`when ${key} value`, w.values, w.notValues, parse);
  switch (key) {
    case "source.ip":
      return f(cidrTest(ctx, "sourceIp"));
    case "remote.ip":
      return f(cidrTest(ctx, "remoteIp"));
    case "destination.ip":
      return f(cidrTest(ctx, "destinationIp"));
    case "destination.port":
      return f(portTest(ctx));
    case "source.namespace":
      return f(str((x) => x.namespace));
    case "source.principal":
      return f(str((x) => x.principal));
    case "source.serviceAccount":
      return f(serviceAccountTest(ctx));
    case "connection.sni":
      return f(str((x) => x.sni));
    case "request.auth.principal":
      return f((v) => (x) => requestPrincipalMatch(v, x.auth));
    case "request.auth.audiences":
      return f((v) => (x) => (x.auth?.audiences ?? []).some((a) => stringMatch(v, a)));
    case "request.auth.presenter":
      return f(str((x) => x.auth?.presenter));
  }
  const header = key.match(HEADER_KEY);
  if (header) {
    const name = header[1].toLowerCase();
    return f((v) => (x) => headerMatch(v, x.headers.get(name)));
  }
  const claims = key.match(CLAIMS_KEY);
  if (claims) {
    const path = [...claims[1].matchAll(/\[([^\[\]]+)\]/g)].map((m) => m[1]);
    return f((v) => (x) => claimValues(x.auth, path).some((c) => stringMatch(v, c)));
  }
  bad(
    ctx,
    key.startsWith("experimental.envoy.filters.")
      ? `when key "${key}" reads Envoy metadata, which ambit's waypoint does not have`
      : `when key "${key}" is not a supported condition key`,
  );
  return [];
}

/** A rule: `from` entries OR, `to` entries OR, `when` conditions AND, all ANDed. */
function compileRule(rule: Spec, ctx: RuleContext): Match | undefined {
  const from: Match[] = (rule.from ?? []).map((x: Spec) =>
    all(sourceMatchers(x?.source ?? {}, ctx))
  );
  const to: Match[] = (rule.to ?? []).map((x: Spec) =>
    all(operationMatchers(x?.operation ?? {}, ctx))
  );
  const when: Match[] = (rule.when ?? []).flatMap((w: Spec) => whenMatchers(w, ctx));
  if (ctx.dropped) return undefined;
  const parts: Match[] = [];
  if (from.length) parts.push(any(from));
  if (to.length) parts.push(any(to));
  parts.push(...when);
  return all(parts);
}

/** Istio reads the annotation with Go's `strconv.ParseBool`. */
function isDryRun(res: Resource): boolean {
  const v = res.metadata.annotations?.[DRY_RUN_ANNOTATION];
  return v !== undefined && ["1", "t", "T", "true", "TRUE", "True"].includes(v);
}

/**
 * Compiles one AuthorizationPolicy for a waypoint. Every field is enforced;
 * unusable values are handled as istiod does (see the module doc) and warned
 * about. CUSTOM (which the schema refuses) compiles so that matching requests
 * are denied: ambit has no external authorizer.
 *
 * @example
 * const p = compileL7Policy(resource);
 * evaluateL7([p], request);
 */
export function compileL7Policy(res: Resource): CompiledL7Policy {
  const spec: Spec = res.spec ?? {};
  const ns = res.metadata.namespace ?? "";
  const key = `${ns}/${res.metadata.name}`;
  const action = (spec.action ?? "ALLOW") as CompiledL7Policy["action"];
  const warnings: string[] = [];
  if (action === "CUSTOM") {
    warnings.push(
      `AuthorizationPolicy ${key}: action CUSTOM needs an external authorizer, which ambit's waypoint cannot consult; requests matching its rules are denied.`,
    );
  }
  const rules: Match[] = [];
  const written: Spec[] = spec.rules ?? [];
  written.forEach((rule, i) => {
    const at = `AuthorizationPolicy ${key} rule ${i}`;
    const ctx: RuleContext = {
      ns,
      action,
      warn: (t) => warnings.push(`${at}: ${t}`),
      dropped: false,
    };
    const m = compileRule(rule ?? {}, ctx);
    if (m) rules.push(m);
  });
  if (action === "ALLOW" && written.length > 0 && rules.length === 0) {
    warnings.push(
      `AuthorizationPolicy ${key}: every rule was ignored, so it allows nothing (requests are denied unless another ALLOW policy matches).`,
    );
  }
  return { key, action, rules, warnings, dryRun: isDryRun(res) };
}

// ---------------------------------------------------------------------------
// Selection and decision

/**
 * The AuthorizationPolicies waypoint `waypointKey` (`namespace/name`)
 * enforces for traffic to `serviceKey` (`namespace/name`, or
 * `Service/…`/`ServiceEntry/…`): those whose targetRefs name the waypoint's
 * Gateway, then those naming the service if it is bound to this waypoint.
 *
 * @example
 * policiesForService(snapshot, "shop/reviews", "shop/waypoint");
 */
export function policiesForService(
  snapshot: Snapshot,
  serviceKey: string,
  waypointKey: string,
): readonly Resource[] {
  return targetedPolicies(snapshot, snapshot.authorizationPolicies, serviceKey, waypointKey);
}

function matchesAny(p: CompiledL7Policy, f: Facts): boolean {
  return p.rules.some((r) => r(f));
}

const denied = (policy: string | undefined, reason: string): L7Decision => ({
  allow: false,
  ...(policy === undefined ? {} : { policy }),
  reason,
  status: RBAC_DENIED_STATUS,
  body: RBAC_DENIED_BODY,
});

/** Istio's order over enforced policies. */
function decide(policies: readonly CompiledL7Policy[], f: Facts): L7Decision {
  for (const p of policies) {
    if (p.action === "CUSTOM" && matchesAny(p, f)) {
      return denied(
        p.key,
        `CUSTOM policy ${p.key} matched; ambit's waypoint cannot consult an external authorizer, so it denies`,
      );
    }
  }
  for (const p of policies) {
    if (p.action === "DENY" && matchesAny(p, f)) {
      return denied(p.key, `DENY policy ${p.key} matched`);
    }
  }
  const allows = policies.filter((p) => p.action === "ALLOW");
  if (allows.length === 0) return { allow: true, reason: "no ALLOW policy applies" };
  for (const p of allows) {
    if (matchesAny(p, f)) {
      return { allow: true, policy: p.key, reason: `ALLOW policy ${p.key} matched` };
    }
  }
  const keys = allows.map((p) => p.key);
  return denied(keys.join(","), `no ALLOW policy matched (${keys.join(", ")})`);
}

/**
 * The decision for one request, in Istio's order: a matching CUSTOM policy
 * denies (no external authorizer: fail closed); then any matching DENY
 * denies; without ALLOW policies, allow; any matching ALLOW allows; otherwise
 * deny (403 `RBAC: access denied`). AUDIT never changes the decision; the
 * AUDIT policies that match are listed in `audit`. Dry-run policies do not
 * count; when they would have changed the outcome, `dryRun` says how. A path
 * Istio's normalization refuses, or a method not in upper case, is denied
 * with 400 before any policy.
 *
 * @example
 * evaluateL7([], { sourceIp: "10.0.0.1", remoteIp: "10.0.0.1", method: "GET",
 *   host: "web", path: "/", port: 80, headers: [] });
 * // { allow: true, reason: "no ALLOW policy applies" }
 */
export function evaluateL7(policies: readonly CompiledL7Policy[], req: L7Request): L7Decision {
  const path = normalizePath(req.path);
  if (path === undefined || req.method !== req.method.toUpperCase()) {
    return {
      allow: false,
      reason: path === undefined
        ? `path "${req.path}" is refused by Istio's path normalization`
        : `method "${req.method}" is not upper case`,
      status: 400,
      body: "Bad Request",
    };
  }
  const f = factsOf(req, path);
  const enforced = policies.filter((p) => !p.dryRun);
  let decision = decide(enforced, f);
  const audit = enforced.filter((p) => p.action === "AUDIT" && matchesAny(p, f)).map((p) => p.key);
  if (audit.length) decision = { ...decision, audit };
  if (enforced.length === policies.length) return decision;
  const would = decide(policies, f);
  if (would.allow === decision.allow) return decision;
  return { ...decision, dryRun: `would ${would.allow ? "allow" : "deny"}: ${would.reason}` };
}

/** Compiles each policy once per snapshot and the set per (service, waypoint) once. */
export class L7PolicyCache {
  #compiled = new Map<Resource, CompiledL7Policy>();
  #byService = new Map<string, readonly CompiledL7Policy[]>();

  constructor(readonly snapshot: Snapshot) {}

  /** The compiled policies waypoint `waypointKey` enforces for `serviceKey`. */
  forService(serviceKey: string, waypointKey: string): readonly CompiledL7Policy[] {
    const k = `${serviceKey}\n${waypointKey}`;
    let list = this.#byService.get(k);
    if (!list) {
      list = policiesForService(this.snapshot, serviceKey, waypointKey).map((r) =>
        this.#compile(r)
      );
      this.#byService.set(k, list);
    }
    return list;
  }

  /** Warnings of every targetRef policy (the ones waypoints enforce). */
  warnings(): string[] {
    return this.snapshot.authorizationPolicies.all
      .filter((r) => (r.spec as Spec)?.targetRef || (r.spec as Spec)?.targetRefs?.length)
      .flatMap((r) => this.#compile(r).warnings);
  }

  #compile(r: Resource): CompiledL7Policy {
    let c = this.#compiled.get(r);
    if (!c) {
      c = compileL7Policy(r);
      this.#compiled.set(r, c);
    }
    return c;
  }
}
