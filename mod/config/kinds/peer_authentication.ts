/**
 * `PeerAuthentication` (security.istio.io/v1): whether plaintext is accepted
 * (PERMISSIVE) or only mutual TLS (STRICT). Workload > namespace > mesh.
 *
 * @module
 */
import { workloadSelector } from "../formats.ts";
import { defineKind } from "../kind.ts";
import { map, nested, obj, opt, portString } from "../schema.ts";
import { ISTIO_SECURITY, mtlsMode } from "./policy_common.ts";

/** Schema of `PeerAuthentication.spec`. */
export const peerAuthenticationSpec = obj({
  selector: opt(
    workloadSelector(),
    "Workloads it applies to; absent: the namespace (or the mesh, in the root namespace).",
  ),
  mtls: nested(mtlsMode, "Mode for all ports."),
  portLevelMtls: opt(map(mtlsMode, portString()), "Mode per workload port (needs a selector)."),
}, {
  title: "PeerAuthenticationSpec",
  refine(s, at, r) {
    if (s.portLevelMtls && !s.selector) {
      r.error([...at, "portLevelMtls"], "portLevelMtls needs a selector", "as upstream");
    }
  },
});

/** The `PeerAuthentication` kind. */
export const PeerAuthentication = defineKind({
  kind: "PeerAuthentication",
  apiVersions: ISTIO_SECURITY,
  namespaced: true,
  doc: "Mutual TLS mode. STRICT: a ztunnel refuses plaintext inbound (port 15006); PERMISSIVE " +
    "accepts it. The most specific policy wins: workload (selector), then namespace, then mesh (root namespace).",
  spec: peerAuthenticationSpec,
  example: `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT`,
});
