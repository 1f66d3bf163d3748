/**
 * A small mesh config for the DNS tests: two namespaces with a `reviews`
 * each (so the bare short name is ambiguous across them), an IPv6 service,
 * ServiceEntries with addresses, with a wildcard, without addresses and with
 * a range only.
 *
 * @module
 */
import { compileSourcesSync } from "../../mod/config/compile.ts";
import { yaml } from "../../mod/config/_testing.ts";
import type { Snapshot } from "../../mod/config/snapshot.ts";

/** The test mesh's config text. */
export const MESH_YAML = yaml`
  apiVersion: v1
  kind: Namespace
  metadata:
    name: shop
    labels: {istio.io/dataplane-mode: ambient}
  ---
  apiVersion: v1
  kind: Namespace
  metadata:
    name: payments
    labels: {istio.io/dataplane-mode: ambient}
  ---
  apiVersion: v1
  kind: Service
  metadata: {name: reviews, namespace: shop}
  spec:
    clusterIP: 10.96.0.10
    selector: {app: reviews}
    ports: [{port: 9080}]
  ---
  apiVersion: v1
  kind: Service
  metadata: {name: ratings, namespace: shop}
  spec:
    clusterIP: 10.96.0.11
    selector: {app: ratings}
    ports: [{port: 9080}]
  ---
  apiVersion: v1
  kind: Service
  metadata: {name: reviews, namespace: payments}
  spec:
    clusterIP: 10.96.0.20
    selector: {app: reviews}
    ports: [{port: 9080}]
  ---
  apiVersion: v1
  kind: Service
  metadata: {name: web6, namespace: shop}
  spec:
    clusterIP: "fd00::10"
    selector: {app: web6}
    ports: [{port: 80}]
  ---
  apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: api, namespace: shop}
  spec:
    hosts: [api.example.com]
    addresses: [192.0.2.10/32, "2001:db8::10"]
    ports: [{number: 443, name: https, protocol: TLS}]
  ---
  apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: wild, namespace: shop}
  spec:
    hosts: ["*.wild.example.com", "exact.wild.example.com"]
    addresses: [192.0.2.20]
    ports: [{number: 443, name: https, protocol: TLS}]
  ---
  apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: noaddr, namespace: shop}
  spec:
    hosts: [ext.example.org, unvip.shop.svc.cluster.local]
    resolution: DNS
    endpoints: [{address: ext.example.org}]
    ports: [{number: 443, name: https, protocol: TLS}]
  ---
  apiVersion: networking.istio.io/v1
  kind: ServiceEntry
  metadata: {name: range, namespace: payments}
  spec:
    hosts: [range.example.net]
    addresses: [198.51.100.0/24]
    ports: [{number: 443, name: https, protocol: TLS}]
`;

/** Compiles `text` (default {@link MESH_YAML}) and returns the snapshot, failing on any error. */
export function meshSnapshot(text: string = MESH_YAML): Snapshot {
  const r = compileSourcesSync([{ file: "mesh.yaml", text }]);
  if (!r.snapshot) {
    throw new Error(`test mesh does not compile:\n${r.issues.map((i) => i.message).join("\n")}`);
  }
  return r.snapshot;
}
