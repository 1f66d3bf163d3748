/**
 * `Mesh` and `Node`: the ambit kinds for what Kubernetes gives Istio
 * implicitly (the mesh-wide settings and the hosts that run ztunnels).
 *
 * @module
 */
import { cidr, gatewayDuration, ip } from "../formats.ts";
import { bool, def, int, list, nested, obj, opt, port, req, str } from "../schema.ts";
import { defineKind } from "../kind.ts";

/** API group of ambit's own kinds. */
export const AMBIT_GROUP = "ambit.io";
/** apiVersion of ambit's own kinds. */
export const AMBIT_API = `${AMBIT_GROUP}/v1alpha1`;

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

/** Schema of `Mesh.spec`. */
export const meshSpec = obj({
  trustDomain: def(
    str({
      name: "trust domain",
      validate: (s) =>
        s.length > 255 || !TRUST_DOMAIN.test(s)
          ? `"${s}" is not a valid SPIFFE trust domain`
          : undefined,
      hint: "lowercase letters, digits, '.', '-' and '_', e.g. example.org",
    }),
    "cluster.local",
    "SPIFFE trust domain: identities are spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.",
  ),
  dnsSuffix: def(
    str({
      name: "DNS suffix",
      validate: (s) =>
        /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(s)
          ? undefined
          : `"${s}" is not a valid DNS suffix`,
    }),
    "cluster.local",
    "Service hostnames are <name>.<namespace>.svc.<dnsSuffix>.",
  ),
  rootNamespace: def(
    str({ name: "namespace" }),
    "istio-system",
    "Policies (AuthorizationPolicy, PeerAuthentication, RequestAuthentication) in this namespace apply mesh-wide, as in Istio.",
  ),
  vipRange: def(
    cidr(),
    "127.10.0.0/16",
    "Range from which Services without spec.clusterIP get a VIP. The default is on loopback, so no root and no routes are needed.",
  ),
  ca: nested(
    obj({
      address: opt(
        str({
          name: "host:port",
          validate: (s) => (/^.+:[0-9]{1,5}$/.test(s) ? undefined : `"${s}" is not host:port`),
          hint: "e.g. 10.0.0.1:15012",
        }),
        "Where nodes reach the CA service (ambit ca serve). Absent: nodes must be given a CA directory (lab only) or pre-issued certificates.",
      ),
      workloadCertTTL: def(gatewayDuration(), "24h", "Lifetime of issued workload certificates."),
    }, { title: "MeshCA", doc: "Certificate authority settings." }),
    "Certificate authority settings.",
  ),
  defaults: nested(
    obj({
      connectTimeout: def(gatewayDuration(), "10s", "Upstream TCP connect timeout (Istio: 10s)."),
      unattributedConnections: def(
        str({
          name: "Deny | Allow",
          validate: (
            s,
          ) => (s === "Deny" || s === "Allow" ? undefined : `"${s}" is not Deny or Allow`),
        }),
        "Deny",
        "What a ztunnel does with an outbound connection it cannot attribute to one local workload.",
      ),
      maxStreamsPerConnection: def(
        int({ min: 1, max: 1000 }),
        100,
        "HBONE client: CONNECT streams per pooled connection before another is opened.",
      ),
    }, { title: "MeshDefaults", doc: "Data-plane defaults." }),
    "Data-plane defaults.",
  ),
}, {
  title: "MeshSpec",
  doc: "Mesh-wide settings. At most one Mesh resource; all defaults apply without one.",
});

/** The `Mesh` kind. */
export const Mesh = defineKind({
  kind: "Mesh",
  apiVersions: [AMBIT_API],
  namespaced: false,
  doc:
    "Mesh-wide settings: trust domain, DNS suffix, VIP range, CA. At most one; when absent every field takes its default.",
  spec: meshSpec,
  example: `apiVersion: ambit.io/v1alpha1
kind: Mesh
metadata:
  name: mesh
spec:
  trustDomain: example.org
  ca:
    address: 10.0.0.1:15012`,
});

/** Schema of `Node.spec`. */
export const nodeSpec = obj({
  address: req(
    ip(),
    "Address the node's ztunnel listens on for HBONE (port 15008); peers connect here.",
  ),
  hostname: opt(str({ name: "hostname" }), "The host's name, for display and diagnostics."),
  locality: opt(
    str({
      name: "locality",
      validate: (s) =>
        s.split("/").length <= 3 && s.split("/").every((p) => p !== "")
          ? undefined
          : `"${s}" is not region/zone/subzone`,
    }),
    "region/zone/subzone, as Istio's WorkloadEntry locality.",
  ),
  outbound: nested(
    obj({
      vips: def(
        bool(),
        true,
        "Listen on every Service VIP:port (userspace outbound capture). Turn off where two nodes share one host's loopback (the lab) and use `ports` instead.",
      ),
      ports: def(
        list(
          obj({
            service: req(
              str({
                name: "namespace/name",
                validate: (s) =>
                  /^[a-z0-9-]+\/[a-z0-9.-]+$/.test(s) ? undefined : `"${s}" is not namespace/name`,
              }),
              "The Service, as namespace/name.",
            ),
            port: req(port(), "The Service port."),
            listen: req(
              str({
                name: "ip:port",
                validate: (s) =>
                  /^[0-9.]+:[0-9]{1,5}$|^\[[0-9a-f:]+\]:[0-9]{1,5}$/i.test(s)
                    ? undefined
                    : `"${s}" is not ip:port`,
                hint: "e.g. 127.0.0.1:19090",
              }),
              "Local address to listen on; connections there go to the Service port.",
            ),
          }, { title: "OutboundPort", doc: "An explicit local port for a Service port." }),
        ),
        [],
        "Explicit local listeners for Service ports, besides (or instead of) the VIPs.",
      ),
    }, { title: "NodeOutbound", doc: "How local workloads reach mesh Services." }),
    "How local workloads reach mesh Services.",
  ),
}, { title: "NodeSpec", doc: "A host that runs an ambit ztunnel." });

/** The `Node` kind. */
export const Node = defineKind({
  kind: "Node",
  apiVersions: [AMBIT_API],
  namespaced: false,
  specRequired: true,
  doc:
    "A host that runs a ztunnel. Its name is what `ambit ztunnel --node` takes and what the CA authorizes certificate requests against.",
  spec: nodeSpec,
  references(res) {
    const ports = (res.spec?.outbound?.ports ?? []) as { service: string }[];
    return ports.map((p, i) => {
      const [namespace, name] = p.service.split("/");
      return {
        path: ["spec", "outbound", "ports", i, "service"],
        kinds: ["Service"],
        namespace,
        name,
      };
    });
  },
  example: `apiVersion: ambit.io/v1alpha1
kind: Node
metadata:
  name: node-a
spec:
  address: 10.0.0.11`,
});
