import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import { compileSourcesSync } from "../config/compile.ts";
import type { Resource } from "../config/kind.ts";
import type { Snapshot } from "../config/snapshot.ts";
import {
  compileL7Policy,
  evaluateL7,
  type L7Decision,
  L7PolicyCache,
  type L7Request,
  normalizePath,
  policiesForService,
} from "./l7_authz.ts";
import { allow, ap, audit, cond, deny, from, type Obj, raw, to, when } from "./_testing.ts";

// ---------------------------------------------------------------------------
// Fixtures

/** shop/web calling reviews with a verified JWT. */
const REQ: L7Request = {
  sourcePrincipal: "cluster.local/ns/shop/sa/web",
  sourceIp: "10.1.0.5",
  remoteIp: "203.0.113.9",
  method: "GET",
  host: "Reviews.Shop.svc.cluster.local:9080",
  path: "/api/v1/items?id=3",
  port: 9080,
  headers: [
    ["X-User", "alice"],
    ["x-multi", "a"],
    ["X-Multi", "b"],
    ["x-empty", ""],
  ],
  auth: {
    principal: "https://auth.example.com/alice",
    audiences: ["reviews", "web"],
    presenter: "spa",
    claims: {
      iss: "https://auth.example.com",
      sub: "alice",
      aud: ["reviews", "web"],
      azp: "spa",
      groups: ["admin", "dev"],
      scope: "read write",
      org: { team: "blue", tags: ["x", "y"] },
      level: 3,
      admin: true,
    },
  },
  destinationIp: "10.2.0.7",
  sni: "outbound_.9080_._.reviews.shop.svc.cluster.local",
};
const as = (o: Partial<L7Request>): L7Request => ({ ...REQ, ...o });
/** No mTLS identity, no JWT. */
const ANON = as({ sourcePrincipal: undefined, auth: undefined });

const allowedBy = (p: string): L7Decision => ({
  allow: true,
  policy: p,
  reason: `ALLOW policy ${p} matched`,
});
const deniedBy = (p: string): L7Decision => ({
  allow: false,
  policy: p,
  reason: `DENY policy ${p} matched`,
  status: 403,
  body: "RBAC: access denied",
});
const NO_ALLOW: L7Decision = { allow: true, reason: "no ALLOW policy applies" };
const noneMatched = (...ps: string[]): L7Decision => ({
  allow: false,
  policy: ps.join(","),
  reason: `no ALLOW policy matched (${ps.join(", ")})`,
  status: 403,
  body: "RBAC: access denied",
});

interface Row {
  name: string;
  policies: Resource[];
  req: L7Request;
  want: L7Decision;
}

/** Runs every row and reports all mismatches at once. */
function runTable(rows: Row[]): void {
  const failures: string[] = [];
  for (const r of rows) {
    const got = evaluateL7(r.policies.map(compileL7Policy), r.req);
    if (JSON.stringify(got) !== JSON.stringify(r.want)) {
      failures.push(
        `${r.name}:\n    got  ${JSON.stringify(got)}\n    want ${JSON.stringify(r.want)}`,
      );
    }
  }
  assertEquals(failures, [], `${failures.length} of ${rows.length} rows failed`);
}

/**
 * A match row: one ALLOW policy with `rule`; `matches` says whether the
 * request should be allowed by it (else no ALLOW matched). Each row also runs
 * as a DENY policy, which must deny exactly when the ALLOW allows.
 */
function m(name: string, rule: Obj, req: L7Request, matches: boolean): Row[] {
  return [
    {
      name: `ALLOW ${name}`,
      policies: [ap("p", allow(rule))],
      req,
      want: matches ? allowedBy("shop/p") : noneMatched("shop/p"),
    },
    {
      name: `DENY ${name}`,
      policies: [ap("p", deny(rule))],
      req,
      want: matches ? deniedBy("shop/p") : NO_ALLOW,
    },
  ];
}

// ---------------------------------------------------------------------------
// Decision order and empty policies

const ORDER: Row[] = [
  { name: "no policy allows", policies: [], req: REQ, want: NO_ALLOW },
  {
    name: "spec: {} ALLOW allows nothing",
    policies: [ap("none", {})],
    req: REQ,
    want: noneMatched("shop/none"),
  },
  {
    name: "rules: [{}] allows everything",
    policies: [ap("all", allow({}))],
    req: ANON,
    want: allowedBy("shop/all"),
  },
  {
    name: "DENY rules: [{}] denies everything",
    policies: [ap("all", deny({}))],
    req: ANON,
    want: deniedBy("shop/all"),
  },
  {
    name: "DENY with no rules denies nothing",
    policies: [ap("d", { action: "DENY" })],
    req: REQ,
    want: NO_ALLOW,
  },
  {
    name: "DENY beats a matching ALLOW",
    policies: [ap("a", allow({})), ap("d", deny(to({ methods: ["GET"] })))],
    req: REQ,
    want: deniedBy("shop/d"),
  },
  {
    name: "a non-matching DENY lets ALLOW decide",
    policies: [ap("a", allow({})), ap("d", deny(to({ methods: ["POST"] })))],
    req: REQ,
    want: allowedBy("shop/a"),
  },
  {
    name: "a non-matching DENY alone allows",
    policies: [ap("d", deny(to({ methods: ["POST"] })))],
    req: REQ,
    want: NO_ALLOW,
  },
  {
    name: "any of several ALLOW policies allows",
    policies: [ap("a1", allow(to({ paths: ["/nope"] }))), ap("a2", allow(to({ ports: ["9080"] })))],
    req: REQ,
    want: allowedBy("shop/a2"),
  },
  {
    name: "ALLOW policies exist and none matches: deny, naming them all",
    policies: [ap("a1", allow(to({ paths: ["/nope"] }))), ap("a2", allow(to({ ports: ["1"] })))],
    req: REQ,
    want: noneMatched("shop/a1", "shop/a2"),
  },
  {
    name: "AUDIT alone never denies, and is reported",
    policies: [ap("au", audit({}))],
    req: REQ,
    want: { ...NO_ALLOW, audit: ["shop/au"] },
  },
  {
    name: "AUDIT does not count as an ALLOW policy",
    policies: [ap("au", audit(to({ methods: ["POST"] })))],
    req: REQ,
    want: NO_ALLOW,
  },
  {
    name: "AUDIT never changes a deny",
    policies: [ap("au", audit({})), ap("d", deny({}))],
    req: REQ,
    want: { ...deniedBy("shop/d"), audit: ["shop/au"] },
  },
  {
    name: "AUDIT never changes an allow",
    policies: [ap("au", audit({})), ap("a", allow({}))],
    req: REQ,
    want: { ...allowedBy("shop/a"), audit: ["shop/au"] },
  },
  {
    name: "CUSTOM that matches denies before DENY and ALLOW",
    policies: [ap("a", allow({})), ap("d", deny({})), raw("c", { action: "CUSTOM", rules: [{}] })],
    req: REQ,
    want: {
      allow: false,
      policy: "shop/c",
      reason:
        "CUSTOM policy shop/c matched; ambit's waypoint cannot consult an external authorizer, so it denies",
      status: 403,
      body: "RBAC: access denied",
    },
  },
  {
    name: "CUSTOM that does not match is ignored",
    policies: [raw("c", { action: "CUSTOM", rules: [to({ paths: ["/admin*"] })] })],
    req: REQ,
    want: NO_ALLOW,
  },
  {
    name: "dry-run DENY is not enforced but reported",
    policies: [ap("d", deny({}), { annotations: { "istio.io/dry-run": "true" } })],
    req: REQ,
    want: { ...NO_ALLOW, dryRun: "would deny: DENY policy shop/d matched" },
  },
  {
    name: "dry-run ALLOW that would deny is reported",
    policies: [ap("a", allow(to({ paths: ["/x"] })), { annotations: { "istio.io/dry-run": "1" } })],
    req: REQ,
    want: { ...NO_ALLOW, dryRun: "would deny: no ALLOW policy matched (shop/a)" },
  },
  {
    name: "dry-run ALLOW that would allow the same says nothing",
    policies: [ap("a", allow({}), { annotations: { "istio.io/dry-run": "true" } })],
    req: REQ,
    want: NO_ALLOW,
  },
  {
    name: "dry-run ALLOW that would allow a denied request is reported",
    policies: [
      ap("a", allow(to({ paths: ["/x"] }))),
      ap("dr", allow({}), { annotations: { "istio.io/dry-run": "true" } }),
    ],
    req: REQ,
    want: { ...noneMatched("shop/a"), dryRun: "would allow: ALLOW policy shop/dr matched" },
  },
  {
    name: "dry-run annotation false is enforced",
    policies: [ap("d", deny({}), { annotations: { "istio.io/dry-run": "false" } })],
    req: REQ,
    want: deniedBy("shop/d"),
  },
];

// ---------------------------------------------------------------------------
// Source fields

const SOURCE: Row[] = [
  ...m("principals exact", from({ principals: ["cluster.local/ns/shop/sa/web"] }), REQ, true),
  ...m("principals other", from({ principals: ["cluster.local/ns/shop/sa/api"] }), REQ, false),
  ...m("principals prefix*", from({ principals: ["cluster.local/ns/shop/*"] }), REQ, true),
  ...m("principals *suffix", from({ principals: ["*/sa/web"] }), REQ, true),
  ...m("principals * needs an identity", from({ principals: ["*"] }), ANON, false),
  ...m("principals * with identity", from({ principals: ["*"] }), REQ, true),
  ...m(
    "principals with spiffe:// prefix in the request",
    from({ principals: ["cluster.local/ns/shop/sa/web"] }),
    as({ sourcePrincipal: "spiffe://cluster.local/ns/shop/sa/web" }),
    true,
  ),
  ...m("principals any of several", from({ principals: ["x", "*/sa/web"] }), REQ, true),
  ...m("notPrincipals excludes", from({ notPrincipals: ["*/sa/web"] }), REQ, false),
  ...m("notPrincipals other", from({ notPrincipals: ["*/sa/api"] }), REQ, true),
  ...m("notPrincipals * matches plaintext", from({ notPrincipals: ["*"] }), ANON, true),
  ...m(
    "requestPrincipals exact",
    from({ requestPrincipals: ["https://auth.example.com/alice"] }),
    REQ,
    true,
  ),
  ...m(
    "requestPrincipals other sub",
    from({ requestPrincipals: ["https://auth.example.com/bob"] }),
    REQ,
    false,
  ),
  ...m("requestPrincipals * needs a JWT", from({ requestPrincipals: ["*"] }), ANON, false),
  ...m("requestPrincipals * with JWT", from({ requestPrincipals: ["*"] }), REQ, true),
  ...m(
    "requestPrincipals iss/*",
    from({ requestPrincipals: ["https://auth.example.com/*"] }),
    REQ,
    true,
  ),
  ...m(
    "requestPrincipals other iss/*",
    from({ requestPrincipals: ["https://other/*"] }),
    REQ,
    false,
  ),
  ...m(
    "requestPrincipals iss/prefix*",
    from({ requestPrincipals: ["https://auth.example.com/al*"] }),
    REQ,
    true,
  ),
  ...m("requestPrincipals */sub", from({ requestPrincipals: ["*/alice"] }), REQ, true),
  ...m(
    "requestPrincipals *suffix/sub",
    from({ requestPrincipals: ["*.example.com/alice"] }),
    REQ,
    true,
  ),
  ...m(
    "requestPrincipals prefix* (no slash after)",
    from({ requestPrincipals: ["https:*"] }),
    REQ,
    true,
  ),
  ...m("notRequestPrincipals * matches no JWT", from({ notRequestPrincipals: ["*"] }), ANON, true),
  ...m("notRequestPrincipals * with JWT", from({ notRequestPrincipals: ["*"] }), REQ, false),
  ...m("notRequestPrincipals other", from({ notRequestPrincipals: ["x/y"] }), REQ, true),
  ...m("namespaces", from({ namespaces: ["shop"] }), REQ, true),
  ...m("namespaces other", from({ namespaces: ["payments"] }), REQ, false),
  ...m("namespaces prefix*", from({ namespaces: ["sh*"] }), REQ, true),
  ...m(
    "namespaces from sourceNamespace",
    from({ namespaces: ["ops"] }),
    as({ sourcePrincipal: undefined, sourceNamespace: "ops" }),
    true,
  ),
  ...m("namespaces without identity", from({ namespaces: ["shop"] }), ANON, false),
  ...m("notNamespaces", from({ notNamespaces: ["shop"] }), REQ, false),
  ...m("notNamespaces other", from({ notNamespaces: ["payments"] }), REQ, true),
  ...m("serviceAccounts ns/name", from({ serviceAccounts: ["shop/web"] }), REQ, true),
  ...m(
    "serviceAccounts bare name is the policy's namespace",
    from({ serviceAccounts: ["web"] }),
    REQ,
    true,
  ),
  ...m("serviceAccounts other", from({ serviceAccounts: ["payments/web"] }), REQ, false),
  ...m("notServiceAccounts", from({ notServiceAccounts: ["shop/web"] }), REQ, false),
  ...m("ipBlocks CIDR", from({ ipBlocks: ["10.1.0.0/16"] }), REQ, true),
  ...m("ipBlocks single address", from({ ipBlocks: ["10.1.0.5"] }), REQ, true),
  ...m("ipBlocks other", from({ ipBlocks: ["10.9.0.0/16"] }), REQ, false),
  ...m(
    "ipBlocks IPv4-mapped IPv6 peer",
    from({ ipBlocks: ["10.1.0.0/16"] }),
    as({ sourceIp: "::ffff:10.1.0.5" }),
    true,
  ),
  ...m("ipBlocks do not look at remoteIp", from({ ipBlocks: ["203.0.113.0/24"] }), REQ, false),
  ...m("notIpBlocks", from({ notIpBlocks: ["10.1.0.0/16"] }), REQ, false),
  ...m("remoteIpBlocks", from({ remoteIpBlocks: ["203.0.113.0/24"] }), REQ, true),
  ...m("remoteIpBlocks other", from({ remoteIpBlocks: ["10.1.0.0/16"] }), REQ, false),
  ...m(
    "remoteIpBlocks IPv6",
    from({ remoteIpBlocks: ["2001:db8::/32"] }),
    as({ remoteIp: "2001:db8::1" }),
    true,
  ),
  ...m("notRemoteIpBlocks", from({ notRemoteIpBlocks: ["203.0.113.0/24"] }), REQ, false),
  ...m("notRemoteIpBlocks other", from({ notRemoteIpBlocks: ["198.51.100.0/24"] }), REQ, true),
  ...m(
    "fields in one source AND",
    from({ namespaces: ["shop"], ipBlocks: ["10.9.0.0/16"] }),
    REQ,
    false,
  ),
  ...m("from entries OR", from({ namespaces: ["x"] }, { ipBlocks: ["10.1.0.0/16"] }), REQ, true),
  ...m(
    "value and not-value together",
    from({ principals: ["*"], notPrincipals: ["*/sa/web"] }),
    REQ,
    false,
  ),
];

// ---------------------------------------------------------------------------
// Operation fields

const OPERATION: Row[] = [
  ...m(
    "hosts exact, case-insensitive, port stripped",
    to({ hosts: ["reviews.shop.svc.cluster.local"] }),
    REQ,
    true,
  ),
  ...m("hosts pattern upper case", to({ hosts: ["REVIEWS.shop.svc.cluster.local"] }), REQ, true),
  ...m("hosts other", to({ hosts: ["ratings.shop.svc.cluster.local"] }), REQ, false),
  ...m("hosts prefix*", to({ hosts: ["reviews.*"] }), REQ, true),
  ...m("hosts *suffix", to({ hosts: ["*.svc.cluster.local"] }), REQ, true),
  ...m("hosts *", to({ hosts: ["*"] }), REQ, true),
  ...m(
    "hosts without port in the request",
    to({ hosts: ["reviews"] }),
    as({ host: "reviews" }),
    true,
  ),
  ...m(
    "hosts IPv6 literal with port",
    to({ hosts: ["[2001:db8::1]"] }),
    as({ host: "[2001:db8::1]:80" }),
    true,
  ),
  ...m("notHosts", to({ notHosts: ["*.cluster.local"] }), REQ, false),
  ...m("notHosts other", to({ notHosts: ["example.com"] }), REQ, true),
  ...m("ports", to({ ports: ["9080"] }), REQ, true),
  ...m("ports other", to({ ports: ["8080"] }), REQ, false),
  ...m("notPorts", to({ notPorts: ["9080"] }), REQ, false),
  ...m("notPorts other", to({ notPorts: ["80"] }), REQ, true),
  ...m("methods", to({ methods: ["GET", "HEAD"] }), REQ, true),
  ...m("methods other", to({ methods: ["POST"] }), REQ, false),
  ...m("methods are case-sensitive", to({ methods: ["get"] }), REQ, false),
  ...m("methods *", to({ methods: ["*"] }), REQ, true),
  ...m("notMethods", to({ notMethods: ["GET"] }), REQ, false),
  ...m("notMethods other", to({ notMethods: ["DELETE"] }), REQ, true),
  ...m("paths exact ignores the query", to({ paths: ["/api/v1/items"] }), REQ, true),
  ...m("paths exact other", to({ paths: ["/api/v1"] }), REQ, false),
  ...m("paths prefix*", to({ paths: ["/api/*"] }), REQ, true),
  ...m("paths prefix* other", to({ paths: ["/admin/*"] }), REQ, false),
  ...m("paths *suffix", to({ paths: ["*/items"] }), REQ, true),
  ...m("paths *", to({ paths: ["*"] }), REQ, true),
  ...m("paths are case-sensitive", to({ paths: ["/API/v1/items"] }), REQ, false),
  ...m(
    "paths after dot segments",
    to({ paths: ["/admin"] }),
    as({ path: "/public/../admin" }),
    true,
  ),
  ...m(
    "paths after encoded dot segments",
    to({ paths: ["/admin"] }),
    as({ path: "/public/%2e%2E/admin" }),
    true,
  ),
  ...m(
    "paths after decoding unreserved",
    to({ paths: ["/admin"] }),
    as({ path: "/%61dmin" }),
    true,
  ),
  ...m("paths keep %2F encoded", to({ paths: ["/a/b"] }), as({ path: "/a%2Fb" }), false),
  ...m("paths turn backslashes into slashes", to({ paths: ["/a/b"] }), as({ path: "/a\\b" }), true),
  ...m("paths do not merge slashes", to({ paths: ["/a/b"] }), as({ path: "/a//b" }), false),
  ...m("paths strip a fragment", to({ paths: ["/a"] }), as({ path: "/a#frag" }), true),
  ...m("paths template {*}", to({ paths: ["/api/{*}/items"] }), REQ, true),
  ...m("paths template {*} is one segment", to({ paths: ["/{*}/items"] }), REQ, false),
  ...m("paths template {**}", to({ paths: ["/api/{**}"] }), REQ, true),
  ...m("notPaths", to({ notPaths: ["/api/*"] }), REQ, false),
  ...m("notPaths other", to({ notPaths: ["/admin*"] }), REQ, true),
  ...m("fields in one operation AND", to({ methods: ["GET"], paths: ["/admin"] }), REQ, false),
  ...m("to entries OR", to({ methods: ["POST"] }, { paths: ["/api/*"] }), REQ, true),
  ...m(
    "from AND to",
    { ...from({ namespaces: ["shop"] }), ...to({ methods: ["POST"] }) },
    REQ,
    false,
  ),
];

// ---------------------------------------------------------------------------
// when conditions

const WHEN: Row[] = [
  ...m("request.headers exact", when(cond("request.headers[x-user]", ["alice"])), REQ, true),
  ...m(
    "request.headers name case-insensitive",
    when(cond("request.headers[X-USER]", ["alice"])),
    REQ,
    true,
  ),
  ...m(
    "request.headers value case-sensitive",
    when(cond("request.headers[x-user]", ["Alice"])),
    REQ,
    false,
  ),
  ...m("request.headers prefix*", when(cond("request.headers[x-user]", ["ali*"])), REQ, true),
  ...m("request.headers *suffix", when(cond("request.headers[x-user]", ["*ice"])), REQ, true),
  ...m("request.headers * is presence", when(cond("request.headers[x-user]", ["*"])), REQ, true),
  ...m(
    "request.headers * matches an empty value",
    when(cond("request.headers[x-empty]", ["*"])),
    REQ,
    true,
  ),
  ...m("request.headers * absent", when(cond("request.headers[x-none]", ["*"])), REQ, false),
  ...m(
    "request.headers repeated are joined by commas",
    when(cond("request.headers[x-multi]", ["a,b"])),
    REQ,
    true,
  ),
  ...m(
    "request.headers notValues",
    when(cond("request.headers[x-user]", undefined, ["alice"])),
    REQ,
    false,
  ),
  ...m(
    "request.headers notValues of an absent header",
    when(cond("request.headers[x-none]", undefined, ["*"])),
    REQ,
    true,
  ),
  ...m("source.ip", when(cond("source.ip", ["10.1.0.0/24"])), REQ, true),
  ...m("source.ip other", when(cond("source.ip", ["10.2.0.0/24"])), REQ, false),
  ...m("source.ip notValues", when(cond("source.ip", undefined, ["10.1.0.5"])), REQ, false),
  ...m("remote.ip", when(cond("remote.ip", ["203.0.113.9"])), REQ, true),
  ...m("remote.ip other", when(cond("remote.ip", ["10.1.0.5"])), REQ, false),
  ...m("source.namespace", when(cond("source.namespace", ["shop"])), REQ, true),
  ...m(
    "source.namespace notValues",
    when(cond("source.namespace", undefined, ["shop"])),
    REQ,
    false,
  ),
  ...m(
    "source.principal",
    when(cond("source.principal", ["cluster.local/ns/shop/sa/web"])),
    REQ,
    true,
  ),
  ...m("source.principal *", when(cond("source.principal", ["*"])), ANON, false),
  ...m("source.serviceAccount", when(cond("source.serviceAccount", ["shop/web"])), REQ, true),
  ...m(
    "request.auth.principal",
    when(cond("request.auth.principal", ["https://auth.example.com/alice"])),
    REQ,
    true,
  ),
  ...m(
    "request.auth.principal other",
    when(cond("request.auth.principal", ["https://auth.example.com/bob"])),
    REQ,
    false,
  ),
  ...m(
    "request.auth.principal without JWT",
    when(cond("request.auth.principal", ["*"])),
    ANON,
    false,
  ),
  ...m(
    "request.auth.audiences any of a list",
    when(cond("request.auth.audiences", ["web"])),
    REQ,
    true,
  ),
  ...m(
    "request.auth.audiences other",
    when(cond("request.auth.audiences", ["billing"])),
    REQ,
    false,
  ),
  ...m(
    "request.auth.audiences notValues",
    when(cond("request.auth.audiences", undefined, ["reviews"])),
    REQ,
    false,
  ),
  ...m("request.auth.presenter", when(cond("request.auth.presenter", ["spa"])), REQ, true),
  ...m("request.auth.presenter other", when(cond("request.auth.presenter", ["cli"])), REQ, false),
  ...m("request.auth.claims string", when(cond("request.auth.claims[sub]", ["alice"])), REQ, true),
  ...m(
    "request.auth.claims list element",
    when(cond("request.auth.claims[groups]", ["dev"])),
    REQ,
    true,
  ),
  ...m(
    "request.auth.claims list other",
    when(cond("request.auth.claims[groups]", ["ops"])),
    REQ,
    false,
  ),
  ...m(
    "request.auth.claims prefix*",
    when(cond("request.auth.claims[groups]", ["adm*"])),
    REQ,
    true,
  ),
  ...m(
    "request.auth.claims scope is space-delimited",
    when(cond("request.auth.claims[scope]", ["write"])),
    REQ,
    true,
  ),
  ...m(
    "request.auth.claims nested",
    when(cond("request.auth.claims[org][team]", ["blue"])),
    REQ,
    true,
  ),
  ...m(
    "request.auth.claims nested list",
    when(cond("request.auth.claims[org][tags]", ["y"])),
    REQ,
    true,
  ),
  ...m(
    "request.auth.claims nested missing",
    when(cond("request.auth.claims[org][x]", ["*"])),
    REQ,
    false,
  ),
  ...m(
    "request.auth.claims number never matches",
    when(cond("request.auth.claims[level]", ["3"])),
    REQ,
    false,
  ),
  ...m(
    "request.auth.claims boolean never matches",
    when(cond("request.auth.claims[admin]", ["true"])),
    REQ,
    false,
  ),
  ...m(
    "request.auth.claims without JWT",
    when(cond("request.auth.claims[sub]", ["*"])),
    ANON,
    false,
  ),
  ...m(
    "request.auth.claims notValues without JWT",
    when(cond("request.auth.claims[sub]", undefined, ["*"])),
    ANON,
    true,
  ),
  ...m("destination.ip", when(cond("destination.ip", ["10.2.0.0/16"])), REQ, true),
  ...m(
    "destination.ip unknown",
    when(cond("destination.ip", ["10.2.0.0/16"])),
    as({ destinationIp: undefined }),
    false,
  ),
  ...m("destination.port", when(cond("destination.port", ["9080"])), REQ, true),
  ...m("destination.port other", when(cond("destination.port", ["80"])), REQ, false),
  ...m(
    "connection.sni",
    when(cond("connection.sni", ["*.reviews.shop.svc.cluster.local"])),
    REQ,
    true,
  ),
  ...m("connection.sni other", when(cond("connection.sni", ["example.com"])), REQ, false),
  ...m(
    "when conditions AND",
    when(cond("source.namespace", ["shop"]), cond("destination.port", ["80"])),
    REQ,
    false,
  ),
  ...m("when values OR", when(cond("destination.port", ["80", "9080"])), REQ, true),
  ...m(
    "when values and notValues AND",
    when(cond("request.headers[x-user]", ["*"], ["alice"])),
    REQ,
    false,
  ),
];

// ---------------------------------------------------------------------------
// Unusable values: ALLOW allows less, DENY denies more

const UNUSABLE: Row[] = [
  {
    name: "ALLOW with an Envoy metadata key drops the rule",
    policies: [raw("a", allow(when(cond("experimental.envoy.filters.network.foo[bar]", ["x"]))))],
    req: REQ,
    want: noneMatched("shop/a"),
  },
  {
    name: "DENY with an Envoy metadata key drops the condition (denies more)",
    policies: [raw(
      "d",
      deny({
        ...to({ methods: ["GET"] }),
        ...when(cond("experimental.envoy.filters.network.foo[bar]", ["x"])),
      }),
    )],
    req: REQ,
    want: deniedBy("shop/d"),
  },
  {
    name: "ALLOW with an unknown key drops the rule, other rules still allow",
    policies: [raw("a", allow(when(cond("request.bogus", ["x"])), to({ methods: ["GET"] })))],
    req: REQ,
    want: allowedBy("shop/a"),
  },
  {
    name: "ALLOW with a bad CIDR drops the rule",
    policies: [raw("a", allow(from({ ipBlocks: ["10.1.0.0/99", "10.1.0.5"] })))],
    req: REQ,
    want: noneMatched("shop/a"),
  },
  {
    name: "DENY with a bad CIDR leaves the value out",
    policies: [raw("d", deny(from({ ipBlocks: ["nope", "10.1.0.5"] })))],
    req: REQ,
    want: deniedBy("shop/d"),
  },
  {
    name: "DENY whose only value is bad drops the field (denies more)",
    policies: [raw("d", deny(from({ ipBlocks: ["nope"] })))],
    req: REQ,
    want: deniedBy("shop/d"),
  },
  {
    name: "ALLOW with a bad port drops the rule",
    policies: [raw("a", allow(to({ ports: ["http"] })))],
    req: REQ,
    want: noneMatched("shop/a"),
  },
];

// ---------------------------------------------------------------------------
// Requests refused before authorization

const REFUSED: Row[] = [
  {
    name: "%00 in the path is 400",
    policies: [ap("a", allow({}))],
    req: as({ path: "/a%00b" }),
    want: {
      allow: false,
      reason: `path "/a%00b" is refused by Istio's path normalization`,
      status: 400,
      body: "Bad Request",
    },
  },
  {
    name: "a relative path is 400",
    policies: [],
    req: as({ path: "a/b" }),
    want: {
      allow: false,
      reason: `path "a/b" is refused by Istio's path normalization`,
      status: 400,
      body: "Bad Request",
    },
  },
  {
    name: "a lower-case method is 400",
    policies: [],
    req: as({ method: "get" }),
    want: {
      allow: false,
      reason: `method "get" is not upper case`,
      status: 400,
      body: "Bad Request",
    },
  },
];

Deno.test("evaluateL7() orders CUSTOM, DENY, ALLOW, AUDIT and dry-run as Istio", () => {
  runTable(ORDER);
});

Deno.test("evaluateL7() matches every source field and its not* form", () => {
  runTable(SOURCE);
});

Deno.test("evaluateL7() matches hosts, ports, methods and normalized paths with their not* forms", () => {
  runTable(OPERATION);
});

Deno.test("evaluateL7() matches every when key with values and notValues", () => {
  runTable(WHEN);
});

Deno.test("evaluateL7() drops unusable ALLOW rules and widens DENY rules, as istiod", () => {
  runTable(UNUSABLE);
});

Deno.test("evaluateL7() refuses what Istio's normalization refuses with 400", () => {
  runTable(REFUSED);
});

Deno.test("normalizePath() follows Istio's BASE normalization", () => {
  const table: [string, string | undefined][] = [
    ["/", "/"],
    ["/a/b", "/a/b"],
    ["/a/b?x=1", "/a/b"],
    ["/a/b#f", "/a/b"],
    ["/a/./b", "/a/b"],
    ["/a/../b", "/b"],
    ["/../../b", "/b"],
    ["/a/b/..", "/a/"],
    ["/a/b/.", "/a/b/"],
    ["/public/./data/abc/../xyz", "/public/data/xyz"],
    ["/some%2fdata/%61%62%63", "/some%2fdata/abc"],
    ["/%2D%2e%5F%7e%30%41%7A", "/-._~0Az"],
    ["/a%2e%2e/b", "/a../b"],
    ["/a/%2e%2e/b", "/b"],
    ["/a%20b", "/a%20b"],
    ["/some\\data", "/some/data"],
    ["\\a", "/a"],
    ["/a//b", "/a//b"],
    ["*", "*"],
    ["/a%00", undefined],
    ["a", undefined],
    ["", undefined],
  ];
  for (const [input, want] of table) assertEquals(normalizePath(input), want, input);
});

Deno.test("compileL7Policy() warns about what it cannot enforce as written", () => {
  const w = (r: Resource) => compileL7Policy(r).warnings;
  assertEquals(w(raw("c", { action: "CUSTOM", rules: [{}] })), [
    "AuthorizationPolicy shop/c: action CUSTOM needs an external authorizer, which ambit's waypoint cannot consult; requests matching its rules are denied.",
  ]);
  assertEquals(w(raw("a", allow(when(cond("experimental.envoy.filters.network.x[y]", ["v"]))))), [
    `AuthorizationPolicy shop/a rule 0: when key "experimental.envoy.filters.network.x[y]" reads Envoy metadata, which ambit's waypoint does not have; the ALLOW rule is ignored, which may deny traffic.`,
    "AuthorizationPolicy shop/a: every rule was ignored, so it allows nothing (requests are denied unless another ALLOW policy matches).",
  ]);
  assertEquals(w(raw("d", deny(from({ remoteIpBlocks: ["x"] })))), [
    `AuthorizationPolicy shop/d rule 0: remoteIpBlocks "x" is not an IP address or CIDR block; it is left out of the DENY rule, which then matches more.`,
  ]);
  assertEquals(w(ap("h", allow(to({ hosts: ["web:8080"] })))), [
    `AuthorizationPolicy shop/h rule 0: hosts "web:8080" has a port; request hosts are compared without their port, so it never matches.`,
  ]);
  assertEquals(w(ap("ok", allow(to({ methods: ["GET"], paths: ["/a*"] })))), []);
});

// ---------------------------------------------------------------------------
// Selection by targetRefs

const MESH: Obj[] = [
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
    kind: "Namespace",
    metadata: { name: "payments", labels: { "istio.io/dataplane-mode": "ambient" } },
  },
  {
    apiVersion: "networking.istio.io/v1",
    kind: "WorkloadEntry",
    metadata: { name: "reviews", namespace: "shop", labels: { app: "reviews" } },
    spec: { address: "10.0.0.1", serviceAccount: "reviews", ports: { http: 9080 } },
  },
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "reviews", namespace: "shop" },
    spec: { selector: { app: "reviews" }, ports: [{ port: 9080 }] },
  },
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "direct", namespace: "shop", labels: { "istio.io/use-waypoint": "none" } },
    spec: { selector: { app: "reviews" }, ports: [{ port: 9081 }] },
  },
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "ledger", namespace: "payments" },
    spec: { ports: [{ port: 80 }] },
  },
  {
    apiVersion: "networking.istio.io/v1",
    kind: "ServiceEntry",
    metadata: { name: "ext", namespace: "shop" },
    spec: { hosts: ["api.example.com"], ports: [{ number: 443, name: "https", protocol: "TLS" }] },
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
  {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "Gateway",
    metadata: { name: "other", namespace: "shop", annotations: { "ambit.io/node": "node-a" } },
    spec: {
      gatewayClassName: "istio-waypoint",
      listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }],
    },
  },
];

function snapshotWith(policies: Obj[]): Snapshot {
  const text = [...MESH, ...policies].map((d) => JSON.stringify(d)).join("\n---\n");
  const { snapshot, issues } = compileSourcesSync([{ file: "mesh.yaml", text }]);
  const errors = issues.filter((i) => i.severity !== "warning");
  assertEquals(errors, []);
  assertOk(snapshot);
  return snapshot;
}

const policyDoc = (name: string, namespace: string, spec: Obj): Obj => ({
  apiVersion: "security.istio.io/v1",
  kind: "AuthorizationPolicy",
  metadata: { name, namespace },
  spec,
});
const svcRef = (name: string) => ({ kind: "Service", group: "", name });
const gwRef = (name: string) => ({ kind: "Gateway", group: "gateway.networking.k8s.io", name });
const seRef = (name: string) => ({ kind: "ServiceEntry", group: "networking.istio.io", name });

Deno.test("policiesForService() selects by targetRefs: the waypoint's Gateway, then the bound service", () => {
  const s = snapshotWith([
    policyDoc("ns-wide", "shop", { rules: [{}] }),
    policyDoc("selector", "shop", { selector: { matchLabels: { app: "reviews" } } }),
    policyDoc("to-reviews", "shop", { targetRefs: [svcRef("reviews")] }),
    policyDoc("to-wp", "shop", { targetRef: gwRef("wp") }),
    policyDoc("to-other-wp", "shop", { targetRefs: [gwRef("other")] }),
    policyDoc("to-both", "shop", { targetRefs: [svcRef("reviews"), gwRef("wp")] }),
    policyDoc("to-direct", "shop", { targetRefs: [svcRef("direct")] }),
    policyDoc("to-ext", "shop", { targetRefs: [seRef("ext")] }),
    policyDoc("to-ledger", "payments", { targetRefs: [svcRef("ledger")] }),
  ]);
  const names = (svc: string, wp: string) =>
    policiesForService(s, svc, wp).map((r) => r.metadata.name);
  assertEquals(names("shop/reviews", "shop/wp"), ["to-wp", "to-both", "to-reviews"]);
  assertEquals(names("Service/shop/reviews", "shop/wp"), ["to-wp", "to-both", "to-reviews"]);
  assertEquals(
    names("shop/reviews", "shop/other"),
    ["to-other-wp"],
    "a service's policies apply only at the waypoint it is bound to",
  );
  assertEquals(names("shop/direct", "shop/wp"), ["to-wp", "to-both"], "use-waypoint: none");
  assertEquals(names("shop/ext", "shop/wp"), ["to-wp", "to-both", "to-ext"], "ServiceEntry");
  assertEquals(names("ServiceEntry/shop/ext", "shop/wp"), ["to-wp", "to-both", "to-ext"]);
  assertEquals(names("payments/ledger", "shop/wp"), ["to-wp", "to-both"], "not bound");
  let thrown: unknown;
  try {
    policiesForService(s, "reviews", "shop/wp");
  } catch (e) {
    thrown = e;
  }
  assertOk(thrown instanceof TypeError && thrown.message.includes(`"reviews"`));
});

Deno.test("L7PolicyCache compiles once per snapshot and evaluates a waypoint's policies", () => {
  const s = snapshotWith([
    policyDoc("gets", "shop", {
      targetRefs: [svcRef("reviews")],
      rules: [{ to: [{ operation: { methods: ["GET"], paths: ["/api/*"] } }] }],
    }),
    policyDoc("no-admin", "shop", {
      targetRef: gwRef("wp"),
      action: "DENY",
      rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }],
    }),
    policyDoc("ztunnel-only", "shop", { rules: [{ to: [{ operation: { hosts: ["a:1"] } }] }] }),
    policyDoc("hosts-port", "shop", {
      targetRefs: [svcRef("reviews")],
      rules: [{ to: [{ operation: { hosts: ["reviews:9080"] } }] }],
    }),
  ]);
  const cache = new L7PolicyCache(s);
  const list = cache.forService("shop/reviews", "shop/wp");
  assertOk(list === cache.forService("shop/reviews", "shop/wp"), "cached per service and waypoint");
  assertEquals(list.map((p) => p.key), ["shop/no-admin", "shop/gets", "shop/hosts-port"]);
  assertEquals(evaluateL7(list, REQ), allowedBy("shop/gets"));
  assertEquals(evaluateL7(list, as({ path: "/api/../admin/x" })), deniedBy("shop/no-admin"));
  assertEquals(
    evaluateL7(list, as({ method: "POST" })),
    noneMatched("shop/gets", "shop/hosts-port"),
  );
  assertEquals(cache.warnings(), [
    `AuthorizationPolicy shop/hosts-port rule 0: hosts "reviews:9080" has a port; request hosts are compared without their port, so it never matches.`,
  ]);
});
