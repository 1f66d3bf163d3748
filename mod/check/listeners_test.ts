import { assertEquals } from "../../tests/_util/asserts.ts";
import { compileSourcesSync } from "../config/compile.ts";
import { yaml } from "../config/_testing.ts";
import type { Snapshot } from "../config/snapshot.ts";
import {
  duplicateListeners,
  type ListenChoices,
  listenerKey,
  plannedListeners,
} from "./listeners.ts";

export const MESH = yaml`
  apiVersion: ambit.io/v1alpha1
  kind: Mesh
  metadata: { name: mesh }
  spec: { trustDomain: ambit.test, ca: { address: "10.0.0.1:15012" } }
  ---
  apiVersion: ambit.io/v1alpha1
  kind: Node
  metadata: { name: node-a }
  spec:
    address: 10.0.0.10
    outbound: { ports: [{ service: apps/echo, port: 80, listen: "127.0.0.1:8080" }] }
  ---
  apiVersion: ambit.io/v1alpha1
  kind: Node
  metadata: { name: node-b }
  spec: { address: 10.0.0.11 }
  ---
  apiVersion: v1
  kind: Namespace
  metadata: { name: apps, labels: { istio.io/dataplane-mode: ambient } }
  ---
  apiVersion: networking.istio.io/v1
  kind: WorkloadEntry
  metadata: { name: client, namespace: apps }
  spec: { node: node-a, address: 127.0.0.5, serviceAccount: client }
  ---
  apiVersion: networking.istio.io/v1
  kind: WorkloadEntry
  metadata: { name: echo, namespace: apps }
  spec: { node: node-b, serviceAccount: echo, labels: { app: echo } }
  ---
  apiVersion: v1
  kind: Service
  metadata: { name: echo, namespace: apps }
  spec: { clusterIP: 127.10.0.7, selector: { app: echo }, ports: [{ port: 80 }] }
  ---
  apiVersion: gateway.networking.k8s.io/v1
  kind: Gateway
  metadata: { name: waypoint, namespace: apps, annotations: { ambit.io/node: node-b } }
  spec:
    gatewayClassName: istio-waypoint
    addresses: [{ value: 10.0.0.12 }]
    listeners: [{ name: mesh, port: 15008, protocol: HBONE }]
`;

/** The test mesh compiled. */
export function snapshotOf(text = MESH): Snapshot {
  const r = compileSourcesSync([{ file: "mesh.yaml", text }]);
  if (!r.snapshot) throw new Error(JSON.stringify(r.issues, null, 2));
  return r.snapshot;
}

const DEFAULTS: ListenChoices = {
  admin: "default",
  metrics: "default",
  readiness: "default",
  dns: "default",
  socks5: "default",
  httpProxy: "default",
};

const keys = (l: ReturnType<typeof plannedListeners>) =>
  l.map((x) => `${listenerKey(x)} ${x.what}`);

Deno.test("plannedListeners() lists what a ztunnel binds, with its defaults", () => {
  const s = snapshotOf();
  const got = plannedListeners(
    s,
    { role: "ztunnel", node: "node-a" },
    DEFAULTS,
    (ip) => ip.startsWith("127."),
  );
  assertEquals(keys(got), [
    "10.0.0.10:15008/tcp HBONE",
    "127.0.0.5:15008/tcp HBONE for workloads at this address",
    "10.0.0.10:15006/tcp plaintext inbound",
    "127.10.0.7:80/tcp outbound apps/echo:80",
    "127.0.0.1:8080/tcp outbound apps/echo:80",
    "10.0.0.10:15020/tcp metrics",
    "10.0.0.10:15021/tcp readiness",
    "127.0.0.1:15000/tcp admin API",
    "127.0.0.1:15053/udp DNS proxy",
    "127.0.0.1:15053/tcp DNS proxy",
    "127.0.0.1:15080/tcp SOCKS5 proxy",
    "127.0.0.1:15081/tcp HTTP proxy",
  ]);
  assertEquals(got[1].bestEffort, true);
  assertEquals(got[8].flag, "dns");
  assertEquals(got[0].flag, undefined);
});

Deno.test("plannedListeners() follows the flags: 'off' drops, an address moves", () => {
  const s = snapshotOf();
  const got = plannedListeners(s, { role: "ztunnel", node: "node-b" }, {
    ...DEFAULTS,
    metrics: "off",
    readiness: { hostname: "127.0.0.1", port: 9021 },
    dns: "off",
    socks5: "off",
    httpProxy: { hostname: "127.0.0.2", port: 3128 },
    admin: "off",
  });
  assertEquals(keys(got), [
    "10.0.0.11:15008/tcp HBONE",
    "10.0.0.11:15006/tcp plaintext inbound",
    "127.10.0.7:80/tcp outbound apps/echo:80",
    "127.0.0.1:9021/tcp readiness",
    "127.0.0.2:3128/tcp HTTP proxy",
  ]);
});

Deno.test("plannedListeners() lists a waypoint's HBONE, probes and admin, no node services", () => {
  const got = plannedListeners(snapshotOf(), { role: "waypoint", name: "apps/waypoint" }, DEFAULTS);
  assertEquals(keys(got), [
    "10.0.0.12:15008/tcp HBONE",
    "10.0.0.12:15020/tcp metrics",
    "10.0.0.12:15021/tcp readiness",
    "127.0.0.1:15000/tcp admin API",
  ]);
});

Deno.test("duplicateListeners() finds two purposes for one socket", () => {
  const got = plannedListeners(snapshotOf(), { role: "waypoint", name: "apps/waypoint" }, {
    ...DEFAULTS,
    readiness: { hostname: "10.0.0.12", port: 15020 },
  });
  const d = duplicateListeners(got);
  assertEquals(d.map((x) => [x.listener.what, x.first.what]), [["readiness", "metrics"]]);
});
