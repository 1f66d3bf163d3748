import { assertEquals, assertOk, assertRejects } from "../../tests/_util/asserts.ts";
import { seededRandom } from "./_seeded_random.ts";
import { compileFault, decideFault, type HTTPFaultInjection } from "./fault.ts";
import { ResilienceConfigError } from "./resilience_error.ts";

const DRAWS = 100_000;

Deno.test("decideFault() hits each percentage within 0.5 points over 100,000 draws", () => {
  const table: [number, number][] = [[0, 1], [0.1, 2], [1, 3], [10, 4], [33.3, 5], [50, 6], [
    99.9,
    7,
  ], [100, 8]];
  for (const [value, seed] of table) {
    const fault: HTTPFaultInjection = {
      delay: { fixedDelay: "100ms", percentage: { value } },
      abort: { httpStatus: 503, percentage: { value } },
    };
    const random = seededRandom(seed);
    let delayed = 0;
    let aborted = 0;
    let both = 0;
    for (let i = 0; i < DRAWS; i++) {
      const d = decideFault(fault, random);
      if (d.delayMs !== undefined) delayed++;
      if (d.abort) aborted++;
      if (d.delayMs !== undefined && d.abort) both++;
    }
    for (const [what, n] of [["delay", delayed], ["abort", aborted]] as const) {
      const pct = (100 * n) / DRAWS;
      assertOk(Math.abs(pct - value) <= 0.5, `${what} at ${value}%: ${pct}%`);
    }
    const independent = (value / 100) ** 2 * 100;
    assertOk(Math.abs((100 * both) / DRAWS - independent) <= 0.5, `both at ${value}%`);
    if (value === 0) assertEquals(delayed + aborted, 0);
    if (value === 100) assertEquals([delayed, aborted], [DRAWS, DRAWS]);
  }
});

Deno.test("decideFault() returns the delay and the abort the config names", () => {
  const always = { value: 100 };
  const table: [HTTPFaultInjection | undefined, ReturnType<typeof decideFault>][] = [
    [undefined, {}],
    [{}, {}],
    [{ delay: { fixedDelay: "5s", percentage: always } }, { delayMs: 5000 }],
    [{ delay: { fixedDelay: "1.5s", percent: 100 } }, { delayMs: 1500 }],
    [{ delay: { fixedDelay: "5s" } }, {}], // no percentage: no request delayed
    [{ abort: { httpStatus: 418, percentage: always } }, { abort: { status: 418 } }],
    [{ abort: { grpcStatus: "UNAVAILABLE", percentage: always } }, {
      abort: { status: 200, grpcStatus: 14 },
    }],
    [{ abort: { httpStatus: 500 } }, {}],
    [
      {
        delay: { fixedDelay: "10ms", percentage: always },
        abort: { httpStatus: 503, percentage: always },
      },
      { delayMs: 10, abort: { status: 503 } },
    ],
  ];
  for (const [fault, want] of table) assertEquals(decideFault(fault, () => 0.5), want);
});

Deno.test("decideFault() takes a compiled fault as well", () => {
  const c = compileFault({ abort: { httpStatus: 503, percentage: { value: 50 } } });
  assertEquals(decideFault(c, () => 0.49), { abort: { status: 503 } });
  assertEquals(decideFault(c, () => 0.5), {});
});

Deno.test("compileFault() refuses unusable faults with the field path", async () => {
  const table: [HTTPFaultInjection, string][] = [
    [{ delay: { fixedDelay: "soon" } }, "fault.delay.fixedDelay"],
    [{ delay: { fixedDelay: "1s", percentage: { value: 101 } } }, "fault.delay.percentage.value"],
    [{ abort: { httpStatus: 503, percentage: { value: -1 } } }, "fault.abort.percentage.value"],
    [{ abort: { httpStatus: 99 } }, "fault.abort.httpStatus: 99 is not in 200-599"],
    [{ abort: { grpcStatus: "BROKEN" } }, 'fault.abort.grpcStatus: "BROKEN"'],
    [{ abort: {} }, "fault.abort: give exactly one"],
    [{ abort: { httpStatus: 503, grpcStatus: "UNAVAILABLE" } }, "fault.abort: give exactly one"],
  ];
  for (const [fault, message] of table) {
    await assertRejects(() => compileFault(fault), ResilienceConfigError, message);
  }
});
