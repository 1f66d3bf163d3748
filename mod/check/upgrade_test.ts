import { assertEquals, assertIncludes } from "../../tests/_util/asserts.ts";
import { evaluateMigrateReq } from "./upgrade.ts";

Deno.test("evaluateMigrateReq() warns unless queued connections migrate on upgrade", () => {
  const cases: [string | undefined, string, string, string][] = [
    ["1\n", "linux", "ok", "tcp_migrate_req=1"],
    ["0\n", "linux", "warn", "tcp_migrate_req=0: a zero-downtime upgrade may reset"],
    [undefined, "linux", "warn", "before Linux 5.14"],
    [undefined, "darwin", "skip", "not Linux"],
  ];
  for (const [content, os, status, detail] of cases) {
    const r = evaluateMigrateReq(content, os);
    assertEquals(r.status, status, `${content} ${os}`);
    assertIncludes(r.detail, detail);
  }
  assertEquals(
    evaluateMigrateReq("0", "linux").hint?.startsWith("sysctl -w net.ipv4.tcp_migrate_req=1"),
    true,
  );
});
