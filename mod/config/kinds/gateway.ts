/**
 * `Gateway` (gateway.networking.k8s.io/v1) of class `istio-waypoint`: a
 * waypoint. ambit runs waypoints only; other gateway classes are refused.
 *
 * @module
 */
import { dnsSubdomain, hostname, ip, labelKey, labels } from "../formats.ts";
import { defineKind, type Reference } from "../kind.ts";
import {
  def,
  list,
  nested,
  obj,
  oneOf,
  opt,
  type Path,
  port,
  type Reporter,
  req,
  str,
  unsupported,
} from "../schema.ts";
import { GATEWAY_API, GATEWAY_GROUP, sectionName } from "./gateway_common.ts";

/** The one gateway class ambit serves. */
export const WAYPOINT_CLASS = "istio-waypoint";
/** Label saying which traffic a waypoint handles. */
export const WAYPOINT_FOR_LABEL = "istio.io/waypoint-for";
/** Values of {@link WAYPOINT_FOR_LABEL}, as Istio defines them; absent means `service`. */
export const WAYPOINT_FOR = ["service", "workload", "all", "none"] as const;
/** ambit annotation naming the Node that runs a waypoint. */
export const NODE_ANNOTATION = "ambit.io/node";

/** A Kubernetes LabelSelector (here: which namespaces' routes may attach). */
const labelSelector = obj({
  matchLabels: opt(labels(), "Labels a namespace must all carry."),
  matchExpressions: opt(
    list(
      obj({
        key: req(labelKey(), "Label key."),
        operator: req(oneOf(["In", "NotIn", "Exists", "DoesNotExist"]), "How the key is tested."),
        values: opt(list(str()), "Values, for In and NotIn."),
      }, {
        title: "LabelSelectorRequirement",
        refine(e, at, r) {
          const takesValues = e.operator === "In" || e.operator === "NotIn";
          if (takesValues && !e.values?.length) {
            r.error([...at, "values"], `operator ${e.operator} needs at least one value`);
          } else if (!takesValues && e.values?.length) {
            r.error([...at, "values"], `operator ${e.operator} takes no values`);
          }
        },
      }),
    ),
    "Label requirements a namespace must all meet.",
  ),
}, { title: "LabelSelector", doc: "Selects namespaces by their labels; all terms must hold." });

const ROUTE_KINDS = ["HTTPRoute", "GRPCRoute"];

const allowedRoutes = obj({
  namespaces: nested(
    obj({
      from: def(
        oneOf(["Same", "All", "Selector"]),
        "Same",
        "Namespaces whose routes may attach: the Gateway's (Same), All, or those `selector` picks.",
      ),
      selector: opt(labelSelector, "With from: Selector, the namespaces whose routes may attach."),
    }, {
      title: "RouteNamespaces",
      refine(n, at, r) {
        if (n.from === "Selector" && n.selector === undefined) {
          r.error([...at, "selector"], 'from: Selector needs "selector"');
        }
      },
    }),
    "Which namespaces' routes may attach to the Gateway itself.",
  ),
  kinds: opt(
    list(
      obj({
        group: def(str({ name: "API group" }), GATEWAY_GROUP, "API group of the route kind."),
        kind: req(str({ name: "kind" }), "Route kind: HTTPRoute or GRPCRoute."),
      }, {
        title: "RouteGroupKind",
        refine(k, at, r) {
          if (k.group !== GATEWAY_GROUP || !ROUTE_KINDS.includes(k.kind)) {
            r.error(
              [...at, "kind"],
              `route kind "${k.kind}" (group "${k.group}") is not served by ambit's waypoints`,
              `allow HTTPRoute or GRPCRoute of group ${GATEWAY_GROUP}`,
            );
          }
        },
      }),
      { maxItems: 8 },
    ),
    "Route kinds that may attach; default HTTPRoute and GRPCRoute.",
  ),
}, { title: "AllowedRoutes", doc: "Routes that may attach to the Gateway itself." });

const listener = obj({
  name: req(sectionName("listener name"), "Listener name, unique in the Gateway."),
  hostname: opt(hostname({ wildcard: true }), "Not used by an HBONE listener."),
  port: req(
    port(),
    "Port the HBONE listener binds on the waypoint's address: 15008 as in Istio, or another " +
      "port when the waypoint shares its node's address (where the ztunnel holds 15008).",
  ),
  protocol: req(
    str({
      name: "protocol",
      minLength: 1,
      maxLength: 255,
      validate: (s) => s === "HBONE" ? undefined : `protocol "${s}" is not served by a waypoint`,
      hint: 'use HBONE: Istio waypoints expect one listener, port 15008, protocol "HBONE"',
    }),
    "HBONE: a waypoint receives mesh traffic in HBONE tunnels.",
  ),
  tls: unsupported(
    "waypoints terminate HBONE, mutual TLS with mesh identities, not listener TLS",
  ),
  allowedRoutes: nested(
    allowedRoutes,
    "Routes that may attach to the Gateway itself (parentRef kind Gateway); mesh routes attach " +
      "to Services instead.",
  ),
}, { title: "Listener", doc: "The waypoint's HBONE listener." });

const address = obj({
  type: def(
    str({
      name: "address type",
      minLength: 1,
      maxLength: 253,
      validate: (s) =>
        s === "IPAddress" ? undefined : `address type "${s}" is not supported by ambit`,
      hint: "the HBONE listener binds an IP address: use type IPAddress",
    }),
    "IPAddress",
    "IPAddress (the only type ambit supports).",
  ),
  value: req(
    str({ name: "address", minLength: 1, maxLength: 253 }),
    "The IP address the waypoint's HBONE listener binds, on its node.",
  ),
}, {
  title: "GatewaySpecAddress",
  // Checked here, not as the field's type, so a wrong `type` is reported alone.
  refine: (a, at, r) => void ip().check(a.value, [...at, "value"], r),
});

/** The one-item rule for listeners and addresses, with a message saying why. */
function one(what: string, why: string) {
  return (items: readonly unknown[], at: Path, r: Reporter) => {
    if (items.length > 1) {
      r.error([...at, 1], `a waypoint has one ${what}`, why);
    }
  };
}

/** Schema of `Gateway.spec`. */
export const gatewaySpec = obj({
  gatewayClassName: req(
    str({
      name: "gateway class",
      minLength: 1,
      maxLength: 253,
      validate: (s) =>
        s === WAYPOINT_CLASS
          ? undefined
          : `gateway class "${s}" is not served: ambit runs only waypoints`,
      hint: `use gatewayClassName: ${WAYPOINT_CLASS}`,
    }),
    `Must be ${WAYPOINT_CLASS}: ambit runs waypoints, not ingress or east-west gateways.`,
  ),
  listeners: req(
    list(listener, {
      minItems: 1,
      maxItems: 64,
      uniqueBy: (l) => l.name,
      uniqueWhat: "listener name",
    }),
    "The waypoint's listener: exactly one, protocol HBONE.",
  ),
  addresses: opt(
    list(address, { maxItems: 16 }),
    "The waypoint's address, where its HBONE listener runs (at most one). Default: its node's address.",
  ),
  infrastructure: unsupported(
    "ambit deploys nothing for a waypoint; run 'ambit waypoint' on its node",
  ),
  allowedListeners: unsupported("ambit has no ListenerSets"),
  tls: unsupported("waypoints use mesh mutual TLS; there is no gateway TLS to configure"),
  defaultScope: unsupported("ambit routes attach by parentRefs only"),
}, {
  title: "GatewaySpec",
  refine(spec, at, r) {
    one("listener", "ambit serves a single HBONE listener per waypoint, as Istio does")(
      spec.listeners,
      [...at, "listeners"],
      r,
    );
    if (spec.addresses) {
      one("address", "its HBONE listener binds one address")(
        spec.addresses,
        [...at, "addresses"],
        r,
      );
    }
  },
});

/** The `Gateway` kind. */
export const Gateway = defineKind({
  kind: "Gateway",
  apiVersions: GATEWAY_API,
  namespaced: true,
  specRequired: true,
  doc: `A waypoint: a Gateway of class \`${WAYPOINT_CLASS}\` with one HBONE listener. Label ` +
    `\`${WAYPOINT_FOR_LABEL}\` (${WAYPOINT_FOR.join(" | ")}; default service, as in Istio) says ` +
    `which traffic it handles. Annotation \`${NODE_ANNOTATION}: <node>\` names the Node that runs ` +
    "it; without it, the Node whose address equals `spec.addresses[0].value` does (one of the two " +
    "is required). It listens on `spec.addresses[0].value` (default: its node's address) at the " +
    "listener's port. Its identity is spiffe://<trustDomain>/ns/<namespace>/sa/<name>.",
  spec: gatewaySpec,
  check(res, r) {
    const forValue = res.metadata.labels[WAYPOINT_FOR_LABEL];
    if (forValue !== undefined && !(WAYPOINT_FOR as readonly string[]).includes(forValue)) {
      r.error(
        ["metadata", "labels", WAYPOINT_FOR_LABEL],
        `"${forValue}" is not one of ${WAYPOINT_FOR.join(", ")}`,
      );
    }
    const node = res.metadata.annotations[NODE_ANNOTATION];
    if (node !== undefined) {
      dnsSubdomain("Node name").check(node, ["metadata", "annotations", NODE_ANNOTATION], r);
    } else if (res.spec.addresses === undefined || res.spec.addresses.length === 0) {
      r.error(
        ["metadata"],
        `a waypoint needs annotation ${NODE_ANNOTATION} or spec.addresses`,
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
