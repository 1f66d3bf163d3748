/**
 * Per-request garbage must die young (ARCHITECTURE.md, "Allocation and
 * GC"): runs `scripts/bench_gc.ts` briefly against real processes (app, two
 * ztunnels, the waypoint) and requires every ambit process on the path to
 * promote under 1 KiB per request to V8's old generation. Before the fix of
 * object-literal getters the waypoint promoted about 5.6 KiB per request and
 * ran a 10-20 ms mark-compact every ~1.2 s at 1000 req/s.
 *
 * Needs root (the Services' port 80) and wrk (.ci/run installs it).
 */
import { assertEquals, assertIncludes } from "../_util/asserts.ts";

const SCRIPT = new URL("../../scripts/bench_gc.ts", import.meta.url).pathname;
const ROOT = Deno.uid?.() === 0;

for (const path of ["waypoint", "l4"]) {
  Deno.test({
    name: `ambit processes promote under 1 KiB per request to the old generation (${path} path)`,
    ignore: !ROOT,
  }, async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", SCRIPT, "--path", path, "--seconds", "2", "--max-promoted", "1024"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, text);
    assertIncludes(text, "OK   promoted per request");
  });
}
