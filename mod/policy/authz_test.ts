import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import { compileSourcesSync } from "../config/compile.ts";
import type { Resource } from "../config/kind.ts";
import type { Snapshot } from "../config/snapshot.ts";
import {
  appliesTo,
  compileL4Policy,
  evaluateL4,
  type L4Connection,
  type L4Decision,
  L4PolicyCache,
  policiesForWorkload,
  stringMatch,
} from "./authz.ts";
import { allow, ap, cond, deny, from, type Obj, raw, to, when } from "./_testing.ts";

// ---------------------------------------------------------------------------
// Fixtures

const id = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
/** shop/web over mTLS from 10.1.0.5 to 10.2.0.7:8080. */
const WEB: L4Connection = {
  sourceIdentity: id("shop", "web"),
  sourceIp: "10.1.0.5",
  destinationIp: "10.2.0.7",
  destinationPort: 8080,
};
/** The same connection in plaintext (no identity). */
const PLAIN: L4Connection = {
  sourceIp: "10.1.0.5",
  destinationIp: "10.2.0.7",
  destinationPort: 8080,
};
const as = (c: L4Connection, o: Partial<L4Connection>): L4Connection => ({ ...c, ...o });
const V6: L4Connection = as(WEB, { sourceIp: "2001:db8::5", destinationIp: "fd00::7" });

const allowedBy = (p: string): L4Decision => ({
  allow: true,
  policy: p,
  reason: `ALLOW policy ${p} matched`,
});
const deniedBy = (p: string): L4Decision => ({
  allow: false,
  policy: p,
  reason: `DENY policy ${p} matched`,
});
const customDenied = (p: string): L4Decision => ({
  allow: false,
  policy: p,
  reason:
    `CUSTOM policy ${p} matched; a ztunnel cannot consult an external authorizer, so it denies`,
});
const NO_ALLOW: L4Decision = { allow: true, reason: "no ALLOW policy applies" };
const noneMatched = (...ps: string[]): L4Decision => ({
  allow: false,
  policy: ps.join(","),
  reason: `no ALLOW policy matched (${ps.join(", ")})`,
});

interface Row {
  name: string;
  policies: Resource[];
  conn: L4Connection;
  want: L4Decision;
}

/** Runs every row and reports all mismatches at once. */
function runTable(rows: Row[]): void {
  const failures: string[] = [];
  for (const r of rows) {
    const got = evaluateL4(r.policies.map(compileL4Policy), r.conn);
    if (JSON.stringify(got) !== JSON.stringify(r.want)) {
      failures.push(
        `${r.name}:\n    got  ${JSON.stringify(got)}\n    want ${JSON.stringify(r.want)}`,
      );
    }
  }
  assertEquals(failures, [], `${failures.length} of ${rows.length} rows failed`);
}

// ---------------------------------------------------------------------------
// Decision order and empty policies

const ORDER: Row[] = [
  { name: "no policy allows", policies: [], conn: WEB, want: NO_ALLOW },
  {
    name: "spec: {} ALLOW allows nothing",
    policies: [ap("none", {})],
    conn: WEB,
    want: noneMatched("shop/none"),
  },
  {
    name: "spec: {} ALLOW allows nothing, not even plaintext",
    policies: [ap("none", {})],
    conn: PLAIN,
    want: noneMatched("shop/none"),
  },
  {
    name: "rules: [{}] allows everything",
    policies: [ap("all", allow({}))],
    conn: WEB,
    want: allowedBy("shop/all"),
  },
  {
    name: "rules: [{}] allows plaintext too",
    policies: [ap("all", allow({}))],
    conn: PLAIN,
    want: allowedBy("shop/all"),
  },
  {
    name: "rules: [] (empty list) is spec: {}",
    policies: [ap("empty", { rules: [] })],
    conn: WEB,
    want: noneMatched("shop/empty"),
  },
  {
    name: "DENY without rules denies nothing",
    policies: [ap("d", { action: "DENY" })],
    conn: WEB,
    want: NO_ALLOW,
  },
  {
    name: "DENY rules: [{}] denies everything",
    policies: [ap("d", deny({}))],
    conn: PLAIN,
    want: deniedBy("shop/d"),
  },
  {
    name: "DENY is checked before ALLOW",
    policies: [
      ap("all", allow({})),
      ap("d", deny(from({ principals: ["cluster.local/ns/shop/sa/web"] }))),
    ],
    conn: WEB,
    want: deniedBy("shop/d"),
  },
  {
    name: "a DENY that does not match leaves the ALLOW decision",
    policies: [ap("d", deny(from({ namespaces: ["payments"] }))), ap("all", allow({}))],
    conn: WEB,
    want: allowedBy("shop/all"),
  },
  {
    name: "only DENY policies, none matching: allow",
    policies: [ap("d", deny(from({ namespaces: ["payments"] })))],
    conn: WEB,
    want: NO_ALLOW,
  },
  {
    name: "any of several ALLOW policies allows",
    policies: [
      ap("a", allow(from({ namespaces: ["payments"] }))),
      ap("b", allow(from({ namespaces: ["shop"] }))),
    ],
    conn: WEB,
    want: allowedBy("shop/b"),
  },
  {
    name: "several ALLOW policies, none matching: deny, naming them all",
    policies: [
      ap("a", allow(from({ namespaces: ["payments"] }))),
      ap("b", allow(to({ ports: ["9090"] }))),
    ],
    conn: WEB,
    want: noneMatched("shop/a", "shop/b"),
  },
  {
    name: "the first matching DENY is reported",
    policies: [ap("d1", deny({})), ap("d2", deny({}))],
    conn: WEB,
    want: deniedBy("shop/d1"),
  },
  {
    name: "AUDIT alone never denies",
    policies: [ap("audit", { action: "AUDIT", rules: [{}] })],
    conn: WEB,
    want: NO_ALLOW,
  },
  {
    name: "AUDIT never allows: an unmatched ALLOW still denies",
    policies: [ap("audit", { action: "AUDIT", rules: [{}] }), ap("none", {})],
    conn: WEB,
    want: noneMatched("shop/none"),
  },
  {
    name: "AUDIT does not count as an ALLOW policy",
    policies: [ap("audit", { action: "AUDIT" })],
    conn: PLAIN,
    want: NO_ALLOW,
  },
];

// ---------------------------------------------------------------------------
// Source fields

const SOURCE: Row[] = [
  {
    name: "principals: exact match (written without spiffe://)",
    policies: [ap("p", allow(from({ principals: ["cluster.local/ns/shop/sa/web"] })))],
    conn: WEB,
    want: allowedBy("shop/p"),
  },
  {
    name: "principals: another identity does not match",
    policies: [ap("p", allow(from({ principals: ["cluster.local/ns/shop/sa/api"] })))],
    conn: WEB,
    want: noneMatched("shop/p"),
  },
  {
    name: "principals: written with spiffe:// never matches",
    policies: [ap("p", allow(from({ principals: ["spiffe://cluster.local/ns/shop/sa/web"] })))],
    conn: WEB,
    want: noneMatched("shop/p"),
  },
  {
    name: "principals: another trust domain does not match",
    policies: [ap("p", allow(from({ principals: ["example.org/ns/shop/sa/web"] })))],
    conn: WEB,
    want: noneMatched("shop/p"),
  },
  {
    name: "principals: prefix*",
    policies: [ap("p", allow(from({ principals: ["cluster.local/ns/shop/*"] })))],
    conn: WEB,
    want: allowedBy("shop/p"),
  },
  {
    name: "principals: *suffix",
    policies: [ap("p", allow(from({ principals: ["*/sa/web"] })))],
    conn: as(WEB, { sourceIdentity: id("payments", "web") }),
    want: allowedBy("shop/p"),
  },
  {
    name: "principals: any value in the list matches",
    policies: [
      ap(
        "p",
        allow(from({ principals: ["cluster.local/ns/x/sa/y", "cluster.local/ns/shop/sa/web"] })),
      ),
    ],
    conn: WEB,
    want: allowedBy("shop/p"),
  },
  {
    name: "principals: * means any authenticated peer",
    policies: [ap("p", allow(from({ principals: ["*"] })))],
    conn: WEB,
    want: allowedBy("shop/p"),
  },
  {
    name: "principals: * does not match plaintext",
    policies: [ap("p", allow(from({ principals: ["*"] })))],
    conn: PLAIN,
    want: noneMatched("shop/p"),
  },
  {
    name: "notPrincipals: * matches only plaintext (mTLS peer denied)",
    policies: [ap("p", allow(from({ notPrincipals: ["*"] })))],
    conn: WEB,
    want: noneMatched("shop/p"),
  },
  {
    name: "notPrincipals: * matches only plaintext (plaintext allowed)",
    policies: [ap("p", allow(from({ notPrincipals: ["*"] })))],
    conn: PLAIN,
    want: allowedBy("shop/p"),
  },
  {
    name: "DENY notPrincipals: * denies plaintext (the STRICT idiom)",
    policies: [ap("strict", deny(from({ notPrincipals: ["*"] })))],
    conn: PLAIN,
    want: deniedBy("shop/strict"),
  },
  {
    name: "DENY notPrincipals: * lets mTLS through",
    policies: [ap("strict", deny(from({ notPrincipals: ["*"] })))],
    conn: WEB,
    want: NO_ALLOW,
  },
  {
    name: "notPrincipals: the named identity is excluded",
    policies: [ap("p", allow(from({ notPrincipals: ["cluster.local/ns/shop/sa/web"] })))],
    conn: WEB,
    want: noneMatched("shop/p"),
  },
  {
    name: "notPrincipals: other identities pass",
    policies: [ap("p", allow(from({ notPrincipals: ["cluster.local/ns/shop/sa/web"] })))],
    conn: as(WEB, { sourceIdentity: id("shop", "api") }),
    want: allowedBy("shop/p"),
  },
  {
    name: "principals and notPrincipals in one source AND together",
    policies: [
      ap(
        "p",
        allow(from({ principals: ["cluster.local/ns/shop/*"], notPrincipals: ["*/sa/web"] })),
      ),
    ],
    conn: WEB,
    want: noneMatched("shop/p"),
  },
  {
    name: "namespaces: exact",
    policies: [ap("n", allow(from({ namespaces: ["shop"] })))],
    conn: WEB,
    want: allowedBy("shop/n"),
  },
  {
    name: "namespaces: need an identity (plaintext has no namespace)",
    policies: [ap("n", allow(from({ namespaces: ["shop"] })))],
    conn: PLAIN,
    want: noneMatched("shop/n"),
  },
  {
    name: "namespaces: prefix*",
    policies: [ap("n", allow(from({ namespaces: ["sh*"] })))],
    conn: WEB,
    want: allowedBy("shop/n"),
  },
  {
    name: "namespaces: *suffix",
    policies: [ap("n", allow(from({ namespaces: ["*op"] })))],
    conn: WEB,
    want: allowedBy("shop/n"),
  },
  {
    name: "namespaces: a service account named like the namespace does not match",
    policies: [ap("n", allow(from({ namespaces: ["web"] })))],
    conn: WEB,
    want: noneMatched("shop/n"),
  },
  {
    name: "notNamespaces: the named namespace is excluded",
    policies: [ap("n", allow(from({ notNamespaces: ["shop"] })))],
    conn: WEB,
    want: noneMatched("shop/n"),
  },
  {
    name: "notNamespaces: plaintext has no namespace, so it is in none",
    policies: [ap("n", allow(from({ notNamespaces: ["shop"] })))],
    conn: PLAIN,
    want: allowedBy("shop/n"),
  },
  {
    name: "serviceAccounts: namespace/name",
    policies: [ap("sa", allow(from({ serviceAccounts: ["shop/web"] })))],
    conn: WEB,
    want: allowedBy("shop/sa"),
  },
  {
    name: "serviceAccounts: same name in another namespace does not match",
    policies: [ap("sa", allow(from({ serviceAccounts: ["shop/web"] })))],
    conn: as(WEB, { sourceIdentity: id("payments", "web") }),
    want: noneMatched("shop/sa"),
  },
  {
    name: "serviceAccounts: a bare name means the policy's namespace",
    policies: [raw("sa", allow(from({ serviceAccounts: ["web"] })))],
    conn: WEB,
    want: allowedBy("shop/sa"),
  },
  {
    name: "serviceAccounts: a bare name does not match another namespace",
    policies: [raw("sa", allow(from({ serviceAccounts: ["web"] })), "payments")],
    conn: WEB,
    want: noneMatched("payments/sa"),
  },
  {
    name: "serviceAccounts: need an identity",
    policies: [ap("sa", allow(from({ serviceAccounts: ["shop/web"] })))],
    conn: PLAIN,
    want: noneMatched("shop/sa"),
  },
  {
    name: "notServiceAccounts: bare name excludes the policy namespace's account",
    policies: [ap("sa", allow(from({ notServiceAccounts: ["web"] })))],
    conn: WEB,
    want: noneMatched("shop/sa"),
  },
  {
    name: "notServiceAccounts: bare name leaves other namespaces' account alone",
    policies: [ap("sa", allow(from({ notServiceAccounts: ["web"] })))],
    conn: as(WEB, { sourceIdentity: id("payments", "web") }),
    want: allowedBy("shop/sa"),
  },
  {
    // The schema refuses "shop/*"; unchecked input still reads it as a literal.
    name: "notServiceAccounts: no wildcards (shop/* is a literal)",
    policies: [raw("sa", allow(from({ notServiceAccounts: ["shop/*"] })))],
    conn: WEB,
    want: allowedBy("shop/sa"),
  },
  {
    name: "notServiceAccounts: plaintext is in none",
    policies: [ap("sa", allow(from({ notServiceAccounts: ["shop/web"] })))],
    conn: PLAIN,
    want: allowedBy("shop/sa"),
  },
  {
    name: "ipBlocks: CIDR",
    policies: [ap("ip", allow(from({ ipBlocks: ["10.1.0.0/16"] })))],
    conn: WEB,
    want: allowedBy("shop/ip"),
  },
  {
    name: "ipBlocks: single address",
    policies: [ap("ip", allow(from({ ipBlocks: ["10.1.0.5"] })))],
    conn: PLAIN,
    want: allowedBy("shop/ip"),
  },
  {
    name: "ipBlocks: single address is /32",
    policies: [ap("ip", allow(from({ ipBlocks: ["10.1.0.5"] })))],
    conn: as(PLAIN, { sourceIp: "10.1.0.6" }),
    want: noneMatched("shop/ip"),
  },
  {
    name: "ipBlocks: outside the block",
    policies: [ap("ip", allow(from({ ipBlocks: ["10.1.0.0/24"] })))],
    conn: as(WEB, { sourceIp: "10.1.1.5" }),
    want: noneMatched("shop/ip"),
  },
  {
    name: "ipBlocks: 0.0.0.0/0 matches every IPv4 peer",
    policies: [ap("ip", allow(from({ ipBlocks: ["0.0.0.0/0"] })))],
    conn: WEB,
    want: allowedBy("shop/ip"),
  },
  {
    name: "ipBlocks: 0.0.0.0/0 does not match an IPv6 peer",
    policies: [ap("ip", allow(from({ ipBlocks: ["0.0.0.0/0"] })))],
    conn: V6,
    want: noneMatched("shop/ip"),
  },
  {
    name: "ipBlocks: IPv6 CIDR",
    policies: [ap("ip", allow(from({ ipBlocks: ["2001:db8::/32"] })))],
    conn: V6,
    want: allowedBy("shop/ip"),
  },
  {
    name: "ipBlocks: IPv6 single address in another spelling",
    policies: [ap("ip", allow(from({ ipBlocks: ["2001:0db8:0:0::5"] })))],
    conn: V6,
    want: allowedBy("shop/ip"),
  },
  {
    name: "ipBlocks: an IPv6 block does not match an IPv4 peer",
    policies: [ap("ip", allow(from({ ipBlocks: ["::/0"] })))],
    conn: WEB,
    want: noneMatched("shop/ip"),
  },
  {
    name: "ipBlocks: an IPv4-mapped IPv6 peer is its IPv4 address",
    policies: [ap("ip", allow(from({ ipBlocks: ["10.1.0.0/16"] })))],
    conn: as(WEB, { sourceIp: "::ffff:10.1.0.5" }),
    want: allowedBy("shop/ip"),
  },
  {
    name: "notIpBlocks: inside is excluded",
    policies: [ap("ip", allow(from({ notIpBlocks: ["10.1.0.0/16"] })))],
    conn: WEB,
    want: noneMatched("shop/ip"),
  },
  {
    name: "notIpBlocks: outside passes",
    policies: [ap("ip", allow(from({ notIpBlocks: ["10.9.0.0/16"] })))],
    conn: WEB,
    want: allowedBy("shop/ip"),
  },
  {
    name: "DENY ipBlocks with an exception in notIpBlocks (inside the exception)",
    policies: [ap("ip", deny(from({ ipBlocks: ["10.1.0.0/16"], notIpBlocks: ["10.1.0.5"] })))],
    conn: WEB,
    want: NO_ALLOW,
  },
  {
    name: "DENY ipBlocks with an exception in notIpBlocks (outside the exception)",
    policies: [ap("ip", deny(from({ ipBlocks: ["10.1.0.0/16"], notIpBlocks: ["10.1.0.5"] })))],
    conn: as(WEB, { sourceIp: "10.1.0.6" }),
    want: deniedBy("shop/ip"),
  },
];

// ---------------------------------------------------------------------------
// Operation fields and conditions

const OPERATION_AND_WHEN: Row[] = [
  {
    name: "ports: matching port",
    policies: [ap("port", allow(to({ ports: ["8080"] })))],
    conn: WEB,
    want: allowedBy("shop/port"),
  },
  {
    name: "ports: other port",
    policies: [ap("port", allow(to({ ports: ["9090"] })))],
    conn: WEB,
    want: noneMatched("shop/port"),
  },
  {
    name: "ports: any in the list",
    policies: [ap("port", allow(to({ ports: ["9090", "8080"] })))],
    conn: WEB,
    want: allowedBy("shop/port"),
  },
  {
    name: "notPorts: the port is excluded",
    policies: [ap("port", allow(to({ notPorts: ["8080"] })))],
    conn: WEB,
    want: noneMatched("shop/port"),
  },
  {
    name: "notPorts: other ports pass",
    policies: [ap("port", allow(to({ notPorts: ["22"] })))],
    conn: WEB,
    want: allowedBy("shop/port"),
  },
  {
    name: "when source.ip: values",
    policies: [ap("w", allow(when(cond("source.ip", ["10.1.0.0/16"]))))],
    conn: WEB,
    want: allowedBy("shop/w"),
  },
  {
    name: "when source.ip: notValues",
    policies: [ap("w", allow(when(cond("source.ip", undefined, ["10.1.0.5"]))))],
    conn: WEB,
    want: noneMatched("shop/w"),
  },
  {
    name: "when source.ip: IPv6",
    policies: [ap("w", allow(when(cond("source.ip", ["2001:db8::/48"]))))],
    conn: V6,
    want: allowedBy("shop/w"),
  },
  {
    name: "when source.namespace: values",
    policies: [ap("w", allow(when(cond("source.namespace", ["shop"]))))],
    conn: WEB,
    want: allowedBy("shop/w"),
  },
  {
    name: "when source.namespace: notValues",
    policies: [ap("w", allow(when(cond("source.namespace", undefined, ["shop"]))))],
    conn: WEB,
    want: noneMatched("shop/w"),
  },
  {
    name: "when source.namespace: plaintext has none",
    policies: [ap("w", allow(when(cond("source.namespace", ["*"]))))],
    conn: PLAIN,
    want: noneMatched("shop/w"),
  },
  {
    name: "when source.principal: prefix",
    policies: [ap("w", allow(when(cond("source.principal", ["cluster.local/ns/shop/*"]))))],
    conn: WEB,
    want: allowedBy("shop/w"),
  },
  {
    name: "when source.principal: notValues",
    policies: [ap("w", allow(when(cond("source.principal", undefined, ["*/sa/web"]))))],
    conn: WEB,
    want: noneMatched("shop/w"),
  },
  {
    name: "when destination.ip: values",
    policies: [ap("w", allow(when(cond("destination.ip", ["10.2.0.0/16"]))))],
    conn: WEB,
    want: allowedBy("shop/w"),
  },
  {
    name: "when destination.ip: notValues",
    policies: [ap("w", allow(when(cond("destination.ip", undefined, ["10.2.0.7"]))))],
    conn: WEB,
    want: noneMatched("shop/w"),
  },
  {
    name: "when destination.ip: IPv6",
    policies: [ap("w", allow(when(cond("destination.ip", ["fd00::7"]))))],
    conn: V6,
    want: allowedBy("shop/w"),
  },
  {
    name: "when destination.port: values",
    policies: [ap("w", allow(when(cond("destination.port", ["8080"]))))],
    conn: WEB,
    want: allowedBy("shop/w"),
  },
  {
    name: "when destination.port: notValues",
    policies: [ap("w", allow(when(cond("destination.port", undefined, ["8080"]))))],
    conn: WEB,
    want: noneMatched("shop/w"),
  },
  {
    name: "when: values and notValues of one condition AND (excluded)",
    policies: [ap("w", allow(when(cond("source.namespace", ["sh*"], ["shop"]))))],
    conn: WEB,
    want: noneMatched("shop/w"),
  },
  {
    name: "when: values and notValues of one condition AND (included)",
    policies: [ap("w", allow(when(cond("source.namespace", ["sh*"], ["shop-dev"]))))],
    conn: WEB,
    want: allowedBy("shop/w"),
  },
  {
    name: "when: all conditions must hold (one fails)",
    policies: [
      ap("w", allow(when(cond("source.namespace", ["shop"]), cond("destination.port", ["9090"])))),
    ],
    conn: WEB,
    want: noneMatched("shop/w"),
  },
  {
    name: "when: all conditions hold",
    policies: [
      ap("w", allow(when(cond("source.namespace", ["shop"]), cond("destination.port", ["8080"])))),
    ],
    conn: WEB,
    want: allowedBy("shop/w"),
  },
];

// ---------------------------------------------------------------------------
// OR and AND structure

const STRUCTURE: Row[] = [
  {
    name: "several from entries OR (second matches)",
    policies: [
      ap("or", allow(from({ principals: ["cluster.local/ns/x/sa/y"] }, { namespaces: ["shop"] }))),
    ],
    conn: WEB,
    want: allowedBy("shop/or"),
  },
  {
    name: "several from entries OR (none matches)",
    policies: [
      ap(
        "or",
        allow(from({ principals: ["cluster.local/ns/x/sa/y"] }, { namespaces: ["payments"] })),
      ),
    ],
    conn: WEB,
    want: noneMatched("shop/or"),
  },
  {
    name: "fields of one source AND (namespace fails)",
    policies: [ap("and", allow(from({ principals: ["*"], namespaces: ["payments"] })))],
    conn: WEB,
    want: noneMatched("shop/and"),
  },
  {
    name: "fields of one source AND (ipBlocks fails)",
    policies: [ap("and", allow(from({ namespaces: ["shop"], ipBlocks: ["192.168.0.0/16"] })))],
    conn: WEB,
    want: noneMatched("shop/and"),
  },
  {
    name: "several to entries OR",
    policies: [ap("or", allow(to({ ports: ["9090"] }, { ports: ["8080"] })))],
    conn: WEB,
    want: allowedBy("shop/or"),
  },
  {
    name: "fields of one operation AND",
    policies: [ap("and", allow(to({ ports: ["8080"], notPorts: ["8080"] })))],
    conn: WEB,
    want: noneMatched("shop/and"),
  },
  {
    name: "from AND to: from matches, to does not",
    policies: [ap("r", allow({ ...from({ namespaces: ["shop"] }), ...to({ ports: ["9090"] }) }))],
    conn: WEB,
    want: noneMatched("shop/r"),
  },
  {
    name: "from AND to: to matches, from does not",
    policies: [
      ap("r", allow({ ...from({ namespaces: ["payments"] }), ...to({ ports: ["8080"] }) })),
    ],
    conn: WEB,
    want: noneMatched("shop/r"),
  },
  {
    name: "from AND to AND when: all hold",
    policies: [
      ap(
        "r",
        allow({
          ...from({ namespaces: ["shop"] }),
          ...to({ ports: ["8080"] }),
          ...when(cond("source.ip", ["10.1.0.0/16"])),
        }),
      ),
    ],
    conn: WEB,
    want: allowedBy("shop/r"),
  },
  {
    name: "from AND to AND when: when fails",
    policies: [
      ap(
        "r",
        allow({
          ...from({ namespaces: ["shop"] }),
          ...to({ ports: ["8080"] }),
          ...when(cond("source.ip", ["10.9.0.0/16"])),
        }),
      ),
    ],
    conn: WEB,
    want: noneMatched("shop/r"),
  },
  {
    name: "several rules OR (second matches)",
    policies: [ap("rules", allow(from({ namespaces: ["payments"] }), to({ ports: ["8080"] })))],
    conn: WEB,
    want: allowedBy("shop/rules"),
  },
  {
    name: "several rules OR (none matches)",
    policies: [ap("rules", allow(from({ namespaces: ["payments"] }), to({ ports: ["9090"] })))],
    conn: WEB,
    want: noneMatched("shop/rules"),
  },
  {
    // The schema refuses an empty from and source (as Istio); unchecked input reads them as "any".
    name: "a rule with an empty from list matches any source",
    policies: [raw("r", allow({ from: [], ...to({ ports: ["8080"] }) }))],
    conn: PLAIN,
    want: allowedBy("shop/r"),
  },
  {
    name: "an empty source {} matches any source",
    policies: [raw("r", allow({ from: [{ source: {} }] }))],
    conn: PLAIN,
    want: allowedBy("shop/r"),
  },
];

// ---------------------------------------------------------------------------
// L7 fields at a ztunnel, CUSTOM and dry-run

const L7: Row[] = [
  {
    name: "ALLOW rule with methods is dropped: the policy allows nothing",
    policies: [
      ap("get", allow({ ...from({ namespaces: ["shop"] }), ...to({ methods: ["GET"] }) })),
    ],
    conn: WEB,
    want: noneMatched("shop/get"),
  },
  {
    name: "ALLOW: only the rule with L7 fields is dropped, the L4 rule still allows",
    policies: [ap("mixed", allow(to({ paths: ["/admin"] }), from({ namespaces: ["shop"] })))],
    conn: WEB,
    want: allowedBy("shop/mixed"),
  },
  {
    name: "ALLOW rule with an L7 when key is dropped",
    policies: [ap("jwt", allow(when(cond("request.auth.claims[iss]", ["https://issuer"]))))],
    conn: WEB,
    want: noneMatched("shop/jwt"),
  },
  {
    name: "ALLOW rule with requestPrincipals is dropped",
    policies: [ap("rp", allow(from({ requestPrincipals: ["*"] })))],
    conn: WEB,
    want: noneMatched("shop/rp"),
  },
  {
    name: "ALLOW rule with notHosts is dropped",
    policies: [ap("h", allow(to({ notHosts: ["evil.example"], ports: ["8080"] })))],
    conn: WEB,
    want: noneMatched("shop/h"),
  },
  {
    name: "ALLOW rule with remoteIpBlocks is dropped",
    policies: [ap("rip", allow(from({ remoteIpBlocks: ["10.0.0.0/8"] })))],
    conn: WEB,
    want: noneMatched("shop/rip"),
  },
  {
    name: "ALLOW rule with source.serviceAccount (not one of ztunnel's five keys) is dropped",
    policies: [ap("sak", allow(when(cond("source.serviceAccount", ["shop/web"]))))],
    conn: WEB,
    want: noneMatched("shop/sak"),
  },
  {
    name: "an empty L7 list is not an L7 field: the ALLOW rule stays",
    policies: [
      ap(
        "e",
        allow({ ...from({ namespaces: ["shop"], requestPrincipals: [] }), ...to({ methods: [] }) }),
      ),
    ],
    conn: WEB,
    want: allowedBy("shop/e"),
  },
  {
    name: "DENY with paths: enforced on its L4 part (matching principal denied)",
    policies: [
      ap(
        "admin",
        deny({
          ...from({ principals: ["cluster.local/ns/shop/sa/web"] }),
          ...to({ paths: ["/admin*"] }),
        }),
      ),
    ],
    conn: WEB,
    want: deniedBy("shop/admin"),
  },
  {
    name: "DENY with paths: enforced on its L4 part (other principal passes)",
    policies: [
      ap(
        "admin",
        deny({
          ...from({ principals: ["cluster.local/ns/shop/sa/web"] }),
          ...to({ paths: ["/admin*"] }),
        }),
      ),
    ],
    conn: as(WEB, { sourceIdentity: id("shop", "api") }),
    want: NO_ALLOW,
  },
  {
    name: "DENY with methods and ports: the port still has to match",
    policies: [ap("del", deny(to({ methods: ["DELETE"], ports: ["9090"] })))],
    conn: WEB,
    want: NO_ALLOW,
  },
  {
    name: "DENY with only an L7 when condition denies everything",
    policies: [ap("hdr", deny(when(cond("request.headers[x-user]", ["eve"]))))],
    conn: WEB,
    want: deniedBy("shop/hdr"),
  },
  {
    name: "DENY with only requestPrincipals denies everything, plaintext too",
    policies: [ap("rp", deny(from({ requestPrincipals: ["*"] })))],
    conn: PLAIN,
    want: deniedBy("shop/rp"),
  },
  {
    name: "DENY: the L4 when conditions are kept when L7 ones are removed",
    policies: [
      ap(
        "w",
        deny(when(cond("request.headers[x]", ["1"]), cond("source.namespace", ["payments"]))),
      ),
    ],
    conn: WEB,
    want: NO_ALLOW,
  },
  {
    name: "CUSTOM whose rules match denies (no external authorizer at a ztunnel)",
    policies: [
      raw("ext", {
        action: "CUSTOM",
        provider: { name: "opa" },
        rules: [from({ namespaces: ["shop"] })],
      }),
    ],
    conn: WEB,
    want: customDenied("shop/ext"),
  },
  {
    name: "CUSTOM whose rules do not match is not consulted",
    policies: [
      raw("ext", {
        action: "CUSTOM",
        provider: { name: "opa" },
        rules: [from({ namespaces: ["payments"] })],
      }),
    ],
    conn: WEB,
    want: NO_ALLOW,
  },
  {
    name: "CUSTOM is checked before DENY",
    policies: [ap("d", deny({})), raw("ext", { action: "CUSTOM", rules: [{}] })],
    conn: WEB,
    want: customDenied("shop/ext"),
  },
  {
    name: "CUSTOM with L7 fields matches on its L4 part only (so it denies more)",
    policies: [raw("ext", { action: "CUSTOM", rules: [to({ paths: ["/api*"] })] })],
    conn: PLAIN,
    want: customDenied("shop/ext"),
  },
  {
    name: "CUSTOM without rules matches nothing",
    policies: [raw("ext", { action: "CUSTOM" }), ap("all", allow({}))],
    conn: WEB,
    want: allowedBy("shop/all"),
  },
  {
    name: "dry-run DENY does not deny, and says it would",
    policies: [ap("d", deny({}), { annotations: { "istio.io/dry-run": "true" } })],
    conn: WEB,
    want: { ...NO_ALLOW, dryRun: "would deny: DENY policy shop/d matched" },
  },
  {
    name: "dry-run ALLOW does not count as an ALLOW policy",
    policies: [ap("none", {}, { annotations: { "istio.io/dry-run": "true" } })],
    conn: WEB,
    want: { ...NO_ALLOW, dryRun: "would deny: no ALLOW policy matched (shop/none)" },
  },
  {
    name: "dry-run that would not change the decision adds nothing",
    policies: [
      ap("all", allow({})),
      ap("d", deny(from({ namespaces: ["x"] })), { annotations: { "istio.io/dry-run": "true" } }),
    ],
    conn: WEB,
    want: allowedBy("shop/all"),
  },
  {
    name: "istio.io/dry-run: false is enforced",
    policies: [ap("d", deny({}), { annotations: { "istio.io/dry-run": "false" } })],
    conn: WEB,
    want: deniedBy("shop/d"),
  },
];

Deno.test("evaluateL4() orders CUSTOM, DENY, ALLOW as Istio and treats empty policies as Istio", () => {
  runTable(ORDER);
});

Deno.test("evaluateL4() matches principals, namespaces, serviceAccounts and ipBlocks with their not* forms", () => {
  runTable(SOURCE);
});

Deno.test("evaluateL4() matches ports and the five L4 when keys with values and notValues", () => {
  runTable(OPERATION_AND_WHEN);
});

Deno.test("evaluateL4() ORs rules, from and to entries, and ANDs from, to, when and fields", () => {
  runTable(STRUCTURE);
});

Deno.test("evaluateL4() drops L7 ALLOW rules, strips L7 from DENY rules, and fails closed on CUSTOM", () => {
  runTable(L7);
});

// ---------------------------------------------------------------------------
// stringMatch

Deno.test("stringMatch() does exact, prefix*, *suffix and * (presence) as Istio", () => {
  const table: [string, string | undefined, boolean][] = [
    ["abc", "abc", true],
    ["abc", "abcd", false],
    ["abc", "ab", false],
    ["abc", undefined, false],
    ["ab*", "abc", true],
    ["ab*", "ab", true],
    ["ab*", "xab", false],
    ["*bc", "abc", true],
    ["*bc", "bc", true],
    ["*bc", "bcx", false],
    ["*", "anything", true],
    ["*", "", false],
    ["*", undefined, false],
    ["ab*", undefined, false],
    ["a*c", "abc", false],
    ["a*c", "a*c", true],
    // A leading * wins, as in Istio's conversion: a suffix match for "abc*".
    ["*abc*", "xabc*", true],
    ["*abc*", "abcx", false],
  ];
  const failures = table.filter(([p, v, want]) => stringMatch(p, v) !== want)
    .map(([p, v, want]) =>
      `stringMatch(${JSON.stringify(p)}, ${JSON.stringify(v)}) should be ${want}`
    );
  assertEquals(failures, []);
});

// ---------------------------------------------------------------------------
// Warnings

Deno.test("compileL4Policy() warns about what a ztunnel cannot enforce as written", () => {
  const hint = "Attach the policy to a waypoint with targetRefs.";
  const table: [string, Resource, string[]][] = [
    [
      "L4 only: no warning",
      ap("ok", allow(from({ namespaces: ["shop"] }), to({ ports: ["80"] }))),
      [],
    ],
    ["empty L7 lists: no warning", ap("ok", allow(to({ methods: [] }))), []],
    [
      "ALLOW with L7 fields",
      ap(
        "get",
        allow({ ...to({ methods: ["GET"], paths: ["/a"] }), ...from({ namespaces: ["shop"] }) }),
      ),
      [
        `AuthorizationPolicy shop/get rule 0: ALLOW rule uses L7 fields (methods, paths) that a ztunnel cannot check; the rule is ignored, which may deny traffic. ${hint}`,
        "AuthorizationPolicy shop/get: every rule was ignored, so at a ztunnel it allows nothing (connections to the workloads it selects are denied unless another ALLOW policy matches).",
      ],
    ],
    [
      "ALLOW with one L7 rule among L4 ones",
      ap("mix", allow(from({ namespaces: ["a"] }), when(cond("request.headers[x]", ["1"])))),
      [
        `AuthorizationPolicy shop/mix rule 1: ALLOW rule uses L7 fields (request.headers[x]) that a ztunnel cannot check; the rule is ignored, which may deny traffic. ${hint}`,
      ],
    ],
    [
      "DENY with L7 fields",
      ap(
        "d",
        deny({
          ...from({ requestPrincipals: ["*"], namespaces: ["x"] }),
          ...to({ notPaths: ["/h"] }),
        }),
      ),
      [
        `AuthorizationPolicy shop/d rule 0: DENY rule uses L7 fields (requestPrincipals, notPaths); a ztunnel enforces only its L4 part, so it denies more than written. ${hint}`,
      ],
    ],
    ["CUSTOM", raw("ext", { action: "CUSTOM", provider: { name: "opa" }, rules: [{}] }), [
      "AuthorizationPolicy shop/ext: action CUSTOM needs an external authorizer, which a ztunnel cannot consult; connections matching its rules are denied.",
    ]],
    ["CUSTOM with L7 fields", raw("ext", { action: "CUSTOM", rules: [to({ hosts: ["a"] })] }), [
      "AuthorizationPolicy shop/ext: action CUSTOM needs an external authorizer, which a ztunnel cannot consult; connections matching its rules are denied.",
      `AuthorizationPolicy shop/ext rule 0: CUSTOM rule uses L7 fields (hosts); a ztunnel enforces only its L4 part, so it denies more than written. ${hint}`,
    ]],
    ["AUDIT", ap("audit", { action: "AUDIT", rules: [to({ methods: ["GET"] })] }), [
      "AuthorizationPolicy shop/audit: action AUDIT has no effect at a ztunnel (ambit writes no audit log); it never changes the decision.",
    ]],
    [
      "a when value that is not an address",
      raw(
        "bad",
        allow(
          when(
            cond("source.ip", ["10.0.0.0/8", "not-an-ip"]),
            cond("destination.ip", undefined, ["10.0.0.300"]),
          ),
        ),
      ),
      [
        'AuthorizationPolicy shop/bad rule 0: when source.ip value "not-an-ip" is not an IP address or CIDR block; it never matches.',
        'AuthorizationPolicy shop/bad rule 0: when destination.ip notValue "10.0.0.300" is not an IP address or CIDR block; it never matches.',
      ],
    ],
    [
      "a when port that is not a port",
      raw("bad", deny(when(cond("destination.port", undefined, ["http"])))),
      [
        'AuthorizationPolicy shop/bad rule 0: when destination.port notValue "http" is not a port number; it never matches.',
      ],
    ],
  ];
  for (const [name, res, want] of table) {
    assertEquals(compileL4Policy(res).warnings, want, name);
  }
});

// ---------------------------------------------------------------------------
// Which policies apply to a workload

const MESH = [
  {
    apiVersion: "ambit.io/v1alpha1",
    kind: "Node",
    metadata: { name: "node-a" },
    spec: { address: "10.0.0.1" },
  },
  ...["shop", "payments"].map((name) => ({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name, labels: { "istio.io/dataplane-mode": "ambient" } },
  })),
  ...[
    ["shop", "web", { app: "web", version: "v1" }, "10.1.0.1"],
    ["shop", "api", { app: "api" }, "10.1.0.2"],
    ["payments", "ratings", { app: "ratings" }, "10.1.0.3"],
    ["istio-system", "gw", { app: "gw" }, "10.1.0.4"],
  ].map(([namespace, name, labels, address]) => ({
    apiVersion: "networking.istio.io/v1",
    kind: "WorkloadEntry",
    metadata: { name, namespace },
    spec: { address, serviceAccount: name, labels },
  })),
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "web", namespace: "shop" },
    spec: { selector: { app: "web" }, ports: [{ port: 80 }] },
  },
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "api", namespace: "shop", labels: { "istio.io/use-waypoint": "wp" } },
    spec: { selector: { app: "api" }, ports: [{ port: 80 }] },
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

Deno.test("policiesForWorkload() picks namespace, selector and mesh-wide policies; targetRefs are for waypoints", () => {
  const s = snapshotWith([
    policyDoc("ns-wide", "shop", { rules: [{}] }),
    policyDoc("web-only", "shop", { selector: { matchLabels: { app: "web" } } }),
    policyDoc("empty-selector", "shop", { selector: { matchLabels: {} }, action: "DENY" }),
    policyDoc("web-v2", "shop", { selector: { matchLabels: { app: "web", version: "v2" } } }),
    policyDoc("to-service", "shop", { targetRefs: [{ kind: "Service", group: "", name: "web" }] }),
    policyDoc("to-waypoint", "shop", {
      targetRef: { kind: "Gateway", group: "gateway.networking.k8s.io", name: "wp" },
    }),
    policyDoc("elsewhere", "payments", { selector: { matchLabels: { app: "web" } } }),
    policyDoc("mesh", "istio-system", {
      action: "DENY",
      rules: [{ from: [{ source: { notPrincipals: ["*"] } }] }],
    }),
    policyDoc("mesh-ratings", "istio-system", { selector: { matchLabels: { app: "ratings" } } }),
  ]);
  const keys = (w: string) =>
    policiesForWorkload(s, s.workloads.get(w)!).map((r) => r.metadata.name);
  assertEquals(keys("shop/web"), ["mesh", "ns-wide", "web-only", "empty-selector"]);
  assertEquals(keys("shop/api"), ["mesh", "ns-wide", "empty-selector"]);
  assertEquals(keys("payments/ratings"), ["mesh", "mesh-ratings"]);
  assertEquals(
    keys("istio-system/gw"),
    ["mesh"],
    "the root namespace's own workload gets each policy once",
  );

  const table: [string, string, string, boolean][] = [
    ["shop", "ns-wide", "shop/web", true],
    ["shop", "ns-wide", "payments/ratings", false],
    ["shop", "web-only", "shop/api", false],
    ["shop", "web-v2", "shop/web", false],
    ["shop", "to-service", "shop/web", false],
    ["shop", "to-waypoint", "shop/web", false],
    ["payments", "elsewhere", "shop/web", false],
    ["istio-system", "mesh", "payments/ratings", true],
    ["istio-system", "mesh-ratings", "payments/ratings", true],
    ["istio-system", "mesh-ratings", "shop/web", false],
  ];
  for (const [ns, name, w, want] of table) {
    const res = s.authorizationPolicies.all.find((r) =>
      r.metadata.namespace === ns && r.metadata.name === name
    )!;
    assertEquals(
      appliesTo(res, s.workloads.get(w)!, s.mesh.rootNamespace),
      want,
      `${ns}/${name} → ${w}`,
    );
  }
});

Deno.test("L4PolicyCache compiles once, and warns about policies nothing enforces", () => {
  const s = snapshotWith([
    policyDoc("get-only", "shop", { rules: [{ to: [{ operation: { methods: ["GET"] } }] }] }),
    policyDoc("to-web", "shop", { targetRefs: [{ kind: "Service", group: "", name: "web" }] }),
    policyDoc("to-api", "shop", { targetRefs: [{ kind: "Service", group: "", name: "api" }] }),
  ]);
  const cache = new L4PolicyCache(s);
  const web = s.workloads.get("shop/web")!;
  const first = cache.forWorkload(web);
  assertOk(first === cache.forWorkload(web), "the list is cached per workload");
  assertOk(
    first[0] === cache.forWorkload(s.workloads.get("shop/api")!)[0],
    "each policy compiles once",
  );
  assertEquals(cache.warnings(), [
    "AuthorizationPolicy shop/get-only rule 0: ALLOW rule uses L7 fields (methods) that a ztunnel cannot check; the rule is ignored, which may deny traffic. Attach the policy to a waypoint with targetRefs.",
    "AuthorizationPolicy shop/get-only: every rule was ignored, so at a ztunnel it allows nothing (connections to the workloads it selects are denied unless another ALLOW policy matches).",
    "AuthorizationPolicy shop/to-web targets Service shop/web, which has no waypoint for service traffic, so nothing enforces it (label the Service or its namespace with istio.io/use-waypoint).",
  ]);
});

Deno.test("a ztunnel enforces mesh-wide and namespace policies together, and ignores targetRef ones", () => {
  const s = snapshotWith([
    // Mesh-wide STRICT idiom: no plaintext anywhere.
    policyDoc("strict", "istio-system", {
      action: "DENY",
      rules: [{ from: [{ source: { notPrincipals: ["*"] } }] }],
    }),
    // shop/web takes only shop callers on 8080.
    policyDoc("web", "shop", {
      selector: { matchLabels: { app: "web" } },
      rules: [{
        from: [{ source: { namespaces: ["shop"] } }],
        to: [{ operation: { ports: ["8080"] } }],
      }],
    }),
    // A waypoint's deny-all: must not deny anything at the ztunnel.
    policyDoc("waypoint-deny-all", "shop", {
      targetRefs: [{ kind: "Service", group: "", name: "api" }],
      action: "DENY",
      rules: [{}],
    }),
  ]);
  const cache = new L4PolicyCache(s);
  const decide = (w: string, c: L4Connection) =>
    evaluateL4(cache.forWorkload(s.workloads.get(w)!), c);
  const table: [string, string, L4Connection, L4Decision][] = [
    ["plaintext is denied mesh-wide", "shop/web", PLAIN, deniedBy("istio-system/strict")],
    [
      "plaintext to another namespace too",
      "payments/ratings",
      PLAIN,
      deniedBy("istio-system/strict"),
    ],
    ["a shop caller on 8080 reaches web", "shop/web", WEB, allowedBy("shop/web")],
    [
      "a shop caller on 9090 does not",
      "shop/web",
      as(WEB, { destinationPort: 9090 }),
      noneMatched("shop/web"),
    ],
    [
      "a payments caller does not",
      "shop/web",
      as(WEB, { sourceIdentity: id("payments", "ratings") }),
      noneMatched("shop/web"),
    ],
    [
      "api has no ALLOW policy at the ztunnel",
      "shop/api",
      as(WEB, { destinationPort: 9090 }),
      NO_ALLOW,
    ],
  ];
  for (const [name, w, c, want] of table) assertEquals(decide(w, c), want, name);
});
