import { assertEquals, assertIncludes } from "../../tests/_util/asserts.ts";
import { formatSpan } from "./_format.ts";
import { CLOCK_HINT, evaluateValidity } from "./validity.ts";

const H = 3600e3;
const D = 24 * H;
const start = new Date("2026-01-01T00:00:00Z");
const cert = (lifetimeMs: number) => ({
  notBefore: start,
  notAfter: new Date(start.getTime() + lifetimeMs),
});
const at = (ms: number) => new Date(start.getTime() + ms);

Deno.test("evaluateValidity() judges dates against now and the thresholds", () => {
  const cases: [string, ReturnType<typeof cert>, Date, number, string, string][] = [
    ["fresh year-long", cert(365 * D), at(D), 7 * D, "ok", "valid until 2027-01-01T00:00:00Z"],
    ["not yet valid", cert(365 * D), at(-5 * 60e3), 7 * D, "fail", "not valid until"],
    ["expired", cert(D), at(D + 2 * H), 7 * D, "fail", "expired 2026-01-02T00:00:00Z (2h ago)"],
    ["expires at this instant", cert(D), at(D), 7 * D, "fail", "expired"],
    ["within the warning", cert(100 * H), at(H), 168 * H, "warn", "expires in 4d 3h"],
    ["past 80% of its life", cert(30 * D), at(25 * D), 1 * D, "warn", "83% of its lifetime used"],
    ["just under 80%", cert(100 * D), at(79 * D), 1 * D, "ok", "valid until"],
  ];
  for (const [name, c, now, warn, status, detail] of cases) {
    const v = evaluateValidity(c, { now, warnWithinMs: warn, renewHint: "renew it" });
    assertEquals(v.status, status, name);
    assertIncludes(v.detail, detail, name);
    if (status !== "ok") {
      assertEquals(
        v.hint,
        status === "fail" && /not valid/.test(detail) ? CLOCK_HINT : "renew it",
        name,
      );
    }
  }
});

Deno.test("evaluateValidity() reports the time left", () => {
  const v = evaluateValidity(cert(10 * D), { now: at(D), warnWithinMs: 0, renewHint: "x" });
  assertEquals(v.remainingMs, 9 * D);
});

Deno.test("formatSpan() shows the two largest units", () => {
  const cases: [number, string][] = [
    [850, "850ms"],
    [12_000, "12s"],
    [61_000, "1m 1s"],
    [3600e3, "1h"],
    [2 * D + 30_000, "2d"],
    [3 * D + 4 * H + 5_000, "3d 4h"],
    [-90_000, "1m 30s"],
  ];
  for (const [ms, want] of cases) assertEquals(formatSpan(ms), want, String(ms));
});
