/**
 * `ServiceEntry` (networking.istio.io/v1): services outside the mesh, or
 * addresses inside it that no WorkloadEntry describes.
 *
 * @module
 */
import { cidr, hostname, labels } from "../formats.ts";
import { defineKind } from "../kind.ts";
import { def, int, list, map, obj, oneOf, opt, port, req, str } from "../schema.ts";
import { ISTIO_NETWORKING } from "./workload_entry.ts";
import { isIP } from "node:net";

const sePort = obj({
  number: req(port(), "Port the service is reached on."),
  protocol: opt(
    oneOf(["HTTP", "HTTPS", "GRPC", "HTTP2", "MONGO", "TCP", "TLS"]),
    "Application protocol.",
  ),
  name: req(
    str({
      name: "port name",
      validate: (
        s,
      ) => (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s)
        ? undefined
        : `"${s}" is not a valid port name`),
    }),
    "Port name.",
  ),
  targetPort: opt(port(), "Port on the endpoints (default: number)."),
}, { title: "ServicePort" });

const endpoint = obj({
  address: opt(str({ name: "address", minLength: 1 }), "IP or DNS name of the endpoint."),
  ports: opt(map(port()), "Port name → endpoint port."),
  labels: opt(labels(), "Labels."),
  network: opt(str(), "Informational."),
  locality: opt(str(), "region/zone/subzone."),
  weight: opt(int({ min: 0 }), "Load-balancing weight."),
  serviceAccount: opt(str(), "Identity of a mesh-internal endpoint."),
}, { title: "WorkloadEntry (endpoint)" });

/** Schema of `ServiceEntry.spec`. */
export const serviceEntrySpec = obj({
  hosts: req(
    list(hostname({ wildcard: true }), { minItems: 1, uniqueBy: (h) => h, uniqueWhat: "host" }),
    "Host names; the mesh DNS answers them.",
  ),
  addresses: opt(list(cidr()), "VIPs or CIDRs of the service."),
  ports: opt(
    list(sePort, { uniqueBy: (p) => String(p.number), uniqueWhat: "port" }),
    "Ports.",
  ),
  location: def(
    oneOf(["MESH_EXTERNAL", "MESH_INTERNAL"]),
    "MESH_EXTERNAL",
    "Whether the service is outside the mesh (no mTLS) or inside.",
  ),
  resolution: def(
    oneOf(["NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN"]),
    "NONE",
    "How endpoints are found.",
  ),
  endpoints: opt(list(endpoint), "Endpoints (STATIC: IPs; DNS: names)."),
  workloadSelector: opt(
    obj({ labels: opt(labels(), "Labels.") }, { title: "WorkloadSelector" }),
    "Select WorkloadEntries as endpoints instead.",
  ),
  exportTo: opt(
    list(str()),
    "Visibility; accepted for compatibility (ambit configs are mesh-wide).",
  ),
  subjectAltNames: opt(list(str()), "Expected identities of the endpoints."),
}, {
  title: "ServiceEntrySpec",
  refine(s, at, r) {
    const names = new Set<string>();
    s.ports?.forEach((p, i) => {
      if (names.has(p.name)) {
        r.error([...at, "ports", i, "name"], `duplicate port name "${p.name}"`);
      }
      names.add(p.name);
    });
    if (s.workloadSelector && s.endpoints) {
      r.error([...at, "workloadSelector"], "workloadSelector and endpoints cannot both be set");
    }
    if (s.resolution === "STATIC") {
      s.endpoints?.forEach((e, i) => {
        if (e.address !== undefined && isIP(e.address) === 0) {
          r.error(
            [...at, "endpoints", i, "address"],
            `resolution STATIC needs IP addresses, got "${e.address}"`,
          );
        }
      });
      if (!s.endpoints?.length && !s.workloadSelector) {
        r.error([...at, "endpoints"], "resolution STATIC needs endpoints or a workloadSelector");
      }
    }
    if ((s.resolution === "DNS" || s.resolution === "DNS_ROUND_ROBIN") && !s.endpoints?.length) {
      s.hosts.forEach((h, i) => {
        if (h.startsWith("*")) {
          r.error(
            [...at, "hosts", i],
            `wildcard host "${h}" cannot be resolved with DNS`,
            "use resolution NONE or list endpoints",
          );
        }
      });
    }
  },
});

/** The `ServiceEntry` kind. */
export const ServiceEntry = defineKind({
  kind: "ServiceEntry",
  apiVersions: ISTIO_NETWORKING,
  namespaced: true,
  specRequired: true,
  doc: "A service the mesh should know by name: an external API (MESH_EXTERNAL), or an internal " +
    "address not described by WorkloadEntries. Its hosts are answered by the mesh DNS.",
  spec: serviceEntrySpec,
  example: `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: payments-api
  namespace: shop
spec:
  hosts: ["api.payments.example.com"]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - number: 443
    name: https
    protocol: TLS`,
});
