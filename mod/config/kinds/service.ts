/**
 * `Service` (v1): a stable name and VIP for the workloads its selector picks.
 *
 * @module
 */
import { ip, labels } from "../formats.ts";
import { dnsLabel } from "../formats.ts";
import { def, intOrString, list, obj, oneOf, opt, port, str, unsupported } from "../schema.ts";
import { defineKind } from "../kind.ts";
import { useWaypointReferences } from "./namespace.ts";

/** Schema of one entry of `Service.spec.ports`. */
export const servicePort = obj({
  name: opt(dnsLabel("port name"), "Port name; required when there is more than one port."),
  port: opt(port(), "Port the service listens on (on its VIP)."),
  targetPort: opt(
    intOrString(),
    "Port on the workload: a number, or a name looked up in the WorkloadEntry's ports. Default: same as port.",
  ),
  protocol: def(oneOf(["TCP"]), "TCP", "Only TCP: the ambient mesh carries TCP."),
  appProtocol: opt(
    str(),
    "Application protocol hint, e.g. http, http2, grpc (waypoints use it to pick the L7 codec).",
  ),
  nodePort: unsupported("ambit has no node ports; services are reached through their VIP"),
}, {
  title: "ServicePort",
  refine(p, at, r) {
    if (p.port === undefined) r.error([...at, "port"], `missing required field "port"`);
  },
});

/** Schema of `Service.spec`. */
export const serviceSpec = obj({
  selector: opt(labels(), "Selects WorkloadEntries in the same namespace by their labels."),
  ports: def(
    list(servicePort, { uniqueBy: (p) => String(p.port), uniqueWhat: "port" }),
    [],
    "Ports the service exposes.",
  ),
  clusterIP: opt(
    ip(),
    "The service VIP. When absent, one is assigned from the Mesh vipRange (stable across nodes and reloads).",
  ),
  type: def(oneOf(["ClusterIP"]), "ClusterIP", "Only ClusterIP."),
  clusterIPs: unsupported("use clusterIP (one VIP per service)"),
  externalName: unsupported("use a ServiceEntry for external services"),
  externalIPs: unsupported("use a ServiceEntry for external addresses"),
  sessionAffinity: unsupported("use a DestinationRule consistentHash load balancer"),
  ipFamilies: unsupported("the VIP's family follows clusterIP"),
  ipFamilyPolicy: unsupported("the VIP's family follows clusterIP"),
  internalTrafficPolicy: unsupported("traffic goes to any healthy endpoint in the mesh"),
  externalTrafficPolicy: unsupported("ambit has no external load balancers"),
  loadBalancerIP: unsupported("ambit has no external load balancers"),
  publishNotReadyAddresses: unsupported("ambit has no readiness-gated endpoints"),
}, {
  title: "ServiceSpec",
  refine(spec, at, r) {
    if (spec.ports.length > 1) {
      spec.ports.forEach((p, i) => {
        if (p.name === undefined) {
          r.error(
            [...at, "ports", i, "name"],
            "a name is required when a service has more than one port",
          );
        }
      });
      const names = new Map<string, number>();
      spec.ports.forEach((p, i) => {
        if (p.name === undefined) return;
        const first = names.get(p.name);
        if (first !== undefined) {
          r.error([...at, "ports", i, "name"], `duplicate port name "${p.name}"`);
        } else names.set(p.name, i);
      });
    }
  },
});

/** The `Service` kind. */
export const Service = defineKind({
  kind: "Service",
  apiVersions: ["v1"],
  namespaced: true,
  specRequired: true,
  doc: "A service: hostname `<name>.<namespace>.svc.<dnsSuffix>`, a VIP, and ports, in front of " +
    "the WorkloadEntries its selector picks. Label `istio.io/use-waypoint` routes it through a waypoint.",
  spec: serviceSpec,
  references: (res) => useWaypointReferences(res.metadata.labels, res.metadata.namespace!),
  example: `apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: shop
spec:
  selector:
    app: reviews
  ports:
  - name: http
    port: 9080
    targetPort: 9080
    appProtocol: http`,
});
