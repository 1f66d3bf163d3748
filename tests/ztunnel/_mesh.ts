/**
 * In-process mesh fixture: a CA directory, a config directory and ztunnels
 * started in this process on unique loopback addresses (127.0.N.1 per
 * node), so data-plane tests run without root and in parallel.
 */
import { initCaDir } from "../../mod/identity/ca_dir.ts";
import { LocalCa } from "../../mod/identity/ca_client.ts";
import type { CaMaterial } from "../../mod/identity/ca_dir.ts";
import { ConfigStore } from "../../mod/config/store.ts";
import { Logger } from "../../mod/log/logger.ts";
import { accessLog } from "../../mod/telemetry/access_log.ts";
import { TcpMetrics } from "../../mod/telemetry/tcp_metrics.ts";
import { Ztunnel, type ZtunnelOptions } from "../../mod/ztunnel/ztunnel.ts";
import { Waypoint, type WaypointOptions } from "../../mod/waypoint/waypoint.ts";
import {
  exportPrivateKeyPem,
  generateKeyPair,
  issueLeaf,
  toPem,
} from "../../mod/identity/certs.ts";

export { addressBlock } from "../_util/addresses.ts";

/** A test mesh on disk with its CA. */
export interface TestMesh {
  readonly dir: string;
  readonly ca: CaMaterial;
  readonly logs: Record<string, unknown>[];
  /** Starts a ztunnel for `node` in this process. */
  ztunnel(
    node: string,
    opts?: {
      keepalive?: { intervalMs: number; timeoutMs: number };
      handshakeTimeoutMs?: number;
      /** Further options (metrics, readiness, admin, a cert source, telemetry). */
      extra?: Partial<ZtunnelOptions>;
      /** Do not wait for certificates before returning. */
      noWait?: boolean;
    },
  ): Promise<Ztunnel>;
  /** Starts waypoint `name` (`namespace/gateway`) in this process. */
  waypoint(name: string, extra?: Partial<WaypointOptions>): Promise<Waypoint>;
  /** Rewrites the config file and waits until every started ztunnel applied it. */
  reconfigure(yaml: string): Promise<void>;
  /** A certificate for any identity, signed by the mesh CA (for raw clients). */
  issue(
    id: string,
    opts?: { ttlMs?: number; now?: Date },
  ): Promise<{ certPem: string; keyPem: string; caPem: string }>;
  close(): Promise<void>;
}

/** Creates the mesh with `yaml` as its config. */
export async function testMesh(yaml: string, trustDomain = "ambit.test"): Promise<TestMesh> {
  const dir = await Deno.makeTempDir({ prefix: "ambit-mesh-" });
  const ca = await initCaDir(`${dir}/ca`, { trustDomain });
  await Deno.mkdir(`${dir}/mesh`);
  await Deno.writeTextFile(`${dir}/mesh/mesh.yaml`, yaml);
  const logs: Record<string, unknown>[] = [];
  const started: { z: Ztunnel | Waypoint; store: ConfigStore }[] = [];
  const caPem = toPem(ca.roots);
  return {
    dir,
    ca,
    logs,
    async ztunnel(node, opts = {}) {
      const logger = new Logger({
        level: "debug",
        format: "json",
        sink: (line) => logs.push(JSON.parse(line)),
      }).child({ node });
      const store = await ConfigStore.open(`${dir}/mesh`, {
        logger,
        worker: false,
        debounceMs: 20,
      });
      try {
        const z = await Ztunnel.start({
          store,
          node,
          certSource: new LocalCa(ca, 3_600_000),
          bundlePem: caPem,
          logger,
          telemetry: { metrics: new TcpMetrics(), access: accessLog({ logger }).write },
          keepalive: opts.keepalive,
          handshakeTimeoutMs: opts.handshakeTimeoutMs,
          ...opts.extra,
        });
        if (!opts.noWait) {
          await z.certs.idle();
          z.hboneServer?.refresh();
        }
        started.push({ z, store });
        return z;
      } catch (e) {
        await store.close();
        throw e;
      }
    },
    async waypoint(name, extra = {}) {
      const logger = new Logger({
        level: "debug",
        format: "json",
        sink: (line) => logs.push(JSON.parse(line)),
      }).child({ waypoint: name });
      const store = await ConfigStore.open(`${dir}/mesh`, {
        logger,
        worker: false,
        debounceMs: 20,
      });
      try {
        const w = await Waypoint.start({
          store,
          name,
          certSource: new LocalCa(ca, 3_600_000),
          bundlePem: caPem,
          logger,
          ...extra,
        });
        await w.certs.idle();
        started.push({ z: w, store });
        return w;
      } catch (e) {
        await store.close();
        throw e;
      }
    },
    async reconfigure(text) {
      const waits = started.map(({ store }) => store.nextReload((o) => o.applied));
      await Deno.writeTextFile(`${dir}/mesh/mesh.yaml`, text);
      await Promise.all(waits);
      for (const { z } of started) {
        await z.certs.idle();
        if (z instanceof Ztunnel) z.hboneServer?.refresh();
      }
    },
    async issue(id, opts = {}) {
      const keys = await generateKeyPair();
      const leaf = await issueLeaf({
        id,
        publicKey: keys.publicKey,
        signer: ca.signer,
        now: opts.now ?? new Date(),
        ttlMs: opts.ttlMs ?? 3_600_000,
      });
      return {
        certPem: toPem([leaf, ...ca.chain]),
        keyPem: await exportPrivateKeyPem(keys.privateKey),
        caPem,
      };
    },
    async close() {
      for (const { z, store } of started.splice(0)) {
        await z.close();
        await store.close();
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Two nodes (node-a at 127.N.1.1 with workload `client` at .1.10; node-b at
 * .2.1 with `echo` at .2.10, outbound VIPs off) and Service `echo`
 * (VIP 127.N.3.1, port 80 → 8080), all enrolled; `extra` is appended.
 */
export function twoNodeConfig(a: (n: number, h: number) => string, extra = "") {
  return `
apiVersion: ambit.io/v1alpha1
kind: Mesh
metadata: { name: mesh }
spec: { trustDomain: ambit.test }
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
spec: { node: node-a, address: ${a(1, 10)}, serviceAccount: client, labels: { app: client } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: echo, namespace: apps }
spec: { node: node-b, address: ${a(2, 10)}, serviceAccount: echo, labels: { app: echo } }
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: apps }
spec:
  clusterIP: ${a(3, 1)}
  selector: { app: echo }
  ports: [{ name: tcp, port: 80, targetPort: 8080 }]
${extra}`;
}
