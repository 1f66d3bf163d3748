import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { assertEquals, assertIncludes, assertOk } from "../../tests/_util/asserts.ts";
import { resourcesOf } from "../config/_testing.ts";
import { compileSourcesSync } from "../config/compile.ts";
import { FakeClock } from "../util/clock.ts";
import {
  JwtAuthenticator,
  type JwtRequest,
  type JwtResult,
  type JwtRule,
  jwtRulesOf,
  requestAuthenticationsForService,
} from "./jwt.ts";
import { compileL7Policy, evaluateL7 } from "./l7_authz.ts";

// ---------------------------------------------------------------------------
// Keys and tokens (made fresh for each run)

const ISS = "https://auth.example.com";
const OTHER_ISS = "https://other.example.com";

type Key = { privateKey: CryptoKey; jwk: JWK };

async function keyPair(alg: "RS256" | "ES256", kid: string): Promise<Key> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
}

const RS = await keyPair("RS256", "rs1");
const ES = await keyPair("ES256", "es1");
const WRONG = await keyPair("RS256", "rs1"); // same kid, not the published key
const ROTATED = await keyPair("RS256", "rs2");
const UNLISTED = await keyPair("ES256", "nope");

const jwks = (...keys: Key[]) => JSON.stringify({ keys: keys.map((k) => k.jwk) });

const clock = new FakeClock(Date.UTC(2026, 0, 1));
const nowS = () => Math.floor(clock.now() / 1000);

interface TokenOptions {
  key?: Key;
  alg?: "RS256" | "ES256";
  iss?: string;
  sub?: string;
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  claims?: JWTPayload;
}

async function token(o: TokenOptions = {}): Promise<string> {
  const key = o.key ?? RS;
  const jwt = new SignJWT({ ...o.claims })
    .setProtectedHeader({ alg: o.alg ?? key.jwk.alg!, kid: key.jwk.kid })
    .setIssuer(o.iss ?? ISS)
    .setSubject(o.sub ?? "alice")
    .setIssuedAt(nowS())
    .setExpirationTime(o.exp ?? nowS() + 3600);
  if (o.aud !== undefined) jwt.setAudience(o.aud);
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
  return await jwt.sign(key.privateKey);
}

const b64 = (v: unknown) => btoa(JSON.stringify(v)).replace(/=+$/, "").replace(/\+/g, "-");
const NONE_TOKEN = `${b64({ alg: "none", typ: "JWT" })}.${
  b64({ iss: ISS, sub: "mallory", exp: nowS() + 3600 })
}.`;

// ---------------------------------------------------------------------------
// Rules (checked by the real schema, so defaults apply)

type Obj = Record<string, unknown>;

function rules(...jwtRules: Obj[]): JwtRule[] {
  const [r] = resourcesOf(JSON.stringify({
    apiVersion: "security.istio.io/v1",
    kind: "RequestAuthentication",
    metadata: { name: "jwt", namespace: "shop" },
    spec: { jwtRules },
  }));
  return jwtRulesOf([r]);
}

const INLINE = rules({ issuer: ISS, jwks: jwks(RS, ES) });
const bearer = (t: string): JwtRequest => ({
  path: "/api",
  host: "reviews",
  headers: [["Authorization", `Bearer ${t}`]],
});

// ---------------------------------------------------------------------------
// Table

type Want =
  | { ok: true; principal?: string; remove?: string[]; set?: [string, string][] }
  | { ok: false; body: string; reason?: string };

interface Row {
  name: string;
  rules: JwtRule[];
  req: JwtRequest;
  want: Want;
}

function summary(r: JwtResult): Want {
  if (!r.ok) return { ok: false, body: r.body, reason: r.reason };
  return {
    ok: true,
    ...(r.auth ? { principal: r.auth.principal } : {}),
    remove: [...r.headerEdits.remove],
    set: r.headerEdits.set.map(([k, v]) => [k, v]),
  };
}

async function runTable(rows: Row[]): Promise<void> {
  const jwt = new JwtAuthenticator({ clock, fetch: () => Promise.reject(new Error("no fetch")) });
  const failures: string[] = [];
  for (const row of rows) {
    const got = summary(await jwt.authenticate(row.rules, row.req));
    const want = row.want;
    let same: boolean;
    if (want.ok && got.ok) {
      same = got.principal === want.principal &&
        (want.remove === undefined || JSON.stringify(got.remove) === JSON.stringify(want.remove)) &&
        (want.set === undefined || JSON.stringify(got.set) === JSON.stringify(want.set));
    } else if (!want.ok && !got.ok) {
      same = got.body === want.body &&
        (want.reason === undefined || got.reason!.includes(want.reason));
    } else same = false;
    if (!same) {
      failures.push(
        `${row.name}:\n    got  ${JSON.stringify(got)}\n    want ${JSON.stringify(want)}`,
      );
    }
  }
  assertEquals(failures, [], `${failures.length} of ${rows.length} rows failed`);
}

/** Asserts a 401 with `body` whose reason includes `reason`. */
function assertFails(r: JwtResult, body: string, reason: string, message?: string): void {
  assertOk(!r.ok, `${message ?? "result"}: expected a 401, got ${JSON.stringify(r)}`);
  assertEquals(r.body, body, message);
  assertIncludes(r.reason, reason, message);
}

const OK = (principal = `${ISS}/alice`): Want => ({ ok: true, principal });
const FAIL = (body: string, reason?: string): Want => ({ ok: false, body, reason });

Deno.test("authenticate() verifies tokens as Envoy's jwt_authn does", async () => {
  const rows: Row[] = [
    { name: "valid RS256", rules: INLINE, req: bearer(await token()), want: OK() },
    {
      name: "valid ES256",
      rules: INLINE,
      req: bearer(await token({ key: ES, sub: "bob" })),
      want: OK(`${ISS}/bob`),
    },
    {
      name: "no token passes without identity",
      rules: INLINE,
      req: { path: "/", headers: [] },
      want: { ok: true },
    },
    {
      name: "an Authorization header that is not Bearer is no token",
      rules: INLINE,
      req: { path: "/", headers: [["authorization", "Basic YWxpY2U6eA=="]] },
      want: { ok: true },
    },
    {
      name: "bearer is case-insensitive",
      rules: INLINE,
      req: { path: "/", headers: [["authorization", `bearer ${await token()}`]] },
      want: OK(),
    },
    {
      name: "wrong key with a published kid",
      rules: INLINE,
      req: bearer(await token({ key: WRONG })),
      want: FAIL("Jwt verification fails", "signature"),
    },
    {
      name: "unknown kid in inline jwks",
      rules: INLINE,
      req: bearer(await token({ key: UNLISTED })),
      want: FAIL("Jwks doesn't have key to match kid or alg from Jwt"),
    },
    {
      name: "expired",
      rules: INLINE,
      req: bearer(await token({ exp: nowS() - 120 })),
      want: FAIL("Jwt is expired"),
    },
    {
      name: "expired within the 60 s clock skew",
      rules: INLINE,
      req: bearer(await token({ exp: nowS() - 30 })),
      want: OK(),
    },
    {
      name: "nbf in the future",
      rules: INLINE,
      req: bearer(await token({ nbf: nowS() + 600 })),
      want: FAIL("Jwt not yet valid"),
    },
    {
      name: "nbf within the clock skew",
      rules: INLINE,
      req: bearer(await token({ nbf: nowS() + 30 })),
      want: OK(),
    },
    {
      name: "alg none is refused",
      rules: INLINE,
      req: bearer(NONE_TOKEN),
      want: FAIL("Jwt header [alg] is not supported", "none"),
    },
    {
      name: "wrong issuer",
      rules: INLINE,
      req: bearer(await token({ iss: OTHER_ISS })),
      want: FAIL("Jwt issuer is not configured", OTHER_ISS),
    },
    {
      name: "not a JWT",
      rules: INLINE,
      req: bearer("abc.def"),
      want: FAIL("Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"),
    },
    {
      name: "garbage in three parts",
      rules: INLINE,
      req: bearer("a.b.c"),
      want: FAIL("Jwt verification fails", "cannot be decoded"),
    },
    {
      name: "audiences: one of the token's matches",
      rules: rules({ issuer: ISS, jwks: jwks(RS), audiences: ["reviews", "ratings"] }),
      req: bearer(await token({ aud: ["web", "ratings"] })),
      want: OK(),
    },
    {
      name: "audiences: none matches",
      rules: rules({ issuer: ISS, jwks: jwks(RS), audiences: ["reviews"] }),
      req: bearer(await token({ aud: "billing" })),
      want: FAIL("Audiences in Jwt are not allowed", `["billing"]`),
    },
    {
      name: "audiences: token without aud",
      rules: rules({ issuer: ISS, jwks: jwks(RS), audiences: ["reviews"] }),
      req: bearer(await token()),
      want: FAIL("Audiences in Jwt are not allowed"),
    },
    {
      name: "no audiences configured: any aud",
      rules: INLINE,
      req: bearer(await token({ aud: "anything" })),
      want: OK(),
    },
    {
      name: "access_token query parameter by default",
      rules: INLINE,
      req: { path: `/api?x=1&access_token=${await token()}`, headers: [] },
      want: OK(),
    },
    {
      name: "custom header with prefix",
      rules: rules({
        issuer: ISS,
        jwks: jwks(RS),
        fromHeaders: [{ name: "x-jwt-assertion", prefix: "Token " }],
      }),
      req: { path: "/", headers: [["X-JWT-Assertion", `Token ${await token()}`]] },
      want: { ok: true, principal: `${ISS}/alice`, remove: ["x-jwt-assertion"] },
    },
    {
      name: "custom header without its prefix is no token",
      rules: rules({
        issuer: ISS,
        jwks: jwks(RS),
        fromHeaders: [{ name: "x-jwt-assertion", prefix: "Token " }],
      }),
      req: { path: "/", headers: [["x-jwt-assertion", await token()]] },
      want: { ok: true },
    },
    {
      name: "custom locations replace the default ones",
      rules: rules({ issuer: ISS, jwks: jwks(RS), fromHeaders: [{ name: "x-jwt" }] }),
      req: bearer(await token()),
      want: { ok: true },
    },
    {
      name: "custom query parameter",
      rules: rules({ issuer: ISS, jwks: jwks(RS), fromParams: ["jwt"] }),
      req: { path: `/?jwt=${await token()}`, headers: [] },
      want: { ok: true, principal: `${ISS}/alice`, remove: [] },
    },
    {
      name: "cookie",
      rules: rules({ issuer: ISS, jwks: jwks(RS), fromCookies: ["session"] }),
      req: { path: "/", headers: [["cookie", `a=1; session=${await token()}`]] },
      want: OK(),
    },
    {
      name: "two issuers: each token goes to its own rule",
      rules: rules(
        { issuer: OTHER_ISS, jwks: jwks(ES) },
        { issuer: ISS, jwks: jwks(RS) },
      ),
      req: bearer(await token({ key: ES, iss: OTHER_ISS, sub: "svc" })),
      want: OK(`${OTHER_ISS}/svc`),
    },
    {
      name: "two rules with one issuer: any that verifies",
      rules: rules({ issuer: ISS, jwks: jwks(ES) }, { issuer: ISS, jwks: jwks(RS) }),
      req: bearer(await token()),
      want: OK(),
    },
    {
      name: "a token at a location only another issuer's rule reads",
      rules: rules(
        { issuer: OTHER_ISS, jwks: jwks(ES), fromHeaders: [{ name: "x-other" }] },
        { issuer: ISS, jwks: jwks(RS), fromHeaders: [{ name: "x-mine" }] },
      ),
      req: { path: "/", headers: [["x-other", await token()]] },
      want: FAIL("Jwt issuer is not configured", "header x-other"),
    },
    {
      name: "the same token in two locations counts once",
      rules: INLINE,
      req: await (async () => {
        const t = await token();
        return { path: `/?access_token=${t}`, headers: [["authorization", `Bearer ${t}`]] };
      })(),
      want: OK(),
    },
    {
      name: "two tokens: one bad refuses the request",
      rules: INLINE,
      req: {
        path: `/?access_token=${await token({ key: WRONG })}`,
        headers: [["authorization", `Bearer ${await token()}`]],
      },
      want: FAIL("Jwt verification fails"),
    },
    {
      name: "two good tokens: the first in rule order is the identity",
      rules: INLINE,
      req: {
        path: `/?access_token=${await token({ sub: "second" })}`,
        headers: [["authorization", `Bearer ${await token({ sub: "first" })}`]],
      },
      want: OK(`${ISS}/first`),
    },
    {
      name: "no jwks and no jwksUri",
      rules: rules({ issuer: ISS }),
      req: bearer(await token()),
      want: FAIL("Jwks remote fetch is failed", "OpenID discovery"),
    },
  ];
  await runTable(rows);
});

Deno.test("authenticate() returns the identity, claims and the 401 details", async () => {
  const jwt = new JwtAuthenticator({ clock });
  const t = await token({ aud: ["reviews", "web"], claims: { azp: "spa", groups: ["a"] } });
  const r = await jwt.authenticate(INLINE, bearer(t));
  assertOk(r.ok && r.auth);
  assertEquals(r.auth.principal, `${ISS}/alice`);
  assertEquals(r.auth.audiences, ["reviews", "web"]);
  assertEquals(r.auth.presenter, "spa");
  assertEquals(r.auth.claims.groups, ["a"]);

  const bad = await jwt.authenticate(INLINE, bearer(await token({ exp: nowS() - 3600 })));
  assertOk(!bad.ok);
  assertEquals(bad.status, 401);
  assertEquals(bad.wwwAuthenticate, `Bearer realm="http://reviews/api", error="invalid_token"`);
});

Deno.test("authenticate() strips or forwards the token and writes payload and claim headers", async () => {
  const jwt = new JwtAuthenticator({ clock });
  const t = await token({ claims: { org: { team: "blue" }, level: 3, admin: true, list: ["x"] } });
  const payloadSegment = t.split(".")[1];
  const cases: [string, Obj, Want][] = [
    ["token removed by default", {}, {
      ok: true,
      principal: `${ISS}/alice`,
      remove: ["authorization"],
      set: [],
    }],
    ["forwardOriginalToken keeps it", { forwardOriginalToken: true }, {
      ok: true,
      principal: `${ISS}/alice`,
      remove: [],
      set: [],
    }],
    ["outputPayloadToHeader", { outputPayloadToHeader: "X-Jwt-Payload" }, {
      ok: true,
      principal: `${ISS}/alice`,
      remove: ["x-jwt-payload", "authorization"],
      set: [["x-jwt-payload", payloadSegment]],
    }],
    ["outputClaimToHeaders", {
      outputClaimToHeaders: [
        { header: "x-sub", claim: "sub" },
        { header: "x-team", claim: "org.team" },
        { header: "x-level", claim: "level" },
        { header: "x-admin", claim: "admin" },
        { header: "x-list", claim: "list" },
        { header: "x-missing", claim: "nope" },
      ],
    }, {
      ok: true,
      principal: `${ISS}/alice`,
      remove: ["x-sub", "x-team", "x-level", "x-admin", "x-list", "x-missing", "authorization"],
      set: [["x-sub", "alice"], ["x-team", "blue"], ["x-level", "3"], ["x-admin", "true"]],
    }],
  ];
  for (const [name, extra, want] of cases) {
    const got = summary(
      await jwt.authenticate(rules({ issuer: ISS, jwks: jwks(RS), ...extra }), bearer(t)),
    );
    assertEquals(got, want, name);
  }
  // The payload header decodes to the claims.
  const decoded = JSON.parse(atob(payloadSegment.replace(/-/g, "+").replace(/_/g, "/")));
  assertEquals(decoded.org, { team: "blue" });
  // Without a token, forged output headers are still removed.
  const forged = await jwt.authenticate(
    rules({ issuer: ISS, jwks: jwks(RS), outputPayloadToHeader: "x-jwt-payload" }),
    { path: "/", headers: [["x-jwt-payload", "forged"]] },
  );
  assertEquals(summary(forged), { ok: true, remove: ["x-jwt-payload"], set: [] });
});

// ---------------------------------------------------------------------------
// jwksUri: a real local server

interface JwksServer {
  uri: string;
  fetches: () => number;
  serve: (body: string, status?: number) => void;
  close: () => Promise<void>;
}

function jwksServer(): JwksServer {
  let count = 0;
  let body = jwks(RS, ES);
  let status = 200;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    count++;
    return new Response(body, { status, headers: { "content-type": "application/json" } });
  });
  return {
    uri: `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`,
    fetches: () => count,
    serve: (b, s = 200) => {
      body = b;
      status = s;
    },
    close: () => server.shutdown(),
  };
}

Deno.test("jwksUri keys are fetched once, cached, refreshed when stale and on an unknown kid", async () => {
  const srv = jwksServer();
  try {
    const c = new FakeClock(clock.now());
    const jwt = new JwtAuthenticator({
      clock: c,
      refreshIntervalMs: 300_000,
      unknownKidCooldownMs: 30_000,
    });
    const rs = rules({ issuer: ISS, jwksUri: srv.uri });
    const t = await token();
    assertEquals(summary(await jwt.authenticate(rs, bearer(t))).ok, true);
    assertEquals(srv.fetches(), 1);
    await Promise.all([1, 2, 3].map(() => jwt.authenticate(rs, bearer(t))));
    assertEquals(srv.fetches(), 1, "cached");

    // Key rotation: the server publishes rs2; a token with kid rs2 arrives.
    srv.serve(jwks(ROTATED));
    const rotated = await token({ key: ROTATED });
    const early = await jwt.authenticate(rs, bearer(rotated));
    assertFails(early, "Jwks doesn't have key to match kid or alg from Jwt", ISS);
    assertEquals(srv.fetches(), 1, "no refetch within the cooldown");
    await c.advance(30_000);
    assertEquals(summary(await jwt.authenticate(rs, bearer(rotated))).ok, true);
    assertEquals(srv.fetches(), 2, "refetched on the unknown kid");

    // Stale keys are refreshed on use after the refresh interval.
    await c.advance(300_000);
    srv.serve(jwks(ROTATED, RS));
    assertEquals(summary(await jwt.authenticate(rs, bearer(t))).ok, true);
    assertEquals(srv.fetches(), 3, "refreshed when stale");

    // A failed refresh keeps the last good keys.
    srv.serve("oops", 500);
    await c.advance(300_000);
    assertEquals(summary(await jwt.authenticate(rs, bearer(t))).ok, true);
    assertEquals(srv.fetches(), 4);
  } finally {
    await srv.close();
  }
});

Deno.test("jwksUri fetch failures answer 401 Jwks remote fetch is failed, with the reason", async () => {
  const srv = jwksServer();
  try {
    const t = await token();
    const cases: [string, () => void, string][] = [
      ["HTTP 500", () => srv.serve("down", 500), "fetch answered 500"],
      ["not JSON", () => srv.serve("<html>"), "not JSON"],
      ["no keys", () => srv.serve(`{"k":[]}`), `no "keys" array`],
    ];
    for (const [name, setup, reason] of cases) {
      setup();
      const jwt = new JwtAuthenticator({ clock });
      const got = await jwt.authenticate(rules({ issuer: ISS, jwksUri: srv.uri }), bearer(t));
      assertFails(got, "Jwks remote fetch is failed", reason, name);
      assertFails(got, "Jwks remote fetch is failed", srv.uri, name);
    }
  } finally {
    await srv.close();
  }

  // Connection refused: the server is gone.
  const refused = await new JwtAuthenticator({ clock }).authenticate(
    rules({ issuer: ISS, jwksUri: srv.uri }),
    bearer(await token()),
  );
  assertOk(!refused.ok);
  assertEquals(refused.body, "Jwks remote fetch is failed");
  assertIncludes(refused.reason, "fetch failed");

  // A fetch that never answers times out after the rule's timeout.
  const c = new FakeClock(clock.now());
  let calls = 0;
  const hanging: typeof fetch = (_input, init) => {
    calls++;
    return new Promise((_resolve, reject) => {
      init?.signal?.addEventListener(
        "abort",
        () => reject(new DOMException("aborted", "AbortError")),
      );
    });
  };
  const jwt = new JwtAuthenticator({ clock: c, fetch: hanging });
  const pending = jwt.authenticate(
    rules({ issuer: ISS, jwksUri: "https://auth.example.com/jwks", timeout: "2s" }),
    bearer(await token()),
  );
  while (c.pending.length === 0) await new Promise((r) => setTimeout(r, 1));
  assertEquals(c.pending, [c.now() + 2000]);
  await c.advance(2000);
  const timedOut = await pending;
  assertOk(!timedOut.ok);
  assertEquals(timedOut.body, "Jwks remote fetch is failed");
  assertIncludes(timedOut.reason, "timed out after 2000 ms");
  assertEquals(calls, 1);
  assertEquals(c.pending, [], "no timer left behind");
});

Deno.test("JwtAuthenticator refuses bad options", () => {
  let thrown: unknown;
  try {
    new JwtAuthenticator({ refreshIntervalMs: -1 });
  } catch (e) {
    thrown = e;
  }
  assertOk(thrown instanceof RangeError && thrown.message.includes("refreshIntervalMs"));
});

// ---------------------------------------------------------------------------
// Selection

Deno.test("requestAuthenticationsForService() selects by targetRefs and jwtRulesOf() sorts by issuer", () => {
  const docs: Obj[] = [
    { apiVersion: "ambit.io/v1alpha1", kind: "Mesh", metadata: { name: "mesh" }, spec: {} },
    {
      apiVersion: "ambit.io/v1alpha1",
      kind: "Node",
      metadata: { name: "node-a" },
      spec: { address: "10.0.0.1" },
    },
    {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: "shop",
        labels: { "istio.io/dataplane-mode": "ambient", "istio.io/use-waypoint": "wp" },
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "reviews", namespace: "shop" },
      spec: { ports: [{ port: 9080 }] },
    },
    {
      apiVersion: "gateway.networking.k8s.io/v1",
      kind: "Gateway",
      metadata: { name: "wp", namespace: "shop", annotations: { "ambit.io/node": "node-a" } },
      spec: {
        gatewayClassName: "istio-waypoint",
        listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }],
      },
    },
    ...[
      [
        "by-service",
        { targetRefs: [{ kind: "Service", group: "", name: "reviews" }] },
        "https://z",
      ],
      ["by-gateway", {
        targetRef: { kind: "Gateway", group: "gateway.networking.k8s.io", name: "wp" },
      }, "https://a"],
      ["by-selector", { selector: { matchLabels: { app: "reviews" } } }, "https://m"],
    ].map(([name, targeting, issuer]) => ({
      apiVersion: "security.istio.io/v1",
      kind: "RequestAuthentication",
      metadata: { name, namespace: "shop" },
      spec: { ...(targeting as Obj), jwtRules: [{ issuer, jwks: jwks(RS) }] },
    })),
  ];
  const text = docs.map((d) => JSON.stringify(d)).join("\n---\n");
  const { snapshot, issues } = compileSourcesSync([{ file: "mesh.yaml", text }]);
  assertEquals(issues.filter((i) => i.severity !== "warning"), []);
  assertOk(snapshot);
  const selected = requestAuthenticationsForService(snapshot, "shop/reviews", "shop/wp");
  assertEquals(selected.map((r) => r.metadata.name), ["by-gateway", "by-service"]);
  assertEquals(jwtRulesOf([...selected].reverse()).map((r) => r.issuer), [
    "https://a",
    "https://z",
  ]);
  assertEquals(requestAuthenticationsForService(snapshot, "shop/reviews", "shop/other"), []);
});

Deno.test("concurrent first requests share one jwksUri fetch", async () => {
  const srv = jwksServer();
  try {
    const jwt = new JwtAuthenticator({ clock });
    const rs = rules({ issuer: ISS, jwksUri: srv.uri });
    const t = await token({ key: ES });
    const results = await Promise.all([1, 2, 3, 4].map(() => jwt.authenticate(rs, bearer(t))));
    assertEquals(results.map((r) => r.ok), [true, true, true, true]);
    assertEquals(srv.fetches(), 1);
  } finally {
    await srv.close();
  }
});

Deno.test("a verified token feeds AuthorizationPolicy requestPrincipals and claims", async () => {
  const [policy] = resourcesOf(JSON.stringify({
    apiVersion: "security.istio.io/v1",
    kind: "AuthorizationPolicy",
    metadata: { name: "jwt-required", namespace: "shop" },
    spec: {
      targetRefs: [{ kind: "Service", group: "", name: "reviews" }],
      rules: [{
        from: [{ source: { requestPrincipals: [`${ISS}/*`] } }],
        when: [{ key: "request.auth.claims[groups]", values: ["admin"] }],
      }],
    },
  }));
  const p = compileL7Policy(policy);
  const jwt = new JwtAuthenticator({ clock });
  const decide = async (req: JwtRequest) => {
    const r = await jwt.authenticate(INLINE, req);
    assertOk(r.ok);
    return evaluateL7([p], {
      sourceIp: "10.1.0.5",
      remoteIp: "10.1.0.5",
      method: "GET",
      host: "reviews",
      path: req.path,
      port: 9080,
      headers: req.headers,
      auth: r.auth,
    }).allow;
  };
  assertEquals(await decide(bearer(await token({ claims: { groups: ["admin"] } }))), true);
  assertEquals(await decide(bearer(await token({ claims: { groups: ["dev"] } }))), false);
  assertEquals(await decide({ path: "/", headers: [] }), false, "no token: no request principal");
});
