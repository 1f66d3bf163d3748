import { assertEquals } from "../../../tests/_util/asserts.ts";
import type { Resource } from "../kind.ts";
import { issuesOf, resourcesOf, yaml } from "../_testing.ts";
import { GRPCRoute } from "./grpc_route.ts";

/** A GRPCRoute on Service greeter whose `rules:` are `rules` (YAML). */
const route = (rules: string) =>
  yaml`
  apiVersion: gateway.networking.k8s.io/v1
  kind: GRPCRoute
  metadata: {name: g, namespace: shop}
  spec:
    parentRefs: [{group: "", kind: Service, name: greeter}]
    rules:
` + rules.split("\n").map((l) => "  " + l).join("\n") + "\n";

const cases: { name: string; doc: string; want: string[] }[] = [
  {
    name: "a method match needs service or method",
    doc: route("- matches: [{method: {type: Exact}}]"),
    want: [
      "test.yaml:7 spec.rules[0].matches[0].method: a method match needs service or method (give one or both)",
    ],
  },
  {
    name: "an Exact service with a '-'",
    doc: route("- matches: [{method: {service: hello-world.Greeter}}]"),
    want: [
      'test.yaml:7 spec.rules[0].matches[0].method.service: "hello-world.Greeter" is not a gRPC service name (dot-separated identifiers, e.g. helloworld.Greeter)',
    ],
  },
  {
    name: "an Exact method with a '.'",
    doc: route("- matches: [{method: {service: .helloworld.Greeter, method: Say.Hello}}]"),
    want: [
      'test.yaml:7 spec.rules[0].matches[0].method.method: "Say.Hello" is not a gRPC method name (an identifier, e.g. SayHello)',
    ],
  },
  {
    name: "bad regular expression",
    doc: route('- matches: [{method: {type: RegularExpression, service: "("}}]'),
    want: [
      'test.yaml:7 spec.rules[0].matches[0].method.service: "(" is not a valid regular expression: Invalid regular expression: /(/: Unterminated group',
    ],
  },
  {
    name: "enum typo in a method match type",
    doc: route("- matches: [{method: {type: exact, method: SayHello}}]"),
    want: [
      'test.yaml:7 spec.rules[0].matches[0].method.type: "exact" is not one of Exact, RegularExpression (did you mean "Exact"?)',
    ],
  },
  {
    name: "unknown field with did-you-mean",
    doc: route("- matchs: []"),
    want: ['test.yaml:7 spec.rules[0].matchs: unknown field "matchs" (did you mean "matches"?)'],
  },
  {
    name: "wrong type: matches as an object",
    doc: route("- matches: {method: {method: SayHello}}"),
    want: [
      "test.yaml:7 spec.rules[0].matches: expected a list of GRPCRouteMatch, got an object",
    ],
  },
  {
    name: "an empty header match value",
    doc: route('- matches: [{headers: [{name: x, value: ""}]}]'),
    want: ["test.yaml:7 spec.rules[0].matches[0].headers[0].value: must not be empty"],
  },
  {
    name: "HTTP-only filters are not GRPCRoute filters",
    doc: route("- filters: [{type: URLRewrite}]"),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].type: "URLRewrite" is not one of RequestHeaderModifier, ResponseHeaderModifier, RequestMirror, ExtensionRef',
    ],
  },
  {
    name: "filter type/field mismatch",
    doc: route(
      "- filters: [{type: RequestMirror, requestHeaderModifier: {remove: [x]}}]",
    ),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].requestHeaderModifier: "requestHeaderModifier" is only allowed with type RequestHeaderModifier, not RequestMirror',
      'test.yaml:7 spec.rules[0].filters[0].requestMirror: filter type RequestMirror needs "requestMirror"',
    ],
  },
  {
    name: "a header modifier repeated",
    doc: route(
      "- filters:\n" +
        "  - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: a, value: b}]}}\n" +
        "  - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: c, value: d}]}}",
    ),
    want: [
      "test.yaml:9 spec.rules[0].filters[1].type: filter ResponseHeaderModifier may appear only once (already at spec.rules[0].filters[0])",
    ],
  },
  {
    name: "ExtensionRef without extensionRef",
    doc: route("- filters: [{type: ExtensionRef}]"),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].extensionRef: filter type ExtensionRef needs "extensionRef"',
    ],
  },
  {
    name: "ExtensionRef to another group is refused",
    doc: route(
      "- filters: [{type: ExtensionRef, extensionRef: {group: networking.istio.io, kind: EnvoyFilter, name: x}}]",
    ),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].extensionRef.group: extensionRef group "networking.istio.io" is not supported by ambit (ambit\'s filter extensions are {group: ambit.io, kind: HTTPFault or LocalRateLimit})',
    ],
  },
  {
    name: "ExtensionRef to another kind is refused (a backendRef's filter)",
    doc: route(
      "- backendRefs: [{name: a, port: 50051, filters: [{type: ExtensionRef, extensionRef: {group: ambit.io, kind: RateLimit, name: x}}]}]",
    ),
    want: [
      'test.yaml:7 spec.rules[0].backendRefs[0].filters[0].extensionRef.kind: extensionRef kind "RateLimit" is not supported by ambit (ambit\'s filter extensions are {group: ambit.io, kind: HTTPFault or LocalRateLimit})',
    ],
  },
  {
    name: "one HTTPFault per filter list",
    doc: route(
      "- filters:\n" +
        "  - {type: ExtensionRef, extensionRef: {group: ambit.io, kind: HTTPFault, name: a}}\n" +
        "  - {type: ExtensionRef, extensionRef: {group: ambit.io, kind: HTTPFault, name: a}}",
    ),
    want: [
      "test.yaml:9 spec.rules[0].filters[1].extensionRef.kind: filter ExtensionRef to kind HTTPFault may appear only once (already at spec.rules[0].filters[0])",
    ],
  },
  {
    name: "weight out of range",
    doc: route("- backendRefs: [{name: a, port: 80, weight: 1000001}]"),
    want: [
      "test.yaml:7 spec.rules[0].backendRefs[0].weight: 1000001 is above the maximum 1000000",
    ],
  },
  {
    name: "backend without port",
    doc: route("- backendRefs: [{name: a}]"),
    want: [
      'test.yaml:7 spec.rules[0].backendRefs[0].port: missing required field "port" (a backend needs the port to send to)',
    ],
  },
  {
    name: "too many rules",
    doc: route(Array.from({ length: 17 }, () => "- {}").join("\n")),
    want: ["test.yaml:6 spec.rules: has 17 items; at most 16 are allowed"],
  },
  {
    name: "sessionPersistence is refused",
    doc: route("- sessionPersistence: {}"),
    want: [
      'test.yaml:7 spec.rules[0].sessionPersistence: "sessionPersistence" is not supported by ambit (use a DestinationRule consistentHash load balancer)',
    ],
  },
  {
    name: "missing required parentRefs",
    doc: yaml`
      apiVersion: gateway.networking.k8s.io/v1
      kind: GRPCRoute
      metadata: {name: g}
      spec:
        rules: [{backendRefs: [{name: greeter, port: 50051}]}]
    `,
    want: [
      'test.yaml:4 spec.parentRefs: missing required field "parentRefs" (what the route attaches to: for mesh traffic, a Service with group "" and kind Service)',
    ],
  },
  {
    name: "apiVersion v1beta1 is not served for GRPCRoute",
    doc: yaml`
      apiVersion: gateway.networking.k8s.io/v1beta1
      kind: GRPCRoute
      metadata: {name: g}
      spec:
        parentRefs: [{group: "", kind: Service, name: greeter}]
    `,
    want: [
      'test.yaml:1 apiVersion: apiVersion "gateway.networking.k8s.io/v1beta1" is not served for kind GRPCRoute (use gateway.networking.k8s.io/v1)',
    ],
  },
];

for (const c of cases) {
  Deno.test(`GRPCRoute: ${c.name}`, () => {
    assertEquals(issuesOf(c.doc), c.want);
  });
}

Deno.test("GRPCRoute: defaults as an API server applies them (rules have none)", () => {
  const [r] = resourcesOf(yaml`
    apiVersion: gateway.networking.k8s.io/v1alpha2
    kind: GRPCRoute
    metadata: {name: g, namespace: shop}
    spec:
      parentRefs: [{group: "", kind: Service, name: greeter}]
      rules:
      - matches:
        - method: {service: helloworld.Greeter}
          headers: [{name: x-canary, value: "1"}]
        backendRefs: [{name: greeter-v2, port: 50051}]
  `);
  assertEquals(r.spec, {
    parentRefs: [{ group: "", kind: "Service", name: "greeter" }],
    rules: [{
      matches: [{
        method: { type: "Exact", service: "helloworld.Greeter" },
        headers: [{ type: "Exact", name: "x-canary", value: "1" }],
      }],
      backendRefs: [{ group: "", kind: "Service", name: "greeter-v2", port: 50051, weight: 1 }],
    }],
  });
});

Deno.test("GRPCRoute: a weighted split with filters checks clean and references what it names", () => {
  const [r] = resourcesOf(yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: GRPCRoute
    metadata: {name: greeter, namespace: shop}
    spec:
      parentRefs:
      - group: ""
        kind: Service
        name: greeter
        port: 50051
      hostnames: [greeter.example.com]
      rules:
      - matches:
        - method: {type: RegularExpression, service: 'helloworld\\..*', method: 'Say.*'}
        filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: {set: [{name: x-route, value: canary}]}
        - type: RequestMirror
          requestMirror: {backendRef: {name: greeter-shadow, port: 50051}, percent: 5}
        backendRefs:
        - name: greeter-v1
          port: 50051
          weight: 90
        - name: greeter-v2
          port: 50051
          weight: 10
          filters:
          - type: ResponseHeaderModifier
            responseHeaderModifier: {add: [{name: x-version, value: v2}]}
          - type: ExtensionRef
            extensionRef: {group: ambit.io, kind: HTTPFault, name: v2-unavailable}
      - filters:
        - type: ExtensionRef
          extensionRef: {group: ambit.io, kind: LocalRateLimit, name: greeter-calls}
        - type: ExtensionRef
          extensionRef: {group: ambit.io, kind: HTTPFault, name: slow}
        backendRefs: [{name: greeter-v1, port: 50051}]
  `);
  assertEquals(
    GRPCRoute.references!(r as Resource<never>).map((ref) =>
      `${ref.kinds}/${ref.namespace}/${ref.name}`
    ),
    [
      "Service/shop/greeter",
      "Service/shop/greeter-shadow",
      "Service/shop/greeter-v1",
      "Service/shop/greeter-v2",
      "Service/shop/greeter-v1",
      "HTTPFault/shop/v2-unavailable",
      "LocalRateLimit/shop/greeter-calls",
      "HTTPFault/shop/slow",
    ],
  );
});
