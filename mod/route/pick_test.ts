import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import { seededRandom } from "./_testing.ts";
import { pickBackend } from "./pick.ts";

const b = (name: string, weight: number) => ({ name, weight });

Deno.test("pickBackend() follows the weights at the edges of [0, 1)", () => {
  const rows: [weights: [string, number][], random: number, want: string | undefined][] = [
    [[["a", 90], ["b", 10]], 0, "a"],
    [[["a", 90], ["b", 10]], 0.8999, "a"],
    [[["a", 90], ["b", 10]], 0.9, "b"],
    [[["a", 90], ["b", 10]], 0.999999, "b"],
    [[["a", 0], ["b", 1]], 0, "b"],
    [[["a", 1], ["b", 0]], 0.999999, "a"],
    [[["a", 1], ["b", 0], ["c", 1]], 0.5, "c"],
    [[["a", 0], ["b", 0]], 0.5, undefined],
    [[], 0.5, undefined],
    [[["a", 1]], 1, "a"],
  ];
  for (const [weights, random, want] of rows) {
    const got = pickBackend(weights.map(([n, w]) => b(n, w)), () => random);
    assertEquals(got?.name, want, `${JSON.stringify(weights)} at ${random}`);
  }
});

Deno.test("pickBackend() splits 90/10 within 2 points over 100,000 seeded picks", () => {
  for (const seed of [1, 42, 20260821]) {
    const random = seededRandom(seed);
    const backends = [b("v1", 90), b("v2", 10), b("off", 0)];
    const counts: Record<string, number> = { v1: 0, v2: 0, off: 0 };
    for (let i = 0; i < 100_000; i++) counts[pickBackend(backends, random)!.name]++;
    assertEquals(counts.off, 0, "weight 0 is never picked");
    assertOk(Math.abs(counts.v1 / 1000 - 90) <= 2, `v1 got ${counts.v1 / 1000}% (seed ${seed})`);
    assertOk(Math.abs(counts.v2 / 1000 - 10) <= 2, `v2 got ${counts.v2 / 1000}% (seed ${seed})`);
  }
});

Deno.test("pickBackend() gives three equal weights a third each", () => {
  const random = seededRandom(7);
  const backends = [b("a", 5), b("b", 5), b("c", 5)];
  const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
  for (let i = 0; i < 30_000; i++) counts[pickBackend(backends, random)!.name]++;
  for (const n of ["a", "b", "c"]) {
    assertOk(Math.abs(counts[n] - 10_000) < 600, `${n}: ${counts[n]}`);
  }
});
