import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import { compileSourcesSync } from "../config/compile.ts";
import type { Snapshot } from "../config/snapshot.ts";
import { type MtlsMode, mtlsModeFor } from "./peer_auth.ts";

type Obj = Record<string, unknown>;

const MESH: Obj[] = [
  {
    apiVersion: "ambit.io/v1alpha1",
    kind: "Node",
    metadata: { name: "node-a" },
    spec: { address: "10.0.0.1" },
  },
  ...["shop", "payments"].map((name) => ({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name, labels: { "istio.io/dataplane-mode": "ambient" } },
  })),
  ...([
    ["shop", "web", { app: "web", tier: "front" }, "10.1.0.1"],
    ["shop", "api", { app: "api", tier: "back" }, "10.1.0.2"],
    ["payments", "ratings", { app: "ratings" }, "10.1.0.3"],
    ["istio-system", "gw", { app: "gw" }, "10.1.0.4"],
  ] as const).map(([namespace, name, labels, address]) => ({
    apiVersion: "networking.istio.io/v1",
    kind: "WorkloadEntry",
    metadata: { name, namespace },
    spec: { address, serviceAccount: name, labels },
  })),
];

/** A PeerAuthentication; `mode` of undefined leaves `mtls` out (UNSET). */
function pa(
  ns: string,
  name: string,
  mode: string | undefined,
  opts: { selector?: Obj; ports?: Record<string, string>; created?: string } = {},
): Obj {
  return {
    apiVersion: "security.istio.io/v1",
    kind: "PeerAuthentication",
    metadata: { name, namespace: ns, ...(opts.created ? { creationTimestamp: opts.created } : {}) },
    spec: {
      ...(opts.selector ? { selector: { matchLabels: opts.selector } } : {}),
      ...(mode ? { mtls: { mode } } : {}),
      ...(opts.ports
        ? {
          portLevelMtls: Object.fromEntries(
            Object.entries(opts.ports).map(([p, m]) => [p, { mode: m }]),
          ),
        }
        : {}),
    },
  };
}

function snapshotWith(docs: Obj[]): Snapshot {
  const text = [...MESH, ...docs].map((d) => JSON.stringify(d)).join("\n---\n");
  const { snapshot, issues } = compileSourcesSync([{ file: "mesh.yaml", text }]);
  assertEquals(issues.filter((i) => i.severity !== "warning"), []);
  assertOk(snapshot);
  return snapshot;
}

const ROOT = "istio-system";
const WEB = { app: "web" };

/** [name, policies, workload, port, want] */
const table: [string, Obj[], string, number, MtlsMode][] = [
  ["no PeerAuthentication: PERMISSIVE", [], "shop/web", 8080, "PERMISSIVE"],
  ["mesh STRICT", [pa(ROOT, "default", "STRICT")], "shop/web", 8080, "STRICT"],
  ["mesh PERMISSIVE", [pa(ROOT, "default", "PERMISSIVE")], "shop/web", 8080, "PERMISSIVE"],
  [
    "mesh UNSET: the default, PERMISSIVE",
    [pa(ROOT, "default", "UNSET")],
    "shop/web",
    8080,
    "PERMISSIVE",
  ],
  [
    "mesh without mtls: PERMISSIVE",
    [pa(ROOT, "default", undefined)],
    "shop/web",
    8080,
    "PERMISSIVE",
  ],
  [
    "namespace overrides mesh (PERMISSIVE over STRICT)",
    [pa(ROOT, "default", "STRICT"), pa("shop", "default", "PERMISSIVE")],
    "shop/web",
    8080,
    "PERMISSIVE",
  ],
  [
    "namespace overrides mesh (STRICT over PERMISSIVE)",
    [pa(ROOT, "default", "PERMISSIVE"), pa("shop", "default", "STRICT")],
    "shop/web",
    8080,
    "STRICT",
  ],
  [
    "namespace UNSET inherits the mesh",
    [pa(ROOT, "default", "STRICT"), pa("shop", "default", "UNSET")],
    "shop/web",
    8080,
    "STRICT",
  ],
  [
    "a namespace's policy does not reach another namespace",
    [pa("shop", "default", "STRICT")],
    "payments/ratings",
    9090,
    "PERMISSIVE",
  ],
  [
    "workload overrides namespace",
    [pa("shop", "default", "STRICT"), pa("shop", "web", "PERMISSIVE", { selector: WEB })],
    "shop/web",
    8080,
    "PERMISSIVE",
  ],
  [
    "a workload policy leaves other workloads to the namespace",
    [pa("shop", "default", "STRICT"), pa("shop", "web", "PERMISSIVE", { selector: WEB })],
    "shop/api",
    8080,
    "STRICT",
  ],
  [
    "a selector needs every label",
    [
      pa("shop", "default", "STRICT"),
      pa("shop", "x", "PERMISSIVE", { selector: { app: "web", tier: "back" } }),
    ],
    "shop/web",
    8080,
    "STRICT",
  ],
  [
    "an empty selector is namespace-wide",
    [pa(ROOT, "default", "STRICT"), pa("shop", "all", "PERMISSIVE", { selector: {} })],
    "shop/api",
    8080,
    "PERMISSIVE",
  ],
  [
    "workload UNSET inherits the namespace",
    [pa("shop", "default", "STRICT"), pa("shop", "web", "UNSET", { selector: WEB })],
    "shop/web",
    8080,
    "STRICT",
  ],
  [
    "workload and namespace UNSET inherit the mesh",
    [
      pa(ROOT, "default", "STRICT"),
      pa("shop", "default", "UNSET"),
      pa("shop", "web", "UNSET", { selector: WEB }),
    ],
    "shop/web",
    8080,
    "STRICT",
  ],
  [
    "portLevelMtls: the port's mode wins on that port",
    [pa("shop", "web", "PERMISSIVE", { selector: WEB, ports: { "8080": "STRICT" } })],
    "shop/web",
    8080,
    "STRICT",
  ],
  [
    "portLevelMtls: other ports keep the workload mode",
    [pa("shop", "web", "PERMISSIVE", { selector: WEB, ports: { "8080": "STRICT" } })],
    "shop/web",
    9090,
    "PERMISSIVE",
  ],
  [
    "portLevelMtls: PERMISSIVE hole in a STRICT namespace (workload UNSET)",
    [
      pa("shop", "default", "STRICT"),
      pa("shop", "web", undefined, { selector: WEB, ports: { "8080": "PERMISSIVE" } }),
    ],
    "shop/web",
    8080,
    "PERMISSIVE",
  ],
  [
    "portLevelMtls: the rest of that workload inherits STRICT",
    [
      pa("shop", "default", "STRICT"),
      pa("shop", "web", undefined, { selector: WEB, ports: { "8080": "PERMISSIVE" } }),
    ],
    "shop/web",
    9090,
    "STRICT",
  ],
  [
    "portLevelMtls UNSET inherits the workload mode",
    [
      pa("shop", "default", "PERMISSIVE"),
      pa("shop", "web", "STRICT", { selector: WEB, ports: { "8080": "UNSET" } }),
    ],
    "shop/web",
    8080,
    "STRICT",
  ],
  [
    "portLevelMtls UNSET with workload UNSET inherits the mesh",
    [
      pa(ROOT, "default", "STRICT"),
      pa("shop", "web", "UNSET", { selector: WEB, ports: { "8080": "UNSET" } }),
    ],
    "shop/web",
    8080,
    "STRICT",
  ],
  [
    "portLevelMtls of a policy that does not select the workload is not used",
    [pa("shop", "api", "PERMISSIVE", { selector: { app: "api" }, ports: { "8080": "STRICT" } })],
    "shop/web",
    8080,
    "PERMISSIVE",
  ],
  [
    "DISABLE at the namespace overrides a STRICT mesh (plaintext accepted)",
    [pa(ROOT, "default", "STRICT"), pa("shop", "default", "DISABLE")],
    "shop/web",
    8080,
    "DISABLE",
  ],
  [
    "DISABLE at the workload overrides a STRICT namespace",
    [pa("shop", "default", "STRICT"), pa("shop", "web", "DISABLE", { selector: WEB })],
    "shop/web",
    8080,
    "DISABLE",
  ],
  [
    "DISABLE on one port",
    [
      pa("shop", "default", "STRICT"),
      pa("shop", "web", "STRICT", { selector: WEB, ports: { "8080": "DISABLE" } }),
    ],
    "shop/web",
    8080,
    "DISABLE",
  ],
  [
    "two namespace-wide policies: the oldest wins",
    [
      pa("shop", "b-new", "PERMISSIVE", { created: "2024-05-01T00:00:00Z" }),
      pa("shop", "a-old", "STRICT", { created: "2024-01-01T00:00:00Z" }),
    ],
    "shop/web",
    8080,
    "STRICT",
  ],
  [
    "the oldest is compared as a time, not as text (time zone offsets)",
    [
      pa("shop", "utc", "PERMISSIVE", { created: "2024-01-01T09:00:00Z" }),
      pa("shop", "cest", "STRICT", { created: "2024-01-01T10:00:00+02:00" }),
    ],
    "shop/web",
    8080,
    "STRICT",
  ],
  [
    "without timestamps, the first name wins",
    [pa("shop", "b", "PERMISSIVE"), pa("shop", "a", "STRICT")],
    "shop/web",
    8080,
    "STRICT",
  ],
  [
    "two matching workload policies: the oldest wins",
    [
      pa("shop", "new", "STRICT", { selector: WEB, created: "2024-02-01T00:00:00Z" }),
      pa("shop", "old", "PERMISSIVE", {
        selector: { tier: "front" },
        created: "2023-02-01T00:00:00Z",
      }),
    ],
    "shop/web",
    8080,
    "PERMISSIVE",
  ],
  [
    "two mesh-wide policies: the oldest wins",
    [
      pa(ROOT, "later", "PERMISSIVE", { created: "2024-02-01T00:00:00Z" }),
      pa(ROOT, "first", "STRICT", { created: "2023-02-01T00:00:00Z" }),
    ],
    "payments/ratings",
    9090,
    "STRICT",
  ],
  [
    "a selector policy in the root namespace is ignored (Istio: workload policies live in the workload's namespace)",
    [pa(ROOT, "web", "STRICT", { selector: WEB })],
    "shop/web",
    8080,
    "PERMISSIVE",
  ],
  [
    "a selector policy in the root namespace is ignored for the root namespace's own workloads too",
    [pa(ROOT, "gw", "STRICT", { selector: { app: "gw" } })],
    "istio-system/gw",
    15021,
    "PERMISSIVE",
  ],
  [
    "a root namespace workload takes the mesh policy",
    [pa(ROOT, "default", "STRICT")],
    "istio-system/gw",
    15021,
    "STRICT",
  ],
];

Deno.test("mtlsModeFor() resolves workload > namespace > mesh, port level, UNSET inheritance and DISABLE", () => {
  const failures: string[] = [];
  for (const [name, docs, workload, port, want] of table) {
    const s = snapshotWith(docs);
    const got = mtlsModeFor(s, s.workloads.get(workload)!, port);
    if (got !== want) failures.push(`${name}: got ${got}, want ${want}`);
  }
  assertEquals(failures, [], `${failures.length} of ${table.length} rows failed`);
});
