/**
 * Which targetRef policies a waypoint applies to one service's traffic,
 * shared by AuthorizationPolicy (`l7_authz.ts`) and RequestAuthentication
 * (`jwt.ts`).
 *
 * As istiod does for a waypoint: a policy whose targetRefs name the waypoint
 * (kind Gateway) applies to all traffic through it; a policy naming a Service
 * or ServiceEntry applies to traffic for that service, and only at the
 * waypoint the service is bound to (`istio.io/use-waypoint` on the service or
 * its namespace). Selector and namespace-wide policies are for ztunnels.
 *
 * @module
 */
import type { Resource } from "../config/kind.ts";
import type { PolicyIndex, Snapshot } from "../config/snapshot.ts";

const USE_WAYPOINT = "istio.io/use-waypoint";
const USE_WAYPOINT_NAMESPACE = "istio.io/use-waypoint-namespace";

/** A service named as a targetRef can name it: kind, namespace, name. */
export interface ServiceTarget {
  readonly kind: "Service" | "ServiceEntry";
  readonly namespace: string;
  readonly name: string;
}

/**
 * Parses a service key: `namespace/name` (a Service, or a ServiceEntry when
 * no Service has that key), or explicit `Service/namespace/name` /
 * `ServiceEntry/namespace/name`.
 *
 * @example
 * parseServiceKey(snapshot, "shop/reviews"); // { kind: "Service", namespace: "shop", name: "reviews" }
 */
export function parseServiceKey(s: Snapshot, serviceKey: string): ServiceTarget {
  const parts = serviceKey.split("/");
  if (parts.length === 3 && (parts[0] === "Service" || parts[0] === "ServiceEntry")) {
    return { kind: parts[0], namespace: parts[1], name: parts[2] };
  }
  if (parts.length !== 2 || parts[0] === "" || parts[1] === "") {
    throw new TypeError(
      `service key "${serviceKey}" is not namespace/name, Service/namespace/name or ServiceEntry/namespace/name`,
    );
  }
  const [namespace, name] = parts;
  if (!s.services.has(serviceKey) && findServiceEntry(s, namespace, name)) {
    return { kind: "ServiceEntry", namespace, name };
  }
  return { kind: "Service", namespace, name };
}

function findServiceEntry(s: Snapshot, ns: string, name: string): Resource | undefined {
  return s.serviceEntries.find((r) => r.metadata.namespace === ns && r.metadata.name === name);
}

/** The waypoint (`namespace/name`) a service's traffic goes through, if any. */
export function waypointOfService(s: Snapshot, t: ServiceTarget): string | undefined {
  if (t.kind === "Service") return s.services.get(`${t.namespace}/${t.name}`)?.waypoint;
  const se = findServiceEntry(s, t.namespace, t.name);
  if (!se) return undefined;
  const own = se.metadata.labels?.[USE_WAYPOINT];
  if (own === "none") return undefined;
  if (own) return `${se.metadata.labels?.[USE_WAYPOINT_NAMESPACE] ?? t.namespace}/${own}`;
  return s.namespaces.get(t.namespace)?.waypoint;
}

/**
 * The policies of `index` a waypoint applies to traffic for `serviceKey`:
 * those targeting the waypoint (Gateway `waypointKey`), then those targeting
 * the service when the service is bound to that waypoint. Each once, in
 * config order within each group.
 */
export function targetedPolicies(
  s: Snapshot,
  index: PolicyIndex,
  serviceKey: string,
  waypointKey: string,
): readonly Resource[] {
  const out: Resource[] = [...(index.byTarget.get(`Gateway/${waypointKey}`) ?? [])];
  const t = parseServiceKey(s, serviceKey);
  if (waypointOfService(s, t) === waypointKey) {
    for (const r of index.byTarget.get(`${t.kind}/${t.namespace}/${t.name}`) ?? []) {
      if (!out.includes(r)) out.push(r);
    }
  }
  return out;
}
