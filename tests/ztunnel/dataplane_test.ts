/**
 * In-process data plane: two ztunnels on loopback addresses, a real echo
 * app, real TLS and HTTP/2 between them.
 */
import { assertEquals, assertEventually } from "../_util/asserts.ts";
import { addressBlock, testMesh } from "./_mesh.ts";
import { echoServer, talk } from "./_apps.ts";

function meshConfig(a: (n: number, h: number) => string, policy = "") {
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
${policy}`;
}

Deno.test("a connection to a Service VIP reaches the app on another node through HBONE", async () => {
  const a = addressBlock();
  const mesh = await testMesh(meshConfig(a));
  const app = await echoServer(a(2, 10), 8080);
  try {
    const za = await mesh.ztunnel("node-a");
    const zb = await mesh.ztunnel("node-b");
    const r = await talk(a(3, 1), 80, "hello mesh", a(1, 10));
    if (r.error) {
      console.log(
        mesh.logs.filter((l) => l.level !== "debug" || /HBONE/.test(String(l.msg))).map((l) =>
          JSON.stringify(l)
        ).join("\n"),
      );
    }
    assertEquals(r, { reply: "echo:hello mesh", error: undefined });
    assertEquals(za.pool.stats.handshakes, 1);
    const r2 = await talk(a(3, 1), 80, "again", a(1, 10));
    assertEquals(r2.reply, "echo:again");
    assertEquals(za.pool.stats.handshakes, 1, "the pooled connection is reused");
    await assertEventually(() => zb.registry.size === 0 && za.registry.size === 0);
    const inbound = mesh.logs.filter((l) => l.msg === "inbound connection closed");
    assertEquals(inbound[0].sourceIdentity, "spiffe://ambit.test/ns/apps/sa/client");
    assertEquals(inbound[0].destinationIdentity, "spiffe://ambit.test/ns/apps/sa/echo");
  } finally {
    app.close();
    await mesh.close();
  }
});
