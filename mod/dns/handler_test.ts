import { assertEquals, assertIncludes, assertOk } from "../../tests/_util/asserts.ts";
import { meshSnapshot } from "../../tests/dns/_mesh.ts";
import {
  decideQuery,
  fitUdp,
  type QueryDecision,
  replyTo,
  ResponseCache,
  servfail,
  udpLimit,
} from "./handler.ts";
import { yaml } from "../config/_testing.ts";
import { MeshNames } from "./names.ts";
import {
  decodeMessage,
  type DnsMessage,
  type DnsQuestion,
  encodeMessage,
  FLAG,
  type OptRecord,
  RCODE,
} from "./packet.ts";

const names = MeshNames.fromSnapshot(meshSnapshot());
const decide = (bytes: Uint8Array, ns: string[] = ["shop"]): QueryDecision =>
  decideQuery(bytes, {
    ttl: 30,
    zone: names.zone,
    lookup: (n, t) => names.lookup(n, t, { namespaces: ns }),
  });

const opt = (size = 1232, ednsVersion = 0): OptRecord => ({
  name: ".",
  type: "OPT",
  udpPayloadSize: size,
  ednsVersion,
});
function query(
  name: string,
  type = "A",
  o: { id?: number; flags?: number; opt?: OptRecord; questions?: DnsQuestion[] } = {},
): Uint8Array {
  return encodeMessage({
    id: o.id ?? 4242,
    type: "query",
    flags: o.flags ?? FLAG.RD,
    questions: o.questions ?? [{ name, type, class: "IN" }],
    additionals: o.opt ? [o.opt] : [],
  });
}
function reply(d: QueryDecision): DnsMessage {
  assertEquals(d.kind, "reply");
  return decodeMessage((d as { response: Uint8Array }).response);
}
const rcodeOf = (m: DnsMessage) => m.flags & 0xf;

Deno.test("decideQuery() answers a mesh name: AA, RD copied, RA, TTL, same ID and question", () => {
  const d = decide(query("Reviews.shop.svc.cluster.local", "A", { id: 7 }));
  assertEquals(d.kind === "reply" && d.outcome, "answer");
  const m = reply(d);
  assertEquals(m.id, 7);
  assertEquals(m.type, "response");
  assertOk(m.flags & FLAG.AA && m.flags & FLAG.RD && m.flags & FLAG.RA);
  assertEquals(m.questions, [{ name: "Reviews.shop.svc.cluster.local", type: "A", class: "IN" }]);
  assertEquals(
    m.answers.map((a) => [a.name, a.type, a.ttl, a.data]),
    [["Reviews.shop.svc.cluster.local", "A", 30, "10.96.0.10"]],
  );
  assertEquals(m.additionals, []);
});

Deno.test("decideQuery() leaves RD clear when the query had it clear", () => {
  const m = reply(decide(query("reviews.shop.svc.cluster.local", "A", { flags: 0 })));
  assertEquals(m.flags & FLAG.RD, 0);
});

Deno.test("decideQuery() echoes EDNS: an OPT record only when the query had one", () => {
  const m = reply(decide(query("reviews", "A", { opt: opt(4096) })));
  assertEquals(m.additionals.map((r) => [r.type, (r as OptRecord).udpPayloadSize]), [[
    "OPT",
    1232,
  ]]);
});

Deno.test("decideQuery() answers AAAA on an IPv4 VIP with NOERROR, no records, the zone's SOA", () => {
  const d = decide(query("reviews.shop.svc.cluster.local", "AAAA"));
  assertEquals(d.kind === "reply" && d.outcome, "nodata");
  const m = reply(d);
  assertEquals([rcodeOf(m), m.answers.length, !!(m.flags & FLAG.AA)], [RCODE.NOERROR, 0, true]);
  assertEquals(m.authorities.map((r) => [r.name, r.type]), [["svc.cluster.local", "SOA"]]);
});

Deno.test("decideQuery() answers an unknown mesh name NXDOMAIN, authoritative, with SOA", () => {
  const d = decide(query("x.default.svc.cluster.local"));
  assertEquals(d.kind === "reply" && d.outcome, "nxdomain");
  const m = reply(d);
  assertEquals([rcodeOf(m), !!(m.flags & FLAG.AA)], [RCODE.NXDOMAIN, true]);
  assertEquals(m.authorities.map((r) => r.type), ["SOA"]);
});

Deno.test("decideQuery() forwards external names and non-IN classes", () => {
  assertEquals(decide(query("www.example.org")).kind, "forward");
  assertEquals(
    decide(query("reviews", "A", { questions: [{ name: "reviews", type: "A", class: "CH" }] }))
      .kind,
    "forward",
  );
  const d = decide(query("www.example.org", "A", { opt: opt() }));
  assertOk(d.kind === "forward" && d.query.questionWire && d.query.opt);
});

/** Bad input: what each malformed message gets. */
const bad: {
  name: string;
  bytes: Uint8Array;
  want: { kind: string; outcome?: string; rcode?: number; id?: number; detail?: string };
}[] = [
  { name: "empty datagram: dropped", bytes: new Uint8Array(0), want: { kind: "drop" } },
  { name: "11 bytes: dropped", bytes: new Uint8Array(11), want: { kind: "drop" } },
  {
    name: "a response: dropped (no answering answers)",
    bytes: encodeMessage({
      id: 1,
      type: "response",
      flags: 0,
      questions: [{ name: "a", type: "A" }],
    }),
    want: { kind: "drop" },
  },
  {
    name: "header only, QDCOUNT 0: FORMERR",
    bytes: hex("abcd 0100 0000 0000 0000 0000"),
    want: { kind: "reply", outcome: "formerr", rcode: RCODE.FORMERR, id: 0xabcd },
  },
  {
    name: "QDCOUNT 1 with garbage: FORMERR, same ID",
    bytes: hex("1234 0100 0001 0000 0000 0000 ffff ffff ffff"),
    want: { kind: "reply", outcome: "formerr", rcode: RCODE.FORMERR, id: 0x1234 },
  },
  {
    name: "question cut short: FORMERR",
    bytes: hex("1234 0100 0001 0000 0000 0000 0361 6263"),
    want: { kind: "reply", outcome: "formerr", rcode: RCODE.FORMERR, id: 0x1234 },
  },
  {
    name: "name over 255 bytes: FORMERR",
    bytes: rawQuery(Array.from({ length: 5 }, () => "a".repeat(60))),
    want: {
      kind: "reply",
      outcome: "formerr",
      rcode: RCODE.FORMERR,
      id: 0x0102,
      detail: "longer than 255 bytes",
    },
  },
  {
    name: "label length 64..191 (not a label): FORMERR",
    bytes: hex("0102 0100 0001 0000 0000 0000 40" + "61".repeat(64) + "00 0001 0001"),
    want: {
      kind: "reply",
      outcome: "formerr",
      rcode: RCODE.FORMERR,
      id: 0x0102,
      detail: "longer than 63 bytes",
    },
  },
  {
    name: "100 questions: FORMERR",
    bytes: query("", "A", {
      questions: Array.from({ length: 100 }, (_, i) => ({ name: `q${i}.example.com`, type: "A" })),
    }),
    want: { kind: "reply", outcome: "formerr", rcode: RCODE.FORMERR, id: 4242 },
  },
  {
    name: "trailing bytes after the question: FORMERR",
    bytes: concat(query("www.example.org"), new Uint8Array([1, 2, 3])),
    want: { kind: "reply", outcome: "formerr", rcode: RCODE.FORMERR, id: 4242 },
  },
  {
    name: "opcode 5 (UPDATE): NOTIMP",
    bytes: query("reviews", "A", { flags: (5 << 11) | FLAG.RD }),
    want: { kind: "reply", outcome: "notimp", rcode: RCODE.NOTIMP, id: 4242 },
  },
  {
    name: "two OPT records: FORMERR",
    bytes: encodeMessage({
      id: 9,
      type: "query",
      flags: 0,
      questions: [{ name: "a", type: "A" }],
      additionals: [opt(), opt()],
    }),
    want: { kind: "reply", outcome: "formerr", rcode: RCODE.FORMERR, id: 9 },
  },
];

for (const c of bad) {
  Deno.test(`decideQuery() bad input: ${c.name}`, () => {
    const d = decide(c.bytes);
    assertEquals(d.kind, c.want.kind);
    if (d.kind !== "reply") return;
    assertEquals(d.outcome, c.want.outcome);
    assertOk(d.detail, "a refusal says why");
    if (c.want.detail) assertIncludes(d.detail, c.want.detail);
    const m = decodeMessage(d.response);
    assertEquals([m.id, rcodeOf(m), m.type], [c.want.id, c.want.rcode, "response"]);
  });
}

Deno.test("decideQuery() answers EDNS version 1 with BADVERS", () => {
  const d = decide(query("reviews", "A", { opt: opt(1232, 1) }));
  const m = reply(d);
  const o = m.additionals.find((r) => r.type === "OPT") as OptRecord;
  assertEquals([rcodeOf(m), o.extendedRcode], [0, 1]);
});

Deno.test("decideQuery() forwards names that do not survive a decode/encode round trip", () => {
  // A label holding a dot: "a.b" as one label must not be answered as a.b.
  const bytes = hex("0102 0100 0001 0000 0000 0000 03 612e62 00 0001 0001");
  const n = MeshNames.fromSnapshot(meshSnapshot(yaml`
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: ab, namespace: shop}
    spec:
      hosts: [a.b]
      addresses: [192.0.2.1]
      ports: [{number: 80, name: http}]
  `));
  const cache = new ResponseCache();
  const o = {
    ttl: 30,
    zone: n.zone,
    cache,
    lookup: (q: string, t: string) => n.lookup(q, t, { namespaces: [] }),
  };
  assertEquals(decideQuery(query("a.b"), o).kind, "reply", "the real a.b is answered (and cached)");
  const d = decideQuery(bytes, o);
  assertEquals(d.kind, "forward");
  assertEquals(d.kind === "forward" && [...d.query.questionWire], [...bytes.subarray(12)]);
});

Deno.test("decideQuery() reuses cached answers with the new ID, per name, type and flags", () => {
  const cache = new ResponseCache();
  const o = {
    ttl: 30,
    zone: names.zone,
    cache,
    lookup: (n: string, t: string) => names.lookup(n, t, { namespaces: ["shop"] }),
  };
  const first = reply(decideQuery(query("reviews", "A", { id: 1 }), o));
  assertEquals(cache.size, 1);
  const again = decideQuery(query("reviews", "A", { id: 2 }), o);
  assertEquals(cache.size, 1);
  assertEquals(again.kind === "reply" && again.outcome, "answer");
  const m = reply(again);
  assertEquals({ ...m, id: 1 }, first);
  decideQuery(query("reviews", "A", { id: 3, flags: 0 }), o);
  decideQuery(query("reviews", "A", { id: 4, opt: opt() }), o);
  decideQuery(query("x.default.svc.cluster.local", "A", { id: 5 }), o);
  assertEquals(cache.size, 4);
  const nx = decideQuery(query("x.default.svc.cluster.local", "A", { id: 6 }), o);
  assertEquals(nx.kind === "reply" && [nx.outcome, reply(nx).id], ["nxdomain", 6]);
  // The same short name for a client of another namespace is another answer.
  const pay = decideQuery(query("reviews", "A", { id: 7 }), {
    ...o,
    lookup: (n: string, t: string) => names.lookup(n, t, { namespaces: ["payments"] }),
  });
  assertEquals(reply(pay).answers.map((a) => a.data), ["10.96.0.20"]);
});

Deno.test("udpLimit() is 512 without EDNS, the client's size with it, never below 512", () => {
  const q = (o?: OptRecord) => {
    const d = decide(query("www.example.org", "A", { opt: o }));
    return d.kind === "forward" ? d.query : undefined;
  };
  assertEquals(
    [udpLimit(q()), udpLimit(q(opt(4096))), udpLimit(q(opt(100))), udpLimit(undefined)],
    [
      512,
      4096,
      512,
      512,
    ],
  );
});

Deno.test("fitUdp() truncates an oversized response to its question with TC set", () => {
  const d = decide(query("www.example.org", "A", { opt: opt(512) }));
  assertOk(d.kind === "forward");
  const big = replyTo(d.query, {
    outcome: "answer",
    answers: Array.from(
      { length: 60 },
      (_, i) => ({ name: "www.example.org", type: "A", ttl: 5, data: `192.0.2.${i}` }),
    ),
  }).response;
  assertEquals(fitUdp(big, d.query, 4096).truncated, false);
  const r = fitUdp(big, d.query, 512);
  assertOk(r.truncated && r.response.length <= 512);
  const m = decodeMessage(r.response);
  assertOk(m.flags & FLAG.TC);
  assertEquals([m.id, m.answers.length, m.questions[0].name, m.additionals.length], [
    4242,
    0,
    "www.example.org",
    1,
  ]);
});

Deno.test("servfail() keeps the ID and the question", () => {
  const d = decide(query("www.example.org", "AAAA", { id: 999 }));
  assertOk(d.kind === "forward");
  const m = decodeMessage(servfail(d.query, "upstream down"));
  assertEquals([m.id, rcodeOf(m), m.questions[0].type], [999, RCODE.SERVFAIL, "AAAA"]);
});

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  return new Uint8Array(clean.match(/../g)!.map((b) => parseInt(b, 16)));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A query for the name made of `labels`, encoded by hand (the library refuses long names). */
function rawQuery(labels: string[]): Uint8Array {
  const parts: number[] = [0x01, 0x02, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
  for (const l of labels) parts.push(l.length, ...new TextEncoder().encode(l));
  parts.push(0, 0, 1, 0, 1);
  return new Uint8Array(parts);
}
