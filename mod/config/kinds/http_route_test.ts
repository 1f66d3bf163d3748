import { assertEquals } from "../../../tests/_util/asserts.ts";
import type { Resource } from "../kind.ts";
import { issuesOf, resourcesOf, yaml } from "../_testing.ts";
import { HTTPRoute } from "./http_route.ts";

/** An HTTPRoute on Service reviews whose `rules:` are `rules` (YAML, one rule per "- "). */
const route = (rules: string) =>
  yaml`
  apiVersion: gateway.networking.k8s.io/v1
  kind: HTTPRoute
  metadata: {name: r, namespace: shop}
  spec:
    parentRefs: [{group: "", kind: Service, name: reviews}]
    rules:
` + rules.split("\n").map((l) => "  " + l).join("\n") + "\n";

/** An HTTPRoute whose `spec:` is `spec` (YAML). */
const spec = (spec: string) =>
  yaml`
  apiVersion: gateway.networking.k8s.io/v1
  kind: HTTPRoute
  metadata: {name: r, namespace: shop}
  spec:
` + spec.split("\n").map((l) => "  " + l).join("\n") + "\n";

const cases: { name: string; doc: string; want: string[] }[] = [
  {
    name: "wrong type: an object where a list goes",
    doc: route("- backendRefs: {name: a, port: 80}"),
    want: [
      "test.yaml:7 spec.rules[0].backendRefs: expected a list of HTTPBackendRef, got an object",
    ],
  },
  {
    name: "wrong type: a port written as a string",
    doc: route('- backendRefs: [{name: a, port: "80"}]'),
    want: [
      'test.yaml:7 spec.rules[0].backendRefs[0].port: "80" is not a port number (use a number from 1 to 65535)',
    ],
  },
  {
    name: "unknown field with did-you-mean",
    doc: route("- backendRef: [{name: a, port: 80}]"),
    want: [
      'test.yaml:7 spec.rules[0].backendRef: unknown field "backendRef" (did you mean "backendRefs"?)',
    ],
  },
  {
    name: "enum typo in a path match type",
    doc: route("- matches: [{path: {type: Prefix, value: /}}]"),
    want: [
      'test.yaml:7 spec.rules[0].matches[0].path.type: "Prefix" is not one of Exact, PathPrefix, RegularExpression',
    ],
  },
  {
    name: "method in lower case",
    doc: route("- matches: [{method: get}]"),
    want: [
      'test.yaml:7 spec.rules[0].matches[0].method: "get" is not one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH (did you mean "GET"?)',
    ],
  },
  {
    name: "path not starting with /",
    doc: route("- matches: [{path: {value: v2}}]"),
    want: ['test.yaml:7 spec.rules[0].matches[0].path.value: "v2" must start with "/"'],
  },
  {
    name: "path with a /./ segment",
    doc: route("- matches: [{path: {type: Exact, value: /a/./b}}]"),
    want: ['test.yaml:7 spec.rules[0].matches[0].path.value: "/a/./b" must not contain "/./"'],
  },
  {
    name: "path ending in /..",
    doc: route("- matches: [{path: {value: /a/..}}]"),
    want: ['test.yaml:7 spec.rules[0].matches[0].path.value: "/a/.." must not end with "/.."'],
  },
  {
    name: "path with a space",
    doc: route("- matches: [{path: {value: /a b}}]"),
    want: [
      'test.yaml:7 spec.rules[0].matches[0].path.value: "/a b" has characters a path may not contain (percent-encode them, e.g. %20 for a space)',
    ],
  },
  {
    name: "bad regular expression in a path match",
    doc: route('- matches: [{path: {type: RegularExpression, value: "/a("}}]'),
    want: [
      'test.yaml:7 spec.rules[0].matches[0].path.value: "/a(" is not a valid regular expression: Invalid regular expression: //a(/: Unterminated group',
    ],
  },
  {
    name: "bad regular expression in a header match",
    doc: route('- matches: [{headers: [{type: RegularExpression, name: x, value: "[a"}]}]'),
    want: [
      'test.yaml:7 spec.rules[0].matches[0].headers[0].value: "[a" is not a valid regular expression: Invalid regular expression: /[a/: Unterminated character class',
    ],
  },
  {
    name: "header match names are unique case-insensitively",
    doc: route('- matches: [{headers: [{name: X-A, value: "1"}, {name: x-a, value: "2"}]}]'),
    want: [
      'test.yaml:7 spec.rules[0].matches[0].headers[1]: duplicate header match "x-a" (already at spec.rules[0].matches[0].headers[0])',
    ],
  },
  {
    name: "weight out of range",
    doc: route("- backendRefs: [{name: a, port: 80, weight: 2000000}]"),
    want: [
      "test.yaml:7 spec.rules[0].backendRefs[0].weight: 2000000 is above the maximum 1000000",
    ],
  },
  {
    name: "too many rules",
    doc: route(Array.from({ length: 17 }, () => "- {}").join("\n")),
    want: ["test.yaml:6 spec.rules: has 17 items; at most 16 are allowed"],
  },
  {
    name: "an empty rule list",
    doc: spec('parentRefs: [{group: "", kind: Service, name: reviews}]\nrules: []'),
    want: ["test.yaml:6 spec.rules: must have at least one item"],
  },
  {
    name: "rule names are unique",
    doc: route("- name: canary\n- name: canary"),
    want: [
      'test.yaml:8 spec.rules[1].name: duplicate rule name "canary" (already at spec.rules[0].name)',
    ],
  },
  {
    name: "filter type/field mismatch",
    doc: route("- filters: [{type: RequestHeaderModifier, urlRewrite: {hostname: x.example}}]"),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].requestHeaderModifier: filter type RequestHeaderModifier needs "requestHeaderModifier"',
      'test.yaml:7 spec.rules[0].filters[0].urlRewrite: "urlRewrite" is only allowed with type URLRewrite, not RequestHeaderModifier',
    ],
  },
  {
    name: "RequestRedirect and URLRewrite together",
    doc: route(
      "- filters:\n" +
        "  - {type: RequestRedirect, requestRedirect: {scheme: https}}\n" +
        "  - {type: URLRewrite, urlRewrite: {hostname: x.example}}",
    ),
    want: [
      "test.yaml:7 spec.rules[0].filters: RequestRedirect and URLRewrite cannot be used together",
    ],
  },
  {
    name: "a filter type repeated (RequestMirror may repeat, tested clean below)",
    doc: route(
      "- filters:\n" +
        "  - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: a, value: b}]}}\n" +
        "  - {type: RequestHeaderModifier, requestHeaderModifier: {remove: [c]}}",
    ),
    want: [
      "test.yaml:9 spec.rules[0].filters[1].type: filter RequestHeaderModifier may appear only once (already at spec.rules[0].filters[0])",
    ],
  },
  {
    name: "a backendRef's filters follow the same rules",
    doc: route(
      "- backendRefs:\n" +
        "  - name: a\n" +
        "    port: 80\n" +
        "    filters:\n" +
        "    - {type: RequestRedirect, requestRedirect: {scheme: https}}\n" +
        "    - {type: URLRewrite, urlRewrite: {hostname: x.example}}",
    ),
    want: [
      "test.yaml:10 spec.rules[0].backendRefs[0].filters: RequestRedirect and URLRewrite cannot be used together",
    ],
  },
  {
    name: "RequestRedirect with backendRefs",
    doc: route(
      "- filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]\n" +
        "  backendRefs: [{name: a, port: 80}]",
    ),
    want: [
      "test.yaml:8 spec.rules[0].backendRefs: a rule with a RequestRedirect filter must not have backendRefs",
    ],
  },
  {
    name: "ReplacePrefixMatch with an Exact match",
    doc: route(
      "- matches: [{path: {type: Exact, value: /a}}]\n" +
        "  filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]",
    ),
    want: [
      "test.yaml:8 spec.rules[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix (the rule's match is of type Exact)",
    ],
  },
  {
    name: "ReplacePrefixMatch in a backendRef filter with two matches",
    doc: route(
      "- matches: [{path: {value: /a}}, {path: {value: /b}}]\n" +
        "  backendRefs: [{name: a, port: 80, filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]}]",
    ),
    want: [
      "test.yaml:8 spec.rules[0].backendRefs[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix (the rule has 2 matches)",
    ],
  },
  {
    name: "path modifier type/field mismatch",
    doc: route(
      "- filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replacePrefixMatch: /b}}}]",
    ),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].urlRewrite.path.replaceFullPath: type ReplaceFullPath needs "replaceFullPath"',
      'test.yaml:7 spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch: "replacePrefixMatch" is not allowed with type ReplaceFullPath',
    ],
  },
  {
    name: "redirect status code",
    doc: route("- filters: [{type: RequestRedirect, requestRedirect: {statusCode: 305}}]"),
    want: [
      "test.yaml:7 spec.rules[0].filters[0].requestRedirect.statusCode: number 305 is not one of 301, 302, 303, 307, 308",
    ],
  },
  {
    name: "CORS is refused by type",
    doc: route("- filters: [{type: CORS}]"),
    want: [
      "test.yaml:7 spec.rules[0].filters[0].type: filter type CORS is not supported by ambit (CORS is not implemented by ambit's waypoint yet)",
    ],
  },
  {
    name: "ExternalAuth is refused by type",
    doc: route("- filters: [{type: ExternalAuth}]"),
    want: [
      "test.yaml:7 spec.rules[0].filters[0].type: filter type ExternalAuth is not supported by ambit (ambit has no external authorization; use AuthorizationPolicy)",
    ],
  },
  {
    name: "ExtensionRef to another group is refused",
    doc: route("- filters: [{type: ExtensionRef, extensionRef: {group: x, kind: Y, name: z}}]"),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].extensionRef.group: extensionRef group "x" is not supported by ambit (ambit\'s filter extensions are {group: ambit.io, kind: HTTPFault or LocalRateLimit})',
    ],
  },
  {
    name: "ExtensionRef to the core group is refused (a backendRef's filter)",
    doc: route(
      '- backendRefs: [{name: a, port: 80, filters: [{type: ExtensionRef, extensionRef: {group: "", kind: ConfigMap, name: z}}]}]',
    ),
    want: [
      'test.yaml:7 spec.rules[0].backendRefs[0].filters[0].extensionRef.group: extensionRef group "" is not supported by ambit (ambit\'s filter extensions are {group: ambit.io, kind: HTTPFault or LocalRateLimit})',
    ],
  },
  {
    name: "ExtensionRef to another ambit kind is refused",
    doc: route(
      "- filters: [{type: ExtensionRef, extensionRef: {group: ambit.io, kind: Mesh, name: z}}]",
    ),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].extensionRef.kind: extensionRef kind "Mesh" is not supported by ambit (ambit\'s filter extensions are {group: ambit.io, kind: HTTPFault or LocalRateLimit})',
    ],
  },
  {
    name: "ExtensionRef kind with a did-you-mean",
    doc: route(
      "- filters: [{type: ExtensionRef, extensionRef: {group: ambit.io, kind: HttpFault, name: z}}]",
    ),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].extensionRef.kind: extensionRef kind "HttpFault" is not supported by ambit (did you mean "HTTPFault"?)',
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
    name: "extensionRef with another filter type",
    doc: route(
      "- filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [a]}, extensionRef: {group: ambit.io, kind: HTTPFault, name: f}}]",
    ),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].extensionRef: "extensionRef" is only allowed with type ExtensionRef, not RequestHeaderModifier',
    ],
  },
  {
    name: "extensionRef without group (upstream requires it)",
    doc: route("- filters: [{type: ExtensionRef, extensionRef: {kind: HTTPFault, name: f}}]"),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].extensionRef.group: missing required field "group" (the extension\'s API group: ambit.io)',
    ],
  },
  {
    name: "one HTTPFault per filter list (a LocalRateLimit beside it is fine)",
    doc: route(
      "- filters:\n" +
        "  - {type: ExtensionRef, extensionRef: {group: ambit.io, kind: HTTPFault, name: a}}\n" +
        "  - {type: ExtensionRef, extensionRef: {group: ambit.io, kind: LocalRateLimit, name: a}}\n" +
        "  - {type: ExtensionRef, extensionRef: {group: ambit.io, kind: HTTPFault, name: b}}",
    ),
    want: [
      "test.yaml:10 spec.rules[0].filters[2].extensionRef.kind: filter ExtensionRef to kind HTTPFault may appear only once (already at spec.rules[0].filters[0])",
    ],
  },
  {
    name: "one LocalRateLimit per backendRef filter list",
    doc: route(
      "- backendRefs:\n" +
        "  - name: a\n" +
        "    port: 80\n" +
        "    filters:\n" +
        "    - {type: ExtensionRef, extensionRef: {group: ambit.io, kind: LocalRateLimit, name: a}}\n" +
        "    - {type: ExtensionRef, extensionRef: {group: ambit.io, kind: LocalRateLimit, name: a}}",
    ),
    want: [
      "test.yaml:12 spec.rules[0].backendRefs[0].filters[1].extensionRef.kind: filter ExtensionRef to kind LocalRateLimit may appear only once (already at spec.rules[0].backendRefs[0].filters[0])",
    ],
  },
  {
    name: "one action per header name",
    doc: route(
      "- filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-A, value: b}], remove: [x-a]}}]",
    ),
    want: [
      'test.yaml:7 spec.rules[0].filters[0].requestHeaderModifier.remove[0]: header "x-a" already has an action in "set" (a header filter may set, add or remove a header, only one of these)',
    ],
  },
  {
    name: "mirror percent and fraction together",
    doc: route(
      "- filters: [{type: RequestMirror, requestMirror: {backendRef: {name: a, port: 80}, percent: 5, fraction: {numerator: 1}}}]",
    ),
    want: [
      "test.yaml:7 spec.rules[0].filters[0].requestMirror: give percent or fraction, not both",
    ],
  },
  {
    name: "mirror fraction above one",
    doc: route(
      "- filters: [{type: RequestMirror, requestMirror: {backendRef: {name: a, port: 80}, fraction: {numerator: 200}}}]",
    ),
    want: [
      "test.yaml:7 spec.rules[0].filters[0].requestMirror.fraction.numerator: numerator 200 is larger than denominator 100",
    ],
  },
  {
    name: "backendRequest longer than request",
    doc: route("- timeouts: {request: 1s, backendRequest: 2s}"),
    want: [
      "test.yaml:7 spec.rules[0].timeouts.backendRequest: backendRequest 2s is longer than request 1s",
    ],
  },
  {
    name: "a duration with a fraction",
    doc: route("- timeouts: {request: 1.5s}"),
    want: [
      'test.yaml:7 spec.rules[0].timeouts.request: "1.5s" is not a Gateway API duration (e.g. 10s, 500ms or 1h30m)',
    ],
  },
  {
    name: "retry codes and attempts out of range",
    doc: route("- retry: {codes: [200], attempts: 0}"),
    want: [
      "test.yaml:7 spec.rules[0].retry.codes[0]: 200 is below the minimum 400",
      "test.yaml:7 spec.rules[0].retry.attempts: 0 is below the minimum 1",
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
    name: "a Service backend named by hostname",
    doc: route("- backendRefs: [{name: reviews.shop.svc.cluster.local, port: 80}]"),
    want: [
      `test.yaml:7 spec.rules[0].backendRefs[0].name: "reviews.shop.svc.cluster.local" is a hostname, not a Service name (give the Service's name and namespace, or use kind Hostname with group networking.istio.io)`,
    ],
  },
  {
    name: "a ServiceEntry backend",
    doc: route(
      "- backendRefs: [{group: networking.istio.io, kind: ServiceEntry, name: x, port: 80}]",
    ),
    want: [
      'test.yaml:7 spec.rules[0].backendRefs[0].kind: backendRef kind "ServiceEntry" is not supported by ambit (refer to a ServiceEntry host as {group: networking.istio.io, kind: Hostname, name: <host>})',
    ],
  },
  {
    name: "a Hostname backend with a namespace",
    doc: route(
      "- backendRefs: [{group: networking.istio.io, kind: Hostname, name: api.example.com, namespace: x, port: 80}]",
    ),
    want: [
      "test.yaml:7 spec.rules[0].backendRefs[0].namespace: namespace may not be set with kind Hostname (a Hostname backend names a ServiceEntry host, which is not namespaced)",
    ],
  },
  {
    name: "sessionPersistence is refused",
    doc: route("- sessionPersistence: {sessionName: x}"),
    want: [
      'test.yaml:7 spec.rules[0].sessionPersistence: "sessionPersistence" is not supported by ambit (use a DestinationRule consistentHash load balancer)',
    ],
  },
  {
    name: "missing required parentRefs",
    doc: spec("hostnames: [reviews.example]"),
    want: [
      'test.yaml:4 spec.parentRefs: missing required field "parentRefs" (what the route attaches to: for mesh traffic, a Service with group "" and kind Service)',
    ],
  },
  {
    name: "missing required backendRef name",
    doc: route("- backendRefs: [{port: 80}]"),
    want: [
      'test.yaml:7 spec.rules[0].backendRefs[0].name: missing required field "name" (name of the Service, or the host for kind Hostname)',
    ],
  },
  {
    name: "a Service parent with the Gateway group (group left out)",
    doc: spec("parentRefs: [{kind: Service, name: reviews}]"),
    want: [
      'test.yaml:5 spec.parentRefs[0].group: group must be "" for kind Service, got "gateway.networking.k8s.io" (a mesh parentRef is {group: "", kind: Service, name: <service>})',
    ],
  },
  {
    name: "a ServiceEntry parent",
    doc: spec("parentRefs: [{group: networking.istio.io, kind: ServiceEntry, name: x}]"),
    want: [
      'test.yaml:5 spec.parentRefs[0].kind: parentRef kind "ServiceEntry" is not supported by ambit (attach the route to a Service with group "" and kind Service, or to a waypoint Gateway)',
    ],
  },
  {
    name: "one parent referenced twice",
    doc: spec(
      "parentRefs:\n" +
        '- {group: "", kind: Service, name: reviews, port: 9080}\n' +
        '- {group: "", kind: Service, name: reviews}\n' +
        '- {group: "", kind: Service, name: reviews, port: 9080}',
    ),
    want: [
      'test.yaml:7 spec.parentRefs[1]: references Service "reviews" again but sets a different combination of sectionName and port (every reference to one parent sets the same fields; compare spec.parentRefs[0])',
      'test.yaml:8 spec.parentRefs[2]: duplicate parentRef to Service "reviews" (already at spec.parentRefs[0]; give each reference its own sectionName or port)',
    ],
  },
  {
    name: "apiVersion v1alpha2 is not served for HTTPRoute",
    doc: yaml`
      apiVersion: gateway.networking.k8s.io/v1alpha2
      kind: HTTPRoute
      metadata: {name: r}
      spec:
        parentRefs: [{group: "", kind: Service, name: reviews}]
    `,
    want: [
      'test.yaml:1 apiVersion: apiVersion "gateway.networking.k8s.io/v1alpha2" is not served for kind HTTPRoute (use gateway.networking.k8s.io/v1)',
    ],
  },
];

for (const c of cases) {
  Deno.test(`HTTPRoute: ${c.name}`, () => {
    assertEquals(issuesOf(c.doc), c.want);
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
      - matches: [{headers: [{name: end-user, value: jason}]}, {path: {type: Exact}}]
        filters:
        - type: RequestRedirect
          requestRedirect: {scheme: https}
        - type: RequestMirror
          requestMirror: {backendRef: {name: shadow, port: 9080}, fraction: {numerator: 5}}
  `);
  assertEquals(r.spec, {
    parentRefs: [{ group: "gateway.networking.k8s.io", kind: "Gateway", name: "waypoint" }],
    rules: [
      {
        matches: [{ path: { type: "PathPrefix", value: "/" } }],
        backendRefs: [{ group: "", kind: "Service", name: "reviews", port: 9080, weight: 1 }],
      },
      {
        matches: [
          {
            path: { type: "PathPrefix", value: "/" },
            headers: [{ type: "Exact", name: "end-user", value: "jason" }],
          },
          { path: { type: "Exact", value: "/" } },
        ],
        filters: [
          { type: "RequestRedirect", requestRedirect: { scheme: "https", statusCode: 302 } },
          {
            type: "RequestMirror",
            requestMirror: {
              backendRef: { group: "", kind: "Service", name: "shadow", port: 9080 },
              fraction: { numerator: 5, denominator: 100 },
            },
          },
        ],
      },
    ],
  });
});

Deno.test("HTTPRoute: no rules at all means one rule matching every path", () => {
  const [r] = resourcesOf(yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: r, namespace: shop}
    spec:
      parentRefs: [{group: "", kind: Service, name: reviews}]
  `);
  assertEquals((r.spec as { rules: unknown }).rules, [
    { matches: [{ path: { type: "PathPrefix", value: "/" } }] },
  ]);
});

Deno.test("HTTPRoute: the canary split from Istio's bookinfo samples checks clean", () => {
  // istio/istio samples/bookinfo/gateway-api/route-reviews-90-10.yaml, as istio.io's
  // traffic-shifting task applies it, plus the namespace.
  const [r] = resourcesOf(yaml`
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
      - backendRefs:
        - name: reviews-v1
          port: 9080
          weight: 90
        - name: reviews-v2
          port: 9080
          weight: 10
  `);
  assertEquals(r.kind, "HTTPRoute");
});

Deno.test("HTTPRoute: what upstream allows and ambit accepts checks clean", () => {
  resourcesOf(yaml`
    apiVersion: gateway.networking.k8s.io/v1beta1
    kind: HTTPRoute
    metadata: {name: r, namespace: shop}
    spec:
      parentRefs:
      - {group: "", kind: Service, name: reviews, port: 9080}
      - {group: "", kind: Service, name: reviews, port: 9081}
      hostnames: ["*.example.com", reviews.example.com]
      rules:
      - name: api
        matches:
        - path: {type: PathPrefix, value: "/api/v1%20x"}
          method: POST
          queryParams: [{name: debug, value: "1"}, {type: RegularExpression, name: v, value: "^2"}]
        filters:
        - type: RequestMirror
          requestMirror: {backendRef: {name: shadow-a, port: 80}, percent: 10}
        - type: RequestMirror
          requestMirror: {backendRef: {name: shadow-b, port: 80}}
        - type: URLRewrite
          urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v1}}
        - type: ResponseHeaderModifier
          responseHeaderModifier: {add: [{name: x-a, value: "1"}], remove: [server]}
        backendRefs:
        - {name: reviews, port: 9080, weight: 0}
        - {group: networking.istio.io, kind: Hostname, name: api.example.com, port: 443}
        timeouts: {request: 0s, backendRequest: 2s}
        retry: {codes: [503, 504], attempts: 3, backoff: 100ms}
  `);
});

Deno.test("HTTPRoute: references parents, backends and mirrors (not Hostname backends)", () => {
  const [r] = resourcesOf(yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: r, namespace: shop}
    spec:
      parentRefs:
      - {group: "", kind: Service, name: reviews}
      - {name: waypoint, namespace: infra}
      rules:
      - filters:
        - {type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}
        - {type: ExtensionRef, extensionRef: {group: ambit.io, kind: HTTPFault, name: flaky}}
        backendRefs:
        - {name: reviews-v1, namespace: other, port: 80}
        - group: networking.istio.io
          kind: Hostname
          name: api.example.com
          port: 443
          filters:
          - {type: ExtensionRef, extensionRef: {group: ambit.io, kind: LocalRateLimit, name: ext}}
  `);
  assertEquals(HTTPRoute.references!(r as Resource<never>), [
    {
      path: ["spec", "parentRefs", 0, "name"],
      kinds: ["Service"],
      namespace: "shop",
      name: "reviews",
    },
    {
      path: ["spec", "parentRefs", 1, "name"],
      kinds: ["Gateway"],
      namespace: "infra",
      name: "waypoint",
    },
    {
      path: ["spec", "rules", 0, "filters", 0, "requestMirror", "backendRef", "name"],
      kinds: ["Service"],
      namespace: "shop",
      name: "shadow",
    },
    {
      path: ["spec", "rules", 0, "backendRefs", 0, "name"],
      kinds: ["Service"],
      namespace: "other",
      name: "reviews-v1",
    },
    {
      path: ["spec", "rules", 0, "filters", 1, "extensionRef", "name"],
      kinds: ["HTTPFault"],
      namespace: "shop",
      name: "flaky",
    },
    {
      path: ["spec", "rules", 0, "backendRefs", 1, "filters", 0, "extensionRef", "name"],
      kinds: ["LocalRateLimit"],
      namespace: "shop",
      name: "ext",
    },
  ]);
});

Deno.test("HTTPRoute: ExtensionRef filters name an HTTPFault and a LocalRateLimit", () => {
  const [r] = resourcesOf(yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: {name: r, namespace: shop}
    spec:
      parentRefs: [{group: "", kind: Service, name: reviews}]
      rules:
      - filters:
        - type: ExtensionRef
          extensionRef: {group: ambit.io, kind: LocalRateLimit, name: per-rule}
        - type: RequestHeaderModifier
          requestHeaderModifier: {set: [{name: x-a, value: "1"}]}
        - type: ExtensionRef
          extensionRef: {group: ambit.io, kind: HTTPFault, name: flaky}
        backendRefs:
        - name: reviews-v2
          port: 9080
          filters:
          - type: ExtensionRef
            extensionRef: {group: ambit.io, kind: HTTPFault, name: slow-v2}
  `);
  const rule = (r.spec as { rules: { filters: unknown[]; backendRefs: { filters: unknown }[] }[] })
    .rules[0];
  assertEquals(rule.filters[2], {
    type: "ExtensionRef",
    extensionRef: { group: "ambit.io", kind: "HTTPFault", name: "flaky" },
  });
  assertEquals(rule.backendRefs[0].filters, [{
    type: "ExtensionRef",
    extensionRef: { group: "ambit.io", kind: "HTTPFault", name: "slow-v2" },
  }]);
});
