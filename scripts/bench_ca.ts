/**
 * Identity benchmark:
 * 1. certificates signed per second by the CA service (mTLS, JSON over HTTPS,
 *    node authorization against a 1,000-workload config), against the
 *    baseline of signing in-process (no TLS, no HTTP, no authorization) in the
 *    same run: the ratio is the service's overhead;
 * 2. node memory holding 1,000 identities (certificate manager, keys in
 *    memory), as RSS and heap growth per identity.
 * Medians over several runs. Writes .bench/ca.json.
 *
 *   deno run -A scripts/bench_ca.ts [--runs 3] [--seconds 3] [--concurrency 8]
 */
import { parseArgs } from "node:util";
import { ConfigStore } from "../mod/config/store.ts";
import { initCaDir, loadCaDir } from "../mod/identity/ca_dir.ts";
import { CaServer } from "../mod/identity/ca_server.ts";
import { CaClient, LocalCa } from "../mod/identity/ca_client.ts";
import { CertManager } from "../mod/identity/cert_manager.ts";
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  inspectCsr,
  issueLeaf,
  toPem,
} from "../mod/identity/certs.ts";
import { nodeId } from "../mod/identity/spiffe.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    seconds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "8" },
    identities: { type: "string", default: "1000" },
    child: { type: "string" },
  },
});
const RUNS = Number(values.runs);
const SECONDS = Number(values.seconds);
const CONC = Number(values.concurrency);
const N = Number(values.identities);
const TD = "bench.ambit";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function meshYaml(n: number): string {
  const docs = [
    `apiVersion: ambit.io/v1alpha1\nkind: Mesh\nmetadata: {name: mesh}\nspec: {trustDomain: ${TD}}`,
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: bench, labels: {istio.io/dataplane-mode: ambient}}",
    "apiVersion: ambit.io/v1alpha1\nkind: Node\nmetadata: {name: node-a}\nspec: {address: 10.1.0.1}",
  ];
  for (let i = 0; i < n; i++) {
    docs.push(
      `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w${i}, namespace: bench}\n` +
        `spec: {node: node-a, address: 10.2.${i >> 8}.${i & 255}, serviceAccount: sa${i}}`,
    );
  }
  return docs.join("\n---\n") + "\n";
}

async function rate(
  seconds: number,
  conc: number,
  one: (i: number) => Promise<unknown>,
): Promise<number> {
  let done = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(Array.from({ length: conc }, async (_, w) => {
    let i = w;
    while (performance.now() < end) {
      await one(i);
      i += conc;
      done++;
    }
  }));
  return done / seconds;
}

const mib = (b: number) => +(b / 2 ** 20).toFixed(1);

/** Runs this script as a child that fills a CertManager with `n` identities and reports memory. */
async function memoryChild(caDir: string, n: number) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL(import.meta.url).pathname,
      "--child",
      caDir,
      "--identities",
      String(n),
    ],
    stderr: "inherit",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)) as {
    rss: number;
    heap: number;
    valid: number;
    fillMs: number;
  };
}

if (values.child) {
  const ca = await loadCaDir(values.child);
  const mgr = new CertManager({ source: new LocalCa(ca, 24 * 3600e3) });
  const t0 = performance.now();
  mgr.sync(Array.from({ length: N }, (_, i) => `spiffe://${TD}/ns/bench/sa/sa${i}`));
  await mgr.idle();
  const fillMs = performance.now() - t0;
  for (let i = 0; i < 3; i++) (globalThis as { gc?: () => void }).gc?.();
  const m = Deno.memoryUsage();
  const valid = mgr.list().filter((s) => s.state === "valid").length;
  console.log(JSON.stringify({ rss: m.rss, heap: m.heapUsed, valid, fillMs }));
  mgr.close();
  Deno.exit(0);
}

const dir = await Deno.makeTempDir({ prefix: "ambit-bench-ca-" });
try {
  await Deno.mkdir(`${dir}/mesh`);
  await Deno.writeTextFile(`${dir}/mesh/mesh.yaml`, meshYaml(N));
  await initCaDir(`${dir}/ca`, { trustDomain: TD });
  const ca = await loadCaDir(`${dir}/ca`);
  const store = await ConfigStore.open(`${dir}/mesh`, { watch: false });
  const server = await CaServer.start({
    ca,
    snapshot: () => store.current,
    hostname: "127.0.0.1",
    port: 0,
  });
  const keys = await generateKeyPair();
  const nodeLeaf = await issueLeaf({
    id: nodeId(TD, "node-a"),
    publicKey: keys.publicKey,
    signer: ca.signer,
    now: new Date(),
    ttlMs: 3600e3,
    usage: "node",
  });
  const credential = {
    certPem: toPem([nodeLeaf]),
    keyPem: await exportPrivateKeyPem(keys.privateKey),
    bundlePem: toPem(ca.roots),
  };
  const clients = Array.from(
    { length: CONC },
    () =>
      new CaClient({ address: `127.0.0.1:${server.address.port}`, credential, trustDomain: TD }),
  );

  // Pre-made CSRs, so node-side key generation is not counted.
  const csrs: string[] = [];
  for (let i = 0; i < 256; i++) {
    csrs.push(await createCsr(`spiffe://${TD}/ns/bench/sa/sa${i}`, await generateKeyPair()));
  }

  const service: number[] = [];
  const inproc: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    inproc.push(
      await rate(SECONDS, CONC, async (i) => {
        const csr = await inspectCsr(csrs[i % csrs.length]);
        await issueLeaf({
          id: csr.id,
          publicKey: csr.publicKey,
          signer: ca.signer,
          now: new Date(),
          ttlMs: 24 * 3600e3,
        });
      }),
    );
    service.push(await rate(SECONDS, CONC, (i) => clients[i % CONC].sign(csrs[i % csrs.length])));
  }
  for (const c of clients) c.close();
  await server.close();
  await store.close();

  // Memory: a fresh process holding N identities against one holding none.
  const zero = await memoryChild(`${dir}/ca`, 0);
  const full = await memoryChild(`${dir}/ca`, N);
  const result = {
    signing: {
      concurrency: CONC,
      runs: RUNS,
      serviceCertsPerSecond: Math.round(median(service)),
      inProcessCertsPerSecond: Math.round(median(inproc)),
      ratioServiceToInProcess: +(median(service) / median(inproc)).toFixed(3),
      allRuns: { service: service.map(Math.round), inProcess: inproc.map(Math.round) },
    },
    memory: {
      identities: full.valid,
      fillSeconds: +(full.fillMs / 1000).toFixed(2),
      rssMiB: { none: mib(zero.rss), [N]: mib(full.rss) },
      heapMiB: { none: mib(zero.heap), [N]: mib(full.heap) },
      rssKiBPerIdentity: +((full.rss - zero.rss) / 1024 / full.valid).toFixed(1),
      heapKiBPerIdentity: +((full.heap - zero.heap) / 1024 / full.valid).toFixed(1),
    },
  };
  console.log(JSON.stringify(result, null, 2));
  await Deno.mkdir(".bench", { recursive: true });
  await Deno.writeTextFile(".bench/ca.json", JSON.stringify(result, null, 2));
} finally {
  await Deno.remove(dir, { recursive: true });
}
