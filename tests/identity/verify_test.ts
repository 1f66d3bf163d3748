/**
 * The data plane's verification path, over real TLS handshakes: expired, not
 * yet valid, foreign-trust-domain and foreign-CA certificates are rejected.
 */
import tls from "node:tls";
import { assertEquals, assertIncludes } from "../_util/asserts.ts";
import { type CaMaterial, initCaDir, loadCaDir } from "../../mod/identity/ca_dir.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueLeaf,
  toPem,
} from "../../mod/identity/certs.ts";
import { nodeId } from "../../mod/identity/spiffe.ts";
import {
  expectIdentity,
  peerIdentity,
  secureContextOptions,
  serverTlsOptions,
  type TlsIdentity,
} from "../../mod/identity/tls.ts";

const TD = "ambit.test";
const HOUR = 3600e3;

async function ident(
  ca: CaMaterial,
  id: string,
  now = new Date(),
  ttlMs = 24 * HOUR,
): Promise<TlsIdentity> {
  const keys = await generateKeyPair();
  const leaf = await issueLeaf({ id, publicKey: keys.publicKey, signer: ca.signer, now, ttlMs });
  return {
    certPem: toPem([leaf, ...ca.chain]),
    keyPem: await exportPrivateKeyPem(keys.privateKey),
  };
}

/** Runs a handshake; returns what the server decided about the client and what the client saw. */
async function handshake(
  server: TlsIdentity,
  serverRoots: string,
  client: TlsIdentity,
  clientRoots: string,
  expected = [`spiffe://${TD}/ns/shop/sa/server`],
): Promise<{ server: string; client: string }> {
  let serverSaw = "";
  const srv = tls.createServer(serverTlsOptions(server, serverRoots), (s) => {
    try {
      serverSaw = `accepted ${peerIdentity(s, TD)}`;
    } catch (e) {
      serverSaw = `refused: ${(e as Error).message}`;
    }
    s.end();
  });
  srv.on("tlsClientError", (e) => (serverSaw = `handshake failed: ${e.message}`));
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  const clientSaw = await new Promise<string>((resolve) => {
    const c = tls.connect({
      host: "127.0.0.1",
      port,
      ...secureContextOptions(client, clientRoots),
      ALPNProtocols: ["h2"],
      checkServerIdentity: expectIdentity(expected),
    }, () => {
      c.on("data", () => {});
      c.on("end", () => resolve("connected"));
      c.on("close", () => resolve("connected"));
    });
    c.on("error", (e) => resolve(`error: ${e.message}`));
  });
  await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => srv.close(r));
  return { server: serverSaw, client: clientSaw };
}

Deno.test("verification path: accepts a valid peer and rejects expired, not-yet-valid, foreign-TD and foreign-CA certificates", async () => {
  const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  try {
    await initCaDir(dirs[0], { trustDomain: TD, intermediate: true });
    await initCaDir(dirs[1], { trustDomain: TD });
    const ca = await loadCaDir(dirs[0]);
    const foreign = await loadCaDir(dirs[1]);
    const roots = toPem(ca.roots);
    const server = await ident(ca, `spiffe://${TD}/ns/shop/sa/server`);
    const good = `spiffe://${TD}/ns/shop/sa/client`;

    const ok = await handshake(server, roots, await ident(ca, good), roots);
    assertEquals(ok.server, `accepted ${good}`);
    assertEquals(ok.client, "connected");

    const expired = await handshake(
      server,
      roots,
      await ident(ca, good, new Date(Date.now() - 48 * HOUR), HOUR),
      roots,
    );
    assertIncludes(expired.server, "certificate has expired");

    const future = await handshake(
      server,
      roots,
      await ident(ca, good, new Date(Date.now() + 48 * HOUR)),
      roots,
    );
    assertIncludes(future.server, "certificate is not yet valid");

    const otherTd = await handshake(
      server,
      roots,
      await ident(ca, "spiffe://other.test/ns/shop/sa/client"),
      roots,
    );
    assertEquals(
      otherTd.server,
      'refused: peer spiffe://other.test/ns/shop/sa/client is from trust domain "other.test", not "ambit.test"',
    );

    const otherCa = await handshake(server, roots, await ident(foreign, good), roots);
    assertIncludes(
      otherCa.server,
      "refused: peer certificate not trusted: not signed by a trusted root",
    );

    const node = await handshake(server, roots, await ident(ca, nodeId(TD, "node-a")), roots);
    assertEquals(
      node.server,
      "refused: peer spiffe://ambit.test/ambit/node/node-a is not a workload identity",
    );

    // The client side: the server must be the expected identity.
    const wrongServer = await handshake(server, roots, await ident(ca, good), roots, [
      `spiffe://${TD}/ns/shop/sa/other`,
    ]);
    assertIncludes(
      wrongServer.client,
      "server identity spiffe://ambit.test/ns/shop/sa/server is not the expected spiffe://ambit.test/ns/shop/sa/other",
    );
    // And a server from another CA is not trusted.
    const foreignServer = await handshake(
      await ident(foreign, `spiffe://${TD}/ns/shop/sa/server`),
      toPem(foreign.roots),
      await ident(ca, good),
      roots,
    );
    assertIncludes(foreignServer.client, "error:");
  } finally {
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("verification path: a bundle with two roots accepts peers from either (root rotation)", async () => {
  const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  try {
    await initCaDir(dirs[0], { trustDomain: TD });
    await initCaDir(dirs[1], { trustDomain: TD });
    const oldCa = await loadCaDir(dirs[0]);
    const newCa = await loadCaDir(dirs[1]);
    const both = toPem([...oldCa.roots, ...newCa.roots]);
    const server = await ident(oldCa, `spiffe://${TD}/ns/shop/sa/server`);
    for (const ca of [oldCa, newCa]) {
      const r = await handshake(
        server,
        both,
        await ident(ca, `spiffe://${TD}/ns/shop/sa/client`),
        both,
      );
      assertEquals(r.server, `accepted spiffe://${TD}/ns/shop/sa/client`);
    }
  } finally {
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});
