/**
 * `Gateway` (gateway.networking.k8s.io/v1) of class `istio-waypoint`: a
 * waypoint. ambit runs waypoints only; other gateway classes are refused.
 *
 * @module
 */
import { hostname, ip } from "../formats.ts";
import { defineKind, type Reference } from "../kind.ts";
import { def, list, obj, oneOf, opt, port, req, str, unsupported } from "../schema.ts";
import { dnsLabel } from "../formats.ts";
import { GATEWAY_API } from "./gateway_common.ts";

/** Label saying which traffic a waypoint handles. */
export const WAYPOINT_FOR_LABEL = "istio.io/waypoint-for";
/** ambit annotation naming the Node that runs a waypoint. */
export const NODE_ANNOTATION = "ambit.io/node";

/** Schema of `Gateway.spec`. */
export const gatewaySpec = obj({
  gatewayClassName: req(
    str({
      name: "gateway class",
      validate: (s) =>
        s === "istio-waypoint"
          ? undefined
          : `gateway class "${s}" is not served: ambit runs only waypoints`,
    }),
    "Must be istio-waypoint.",
  ),
  listeners: def(
    list(
      obj({
        name: req(dnsLabel("listener name"), "Listener name."),
        port: req(port(), "Port; 15008 for HBONE."),
        protocol: req(oneOf(["HBONE"]), "HBONE: waypoints receive mesh traffic in HBONE tunnels."),
        hostname: opt(hostname({ wildcard: true }), "Ignored for HBONE listeners."),
        allowedRoutes: opt(
          obj({
            namespaces: opt(
              obj({
                from: def(oneOf(["Same", "All"]), "Same", "Namespaces whose routes may attach."),
                selector: unsupported("select namespaces with from: All or Same"),
              }, { title: "RouteNamespaces" }),
              "Which namespaces' routes may attach.",
            ),
            kinds: unsupported("HTTPRoute and GRPCRoute are always allowed"),
          }, { title: "AllowedRoutes" }),
          "Routes allowed to attach.",
        ),
        tls: unsupported(
          "waypoints terminate HBONE (mutual TLS with mesh identities), not listener TLS",
        ),
      }, { title: "Listener" }),
      { minItems: 1, maxItems: 64, uniqueBy: (l) => l.name, uniqueWhat: "listener name" },
    ),
    [{ name: "mesh", port: 15008, protocol: "HBONE" }],
    "Listeners; a waypoint has one HBONE listener on 15008.",
  ),
  addresses: opt(
    list(
      obj({
        type: def(oneOf(["IPAddress"]), "IPAddress", "Only IPAddress."),
        value: req(ip(), "Address the waypoint's HBONE listener binds (on its node)."),
      }, { title: "GatewayAddress" }),
      { maxItems: 1 },
    ),
    "The waypoint's address. Default: its node's address (then its port must not clash with the node's ztunnel).",
  ),
  infrastructure: unsupported("ambit does not deploy waypoints; run 'ambit waypoint' on the node"),
}, { title: "GatewaySpec" });

/** The `Gateway` kind. */
export const Gateway = defineKind({
  kind: "Gateway",
  apiVersions: GATEWAY_API,
  namespaced: true,
  specRequired: true,
  doc: "A waypoint: a Gateway of class `istio-waypoint`. Label `istio.io/waypoint-for` " +
    "(service | workload | all | none; default service) says which traffic it handles. Annotation " +
    "`ambit.io/node: <node>` names the Node that runs it; without it, the Node whose address equals " +
    "`spec.addresses[0].value` does. Its identity is spiffe://<td>/ns/<namespace>/sa/<name>.",
  spec: gatewaySpec,
  check(res, r) {
    const v = res.metadata.labels[WAYPOINT_FOR_LABEL];
    if (v !== undefined && !["service", "workload", "all", "none"].includes(v)) {
      r.error(
        ["metadata", "labels", WAYPOINT_FOR_LABEL],
        `"${v}" is not one of service, workload, all, none`,
      );
    }
    if (
      res.spec.addresses === undefined && res.metadata.annotations[NODE_ANNOTATION] === undefined
    ) {
      r.error(
        ["metadata"],
        "a waypoint needs annotation ambit.io/node or spec.addresses",
        "say which Node runs it",
      );
    }
  },
  references(res): Reference[] {
    const node = res.metadata.annotations[NODE_ANNOTATION];
    return node === undefined
      ? []
      : [{ path: ["metadata", "annotations", NODE_ANNOTATION], kinds: ["Node"], name: node }];
  },
  example: `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: shop
  labels:
    istio.io/waypoint-for: service
  annotations:
    ambit.io/node: node-b
spec:
  gatewayClassName: istio-waypoint
  addresses:
  - value: 10.0.0.12
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE`,
});
