/**
 * Pieces shared by Istio's policy kinds: ISTIO_SECURITY apiVersions and the
 * policy target reference.
 *
 * @module
 */
import { dnsLabel, dnsSubdomain } from "../formats.ts";
import type { Reference } from "../kind.ts";
import { def, obj, oneOf, opt, type Path, type Reporter, req, str } from "../schema.ts";

/** Versions of Istio's security API that ambit reads. */
export const ISTIO_SECURITY = ["security.istio.io/v1", "security.istio.io/v1beta1"];

const GROUP_OF: Record<string, string> = {
  Gateway: "gateway.networking.k8s.io",
  Service: "",
  ServiceEntry: "networking.istio.io",
};

/** `targetRef` / `targetRefs[]` (PolicyTargetReference). */
export const policyTargetReference = obj({
  group: opt(
    str({ name: "group" }),
    'API group: gateway.networking.k8s.io (Gateway), "" (Service), networking.istio.io (ServiceEntry).',
  ),
  kind: req(
    oneOf(["Gateway", "Service", "ServiceEntry"]),
    "Kind of the target (GatewayClass targets are not supported).",
  ),
  name: req(dnsSubdomain(), "Name of the target."),
  namespace: opt(dnsLabel("namespace"), "Must be the policy's own namespace when given."),
}, {
  title: "PolicyTargetReference",
  refine(t, at, r) {
    const want = GROUP_OF[t.kind];
    if (t.group !== undefined && t.group !== want) {
      r.error([...at, "group"], `group must be "${want}" for kind ${t.kind}, got "${t.group}"`);
    }
  },
});

/** The checked shape of a target reference. */
export interface TargetRef {
  group?: string;
  kind: "Gateway" | "Service" | "ServiceEntry";
  name: string;
  namespace?: string;
}

/** Checks selector / targetRef / targetRefs exclusivity and same-namespace targets. */
export function checkTargeting(
  spec: { selector?: unknown; targetRef?: TargetRef; targetRefs?: TargetRef[] },
  ns: string,
  r: Reporter,
): void {
  const at: Path = ["spec"];
  if (spec.selector !== undefined && (spec.targetRef || spec.targetRefs)) {
    r.error(
      [...at, spec.targetRef ? "targetRef" : "targetRefs"],
      "selector and targetRef(s) cannot both be set",
    );
  }
  if (spec.targetRef && spec.targetRefs) {
    r.error([...at, "targetRefs"], "targetRef and targetRefs cannot both be set");
  }
  const refs = spec.targetRef
    ? [["targetRef", spec.targetRef] as const]
    : (spec.targetRefs ?? []).map((t, i) => [i, t] as const);
  for (const [key, t] of refs) {
    if (t.namespace !== undefined && t.namespace !== ns) {
      const path = typeof key === "number"
        ? [...at, "targetRefs", key, "namespace"]
        : [...at, "targetRef", "namespace"];
      r.error(
        path,
        `targetRef namespace "${t.namespace}" differs from the policy's "${ns}"`,
        "a policy may only target resources in its own namespace",
      );
    }
  }
}

/** References of targetRef(s). */
export function targetReferences(
  spec: { targetRef?: TargetRef; targetRefs?: TargetRef[] },
  ns: string,
): Reference[] {
  const out: Reference[] = [];
  if (spec.targetRef) {
    out.push({
      path: ["spec", "targetRef", "name"],
      kinds: [spec.targetRef.kind],
      namespace: ns,
      name: spec.targetRef.name,
    });
  }
  spec.targetRefs?.forEach((t, i) =>
    out.push({
      path: ["spec", "targetRefs", i, "name"],
      kinds: [t.kind],
      namespace: ns,
      name: t.name,
    })
  );
  return out;
}

/** mTLS mode of PeerAuthentication. */
export const mtlsMode = obj({
  mode: def(
    oneOf(["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]),
    "UNSET",
    "UNSET inherits from the parent scope (namespace, then mesh); the mesh default is PERMISSIVE, as Istio's.",
  ),
}, { title: "MutualTLS" });
