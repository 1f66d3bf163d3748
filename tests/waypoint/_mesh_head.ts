/**
 * The part of the waypoint tests' mesh config they share: the Mesh, node-a
 * (the client's) and node-b (the apps' and the waypoint's), namespace apps
 * in ambient mode, the waypoint Gateway at 127.N.2.100, and the client
 * workload at 127.N.1.10.
 *
 * @module
 */

/** The shared documents; append the test's own after it. */
export function meshHead(a: (n: number, h: number) => string): string {
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
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: apps
  labels: { istio.io/waypoint-for: service }
  annotations: { ambit.io/node: node-b }
spec:
  gatewayClassName: istio-waypoint
  addresses: [{ type: IPAddress, value: ${a(2, 100)} }]
  listeners: [{ name: mesh, port: 15008, protocol: HBONE }]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: apps }
spec: { node: node-a, address: ${a(1, 10)}, serviceAccount: client, labels: { app: client } }
`;
}
