import { assertEquals } from "../../tests/_util/asserts.ts";
import type { Snapshot } from "../config/snapshot.ts";
import { route, snapshotOf } from "./_testing.ts";
import { routeTableFor } from "./compile.ts";
import { type Decision, type RouteRequest, routeRequest } from "./match.ts";

type Req = Partial<RouteRequest> & { path: string };

/** `HTTPRoute/shop/r#1` for a route decision (rule index), else the kind (and reason). */
function summary(d: Decision): string {
  switch (d.kind) {
    case "route":
      return `${d.route}#${d.ruleIndex}`;
    case "no_valid_backend":
      return `500 ${d.reason}`;
    case "no_route":
      return "404";
    case "default":
      return "default";
  }
}

function decide(snapshot: Snapshot, req: Req, service = "shop/web", port = 80): Decision {
  return routeRequest(routeTableFor(snapshot, service, port), {
    method: "GET",
    authority: "web.shop.svc.cluster.local",
    headers: [],
    ...req,
  });
}

const SVC80 = `parentRefs: [{group: "", kind: Service, name: web, port: 80}]`;
const SVC_GRPC = `parentRefs: [{group: "", kind: Service, name: web, port: 9090}]`;
const BE = `backendRefs: [{name: web-v1, port: 80}]`;

/** One snapshot and the requests to route through it, with the wanted summary. */
interface Case {
  name: string;
  config: string;
  rows: [req: Req, want: string, service?: string, port?: number][];
}

const cases: Case[] = [
  {
    name: "path precedence in one route: Exact > longest PathPrefix > RegularExpression",
    config: route(
      "HTTPRoute",
      "shop/r",
      `
${SVC80}
rules:
- matches: [{path: {type: PathPrefix, value: /}}]
  ${BE}
- matches: [{path: {type: PathPrefix, value: /foo}}]
  ${BE}
- matches: [{path: {type: Exact, value: /foo}}]
  ${BE}
- matches: [{path: {type: PathPrefix, value: /foo/bar/}}]
  ${BE}
- matches: [{path: {type: RegularExpression, value: "/re/[0-9]+"}}]
  ${BE}
`,
    ),
    rows: [
      [{ path: "/" }, "HTTPRoute/shop/r#0"],
      [{ path: "/foo" }, "HTTPRoute/shop/r#2"],
      [{ path: "/foo?x=1" }, "HTTPRoute/shop/r#2"],
      [{ path: "/foo/" }, "HTTPRoute/shop/r#1"],
      [{ path: "/foo/baz" }, "HTTPRoute/shop/r#1"],
      [{ path: "/foobar" }, "HTTPRoute/shop/r#0"],
      [{ path: "/foo/bar" }, "HTTPRoute/shop/r#3"],
      [{ path: "/foo/bar/" }, "HTTPRoute/shop/r#3"],
      [{ path: "/foo/bar/x" }, "HTTPRoute/shop/r#3"],
      [{ path: "/foo/barx" }, "HTTPRoute/shop/r#1"],
      [{ path: "/foo%2Fbar" }, "HTTPRoute/shop/r#0"],
      [{ path: "//foo" }, "HTTPRoute/shop/r#0"],
      [{ path: "//" }, "HTTPRoute/shop/r#0"],
      [{ path: "/re/12" }, "HTTPRoute/shop/r#0"],
    ],
  },
  {
    name: "path edge cases without a catch-all: 404 when nothing matches",
    config: route(
      "HTTPRoute",
      "shop/r",
      `
${SVC80}
rules:
- matches: [{path: {type: PathPrefix, value: /foo/}}]
  ${BE}
- matches: [{path: {type: Exact, value: /exact}}]
  ${BE}
- matches: [{path: {type: RegularExpression, value: "/re/[0-9]+"}}, {path: {type: RegularExpression, value: "/api/.*"}}]
  ${BE}
- matches: [{path: {type: PathPrefix, value: /caf%C3%A9}}]
  ${BE}
`,
    ),
    rows: [
      [{ path: "/" }, "404"],
      [{ path: "/foo" }, "HTTPRoute/shop/r#0"],
      [{ path: "/foo/" }, "HTTPRoute/shop/r#0"],
      [{ path: "/foo/x" }, "HTTPRoute/shop/r#0"],
      [{ path: "/foox" }, "404"],
      [{ path: "/Foo" }, "404"],
      [{ path: "/exact" }, "HTTPRoute/shop/r#1"],
      [{ path: "/exact/" }, "404"],
      [{ path: "/exact?q=/x" }, "HTTPRoute/shop/r#1"],
      [{ path: "/re/12" }, "HTTPRoute/shop/r#2"],
      [{ path: "/re/12/x" }, "404"],
      [{ path: "/x/re/12" }, "404"],
      [{ path: "/api/v1" }, "HTTPRoute/shop/r#2"],
      [{ path: "/caf%C3%A9/menu" }, "HTTPRoute/shop/r#3"],
      [{ path: "/café/menu" }, "404"],
    ],
  },
  {
    name: "method > header count > query count (conformance HTTPRouteMethodMatching and friends)",
    config: route(
      "HTTPRoute",
      "shop/r",
      `
${SVC80}
rules:
- matches: [{path: {value: /m}}]
  ${BE}
- matches: [{path: {value: /m}, method: POST}]
  ${BE}
- matches: [{path: {value: /m}, headers: [{name: version, value: two}]}]
  ${BE}
- matches: [{path: {value: /m}, headers: [{name: version, value: two}, {name: color, value: red}]}]
  ${BE}
- matches: [{path: {value: /m}, queryParams: [{name: animal, value: whale}]}]
  ${BE}
- matches: [{path: {value: /m}, queryParams: [{name: animal, value: whale}, {name: q, value: a b}]}]
  ${BE}
- matches: [{path: {value: /m/longer}}]
  ${BE}
`,
    ),
    rows: [
      [{ path: "/m" }, "HTTPRoute/shop/r#0"],
      [{ path: "/m", method: "POST" }, "HTTPRoute/shop/r#1"],
      [{ path: "/m", method: "post" }, "HTTPRoute/shop/r#0"],
      [{ path: "/m", headers: [["version", "two"]] }, "HTTPRoute/shop/r#2"],
      [{ path: "/m", headers: [["VERSION", "two"]] }, "HTTPRoute/shop/r#2"],
      [{ path: "/m", headers: [["version", "Two"]] }, "HTTPRoute/shop/r#0"],
      [{ path: "/m", method: "POST", headers: [["version", "two"]] }, "HTTPRoute/shop/r#1"],
      [{ path: "/m", headers: [["Color", "red"], ["version", "two"]] }, "HTTPRoute/shop/r#3"],
      [{ path: "/m?animal=whale" }, "HTTPRoute/shop/r#4"],
      [{ path: "/m?animal=whale&q=a%20b" }, "HTTPRoute/shop/r#5"],
      [{ path: "/m?animal=Whale" }, "HTTPRoute/shop/r#0"],
      [{ path: "/m?animal=whale", headers: [["version", "two"]] }, "HTTPRoute/shop/r#2"],
      [{ path: "/m?animal=dolphin&animal=whale" }, "HTTPRoute/shop/r#0"],
      [{ path: "/m?animal=whale&animal=dolphin" }, "HTTPRoute/shop/r#4"],
      [{ path: "/m/longer", method: "POST", headers: [["version", "two"]] }, "HTTPRoute/shop/r#6"],
    ],
  },
  {
    name: "repeated request headers are one comma-joined value; regexes match the whole value",
    config: route(
      "HTTPRoute",
      "shop/r",
      `
${SVC80}
rules:
- matches: [{path: {value: /h}, headers: [{name: x-a, value: "1,2"}]}]
  ${BE}
- matches: [{path: {value: /h}, headers: [{name: x-b, type: RegularExpression, value: "v[0-9]"}]}]
  ${BE}
- matches: [{path: {value: /h}, queryParams: [{name: id, type: RegularExpression, value: "[a-f]+"}]}]
  ${BE}
`,
    ),
    rows: [
      [{ path: "/h", headers: [["x-a", "1"], ["X-A", "2"]] }, "HTTPRoute/shop/r#0"],
      [{ path: "/h", headers: [["x-a", "1"]] }, "404"],
      [{ path: "/h", headers: [["x-a", "1,2"]] }, "HTTPRoute/shop/r#0"],
      [{ path: "/h", headers: [["x-b", "v1"]] }, "HTTPRoute/shop/r#1"],
      [{ path: "/h", headers: [["x-b", "v12"]] }, "404"],
      [{ path: "/h", headers: [["x-b", "av1"]] }, "404"],
      [{ path: "/h", headers: [["x-b", "v1"], ["x-b", "v2"]] }, "404"],
      [{ path: "/h?id=beef" }, "HTTPRoute/shop/r#2"],
      [{ path: "/h?id=beefy" }, "404"],
      [{ path: "/h?id" }, "404"],
    ],
  },
  {
    name: "across routes: oldest creationTimestamp, then namespace/name, then rule order",
    config: [
      route(
        "HTTPRoute",
        "shop/b-new",
        `${SVC80}\nrules:\n- matches: [{path: {value: /a}}]\n  ${BE}`,
      ),
      route(
        "HTTPRoute",
        "shop/z-old",
        `${SVC80}\nrules:\n- matches: [{path: {value: /a}}]\n  ${BE}\n- matches: [{path: {value: /a}}]\n  ${BE}`,
        "2024-01-01T00:00:00Z",
      ),
      route(
        "HTTPRoute",
        "shop/y-older",
        `${SVC80}\nrules:\n- matches: [{path: {value: /b}}]\n  ${BE}`,
        "2023-01-01T00:00:00Z",
      ),
      route(
        "HTTPRoute",
        "shop/a-none",
        `${SVC80}\nrules:\n- matches: [{path: {value: /b}}]\n  ${BE}`,
      ),
      route("HTTPRoute", "shop/c", `${SVC80}\nrules:\n- matches: [{path: {value: /c}}]\n  ${BE}`),
      route("HTTPRoute", "shop/b", `${SVC80}\nrules:\n- matches: [{path: {value: /c}}]\n  ${BE}`),
      route(
        "HTTPRoute",
        "shop/d",
        `${SVC80}\nrules:\n- matches: [{path: {value: /c/d}}]\n  ${BE}`,
        "2030-01-01T00:00:00Z",
      ),
    ].join("---\n"),
    rows: [
      [{ path: "/a" }, "HTTPRoute/shop/z-old#0"],
      [{ path: "/b" }, "HTTPRoute/shop/y-older#0"],
      [{ path: "/c" }, "HTTPRoute/shop/b#0"],
      [{ path: "/c/d" }, "HTTPRoute/shop/d#0"],
      [{ path: "/x" }, "404"],
    ],
  },
  {
    name: "ports and sectionName: a route applies to its port only; other ports pass through",
    config: [
      route("HTTPRoute", "shop/p80", `${SVC80}\nrules:\n- ${BE}`),
      route(
        "HTTPRoute",
        "shop/by-name",
        `parentRefs: [{group: "", kind: Service, name: web, sectionName: http}]\nrules:\n- matches: [{path: {value: /named}}]\n  ${BE}`,
      ),
    ].join("---\n"),
    rows: [
      [{ path: "/" }, "HTTPRoute/shop/p80#0"],
      [{ path: "/named/x" }, "HTTPRoute/shop/by-name#0"],
      [{ path: "/" }, "default", "shop/web", 9090],
      [{ path: "/" }, "default", "shop/echo", 80],
    ],
  },
  {
    name: "consumer routes apply only to clients in their namespace",
    config: [
      route("HTTPRoute", "shop/producer", `${SVC80}\nrules:\n- ${BE}`),
      route(
        "HTTPRoute",
        "client/consumer",
        `parentRefs: [{group: "", kind: Service, name: web, namespace: shop}]\nrules:\n- backendRefs: [{name: web-v2, namespace: shop, port: 80}]`,
      ),
    ].join("---\n"),
    rows: [
      [{ path: "/" }, "HTTPRoute/shop/producer#0"],
      [{ path: "/", sourceNamespace: "shop" }, "HTTPRoute/shop/producer#0"],
      [{ path: "/", sourceNamespace: "client" }, "HTTPRoute/client/consumer#0"],
    ],
  },
  {
    name: "backends: invalid ones and zero weights give 500; a redirect needs none",
    config: route(
      "HTTPRoute",
      "shop/r",
      `
${SVC80}
rules:
- matches: [{path: {value: /bad-port}}]
  backendRefs: [{name: web-v3, port: 9090}]
- matches: [{path: {value: /zero}}]
  backendRefs: [{name: web-v1, port: 80, weight: 0}, {name: web-v2, port: 80, weight: 0}]
- matches: [{path: {value: /none}}]
- matches: [{path: {value: /host}}]
  backendRefs: [{group: networking.istio.io, kind: Hostname, name: nope.example.com, port: 443}]
- matches: [{path: {value: /mixed}}]
  backendRefs: [{name: web-v1, port: 80}, {name: web-v3, port: 9090}]
- matches: [{path: {value: /redirect}}]
  filters: [{type: RequestRedirect, requestRedirect: {hostname: example.org}}]
- matches: [{path: {value: /ext}}]
  backendRefs: [{group: networking.istio.io, kind: Hostname, name: api.example.com, port: 443}]
- matches: [{path: {value: /zero-valid}}]
  backendRefs: [{name: web-v1, port: 80, weight: 0}, {name: web-v3, port: 9090}]
`,
    ),
    rows: [
      [
        { path: "/bad-port" },
        '500 no valid backend: Service "shop/web-v3" has no port 9090 (ports: 80)',
      ],
      [{ path: "/zero" }, "500 every backend has weight 0"],
      [{ path: "/none" }, "500 the rule has no backendRefs"],
      [
        { path: "/host" },
        '500 no valid backend: no Service or ServiceEntry has host "nope.example.com"',
      ],
      [{ path: "/mixed" }, "HTTPRoute/shop/r#4"],
      [{ path: "/redirect" }, "HTTPRoute/shop/r#5"],
      [{ path: "/ext" }, "HTTPRoute/shop/r#6"],
      [
        { path: "/zero-valid" },
        '500 every valid backend has weight 0; Service "shop/web-v3" has no port 9090 (ports: 80)',
      ],
    ],
  },
  {
    name: "GRPCRoute: exact service+method > service > method > regex > headers > catch-all",
    config: route(
      "GRPCRoute",
      "shop/g",
      `
${SVC_GRPC}
rules:
- backendRefs: [{name: web-v1, port: 9090}]
- matches: [{method: {service: helloworld.Greeter, method: SayHello}}]
  backendRefs: [{name: web-v1, port: 9090}]
- matches: [{method: {service: helloworld.Greeter}}]
  backendRefs: [{name: web-v1, port: 9090}]
- matches: [{method: {method: SayHello}}]
  backendRefs: [{name: web-v1, port: 9090}]
- matches: [{method: {type: RegularExpression, service: "helloworld\\\\..*", method: "Say.*"}}]
  backendRefs: [{name: web-v1, port: 9090}]
- matches: [{headers: [{name: x-env, value: canary}]}]
  backendRefs: [{name: web-v1, port: 9090}]
- matches: [{method: {service: helloworld.Greeter}, headers: [{name: x-env, value: canary}]}]
  backendRefs: [{name: web-v2, port: 9090}]
`,
    ),
    rows: [
      [
        { path: "/helloworld.Greeter/SayHello", grpc: true },
        "GRPCRoute/shop/g#1",
        "shop/web",
        9090,
      ],
      [{ path: "/helloworld.Greeter/SayBye", grpc: true }, "GRPCRoute/shop/g#2", "shop/web", 9090],
      [
        { path: "/helloworld.Greeter/SayHello", grpc: true, headers: [["x-env", "canary"]] },
        "GRPCRoute/shop/g#1",
        "shop/web",
        9090,
      ],
      [
        { path: "/helloworld.Greeter/SayBye", grpc: true, headers: [["X-Env", "canary"]] },
        "GRPCRoute/shop/g#6",
        "shop/web",
        9090,
      ],
      [{ path: "/other.Svc/SayHello", grpc: true }, "GRPCRoute/shop/g#3", "shop/web", 9090],
      [{ path: "/helloworld.Other/SayHi", grpc: true }, "GRPCRoute/shop/g#4", "shop/web", 9090],
      [{ path: "/helloworldX/SayHi", grpc: true }, "GRPCRoute/shop/g#0", "shop/web", 9090],
      [
        { path: "/other.Svc/Other", grpc: true, headers: [["x-env", "canary"]] },
        "GRPCRoute/shop/g#5",
        "shop/web",
        9090,
      ],
      [{ path: "/other.Svc/Other", grpc: true }, "GRPCRoute/shop/g#0", "shop/web", 9090],
      [
        { path: "/helloworld.greeter/SayHello", grpc: true },
        "GRPCRoute/shop/g#3",
        "shop/web",
        9090,
      ],
      [{ path: "/not-grpc", grpc: true }, "GRPCRoute/shop/g#0", "shop/web", 9090],
      [{ path: "/helloworld.Greeter/SayHello" }, "404", "shop/web", 9090],
    ],
  },
  {
    name: "GRPCRoute and HTTPRoute on one Service port: the GRPCRoute applies (GEP-1294)",
    config: [
      route(
        "HTTPRoute",
        "shop/h",
        `${SVC_GRPC}\nrules:\n- backendRefs: [{name: web-v1, port: 9090}]`,
      ),
      route(
        "GRPCRoute",
        "shop/g",
        `${SVC_GRPC}\nrules:\n- matches: [{method: {service: a.B}}]\n  backendRefs: [{name: web-v1, port: 9090}]`,
      ),
    ].join("---\n"),
    rows: [
      [{ path: "/a.B/C", grpc: true }, "GRPCRoute/shop/g#0", "shop/web", 9090],
      [{ path: "/x.Y/C", grpc: true }, "404", "shop/web", 9090],
      [{ path: "/index.html" }, "404", "shop/web", 9090],
    ],
  },
  {
    name: "HTTPRoute serves gRPC calls by path when no GRPCRoute applies",
    config: route(
      "HTTPRoute",
      "shop/h",
      `${SVC_GRPC}\nrules:\n- matches: [{path: {value: /helloworld.Greeter}}]\n  backendRefs: [{name: web-v1, port: 9090}]`,
    ),
    rows: [
      [
        { path: "/helloworld.Greeter/SayHello", grpc: true },
        "HTTPRoute/shop/h#0",
        "shop/web",
        9090,
      ],
      [{ path: "/other.Svc/SayHello", grpc: true }, "404", "shop/web", 9090],
    ],
  },
  {
    name: "waypoint Gateway routes: hostnames match the authority, exact host before wildcard",
    config: [
      route(
        "HTTPRoute",
        "shop/wild",
        `parentRefs: [{name: wp}]\nhostnames: ["*.shop.svc.cluster.local"]\nrules:\n- matches: [{path: {type: Exact, value: /a}}]\n  ${BE}`,
      ),
      route(
        "HTTPRoute",
        "shop/exact",
        `parentRefs: [{name: wp}]\nhostnames: [web.shop.svc.cluster.local, other.example]\nrules:\n- ${BE}`,
      ),
      route(
        "HTTPRoute",
        "shop/any",
        `parentRefs: [{name: wp}]\nrules:\n- matches: [{path: {value: /any}}]\n  ${BE}`,
      ),
    ].join("---\n"),
    rows: [
      [{ path: "/a", authority: "web.shop.svc.cluster.local:80" }, "HTTPRoute/shop/exact#0"],
      [{ path: "/a", authority: "WEB.shop.svc.cluster.local" }, "HTTPRoute/shop/exact#0"],
      [{ path: "/a", authority: "web2.shop.svc.cluster.local" }, "HTTPRoute/shop/wild#0"],
      [{ path: "/b", authority: "web2.shop.svc.cluster.local" }, "404"],
      [{ path: "/any/x", authority: "web2.shop.svc.cluster.local" }, "HTTPRoute/shop/any#0"],
      [{ path: "/any/x", authority: "10.96.0.10:80" }, "HTTPRoute/shop/any#0"],
      [{ path: "/a", authority: "shop.svc.cluster.local" }, "404"],
      [{ path: "/", authority: "10.96.0.10" }, "404"],
      [
        { path: "/", authority: "web.shop.svc.cluster.local" },
        "HTTPRoute/shop/exact#0",
        "shop/web",
        9090,
      ],
      [{ path: "/" }, "default", "shop/echo", 80],
    ],
  },
  {
    name: "Service routes take the place of the waypoint Gateway's",
    config: [
      route("HTTPRoute", "shop/gw", `parentRefs: [{name: wp}]\nrules:\n- ${BE}`),
      route(
        "HTTPRoute",
        "shop/svc",
        `${SVC80}\nrules:\n- matches: [{path: {value: /svc}}]\n  ${BE}`,
      ),
    ].join("---\n"),
    rows: [
      [{ path: "/svc" }, "HTTPRoute/shop/svc#0"],
      [{ path: "/other" }, "404"],
      [{ path: "/other" }, "HTTPRoute/shop/gw#0", "shop/web", 9090],
    ],
  },
  {
    name: "hostnames are ignored on Service parents (GEP-1294)",
    config: route(
      "HTTPRoute",
      "shop/h",
      `${SVC80}\nhostnames: [elsewhere.example]\nrules:\n- ${BE}`,
    ),
    rows: [[{ path: "/", authority: "web:80" }, "HTTPRoute/shop/h#0"]],
  },
];

for (const c of cases) {
  Deno.test(`routeRequest() ${c.name}`, () => {
    const snapshot = snapshotOf(c.config);
    const got = c.rows.map(([req, , service, port]) =>
      summary(decide(snapshot, req, service, port))
    );
    assertEquals(
      c.rows.map(([req, want, , port]) =>
        `${req.method ?? "GET"} ${req.path} ${port ?? ""}: ${want}`
      ),
      c.rows.map(([req, , , port], i) =>
        `${req.method ?? "GET"} ${req.path} ${port ?? ""}: ${got[i]}`
      ),
    );
  });
}

Deno.test("routeRequest() returns the whole decision of the matching rule", () => {
  const snapshot = snapshotOf(route(
    "HTTPRoute",
    "shop/full",
    `
${SVC80}
rules:
- name: canary
  matches: [{path: {value: /v2}, headers: [{name: x-user, value: jason}]}]
  filters:
  - type: RequestHeaderModifier
    requestHeaderModifier: {set: [{name: x-route, value: canary}]}
  - type: RequestMirror
    requestMirror: {backendRef: {name: echo, port: 80}, percent: 25}
  backendRefs:
  - name: web-v1
    port: 80
    weight: 90
  - name: web-v2
    port: 80
    weight: 10
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: echo, port: 80}, fraction: {numerator: 1, denominator: 3}}
  timeouts: {request: 1h30m, backendRequest: 500ms}
  retry: {attempts: 3, codes: [503, 504], backoff: 100ms}
`,
  ));
  const d = decide(snapshot, { path: "/v2/x?y=1", headers: [["x-user", "jason"]] });
  const mirror = {
    kind: "Service",
    service: "shop/echo",
    port: 80,
    numerator: 25,
    denominator: 100,
  };
  assertEquals(d, {
    kind: "route",
    route: "HTTPRoute/shop/full",
    routeKind: "HTTPRoute",
    ruleIndex: 0,
    ruleName: "canary",
    matchIndex: 0,
    match: {
      path: { type: "PathPrefix", value: "/v2" },
      headers: [{ type: "Exact", name: "x-user", value: "jason" }],
    },
    matchedPrefix: "/v2",
    backends: [
      { kind: "Service", service: "shop/web-v1", port: 80, weight: 90, filters: [] },
      {
        kind: "Service",
        service: "shop/web-v2",
        port: 80,
        weight: 10,
        filters: [{
          type: "RequestMirror",
          mirror: { ...mirror, numerator: 1, denominator: 3 },
        }],
      },
    ],
    filters: [
      {
        type: "RequestHeaderModifier",
        modifier: { set: [{ name: "x-route", value: "canary" }] },
      },
      { type: "RequestMirror", mirror },
    ],
    timeouts: { request: 5_400_000, backendRequest: 500 },
    retry: { attempts: 3, codes: [503, 504], backoffMs: 100 },
    mirrors: [mirror],
  });
});

Deno.test("routeRequest() carries ExtensionRef filters, in order, with their snapshot keys", () => {
  const extension = (kind: string, ns: string, name: string) =>
    `apiVersion: ambit.io/v1alpha1\nkind: ${kind}\nmetadata: {name: ${name}, namespace: ${ns}}\n` +
    (kind === "HTTPFault"
      ? "spec: {abort: {httpStatus: 503, percentage: {value: 50}}}\n"
      : "spec: {tokenBucket: {maxTokens: 5, fillInterval: 1s}}\n");
  const ref = (kind: string, name: string) =>
    `{type: ExtensionRef, extensionRef: {group: ambit.io, kind: ${kind}, name: ${name}}}`;
  const snapshot = snapshotOf([
    extension("HTTPFault", "shop", "flaky"),
    extension("HTTPFault", "shop", "slow-v2"),
    extension("LocalRateLimit", "shop", "per-rule"),
    extension("HTTPFault", "client", "flaky"),
    route(
      "HTTPRoute",
      "shop/ext",
      `
${SVC80}
rules:
- matches: [{path: {value: /ext}}]
  filters:
  - ${ref("LocalRateLimit", "per-rule")}
  - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: "1"}]}}
  - ${ref("HTTPFault", "flaky")}
  backendRefs:
  - name: web-v2
    port: 80
    filters: [${ref("HTTPFault", "slow-v2")}]
- ${BE}
`,
    ),
    route(
      "HTTPRoute",
      "client/consumer",
      `parentRefs: [{group: "", kind: Service, name: web, namespace: shop}]
rules:
- filters: [${ref("HTTPFault", "flaky")}]
  backendRefs: [{name: web-v1, namespace: shop, port: 80}]`,
    ),
  ].join("---\n"));
  const ext = (kind: string, key: string) => ({
    type: "ExtensionRef",
    group: "ambit.io",
    kind,
    name: key.split("/")[1],
    key,
  });
  const rows: [req: Req, filters: unknown[], backendFilters: unknown[][]][] = [
    [
      { path: "/ext/1" },
      [
        ext("LocalRateLimit", "shop/per-rule"),
        { type: "RequestHeaderModifier", modifier: { set: [{ name: "x-a", value: "1" }] } },
        ext("HTTPFault", "shop/flaky"),
      ],
      [[ext("HTTPFault", "shop/slow-v2")]],
    ],
    [{ path: "/other" }, [], [[]]],
    [
      { path: "/ext/1", sourceNamespace: "client" },
      [ext("HTTPFault", "client/flaky")],
      [[]],
    ],
  ];
  for (const [req, filters, backendFilters] of rows) {
    const d = decide(snapshot, req);
    assertEquals(
      d.kind === "route" ? [d.filters, d.backends.map((b) => b.filters)] : d,
      [filters, backendFilters],
      JSON.stringify(req),
    );
    if (d.kind !== "route") continue;
    for (const f of [...d.filters, ...d.backends.flatMap((b) => b.filters)]) {
      if (f.type !== "ExtensionRef") continue;
      const found = f.kind === "HTTPFault"
        ? snapshot.faults.get(f.key)
        : snapshot.rateLimits.get(f.key);
      assertEquals(found?.kind, f.kind, `${f.key} is in the snapshot`);
    }
  }
});

Deno.test("routeRequest() parses Gateway API durations and retry defaults", () => {
  const rows: [timeouts: string, retry: string, want: unknown, wantRetry: unknown][] = [
    ["{request: 10s}", "", { request: 10_000 }, undefined],
    [
      "{request: 10s, backendRequest: 2s}",
      "",
      { request: 10_000, backendRequest: 2_000 },
      undefined,
    ],
    ["{request: 0s, backendRequest: 1m}", "", { backendRequest: 60_000 }, undefined],
    ["{backendRequest: 1h}", "", { backendRequest: 3_600_000 }, undefined],
    ["{request: 1m30s500ms}", "", { request: 90_500 }, undefined],
    ["{}", "{}", {}, { attempts: 2, codes: [500, 502, 503, 504], backoffMs: 25 }],
    ["{}", "{attempts: 5}", {}, { attempts: 5, codes: [500, 502, 503, 504], backoffMs: 25 }],
    ["{}", "{codes: [502], backoff: 1s}", {}, { attempts: 2, codes: [502], backoffMs: 1000 }],
  ];
  for (const [timeouts, retry, want, wantRetry] of rows) {
    const snapshot = snapshotOf(route(
      "HTTPRoute",
      "shop/t",
      `${SVC80}\nrules:\n- ${BE}\n  timeouts: ${timeouts}${retry ? `\n  retry: ${retry}` : ""}`,
    ));
    const d = decide(snapshot, { path: "/" });
    assertEquals(d.kind === "route" ? [d.timeouts, d.retry] : d, [want, wantRetry], timeouts);
  }
});
