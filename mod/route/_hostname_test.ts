import { assertEquals } from "../../tests/_util/asserts.ts";
import { hostnameMatches, hostnamesIntersect, hostScore } from "./_hostname.ts";

Deno.test("hostnameMatches() treats *. as a suffix of at least one label", () => {
  const rows: [pattern: string, host: string, want: boolean][] = [
    ["web.shop", "web.shop", true],
    ["Web.Shop", "web.shop", true],
    ["web.shop", "web.shop2", false],
    ["*.example.com", "test.example.com", true],
    ["*.example.com", "foo.test.example.com", true],
    ["*.example.com", "example.com", false],
    ["*.example.com", "xexample.com", false],
  ];
  for (const [pattern, host, want] of rows) {
    assertEquals(hostnameMatches(pattern, host), want, `${pattern} ${host}`);
  }
});

Deno.test("hostScore() prefers the longest non-wildcard, then the longest hostname", () => {
  assertEquals(hostScore([], "a.b"), { exact: 0, any: 0 });
  assertEquals(hostScore(["x.y"], "a.b"), undefined);
  assertEquals(hostScore(["*.b", "a.b"], "a.b"), { exact: 3, any: 3 });
  assertEquals(hostScore(["*.b", "*.a.b"], "x.a.b"), { exact: 0, any: 5 });
});

Deno.test("hostnamesIntersect() finds a host both lists match", () => {
  const rows: [a: string[], b: string[], want: boolean][] = [
    [[], ["a.b"], true],
    [["a.b"], ["a.b"], true],
    [["a.b"], ["c.b"], false],
    [["*.b"], ["a.b"], true],
    [["a.b"], ["*.b"], true],
    [["*.b"], ["*.a.b"], true],
    [["*.x"], ["*.y"], false],
    [["a.x", "c.y"], ["*.y"], true],
  ];
  for (const [a, b, want] of rows) assertEquals(hostnamesIntersect(a, b), want, `${a} ${b}`);
});
