import { assertEquals, assertIncludes } from "../../tests/_util/asserts.ts";
import { createCaCertificate, generateKeyPair, issueLeaf } from "../identity/certs.ts";
import { verifyChain } from "./chain.ts";

const now = new Date();
const later = new Date(now.getTime() + 86400e3);

async function ca() {
  const rootKeys = await generateKeyPair();
  const root = await createCaCertificate({
    trustDomain: "ambit.test",
    keys: rootKeys,
    commonName: "ambit root CA",
    notBefore: now,
    notAfter: later,
  });
  const interKeys = await generateKeyPair();
  const inter = await createCaCertificate({
    trustDomain: "ambit.test",
    keys: interKeys,
    commonName: "ambit intermediate CA",
    notBefore: now,
    notAfter: later,
    issuer: { cert: root, key: rootKeys.privateKey },
  });
  const leafKeys = await generateKeyPair();
  const leaf = await issueLeaf({
    id: "spiffe://ambit.test/ambit/node/node-a",
    publicKey: leafKeys.publicKey,
    signer: { cert: inter, key: interKeys.privateKey },
    now,
    ttlMs: 3600e3,
    usage: "node",
  });
  return { root, inter, leaf };
}

Deno.test("verifyChain() follows the leaf through its intermediate to a root", async () => {
  const a = await ca();
  const ok = await verifyChain(a.leaf, [a.inter], [a.root]);
  assertEquals(ok.ok && ok.path.length, 3);
});

Deno.test("verifyChain() says which link is missing or comes from another CA", async () => {
  const a = await ca();
  const b = await ca(); // same names, other keys
  const cases: [string, Parameters<typeof verifyChain>, string][] = [
    [
      "no intermediate",
      [a.leaf, [], [a.root]],
      'it is not signed by a root of the trust bundle (issuer "O=ambit.test, CN=ambit intermediate CA"',
    ],
    [
      "other CA's bundle",
      [a.leaf, [a.inter], [b.root]],
      "with another key: it comes from another CA",
    ],
    ["other CA's intermediate", [a.leaf, [b.inter], [a.root]], "it comes from another CA"],
    ["empty bundle", [a.leaf, [a.inter], []], "the trust bundle holds no certificate"],
  ];
  for (const [name, args, problem] of cases) {
    const r = await verifyChain(...args);
    assertEquals(r.ok, false, name);
    if (!r.ok) assertIncludes(r.problem, problem, name);
  }
});
