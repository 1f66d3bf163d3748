import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import { compileSourcesSync } from "../config/compile.ts";
import type { Snapshot } from "../config/snapshot.ts";
import { localView } from "./local_view.ts";
import {
  listenerKey,
  outboundListeners,
  type OutboundPlan,
  type OutboundRequest,
  pickEndpoint,
  planOutbound,
  planToAddress,
} from "./outbound_plan.ts";

type Obj = Record<string, unknown>;

const node = (name: string, address: string, outbound?: Obj): Obj => ({
  apiVersion: "ambit.io/v1alpha1",
  kind: "Node",
  metadata: { name },
  spec: { address, ...(outbound ? { outbound } : {}) },
});
const namespace = (name: string, ambient: boolean): Obj => ({
  apiVersion: "v1",
  kind: "Namespace",
  metadata: { name, labels: ambient ? { "istio.io/dataplane-mode": "ambient" } : {} },
});
const workload = (
  key: string,
  nodeName: string,
  address: string,
  labels: Record<string, string>,
  extra: Obj = {},
): Obj => {
  const [ns, name] = key.split("/");
  return {
    apiVersion: "networking.istio.io/v1",
    kind: "WorkloadEntry",
    metadata: { name, namespace: ns },
    spec: { node: nodeName, address, serviceAccount: name, labels, ...extra },
  };
};
const service = (
  key: string,
  clusterIP: string,
  selector: Record<string, string>,
  ports: Obj[],
  labels: Record<string, string> = {},
): Obj => {
  const [ns, name] = key.split("/");
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: ns, labels },
    spec: { clusterIP, selector, ports },
  };
};
const waypoint = (
  key: string,
  nodeName: string,
  address: string | undefined,
  forWhat?: string,
): Obj => {
  const [ns, name] = key.split("/");
  return {
    apiVersion: "gateway.networking.k8s.io/v1",
    kind: "Gateway",
    metadata: {
      name,
      namespace: ns,
      annotations: { "ambit.io/node": nodeName },
      labels: forWhat ? { "istio.io/waypoint-for": forWhat } : {},
    },
    spec: {
      gatewayClassName: "istio-waypoint",
      ...(address ? { addresses: [{ type: "IPAddress", value: address }] } : {}),
      listeners: [{ name: "mesh", port: 15008, protocol: "HBONE" }],
    },
  };
};
const USE_WP = "istio.io/use-waypoint";

const DOCS: Obj[] = [
  node("node-a", "10.0.0.1", {
    ports: [
      { service: "shop/web", port: 80, listen: "127.0.0.1:18080" },
      { service: "shop/web", port: 80, listen: "[0:0::1]:18081" },
    ],
  }),
  node("node-b", "10.0.0.2", {
    vips: false,
    ports: [{ service: "payments/ratings", port: 9090, listen: "127.0.0.1:19090" }],
  }),
  node("node-c", "10.0.0.3", {
    ports: [{ service: "shop/web", port: 80, listen: "127.0.0.1:18082" }],
  }),
  namespace("shop", true),
  namespace("payments", true),
  namespace("legacy", false),
  workload("shop/client", "node-a", "10.1.0.1", { app: "client" }),
  workload("shop/web-1", "node-a", "10.1.0.11", { app: "web" }, { ports: { http: 8080 } }),
  workload("shop/web-2", "node-b", "10.1.0.12", { app: "web" }, {
    ports: { http: 8081 },
    weight: 3,
  }),
  workload("shop/web-3", "node-b", "10.1.0.13", { app: "web" }),
  workload("shop/v6", "node-b", "fd00:1::5", { app: "v6" }),
  workload("shop/w1", "node-a", "10.1.0.41", { app: "w" }, { weight: 1 }),
  workload("shop/w0", "node-a", "10.1.0.40", { app: "w" }, { weight: 0 }),
  workload("shop/w3", "node-b", "10.1.0.43", { app: "w" }, { weight: 3 }),
  workload("shop/z0", "node-b", "10.1.0.50", { app: "zero" }, { weight: 0 }),
  workload("payments/ratings", "node-b", "10.1.0.21", { app: "ratings" }),
  workload("payments/wp", "node-b", "10.1.0.22", { app: "wp-self" }),
  workload("legacy/old", "node-b", "10.1.0.31", { app: "old" }),
  workload("legacy/loop", "node-b", "127.0.0.5", { app: "loop" }),
  workload("payments/behind-wp", "node-b", "10.1.0.23", { app: "bw", [USE_WP]: "wl-wp" }),
  workload("payments/behind-swp", "node-b", "10.1.0.24", { app: "bsw", [USE_WP]: "wp" }),
  workload("shop/local-loop", "node-a", "127.0.0.7", { app: "ll" }),
  service("shop/web", "10.96.0.10", { app: "web" }, [{
    name: "http",
    port: 80,
    targetPort: "http",
  }]),
  service("shop/num", "10.96.0.11", { app: "web" }, [{ port: 80, targetPort: 9000 }]),
  service("shop/empty", "10.96.0.12", { app: "nothing" }, [{ port: 80 }]),
  service("shop/v6", "10.96.0.13", { app: "v6" }, [{ port: 80, targetPort: 8080 }]),
  service("shop/weighted", "10.96.0.14", { app: "w" }, [{ port: 80, targetPort: 8080 }]),
  service("shop/zero", "10.96.0.15", { app: "zero" }, [{ port: 80, targetPort: 8080 }]),
  service("payments/ratings", "10.96.0.20", { app: "ratings" }, [{ port: 9090 }], {
    [USE_WP]: "wp",
  }),
  service("payments/ratings-wl", "10.96.0.21", { app: "ratings" }, [{ port: 9090 }], {
    [USE_WP]: "wl-wp",
  }),
  service("payments/ratings-none", "10.96.0.22", { app: "ratings" }, [{ port: 9090 }], {
    [USE_WP]: "none-wp",
  }),
  service("payments/ratings-all", "10.96.0.23", { app: "ratings" }, [{ port: 9090 }], {
    [USE_WP]: "all-wp",
  }),
  service("payments/ratings-v6", "fd00::10", { app: "ratings" }, [{ port: 9090 }], {
    [USE_WP]: "wp",
  }),
  service("payments/idle", "10.96.0.24", { app: "nobody" }, [{ port: 9090 }], { [USE_WP]: "wp" }),
  service("legacy/old", "10.96.0.30", { app: "old" }, [{ port: 80, targetPort: 8080 }]),
  service("legacy/loop", "10.96.0.31", { app: "loop" }, [{ port: 80, targetPort: 8080 }]),
  waypoint("payments/wp", "node-b", "10.0.2.100"),
  waypoint("payments/wl-wp", "node-b", "10.0.2.101", "workload"),
  waypoint("payments/none-wp", "node-b", "10.0.2.102", "none"),
  waypoint("payments/all-wp", "node-a", undefined, "all"),
];

function compile(docs: Obj[]): Snapshot {
  const text = docs.map((d) => JSON.stringify(d)).join("\n---\n");
  const { snapshot, issues } = compileSourcesSync([{ file: "mesh.yaml", text }]);
  assertEquals(issues.filter((i) => i.severity !== "warning"), []);
  assertOk(snapshot);
  return snapshot;
}

const S = compile(DOCS);
const id = (ns: string, sa: string) => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;
const host = (key: string) => {
  const [ns, name] = key.split("/");
  return `${name}.${ns}.svc.cluster.local`;
};

// ---------------------------------------------------------------------------
// Listeners

Deno.test("outboundListeners() opens every Service VIP:port and the node's explicit ports", () => {
  const vipListeners = [...S.services.values()].flatMap((svc) =>
    svc.ports.map((p) =>
      `${svc.vip.includes(":") ? `[${svc.vip}]` : svc.vip}:${p.port}>${svc.key}:${p.port}`
    )
  ).sort();
  const table: [string, string, string[]][] = [
    [
      "VIPs on, two explicit ports (IPv6 canonicalized)",
      "node-a",
      [...vipListeners, "127.0.0.1:18080>shop/web:80", "[::1]:18081>shop/web:80"].sort(),
    ],
    ["VIPs off: only the explicit port", "node-b", ["127.0.0.1:19090>payments/ratings:9090"]],
    ["no enrolled workload on the node: nothing to capture", "node-c", []],
  ];
  for (const [name, nodeName, want] of table) {
    const got = outboundListeners(S, localView(S, nodeName)).map(listenerKey).sort();
    assertEquals(got, want, name);
  }
  const explicit = outboundListeners(S, localView(S, "node-a")).filter((l) => l.explicit);
  assertEquals(explicit, [
    { ip: "127.0.0.1", port: 18080, service: "shop/web", servicePort: 80, explicit: true },
    { ip: "::1", port: 18081, service: "shop/web", servicePort: 80, explicit: true },
  ]);
  const v6 = outboundListeners(S, localView(S, "node-a")).find((l) =>
    l.service === "payments/ratings-v6"
  );
  assertEquals(v6, {
    ip: "fd00::10",
    port: 9090,
    service: "payments/ratings-v6",
    servicePort: 9090,
    explicit: false,
  });
});

// ---------------------------------------------------------------------------
// Plans

const req = (
  service: string,
  port: number,
  source: string | undefined,
  extra: Partial<OutboundRequest> = {},
): OutboundRequest => ({
  service,
  port,
  source: source === undefined ? undefined : S.workloads.get(source)!,
  node: source === undefined ? "node-a" : S.workloads.get(source)!.node,
  random: () => 0,
  ...extra,
});

const hbone = (endpoint: string, authority: string, nodeIp: string, svc: string): OutboundPlan => {
  const [ns, name] = endpoint.split("/");
  return {
    kind: "hbone",
    nextHop: { ip: nodeIp, port: 15008 },
    authority,
    expected: [id(ns, name)],
    endpoint,
    hostname: host(svc),
  };
};
const viaWaypoint = (wp: string, address: string, authority: string, svc: string): OutboundPlan => {
  const [ns, name] = wp.split("/");
  return {
    kind: "hbone",
    nextHop: { ip: address, port: 15008 },
    authority,
    expected: [id(ns, name)],
    waypoint: wp,
    hostname: host(svc),
  };
};
const fail = (detail: string): OutboundPlan => ({
  kind: "fail",
  failure: "no_healthy_endpoint",
  detail,
});

Deno.test("planOutbound() decides hop, identity and :authority", () => {
  const table: [string, OutboundRequest, OutboundPlan, Snapshot?][] = [
    [
      "direct HBONE: :authority is the endpoint's ip:targetPort, sent to its node's 15008",
      req("shop/num", 80, "shop/client"),
      hbone("shop/web-1", "10.1.0.11:9000", "10.0.0.1", "shop/num"),
    ],
    [
      "direct HBONE to an endpoint on another node",
      req("shop/num", 80, "shop/client", { random: () => 0.5 }),
      hbone("shop/web-2", "10.1.0.12:9000", "10.0.0.2", "shop/num"),
    ],
    [
      "a named targetPort resolves per endpoint",
      req("shop/web", 80, "shop/client", { random: () => 0.9 }),
      hbone("shop/web-2", "10.1.0.12:8081", "10.0.0.2", "shop/web"),
    ],
    [
      "an endpoint without the named port gets no traffic (the last pick is not web-3)",
      req("shop/web", 80, "shop/client", { random: () => 0.999999 }),
      hbone("shop/web-2", "10.1.0.12:8081", "10.0.0.2", "shop/web"),
    ],
    [
      "IPv6 endpoint: :authority in brackets",
      req("shop/v6", 80, "shop/client"),
      hbone("shop/v6", "[fd00:1::5]:8080", "10.0.0.2", "shop/v6"),
    ],
    [
      "unhealthy endpoints are skipped",
      req("shop/num", 80, "shop/client", { unhealthy: new Set(["shop/web-1"]) }),
      hbone("shop/web-2", "10.1.0.12:9000", "10.0.0.2", "shop/num"),
    ],
    [
      "when every endpoint is unhealthy, they are tried anyway",
      req("shop/num", 80, "shop/client", {
        unhealthy: new Set(["shop/web-1", "shop/web-2", "shop/web-3"]),
      }),
      hbone("shop/web-1", "10.1.0.11:9000", "10.0.0.1", "shop/num"),
    ],
    [
      "service waypoint: HBONE to the waypoint, keeping VIP:port, expecting its identity",
      req("payments/ratings", 9090, "shop/client"),
      viaWaypoint("payments/wp", "10.0.2.100", "10.96.0.20:9090", "payments/ratings"),
    ],
    [
      "service waypoint with an IPv6 VIP",
      req("payments/ratings-v6", 9090, "shop/client"),
      viaWaypoint("payments/wp", "10.0.2.100", "[fd00::10]:9090", "payments/ratings-v6"),
    ],
    [
      "waypoint-for all takes service traffic (address defaults to its node's)",
      req("payments/ratings-all", 9090, "shop/client"),
      viaWaypoint("payments/all-wp", "10.0.0.1", "10.96.0.23:9090", "payments/ratings-all"),
    ],
    [
      "a service waypoint is used even without endpoints (it answers for them)",
      req("payments/idle", 9090, "shop/client"),
      viaWaypoint("payments/wp", "10.0.2.100", "10.96.0.24:9090", "payments/idle"),
    ],
    [
      "waypoint-for workload does not take service traffic",
      req("payments/ratings-wl", 9090, "shop/client"),
      hbone("payments/ratings", "10.1.0.21:9090", "10.0.0.2", "payments/ratings-wl"),
    ],
    [
      "waypoint-for none takes nothing",
      req("payments/ratings-none", 9090, "shop/client"),
      hbone("payments/ratings", "10.1.0.21:9090", "10.0.0.2", "payments/ratings-none"),
    ],
    [
      "the waypoint's own identity goes straight to the endpoint (no loop)",
      req("payments/ratings", 9090, "payments/wp"),
      hbone("payments/ratings", "10.1.0.21:9090", "10.0.0.2", "payments/ratings"),
    ],
    [
      "endpoint not in the mesh: straight TCP to it",
      req("legacy/old", 80, "shop/client"),
      {
        kind: "direct",
        destination: { ip: "10.1.0.31", port: 8080 },
        endpoint: "legacy/old",
        hostname: host("legacy/old"),
      },
    ],
    [
      "endpoint not in the mesh on loopback of another node: unreachable",
      req("legacy/loop", 80, "shop/client"),
      fail("endpoint legacy/loop is not in the mesh and listens on loopback on node node-b"),
    ],
    [
      "endpoint not in the mesh on loopback of this node: straight TCP",
      req("legacy/loop", 80, "shop/web-2"),
      {
        kind: "direct",
        destination: { ip: "127.0.0.5", port: 8080 },
        endpoint: "legacy/loop",
        hostname: host("legacy/loop"),
      },
    ],
    [
      "unattributed source: plaintext to the endpoint's node 15006 with a PROXY header",
      req("shop/num", 80, undefined, { random: () => 0.5 }),
      {
        kind: "plaintext",
        nextHop: { ip: "10.0.0.2", port: 15006 },
        destination: { ip: "10.1.0.12", port: 9000 },
        endpoint: "shop/web-2",
        hostname: host("shop/num"),
      },
    ],
    [
      "unattributed source to a waypoint service: no identity for the waypoint, so plaintext to the endpoint",
      req("payments/ratings", 9090, undefined),
      {
        kind: "plaintext",
        nextHop: { ip: "10.0.0.2", port: 15006 },
        destination: { ip: "10.1.0.21", port: 9090 },
        endpoint: "payments/ratings",
        hostname: host("payments/ratings"),
      },
    ],
    [
      "unknown service",
      req("shop/nope", 80, "shop/client"),
      fail("no service shop/nope"),
    ],
    [
      "a port the service does not have",
      req("shop/web", 81, "shop/client"),
      fail("service shop/web has no port 81 (ports: 80)"),
    ],
    [
      "no endpoints",
      req("shop/empty", 80, "shop/client"),
      fail("service shop/empty has no endpoints"),
    ],
    [
      "only weight-0 endpoints",
      req("shop/zero", 80, "shop/client"),
      fail(
        "service shop/zero has no endpoint with a weight above 0 for port 80 (shop/z0 has weight 0)",
      ),
    ],
    [
      "a waypoint the snapshot does not know: fail closed rather than bypass it",
      req("payments/ratings", 9090, "shop/client"),
      fail(
        "service payments/ratings uses waypoint payments/wp, which is not a known waypoint; refusing to bypass it",
      ),
      { ...S, waypoints: new Map() } as Snapshot,
    ],
  ];
  const failures: string[] = [];
  for (const [name, r, want, snap] of table) {
    const got = planOutbound(snap ?? S, r);
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      failures.push(`${name}:\n    got  ${JSON.stringify(got)}\n    want ${JSON.stringify(want)}`);
    }
  }
  assertEquals(failures, [], `${failures.length} of ${table.length} rows failed`);
});

Deno.test("planOutbound() gives an endpoint with only one of its named ports no traffic on the other", () => {
  const s = compile([
    ...DOCS,
    service("shop/two", "10.96.0.60", { app: "web" }, [
      { name: "http", port: 80, targetPort: "http" },
      { name: "admin", port: 81, targetPort: "admin" },
    ]),
  ]);
  const plan = planOutbound(s, { ...req("shop/two", 81, "shop/client"), random: () => 0 });
  assertEquals(plan, {
    kind: "fail",
    failure: "no_healthy_endpoint",
    detail: "service shop/two has no endpoint for port 81 (no endpoint has its target port admin)",
  });
});

// ---------------------------------------------------------------------------
// Endpoint choice

/** A deterministic PRNG (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function counts(service: string, n: number, random: () => number, unhealthy?: Set<string>) {
  const svc = S.services.get(service)!;
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const e = pickEndpoint(svc, { service, port: 80, node: "node-a", random, unhealthy });
    const k = e?.workload ?? "none";
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

Deno.test("planToAddress() plans proxy requests addressed by IP: VIP, workload, passthrough", () => {
  const at = (ip: string, port: number, source: string | undefined, node = "node-a") => ({
    ip,
    port,
    source: source === undefined ? undefined : S.workloads.get(source)!,
    node,
    random: () => 0,
  });
  const table: [string, ReturnType<typeof at>, OutboundPlan][] = [
    [
      "a Service VIP is planned as the Service",
      at("10.96.0.11", 80, "shop/client"),
      hbone("shop/web-1", "10.1.0.11:9000", "10.0.0.1", "shop/num"),
    ],
    [
      "a workload address: HBONE to its node with that address and port, no service host",
      at("10.1.0.12", 8081, "shop/client"),
      {
        kind: "hbone",
        nextHop: { ip: "10.0.0.2", port: 15008 },
        authority: "10.1.0.12:8081",
        expected: [id("shop", "web-2")],
        endpoint: "shop/web-2",
      },
    ],
    [
      "an IPv6 workload address, written in a long form",
      at("fd00:1:0::5", 443, "shop/client"),
      {
        kind: "hbone",
        nextHop: { ip: "10.0.0.2", port: 15008 },
        authority: "[fd00:1::5]:443",
        expected: [id("shop", "v6")],
        endpoint: "shop/v6",
      },
    ],
    [
      "a workload outside the mesh: straight TCP",
      at("10.1.0.31", 8080, "shop/client"),
      { kind: "direct", destination: { ip: "10.1.0.31", port: 8080 }, endpoint: "legacy/old" },
    ],
    [
      "no identity: plaintext to the node's 15006",
      at("10.1.0.21", 9090, undefined),
      {
        kind: "plaintext",
        nextHop: { ip: "10.0.0.2", port: 15006 },
        destination: { ip: "10.1.0.21", port: 9090 },
        endpoint: "payments/ratings",
      },
    ],
    [
      "a workload with a workload waypoint goes to the waypoint, :authority the workload",
      at("10.1.0.23", 80, "shop/client"),
      {
        kind: "hbone",
        nextHop: { ip: "10.0.2.101", port: 15008 },
        authority: "10.1.0.23:80",
        expected: [id("payments", "wl-wp")],
        waypoint: "payments/wl-wp",
      },
    ],
    [
      "a service-only waypoint does not take traffic addressed to the workload",
      at("10.1.0.24", 80, "shop/client"),
      {
        kind: "hbone",
        nextHop: { ip: "10.0.0.2", port: 15008 },
        authority: "10.1.0.24:80",
        expected: [id("payments", "behind-swp")],
        endpoint: "payments/behind-swp",
      },
    ],
    [
      "an address outside the mesh is passed through",
      at("192.0.2.7", 443, "shop/client"),
      { kind: "passthrough", destination: { ip: "192.0.2.7", port: 443 } },
    ],
    [
      "a loopback workload address on another node is not that workload here",
      at("127.0.0.5", 8080, "shop/client"),
      { kind: "passthrough", destination: { ip: "127.0.0.5", port: 8080 } },
    ],
    [
      "a loopback workload address on this node is that workload",
      at("127.0.0.7", 8080, "shop/client"),
      {
        kind: "hbone",
        nextHop: { ip: "10.0.0.1", port: 15008 },
        authority: "127.0.0.7:8080",
        expected: [id("shop", "local-loop")],
        endpoint: "shop/local-loop",
      },
    ],
  ];
  for (const [name, r, want] of table) assertEquals(planToAddress(S, r), want, name);
});

Deno.test("pickEndpoint() splits by weight, never picks weight 0, and avoids unhealthy endpoints", () => {
  // Evenly spread random values give the exact weighted split.
  let i = 0;
  const N = 4000;
  const even = () => (i++ % N) / N;
  assertEquals(counts("shop/weighted", N, even), { "shop/w1": 1000, "shop/w3": 3000 });

  // A seeded random source: close to 1:3 over many picks, and reproducible.
  const got = counts("shop/weighted", 20_000, seeded(42));
  assertEquals(Object.keys(got).sort(), ["shop/w1", "shop/w3"], "weight 0 gets nothing");
  const share = got["shop/w3"] / 20_000;
  assertOk(Math.abs(share - 0.75) < 0.02, `w3 share ${share}`);
  assertEquals(counts("shop/weighted", 20_000, seeded(42)), got, "deterministic with a seed");

  assertEquals(counts("shop/weighted", 1000, seeded(7), new Set(["shop/w3"])), { "shop/w1": 1000 });
  assertEquals(counts("shop/zero", 10, seeded(1)), { none: 10 });

  // Edges of [0, 1).
  const svc = S.services.get("shop/weighted")!;
  const at = (r: number) =>
    pickEndpoint(svc, { service: "shop/weighted", port: 80, node: "node-a", random: () => r })
      ?.workload;
  assertEquals([at(0), at(0.2499), at(0.25), at(0.9999999)], [
    "shop/w1",
    "shop/w1",
    "shop/w3",
    "shop/w3",
  ]);

  // Without a random source, Math.random is used.
  const picked = pickEndpoint(svc, { service: "shop/weighted", port: 80, node: "node-a" });
  assertOk(picked && ["shop/w1", "shop/w3"].includes(picked.workload));
});
