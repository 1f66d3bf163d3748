/**
 * A source rule that keeps garbage young. An object literal with an accessor
 * (`get x() {...}`) whose function closes over local state gets a hidden
 * class of its own every time it is evaluated; V8 allocates hidden classes
 * in the old generation, and that one points at the closure, its context
 * and everything the context holds. So a per-request or per-connection
 * literal with a getter kept the whole request alive through young
 * collections until the next full GC: the waypoint promoted 5.6 KB per
 * request and ran a 10-20 ms mark-compact every ~1.2 s at 1000 req/s, which
 * set its p99. Getters belong on classes (shared prototype); literals use
 * methods (`isClosed: () => ...`).
 *
 * @module
 */
import { assertEquals } from "./_util/asserts.ts";

const REPO_ROOT = new URL("../", import.meta.url).pathname;

/** Lines of `text` that define an accessor inside an object literal (not a class body). */
export function literalAccessors(text: string): number[] {
  const found: number[] = [];
  // A stack of the braces open at each point: "class" for a class body, "other" for the rest.
  const stack: ("class" | "other")[] = [];
  let pendingClass = false;
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    const code = line.replace(/\/\/.*$/, "").replace(
      /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g,
      '""',
    );
    if (/^\s*(static\s+)?(get|set)\s+[#\w$]+\s*\(/.test(code) && stack.at(-1) === "other") {
      found.push(i + 1);
    }
    if (/\bclass\b/.test(code)) pendingClass = true;
    for (const ch of code) {
      if (ch === "{") {
        stack.push(pendingClass ? "class" : "other");
        pendingClass = false;
      } else if (ch === "}") stack.pop();
    }
  });
  return found;
}

Deno.test("literalAccessors() finds getters in object literals, not in classes", () => {
  const src = [
    "class A {", //            1
    "  get x(): number {", //  2: class
    "    return 1;",
    "  }",
    "}",
    "function f(s: S) {", //   6
    "  return {",
    "    get closed() {", //   8: literal
    "      return s.closed;",
    "    },",
    "    isClosed: () => s.closed,",
    "  };",
    "}",
    "const o = { get y() { return 2; } };", // 14: literal on one line is not seen (documented)
  ].join("\n");
  assertEquals(literalAccessors(src), [8]);
});

Deno.test("no object literal under mod/ defines a getter or setter (old-generation hidden classes)", async () => {
  const offenders: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${REPO_ROOT}${dir}`)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (path.endsWith(".ts") && !path.endsWith("_test.ts")) {
        const text = await Deno.readTextFile(`${REPO_ROOT}${path}`);
        for (const n of literalAccessors(text)) offenders.push(`${path}:${n}`);
      }
    }
  };
  await walk("mod");
  assertEquals(
    offenders,
    [],
    "use a method (isClosed: () => ...) or a class getter instead: see tests/gc_rules_test.ts",
  );
});
