import { assertEquals, assertRejects } from "../../tests/_util/asserts.ts";
import { FakeClock } from "../util/clock.ts";
import { ep, eps, names } from "./_test_endpoints.ts";
import { createBalancer } from "./lb.ts";
import { OutlierDetector, type OutlierOutcome } from "./outlier.ts";
import { ResilienceConfigError } from "./resilience_error.ts";
import type { OutlierDetectionSettings } from "./traffic_policy.ts";

const S = 1000;
const times = (n: number, o: OutlierOutcome): OutlierOutcome[] => Array(n).fill(o);

Deno.test("OutlierDetector ejects after the configured consecutive errors", () => {
  const table: [string, OutlierDetectionSettings, OutlierOutcome[], boolean][] = [
    ["5 x 5xx, default threshold", {}, times(5, 500), true],
    ["4 x 5xx", {}, times(4, 503), false],
    ["a success resets the streak", {}, [...times(4, 500), 200, 500], false],
    ["a 4xx resets the streak", {}, [...times(4, 500), 404, ...times(4, 500)], false],
    ["threshold 2", { consecutive5xxErrors: 2 }, [500, 501], true],
    ["0 turns 5xx detection off", { consecutive5xxErrors: 0 }, times(20, 500), false],
    ["gateway errors", { consecutive5xxErrors: 0, consecutiveGatewayErrors: 3 }, [
      502,
      503,
      504,
    ], true],
    [
      "a non-gateway 5xx resets the gateway streak",
      {
        consecutive5xxErrors: 0,
        consecutiveGatewayErrors: 3,
      },
      [502, 500, 503, 504],
      false,
    ],
    ["connect failures count as 5xx when not split", {}, times(5, "connect_failure"), true],
    ["a connect failure continues a 5xx streak", {}, [...times(4, 500), "connect_failure"], true],
    ["a timeout counts as 504", { consecutive5xxErrors: 0, consecutiveGatewayErrors: 1 }, [
      "timeout",
    ], true],
    [
      "split: connect failures have their own threshold",
      {
        splitExternalLocalOriginErrors: true,
        consecutiveLocalOriginFailures: 2,
      },
      ["connect_failure", "reset"],
      true,
    ],
    [
      "split: connect failures do not count as 5xx",
      {
        splitExternalLocalOriginErrors: true,
        consecutiveLocalOriginFailures: 10,
      },
      times(9, "connect_failure"),
      false,
    ],
    [
      "split: connect failures do not break a 5xx streak",
      {
        splitExternalLocalOriginErrors: true,
        consecutiveLocalOriginFailures: 10,
      },
      [500, 500, "connect_failure", 500, 500, 500],
      true,
    ],
    [
      "split: a response resets the local streak",
      {
        splitExternalLocalOriginErrors: true,
        consecutiveLocalOriginFailures: 2,
      },
      ["connect_failure", 500, "connect_failure"],
      false,
    ],
  ];
  for (const [what, settings, outcomes, ejected] of table) {
    const d = new OutlierDetector(settings, { clock: new FakeClock() });
    const a = ep("a");
    for (const o of outcomes) d.report(a, o);
    assertEquals(d.isEjected(a), ejected, what);
  }
});

Deno.test("OutlierDetector backs off: base ejection time x number of ejections, decaying while healthy", async () => {
  const clock = new FakeClock();
  const d = new OutlierDetector({ interval: "10s", baseEjectionTime: "30s" }, { clock });
  const a = ep("a");
  const fail = () => times(5, 500).forEach((o) => d.report(a, o));
  const durations: number[] = [];
  for (let i = 0; i < 3; i++) {
    fail();
    durations.push(d.ejectedUntil(a)! - clock.now());
    await clock.advance(durations[i] - 1);
    assertEquals(d.isEjected(a), true, `ejection ${i + 1} still in force`);
    await clock.advance(1); // the sweeps fall on the ejection's end here (10 s grid)
    assertEquals(d.isEjected(a), false, `ejection ${i + 1} over`);
  }
  assertEquals(durations, [30 * S, 60 * S, 90 * S]);
  await clock.advance(20 * S); // two healthy sweeps: multiplier 3 -> 1
  fail();
  assertEquals(d.ejectedUntil(a)! - clock.now(), 60 * S);
  await clock.advance(60 * S);
  await clock.advance(30 * S); // three more healthy sweeps: back to 0
  fail();
  assertEquals(d.ejectedUntil(a)! - clock.now(), 30 * S);
});

Deno.test("OutlierDetector caps ejection time at max_ejection_time", async () => {
  const clock = new FakeClock();
  const d = new OutlierDetector({ interval: "1s", baseEjectionTime: "100s" }, { clock });
  const a = ep("a");
  const seen: number[] = [];
  for (let i = 0; i < 4; i++) {
    times(5, 502).forEach((o) => d.report(a, o));
    seen.push(d.ejectedUntil(a)! - clock.now());
    await clock.advance(seen[i]);
    assertEquals(d.isEjected(a), false);
  }
  assertEquals(seen, [100 * S, 200 * S, 300 * S, 300 * S]);
});

Deno.test("OutlierDetector returns an endpoint at the first sweep after its time", async () => {
  const clock = new FakeClock();
  const d = new OutlierDetector({ interval: "7s", baseEjectionTime: "30s" }, { clock });
  const a = ep("a");
  times(5, 500).forEach((o) => d.report(a, o));
  await clock.advance(34_999); // sweeps at 7, 14, 21, 28 s: too early; the next is at 35 s
  assertEquals(d.isEjected(a), true);
  await clock.advance(1);
  assertEquals(d.isEjected(a), false);
});

Deno.test("OutlierDetector never ejects more than maxEjectionPercent, but always one", async () => {
  const table: [number, OutlierDetectionSettings, number][] = [
    [10, {}, 1], // 10 % of 10
    [20, {}, 2],
    [3, {}, 1], // 10 % of 3 is 0.3: one is still allowed
    [10, { maxEjectionPercent: 25 }, 2],
    [4, { maxEjectionPercent: 50 }, 2],
    [4, { maxEjectionPercent: 100 }, 4],
    [4, { maxEjectionPercent: 0 }, 0],
  ];
  for (const [n, settings, want] of table) {
    const d = new OutlierDetector(settings, { clock: new FakeClock() });
    const list = eps(n);
    d.update(list);
    for (const e of list) times(5, 500).forEach((o) => d.report(e, o));
    assertEquals(d.ejectedCount, want, `${n} endpoints, ${JSON.stringify(settings)}`);
  }
  // A host held back by the cap is ejected at its next failure once there is room.
  const clock = new FakeClock();
  const d = new OutlierDetector({}, { clock });
  const list = eps(10);
  d.update(list);
  for (const e of list.slice(0, 2)) times(5, 500).forEach((o) => d.report(e, o));
  assertEquals([d.isEjected(list[0]), d.isEjected(list[1])], [true, false]);
  await clock.advance(30 * S);
  d.report(list[1], 503);
  assertEquals([d.isEjected(list[0]), d.isEjected(list[1])], [false, true]);
});

Deno.test("OutlierDetector.eligible() uses every endpoint below minHealthPercent", () => {
  const list = eps(4);
  const table: [number, number, string][] = [
    // [minHealthPercent, ejected, eligible]
    [0, 1, "e1 e2 e3"],
    [0, 4, ""],
    [50, 1, "e1 e2 e3"],
    [50, 2, "e2 e3"], // exactly 50 % healthy: not below
    [50, 3, "e0 e1 e2 e3"],
    [100, 1, "e0 e1 e2 e3"],
  ];
  for (const [minHealthPercent, ejected, want] of table) {
    const d = new OutlierDetector({ maxEjectionPercent: 100, minHealthPercent }, {
      clock: new FakeClock(),
    });
    d.update(list);
    for (const e of list.slice(0, ejected)) times(5, 500).forEach((o) => d.report(e, o));
    assertEquals(names(d.eligible(list)).join(" "), want, `min ${minHealthPercent}, ${ejected}`);
  }
});

Deno.test("OutlierDetector forgets the streak on return, so recovery needs a full streak again", async () => {
  const clock = new FakeClock();
  const events: [string, number][] = [];
  const d = new OutlierDetector({}, { clock, onEject: (k, until) => events.push([k, until]) });
  const a = ep("a");
  times(5, 500).forEach((o) => d.report(a, o));
  assertEquals(events, [["shop/a", clock.now() + 30 * S]]);
  d.report(a, 500); // answers arriving while ejected are ignored
  await clock.advance(30 * S);
  times(4, 500).forEach((o) => d.report(a, o));
  assertEquals(d.isEjected(a), false);
  d.report(a, 500);
  assertEquals(d.isEjected(a), true);
});

Deno.test("OutlierDetector.update() drops endpoints that left; eligible() registers new ones", () => {
  const d = new OutlierDetector({ maxEjectionPercent: 50 }, { clock: new FakeClock() });
  const [a, b] = [ep("a"), ep("b")];
  d.eligible([a, b]);
  times(5, 500).forEach((o) => d.report(a, o));
  assertEquals(d.ejectedCount, 1);
  d.update([b]);
  assertEquals(d.ejectedCount, 0);
  assertEquals(d.isEjected(a), false);
});

Deno.test("OutlierDetector refuses unusable durations with the field path", async () => {
  const table: [OutlierDetectionSettings, string][] = [
    [{ interval: "0s" }, "outlierDetection.interval: must be > 0"],
    [{ interval: "soon" }, 'outlierDetection.interval: "soon" is not a duration'],
    [{ baseEjectionTime: "0ms" }, "outlierDetection.baseEjectionTime: must be > 0"],
  ];
  for (const [settings, message] of table) {
    await assertRejects(() => new OutlierDetector(settings), ResilienceConfigError, message);
  }
});

Deno.test("a balancer over eligible() never picks an ejected endpoint, and picks it again on return", async () => {
  const clock = new FakeClock();
  const d = new OutlierDetector({ maxEjectionPercent: 50 }, { clock });
  const list = eps(4);
  const table = [{ simple: "ROUND_ROBIN" as const }, {}, { consistentHash: { useSourceIp: true } }];
  for (const settings of table) {
    const lb = createBalancer(settings);
    d.update(list);
    times(5, 503).forEach((o) => d.report(list[1], o));
    const picked = new Set<string>();
    for (let i = 0; i < 400; i++) {
      picked.add(lb.pick(d.eligible(list), { sourceIp: `10.0.0.${i % 250}` })!.endpoint.workload);
    }
    assertEquals(picked.has("shop/e1"), false, JSON.stringify(settings));
    await clock.advance(30 * S);
    for (let i = 0; i < 400; i++) {
      picked.add(lb.pick(d.eligible(list), { sourceIp: `10.0.0.${i % 250}` })!.endpoint.workload);
    }
    assertEquals(picked.has("shop/e1"), true, `${JSON.stringify(settings)} after return`);
    await clock.advance(60 * S); // let the multiplier decay
  }
});
