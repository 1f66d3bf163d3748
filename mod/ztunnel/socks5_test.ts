import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import {
  encodeSocks5Reply,
  MAX_SOCKS5_HANDSHAKE,
  parseSocks5,
  proxyTarget,
  SOCKS4_REJECTED,
  type Socks5Parse,
} from "./socks5.ts";

const GREET = [5, 1, 0];
const name = (s: string) => [s.length, ...new TextEncoder().encode(s)];
const connect = (atyp: number, addr: number[], port: number) => [
  5,
  1,
  0,
  atyp,
  ...addr,
  port >> 8,
  port & 0xff,
];
const v6 = (...groups: number[]) => groups.flatMap((g) => [g >> 8, g & 0xff]);

type Want =
  | { kind: "need-more"; greeted: boolean }
  | { kind: "request"; host: string; hostKind: string; port: number; consumed: number }
  | { kind: "error"; reason: string; reply?: number[] };

function summary(r: Socks5Parse): Want {
  if (r.kind === "need-more") return r;
  if (r.kind === "request") {
    return {
      kind: "request",
      host: r.target.host,
      hostKind: r.target.kind,
      port: r.target.port,
      consumed: r.consumed,
    };
  }
  return { kind: "error", reason: r.reason, ...(r.reply ? { reply: [...r.reply] } : {}) };
}

const reply = (code: number) => [...encodeSocks5Reply(code)];

const ROWS: [string, number[], Want][] = [
  ["nothing yet", [], { kind: "need-more", greeted: false }],
  ["version only", [5], { kind: "need-more", greeted: false }],
  ["methods still coming", [5, 2, 0], { kind: "need-more", greeted: false }],
  ["greeting with no-auth", GREET, { kind: "need-more", greeted: true }],
  ["no-auth among others", [5, 3, 2, 1, 0], { kind: "need-more", greeted: true }],
  ["only user/password offered", [5, 1, 2], {
    kind: "error",
    reason: "no_acceptable_method",
    reply: [5, 0xff],
  }],
  ["no methods at all", [5, 0], {
    kind: "error",
    reason: "no_acceptable_method",
    reply: [5, 0xff],
  }],
  ["SOCKS4 client", [4, 1, 0, 80, 127, 0, 0, 1, 0], {
    kind: "error",
    reason: "bad_version",
    reply: [...SOCKS4_REJECTED],
  }],
  ["HTTP instead of SOCKS", [...new TextEncoder().encode("GET / HTTP/1.1\r\n")], {
    kind: "error",
    reason: "bad_version",
  }],
  ["request half there", [...GREET, 5, 1, 0, 1, 127], { kind: "need-more", greeted: true }],
  ["IPv4", [...GREET, ...connect(1, [127, 0, 0, 1], 80)], {
    kind: "request",
    host: "127.0.0.1",
    hostKind: "ipv4",
    port: 80,
    consumed: 13,
  }],
  ["IPv4 with early data", [...GREET, ...connect(1, [10, 1, 2, 3], 8080), 1, 2, 3], {
    kind: "request",
    host: "10.1.2.3",
    hostKind: "ipv4",
    port: 8080,
    consumed: 13,
  }],
  ["IPv6 loopback", [...GREET, ...connect(4, v6(0, 0, 0, 0, 0, 0, 0, 1), 443)], {
    kind: "request",
    host: "::1",
    hostKind: "ipv6",
    port: 443,
    consumed: 25,
  }],
  ["IPv6 in canonical text", [
    ...GREET,
    ...connect(4, v6(0x2001, 0xdb8, 0, 0, 0xa, 0, 0, 0xb), 9080),
  ], { kind: "request", host: "2001:db8::a:0:0:b", hostKind: "ipv6", port: 9080, consumed: 25 }],
  ["domain, lower-cased, trailing dot dropped", [
    ...GREET,
    ...connect(3, name("Reviews.Default.SVC."), 9080),
  ], {
    kind: "request",
    host: "reviews.default.svc",
    hostKind: "domain",
    port: 9080,
    consumed: 3 + 4 + 1 + 20 + 2,
  }],
  ["an IPv4 literal sent as a domain name", [...GREET, ...connect(3, name("10.0.0.5"), 80)], {
    kind: "request",
    host: "10.0.0.5",
    hostKind: "ipv4",
    port: 80,
    consumed: 3 + 4 + 1 + 8 + 2,
  }],
  ["an IPv6 literal sent as a domain name", [...GREET, ...connect(3, name("[::1]"), 80)], {
    kind: "request",
    host: "::1",
    hostKind: "ipv6",
    port: 80,
    consumed: 3 + 4 + 1 + 5 + 2,
  }],
  ["domain still coming", [...GREET, 5, 1, 0, 3, 10, 0x61, 0x62], {
    kind: "need-more",
    greeted: true,
  }],
  ["empty domain name", [...GREET, 5, 1, 0, 3, 0, 0, 80], {
    kind: "error",
    reason: "malformed",
    reply: reply(1),
  }],
  ["non-printable domain name", [...GREET, ...connect(3, [3, 0x61, 0x00, 0x62], 80)], {
    kind: "error",
    reason: "malformed",
    reply: reply(1),
  }],
  ["domain with a space", [...GREET, ...connect(3, name("a b"), 80)], {
    kind: "error",
    reason: "malformed",
    reply: reply(1),
  }],
  ["shorthand IPv4 as a name", [...GREET, ...connect(3, name("127.1"), 80)], {
    kind: "error",
    reason: "malformed",
    reply: reply(1),
  }],
  ["port 0", [...GREET, ...connect(1, [127, 0, 0, 1], 0)], {
    kind: "error",
    reason: "malformed",
    reply: reply(1),
  }],
  ["BIND", [...GREET, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80], {
    kind: "error",
    reason: "unsupported_command",
    reply: reply(7),
  }],
  ["UDP ASSOCIATE, refused as soon as the command is seen", [...GREET, 5, 3], {
    kind: "error",
    reason: "unsupported_command",
    reply: reply(7),
  }],
  ["unknown command", [...GREET, 5, 0x7f, 0, 1], {
    kind: "error",
    reason: "unsupported_command",
    reply: reply(7),
  }],
  ["address type 5", [...GREET, 5, 1, 0, 5, 1, 2, 3, 4], {
    kind: "error",
    reason: "unsupported_address_type",
    reply: reply(8),
  }],
  ["address type 0", [...GREET, 5, 1, 0, 0], {
    kind: "error",
    reason: "unsupported_address_type",
    reply: reply(8),
  }],
  ["request with version 4", [...GREET, 4, 1, 0, 1, 127, 0, 0, 1, 0, 80], {
    kind: "error",
    reason: "bad_version",
    reply: reply(1),
  }],
];

Deno.test("parseSocks5() decides on each table row", () => {
  for (const [what, bytes, want] of ROWS) {
    const r = parseSocks5(Uint8Array.from(bytes));
    assertEquals(summary(r), want, what);
    // Errors after a good greeting: the shell owes `05 00` before the reply.
    if (r.kind === "error") assertEquals(r.greeted, r.reply?.length === 10, what);
  }
});

Deno.test("parseSocks5() needs more for every strict prefix of a request, then decides", () => {
  const full = [...GREET, ...connect(3, name("productpage.bookinfo"), 9080)];
  for (let n = 0; n < full.length; n++) {
    assertEquals(parseSocks5(Uint8Array.from(full.slice(0, n))).kind, "need-more", `prefix ${n}`);
  }
  assertEquals(parseSocks5(Uint8Array.from(full)).kind, "request");
});

Deno.test("parseSocks5() never throws and always decides within MAX_SOCKS5_HANDSHAKE bytes", () => {
  let seed = 7;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
  for (let i = 0; i < 2000; i++) {
    const buf = Uint8Array.from({ length: MAX_SOCKS5_HANDSHAKE }, rand);
    // Bias towards the interesting paths: a valid greeting and request head.
    if (i % 2 === 0) buf.set([5, 1 + (i % 4), 0, 0, 0, 5, 1, 0, i % 6]);
    const r = parseSocks5(buf);
    assertOk(r.kind !== "need-more", `row ${i} still needs more after ${buf.length} bytes`);
  }
  // The longest legal handshake: 255 methods and a 255-byte name (not a valid host name).
  const longest = Uint8Array.from([
    5,
    255,
    ...Array(255).fill(0),
    5,
    1,
    0,
    3,
    255,
    ...Array(255).fill(0x61),
    0,
    80,
  ]);
  assertEquals(longest.length, MAX_SOCKS5_HANDSHAKE);
  assertEquals(parseSocks5(longest.subarray(0, -1)).kind, "need-more");
  assertEquals(parseSocks5(longest).kind, "error");
});

Deno.test("proxyTarget() classifies hosts and refuses what resolvers read ambiguously", () => {
  const rows: [string, number, string | { host: string; kind: string }][] = [
    ["10.0.0.1", 80, { host: "10.0.0.1", kind: "ipv4" }],
    ["::1", 80, { host: "::1", kind: "ipv6" }],
    ["[2001:DB8:0:0::1]", 80, { host: "2001:db8::1", kind: "ipv6" }],
    ["Reviews.default", 80, { host: "reviews.default", kind: "domain" }],
    ["localhost.", 80, { host: "localhost", kind: "domain" }],
    ["_svc.x-y.example", 80, { host: "_svc.x-y.example", kind: "domain" }],
    ["", 80, "empty"],
    [".", 80, "empty"],
    ["a..b", 80, "not a host name"],
    ["a/b", 80, "not a host name"],
    ["user@host", 80, "not a host name"],
    ["x".repeat(64), 80, "not a host name"],
    [("a".repeat(60) + ".").repeat(5), 80, "max 253"],
    ["127.1", 80, "not a canonical dotted-quad"],
    ["0x7f.0.0.1", 80, "not a canonical dotted-quad"],
    ["010.0.0.1", 80, "not a canonical dotted-quad"],
    ["256.1.1.1", 80, "not a canonical dotted-quad"],
    ["fe80::1%eth0", 80, "zones are not supported"],
    ["[10.0.0.1]", 80, "not a bracketed IPv6"],
    ["[::1", 80, "not a bracketed IPv6"],
    ["host", 0, "not in 1-65535"],
    ["host", 65536, "not in 1-65535"],
  ];
  for (const [host, port, want] of rows) {
    const r = proxyTarget(host, port);
    if (typeof want === "string") {
      assertOk(!r.ok && r.reason.includes(want), `${host}: ${JSON.stringify(r)}`);
    } else {
      assertEquals(r, { ok: true, target: { host: want.host, port, kind: want.kind } }, host);
    }
  }
});
