/**
 * Test helpers: a small mesh to attach routes to, built through the real
 * config pipeline, and a seeded random number generator.
 *
 * @module
 */
import { yaml } from "../config/_testing.ts";
import { compileSourcesSync } from "../config/compile.ts";
import { formatIssue } from "../config/load.ts";
import type { Snapshot } from "../config/snapshot.ts";

/** Services shop/web (80 http, 9090 grpc), web-v1, web-v2, web-v3, echo; waypoint shop/wp. */
export const BASE = yaml`
  apiVersion: ambit.io/v1alpha1
  kind: Node
  metadata: {name: node-a}
  spec: {address: 10.0.0.1}
  ---
  apiVersion: v1
  kind: Namespace
  metadata:
    name: shop
    labels: {istio.io/dataplane-mode: ambient}
  ---
  apiVersion: v1
  kind: Namespace
  metadata:
    name: client
    labels: {istio.io/dataplane-mode: ambient}
  ---
  apiVersion: networking.istio.io/v1
  kind: WorkloadEntry
  metadata: {name: web-1, namespace: shop}
  spec: {node: node-a, address: 10.1.0.1, serviceAccount: web, labels: {app: web}}
  ---
  apiVersion: gateway.networking.k8s.io/v1
  kind: Gateway
  metadata:
    name: wp
    namespace: shop
    annotations: {ambit.io/node: node-a}
  spec:
    gatewayClassName: istio-waypoint
    addresses: [{type: IPAddress, value: 10.0.0.1}]
    listeners: [{name: mesh, port: 15008, protocol: HBONE}]
  ---
  apiVersion: v1
  kind: Service
  metadata:
    name: web
    namespace: shop
    labels: {istio.io/use-waypoint: wp}
  spec:
    clusterIP: 10.96.0.10
    selector: {app: web}
    ports: [{name: http, port: 80, targetPort: 8080}, {name: grpc, port: 9090}]
  ---
  apiVersion: v1
  kind: Service
  metadata: {name: web-v1, namespace: shop}
  spec: {clusterIP: 10.96.0.11, selector: {app: web}, ports: [{name: http, port: 80}, {name: grpc, port: 9090}]}
  ---
  apiVersion: v1
  kind: Service
  metadata: {name: web-v2, namespace: shop}
  spec: {clusterIP: 10.96.0.12, selector: {app: web}, ports: [{name: http, port: 80}, {name: grpc, port: 9090}]}
  ---
  apiVersion: v1
  kind: Service
  metadata: {name: web-v3, namespace: shop}
  spec: {clusterIP: 10.96.0.13, selector: {app: web}, ports: [{port: 80}]}
  ---
  apiVersion: v1
  kind: Service
  metadata: {name: echo, namespace: shop}
  spec: {clusterIP: 10.96.0.14, selector: {app: web}, ports: [{port: 80}]}
  ---
  apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: ext, namespace: shop}
  spec:
    hosts: [api.example.com]
    ports: [{number: 443, name: https, protocol: TLS}]
    resolution: DNS
    endpoints: [{address: api.example.com}]
`;

/** Compiles BASE plus `extra` YAML documents; throws with the issues if it does not compile. */
export function snapshotOf(extra: string): Snapshot {
  const { snapshot, issues } = compileSourcesSync([{
    file: "test.yaml",
    text: `${BASE}\n---\n${extra}`,
  }]);
  const errors = issues.filter((i) => i.severity !== "warning");
  if (!snapshot || errors.length) {
    throw new Error(`config does not compile:\n${errors.map(formatIssue).join("\n")}`);
  }
  return snapshot;
}

/** A route document: `kind` HTTPRoute or GRPCRoute, in `ns/name`, with `spec` as YAML text. */
export function route(kind: string, key: string, spec: string, created?: string): string {
  const [namespace, name] = key.split("/");
  const ts = created ? `\n  creationTimestamp: "${created}"` : "";
  const body = spec.trim().split("\n").map((l) => `  ${l}`).join("\n");
  return `apiVersion: gateway.networking.k8s.io/v1\nkind: ${kind}\nmetadata:\n  name: ${name}\n  namespace: ${namespace}${ts}\nspec:\n${body}\n`;
}

/** mulberry32: a small seeded generator of numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
