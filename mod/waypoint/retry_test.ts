import { assertEquals, assertOk, assertRejects } from "../../tests/_util/asserts.ts";
import { seededRandom } from "./_seeded_random.ts";
import { ResilienceConfigError } from "./resilience_error.ts";
import {
  type AttemptOutcome,
  backoffMs,
  httpRouteRetryPolicy,
  ISTIO_DEFAULT_RETRY,
  istioRetryPolicy,
  parseRetryOn,
  type RetryPolicy,
  shouldRetry,
  tryTimeoutMs,
} from "./retry.ts";

const policy = (retryOn: string, attempts = 3): RetryPolicy =>
  istioRetryPolicy({ attempts, retryOn });
const zero = { random: () => 0 };

Deno.test("shouldRetry() matches outcomes against Envoy's retry_on conditions", () => {
  const table: [string, AttemptOutcome, boolean][] = [
    ["5xx", { status: 500 }, true],
    ["5xx", { status: 503 }, true],
    ["5xx", { status: 404 }, false],
    ["5xx", { status: 200 }, false],
    ["5xx", { failure: "connect_failure" }, true],
    ["5xx", { failure: "reset" }, true],
    ["5xx", { failure: "per_try_timeout" }, true],
    ["5xx", { failure: "overflow" }, false],
    ["gateway-error", { status: 502 }, true],
    ["gateway-error", { status: 504 }, true],
    ["gateway-error", { status: 500 }, false],
    ["gateway-error", { failure: "reset" }, true],
    ["reset", { status: 503 }, false],
    ["reset", { failure: "reset" }, true],
    ["reset", { failure: "per_try_timeout" }, true],
    ["connect-failure", { failure: "connect_failure" }, true],
    ["connect-failure", { failure: "reset" }, false],
    ["connect-failure", { status: 503 }, false],
    ["refused-stream", { failure: "refused_stream" }, true],
    ["refused-stream", { failure: "reset" }, false],
    ["retriable-4xx", { status: 409 }, true],
    ["retriable-4xx", { status: 429 }, false],
    ["retriable-status-codes,429", { status: 429 }, true],
    ["429", { status: 429 }, true],
    ["429,503", { status: 500 }, false],
    ["unavailable", { status: 200, grpcStatus: 14 }, true],
    ["unavailable", { status: 200, grpcStatus: 13 }, false],
    ["cancelled,deadline-exceeded", { status: 200, grpcStatus: 4 }, true],
    ["internal", { status: 200, grpcStatus: 13 }, true],
    ["resource-exhausted", { status: 200, grpcStatus: 8 }, true],
    ["connect-failure", { failure: "overflow" }, false],
  ];
  for (const [retryOn, outcome, want] of table) {
    assertEquals(
      shouldRetry(policy(retryOn), 1, outcome, zero).retry,
      want,
      `${retryOn} / ${JSON.stringify(outcome)}`,
    );
  }
});

Deno.test("shouldRetry() stops after the configured retries and for unreplayable bodies", () => {
  const p = policy("5xx", 2);
  const out: AttemptOutcome = { status: 503 };
  assertEquals(shouldRetry(p, 1, out, zero), { retry: true, delayMs: 0 });
  assertEquals(shouldRetry(p, 2, out, zero), { retry: true, delayMs: 0 });
  assertEquals(shouldRetry(p, 3, out, zero), { retry: false, reason: "exhausted" });
  assertEquals(shouldRetry(p, 1, { status: 200 }, zero), { retry: false, reason: "not_retriable" });
  assertEquals(
    shouldRetry(p, 1, out, { ...zero, bodyReplayable: false }),
    { retry: false, reason: "body_not_replayable" },
  );
  assertEquals(shouldRetry(istioRetryPolicy({ attempts: 0 }), 1, out, zero).retry, false);
});

Deno.test("backoff is fully jittered exponential: [0, (2^n - 1) x 25 ms), capped at 250 ms", () => {
  const p = policy("5xx", 10);
  const table: [number, number][] = [[1, 25], [2, 75], [3, 175], [4, 250], [5, 250], [40, 250]];
  const random = seededRandom(11);
  for (const [retry, ceiling] of table) {
    let max = 0;
    let sum = 0;
    for (let i = 0; i < 5000; i++) {
      const d = backoffMs(p, retry, random);
      assertOk(d >= 0 && d < ceiling && Number.isInteger(d), `retry ${retry}: ${d}`);
      max = Math.max(max, d);
      sum += d;
    }
    assertOk(max >= ceiling - 2, `retry ${retry} reaches near ${ceiling} (max ${max})`);
    assertOk(Math.abs(sum / 5000 - ceiling / 2) < ceiling * 0.05, `retry ${retry} mean`);
  }
  assertEquals(backoffMs(p, 1, () => 0.9999), 24);
  const slow = istioRetryPolicy({ attempts: 3, backoff: "100ms" });
  assertEquals(slow.backoff, { baseMs: 100, maxMs: 1000 });
  assertEquals(backoffMs(slow, 9, () => 0.5), 500);
});

Deno.test("istioRetryPolicy() applies Istio's defaults", () => {
  assertEquals(istioRetryPolicy(undefined), ISTIO_DEFAULT_RETRY);
  const p = istioRetryPolicy({ attempts: 5, perTryTimeout: "2s" });
  assertEquals(p.attempts, 5);
  assertEquals(p.perTryTimeoutMs, 2000);
  assertEquals([...p.retryOn], [...ISTIO_DEFAULT_RETRY.retryOn]);
  assertEquals([...p.statusCodes], [503]);
  const d = ISTIO_DEFAULT_RETRY;
  assertEquals(shouldRetry(d, 1, { status: 503 }, zero).retry, true);
  assertEquals(shouldRetry(d, 1, { status: 500 }, zero).retry, false);
  assertEquals(shouldRetry(d, 1, { failure: "connect_failure" }, zero).retry, true);
  assertEquals(shouldRetry(d, 1, { failure: "reset" }, zero).retry, false);
  assertEquals(shouldRetry(d, 3, { status: 503 }, zero).retry, false);
});

Deno.test("httpRouteRetryPolicy() retries codes (default 500, 502, 503, 504) and connect errors", () => {
  const p = httpRouteRetryPolicy({ attempts: 1 }, "500ms");
  assertEquals(p.perTryTimeoutMs, 500);
  for (const status of [500, 502, 503, 504]) assertOk(shouldRetry(p, 1, { status }, zero).retry);
  assertEquals(shouldRetry(p, 1, { status: 501 }, zero).retry, false);
  assertOk(shouldRetry(p, 1, { failure: "connect_failure" }, zero).retry);
  assertEquals(shouldRetry(p, 2, { status: 503 }, zero).retry, false);
  const codes = httpRouteRetryPolicy({ codes: [429], backoff: "1s" });
  assertEquals([codes.attempts, [...codes.statusCodes], codes.backoff.baseMs], [2, [429], 1000]);
  assertEquals(shouldRetry(codes, 1, { status: 503 }, zero).retry, false);
  assertEquals(httpRouteRetryPolicy(undefined).attempts, 2);
});

Deno.test("tryTimeoutMs() bounds the per-try timeout by the request's remaining time", () => {
  const p = istioRetryPolicy({ attempts: 2, perTryTimeout: "1s" });
  const table: [RetryPolicy, number | undefined, number | undefined][] = [
    [p, undefined, 1000],
    [p, 400, 400],
    [p, 5000, 1000],
    [ISTIO_DEFAULT_RETRY, 700, 700],
    [ISTIO_DEFAULT_RETRY, undefined, undefined],
  ];
  for (const [policy, remaining, want] of table) {
    assertEquals(tryTimeoutMs(policy, remaining), want);
  }
});

Deno.test("parseRetryOn() reads names and codes and refuses the rest", async () => {
  const { retryOn, statusCodes } = parseRetryOn(" 5xx, 503 ,reset,,");
  assertEquals([...retryOn], ["5xx", "retriable-status-codes", "reset"]);
  assertEquals([...statusCodes], [503]);
  await assertRejects(() => parseRetryOn("5xx,sometimes"), ResilienceConfigError, '"sometimes"');
  await assertRejects(() => parseRetryOn("999"), ResilienceConfigError, "999");
  await assertRejects(
    () => istioRetryPolicy({ attempts: 1, perTryTimeout: "0s" }),
    ResilienceConfigError,
    "retries.perTryTimeout",
  );
  await assertRejects(() => istioRetryPolicy({ attempts: -1 }), ResilienceConfigError, "attempts");
});
