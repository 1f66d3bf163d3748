import { assertEquals } from "../../../tests/_util/asserts.ts";
import type { Resource } from "../kind.ts";
import { issuesOf, resourcesOf, yaml } from "../_testing.ts";
import { Gateway } from "./gateway.ts";

/** A Gateway run by node-a whose `spec:` is `spec` (YAML). */
const gateway = (spec: string) =>
  yaml`
  apiVersion: gateway.networking.k8s.io/v1
  kind: Gateway
  metadata: {name: waypoint, namespace: shop, annotations: {ambit.io/node: node-a}}
  spec:
    gatewayClassName: istio-waypoint
` + spec.split("\n").map((l) => "  " + l).join("\n") + "\n";

/** A waypoint Gateway whose single listener is `listener` (YAML flow mapping fields). */
const listener = (fields: string) =>
  gateway(`listeners: [{name: mesh, port: 15008, protocol: HBONE, ${fields}}]`);

const cases: { name: string; doc: string; want: string[] }[] = [
  {
    name: "gateway class other than istio-waypoint",
    doc: yaml`
      apiVersion: gateway.networking.k8s.io/v1
      kind: Gateway
      metadata: {name: ingress, annotations: {ambit.io/node: node-a}}
      spec:
        gatewayClassName: istio
        listeners: [{name: http, port: 80, protocol: HBONE}]
    `,
    want: [
      'test.yaml:5 spec.gatewayClassName: gateway class "istio" is not served: ambit runs only waypoints (use gatewayClassName: istio-waypoint)',
    ],
  },
  {
    name: "missing required listeners",
    doc: gateway("addresses: [{value: 10.0.0.12}]"),
    want: [
      `test.yaml:4 spec.listeners: missing required field "listeners" (the waypoint's listener: exactly one, protocol HBONE)`,
    ],
  },
  {
    name: "a protocol other than HBONE",
    doc: gateway("listeners: [{name: http, port: 80, protocol: HTTP}]"),
    want: [
      'test.yaml:6 spec.listeners[0].protocol: protocol "HTTP" is not served by a waypoint (use HBONE: Istio waypoints expect one listener, port 15008, protocol "HBONE")',
    ],
  },
  {
    name: "a second listener",
    doc: gateway(
      "listeners:\n- {name: mesh, port: 15008, protocol: HBONE}\n- {name: other, port: 15009, protocol: HBONE}",
    ),
    want: [
      "test.yaml:8 spec.listeners[1]: a waypoint has one listener (ambit serves a single HBONE listener per waypoint, as Istio does)",
    ],
  },
  {
    name: "duplicate listener names",
    doc: gateway(
      "listeners:\n- {name: mesh, port: 15008, protocol: HBONE}\n- {name: mesh, port: 15009, protocol: HBONE}",
    ),
    want: [
      'test.yaml:8 spec.listeners[1]: duplicate listener name "mesh" (already at spec.listeners[0])',
    ],
  },
  {
    name: "wrong type: the port as a string",
    doc: gateway('listeners: [{name: mesh, port: "15008", protocol: HBONE}]'),
    want: [
      'test.yaml:6 spec.listeners[0].port: "15008" is not a port number (use a number from 1 to 65535)',
    ],
  },
  {
    name: "unknown field with did-you-mean",
    doc: listener("hostnam: x.example"),
    want: [
      'test.yaml:6 spec.listeners[0].hostnam: unknown field "hostnam" (did you mean "hostname"?)',
    ],
  },
  {
    name: "listener TLS is refused",
    doc: listener("tls: {mode: Terminate}"),
    want: [
      'test.yaml:6 spec.listeners[0].tls: "tls" is not supported by ambit (waypoints terminate HBONE, mutual TLS with mesh identities, not listener TLS)',
    ],
  },
  {
    name: "enum typo in allowedRoutes",
    doc: listener("allowedRoutes: {namespaces: {from: all}}"),
    want: [
      'test.yaml:6 spec.listeners[0].allowedRoutes.namespaces.from: "all" is not one of Same, All, Selector (did you mean "All"?)',
    ],
  },
  {
    name: "from: Selector without a selector",
    doc: listener("allowedRoutes: {namespaces: {from: Selector}}"),
    want: [
      'test.yaml:6 spec.listeners[0].allowedRoutes.namespaces.selector: from: Selector needs "selector"',
    ],
  },
  {
    name: "a selector expression without values",
    doc: listener(
      "allowedRoutes: {namespaces: {from: Selector, selector: {matchExpressions: [{key: team, operator: In}]}}}",
    ),
    want: [
      "test.yaml:6 spec.listeners[0].allowedRoutes.namespaces.selector.matchExpressions[0].values: operator In needs at least one value",
    ],
  },
  {
    name: "a route kind a waypoint does not serve",
    doc: listener("allowedRoutes: {kinds: [{kind: TCPRoute}]}"),
    want: [
      'test.yaml:6 spec.listeners[0].allowedRoutes.kinds[0].kind: route kind "TCPRoute" (group "gateway.networking.k8s.io") is not served by ambit\'s waypoints (allow HTTPRoute or GRPCRoute of group gateway.networking.k8s.io)',
    ],
  },
  {
    name: "a Hostname address",
    doc: gateway(
      "listeners: [{name: mesh, port: 15008, protocol: HBONE}]\naddresses: [{type: Hostname, value: wp.example}]",
    ),
    want: [
      'test.yaml:7 spec.addresses[0].type: address type "Hostname" is not supported by ambit (the HBONE listener binds an IP address: use type IPAddress)',
    ],
  },
  {
    name: "an address that is not an IP",
    doc: gateway(
      "listeners: [{name: mesh, port: 15008, protocol: HBONE}]\naddresses: [{value: 10.0.0.300}]",
    ),
    want: [
      'test.yaml:7 spec.addresses[0].value: "10.0.0.300" is not an IP address (e.g. 10.0.0.5 or fd00::5)',
    ],
  },
  {
    name: "two addresses",
    doc: gateway(
      "listeners: [{name: mesh, port: 15008, protocol: HBONE}]\naddresses: [{value: 10.0.0.3}, {value: 10.0.0.4}]",
    ),
    want: [
      "test.yaml:7 spec.addresses[1]: a waypoint has one address (its HBONE listener binds one address)",
    ],
  },
  {
    name: "infrastructure is refused",
    doc: gateway(
      "listeners: [{name: mesh, port: 15008, protocol: HBONE}]\ninfrastructure: {labels: {a: b}}",
    ),
    want: [
      `test.yaml:7 spec.infrastructure: "infrastructure" is not supported by ambit (ambit deploys nothing for a waypoint; run 'ambit waypoint' on its node)`,
    ],
  },
  {
    name: "neither ambit.io/node nor an address",
    doc: yaml`
      apiVersion: gateway.networking.k8s.io/v1
      kind: Gateway
      metadata: {name: waypoint}
      spec:
        gatewayClassName: istio-waypoint
        listeners: [{name: mesh, port: 15008, protocol: HBONE}]
    `,
    want: [
      "test.yaml:3 metadata: a waypoint needs annotation ambit.io/node or spec.addresses (say which Node runs it)",
    ],
  },
  {
    name: "an ambit.io/node value that is no Node name",
    doc: yaml`
      apiVersion: gateway.networking.k8s.io/v1
      kind: Gateway
      metadata: {name: waypoint, annotations: {ambit.io/node: Node_A}}
      spec:
        gatewayClassName: istio-waypoint
        listeners: [{name: mesh, port: 15008, protocol: HBONE}]
    `,
    want: [
      `test.yaml:3 metadata.annotations["ambit.io/node"]: "Node_A" is not a valid Node name (lowercase letters, digits, '-' and '.', at most 253)`,
    ],
  },
  {
    name: "waypoint-for label value",
    doc: yaml`
      apiVersion: gateway.networking.k8s.io/v1
      kind: Gateway
      metadata:
        name: waypoint
        labels: {istio.io/waypoint-for: services}
        annotations: {ambit.io/node: node-a}
      spec:
        gatewayClassName: istio-waypoint
        listeners: [{name: mesh, port: 15008, protocol: HBONE}]
    `,
    want: [
      'test.yaml:5 metadata.labels["istio.io/waypoint-for"]: "services" is not one of service, workload, all, none',
    ],
  },
];

for (const c of cases) {
  Deno.test(`Gateway: ${c.name}`, () => {
    assertEquals(issuesOf(c.doc), c.want);
  });
}

Deno.test("Gateway: defaults as an API server applies them", () => {
  const [gw] = resourcesOf(yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: {name: waypoint, namespace: shop}
    spec:
      gatewayClassName: istio-waypoint
      listeners: [{name: mesh, port: 15008, protocol: HBONE}]
      addresses: [{value: 10.0.0.12}]
  `);
  assertEquals(gw.spec, {
    gatewayClassName: "istio-waypoint",
    listeners: [{
      name: "mesh",
      port: 15008,
      protocol: "HBONE",
      allowedRoutes: { namespaces: { from: "Same" } },
    }],
    addresses: [{ type: "IPAddress", value: "10.0.0.12" }],
  });
});

Deno.test("Gateway: the waypoint from istio.io checks clean (with ambit.io/node added)", () => {
  // What `istioctl waypoint generate -n bookinfo` prints and istio.io's ambient getting-started
  // applies; ambit needs to know the host that runs it, so the annotation is added.
  const [gw] = resourcesOf(yaml`
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata:
      labels:
        istio.io/waypoint-for: service
      annotations:
        ambit.io/node: node-b
      name: waypoint
      namespace: bookinfo
    spec:
      gatewayClassName: istio-waypoint
      listeners:
      - name: mesh
        port: 15008
        protocol: HBONE
  `);
  assertEquals(Gateway.references!(gw as Resource<never>), [
    { path: ["metadata", "annotations", "ambit.io/node"], kinds: ["Node"], name: "node-b" },
  ]);
});

Deno.test("Gateway: v1beta1, an address instead of the annotation, and a selector check clean", () => {
  const [gw] = resourcesOf(yaml`
    apiVersion: gateway.networking.k8s.io/v1beta1
    kind: Gateway
    metadata: {name: waypoint, namespace: shop, labels: {istio.io/waypoint-for: all}}
    spec:
      gatewayClassName: istio-waypoint
      addresses: [{type: IPAddress, value: "fd00::12"}]
      listeners:
      - name: mesh
        port: 15088
        protocol: HBONE
        allowedRoutes:
          namespaces:
            from: Selector
            selector:
              matchLabels: {team: shop}
              matchExpressions: [{key: env, operator: NotIn, values: [dev]}]
          kinds: [{kind: HTTPRoute}, {group: gateway.networking.k8s.io, kind: GRPCRoute}]
  `);
  assertEquals(Gateway.references!(gw as Resource<never>), []);
});
