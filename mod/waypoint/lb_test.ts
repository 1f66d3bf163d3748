import { assertEquals, assertOk, assertRejects } from "../../tests/_util/asserts.ts";
import type { Endpoint } from "../config/snapshot.ts";
import { seededRandom } from "./_seeded_random.ts";
import { ep, eps, names } from "./_test_endpoints.ts";
import { createBalancer, readCookie } from "./lb.ts";
import { ResilienceConfigError } from "./resilience_error.ts";
import type { LoadBalancerSettings } from "./traffic_policy.ts";

function picks(settings: LoadBalancerSettings, list: Endpoint[], n: number): string[] {
  const lb = createBalancer(settings, { random: seededRandom(1) });
  return names(Array.from({ length: n }, () => lb.pick(list)?.endpoint));
}

function shares(picked: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of picked) out[p] = (out[p] ?? 0) + 1 / picked.length;
  return out;
}

function assertNear(actual: number, expected: number, tolerance: number, what: string) {
  assertOk(
    Math.abs(actual - expected) <= tolerance,
    `${what}: ${actual.toFixed(4)} not within ${tolerance} of ${expected}`,
  );
}

Deno.test("createBalancer() picks the policy the settings name, LEAST_REQUEST by default", () => {
  const table: [LoadBalancerSettings | undefined, string][] = [
    [undefined, "LEAST_REQUEST"],
    [{}, "LEAST_REQUEST"],
    [{ simple: "UNSPECIFIED" }, "LEAST_REQUEST"],
    [{ simple: "LEAST_CONN" }, "LEAST_REQUEST"],
    [{ simple: "LEAST_REQUEST" }, "LEAST_REQUEST"],
    [{ simple: "ROUND_ROBIN" }, "ROUND_ROBIN"],
    [{ simple: "RANDOM" }, "RANDOM"],
    [{ consistentHash: { useSourceIp: true } }, "CONSISTENT_HASH"],
  ];
  for (const [settings, kind] of table) {
    assertEquals(createBalancer(settings).kind, kind, JSON.stringify(settings));
  }
});

Deno.test("round robin rotates in list order and interleaves by weight", () => {
  const table: [Endpoint[], number, string][] = [
    [[ep("a"), ep("b"), ep("c")], 7, "a b c a b c a"],
    [[ep("a", 2), ep("b")], 6, "a b a a b a"],
    [[ep("a", 5), ep("b"), ep("c")], 7, "a a b a c a a"],
    [[ep("a", 0), ep("b"), ep("c")], 4, "b c b c"],
  ];
  for (const [list, n, want] of table) {
    assertEquals(picks({ simple: "ROUND_ROBIN" }, list, n).join(" "), want);
  }
});

Deno.test("round robin carries on when the endpoint list changes", () => {
  const lb = createBalancer({ simple: "ROUND_ROBIN" });
  const [a, b, c] = [ep("a"), ep("b"), ep("c")];
  const seen = [a, b, c].map(() => lb.pick([a, b, c])?.endpoint);
  seen.push(...[0, 1, 2, 3].map(() => lb.pick([a, c])?.endpoint));
  assertEquals(names(seen).join(" "), "a b c a c a c");
});

Deno.test("every balancer answers undefined when no endpoint is usable", () => {
  const all: LoadBalancerSettings[] = [
    {},
    { simple: "ROUND_ROBIN" },
    { simple: "RANDOM" },
    { consistentHash: { httpHeaderName: "x-user" } },
  ];
  for (const s of all) {
    const lb = createBalancer(s);
    assertEquals(lb.pick([]), undefined);
    assertEquals(lb.pick([ep("a", 0), ep("b", 0)]), undefined);
  }
});

Deno.test("least request takes the less loaded of its two random choices", () => {
  const [a, b] = [ep("a"), ep("b")];
  const draws = [0.1, 0.9]; // first choice a, second b
  const lb = createBalancer({}, { random: () => draws.shift() ?? 0 });
  for (let i = 0; i < 3; i++) lb.onStart(a);
  assertEquals(lb.pick([a, b])?.endpoint, b);
  const tie = createBalancer({}, {
    random: (() => {
      const d = [0.9, 0.1];
      return () => d.shift() ?? 0;
    })(),
  });
  assertEquals(tie.pick([a, b])?.endpoint, b, "a tie keeps the first choice");
});

Deno.test("least request avoids a busy endpoint and returns to it when it drains", () => {
  const list = eps(4);
  const lb = createBalancer({}, { random: seededRandom(7) });
  for (let i = 0; i < 10; i++) lb.onStart(list[0]);
  const busy = shares(names(Array.from({ length: 40_000 }, () => lb.pick(list)?.endpoint)));
  // e0 wins only when both draws are e0: 1/16.
  assertNear(busy.e0, 1 / 16, 0.01, "busy e0");
  for (const k of ["e1", "e2", "e3"]) assertNear(busy[k], 15 / 48, 0.015, k);
  for (let i = 0; i < 10; i++) lb.onEnd(list[0]);
  const idle = shares(names(Array.from({ length: 40_000 }, () => lb.pick(list)?.endpoint)));
  for (const k of ["e0", "e1", "e2", "e3"]) assertNear(idle[k], 0.25, 0.015, k);
});

Deno.test("least request with unequal weights shares by weight / (active + 1)", () => {
  const [a, b] = [ep("a", 3), ep("b", 1)];
  const lb = createBalancer({}, { random: seededRandom(3) });
  const s = shares(names(Array.from({ length: 40_000 }, () => lb.pick([a, b])?.endpoint)));
  assertNear(s.a, 0.75, 0.01, "a");
  lb.onStart(a);
  lb.onStart(a); // a: 3 / 3 = 1, b: 1 / 1 = 1
  const t = shares(names(Array.from({ length: 40_000 }, () => lb.pick([a, b])?.endpoint)));
  assertNear(t.a, 0.5, 0.01, "a while busy");
});

Deno.test("random honours weights", () => {
  const s = shares(picks({ simple: "RANDOM" }, [ep("a", 1), ep("b", 2), ep("c", 7)], 100_000));
  assertNear(s.a, 0.1, 0.005, "a");
  assertNear(s.b, 0.2, 0.005, "b");
  assertNear(s.c, 0.7, 0.005, "c");
});

Deno.test("consistent hash sends a key to the same endpoint and spreads keys evenly", () => {
  const list = eps(10);
  const lb = createBalancer({ consistentHash: { httpHeaderName: "x-user" } });
  const first = lb.pick(list, { headers: new Headers({ "x-user": "alice" }) })?.endpoint;
  for (let i = 0; i < 50; i++) {
    assertEquals(lb.pick(list, { headers: new Headers({ "X-User": "alice" }) })?.endpoint, first);
  }
  const owners = Array.from(
    { length: 20_000 },
    (_, i) => lb.pick(list, { headers: new Headers({ "x-user": `user-${i}` }) })?.endpoint,
  );
  for (const [k, share] of Object.entries(shares(names(owners)))) {
    assertOk(share > 0.05 && share < 0.15, `${k} has ${share}`);
  }
});

Deno.test("consistent hash moves only the removed endpoint's keys, and few keys for an added one", () => {
  const list = eps(10);
  const lb = createBalancer({ consistentHash: { httpQueryParameterName: "k" } });
  const ownerOf = (l: Endpoint[], i: number) =>
    lb.pick(l, { query: new URLSearchParams({ k: `key-${i}` }) })!.endpoint.workload;
  const keys = 10_000;
  const before = Array.from({ length: keys }, (_, i) => ownerOf(list, i));
  const removed = list[3].workload;
  const smaller = list.filter((e) => e.workload !== removed);
  let moved = 0;
  for (let i = 0; i < keys; i++) {
    const now = ownerOf(smaller, i);
    if (now !== before[i]) {
      moved++;
      assertEquals(before[i], removed, `key-${i} moved without its endpoint leaving`);
    }
  }
  assertOk(moved / keys < 0.15, `${moved} of ${keys} keys moved`);
  assertOk(moved > 0);
  const bigger = [...list, ep("e10")];
  let taken = 0;
  for (let i = 0; i < keys; i++) {
    const now = ownerOf(bigger, i);
    if (now !== before[i]) {
      taken++;
      assertEquals(now, "shop/e10", `key-${i} moved to an old endpoint`);
    }
  }
  assertOk(taken / keys < 0.15, `${taken} of ${keys} keys moved to the new endpoint`);
});

Deno.test("consistent hash honours weights", () => {
  const list = [ep("a", 3), ep("b", 1)];
  const lb = createBalancer({ consistentHash: { useSourceIp: true } });
  const owners = Array.from(
    { length: 20_000 },
    (_, i) => lb.pick(list, { sourceIp: `10.1.${i >> 8}.${i & 255}` })?.endpoint,
  );
  assertNear(shares(names(owners)).a, 0.75, 0.05, "a");
});

Deno.test("consistent hash by source IP and by query parameter is sticky", () => {
  const list = eps(5);
  const byIp = createBalancer({ consistentHash: { useSourceIp: true } });
  const one = byIp.pick(list, { sourceIp: "10.9.8.7" })?.endpoint;
  assertEquals(byIp.pick(list.toReversed(), { sourceIp: "10.9.8.7" })?.endpoint, one, "order-free");
  const byQuery = createBalancer({ consistentHash: { httpQueryParameterName: "session" } });
  const q = new URLSearchParams("session=abc&x=1");
  assertEquals(
    byQuery.pick(list, { query: q })?.endpoint,
    byQuery.pick(list, { query: q })?.endpoint,
  );
});

Deno.test("consistent hash without a key picks at random, spreading over the endpoints", () => {
  const list = eps(4);
  const lb = createBalancer({ consistentHash: { httpHeaderName: "x-user" } }, {
    random: seededRandom(5),
  });
  const s = shares(names(Array.from({ length: 20_000 }, () => lb.pick(list, {})?.endpoint)));
  for (const k of ["e0", "e1", "e2", "e3"]) assertOk(s[k] > 0.15 && s[k] < 0.35, `${k}: ${s[k]}`);
});

Deno.test("cookie hashing generates a cookie when absent and a ttl is set, then sticks to it", () => {
  const list = eps(10);
  const lb = createBalancer(
    { consistentHash: { httpCookie: { name: "sticky", path: "/", ttl: "60s" } } },
    { newCookieValue: () => "0123456789abcdef" },
  );
  const first = lb.pick(list, { headers: new Headers() })!;
  assertEquals(first.setCookie, "sticky=0123456789abcdef; Path=/; Max-Age=60; HttpOnly");
  for (const cookie of ["sticky=0123456789abcdef", 'a=1; sticky="0123456789abcdef"; b=2']) {
    const again = lb.pick(list, { headers: new Headers({ cookie }) })!;
    assertEquals(again.endpoint, first.endpoint, cookie);
    assertEquals(again.setCookie, undefined);
  }
});

Deno.test("cookie hashing: a 0s ttl makes a session cookie; no ttl generates none", () => {
  const session = createBalancer(
    { consistentHash: { httpCookie: { name: "s", ttl: "0s" } } },
    { newCookieValue: () => "v" },
  );
  assertEquals(session.pick(eps(3), {})?.setCookie, "s=v; HttpOnly");
  const none = createBalancer({ consistentHash: { httpCookie: { name: "s" } } });
  const p = none.pick(eps(3), {});
  assertOk(p);
  assertEquals(p.setCookie, undefined);
});

Deno.test("createBalancer() refuses a malformed cookie ttl with the field path", async () => {
  const e = await assertRejects(
    () => createBalancer({ consistentHash: { httpCookie: { name: "s", ttl: "soon" } } }),
    ResilienceConfigError,
    "loadBalancer.consistentHash.httpCookie.ttl",
  );
  assertEquals((e as ResilienceConfigError).code, "ERESILIENCE");
});

Deno.test("readCookie() finds one cookie in a Cookie header", () => {
  const table: [string | null, string, string | undefined][] = [
    [null, "a", undefined],
    ["a=1", "a", "1"],
    ["b=2; a=1", "a", "1"],
    ['a="q"', "a", "q"],
    ["ab=1", "a", undefined],
    ["a=", "a", ""],
    ["junk; a=x=y", "a", "x=y"],
  ];
  for (const [header, name, want] of table) {
    assertEquals(readCookie(header, name), want, String(header));
  }
});
