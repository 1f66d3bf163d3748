import { assertEquals, assertOk, assertRejects } from "../../tests/_util/asserts.ts";
import { route, snapshotOf } from "./_testing.ts";
import { routeTableFor } from "./compile.ts";
import { UnknownRouteTargetError } from "./errors.ts";

const SVC80 = `parentRefs: [{group: "", kind: Service, name: web, port: 80}]`;
const BE = `backendRefs: [{name: web-v1, port: 80}]`;

Deno.test("routeTableFor() caches one table per snapshot, service and port", () => {
  const config = route("HTTPRoute", "shop/r", `${SVC80}\nrules:\n- ${BE}`);
  const a = snapshotOf(config), b = snapshotOf(config);
  const t = routeTableFor(a, "shop/web", 80);
  assertOk(routeTableFor(a, "shop/web", 80) === t, "same snapshot: same table");
  assertOk(routeTableFor(b, "shop/web", 80) !== t, "new snapshot: new table");
  assertOk(routeTableFor(a, "shop/web", 9090) !== t, "other port: other table");
});

Deno.test("routeTableFor() refuses a service or port the config lacks", async () => {
  const s = snapshotOf(route("HTTPRoute", "shop/r", `${SVC80}\nrules:\n- ${BE}`));
  const rows: [service: string, port: number, message: string][] = [
    ["shop/nope", 80, 'no Service "shop/nope" in the config; give a Service as namespace/name'],
    ["web", 80, 'no Service "web" in the config; give a Service as namespace/name'],
    ["shop/web", 81, 'Service "shop/web" has no port 81 (ports: 80, 9090)'],
  ];
  for (const [service, port, message] of rows) {
    const err = await assertRejects(() => routeTableFor(s, service, port), UnknownRouteTargetError);
    assertEquals([err.message, (err as UnknownRouteTargetError).code], [message, "EROUTETARGET"]);
  }
});

Deno.test("routeTableFor() orders entries by precedence across routes, rules and matches", () => {
  const s = snapshotOf([
    route(
      "HTTPRoute",
      "shop/a",
      `
${SVC80}
rules:
- matches: [{path: {value: /}}, {path: {type: Exact, value: /x}}]
  ${BE}
- matches: [{path: {type: RegularExpression, value: "/r.*"}}, {path: {type: RegularExpression, value: "/longer.*"}}]
  ${BE}
- matches: [{path: {value: /p}, method: GET}, {path: {value: /p}, headers: [{name: a, value: b}]}]
  ${BE}
`,
    ),
    route("HTTPRoute", "shop/b", `${SVC80}\nrules:\n- matches: [{path: {value: /p/}}]\n  ${BE}`),
  ].join("---\n"));
  const t = routeTableFor(s, "shop/web", 80);
  assertEquals(
    t.producer?.entries.map((e) => `${e.route.split("/")[2]}#${e.ruleIndex}.${e.matchIndex}`),
    ["a#0.1", "a#2.0", "a#2.1", "b#0.0", "a#0.0", "a#1.1", "a#1.0"],
  );
  assertEquals([t.gateway, t.consumers.size, t.problems], [undefined, 0, []]);
});

Deno.test("routeTableFor() reports what it does not apply", () => {
  const grpcParent = `parentRefs: [{group: "", kind: Service, name: web, port: 9090}]`;
  const rows: [name: string, config: string, port: number, problems: string[]][] = [
    [
      "an HTTPRoute beside a GRPCRoute",
      [
        route(
          "HTTPRoute",
          "shop/h",
          `${grpcParent}\nrules:\n- backendRefs: [{name: web-v1, port: 9090}]`,
        ),
        route(
          "GRPCRoute",
          "shop/g",
          `${grpcParent}\nrules:\n- backendRefs: [{name: web-v1, port: 9090}]`,
        ),
      ].join("---\n"),
      9090,
      [
        "HTTPRoute/shop/h not applied: GRPCRoutes attach to the same Service port and take " +
        "precedence over HTTPRoutes (GEP-1294); attach it to another port or remove one",
      ],
    ],
    [
      "hostnames on a Service parent",
      route("HTTPRoute", "shop/h", `${SVC80}\nhostnames: [a.example]\nrules:\n- ${BE}`),
      80,
      [
        "HTTPRoute/shop/h: hostnames ignored for a Service parent (GEP-1294); match the Host " +
        "header with a header match instead",
      ],
    ],
    [
      "a mirror to a host nothing serves",
      route(
        "HTTPRoute",
        "shop/m",
        `${SVC80}\nrules:\n- ${BE}\n  filters: [{type: RequestMirror, requestMirror: {backendRef: {group: networking.istio.io, kind: Hostname, name: gone.example, port: 80}}}]`,
      ),
      80,
      [
        'HTTPRoute/shop/m rules[0] filters[0]: mirror dropped: no Service or ServiceEntry has host "gone.example"',
      ],
    ],
    [
      "the newer of an HTTPRoute and a GRPCRoute with overlapping hostnames on the waypoint",
      [
        route(
          "GRPCRoute",
          "shop/g",
          `parentRefs: [{name: wp}]\nhostnames: ["*.svc.cluster.local"]\nrules:\n- backendRefs: [{name: web-v1, port: 9090}]`,
          "2025-01-02T00:00:00Z",
        ),
        route(
          "HTTPRoute",
          "shop/h",
          `parentRefs: [{name: wp}]\nhostnames: [web.shop.svc.cluster.local]\nrules:\n- ${BE}`,
          "2025-01-01T00:00:00Z",
        ),
        route(
          "HTTPRoute",
          "shop/other",
          `parentRefs: [{name: wp}]\nhostnames: [other.example]\nrules:\n- ${BE}`,
          "2025-01-03T00:00:00Z",
        ),
      ].join("---\n"),
      80,
      ["GRPCRoute/shop/g not applied: its hostnames overlap those of the older HTTPRoute/shop/h"],
    ],
  ];
  for (const [name, config, port, problems] of rows) {
    assertEquals(routeTableFor(snapshotOf(config), "shop/web", port).problems, problems, name);
  }
});

Deno.test("routeTableFor() attaches waypoint routes only through the service's waypoint", () => {
  const s = snapshotOf(route("HTTPRoute", "shop/gw", `parentRefs: [{name: wp}]\nrules:\n- ${BE}`));
  assertEquals(routeTableFor(s, "shop/web", 80).gateway?.entries.length, 1);
  assertEquals(routeTableFor(s, "shop/echo", 80).gateway, undefined);
});
