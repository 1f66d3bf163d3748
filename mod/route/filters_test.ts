import { assertEquals } from "../../tests/_util/asserts.ts";
import {
  applyRequestFilters,
  type FilterRequest,
  type Header,
  type HeaderModifier,
  modifyHeaders,
  modifyPath,
  modifyResponseHeaders,
  redirectResponse,
  replacePrefix,
  type RequestRedirect,
  type RouteFilter,
} from "./filters.ts";

Deno.test("modifyHeaders() sets, adds and removes case-insensitively", () => {
  const rows: [name: string, headers: Header[], mod: HeaderModifier, want: Header[]][] = [
    ["set replaces", [["my-header", "foo"]], { set: [{ name: "my-header", value: "bar" }] }, [[
      "my-header",
      "bar",
    ]]],
    [
      "set replaces every repeat, in place of the first",
      [["a", "1"], ["X-Set", "1"], ["b", "2"], ["x-set", "2"]],
      { set: [{ name: "x-set", value: "v" }] },
      [["a", "1"], ["x-set", "v"], ["b", "2"]],
    ],
    ["set adds when absent", [["a", "1"]], { set: [{ name: "b", value: "2" }] }, [["a", "1"], [
      "b",
      "2",
    ]]],
    [
      "add appends a field line",
      [["my-header", "foo"]],
      { add: [{ name: "My-Header", value: "bar,baz" }] },
      [["my-header", "foo"], ["My-Header", "bar,baz"]],
    ],
    [
      "remove drops every repeat",
      [["my-header1", "foo"], ["my-header2", "bar"], ["MY-HEADER1", "x"], ["my-header3", "baz"]],
      { remove: ["My-Header1", "my-header3"] },
      [["my-header2", "bar"]],
    ],
    ["remove of an absent header", [["a", "1"]], { remove: ["b"] }, [["a", "1"]]],
    [
      "conformance HTTPRouteRequestHeaderModifier",
      [["X-Header-Remove", "remove-val"], ["X-Header-Add-Append", "append-val-1"], [
        "X-Header-Set",
        "set-val",
      ]],
      {
        set: [{ name: "X-Header-Set", value: "set-overwrites-values" }],
        add: [{ name: "X-Header-Add", value: "header-val-1" }, {
          name: "X-Header-Add-Append",
          value: "header-val-2",
        }],
        remove: ["X-Header-Remove"],
      },
      [
        ["X-Header-Add-Append", "append-val-1"],
        ["X-Header-Set", "set-overwrites-values"],
        ["X-Header-Add", "header-val-1"],
        ["X-Header-Add-Append", "header-val-2"],
      ],
    ],
    ["empty modifier", [["a", "1"]], {}, [["a", "1"]]],
  ];
  for (const [name, headers, mod, want] of rows) {
    const before = structuredClone(headers);
    assertEquals(modifyHeaders(headers, mod), want, name);
    assertEquals(headers, before, `${name}: input unchanged`);
  }
});

Deno.test("replacePrefix() follows the spec's ReplacePrefixMatch table", () => {
  const rows: [path: string, prefix: string, replacement: string, want: string][] = [
    // HTTPPathModifier.replacePrefixMatch, verbatim.
    ["/foo/bar", "/foo", "/xyz", "/xyz/bar"],
    ["/foo/bar", "/foo", "/xyz/", "/xyz/bar"],
    ["/foo/bar", "/foo/", "/xyz", "/xyz/bar"],
    ["/foo/bar", "/foo/", "/xyz/", "/xyz/bar"],
    ["/foo", "/foo", "/xyz", "/xyz"],
    ["/foo/", "/foo", "/xyz", "/xyz/"],
    ["/foo/bar", "/foo", "", "/bar"],
    ["/foo/", "/foo", "", "/"],
    ["/foo", "/foo", "", "/"],
    ["/foo/", "/foo", "/", "/"],
    ["/foo", "/foo", "/", "/"],
    // More edges.
    ["/foo/bar/baz", "/foo/bar", "/x", "/x/baz"],
    ["/", "/", "/xyz", "/xyz/"],
    ["/a/b", "/", "/xyz", "/xyz/a/b"],
    ["/a/b", "/", "/", "/a/b"],
    ["/foo//bar", "/foo", "/x", "/x//bar"],
    ["/foo/bar", "/foo", "xyz", "/xyz/bar"],
    ["/foobar", "/foo", "/x", "/foobar"],
    ["/prefix/one/two", "/prefix/one", "/one", "/one/two"],
    ["/strip-prefix/three", "/strip-prefix", "/", "/three"],
    ["/strip-prefix", "/strip-prefix", "/", "/"],
  ];
  for (const [path, prefix, replacement, want] of rows) {
    assertEquals(
      replacePrefix(path, prefix, replacement),
      want,
      `${path} ${prefix} → ${replacement}`,
    );
  }
});

Deno.test("modifyPath() keeps the query and needs a prefix for ReplacePrefixMatch", () => {
  assertEquals(
    modifyPath("/full/one/two?a=1", { type: "ReplaceFullPath", replaceFullPath: "/one" }),
    "/one?a=1",
  );
  assertEquals(
    modifyPath("/p/x?q", { type: "ReplacePrefixMatch", replacePrefixMatch: "/n" }, "/p"),
    "/n/x?q",
  );
  assertEquals(modifyPath("/x", { type: "ReplaceFullPath", replaceFullPath: "" }), "/");
  let message = "";
  try {
    modifyPath("/x", { type: "ReplacePrefixMatch", replacePrefixMatch: "/n" });
  } catch (e) {
    message = e instanceof TypeError ? e.message : "not a TypeError";
  }
  assertEquals(
    message,
    'ReplacePrefixMatch "/n" needs the rule\'s PathPrefix match; this request did not match a PathPrefix',
  );
});

const req = (over: Partial<FilterRequest> = {}): FilterRequest => ({
  scheme: "http",
  authority: "web.shop:80",
  path: "/",
  headers: [],
  ...over,
});

Deno.test("redirectResponse() builds Location as the conformance tests expect", () => {
  const rows: [
    name: string,
    request: Partial<FilterRequest>,
    redirect: Partial<RequestRedirect>,
    listenerPort: number,
    want: string,
    prefix?: string,
  ][] = [
    // HTTPRouteRedirectPortAndScheme, listener port 80.
    ["scheme nil, port nil", {}, { hostname: "example.org" }, 80, "http://example.org/"],
    ["scheme nil, port 80", {}, { hostname: "example.org", port: 80 }, 80, "http://example.org/"],
    [
      "scheme nil, port 8080",
      {},
      { hostname: "example.org", port: 8080 },
      80,
      "http://example.org:8080/",
    ],
    [
      "https, port nil",
      {},
      { hostname: "example.org", scheme: "https" },
      80,
      "https://example.org/",
    ],
    [
      "https, port 443",
      {},
      { hostname: "example.org", scheme: "https", port: 443 },
      80,
      "https://example.org/",
    ],
    [
      "https, port 8443",
      {},
      { hostname: "example.org", scheme: "https", port: 8443 },
      80,
      "https://example.org:8443/",
    ],
    // Listener port 8080.
    [
      "8080: scheme nil, port nil",
      {},
      { hostname: "example.org" },
      8080,
      "http://example.org:8080/",
    ],
    [
      "8080: scheme nil, port 80",
      {},
      { hostname: "example.org", port: 80 },
      8080,
      "http://example.org/",
    ],
    [
      "8080: https, port nil",
      {},
      { hostname: "example.org", scheme: "https" },
      8080,
      "https://example.org/",
    ],
    // An https request on 443.
    [
      "443: scheme nil",
      { scheme: "https" },
      { hostname: "example.org" },
      443,
      "https://example.org/",
    ],
    [
      "443: http, port nil",
      { scheme: "https" },
      { hostname: "example.org", scheme: "http" },
      443,
      "http://example.org/",
    ],
    [
      "443: http, port 8080",
      { scheme: "https" },
      { hostname: "example.org", scheme: "http", port: 8080 },
      443,
      "http://example.org:8080/",
    ],
    // HTTPRouteRedirectPath.
    [
      "prefix",
      { path: "/original-prefix/lemon" },
      { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/replacement-prefix" } },
      80,
      "http://web.shop/replacement-prefix/lemon",
      "/original-prefix",
    ],
    [
      "full path",
      { path: "/full/path/original" },
      { path: { type: "ReplaceFullPath", replaceFullPath: "/full-path-replacement" } },
      80,
      "http://web.shop/full-path-replacement",
    ],
    [
      "path and host",
      { path: "/path-and-host" },
      {
        hostname: "example.org",
        path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/replacement-prefix" },
      },
      80,
      "http://example.org/replacement-prefix",
      "/path-and-host",
    ],
    // Request host and query kept.
    [
      "host from authority, query kept",
      { path: "/a?x=1&y" },
      { scheme: "https" },
      80,
      "https://web.shop/a?x=1&y",
    ],
    [
      "IPv6 authority",
      { authority: "[fd00::1]:8080", path: "/a" },
      {},
      8080,
      "http://[fd00::1]:8080/a",
    ],
  ];
  for (const [name, request, redirect, listenerPort, location, matchedPrefix] of rows) {
    const got = redirectResponse(req(request), { statusCode: 302, ...redirect }, {
      listenerPort,
      matchedPrefix,
    });
    assertEquals(got, { status: 302, location }, name);
  }
  assertEquals(
    redirectResponse(req(), { statusCode: 301, hostname: "example.org" }, { listenerPort: 80 }),
    { status: 301, location: "http://example.org/" },
  );
});

Deno.test("applyRequestFilters() applies filters in order", () => {
  const setHeaders: RouteFilter = {
    type: "RequestHeaderModifier",
    modifier: {
      set: [{ name: "X-Header-Set", value: "set-overwrites-values" }],
      add: [{ name: "X-Header-Add", value: "header-val-1" }],
      remove: ["X-Header-Remove"],
    },
  };
  const response1 = { add: [{ name: "x-r", value: "1" }] };
  const response2 = { remove: ["server"] };
  const mirror = (numerator: number, denominator = 100): RouteFilter => ({
    type: "RequestMirror",
    mirror: { kind: "Service", service: "shop/echo", port: 80, numerator, denominator },
  });
  const echo = { kind: "Service", service: "shop/echo", port: 80 };
  const rows: [
    name: string,
    request: Partial<FilterRequest>,
    filters: RouteFilter[],
    want: unknown,
    prefix?: string,
  ][] = [
    [
      "rewrite path and modify headers (conformance HTTPRouteRewritePath)",
      {
        path: "/prefix/rewrite-path-and-modify-headers/one",
        headers: [["X-Header-Remove", "remove-val"], ["X-Header-Set", "set-val"]],
      },
      [
        {
          type: "URLRewrite",
          rewrite: { path: { type: "ReplacePrefixMatch", replacePrefixMatch: "/prefix" } },
        },
        setHeaders,
      ],
      {
        kind: "forward",
        request: req({
          path: "/prefix/one",
          headers: [["X-Header-Set", "set-overwrites-values"], ["X-Header-Add", "header-val-1"]],
        }),
        response: [],
        mirrors: [],
      },
      "/prefix/rewrite-path-and-modify-headers",
    ],
    [
      "rewrite hostname",
      { authority: "web:80", path: "/x?q=1" },
      [{ type: "URLRewrite", rewrite: { hostname: "one.example.org" } }],
      {
        kind: "forward",
        request: req({ authority: "one.example.org", path: "/x?q=1" }),
        response: [],
        mirrors: [],
      },
    ],
    [
      "a redirect ends the chain; response modifiers before and after apply to it",
      { path: "/r" },
      [
        { type: "ResponseHeaderModifier", modifier: response1 },
        { type: "RequestRedirect", redirect: { statusCode: 301, scheme: "https" } },
        setHeaders,
        { type: "ResponseHeaderModifier", modifier: response2 },
      ],
      {
        kind: "redirect",
        redirect: { status: 301, location: "https://web.shop/r" },
        response: [response1, response2],
      },
    ],
    [
      "ExtensionRef filters are left to the waypoint; the filters around them apply",
      { path: "/x", headers: [["X-Header-Remove", "v"]] },
      [
        {
          type: "ExtensionRef",
          group: "ambit.io",
          kind: "HTTPFault",
          name: "flaky",
          key: "shop/flaky",
        },
        setHeaders,
        {
          type: "ExtensionRef",
          group: "ambit.io",
          kind: "LocalRateLimit",
          name: "per-rule",
          key: "shop/per-rule",
        },
      ],
      {
        kind: "forward",
        request: req({
          path: "/x",
          headers: [["X-Header-Set", "set-overwrites-values"], ["X-Header-Add", "header-val-1"]],
        }),
        response: [],
        mirrors: [],
      },
    ],
    [
      "mirrors drawn against their fraction (random 0.5)",
      {},
      [mirror(100), mirror(50), mirror(51), mirror(0), mirror(1, 3)],
      { kind: "forward", request: req(), response: [], mirrors: [echo, echo] },
    ],
  ];
  for (const [name, request, filters, want, matchedPrefix] of rows) {
    const got = applyRequestFilters(req(request), filters, {
      listenerPort: 80,
      matchedPrefix,
      random: () => 0.5,
    });
    assertEquals(got, want, name);
  }
});

Deno.test("modifyResponseHeaders() applies modifiers in order", () => {
  assertEquals(
    modifyResponseHeaders([["server", "x"], ["a", "1"]], [
      { remove: ["Server"] },
      { set: [{ name: "a", value: "2" }], add: [{ name: "b", value: "3" }] },
    ]),
    [["a", "2"], ["b", "3"]],
  );
});
