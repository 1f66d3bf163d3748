import { assertEquals } from "../../../tests/_util/asserts.ts";
import { issuesOf, resourcesOf, yaml } from "../_testing.ts";

const route = (rules: string) =>
  yaml`
  apiVersion: gateway.networking.k8s.io/v1
  kind: HTTPRoute
  metadata: {name: r, namespace: shop}
  spec:
    parentRefs: [{group: "", kind: Service, name: reviews}]
    rules:
` + rules.split("\n").map((l) => "  " + l).join("\n") + "\n";

const cases: [string, string, string[]][] = [
  ["path not starting with /", route("- matches: [{path: {type: PathPrefix, value: v2}}]"), [
    'test.yaml:7 spec.rules[0].matches[0].path.value: "v2" must start with "/"',
  ]],
  ["path with //", route("- matches: [{path: {type: Exact, value: /a//b}}]"), [
    'test.yaml:7 spec.rules[0].matches[0].path.value: "/a//b" must not contain "//"',
  ]],
  ["bad regex", route('- matches: [{path: {type: RegularExpression, value: "/a("}}]'), [
    'test.yaml:7 spec.rules[0].matches[0].path.value: "/a(" is not a valid regular expression: Invalid regular expression: //a(/: Unterminated group',
  ]],
  ["enum typo", route("- matches: [{path: {type: Prefix, value: /}}]"), [
    'test.yaml:7 spec.rules[0].matches[0].path.type: "Prefix" is not one of Exact, PathPrefix, RegularExpression',
  ]],
  ["unknown field with did-you-mean", route("- backendRef: [{name: a, port: 80}]"), [
    'test.yaml:7 spec.rules[0].backendRef: unknown field "backendRef" (did you mean "backendRefs"?)',
  ]],
  ["weight out of range", route("- backendRefs: [{name: a, port: 80, weight: 2000000}]"), [
    "test.yaml:7 spec.rules[0].backendRefs[0].weight: 2000000 is above the maximum 1000000",
  ]],
  ["backend without port", route("- backendRefs: [{name: a}]"), [
    'test.yaml:7 spec.rules[0].backendRefs[0].port: missing required field "port" (a backend needs a port)',
  ]],
  [
    "filter type/field mismatch",
    route("- filters: [{type: RequestHeaderModifier, urlRewrite: {hostname: x.example}}]"),
    [
      'test.yaml:7 spec.rules[0].filters[0].requestHeaderModifier: filter type RequestHeaderModifier needs "requestHeaderModifier"',
      'test.yaml:7 spec.rules[0].filters[0].urlRewrite: "urlRewrite" is only allowed with type URLRewrite, not RequestHeaderModifier',
    ],
  ],
  [
    "redirect and rewrite together",
    route(
      "- filters:\n  - {type: RequestRedirect, requestRedirect: {scheme: https}}\n  - {type: URLRewrite, urlRewrite: {hostname: x.example}}",
    ),
    ["test.yaml:7 spec.rules[0].filters: RequestRedirect and URLRewrite cannot be used together"],
  ],
  [
    "redirect status code",
    route("- filters: [{type: RequestRedirect, requestRedirect: {statusCode: 307}}]"),
    [
      "test.yaml:7 spec.rules[0].filters[0].requestRedirect.statusCode: number 307 is not one of 301, 302",
    ],
  ],
  ["backendRequest longer than request", route("- timeouts: {request: 1s, backendRequest: 2s}"), [
    "test.yaml:7 spec.rules[0].timeouts.backendRequest: backendRequest 2s is longer than request 1s",
  ]],
  ["retry code out of range", route("- retry: {codes: [200]}"), [
    "test.yaml:7 spec.rules[0].retry.codes[0]: 200 is below the minimum 400",
  ]],
  ["too many rules", route(Array.from({ length: 17 }, () => "- {}").join("\n")), [
    "test.yaml:6 spec.rules: has 17 items; at most 16 are allowed",
  ]],
  [
    "missing parentRefs",
    yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: r}
    spec: {rules: []}
  `,
    ['test.yaml:4 spec.parentRefs: missing required field "parentRefs" (services (mesh) or Gateways the route attaches to)'],
  ],
  [
    "Service parent with the Gateway group",
    yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: r}
    spec:
      parentRefs: [{kind: Service, name: reviews}]
  `,
    ['test.yaml:5 spec.parentRefs[0].group: group must be "" for kind Service, got "gateway.networking.k8s.io"'],
  ],
  ["sessionPersistence is refused", route("- sessionPersistence: {sessionName: x}"), [
    'test.yaml:7 spec.rules[0].sessionPersistence: "sessionPersistence" is not supported by ambit (use a DestinationRule consistentHash load balancer)',
  ]],
  [
    "gRPC method match needs service or method",
    yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: GRPCRoute
    metadata: {name: g}
    spec:
      parentRefs: [{group: "", kind: Service, name: greeter}]
      rules:
      - matches: [{method: {type: Exact}}]
  `,
    ["test.yaml:7 spec.rules[0].matches[0].method: a method match needs service or method"],
  ],
  [
    "gateway class other than istio-waypoint",
    yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: gw, annotations: {ambit.io/node: n}}
    spec: {gatewayClassName: istio}
  `,
    ['test.yaml:4 spec.gatewayClassName: gateway class "istio" is not served: ambit runs only waypoints'],
  ],
  [
    "waypoint-for label value",
    yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata:
      name: wp
      labels: {istio.io/waypoint-for: services}
      annotations: {ambit.io/node: n}
    spec: {gatewayClassName: istio-waypoint}
  `,
    ['test.yaml:5 metadata.labels["istio.io/waypoint-for"]: "services" is not one of service, workload, all, none'],
  ],
  [
    "listener TLS is refused",
    yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: wp, annotations: {ambit.io/node: n}}
    spec:
      gatewayClassName: istio-waypoint
      listeners: [{name: mesh, port: 15008, protocol: HBONE, tls: {mode: Terminate}}]
  `,
    [
      'test.yaml:6 spec.listeners[0].tls: "tls" is not supported by ambit (waypoints terminate HBONE (mutual TLS with mesh identities), not listener TLS)',
    ],
  ],
];

for (const [name, doc, want] of cases) {
  Deno.test(`Gateway API kinds: ${name}`, () => {
    assertEquals(issuesOf(doc), want);
  });
}

Deno.test("HTTPRoute: defaults as an API server applies them", () => {
  const [r] = resourcesOf(yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: r, namespace: shop}
    spec:
      parentRefs: [{name: waypoint}]
      rules:
      - backendRefs: [{name: reviews, port: 9080}]
  `);
  assertEquals(r.spec, {
    parentRefs: [{ group: "gateway.networking.k8s.io", kind: "Gateway", name: "waypoint" }],
    rules: [{
      matches: [{ path: { type: "PathPrefix", value: "/" } }],
      backendRefs: [{ group: "", kind: "Service", name: "reviews", port: 9080, weight: 1 }],
    }],
  });
});

Deno.test("upstream manifests check clean: a canary HTTPRoute and a waypoint Gateway from istio.io", () => {
  const res = resourcesOf(yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata:
      name: waypoint
      namespace: bookinfo
      labels:
        istio.io/waypoint-for: service
      annotations:
        ambit.io/node: node-a
    spec:
      gatewayClassName: istio-waypoint
      listeners:
      - name: mesh
        port: 15008
        protocol: HBONE
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata:
      name: reviews
      namespace: bookinfo
    spec:
      parentRefs:
      - group: ""
        kind: Service
        name: reviews
        port: 9080
      rules:
      - matches:
        - headers:
          - name: end-user
            value: jason
        backendRefs:
        - name: reviews-v2
          port: 9080
      - backendRefs:
        - name: reviews-v1
          port: 9080
          weight: 90
        - name: reviews-v2
          port: 9080
          weight: 10
  `);
  assertEquals(res.map((r) => r.kind), ["Gateway", "HTTPRoute"]);
});
