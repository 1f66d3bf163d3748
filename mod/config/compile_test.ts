import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import { yaml } from "./_testing.ts";
import { compileSourcesSync } from "./compile.ts";
import { formatIssue, type SourceFile } from "./load.ts";

const base = yaml`
  apiVersion: ambit.io/v1alpha1
  kind: Node
  metadata: {name: node-a}
  spec: {address: 10.0.0.1}
  ---
  apiVersion: ambit.io/v1alpha1
  kind: Node
  metadata: {name: node-b}
  spec: {address: 10.0.0.2}
  ---
  apiVersion: v1
  kind: Namespace
  metadata:
    name: shop
    labels: {istio.io/dataplane-mode: ambient}
  ---
  apiVersion: networking.istio.io/v1
  kind: WorkloadEntry
  metadata: {name: web, namespace: shop}
  spec:
    node: node-a
    serviceAccount: web
    labels: {app: web}
`;

function issues(...files: [string, string][]): string[] {
  const sources: SourceFile[] = files.map(([file, text]) => ({ file, text }));
  return compileSourcesSync(sources).issues.map(formatIssue);
}

/** One case per error class, each asserting the exact message users see. */
const errorClasses: { name: string; files: [string, string][]; want: string[] }[] = [
  {
    name: "YAML syntax error, with its line",
    files: [["bad.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  - a\n  name: x\n"]],
    want: ["bad.yaml:5: YAML: All mapping items must start at the same column"],
  },
  {
    name: "YAML duplicate key",
    files: [["dup.yaml", "apiVersion: v1\nkind: Namespace\nkind: Namespace\n"]],
    want: ["dup.yaml:3: YAML: Map keys must be unique"],
  },
  {
    name: "unknown kind, with a did-you-mean",
    files: [["k.yaml", "apiVersion: v1\nkind: Servise\nmetadata: {name: x}\n"]],
    want: ['k.yaml:2 kind: unknown kind "Servise" (did you mean "Service"?)'],
  },
  {
    name: "unknown field",
    files: [[
      "f.yaml",
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  lables: {a: b}\n",
    ]],
    want: ['f.yaml:5 metadata.lables: unknown field "lables" (did you mean "labels"?)'],
  },
  {
    name: "wrong type",
    files: [[
      "t.yaml",
      "apiVersion: ambit.io/v1alpha1\nkind: Node\nmetadata: {name: n}\nspec:\n  address: [10.0.0.1]\n",
    ]],
    want: ["t.yaml:5 spec.address: expected an IP address, got a list"],
  },
  {
    name: "dangling reference",
    files: [["base.yaml", base], [
      "r.yaml",
      yaml`
      apiVersion: networking.istio.io/v1
      kind: WorkloadEntry
      metadata: {name: api, namespace: shop}
      spec:
        node: node-c
    `,
    ]],
    want: ['r.yaml:5 spec.node: Node "node-c" does not exist (defined: node-a, node-b)'],
  },
  {
    name: "duplicate resource",
    files: [["base.yaml", base], [
      "d.yaml",
      yaml`
      apiVersion: networking.istio.io/v1
      kind: WorkloadEntry
      metadata:
        name: web
        namespace: shop
      spec:
        node: node-b
    `,
    ]],
    want: [
      'd.yaml:4 metadata.name: duplicate WorkloadEntry "shop/web" (first defined at base.yaml:17)',
    ],
  },
  {
    name: "duplicate address",
    files: [["base.yaml", base], [
      "n.yaml",
      yaml`
      apiVersion: ambit.io/v1alpha1
      kind: Node
      metadata: {name: node-c}
      spec: {address: 10.0.0.1}
    `,
    ]],
    want: ['n.yaml:4 spec.address: address 10.0.0.1 is already used by Node "node-a"'],
  },
  {
    name: "duplicate VIP",
    files: [["base.yaml", base], [
      "v.yaml",
      yaml`
      apiVersion: v1
      kind: Service
      metadata: {name: a, namespace: shop}
      spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
      ---
      apiVersion: v1
      kind: Service
      metadata: {name: b, namespace: shop}
      spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
    `,
    ]],
    want: [
      'v.yaml:9 spec.clusterIP: VIP 10.96.0.1 is already used by Service "shop/a" (give each Service its own clusterIP)',
    ],
  },
  {
    name: "apiVersion not served for the kind",
    files: [[
      "a.yaml",
      "apiVersion: networking.istio.io/v1\nkind: Service\nmetadata: {name: x}\nspec: {}\n",
    ]],
    want: [
      'a.yaml:1 apiVersion: apiVersion "networking.istio.io/v1" is not served for kind Service (use v1)',
    ],
  },
  {
    name: "every problem at once, across files, in order",
    files: [
      ["one.yaml", "apiVersion: v1\nkind: Namespace\nmetadata: {name: Bad_Name}\n"],
      [
        "two.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\nspec: {}\n---\nkind: Nope\n",
      ],
    ],
    want: [
      "one.yaml:3 metadata.name: \"Bad_Name\" is not a valid name (lowercase letters, digits, '-' and '.', at most 253)",
      "two.yaml:4 spec: Namespace has no spec (remove it)",
      'two.yaml:6 kind: unknown kind "Nope" (did you mean "Node"?)',
    ],
  },
];

for (const c of errorClasses) {
  Deno.test(`compile reports ${c.name}`, () => {
    assertEquals(issues(...c.files), c.want);
  });
}

Deno.test("compile resolves identities, placement, VIPs and endpoints", () => {
  const { snapshot, issues } = compileSourcesSync([{
    file: "base.yaml",
    text: base + yaml`
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: shop}
    spec:
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: 8080}]
  `,
  }]);
  assertEquals(issues, []);
  assertOk(snapshot);
  const w = snapshot.workloads.get("shop/web")!;
  assertEquals(w.identity, "spiffe://cluster.local/ns/shop/sa/web");
  assertEquals(w.address, "10.0.0.1", "defaults to the node's address");
  assertEquals(w.enrolled, true);
  const svc = snapshot.services.get("shop/web")!;
  assertEquals(svc.hostname, "web.shop.svc.cluster.local");
  assertOk(svc.vip.startsWith("127.10."), svc.vip);
  assertEquals(svc.endpoints, [{
    workload: "shop/web",
    node: "node-a",
    address: "10.0.0.1",
    ports: { 80: 8080 },
    weight: 1,
  }]);
  assertEquals(snapshot.servicesByVip.get(svc.vip)?.key, "shop/web");
  assertEquals(snapshot.workloadsByNode.get("node-a")?.map((x) => x.key), ["shop/web"]);
  assertOk(Object.isFrozen(w), "snapshot objects are immutable");
});

Deno.test("compile keeps a service's assigned VIP when other services come and go", () => {
  const svc = (name: string) =>
    yaml`
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: ${name}, namespace: shop}
    spec: {ports: [{port: 80}]}
  `;
  const vipOf = (text: string) =>
    compileSourcesSync([{ file: "x.yaml", text }]).snapshot!.services.get("shop/keep")!.vip;
  const before = vipOf(base + svc("keep"));
  const after = vipOf(base + svc("aaa") + svc("keep") + svc("zzz"));
  assertEquals(after, before);
});

Deno.test("compile warns about a selector that matches nothing and an undeclared namespace", () => {
  assertEquals(
    issues([
      "w.yaml",
      base + yaml`
      ---
      apiVersion: v1
      kind: Service
      metadata: {name: api, namespace: shop}
      spec:
        selector: {app: api}
        ports: [{port: 80}]
      ---
      apiVersion: networking.istio.io/v1
      kind: WorkloadEntry
      metadata: {name: job, namespace: batch}
      spec: {node: node-b}
    `,
    ]),
    [
      'w.yaml:29 spec.selector: warning: selector matches no WorkloadEntry in namespace "shop" (the service has no endpoints)',
      'w.yaml:34 metadata.namespace: warning: namespace "batch" has no Namespace resource, so its workloads are not in the mesh (add a Namespace "batch" with label istio.io/dataplane-mode: ambient)',
    ],
  );
});

Deno.test("compile requires spec.node when there are several nodes", () => {
  assertEquals(
    issues([
      "n.yaml",
      base + yaml`
      ---
      apiVersion: networking.istio.io/v1
      kind: WorkloadEntry
      metadata: {name: job, namespace: shop}
      spec: {address: 10.0.0.9}
    `,
    ]),
    ['n.yaml:28 spec.node: missing "node": the config has 2 Nodes (one of node-a, node-b)'],
  );
});

Deno.test("compile rejects two workloads claiming the same address and port on a node", () => {
  assertEquals(
    issues([
      "p.yaml",
      base + yaml`
      ---
      apiVersion: networking.istio.io/v1
      kind: WorkloadEntry
      metadata: {name: web2, namespace: shop}
      spec: {node: node-a, ports: {http: 8080}}
      ---
      apiVersion: networking.istio.io/v1
      kind: WorkloadEntry
      metadata: {name: web3, namespace: shop}
      spec: {node: node-a, ports: {web: 8080}}
    `,
    ]),
    ['p.yaml:33 spec.address: 10.0.0.1:8080 on node "node-a" is already the address of WorkloadEntry "shop/web2" (two workloads on one node need different addresses or ports)'],
  );
});
