import { assertEquals } from "../../../tests/_util/asserts.ts";
import { issuesOf, resourcesOf, yaml } from "../_testing.ts";

const authz = (spec: string) =>
  yaml`
  apiVersion: security.istio.io/v1
  kind: AuthorizationPolicy
  metadata: {name: p, namespace: shop}
  spec:
` + spec.split("\n").map((l) => "  " + l).join("\n") + "\n";

const cases: [string, string, string[]][] = [
  ["port written as a name", authz('rules:\n- to:\n  - operation:\n      ports: ["http"]'), [
    'test.yaml:8 spec.rules[0].to[0].operation.ports[0]: "http" is not a port number (use a number from 1 to 65535)',
  ]],
  ["bad CIDR", authz("rules:\n- from:\n  - source:\n      ipBlocks: [10.0.0.0/33]"), [
    'test.yaml:8 spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.0/33" is not an IP address or CIDR block (e.g. 10.0.0.0/16 or 192.168.1.7)',
  ]],
  ["action typo", authz("action: DENNY"), [
    'test.yaml:5 spec.action: "DENNY" is not one of ALLOW, DENY, AUDIT',
  ]],
  ["CUSTOM is refused", authz("action: CUSTOM"), [
    "test.yaml:5 spec.action: action CUSTOM is not supported by ambit (it has no external authorizer)",
  ]],
  [
    "unknown condition key with did-you-mean",
    authz("rules:\n- when:\n  - key: source.principals\n    values: [x]"),
    [
      'test.yaml:7 spec.rules[0].when[0].key: "source.principals" is not a supported condition key (did you mean "source.principal"?) (source.ip, source.namespace, source.principal, destination.ip, destination.port, request.headers[name], request.auth.claims[name], ...)',
    ],
  ],
  ["empty from", authz("rules:\n- from: []"), [
    "test.yaml:6 spec.rules[0].from: `from` must not be empty (leave it out to match any source)",
  ]],
  ["empty to.operation", authz("rules:\n- to:\n  - operation: {}"), [
    "test.yaml:7 spec.rules[0].to[0].operation: `to.operation` must not be empty (as upstream)",
  ]],
  ["from without source", authz("rules:\n- from:\n  - {}"), [
    "test.yaml:7 spec.rules[0].from[0].source: `from.source` must not be empty (as upstream)",
  ]],
  [
    "bare service account is the policy's namespace",
    authz("rules:\n- from:\n  - source:\n      serviceAccounts: [web, shop/api]"),
    [],
  ],
  [
    "bad service account",
    authz("rules:\n- from:\n  - source:\n      notServiceAccounts: [a/b/c]"),
    [
      'test.yaml:8 spec.rules[0].from[0].source.notServiceAccounts[0]: "a/b/c" is not <namespace>/<service account> or <service account>',
    ],
  ],
  [
    "notServiceAccounts with principals",
    authz("rules:\n- from:\n  - source:\n      notServiceAccounts: [web]\n      principals: [x]"),
    [
      "test.yaml:8 spec.rules[0].from[0].source.notServiceAccounts: notServiceAccounts cannot be combined with principals or namespaces (or their not* forms) (as upstream)",
    ],
  ],
  ["condition without values", authz("rules:\n- when:\n  - key: source.ip"), [
    "test.yaml:7 spec.rules[0].when[0]: a condition needs values or notValues",
  ]],
  [
    "selector and targetRefs together",
    authz('selector: {matchLabels: {app: a}}\ntargetRefs: [{kind: Service, group: "", name: a}]'),
    [
      "test.yaml:6 spec.targetRefs: selector and targetRef(s) cannot both be set",
    ],
  ],
  ["unknown field with did-you-mean", authz("rule: []"), [
    'test.yaml:5 spec.rule: unknown field "rule" (did you mean "rules"?)',
  ]],
  ["wrong type", authz("rules: {from: []}"), [
    "test.yaml:5 spec.rules: expected a list of Rule, got an object",
  ]],
  [
    "PeerAuthentication mode typo",
    yaml`
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata: {name: default}
    spec: {mtls: {mode: STRCT}}
  `,
    ['test.yaml:4 spec.mtls.mode: "STRCT" is not one of UNSET, DISABLE, PERMISSIVE, STRICT (did you mean "STRICT"?)'],
  ],
  [
    "portLevelMtls needs a selector",
    yaml`
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata: {name: default}
    spec: {portLevelMtls: {"8080": {mode: DISABLE}}}
  `,
    ["test.yaml:4 spec.portLevelMtls: portLevelMtls needs a selector (as upstream)"],
  ],
  [
    "JWKS that is not JSON, and both jwks and jwksUri",
    yaml`
    apiVersion: security.istio.io/v1
    kind: RequestAuthentication
    metadata: {name: jwt}
    spec:
      jwtRules:
      - issuer: a
        jwks: "{keys"
      - issuer: b
        jwks: '{"keys": []}'
        jwksUri: https://b.example/jwks
  `,
    [
      "test.yaml:7 spec.jwtRules[0].jwks: JWKS is not JSON: Expected property name or '}' in JSON at position 1 (line 1 column 2)",
      "test.yaml:9 spec.jwtRules[1].jwks: give jwks or jwksUri, not both",
    ],
  ],
  [
    "DestinationRule: simple and consistentHash",
    yaml`
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: d}
    spec:
      host: reviews
      trafficPolicy:
        loadBalancer: {simple: ROUND_ROBIN, consistentHash: {useSourceIp: true}}
  `,
    ["test.yaml:7 spec.trafficPolicy.loadBalancer: give simple or consistentHash, not both"],
  ],
  [
    "DestinationRule: TLS settings are refused",
    yaml`
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: d}
    spec:
      host: reviews
      trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  `,
    ['test.yaml:6 spec.trafficPolicy.tls: "tls" is not supported by ambit (mesh traffic is always mutual TLS with mesh identities)'],
  ],
  [
    "DestinationRule: missing host",
    yaml`
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: d}
    spec: {trafficPolicy: {}}
  `,
    ['test.yaml:4 spec.host: missing required field "host" (service host: short name (resolved in the rule\'s namespace) or FQDN)'],
  ],
  [
    "ServiceEntry: STATIC with a DNS name",
    yaml`
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: s}
    spec:
      hosts: [db.example]
      resolution: STATIC
      endpoints: [{address: db1.example}]
  `,
    ['test.yaml:7 spec.endpoints[0].address: resolution STATIC needs IP addresses, got "db1.example"'],
  ],
  [
    "ServiceEntry: wildcard host with DNS",
    yaml`
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: s}
    spec:
      hosts: ["*.example.com"]
      resolution: DNS
  `,
    ['test.yaml:5 spec.hosts[0]: wildcard host "*.example.com" cannot be resolved with DNS (use resolution NONE or list endpoints)'],
  ],
  [
    "ServiceEntry: duplicate port",
    yaml`
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: s}
    spec:
      hosts: [a.example]
      ports: [{number: 443, name: https}, {number: 443, name: tls}]
  `,
    ['test.yaml:6 spec.ports[1]: duplicate port "443" (already at spec.ports[0])'],
  ],
];

for (const [name, doc, want] of cases) {
  Deno.test(`Istio kinds: ${name}`, () => {
    assertEquals(issuesOf(doc), want);
  });
}

Deno.test("Istio kinds: defaults (action ALLOW, mtls UNSET, forwardOriginalToken false, location/resolution)", () => {
  const res = resourcesOf(yaml`
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: allow-nothing, namespace: shop}
    spec: {}
    ---
    apiVersion: security.istio.io/v1
    kind: PeerAuthentication
    metadata: {name: default, namespace: shop}
    ---
    apiVersion: security.istio.io/v1
    kind: RequestAuthentication
    metadata: {name: jwt, namespace: shop}
    spec: {jwtRules: [{issuer: https://a.example}]}
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {name: ext, namespace: shop}
    spec: {hosts: [api.example.com]}
  `);
  assertEquals(res.map((r) => r.spec), [
    { action: "ALLOW" },
    { mtls: { mode: "UNSET" } },
    { jwtRules: [{ issuer: "https://a.example", forwardOriginalToken: false }] },
    { hosts: ["api.example.com"], location: "MESH_EXTERNAL", resolution: "NONE" },
  ]);
});

Deno.test("Istio kinds: realistic manifests from istio.io check clean", () => {
  const res = resourcesOf(yaml`
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata:
      name: httpbin
      namespace: foo
    spec:
      action: ALLOW
      rules:
      - from:
        - source:
            principals: ["cluster.local/ns/default/sa/curl"]
        - source:
            namespaces: ["dev"]
        to:
        - operation:
            methods: ["GET"]
        when:
        - key: request.auth.claims[iss]
          values: ["https://accounts.google.com"]
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata:
      name: deny-method-get
      namespace: foo
    spec:
      targetRefs:
      - kind: Gateway
        group: gateway.networking.k8s.io
        name: waypoint
      action: DENY
      rules:
      - to:
        - operation:
            methods: ["GET"]
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata:
      name: reviews-cb-policy
      namespace: foo
    spec:
      host: reviews.prod.svc.cluster.local
      trafficPolicy:
        connectionPool:
          tcp:
            maxConnections: 100
          http:
            http2MaxRequests: 1000
            maxRequestsPerConnection: 10
        outlierDetection:
          consecutive5xxErrors: 7
          interval: 5m
          baseEjectionTime: 15m
  `);
  assertEquals(res.length, 3);
});
