/**
 * Hot reload: in-process against the store (worker compile, real files, real
 * file watching) and against a real `ambit ztunnel` process.
 */
import { addressBlock } from "../_util/addresses.ts";
import { assertEquals, assertIncludes, assertOk, assertRejects } from "../_util/asserts.ts";
import { AmbitProcess, NO_HOST_PORTS } from "../_util/proc.ts";
import { ConfigStore } from "../../mod/config/store.ts";
import { ConfigError } from "../../mod/config/load.ts";
import { initCaDir } from "../../mod/identity/ca_dir.ts";

const NODES = `apiVersion: ambit.io/v1alpha1
kind: Node
metadata: {name: node-a}
spec: {address: ${addressBlock()(9, 1)}}
`;

function namespace(ambient: boolean): string {
  return `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {${ambient ? "istio.io/dataplane-mode: ambient" : ""}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web, namespace: shop}
spec: {serviceAccount: web, labels: {app: web}}
`;
}

function service(port: number): string {
  return `apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: ${port}}]
`;
}

async function meshDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "ambit-reload-" });
  await Deno.writeTextFile(`${dir}/nodes.yaml`, NODES);
  await Deno.writeTextFile(`${dir}/shop.yaml`, namespace(true));
  await Deno.writeTextFile(`${dir}/svc.yaml`, service(80));
  return dir;
}

/** Writes by rename, as editors and config management tools do. */
async function writeAtomic(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(`${path}.tmp`, text);
  await Deno.rename(`${path}.tmp`, path);
}

// Undefined while a half-written file briefly has no Service (the writes below are not atomic).
const portOf = (store: ConfigStore) => store.current.services.get("shop/web")?.ports[0].port;

Deno.test("reload applies a valid change to a watched file", async () => {
  const dir = await meshDir();
  const store = await ConfigStore.open(dir, { debounceMs: 50 });
  try {
    assertEquals(store.generation, 1);
    const next = store.nextReload((o) => o.applied);
    await Deno.writeTextFile(`${dir}/svc.yaml`, service(8080));
    const o = await next;
    assertEquals(o.reason, "file change");
    assertEquals(o.generation, 2);
    assertEquals(portOf(store), 8080);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reload rejects an invalid change, keeps the last good snapshot and says why", async () => {
  const dir = await meshDir();
  const store = await ConfigStore.open(dir, { debounceMs: 50 });
  try {
    const before = store.current;
    const next = store.nextReload();
    await writeAtomic(
      `${dir}/svc.yaml`,
      service(80).replace("ports: [{port: 80}]", "ports: [{port: http}]"),
    );
    const o = await next;
    assertEquals(o.applied, false);
    assertIncludes(o.error!, `${dir}/svc.yaml:6 spec.ports[0].port: "http" is not a port number`);
    assertOk(store.current === before, "the last good snapshot stays in force");
    assertEquals(store.generation, 1);
    assertEquals(store.lastFailure?.issues.length, 1);
    assertEquals(store.stats.failures, 1);
    // Fixing the file clears the failure.
    const fixed = store.nextReload((x) => x.applied);
    await writeAtomic(`${dir}/svc.yaml`, service(81));
    await fixed;
    assertEquals(store.lastFailure, undefined);
    assertEquals(portOf(store), 81);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reload after a burst of writes settles on the final content", async () => {
  const dir = await meshDir();
  const store = await ConfigStore.open(dir, { debounceMs: 100 });
  let attempts = 0;
  store.onReload(() => attempts++);
  try {
    const settled = store.nextReload((o) => o.applied && portOf(store) === 1049, 15_000);
    for (let i = 1000; i < 1050; i++) await Deno.writeTextFile(`${dir}/svc.yaml`, service(i));
    await settled;
    assertEquals(portOf(store), 1049);
    assertOk(attempts < 10, `debounced: ${attempts} reloads for 50 writes`);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reload on SIGHUP; an unchanged config is not re-applied", async () => {
  const dir = await meshDir();
  const store = await ConfigStore.open(dir, { watch: false, sighup: true });
  try {
    let next = store.nextReload();
    Deno.kill(Deno.pid, "SIGHUP");
    let o = await next;
    assertEquals([o.reason, o.applied, o.unchanged], ["SIGHUP", false, true]);
    await Deno.writeTextFile(`${dir}/svc.yaml`, service(9090));
    next = store.nextReload();
    Deno.kill(Deno.pid, "SIGHUP");
    o = await next;
    assertEquals([o.reason, o.applied, o.generation], ["SIGHUP", true, 2]);
    assertEquals(portOf(store), 9090);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a store does not open on an invalid config", async () => {
  const dir = await meshDir();
  try {
    await Deno.writeTextFile(`${dir}/bad.yaml`, "kind: Nope\n");
    const e = await assertRejects(() => ConfigStore.open(dir), ConfigError);
    assertIncludes(e.message, `${dir}/bad.yaml:1 kind: unknown kind "Nope"`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ztunnel process: labelling a namespace enrolls its workloads without a restart; SIGHUP reloads; SIGTERM exits 0", async () => {
  const dir = await meshDir();
  await Deno.writeTextFile(`${dir}/shop.yaml`, namespace(false));
  const caDir = await Deno.makeTempDir();
  await initCaDir(`${caDir}/ca`, { trustDomain: "cluster.local" });
  const p = new AmbitProcess([
    "ztunnel",
    "--config",
    dir,
    "--node",
    "node-a",
    "--ca-dir",
    `${caDir}/ca`,
    "--admin",
    "off",
    ...NO_HOST_PORTS,
    "--log-format",
    "json",
  ]);
  try {
    const loaded = await p.waitForRecord((r) => r.msg === "config loaded");
    assertEquals(loaded.workloads, "none");
    await writeAtomic(`${dir}/shop.yaml`, namespace(true));
    const enrolled = await p.waitForRecord((r) => r.msg === "workload enrolled");
    assertEquals(enrolled.workload, "shop/web");
    assertEquals(enrolled.identity, "spiffe://cluster.local/ns/shop/sa/web");

    const from = p.records.length;
    await Deno.writeTextFile(`${dir}/svc.yaml`, service(9443));
    // Wait for the file-change reload to settle before signalling.
    await p.waitForRecord((r) => r.msg === "config reload applied", { from });
    const from2 = p.records.length;
    p.kill("SIGHUP");
    const hup = await p.waitForRecord((r) => r.reason === "SIGHUP", { from: from2 });
    assertEquals(hup.msg, "config unchanged");

    // A broken edit is logged and the process keeps running.
    const from3 = p.records.length;
    await writeAtomic(
      `${dir}/svc.yaml`,
      "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 0}]}\n",
    );
    const rejected = await p.waitForRecord((r) => r.level === "error", { from: from3 });
    assertIncludes(String(rejected.error), "spec.ports[0].port: 0 is not a port number");
  } finally {
    assertEquals(await p.stop(), 0);
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(caDir, { recursive: true });
  }
});
