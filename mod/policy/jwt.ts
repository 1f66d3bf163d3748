/**
 * RequestAuthentication (JWT) at a waypoint: which rules apply to a
 * service's traffic, where tokens are read from, how they are verified, and
 * what the request carries on afterwards. Signatures are checked with `jose`;
 * JWKS documents are fetched, cached and refreshed by {@link JwtAuthenticator},
 * which takes its `fetch` and clock as dependencies.
 *
 * Semantics follow istiod's translation to Envoy's `jwt_authn` filter
 * (pilot/pkg/security/authn/policy_applier.go) and Envoy's messages:
 * - every jwtRule of every selected RequestAuthentication is one provider,
 *   sorted by issuer; each reads its `fromHeaders`, `fromParams` and
 *   `fromCookies`, or by default `Authorization: Bearer <token>` and the
 *   `access_token` query parameter;
 * - a request without a token passes, without a request identity (require one
 *   with AuthorizationPolicy `requestPrincipals`);
 * - a token that is present must verify, or the request gets 401 with Envoy's
 *   body: `Jwt issuer is not configured` (no rule reading that location has
 *   its `iss`), `Jwt is expired`, `Jwt not yet valid`, `Audiences in Jwt are
 *   not allowed`, `Jwks doesn't have key to match kid or alg from Jwt`,
 *   `Jwks remote fetch is failed`, `Jwt header [alg] is not supported`
 *   (`alg: none`), otherwise `Jwt verification fails`; `exp` and `nbf` allow
 *   Envoy's 60 s clock skew;
 * - several tokens (different values, in different locations): each must
 *   verify (Envoy's `requires_any` would accept the request if one provider's
 *   token verified; ambit is stricter, so one bad token always refuses); the
 *   request identity is the first token's in rule order. The same token in
 *   two locations counts once. Rules with the same issuer: a token verifying
 *   against any of them is accepted;
 * - after verification: the token's header is removed unless
 *   `forwardOriginalToken` (query parameters and cookies are left, as Envoy);
 *   `outputPayloadToHeader` gets the token's base64url payload segment;
 *   `outputClaimToHeaders` gets string, number and boolean claims (`a.b` for
 *   nested ones). ambit also removes those output headers from every request
 *   first, so a client cannot forge them.
 *
 * @module
 */
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  jwtVerify,
} from "jose";
import { parseDuration } from "../config/formats.ts";
import type { Resource } from "../config/kind.ts";
import type { Infer } from "../config/schema.ts";
import type { Snapshot } from "../config/snapshot.ts";
import type { requestAuthenticationSpec } from "../config/kinds/request_authentication.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import type { L7Auth } from "./l7_authz.ts";
import { targetedPolicies } from "./l7_targets.ts";

/** One checked `jwtRules[]` entry. */
export type JwtRule = NonNullable<Infer<typeof requestAuthenticationSpec>["jwtRules"]>[number];

/** What authentication reads from a request. */
export interface JwtRequest {
  /** The request target, with its query. */
  readonly path: string;
  readonly headers: readonly (readonly [string, string])[];
  /** `:authority`, for the `www-authenticate` realm. */
  readonly host?: string;
}

/** Changes to the forwarded request: remove these header names, then set these headers. */
export interface HeaderEdits {
  readonly remove: readonly string[];
  readonly set: readonly (readonly [string, string])[];
}

/** The outcome of {@link JwtAuthenticator.authenticate}. */
export type JwtResult =
  | { readonly ok: true; readonly auth?: L7Auth; readonly headerEdits: HeaderEdits }
  | {
    readonly ok: false;
    readonly status: 401;
    /** Envoy's text, e.g. `Jwt verification fails`. */
    readonly body: string;
    /** What went wrong, for the log. */
    readonly reason: string;
    /** `www-authenticate` value, as Envoy sends. */
    readonly wwwAuthenticate: string;
  };

/** Options of {@link JwtAuthenticator}; every field has a default. */
export interface JwtAuthenticatorOptions {
  /** Used for `jwksUri`; default `globalThis.fetch`. */
  readonly fetch?: typeof fetch;
  /** Default: the system clock. */
  readonly clock?: Clock;
  /** How long fetched keys are fresh; default 5 min (Envoy's cache_duration as istiod sets it). */
  readonly refreshIntervalMs?: number;
  /** Least time between two fetches forced by an unknown `kid`; default 30 s. */
  readonly unknownKidCooldownMs?: number;
  /** Fetch timeout when a rule has no `timeout`; default 5 s (istiod's). */
  readonly fetchTimeoutMs?: number;
  /** Allowed skew for `exp` / `nbf`; default 60 s (Envoy's). */
  readonly clockSkewSeconds?: number;
}

/** A JWKS document that could not be fetched or read. */
export class JwksFetchError extends Error {
  /** Stable code. */
  readonly code = "EJWKSFETCH";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "JwksFetchError";
  }
}

const DEFAULT_HEADER = { name: "authorization", prefix: "Bearer " };
const DEFAULT_PARAM = "access_token";

const BODY = {
  issuer: "Jwt issuer is not configured",
  expired: "Jwt is expired",
  notYet: "Jwt not yet valid",
  audience: "Audiences in Jwt are not allowed",
  noKey: "Jwks doesn't have key to match kid or alg from Jwt",
  fetch: "Jwks remote fetch is failed",
  alg: "Jwt header [alg] is not supported",
  format: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
  verify: "Jwt verification fails",
} as const;

// ---------------------------------------------------------------------------
// Selection

/**
 * The RequestAuthentications waypoint `waypointKey` applies to traffic for
 * `serviceKey`, by targetRefs, as {@link policiesForService} of
 * `l7_authz.ts` selects AuthorizationPolicies.
 *
 * @example
 * jwtRulesOf(requestAuthenticationsForService(snapshot, "shop/reviews", "shop/waypoint"));
 */
export function requestAuthenticationsForService(
  snapshot: Snapshot,
  serviceKey: string,
  waypointKey: string,
): readonly Resource[] {
  return targetedPolicies(snapshot, snapshot.requestAuthentications, serviceKey, waypointKey);
}

/** Every jwtRule of `resources`, sorted by issuer (stable), as istiod merges them. */
export function jwtRulesOf(resources: readonly Resource[]): JwtRule[] {
  const rules = resources.flatMap((
    r,
  ) => ((r.spec as { jwtRules?: JwtRule[] } | undefined)?.jwtRules ?? []));
  return rules.map((r, i) => [r, i] as const)
    .sort((a, b) => (a[0].issuer < b[0].issuer ? -1 : a[0].issuer > b[0].issuer ? 1 : a[1] - b[1]))
    .map(([r]) => r);
}

// ---------------------------------------------------------------------------
// Extraction

/** Where a token was found. */
type Location =
  | { readonly kind: "header"; readonly name: string }
  | { readonly kind: "param" | "cookie"; readonly name: string };

interface Found {
  readonly token: string;
  readonly locations: Location[];
  /** Rules that read one of its locations, in rule order. */
  readonly rules: JwtRule[];
}

function headerValues(req: JwtRequest, name: string): string[] {
  const n = name.toLowerCase();
  return req.headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
}

/** The token after `prefix` (compared case-insensitively), up to a space or comma. */
function afterPrefix(value: string, prefix: string): string | undefined {
  if (value.slice(0, prefix.length).toLowerCase() !== prefix.toLowerCase()) return undefined;
  const token = value.slice(prefix.length).trim().split(/[\s,]/)[0];
  return token === "" ? undefined : token;
}

function cookies(req: JwtRequest): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of headerValues(req, "cookie")) {
    for (const part of v.split(";")) {
      const eq = part.indexOf("=");
      if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
    }
  }
  return out;
}

function queryOf(path: string): URLSearchParams {
  const q = path.indexOf("?");
  if (q < 0) return new URLSearchParams();
  const end = path.indexOf("#", q);
  return new URLSearchParams(path.slice(q + 1, end < 0 ? undefined : end));
}

/** Each rule's tokens, in rule order then location order; one entry per distinct token. */
function extract(rules: readonly JwtRule[], req: JwtRequest): Found[] {
  const found = new Map<string, Found>();
  const add = (token: string, loc: Location, rule: JwtRule) => {
    let f = found.get(token);
    if (!f) found.set(token, f = { token, locations: [], rules: [] });
    if (!f.locations.some((l) => l.kind === loc.kind && l.name === loc.name)) f.locations.push(loc);
    if (!f.rules.includes(rule)) f.rules.push(rule);
  };
  const query = queryOf(req.path);
  const jar = cookies(req);
  for (const rule of rules) {
    const custom = Boolean(
      rule.fromHeaders?.length || rule.fromParams?.length || rule.fromCookies?.length,
    );
    const headers = custom ? rule.fromHeaders ?? [] : [DEFAULT_HEADER];
    const params = custom ? rule.fromParams ?? [] : [DEFAULT_PARAM];
    for (const h of headers) {
      for (const v of headerValues(req, h.name)) {
        const t = afterPrefix(v, h.prefix ?? "");
        if (t) add(t, { kind: "header", name: h.name.toLowerCase() }, rule);
      }
    }
    for (const p of params) {
      for (const t of query.getAll(p)) if (t) add(t, { kind: "param", name: p }, rule);
    }
    for (const c of rule.fromCookies ?? []) {
      const t = jar.get(c);
      if (t) add(t, { kind: "cookie", name: c }, rule);
    }
  }
  return [...found.values()];
}

// ---------------------------------------------------------------------------
// Verification

interface Failure {
  readonly body: string;
  readonly reason: string;
}

interface Verified {
  readonly rule: JwtRule;
  readonly payload: JWTPayload;
  readonly found: Found;
}

interface CacheEntry {
  keys?: JSONWebKeySet;
  getter?: ReturnType<typeof createLocalJWKSet>;
  fetchedAt: number;
  lastAttempt: number;
  inflight?: Promise<void>;
  lastError?: string;
}

function claimString(payload: JWTPayload, claim: string): string | undefined {
  let v: unknown = payload[claim];
  if (v === undefined && claim.includes(".")) {
    v = claim.split(".").reduce<unknown>(
      (
        o,
        k,
      ) => (o !== null && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined),
      payload,
    );
  }
  return typeof v === "string" || typeof v === "number" || typeof v === "boolean"
    ? String(v)
    : undefined;
}

function audiencesOf(payload: JWTPayload): string[] {
  const aud = payload.aud;
  return typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
}

function realmOf(req: JwtRequest): string {
  const path = req.path.split(/[?#]/)[0];
  return req.host ? `Bearer realm="http://${req.host}${path}", error="invalid_token"` : "Bearer";
}

/** Maps a jose verification error to Envoy's body. */
function failureOf(e: unknown, rule: JwtRule): Failure {
  if (e instanceof errors.JWTExpired) {
    return { body: BODY.expired, reason: `token from ${rule.issuer} expired (${e.message})` };
  }
  if (e instanceof errors.JWTClaimValidationFailed) {
    if (e.claim === "nbf") {
      return { body: BODY.notYet, reason: `token from ${rule.issuer} is not yet valid (nbf)` };
    }
    if (e.claim === "aud") {
      return {
        body: BODY.audience,
        reason: `token audiences ${JSON.stringify(audiencesOf(e.payload))} are not among ${
          JSON.stringify(rule.audiences ?? [])
        }`,
      };
    }
    return { body: BODY.verify, reason: `token claim ${e.claim}: ${e.message}` };
  }
  if (e instanceof errors.JWKSNoMatchingKey) {
    return { body: BODY.noKey, reason: `no key of ${rule.issuer} matches the token's kid/alg` };
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return {
      body: BODY.verify,
      reason: `signature does not verify with the keys of ${rule.issuer}`,
    };
  }
  return { body: BODY.verify, reason: `token from ${rule.issuer}: ${(e as Error).message}` };
}

/**
 * Verifies JWTs for a waypoint. Holds the JWKS caches: one per `jwksUri`
 * (fetched on first use with the rule's `timeout`, fresh for
 * `refreshIntervalMs`, refetched on an unknown `kid` at most once per
 * `unknownKidCooldownMs`; stale keys are kept when a refresh fails) and one
 * per inline `jwks` document.
 *
 * @example
 * const jwt = new JwtAuthenticator();
 * const r = await jwt.authenticate(rules, { path: "/", headers: [["authorization", "Bearer ..."]] });
 * if (!r.ok) respond(r.status, r.body);
 */
export class JwtAuthenticator {
  readonly #fetch: typeof fetch;
  readonly #clock: Clock;
  readonly #refreshMs: number;
  readonly #cooldownMs: number;
  readonly #timeoutMs: number;
  readonly #skew: number;
  readonly #remote = new Map<string, CacheEntry>();
  readonly #inline = new Map<string, ReturnType<typeof createLocalJWKSet>>();

  constructor(options: JwtAuthenticatorOptions = {}) {
    this.#fetch = options.fetch ?? ((...a) => globalThis.fetch(...a));
    this.#clock = options.clock ?? systemClock;
    this.#refreshMs = options.refreshIntervalMs ?? 5 * 60_000;
    this.#cooldownMs = options.unknownKidCooldownMs ?? 30_000;
    this.#timeoutMs = options.fetchTimeoutMs ?? 5_000;
    this.#skew = options.clockSkewSeconds ?? 60;
    const numbers = {
      refreshIntervalMs: this.#refreshMs,
      unknownKidCooldownMs: this.#cooldownMs,
      fetchTimeoutMs: this.#timeoutMs,
      clockSkewSeconds: this.#skew,
    };
    for (const [k, v] of Object.entries(numbers)) {
      if (!(v >= 0)) throw new RangeError(`${k} must be a non-negative number, got ${v}`);
    }
  }

  /**
   * Authenticates a request against `rules` (see {@link jwtRulesOf}): no
   * token passes without identity; every token present must verify, or 401.
   */
  async authenticate(rules: readonly JwtRule[], req: JwtRequest): Promise<JwtResult> {
    const outputs = new Set<string>();
    for (const r of rules) {
      if (r.outputPayloadToHeader) outputs.add(r.outputPayloadToHeader.toLowerCase());
      for (const c of r.outputClaimToHeaders ?? []) outputs.add(c.header.toLowerCase());
    }
    const verified: Verified[] = [];
    for (const found of extract(rules, req)) {
      const v = await this.#verifyFound(found);
      if ("body" in v) return { ok: false, status: 401, ...v, wwwAuthenticate: realmOf(req) };
      verified.push(v);
    }
    const remove = new Set(outputs);
    const set: [string, string][] = [];
    for (const { rule, found, payload } of verified) {
      if (!rule.forwardOriginalToken) {
        for (const l of found.locations) if (l.kind === "header") remove.add(l.name);
      }
      if (rule.outputPayloadToHeader) {
        set.push([rule.outputPayloadToHeader.toLowerCase(), found.token.split(".")[1]]);
      }
      for (const c of rule.outputClaimToHeaders ?? []) {
        const value = claimString(payload, c.claim);
        if (value !== undefined) set.push([c.header.toLowerCase(), value]);
      }
    }
    const headerEdits = { remove: [...remove], set };
    if (verified.length === 0) return { ok: true, headerEdits };
    const p = verified[0].payload;
    const auth: L7Auth = {
      principal: `${p.iss ?? ""}/${p.sub ?? ""}`,
      audiences: audiencesOf(p),
      ...(typeof p.azp === "string" ? { presenter: p.azp } : {}),
      claims: p as Record<string, unknown>,
    };
    return { ok: true, auth, headerEdits };
  }

  /** Verifies one token against the rules that read its locations and have its issuer. */
  async #verifyFound(found: Found): Promise<Verified | Failure> {
    let header, payload;
    if (found.token.split(".").length !== 3) {
      return { body: BODY.format, reason: "token is not three dot-separated parts" };
    }
    try {
      header = decodeProtectedHeader(found.token);
      payload = decodeJwt(found.token);
    } catch (e) {
      return { body: BODY.verify, reason: `token cannot be decoded: ${(e as Error).message}` };
    }
    if (typeof header.alg !== "string" || header.alg.toLowerCase() === "none") {
      return { body: BODY.alg, reason: `token alg ${JSON.stringify(header.alg)} is refused` };
    }
    const candidates = found.rules.filter((r) => r.issuer === payload.iss);
    if (candidates.length === 0) {
      return {
        body: BODY.issuer,
        reason: `token issuer ${JSON.stringify(payload.iss)} is not configured for ${
          found.locations.map((l) => `${l.kind} ${l.name}`).join(", ")
        }`,
      };
    }
    let first: Failure | undefined;
    for (const rule of candidates) {
      const r = await this.#verifyWith(found.token, rule);
      if ("payload" in r) return { rule, payload: r.payload, found };
      first ??= r;
    }
    return first!;
  }

  async #verifyWith(token: string, rule: JwtRule): Promise<{ payload: JWTPayload } | Failure> {
    const opts = {
      issuer: rule.issuer,
      ...(rule.audiences?.length ? { audience: rule.audiences } : {}),
      clockTolerance: this.#skew,
      currentDate: new Date(this.#clock.now()),
    };
    if (rule.jwks !== undefined) {
      try {
        return { payload: (await jwtVerify(token, this.#inlineKeys(rule.jwks), opts)).payload };
      } catch (e) {
        return failureOf(e, rule);
      }
    }
    if (rule.jwksUri === undefined) {
      return {
        body: BODY.fetch,
        reason:
          `rule for ${rule.issuer} has neither jwks nor jwksUri (OpenID discovery is not supported)`,
      };
    }
    const uri = rule.jwksUri;
    const timeout = rule.timeout === undefined
      ? this.#timeoutMs
      : parseDuration(rule.timeout) ?? this.#timeoutMs;
    for (let attempt = 0;; attempt++) {
      const entry = await this.#keysFor(uri, timeout);
      if (!entry.getter) {
        return { body: BODY.fetch, reason: `JWKS ${uri}: ${entry.lastError ?? "not fetched"}` };
      }
      try {
        return { payload: (await jwtVerify(token, entry.getter, opts)).payload };
      } catch (e) {
        const canRefetch = this.#clock.now() - entry.lastAttempt >= this.#cooldownMs;
        if (e instanceof errors.JWKSNoMatchingKey && attempt === 0 && canRefetch) {
          await this.#refresh(uri, entry, timeout);
          continue;
        }
        return failureOf(e, rule);
      }
    }
  }

  #inlineKeys(jwks: string): ReturnType<typeof createLocalJWKSet> {
    let g = this.#inline.get(jwks);
    if (!g) {
      g = createLocalJWKSet(JSON.parse(jwks) as JSONWebKeySet);
      this.#inline.set(jwks, g);
    }
    return g;
  }

  /** The cache entry for `uri`, fetched first if it has no keys or they are stale. */
  async #keysFor(uri: string, timeoutMs: number): Promise<CacheEntry> {
    let entry = this.#remote.get(uri);
    if (!entry) {
      entry = { fetchedAt: -Infinity, lastAttempt: -Infinity };
      this.#remote.set(uri, entry);
    }
    const stale = this.#clock.now() - entry.fetchedAt >= this.#refreshMs;
    if (!entry.keys || stale) await this.#refresh(uri, entry, timeoutMs);
    return entry;
  }

  /** Fetches `uri` once for all concurrent callers; keeps the old keys on failure. */
  #refresh(uri: string, entry: CacheEntry, timeoutMs: number): Promise<void> {
    entry.inflight ??= (async () => {
      entry.lastAttempt = this.#clock.now();
      try {
        const keys = await this.#fetchJwks(uri, timeoutMs);
        entry.keys = keys;
        entry.getter = createLocalJWKSet(keys);
        entry.fetchedAt = this.#clock.now();
        entry.lastError = undefined;
      } catch (e) {
        entry.lastError = (e as Error).message;
      } finally {
        entry.inflight = undefined;
      }
    })();
    return entry.inflight;
  }

  async #fetchJwks(uri: string, timeoutMs: number): Promise<JSONWebKeySet> {
    const abort = new AbortController();
    const timer = this.#clock.setTimeout(() => abort.abort(), timeoutMs);
    try {
      const res = await this.#fetch(uri, {
        signal: abort.signal,
        headers: { accept: "application/json" },
      });
      const text = await res.text();
      if (!res.ok) throw new JwksFetchError(`fetch answered ${res.status}`);
      let doc: unknown;
      try {
        doc = JSON.parse(text);
      } catch (e) {
        throw new JwksFetchError(`not JSON: ${(e as Error).message}`);
      }
      if (!Array.isArray((doc as JSONWebKeySet | null)?.keys)) {
        throw new JwksFetchError(`no "keys" array`);
      }
      return doc as JSONWebKeySet;
    } catch (e) {
      if (e instanceof JwksFetchError) throw e;
      const why = abort.signal.aborted ? `timed out after ${timeoutMs} ms` : (e as Error).message;
      throw new JwksFetchError(`fetch failed: ${why}`, { cause: e });
    } finally {
      this.#clock.clearTimeout(timer);
    }
  }
}
