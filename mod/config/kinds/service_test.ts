import { assertEquals } from "../../../tests/_util/asserts.ts";
import { issuesOf, resourcesOf, yaml } from "../_testing.ts";

const cases: { name: string; doc: string; want: string[] }[] = [
  {
    name: "port written as a name",
    doc: yaml`
      apiVersion: v1
      kind: Service
      metadata: {name: reviews, namespace: shop}
      spec:
        ports:
        - port: http
    `,
    want: [
      'test.yaml:6 spec.ports[0].port: "http" is not a port number (use a number from 1 to 65535)',
    ],
  },
  {
    name: "misspelled field",
    doc: yaml`
      apiVersion: v1
      kind: Service
      metadata: {name: reviews}
      spec:
        selctor: {app: reviews}
    `,
    want: ['test.yaml:5 spec.selctor: unknown field "selctor" (did you mean "selector"?)'],
  },
  {
    name: "unsupported upstream field",
    doc: yaml`
      apiVersion: v1
      kind: Service
      metadata: {name: reviews}
      spec:
        externalName: example.com
    `,
    want: [
      'test.yaml:5 spec.externalName: "externalName" is not supported by ambit (use a ServiceEntry for external services)',
    ],
  },
  {
    name: "duplicate port numbers",
    doc: yaml`
      apiVersion: v1
      kind: Service
      metadata: {name: reviews}
      spec:
        ports:
        - port: 80
        - port: 80
    `,
    want: ['test.yaml:7 spec.ports[1]: duplicate port "80" (already at spec.ports[0])'],
  },
];

for (const c of cases) {
  Deno.test(`Service: ${c.name}`, () => {
    assertEquals(issuesOf(c.doc), c.want);
  });
}

Deno.test("Service: defaults protocol TCP, type ClusterIP and namespace default", () => {
  const [svc] = resourcesOf(yaml`
    apiVersion: v1
    kind: Service
    metadata: {name: reviews}
    spec:
      ports: [{port: 9080}]
  `);
  assertEquals(svc.metadata.namespace, "default");
  assertEquals(svc.spec, { ports: [{ port: 9080, protocol: "TCP" }], type: "ClusterIP" });
});
