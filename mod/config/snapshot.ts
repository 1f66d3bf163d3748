/**
 * The compiled mesh config: one immutable, indexed snapshot that the data
 * plane reads. Built from checked resources by {@link buildSnapshot}, a pure
 * function; every later decision (routing, policy) reads only this.
 *
 * @module
 */
import { at, displayName, type LineLookup, type ResourceIndex, resourceKey } from "./crossref.ts";
import { bigIntToIpv4, canonicalIp, parseCidr } from "./formats.ts";
import type { Resource } from "./kind.ts";
import { routeExtensionRefs, type RuleLike } from "./kinds/gateway_common.ts";
import { meshSpec } from "./kinds/mesh.ts";
import {
  DATAPLANE_MODE_LABEL,
  USE_WAYPOINT_LABEL,
  USE_WAYPOINT_NAMESPACE_LABEL,
} from "./kinds/namespace.ts";
import type { ConfigIssue } from "./load.ts";
import { type Infer, INVALID, Reporter } from "./schema.ts";
import type { HttpFaultSpec } from "./kinds/http_fault.ts";
import type { LocalRateLimitSpec } from "./kinds/local_rate_limit.ts";
import type { nodeSpec } from "./kinds/mesh.ts";
import type { serviceSpec } from "./kinds/service.ts";
import type { workloadEntrySpec } from "./kinds/workload_entry.ts";

export type { HttpFaultSpec } from "./kinds/http_fault.ts";
export type { LocalRateLimitSpec } from "./kinds/local_rate_limit.ts";

/** Checked `Mesh.spec` with defaults. */
export type MeshSpec = Infer<typeof meshSpec>;

/** A host running a ztunnel. */
export interface NodeInfo {
  readonly name: string;
  readonly address: string;
  readonly hostname?: string;
  readonly locality?: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Outbound listeners: VIP capture and explicit local ports. */
  readonly outbound: {
    readonly vips: boolean;
    readonly ports: readonly { service: string; port: number; listen: string }[];
  };
}

/** A namespace and what its labels say. */
export interface NamespaceInfo {
  readonly name: string;
  /** Enrolled with `istio.io/dataplane-mode: ambient`. */
  readonly ambient: boolean;
  /** Waypoint from `istio.io/use-waypoint`, as `namespace/name`. */
  readonly waypoint?: string;
  readonly labels: Readonly<Record<string, string>>;
  /** False when only used by resources, with no Namespace resource. */
  readonly declared: boolean;
}

/** A workload (from a WorkloadEntry) with its identity and placement resolved. */
export interface Workload {
  /** `namespace/name`. */
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  readonly node: string;
  readonly address: string;
  readonly ports: Readonly<Record<string, number>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  /** `spiffe://<td>/ns/<ns>/sa/<sa>`. */
  readonly identity: string;
  readonly user?: string | number;
  /** Inbound connections start with a PROXY protocol v2 header. */
  readonly proxyProtocol: boolean;
  readonly locality?: string;
  readonly weight: number;
  /** In the mesh: its namespace is ambient and it did not opt out. */
  readonly enrolled: boolean;
  /** Waypoint for traffic addressed to this workload, as `namespace/name`. */
  readonly waypoint?: string;
  /** Keys (`namespace/name`) of the services that select it. */
  readonly services: readonly string[];
}

/** One port of a service, with its target resolved per endpoint. */
export interface ServicePortInfo {
  readonly name?: string;
  readonly port: number;
  readonly targetPort: number | string;
  readonly appProtocol?: string;
}

/** An endpoint of a service: a workload and the port each service port maps to. */
export interface Endpoint {
  readonly workload: string;
  readonly node: string;
  readonly address: string;
  /** Service port → workload port. A port whose named target the workload lacks is absent. */
  readonly ports: Readonly<Record<number, number>>;
  readonly weight: number;
}

/** A service with its VIP, hostname and endpoints. */
export interface ServiceInfo {
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  /** `<name>.<namespace>.svc.<dnsSuffix>`. */
  readonly hostname: string;
  readonly vip: string;
  /** Whether the VIP was assigned from the mesh range (not written in the config). */
  readonly vipAssigned: boolean;
  readonly ports: readonly ServicePortInfo[];
  readonly endpoints: readonly Endpoint[];
  readonly waypoint?: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** A waypoint (Gateway of class istio-waypoint). */
export interface WaypointInfo {
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  readonly node: string;
  readonly address: string;
  readonly port: number;
  /** `istio.io/waypoint-for`: service | workload | all | none. */
  readonly for: string;
  /** Waypoints run as service account `<gateway name>`, as Istio's do. */
  readonly identity: string;
}

/** Policies of one kind, indexed by what they apply to. */
export interface PolicyIndex {
  /** All policies of the kind. */
  readonly all: readonly Resource[];
  /** By namespace (the root namespace's are mesh-wide). */
  readonly byNamespace: ReadonlyMap<string, readonly Resource[]>;
  /** By targetRef: `Kind/namespace/name`. */
  readonly byTarget: ReadonlyMap<string, readonly Resource[]>;
}

/** The compiled mesh config. */
export interface Snapshot {
  readonly mesh: MeshSpec;
  readonly resources: readonly Resource[];
  readonly nodes: ReadonlyMap<string, NodeInfo>;
  readonly namespaces: ReadonlyMap<string, NamespaceInfo>;
  readonly workloads: ReadonlyMap<string, Workload>;
  readonly workloadsByNode: ReadonlyMap<string, readonly Workload[]>;
  /** node → address → workloads at that address (several may share a host address). */
  readonly workloadsByAddress: ReadonlyMap<string, ReadonlyMap<string, readonly Workload[]>>;
  readonly workloadsByIdentity: ReadonlyMap<string, readonly Workload[]>;
  readonly services: ReadonlyMap<string, ServiceInfo>;
  readonly servicesByVip: ReadonlyMap<string, ServiceInfo>;
  readonly servicesByHost: ReadonlyMap<string, ServiceInfo>;
  readonly serviceEntries: readonly Resource[];
  readonly waypoints: ReadonlyMap<string, WaypointInfo>;
  readonly authorizationPolicies: PolicyIndex;
  readonly peerAuthentications: PolicyIndex;
  readonly requestAuthentications: PolicyIndex;
  /** DestinationRules by the FQDN of their host. */
  readonly destinationRules: ReadonlyMap<string, readonly Resource[]>;
  /** HTTPRoutes and GRPCRoutes by parent: `Service/ns/name` or `Gateway/ns/name`. */
  readonly routesByParent: ReadonlyMap<string, readonly Resource[]>;
  /** HTTPFaults by `namespace/name` (what a route's ExtensionRef filter names). */
  readonly faults: ReadonlyMap<string, Resource<HttpFaultSpec>>;
  /** LocalRateLimits by `namespace/name` (what a route's ExtensionRef filter names). */
  readonly rateLimits: ReadonlyMap<string, Resource<LocalRateLimitSpec>>;
  /**
   * LocalRateLimits with targetRefs, by the waypoint they apply to (`namespace/name`, the key
   * of `waypoints`), in name order: each applies to every request that waypoint serves.
   */
  readonly rateLimitsByWaypoint: ReadonlyMap<string, readonly Resource<LocalRateLimitSpec>[]>;
  /** Warnings found while compiling (errors stop compilation). */
  readonly warnings: readonly ConfigIssue[];
}

type NodeSpec = Infer<typeof nodeSpec>;
type ServiceSpec = Infer<typeof serviceSpec>;
type WorkloadEntrySpec = Infer<typeof workloadEntrySpec>;

/** Builds the snapshot from checked, cross-referenced resources; errors go to `issues`. */
export function buildSnapshot(
  index: ResourceIndex,
  issues: ConfigIssue[],
  lineOf: LineLookup,
): Snapshot | undefined {
  const before = issues.length;
  const all = [...index.values()];
  const ofKind = <S>(kind: string) => all.filter((r) => r.kind === kind) as Resource<S>[];
  const meshRes = ofKind<Snapshot["mesh"]>("Mesh")[0];
  const mesh = meshRes?.spec ?? defaultMesh();
  const warnings: ConfigIssue[] = [];
  const err = (res: Resource, path: (string | number)[], message: string, hint?: string) =>
    issues.push(at(res, path, lineOf, { message, hint }));
  const warn = (res: Resource, path: (string | number)[], message: string, hint?: string) =>
    warnings.push(at(res, path, lineOf, { message, hint, severity: "warning" }));

  // Nodes, with unique addresses.
  const nodes = new Map<string, NodeInfo>();
  const nodeByAddress = new Map<string, Resource>();
  for (const res of ofKind<NodeSpec>("Node")) {
    const address = canonicalIp(res.spec.address);
    const other = nodeByAddress.get(address);
    if (other) {
      err(
        res,
        ["spec", "address"],
        `address ${address} is already used by Node "${other.metadata.name}"`,
      );
    }
    nodeByAddress.set(address, res);
    nodes.set(res.metadata.name, {
      name: res.metadata.name,
      address,
      hostname: res.spec.hostname,
      locality: res.spec.locality,
      labels: res.metadata.labels,
      outbound: res.spec.outbound,
    });
  }

  // Namespaces, declared or only used.
  const namespaces = new Map<string, NamespaceInfo>();
  for (const res of ofKind("Namespace")) {
    const l = res.metadata.labels;
    const wp = l[USE_WAYPOINT_LABEL];
    namespaces.set(res.metadata.name, {
      name: res.metadata.name,
      ambient: l[DATAPLANE_MODE_LABEL] === "ambient",
      waypoint: wp && wp !== "none"
        ? `${l[USE_WAYPOINT_NAMESPACE_LABEL] ?? res.metadata.name}/${wp}`
        : undefined,
      labels: l,
      declared: true,
    });
  }
  const undeclaredWarned = new Set<string>();
  for (const res of all) {
    const ns = res.metadata.namespace;
    if (ns === undefined || namespaces.has(ns) || ns === mesh.rootNamespace) continue;
    if (res.kind === "WorkloadEntry" && !undeclaredWarned.has(ns)) {
      undeclaredWarned.add(ns);
      warn(
        res,
        ["metadata", "namespace"],
        `namespace "${ns}" has no Namespace resource, so its workloads are not in the mesh`,
        `add a Namespace "${ns}" with label ${DATAPLANE_MODE_LABEL}: ambient`,
      );
    }
  }
  const nsInfo = (ns: string): NamespaceInfo =>
    namespaces.get(ns) ?? { name: ns, ambient: false, labels: {}, declared: false };

  // Waypoints.
  const waypoints = new Map<string, WaypointInfo>();
  for (const res of ofKind<GatewayLike>("Gateway")) {
    if (res.spec.gatewayClassName !== "istio-waypoint") continue;
    const wp = compileWaypoint(res, mesh, nodes, nodeByAddress, err);
    if (wp) waypoints.set(wp.key, wp);
  }

  // Workloads.
  const onlyNode = nodes.size === 1 ? [...nodes.keys()][0] : undefined;
  const workloadRes = ofKind<WorkloadEntrySpec>("WorkloadEntry");
  const servicesRes = ofKind<ServiceSpec>("Service");
  const selecting = new Map<string, string[]>();
  const workloadsByNs = groupBy(workloadRes, (w) => w.metadata.namespace!);
  for (const svc of servicesRes) {
    const sel = svc.spec.selector;
    if (!sel || Object.keys(sel).length === 0) continue;
    for (const w of workloadsByNs.get(svc.metadata.namespace!) ?? []) {
      if (matches(sel, w.spec.labels)) {
        const key = displayName(w);
        const list = selecting.get(key);
        if (list) list.push(displayName(svc));
        else selecting.set(key, [displayName(svc)]);
      }
    }
  }
  const workloads = new Map<string, Workload>();
  for (const res of workloadRes) {
    const node = res.spec.node ?? onlyNode;
    if (node === undefined) {
      err(
        res,
        ["spec", "node"],
        nodes.size === 0
          ? "no Node is defined, so this workload has nowhere to run"
          : `missing "node": the config has ${nodes.size} Nodes`,
        nodes.size === 0
          ? "add a Node resource"
          : `one of ${[...nodes.keys()].slice(0, 5).join(", ")}`,
      );
      continue;
    }
    const nodeInfo = nodes.get(node);
    if (!nodeInfo) continue; // dangling reference already reported
    const ns = res.metadata.namespace!;
    const labels = { ...res.metadata.labels, ...res.spec.labels };
    const nsi = nsInfo(ns);
    const optedOut = labels[DATAPLANE_MODE_LABEL] === "none";
    const ownWp = labels[USE_WAYPOINT_LABEL];
    const key = displayName(res);
    workloads.set(key, {
      key,
      name: res.metadata.name,
      namespace: ns,
      node,
      address: canonicalIp(res.spec.address ?? nodeInfo.address),
      ports: res.spec.ports ?? {},
      labels,
      serviceAccount: res.spec.serviceAccount,
      identity: `spiffe://${mesh.trustDomain}/ns/${ns}/sa/${res.spec.serviceAccount}`,
      user: res.spec.user,
      proxyProtocol: res.spec.proxyProtocol,
      locality: res.spec.locality ?? nodeInfo.locality,
      weight: res.spec.weight ?? 1,
      enrolled: nsi.ambient && !optedOut,
      waypoint: ownWp === "none"
        ? undefined
        : ownWp
        ? `${labels[USE_WAYPOINT_NAMESPACE_LABEL] ?? ns}/${ownWp}`
        : undefined,
      services: selecting.get(key) ?? [],
    });
  }

  // Services, VIPs and endpoints.
  const services = compileServices(servicesRes, workloads, nodes, mesh, nsInfo, err, warn);

  // Claimed (node, address, port) triples must be unique.
  checkWorkloadPorts(workloadRes, workloads, services, err);

  const byNode = groupBy([...workloads.values()], (w) => w.node);
  const byAddress = new Map<string, Map<string, Workload[]>>();
  for (const w of workloads.values()) {
    let m = byAddress.get(w.node);
    if (!m) byAddress.set(w.node, m = new Map());
    m.set(w.address, [...(m.get(w.address) ?? []), w]);
  }

  // Destination rules by host FQDN.
  const destinationRules = new Map<string, Resource[]>();
  for (const res of ofKind<{ host: string }>("DestinationRule")) {
    const host = qualifyHost(res.spec.host, res.metadata.namespace!, mesh.dnsSuffix);
    destinationRules.set(host, [...(destinationRules.get(host) ?? []), res]);
    const known = [...services.values()].some((s) => s.hostname === host) ||
      ofKind<{ hosts: string[] }>("ServiceEntry").some((se) => se.spec.hosts.includes(host));
    if (!known && !host.includes("*")) {
      warn(
        res,
        ["spec", "host"],
        `host "${res.spec.host}" is not a Service or ServiceEntry host`,
        `it resolves to ${host}`,
      );
    }
  }

  // Routes by parent.
  const routesByParent = new Map<string, Resource[]>();
  for (const res of all.filter((r) => r.kind === "HTTPRoute" || r.kind === "GRPCRoute")) {
    const spec = res.spec as { parentRefs?: { kind?: string; namespace?: string; name: string }[] };
    for (const p of spec.parentRefs ?? []) {
      const key = resourceKey(p.kind ?? "Gateway", p.namespace ?? res.metadata.namespace, p.name);
      const list = routesByParent.get(key) ?? [];
      if (!list.includes(res)) list.push(res);
      routesByParent.set(key, list);
    }
  }

  // Filter extensions (HTTPFault, LocalRateLimit) and the routes that name them.
  const extensions = indexExtensions(ofKind("HTTPFault"), ofKind("LocalRateLimit"));
  checkExtensionUse(all, extensions, err, warn);

  if (issues.length > before) return undefined;
  return deepFreeze({
    mesh,
    resources: all,
    nodes,
    namespaces,
    workloads,
    workloadsByNode: byNode,
    workloadsByAddress: byAddress,
    workloadsByIdentity: groupBy([...workloads.values()], (w) => w.identity),
    services,
    servicesByVip: new Map([...services.values()].map((s) => [s.vip, s])),
    servicesByHost: new Map([...services.values()].map((s) => [s.hostname, s])),
    serviceEntries: ofKind("ServiceEntry"),
    waypoints,
    authorizationPolicies: indexPolicies(ofKind("AuthorizationPolicy")),
    peerAuthentications: indexPolicies(ofKind("PeerAuthentication")),
    requestAuthentications: indexPolicies(ofKind("RequestAuthentication")),
    destinationRules,
    routesByParent,
    ...extensions,
    warnings,
  });
}

/** The Mesh settings when the config has no Mesh resource. */
export function defaultMesh(): MeshSpec {
  const v = meshSpec.check({}, [], new Reporter());
  if (v === INVALID) throw new Error("internal: Mesh defaults do not check");
  return v;
}

type Report = (res: Resource, path: (string | number)[], message: string, hint?: string) => void;

interface GatewayLike {
  gatewayClassName: string;
  listeners?: { port?: number; protocol?: string }[];
  addresses?: { type?: string; value: string }[];
}

function compileWaypoint(
  res: Resource<GatewayLike>,
  mesh: MeshSpec,
  nodes: ReadonlyMap<string, NodeInfo>,
  nodeByAddress: ReadonlyMap<string, Resource>,
  err: Report,
): WaypointInfo | undefined {
  const ns = res.metadata.namespace!;
  const address = res.spec.addresses?.[0]?.value;
  const annotated = res.metadata.annotations["ambit.io/node"];
  let node: string | undefined = annotated;
  if (node === undefined && address !== undefined) {
    node = nodeByAddress.get(canonicalIp(address))?.metadata.name;
  }
  if (node === undefined) {
    err(
      res,
      ["metadata"],
      `cannot tell which Node runs waypoint "${ns}/${res.metadata.name}"`,
      "add annotation ambit.io/node: <node>, or set spec.addresses[0].value to a Node's address",
    );
    return undefined;
  }
  const nodeInfo = nodes.get(node);
  if (!nodeInfo) return undefined; // dangling ambit.io/node already reported
  const hbone = res.spec.listeners?.find((l) => l.protocol === "HBONE");
  return {
    key: `${ns}/${res.metadata.name}`,
    name: res.metadata.name,
    namespace: ns,
    node,
    address: canonicalIp(address ?? nodeInfo.address),
    port: hbone?.port ?? 15008,
    for: res.metadata.labels["istio.io/waypoint-for"] ?? "service",
    identity: `spiffe://${mesh.trustDomain}/ns/${ns}/sa/${res.metadata.name}`,
  };
}

function compileServices(
  servicesRes: readonly Resource<ServiceSpec>[],
  workloads: ReadonlyMap<string, Workload>,
  nodes: ReadonlyMap<string, NodeInfo>,
  mesh: MeshSpec,
  nsInfo: (ns: string) => NamespaceInfo,
  err: Report,
  warn: Report,
): Map<string, ServiceInfo> {
  const taken = new Map<string, string>(); // address → what uses it
  for (const n of nodes.values()) taken.set(n.address, `Node "${n.name}"`);
  for (const w of workloads.values()) {
    if (!taken.has(w.address)) taken.set(w.address, `WorkloadEntry "${w.key}"`);
  }
  // Explicit VIPs first, so assignment never takes one.
  const vips = new Map<string, string>();
  const sorted = [...servicesRes].sort((a, b) => displayName(a) < displayName(b) ? -1 : 1);
  for (const res of sorted) {
    if (!res.spec.clusterIP) continue;
    const vip = canonicalIp(res.spec.clusterIP);
    const owner = vips.get(vip) ?? taken.get(vip);
    if (owner) {
      err(
        res,
        ["spec", "clusterIP"],
        `VIP ${vip} is already used by ${owner}`,
        "give each Service its own clusterIP",
      );
      continue;
    }
    vips.set(vip, `Service "${displayName(res)}"`);
    taken.set(vip, `Service "${displayName(res)}"`);
  }
  const assign = vipAssigner(mesh.vipRange, taken);
  const selectedBy = new Map<string, Workload[]>();
  for (const w of workloads.values()) {
    for (const s of w.services) {
      const list = selectedBy.get(s);
      if (list) list.push(w);
      else selectedBy.set(s, [w]);
    }
  }
  const out = new Map<string, ServiceInfo>();
  for (const res of sorted) {
    const key = displayName(res);
    const ns = res.metadata.namespace!;
    let vip = res.spec.clusterIP ? canonicalIp(res.spec.clusterIP) : undefined;
    if (vip === undefined) {
      vip = assign(key);
      if (vip === undefined) {
        err(
          res,
          ["spec"],
          `no free VIP left in vipRange ${mesh.vipRange}`,
          "widen Mesh spec.vipRange or set clusterIP",
        );
        continue;
      }
    }
    const ports: ServicePortInfo[] = res.spec.ports.map((p) => ({
      name: p.name,
      port: p.port!,
      targetPort: p.targetPort ?? p.port!,
      appProtocol: p.appProtocol,
    }));
    const endpoints: Endpoint[] = [];
    const sel = res.spec.selector;
    if (sel && Object.keys(sel).length > 0) {
      for (const w of selectedBy.get(key) ?? []) {
        const map: Record<number, number> = {};
        ports.forEach((p, i) => {
          if (typeof p.targetPort === "number") map[p.port] = p.targetPort;
          else if (w.ports[p.targetPort] !== undefined) map[p.port] = w.ports[p.targetPort];
          else {
            warn(
              res,
              ["spec", "ports", i, "targetPort"],
              `WorkloadEntry "${w.key}" has no port named "${p.targetPort}"; it gets no traffic on port ${p.port}`,
              `add it under the WorkloadEntry's spec.ports`,
            );
          }
        });
        endpoints.push({
          workload: w.key,
          node: w.node,
          address: w.address,
          ports: map,
          weight: w.weight,
        });
      }
      if (endpoints.length === 0) {
        warn(
          res,
          ["spec", "selector"],
          `selector matches no WorkloadEntry in namespace "${ns}"`,
          "the service has no endpoints",
        );
      }
    }
    const own = res.metadata.labels[USE_WAYPOINT_LABEL];
    const waypoint = own === "none"
      ? undefined
      : own
      ? `${res.metadata.labels[USE_WAYPOINT_NAMESPACE_LABEL] ?? ns}/${own}`
      : nsInfo(ns).waypoint;
    out.set(key, {
      key,
      name: res.metadata.name,
      namespace: ns,
      hostname: `${res.metadata.name}.${ns}.svc.${mesh.dnsSuffix}`,
      vip,
      vipAssigned: res.spec.clusterIP === undefined,
      ports,
      endpoints,
      waypoint,
      labels: res.metadata.labels,
    });
  }
  return out;
}

/**
 * Returns a function that assigns VIPs from `range`: the address is picked by a
 * hash of the service key with linear probing, so a service keeps its VIP when
 * others are added or removed (unless they collide), and every node computes
 * the same assignment from the same config.
 */
export function vipAssigner(
  range: string,
  taken: Map<string, string>,
): (key: string) => string | undefined {
  const block = parseCidr(range)!;
  const bits = block.family === 4 ? 32 : 128;
  const hostBits = bits - block.prefix;
  // Keep the network address (and the v4 broadcast) out of the pool.
  const size = hostBits >= 32 ? 2n ** 32n : (1n << BigInt(hostBits));
  const usable = size > 2n ? size - 2n : size;
  return (key) => {
    const start = fnv1a(key) % usable;
    for (let i = 0n; i < usable && i < 1_000_000n; i++) {
      const offset = ((start + i) % usable) + (size > 2n ? 1n : 0n);
      const n = block.base + offset;
      const vip = block.family === 4 ? bigIntToIpv4(n) : canonicalIp(bigIntToIpv6(n));
      if (!taken.has(vip)) {
        taken.set(vip, `Service "${key}"`);
        return vip;
      }
    }
    return undefined;
  };
}

function bigIntToIpv6(n: bigint): string {
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  return groups.join(":");
}

function fnv1a(s: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const c of new TextEncoder().encode(s)) {
    h ^= BigInt(c);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

function checkWorkloadPorts(
  workloadRes: readonly Resource<WorkloadEntrySpec>[],
  workloads: ReadonlyMap<string, Workload>,
  services: ReadonlyMap<string, ServiceInfo>,
  err: Report,
): void {
  const claimed = new Map<string, string>();
  for (const res of workloadRes) {
    const w = workloads.get(displayName(res));
    if (!w) continue;
    const ports = new Set<number>(Object.values(w.ports));
    for (const s of w.services) {
      for (const ep of services.get(s)?.endpoints ?? []) {
        if (ep.workload === w.key) Object.values(ep.ports).forEach((p) => ports.add(p));
      }
    }
    for (const p of [...ports].sort((a, b) => a - b)) {
      const key = `${w.node}|${w.address}|${p}`;
      const other = claimed.get(key);
      if (other) {
        err(
          res,
          ["spec", "address"],
          `${w.address}:${p} on node "${w.node}" is already the address of WorkloadEntry "${other}"`,
          "two workloads on one node need different addresses or ports",
        );
      } else claimed.set(key, w.key);
    }
  }
}

/** The snapshot's indexes of filter extensions. */
export type ExtensionIndexes = Pick<Snapshot, "faults" | "rateLimits" | "rateLimitsByWaypoint">;

/** Indexes HTTPFaults and LocalRateLimits by `namespace/name`, and LocalRateLimits by waypoint. */
export function indexExtensions(
  faults: readonly Resource[],
  rateLimits: readonly Resource[],
): ExtensionIndexes {
  const byWaypoint = new Map<string, Resource<LocalRateLimitSpec>[]>();
  const limits = rateLimits as readonly Resource<LocalRateLimitSpec>[];
  const byName = [...limits].sort((a, b) => a.metadata.name < b.metadata.name ? -1 : 1);
  for (const res of byName) {
    for (const t of res.spec.targetRefs ?? []) {
      const key = `${res.metadata.namespace}/${t.name}`;
      byWaypoint.set(key, [...(byWaypoint.get(key) ?? []), res]);
    }
  }
  return {
    faults: new Map(faults.map((r) => [displayName(r), r as Resource<HttpFaultSpec>])),
    rateLimits: new Map(limits.map((r) => [displayName(r), r])),
    rateLimitsByWaypoint: byWaypoint,
  };
}

/**
 * A route may not name a LocalRateLimit that has targetRefs (it already applies to every
 * request of its waypoints); an extension nothing uses is a warning.
 */
function checkExtensionUse(
  all: readonly Resource[],
  ext: ExtensionIndexes,
  err: Report,
  warn: Report,
): void {
  const used = new Set<string>();
  for (const route of all) {
    if (route.kind !== "HTTPRoute" && route.kind !== "GRPCRoute") continue;
    for (const ref of routeExtensionRefs(route.spec as { rules?: RuleLike[] })) {
      const key = `${route.metadata.namespace}/${ref.name}`;
      used.add(`${ref.kind}/${key}`);
      const limit = ref.kind === "LocalRateLimit" ? ext.rateLimits.get(key) : undefined;
      if (limit?.spec.targetRefs) {
        err(
          route,
          [...ref.path],
          `LocalRateLimit "${key}" has targetRefs, so it already applies to every request of ` +
            "its waypoints; a route cannot name it too",
          "name a LocalRateLimit without targetRefs here, or remove this filter",
        );
      }
    }
  }
  for (const [key, res] of ext.faults) {
    if (used.has(`HTTPFault/${key}`)) continue;
    warn(
      res,
      ["metadata", "name"],
      `HTTPFault "${key}" applies nowhere: no route names it`,
      "name it in an ExtensionRef filter of an HTTPRoute or GRPCRoute rule",
    );
  }
  for (const [key, res] of ext.rateLimits) {
    if (res.spec.targetRefs || used.has(`LocalRateLimit/${key}`)) continue;
    warn(
      res,
      ["metadata", "name"],
      `LocalRateLimit "${key}" applies nowhere: it has no targetRefs and no route names it`,
      "add targetRefs to a waypoint Gateway, or name it in a route's ExtensionRef filter",
    );
  }
}

/** Indexes policies by namespace and by targetRef. */
export function indexPolicies(list: readonly Resource[]): PolicyIndex {
  const byTarget = new Map<string, Resource[]>();
  for (const res of list) {
    const spec = res.spec as {
      targetRef?: { kind: string; namespace?: string; name: string };
      targetRefs?: { kind: string; namespace?: string; name: string }[];
    };
    const refs = [...(spec.targetRef ? [spec.targetRef] : []), ...(spec.targetRefs ?? [])];
    for (const t of refs) {
      const key = resourceKey(t.kind, t.namespace ?? res.metadata.namespace, t.name);
      byTarget.set(key, [...(byTarget.get(key) ?? []), res]);
    }
  }
  return {
    all: list,
    byNamespace: groupBy(list, (r) => r.metadata.namespace!),
    byTarget,
  };
}

/** Whether `labels` carries every key/value of `selector`. */
export function matches(
  selector: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  for (const k in selector) if (labels[k] !== selector[k]) return false;
  return true;
}

/** Qualifies a short host (`reviews`, `reviews.shop`) as Istio does. */
export function qualifyHost(host: string, namespace: string, dnsSuffix: string): string {
  if (host.includes("*")) return host;
  const parts = host.split(".");
  if (parts.length === 1) return `${host}.${namespace}.svc.${dnsSuffix}`;
  if (parts.length === 2) return `${host}.svc.${dnsSuffix}`;
  return host;
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

/**
 * Freezes a snapshot deeply, pausing every few thousand objects so a large
 * snapshot arriving from the worker never blocks the event loop for long.
 */
export async function freezeSnapshot(s: Snapshot, pause: () => Promise<void>): Promise<Snapshot> {
  const seen = new Set<unknown>();
  const stack: unknown[] = [s];
  let n = 0;
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null || seen.has(v)) continue;
    seen.add(v);
    if (v instanceof Map) { for (const x of v.values()) stack.push(x); }
    else for (const x of Object.values(v)) stack.push(x);
    Object.freeze(v);
    if (++n % 4000 === 0) await pause();
  }
  return s;
}

function deepFreeze<T>(value: T, seen = new Set<unknown>()): T {
  if (typeof value !== "object" || value === null || seen.has(value)) return value;
  seen.add(value);
  if (value instanceof Map) {
    for (const v of value.values()) deepFreeze(v, seen);
  } else {
    for (const v of Object.values(value)) deepFreeze(v, seen);
  }
  return Object.freeze(value);
}
