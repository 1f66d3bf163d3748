/**
 * `WorkloadEntry` (networking.istio.io/v1): a process on a host that joins the
 * mesh. ambit adds `node` (which host runs it) and `user` (the OS user that
 * runs it, for attributing outbound connections).
 *
 * @module
 */
import { ip, labels } from "../formats.ts";
import { bool, def, int, INVALID, map, obj, opt, port, str, type Type } from "../schema.ts";
import { defineKind, type Reference } from "../kind.ts";
import { useWaypointReferences } from "./namespace.ts";

/** Versions of Istio's networking API that ambit reads. */
export const ISTIO_NETWORKING = [
  "networking.istio.io/v1",
  "networking.istio.io/v1beta1",
  "networking.istio.io/v1alpha3",
];

/** An OS user: a name or a numeric uid. */
function osUser(): Type<string | number> {
  return {
    name: "user name or uid",
    check(value, at, r) {
      if (typeof value === "number" && Number.isInteger(value) && value >= 0) return value;
      if (typeof value === "string" && /^[a-z_][a-z0-9_-]*\$?$/i.test(value)) return value;
      r.error(at, `${JSON.stringify(value)} is not a user name or uid`, "e.g. www-data or 1001");
      return INVALID;
    },
  };
}

const portName = str({
  name: "port name",
  validate: (
    s,
  ) => (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(s) && s.length <= 63
    ? undefined
    : `"${s}" is not a valid port name`),
});

/** Schema of `WorkloadEntry.spec`. */
export const workloadEntrySpec = obj({
  address: opt(
    ip(),
    "Address the workload listens on, on its node (e.g. 127.0.0.1 or the host's IP). Peers put it in the HBONE :authority. Defaults to the node's address.",
  ),
  ports: opt(
    map(port(), portName),
    "Named ports: a Service port whose targetPort is a name uses the number given here.",
  ),
  labels: def(
    labels(),
    {},
    "Labels Services and policies select this workload by. `istio.io/dataplane-mode: none` opts it out of the mesh.",
  ),
  serviceAccount: def(
    str({
      name: "service account",
      validate: (s) =>
        /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(s) && s.length <= 253
          ? undefined
          : `"${s}" is not a valid service account name`,
    }),
    "default",
    "Identity: spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount>.",
  ),
  locality: opt(str({ name: "locality" }), "region/zone/subzone; defaults to the node's."),
  weight: opt(
    int({ min: 0, max: 4294967295 }),
    "Load-balancing weight among a service's endpoints (default 1). ambit: 0 takes the endpoint out of rotation (Istio reads 0 as unset, i.e. 1).",
  ),
  network: opt(str(), "Istio network name. ambit has one flat network; only informational."),
  node: opt(
    str({ name: "node name" }),
    "ambit: the Node this workload runs on. May be left out when the config has exactly one Node.",
  ),
  user: opt(
    osUser(),
    "ambit: the local OS user that runs the workload. With several workloads on one node, outbound connections are attributed to a workload by the user owning the socket.",
  ),
  proxyProtocol: def(
    bool(),
    false,
    "ambit: prefix inbound connections with a PROXY protocol v2 header (client address, and the source SPIFFE ID in TLV 0xD0). Only for apps that parse it.",
  ),
}, { title: "WorkloadEntrySpec", doc: "A workload process on a node." });

/** The `WorkloadEntry` kind. */
export const WorkloadEntry = defineKind({
  kind: "WorkloadEntry",
  apiVersions: ISTIO_NETWORKING,
  namespaced: true,
  specRequired: true,
  doc: "A workload: a process on a host (a VM, a container, a service under systemd) that gets a " +
    "mesh identity. ambit adds `spec.node` and `spec.user`.",
  spec: workloadEntrySpec,
  references(res) {
    const refs: Reference[] = [];
    if (res.spec.node !== undefined) {
      refs.push({ path: ["spec", "node"], kinds: ["Node"], name: res.spec.node });
    }
    return [...refs, ...useWaypointReferences(res.metadata.labels, res.metadata.namespace!)];
  },
  example: `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: reviews-v1
  namespace: shop
  labels:
    app: reviews
spec:
  node: node-a
  address: 127.0.0.1
  serviceAccount: reviews
  labels:
    app: reviews
    version: v1`,
});
