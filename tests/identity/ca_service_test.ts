/**
 * The CA service over real mutual TLS: node authorization against the live
 * config, reloads, and every kind of bad request.
 */
import { assertEquals, assertIncludes, assertOk, assertRejects } from "../_util/asserts.ts";
import { CaClient, CaRefusedError, CaUnavailableError } from "../../mod/identity/ca_client.ts";
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  spiffeIdOf,
  toPem,
} from "../../mod/identity/certs.ts";
import { initCaDir, loadCaDir } from "../../mod/identity/ca_dir.ts";
import { meshYaml, nodeCredential, rawRequest, startCa, TD } from "./_ca_fixture.ts";

const web = `spiffe://${TD}/ns/shop/sa/web`;
const db = `spiffe://${TD}/ns/shop/sa/db`;

async function csrFor(id: string) {
  return await createCsr(id, await generateKeyPair());
}

Deno.test("CA service: a node obtains certificates only for workloads placed on it", async () => {
  const f = await startCa();
  const a = new CaClient({
    address: f.address,
    credential: await nodeCredential(f.ca, "node-a"),
    trustDomain: TD,
  });
  try {
    const signed = await a.sign(await csrFor(web));
    assertEquals(spiffeIdOf(signed.chain[0]), web);
    assertEquals(signed.chain.length, 2, "leaf and intermediate");
    const refused = await assertRejects(
      async () => a.sign(await csrFor(db)),
      CaRefusedError,
      'is placed on node "node-a"',
    );
    assertEquals([(refused as CaRefusedError).status, (refused as CaRefusedError).code], [
      403,
      "not_on_node",
    ]);
    assertEquals(f.server.stats.signed, 1);
    assertOk((f.server.stats.refused.not_on_node ?? 0) >= 1);
  } finally {
    a.close();
    await f.close();
  }
});

Deno.test("CA service: an unknown node is refused", async () => {
  const f = await startCa();
  const z = new CaClient({
    address: f.address,
    credential: await nodeCredential(f.ca, "node-z"),
    trustDomain: TD,
  });
  try {
    const e = await assertRejects(
      async () => z.sign(await csrFor(web)),
      CaRefusedError,
      'node "node-z" is not in the mesh config',
    );
    assertEquals((e as CaRefusedError).code, "unknown_node");
  } finally {
    z.close();
    await f.close();
  }
});

Deno.test("CA service: a node removed from the config is refused after the reload", async () => {
  const f = await startCa();
  const b = new CaClient({
    address: f.address,
    credential: await nodeCredential(f.ca, "node-b"),
    trustDomain: TD,
  });
  try {
    await b.sign(await csrFor(db));
    const reloaded = f.store.nextReload((o) => o.applied);
    await Deno.writeTextFile(`${f.dir}/mesh/mesh.yaml`, meshYaml(["node-a"]));
    await reloaded;
    const e = await assertRejects(async () => b.sign(await csrFor(db)), CaRefusedError);
    assertEquals((e as CaRefusedError).code, "unknown_node");
  } finally {
    b.close();
    await f.close();
  }
});

Deno.test("CA service: workload and foreign credentials cannot request certificates", async () => {
  const f = await startCa();
  const otherDir = await Deno.makeTempDir();
  try {
    // A workload certificate (not a node credential) from the right CA.
    const keys = await generateKeyPair();
    const a = new CaClient({
      address: f.address,
      credential: await nodeCredential(f.ca, "node-a"),
      trustDomain: TD,
    });
    const signed = await a.sign(await createCsr(web, keys));
    a.close();
    const workloadCred = {
      certPem: toPem(signed.chain),
      keyPem: await exportPrivateKeyPem(keys.privateKey),
      bundlePem: toPem(signed.roots),
    };
    const w = await assertRejects(
      async () =>
        new CaClient({ address: f.address, credential: workloadCred, trustDomain: TD }).sign(
          await csrFor(web),
        ),
      CaRefusedError,
    );
    assertEquals((w as CaRefusedError).code, "not_a_node");
    const wrongTd = await nodeCredential(f.ca, "node-a", "other.test");
    const e = await assertRejects(
      async () =>
        new CaClient({ address: f.address, credential: wrongTd, trustDomain: TD }).sign(
          await csrFor(web),
        ),
      CaRefusedError,
    );
    assertEquals((e as CaRefusedError).code, "wrong_trust_domain");
    // A node credential signed by another CA fails the TLS handshake.
    await initCaDir(otherDir, { trustDomain: TD });
    const foreign = await nodeCredential(await loadCaDir(otherDir), "node-a");
    await assertRejects(
      async () =>
        new CaClient({
          address: f.address,
          credential: { ...foreign, bundlePem: wrongBundle(f) },
          trustDomain: TD,
        })
          .sign(await csrFor(web)),
      CaUnavailableError,
    );
  } finally {
    await Deno.remove(otherDir, { recursive: true });
    await f.close();
  }
});

function wrongBundle(f: { ca: { roots: readonly { toString(f: "pem"): string }[] } }): string {
  return f.ca.roots.map((r) => r.toString("pem")).join("\n");
}

Deno.test("CA service: bad requests are refused clearly and the service keeps serving", async () => {
  const f = await startCa();
  const cred = await nodeCredential(f.ca, "node-a");
  const json = "application/json";
  try {
    const good = await csrFor(web);
    const cases: [string, Parameters<typeof rawRequest>[2], number, string, string][] = [
      [
        "wrong content type",
        { contentType: "text/plain", body: JSON.stringify({ csr: good }) },
        415,
        "unsupported_media_type",
        'content type must be application/json, got "text/plain"',
      ],
      [
        "no content type",
        { body: JSON.stringify({ csr: good }) },
        415,
        "unsupported_media_type",
        "content type must be application/json",
      ],
      ["body not JSON", { contentType: json, body: "{csr:" }, 400, "malformed", "body is not JSON"],
      [
        "no csr field",
        { contentType: json, body: "{}" },
        400,
        "malformed",
        'body needs a "csr" string',
      ],
      [
        "malformed CSR",
        {
          contentType: json,
          body: JSON.stringify({
            csr: "-----BEGIN CERTIFICATE REQUEST-----\nnope\n-----END CERTIFICATE REQUEST-----",
          }),
        },
        400,
        "malformed",
        "CSR does not parse",
      ],
      [
        "oversized request",
        { contentType: json, body: JSON.stringify({ csr: "x".repeat(70_000) }) },
        413,
        "too_large",
        "request body over 65536 bytes",
      ],
      ["wrong method", { method: "GET", contentType: json }, 405, "method_not_allowed", "use POST"],
      [
        "unknown path",
        { path: "/v1/sign", contentType: json, body: "{}" },
        404,
        "not_found",
        "no endpoint /v1/sign",
      ],
    ];
    for (const [name, req, status, code, message] of cases) {
      const res = await rawRequest(f.address, cred, req);
      assertEquals(res.status, status, name);
      assertEquals(res.json.error?.code, code, name);
      assertIncludes(res.json.error!.message, message, name);
    }
    // Still serving.
    const ok = await rawRequest(f.address, cred, {
      contentType: json,
      body: JSON.stringify({ csr: good }),
    });
    assertEquals(ok.status, 200);
    assertIncludes(String(ok.json.certChain), "BEGIN CERTIFICATE");
    const bundle = await rawRequest(f.address, cred, { method: "GET", path: "/v1/trust-bundle" });
    assertEquals(bundle.status, 200);
  } finally {
    await f.close();
  }
});
