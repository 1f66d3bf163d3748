/** A running CA service on a temporary config, with node credentials. */
import { addressBlock } from "../_util/addresses.ts";
import https from "node:https";
import { ConfigStore } from "../../mod/config/store.ts";
import { type CaMaterial, initCaDir, loadCaDir } from "../../mod/identity/ca_dir.ts";
import { CaServer } from "../../mod/identity/ca_server.ts";
import { type Credential } from "../../mod/identity/ca_client.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueLeaf,
  toPem,
} from "../../mod/identity/certs.ts";
import { nodeId } from "../../mod/identity/spiffe.ts";

export const TD = "ambit.test";

export function meshYaml(nodes: string[]): string {
  const docs = [
    `apiVersion: ambit.io/v1alpha1\nkind: Mesh\nmetadata: {name: mesh}\nspec: {trustDomain: ${TD}}`,
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}",
  ];
  // Unique loopback addresses: ztunnels bind their node address, and tests run in parallel.
  const a = addressBlock();
  nodes.forEach((n, i) => {
    docs.push(
      `apiVersion: ambit.io/v1alpha1\nkind: Node\nmetadata: {name: ${n}}\nspec: {address: ${
        a(i + 1, 1)
      }}`,
    );
  });
  if (nodes.includes("node-a")) {
    docs.push(
      "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: web, namespace: shop}\nspec: {node: node-a, serviceAccount: web}",
    );
  }
  if (nodes.includes("node-b")) {
    docs.push(
      "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: db, namespace: shop}\nspec: {node: node-b, serviceAccount: db}",
    );
  }
  return docs.join("\n---\n") + "\n";
}

/** Issues a credential for `node` straight from the CA material (what `ambit ca issue-node` does). */
export async function nodeCredential(ca: CaMaterial, node: string, td = TD): Promise<Credential> {
  const keys = await generateKeyPair();
  const leaf = await issueLeaf({
    id: nodeId(td, node),
    publicKey: keys.publicKey,
    signer: ca.signer,
    now: new Date(),
    ttlMs: 3600e3,
    usage: "node",
  });
  return {
    certPem: toPem([leaf, ...ca.chain]),
    keyPem: await exportPrivateKeyPem(keys.privateKey),
    bundlePem: toPem(ca.roots),
  };
}

export interface CaFixture {
  dir: string;
  ca: CaMaterial;
  store: ConfigStore;
  server: CaServer;
  address: string;
  close(): Promise<void>;
}

export async function startCa(nodes = ["node-a", "node-b"]): Promise<CaFixture> {
  const dir = await Deno.makeTempDir({ prefix: "ambit-ca-" });
  await Deno.mkdir(`${dir}/mesh`);
  await Deno.writeTextFile(`${dir}/mesh/mesh.yaml`, meshYaml(nodes));
  await initCaDir(`${dir}/ca`, { trustDomain: TD, intermediate: true });
  const ca = await loadCaDir(`${dir}/ca`);
  const store = await ConfigStore.open(`${dir}/mesh`, { debounceMs: 30 });
  const server = await CaServer.start({
    ca,
    snapshot: () => store.current,
    hostname: "127.0.0.1",
    port: 0,
  });
  return {
    dir,
    ca,
    store,
    server,
    address: `127.0.0.1:${server.address.port}`,
    async close() {
      await server.close();
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A raw HTTPS request with a client credential, for malformed inputs. */
export function rawRequest(
  address: string,
  cred: Credential,
  o: { method?: string; path?: string; contentType?: string; body?: string | Uint8Array },
): Promise<
  { status: number; json: { error?: { code: string; message: string } } & Record<string, unknown> }
> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const req = https.request({
      host,
      port: Number(port),
      method: o.method ?? "POST",
      path: o.path ?? "/v1/certificates",
      key: cred.keyPem,
      cert: cred.certPem,
      ca: cred.bundlePem,
      checkServerIdentity: () => undefined,
      headers: o.contentType ? { "content-type": o.contentType } : {},
      agent: false,
    }, (res) => {
      const chunks: Uint8Array[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        try {
          resolve({ status: res.statusCode!, json: JSON.parse(text) });
        } catch {
          reject(new Error(`not JSON: ${text}`));
        }
      });
    });
    req.on("error", reject);
    req.end(o.body);
  });
}
