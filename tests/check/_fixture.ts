/**
 * A real mesh for `ambit check` tests: a CA made with `ambit ca init`, node
 * credentials from `ambit ca issue-node` (one near expiry via --ttl, one
 * expired, one from another CA), `ambit ca serve`, and a ztunnel for node-b,
 * all on a private loopback block.
 */
import { addressBlock } from "../_util/addresses.ts";
import { assertEquals, assertEventually } from "../_util/asserts.ts";
import { AmbitProcess, NO_HOST_PORTS, runAmbit } from "../_util/proc.ts";
import { loadCaDir } from "../../mod/identity/ca_dir.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueLeaf,
  toPem,
} from "../../mod/identity/certs.ts";
import { nodeId } from "../../mod/identity/spiffe.ts";

export const TD = "ambit.test";

/**
 * The mesh: node-a (client) and node-b (echo behind Service echo), the CA
 * at .0.1:15012. node-b captures no VIPs: both ztunnels share this host.
 */
export function meshYaml(a: (n: number, h: number) => string): string {
  return `
apiVersion: ambit.io/v1alpha1
kind: Mesh
metadata: { name: mesh }
spec: { trustDomain: ${TD}, vipRange: ${a(200, 0)}/24, ca: { address: "${a(0, 1)}:15012" } }
---
apiVersion: ambit.io/v1alpha1
kind: Node
metadata: { name: node-a }
spec: { address: ${a(1, 1)} }
---
apiVersion: ambit.io/v1alpha1
kind: Node
metadata: { name: node-b }
spec: { address: ${a(2, 1)}, outbound: { vips: false } }
---
apiVersion: v1
kind: Namespace
metadata: { name: apps, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: apps }
spec: { node: node-a, serviceAccount: client }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: echo, namespace: apps }
spec: { node: node-b, serviceAccount: echo, labels: { app: echo } }
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: apps }
spec: { clusterIP: ${a(3, 1)}, selector: { app: echo }, ports: [{ port: 80 }] }
`;
}

/** The running fixture. */
export interface CheckMesh {
  readonly dir: string;
  readonly a: (n: number, h: number) => string;
  /** The config directory. */
  readonly config: string;
  /** Credential directories by name: node-a, node-b, near (node-a, 100h), expired, other (another CA). */
  readonly cred: Record<string, string>;
  readonly caDir: string;
  readonly ca: AmbitProcess;
  /** node-b's ztunnel, until stopped. */
  readonly nodeB: AmbitProcess;
  /** `ambit check` for node-a with its credential, its own admin address and no host-wide ports. */
  check(extra?: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** As {@link check} with `--output json`, parsed. */
  checkJson(extra?: readonly string[]): Promise<CheckJson>;
  /** Starts a ztunnel for `node` with its credential; resolves when it is ready. */
  ztunnel(node: string): Promise<AmbitProcess>;
  close(): Promise<void>;
}

/** What `--output json` prints (the parts the tests read). */
export interface CheckJson {
  code: number;
  stderr: string;
  ok: boolean;
  checks: {
    name: string;
    status: string;
    detail: string;
    hint?: string;
    items?: { status: string; subject: string; detail: string; hint?: string }[];
    data?: Record<string, unknown>;
  }[];
  /** Status by check name. */
  status: Record<string, string>;
}

async function ambitOk(args: string[]): Promise<void> {
  const r = await runAmbit(args);
  assertEquals(r.code, 0, `ambit ${args.join(" ")}: ${r.stderr}`);
}

/** Writes an expired node credential for `node`, signed by the CA in `caDir`. */
async function expiredCredential(caDir: string, node: string, out: string): Promise<void> {
  const ca = await loadCaDir(caDir);
  const keys = await generateKeyPair();
  const leaf = await issueLeaf({
    id: nodeId(ca.trustDomain, node),
    publicKey: keys.publicKey,
    signer: ca.signer,
    now: new Date(Date.now() - 2 * 86400e3),
    ttlMs: 3600e3,
    usage: "node",
  });
  await Deno.mkdir(out);
  await Deno.writeTextFile(`${out}/cert.pem`, toPem([leaf, ...ca.chain]));
  await Deno.writeTextFile(`${out}/key.pem`, await exportPrivateKeyPem(keys.privateKey), {
    mode: 0o600,
  });
  await Deno.writeTextFile(`${out}/bundle.pem`, toPem(ca.roots));
}

/** Starts the fixture. */
export async function checkMesh(): Promise<CheckMesh> {
  const a = addressBlock();
  const dir = await Deno.makeTempDir({ prefix: "ambit-check-" });
  const config = `${dir}/mesh`;
  await Deno.mkdir(config);
  await Deno.writeTextFile(`${config}/mesh.yaml`, meshYaml(a));
  const caDir = `${dir}/ca`;
  await ambitOk(["ca", "init", "--trust-domain", TD, "--out", caDir, "--intermediate"]);
  await ambitOk(["ca", "init", "--trust-domain", TD, "--out", `${dir}/other-ca`]);
  const cred: Record<string, string> = {};
  const issue = async (name: string, node: string, ca: string, extra: string[] = []) => {
    cred[name] = `${dir}/cred-${name}`;
    await ambitOk(["ca", "issue-node", node, "--ca", ca, "--out", cred[name], ...extra]);
  };
  await Promise.all([
    issue("node-a", "node-a", caDir),
    issue("node-b", "node-b", caDir),
    issue("near", "node-a", caDir, ["--ttl", "100h"]),
    issue("other", "node-a", `${dir}/other-ca`),
  ]);
  cred.expired = `${dir}/cred-expired`;
  await expiredCredential(caDir, "node-a", cred.expired);
  const procs: AmbitProcess[] = [];
  const ca = new AmbitProcess([
    "ca",
    "serve",
    "--config",
    config,
    "--ca",
    caDir,
    "--listen",
    `${a(0, 1)}:15012`,
    "--admin",
    "off",
    "--log-format",
    "json",
  ]);
  procs.push(ca);
  const ztunnel = async (node: string) => {
    const n = node === "node-a" ? 1 : 2;
    const z = new AmbitProcess([
      "ztunnel",
      "--config",
      config,
      "--node",
      node,
      "--credential",
      cred[node],
      "--admin",
      `${a(n, 1)}:15000`,
      ...NO_HOST_PORTS,
      "--log-format",
      "json",
    ]);
    procs.push(z);
    await assertEventually(async () => {
      if (z.exited) throw new Error(z.log());
      const res = await fetch(`http://${a(n, 1)}:15000/ready`);
      return (await res.json()).ready === true;
    }, { timeoutMs: 30_000, message: `${node} ready` });
    return z;
  };
  try {
    await ca.waitForRecord((r) => r.msg === "CA service listening", { timeoutMs: 30_000 });
  } catch (e) {
    ca.kill("SIGKILL");
    await ca.status();
    throw e;
  }
  const nodeB = await ztunnel("node-b");
  const check = (extra: readonly string[] = []) =>
    runAmbit([
      "check",
      "--config",
      config,
      "--node",
      "node-a",
      "--credential",
      cred["node-a"],
      "--admin",
      `${a(1, 1)}:15000`,
      "--timeout",
      "3s",
      ...NO_HOST_PORTS,
      ...extra,
    ]);
  return {
    dir,
    a,
    config,
    cred,
    caDir,
    ca,
    nodeB,
    check,
    async checkJson(extra = []) {
      const r = await check([...extra, "--output", "json"]);
      let body;
      try {
        body = JSON.parse(r.stdout);
      } catch {
        throw new Error(`not JSON (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
      }
      const status = Object.fromEntries(
        (body.checks as { name: string; status: string }[]).map((c) => [c.name, c.status]),
      );
      return { ...body, code: r.code, stderr: r.stderr, status };
    },
    ztunnel,
    async close() {
      for (const p of procs.reverse()) if (!p.exited) await p.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
