import { assertEquals, assertIncludes, assertOk } from "../../tests/_util/asserts.ts";
import { evaluateSkew, skewFromDate } from "./clock.ts";

Deno.test("skewFromDate() centres the CA's whole second on the request's midpoint", () => {
  const sent = Date.parse("2026-03-01T12:00:00.200Z");
  const got = sent + 100;
  const same = skewFromDate("Sun, 01 Mar 2026 12:00:00 GMT", sent, got)!;
  assertEquals(same.skewMs, 500 - 250);
  assertEquals(same.uncertaintyMs, 550);
  const ahead = skewFromDate("Sun, 01 Mar 2026 12:00:30 GMT", sent, got)!;
  assertEquals(ahead.skewMs, 30_250);
  assertEquals(skewFromDate(undefined, sent, got), undefined);
  assertEquals(skewFromDate("yesterday", sent, got), undefined);
});

Deno.test("evaluateSkew() warns above 5 s and fails above 60 s, either direction", () => {
  const cases: [number, string, string][] = [
    [300, "ok", "within 550ms of the CA"],
    [-4_000, "ok", "within 4s"],
    [7_000, "warn", "about 7s behind the CA"],
    [-7_000, "warn", "about 7s ahead of the CA"],
    [61_000, "fail", "about 1m 1s behind"],
    [-3_600_000, "fail", "about 1h ahead of"],
  ];
  for (const [skewMs, status, detail] of cases) {
    const r = evaluateSkew({ skewMs, uncertaintyMs: 550 }, "10.0.0.1:15012");
    assertEquals(r.status, status, String(skewMs));
    assertIncludes(r.detail, detail);
    if (status !== "ok") assertIncludes(r.hint ?? "", "chrony");
    assertOk(r.data?.skewMs === skewMs);
  }
});
