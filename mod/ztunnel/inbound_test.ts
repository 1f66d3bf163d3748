import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import { compileSourcesSync } from "../config/compile.ts";
import { isLoopbackIp } from "../config/formats.ts";
import { HostAddresses } from "./host_addresses.ts";
import { resolveInbound } from "./inbound.ts";
import { localView } from "./local_view.ts";

// node-b (10.0.0.2) runs: web on 127.0.0.1 (declares 8080), a legacy app on
// 127.0.0.1 outside the mesh (declares 9000), db on the node's own address
// (declares nothing, but is a Service endpoint on 5432), cache alone on a
// container address 172.17.0.5 (declares nothing), and two workloads sharing
// 172.17.0.9 (api declares 80, jobs 81).
const CONFIG = `
apiVersion: ambit.io/v1alpha1
kind: Node
metadata: { name: node-b }
spec: { address: 10.0.0.2 }
---
apiVersion: v1
kind: Namespace
metadata: { name: apps, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Namespace
metadata: { name: legacy }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: web, namespace: apps }
spec: { node: node-b, address: 127.0.0.1, serviceAccount: web, ports: { http: 8080 } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: old, namespace: legacy }
spec: { node: node-b, address: 127.0.0.1, ports: { tcp: 9000 } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: db, namespace: apps }
spec: { node: node-b, address: 10.0.0.2, serviceAccount: db, labels: { app: db } }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: apps }
spec: { selector: { app: db }, ports: [{ port: 5432 }] }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: cache, namespace: apps }
spec: { node: node-b, address: 172.17.0.5, serviceAccount: cache }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: api, namespace: apps }
spec: { node: node-b, address: 172.17.0.9, serviceAccount: api, ports: { http: 80 } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: jobs, namespace: apps }
spec: { node: node-b, address: 172.17.0.9, serviceAccount: jobs, ports: { http: 81 } }
`;

Deno.test("resolveInbound() serves declared ports, and any port only on an address the host does not own", () => {
  const { snapshot, issues } = compileSourcesSync([{ file: "mesh.yaml", text: CONFIG }]);
  assertOk(snapshot, issues.map((i) => i.message).join("\n"));
  const view = localView(snapshot, "node-b");
  // The host owns loopback and 10.0.0.2; 172.17.0.x sit behind a bridge.
  const hostOwned = (ip: string) => isLoopbackIp(ip) || ip === "10.0.0.2";
  const table: [string, string, number, string][] = [
    ["declared port on loopback", "127.0.0.1", 8080, "apps/web"],
    [
      "undeclared port on loopback",
      "127.0.0.1",
      22,
      "503 no workload at 127.0.0.1 declares port 22",
    ],
    [
      "port of a workload outside the mesh",
      "127.0.0.1",
      9000,
      "503 port 9000 at 127.0.0.1 belongs to legacy/old",
    ],
    ["Service targetPort on the node address", "10.0.0.2", 5432, "apps/db"],
    [
      "undeclared port on the node address",
      "10.0.0.2",
      6379,
      "503 no workload at 10.0.0.2 declares port 6379",
    ],
    ["ambit's own port", "10.0.0.2", 15000, "400 port 15000"],
    ["ambit's own port on loopback", "127.0.0.1", 15008, "400 port 15008"],
    ["any port of a lone workload on its own address", "172.17.0.5", 6379, "apps/cache"],
    ["a shared address picks by declared port", "172.17.0.9", 81, "apps/jobs"],
    [
      "a shared address with no owner for the port",
      "172.17.0.9",
      82,
      "503 no workload at 172.17.0.9 declares port 82",
    ],
    ["no workload at the address", "172.17.0.6", 80, "400 172.17.0.6 is not a workload address"],
  ];
  for (const [name, ip, port, want] of table) {
    const r = resolveInbound(view, { ip, port }, hostOwned);
    const got = r.ok
      ? r.workload.key
      : `${r.failure === "not_local" || r.failure === "self_port" ? 400 : 503} ${r.detail}`;
    assertEquals(got.startsWith(want), true, `${name}: ${got}`);
  }
});

Deno.test("HostAddresses counts loopback and interface addresses as the host's, and everything when unknown", () => {
  const known = new HostAddresses({ list: () => ["10.0.0.2", "fe80::1"] });
  const table: [string, boolean][] = [
    ["127.0.0.1", true],
    ["127.9.9.9", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["10.0.0.2", true],
    ["fe80:0::1", true],
    ["172.17.0.5", false],
  ];
  for (const [ip, want] of table) assertEquals(known.has(ip), want, ip);
  const unknown = new HostAddresses({
    list: () => {
      throw new Error("no --allow-sys");
    },
  });
  assertEquals(unknown.has("172.17.0.5"), true, "unknown interfaces: the safe side");
});
