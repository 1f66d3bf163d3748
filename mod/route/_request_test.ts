import { assertEquals } from "../../tests/_util/asserts.ts";
import { authorityHost, headerValue, queryParams, splitTarget } from "./_request.ts";

Deno.test("splitTarget() separates path and query at the first ?", () => {
  assertEquals(splitTarget("/a/b"), { path: "/a/b" });
  assertEquals(splitTarget("/a?x=1?y"), { path: "/a", query: "x=1?y" });
  assertEquals(splitTarget("/a?"), { path: "/a", query: "" });
});

Deno.test("queryParams() keeps the first value and decodes escapes", () => {
  assertEquals([...queryParams("a=1&a=2&b=%20x&c&d=&=e&f=%zz")], [
    ["a", "1"],
    ["b", " x"],
    ["c", ""],
    ["d", ""],
    ["", "e"],
    ["f", "%zz"],
  ]);
  assertEquals(queryParams(undefined).size, 0);
});

Deno.test("headerValue() joins repeats with commas and ignores case", () => {
  const h: [string, string][] = [["A", "1"], ["b", "2"], ["a", "3"]];
  assertEquals([headerValue(h, "a"), headerValue(h, "B"), headerValue(h, "c")], [
    "1,3",
    "2",
    undefined,
  ]);
});

Deno.test("authorityHost() drops port, brackets, case and a trailing dot", () => {
  const rows: [authority: string, host: string][] = [
    ["web.shop:8080", "web.shop"],
    ["WEB.Shop", "web.shop"],
    ["web.shop.", "web.shop"],
    ["10.0.0.1:80", "10.0.0.1"],
    ["[fd00::1]:443", "fd00::1"],
    ["[fd00::1]", "fd00::1"],
    ["fd00::1", "fd00::1"],
  ];
  for (const [authority, host] of rows) {
    assertEquals(authorityHost(authority), host, authority);
  }
});
