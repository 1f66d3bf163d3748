/**
 * YAML documents the network-namespace tests build their meshes from.
 *
 * @module
 */
import type { Bed } from "./_netns.ts";

/** The Mesh (CA service on the wire namespace) and one Node `host-<name>` per bed host. */
export function meshAndNodes(bed: Bed, trustDomain: string): string[] {
  return [
    `apiVersion: ambit.io/v1alpha1
kind: Mesh
metadata: { name: mesh }
spec: { trustDomain: ${trustDomain}, ca: { address: "${bed.wire.address}:15012" } }`,
    ...bed.hosts.map((h) =>
      `apiVersion: ambit.io/v1alpha1
kind: Node
metadata: { name: host-${h.name} }
spec: { address: ${h.address} }`
    ),
  ];
}

/** A WorkloadEntry `ns/name` on `node`, service account `name`, label `app: name`. */
export function workload(ns: string, name: string, node: string, address?: string): string {
  return `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: ${ns} }
spec:
  node: ${node}
  serviceAccount: ${name}
  labels: { app: ${name} }${address ? `\n  address: ${address}` : ""}`;
}

/** A Service `ns/name` on `vip:port`, selecting `app: name`, to `target`. */
export function service(
  ns: string,
  name: string,
  vip: string,
  port: number,
  target: number,
): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec:
  clusterIP: ${vip}
  selector: { app: ${name} }
  ports: [{ name: tcp, port: ${port}, targetPort: ${target} }]`;
}
