/**
 * `Namespace` (v1): enrolment in the ambient mesh is a label on it.
 *
 * @module
 */
import { defineKind, type Reference } from "../kind.ts";

/** Label that enrolls a namespace (value `ambient`) or a workload out of it (value `none`). */
export const DATAPLANE_MODE_LABEL = "istio.io/dataplane-mode";
/** Label naming the waypoint (a Gateway in the same namespace) that serves a namespace or service. */
export const USE_WAYPOINT_LABEL = "istio.io/use-waypoint";
/** Label naming the namespace of the waypoint, when it is not the resource's own. */
export const USE_WAYPOINT_NAMESPACE_LABEL = "istio.io/use-waypoint-namespace";

/**
 * The reference an `istio.io/use-waypoint` label makes (to a Gateway in
 * `defaultNamespace` unless `istio.io/use-waypoint-namespace` says otherwise);
 * none for `none` or no label.
 */
export function useWaypointReferences(
  labels: Readonly<Record<string, string>>,
  defaultNamespace: string,
): Reference[] {
  const wp = labels[USE_WAYPOINT_LABEL];
  if (wp === undefined || wp === "none") return [];
  return [{
    path: ["metadata", "labels", USE_WAYPOINT_LABEL],
    kinds: ["Gateway"],
    namespace: labels[USE_WAYPOINT_NAMESPACE_LABEL] ?? defaultNamespace,
    name: wp,
  }];
}

/** The `Namespace` kind. */
export const Namespace = defineKind<undefined>({
  kind: "Namespace",
  apiVersions: ["v1"],
  namespaced: false,
  doc: "A namespace. Label `istio.io/dataplane-mode: ambient` enrolls its workloads in the mesh; " +
    "`istio.io/use-waypoint: <gateway>` sends traffic to its services through that waypoint " +
    "(`istio.io/use-waypoint-namespace` when the waypoint lives elsewhere). Changing a label takes " +
    "effect on reload without restarting anything. A Namespace has no spec.",
  references: (res) => useWaypointReferences(res.metadata.labels, res.metadata.name),
  example: `apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    istio.io/dataplane-mode: ambient`,
});
