import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import { type Acquired, CircuitBreaker, type LimitKind } from "./pool_limits.ts";
import type { ConnectionPoolSettings } from "./traffic_policy.ts";

Deno.test("CircuitBreaker overflows each kind at its limit with 503 UO, and frees on release", () => {
  const table: [ConnectionPoolSettings, LimitKind, number][] = [
    [{ tcp: { maxConnections: 2 } }, "connection", 2],
    [{ http: { http1MaxPendingRequests: 1 } }, "pending", 1],
    [{ http: { http2MaxRequests: 3 } }, "request", 3],
    [{ http: { maxRetries: 2 } }, "retry", 2],
  ];
  for (const [settings, kind, limit] of table) {
    const b = new CircuitBreaker(settings);
    const held: Acquired[] = [];
    for (let i = 0; i < limit; i++) {
      const s = b.tryAcquire(kind);
      assertOk(s.ok, `${kind} slot ${i + 1}`);
      held.push(s);
    }
    assertEquals(b.tryAcquire(kind), { ok: false, kind, limit, status: 503, flag: "UO" });
    held[0].release();
    assertOk(b.tryAcquire(kind).ok, `${kind} slot after a release`);
    assertEquals(b.stats()[kind], { inUse: limit, limit, overflows: 1 });
  }
});

Deno.test("CircuitBreaker kinds are independent and unset limits are unlimited", () => {
  const b = new CircuitBreaker({ http: { http2MaxRequests: 1 } });
  assertOk(b.tryAcquire("request").ok);
  assertEquals(b.tryAcquire("request").ok, false);
  for (let i = 0; i < 10_000; i++) assertOk(b.tryAcquire("connection").ok);
  assertOk(new CircuitBreaker().tryAcquire("retry").ok);
});

Deno.test("CircuitBreaker release is idempotent", () => {
  const b = new CircuitBreaker({ tcp: { maxConnections: 1 } });
  const s = b.tryAcquire("connection");
  assertOk(s.ok);
  s.release();
  s.release();
  assertEquals(b.stats().connection.inUse, 0);
  assertOk(b.tryAcquire("connection").ok);
  assertEquals(b.tryAcquire("connection").ok, false, "a double release did not free two slots");
});

Deno.test("CircuitBreaker.connectionSpent() follows maxRequestsPerConnection (0: no limit)", () => {
  const table: [number | undefined, number, boolean][] = [
    [undefined, 1_000_000, false],
    [0, 1_000_000, false],
    [1, 0, false],
    [1, 1, true],
    [100, 99, false],
    [100, 100, true],
  ];
  for (const [max, served, spent] of table) {
    const b = new CircuitBreaker({ http: { maxRequestsPerConnection: max } });
    assertEquals(b.connectionSpent(served), spent, `${max}/${served}`);
  }
});
