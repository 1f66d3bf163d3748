import { assertEquals } from "../../../tests/_util/asserts.ts";
import { issuesOf } from "../_testing.ts";
import { KINDS } from "./mod.ts";

Deno.test("every kind's example in the reference checks clean, as that kind", () => {
  for (const k of KINDS) {
    if (!k.example) continue;
    assertEquals(issuesOf(k.example), [], k.kind);
    assertEquals(k.example.match(/^kind: (.+)$/m)?.[1], k.kind);
  }
});
