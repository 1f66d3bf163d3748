import { assertEquals, assertIncludes } from "../../tests/_util/asserts.ts";
import { credentialIdentityVerdict } from "./identity.ts";

Deno.test("credentialIdentityVerdict() wants this node's identity in the mesh's trust domain", () => {
  const cases: [string | undefined, string, string][] = [
    ["spiffe://ambit.test/ambit/node/node-a", "ok", "spiffe://ambit.test/ambit/node/node-a"],
    [undefined, "fail", "no single SPIFFE URI SAN"],
    ["https://example.org", "fail", "is not a SPIFFE ID"],
    ["spiffe://ambit.test/ns/shop/sa/web", "fail", "a workload identity, not a node credential"],
    [
      "spiffe://other.test/ambit/node/node-a",
      "fail",
      'trust domain "other.test", the mesh is "ambit.test"',
    ],
    [
      "spiffe://ambit.test/ambit/node/node-b",
      "fail",
      'node "node-b"\'s credential, not "node-a"\'s',
    ],
  ];
  for (const [id, status, detail] of cases) {
    const v = credentialIdentityVerdict(id, "ambit.test", "node-a");
    assertEquals(v.status, status, String(id));
    assertIncludes(v.detail, detail);
    if (status === "fail") assertIncludes(v.hint ?? "", "ambit ca issue-node node-a");
  }
});
