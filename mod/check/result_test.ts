import { assertEquals } from "../../tests/_util/asserts.ts";
import {
  type CheckResult,
  type CheckStatus,
  countStatuses,
  exitCodeFor,
  summaryLine,
  worstStatus,
} from "./result.ts";

const r = (status: CheckStatus): CheckResult => ({ name: status, status, detail: "" });

Deno.test("worstStatus() ranks fail over warn over ok over skip", () => {
  const cases: [CheckStatus[], CheckStatus][] = [
    [[], "ok"],
    [["skip"], "skip"],
    [["skip", "ok"], "ok"],
    [["ok", "warn", "ok"], "warn"],
    [["warn", "fail", "skip"], "fail"],
  ];
  for (const [statuses, want] of cases) assertEquals(worstStatus(statuses), want, statuses.join());
});

Deno.test("exitCodeFor() is 1 only when a check failed; warnings and skips pass", () => {
  const cases: [CheckStatus[], number][] = [
    [["ok", "ok"], 0],
    [["ok", "warn", "skip"], 0],
    [["ok", "fail"], 1],
    [["fail", "warn"], 1],
  ];
  for (const [statuses, want] of cases) {
    assertEquals(exitCodeFor(statuses.map(r)), want, statuses.join());
  }
});

Deno.test("summaryLine() counts and says what it means", () => {
  const all = ["ok", "ok", "warn", "fail", "skip"].map((s) => r(s as CheckStatus));
  assertEquals(countStatuses(all), { ok: 2, warn: 1, fail: 1, skip: 1 });
  assertEquals(
    summaryLine(all),
    "2 ok, 1 warning, 1 failed, 1 skipped: fix the failures above before starting",
  );
  assertEquals(
    summaryLine([r("ok"), r("warn"), r("warn")]),
    "1 ok, 2 warnings, 0 failed, 0 skipped: ready to start (see the warnings)",
  );
  assertEquals(summaryLine([r("ok")]), "1 ok, 0 warnings, 0 failed, 0 skipped: ready to start");
});
