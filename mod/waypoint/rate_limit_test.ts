import { assertEquals, assertRejects } from "../../tests/_util/asserts.ts";
import { FakeClock } from "../util/clock.ts";
import { type LocalRateLimitConfig, LocalRateLimiter } from "./rate_limit.ts";
import { ResilienceConfigError } from "./resilience_error.ts";

const bucket = (maxTokens: number, tokensPerFill: number | undefined, fillInterval: string) => ({
  tokenBucket: { maxTokens, tokensPerFill, fillInterval },
});

function drain(l: LocalRateLimiter): number {
  let n = 0;
  while (l.tryTake()) n++;
  return n;
}

Deno.test("LocalRateLimiter starts full and refills tokensPerFill per fillInterval, up to maxTokens", async () => {
  const clock = new FakeClock();
  const l = new LocalRateLimiter(bucket(10, 3, "1s"), { clock });
  // [ms to advance, tokens taken after it]
  const table: [number, number][] = [
    [0, 10], // starts full
    [999, 0], // no fill before the interval
    [1, 3], // one fill at 1 s
    [2500, 6], // fills at 2 s and 3 s; 3.5 s now
    [499, 0],
    [1, 3], // fill at 4 s, on the grid from creation
    [60_000, 10], // capped at maxTokens
  ];
  for (const [ms, want] of table) {
    await clock.advance(ms);
    assertEquals(drain(l), want, `after +${ms} ms (t=${clock.now() - Date.UTC(2026, 0, 1)})`);
  }
});

Deno.test("LocalRateLimiter defaults tokensPerFill to 1; maxTokens 0 refuses everything", async () => {
  const clock = new FakeClock();
  const one = new LocalRateLimiter(bucket(5, undefined, "100ms"), { clock });
  drain(one);
  await clock.advance(300);
  assertEquals(one.tokens, 3);
  const none = new LocalRateLimiter(bucket(0, 1, "50ms"), { clock });
  await clock.advance(1000);
  assertEquals(none.tryTake(), false);
});

Deno.test("LocalRateLimiter.take() answers 429 with x-envoy-ratelimited and, with draft 03, x-ratelimit-*", async () => {
  const clock = new FakeClock();
  const plain = new LocalRateLimiter(bucket(1, 1, "1s"), { clock });
  assertEquals(plain.take(), { allowed: true, status: 429, headers: {} });
  assertEquals(plain.take(), {
    allowed: false,
    status: 429,
    headers: { "x-envoy-ratelimited": "true" },
  });
  const draft: LocalRateLimitConfig = {
    ...bucket(2, 1, "10s"),
    status: 503,
    enableXRateLimitHeaders: "DRAFT_VERSION_03",
  };
  const l = new LocalRateLimiter(draft, { clock });
  await clock.advance(2500);
  assertEquals(l.take(), {
    allowed: true,
    status: 503,
    headers: { "x-ratelimit-limit": "2", "x-ratelimit-remaining": "1", "x-ratelimit-reset": "8" },
  });
  l.take();
  assertEquals(l.take(), {
    allowed: false,
    status: 503,
    headers: {
      "x-envoy-ratelimited": "true",
      "x-ratelimit-limit": "2",
      "x-ratelimit-remaining": "0",
      "x-ratelimit-reset": "8",
    },
  });
});

Deno.test("LocalRateLimiter refuses unusable settings with the field path", async () => {
  const table: [LocalRateLimitConfig, string][] = [
    [bucket(-1, 1, "1s"), "tokenBucket.maxTokens"],
    [bucket(1.5, 1, "1s"), "tokenBucket.maxTokens"],
    [bucket(1, 0, "1s"), "tokenBucket.tokensPerFill"],
    [bucket(1, 1, "10ms"), 'tokenBucket.fillInterval: "10ms" is not a duration of at least 50ms'],
    [bucket(1, 1, "often"), "tokenBucket.fillInterval"],
    [{ ...bucket(1, 1, "1s"), status: 200 }, "localRateLimit.status"],
  ];
  for (const [config, message] of table) {
    await assertRejects(() => new LocalRateLimiter(config), ResilienceConfigError, message);
  }
});
