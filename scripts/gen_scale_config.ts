/**
 * Writes a large, valid mesh config for benchmarks and scale tests: a Mesh,
 * Nodes, ambient Namespaces (one in four with a waypoint), WorkloadEntries
 * spread over the nodes, Services selecting them by named ports, and
 * AuthorizationPolicies of the shapes people write (ALLOW and DENY, by
 * principal, namespace, IP block, port, `when` conditions, and a few L7 ones
 * bound to a Service's waypoint). One file per namespace plus `nodes.yaml`,
 * or everything in one file (`--single-file`, the worst case for parsing).
 *
 *   deno run -A scripts/gen_scale_config.ts OUTDIR [--workloads 2000] [--services 500]
 *     [--policies 500] [--nodes 20] [--namespaces 20] [--single-file]
 *
 * The command compiles what it wrote and exits 1 unless it has no issue at all.
 */
import { parseArgs } from "node:util";
import { compilePath, type CompileResult } from "../mod/config/compile.ts";
import { formatIssue } from "../mod/config/load.ts";

/** Sizes and layout of the generated mesh. */
export interface ScaleOptions {
  workloads: number;
  services: number;
  policies: number;
  nodes: number;
  namespaces: number;
  /** Everything in one `mesh.yaml` instead of one file per namespace. */
  singleFile: boolean;
}

/** Default sizes: the acceptance figures (2,000 workloads, 500 services, 500 policies). */
export const ACCEPTANCE: ScaleOptions = {
  workloads: 2000,
  services: 500,
  policies: 500,
  nodes: 20,
  namespaces: 20,
  singleFile: false,
};

/** The trust domain of the generated mesh. */
export const SCALE_TRUST_DOMAIN = "scale.ambit";

/** `10.0.x.y`, distinct for up to 62,500 nodes. */
export function nodeAddress(n: number): string {
  return `10.0.${Math.floor(n / 250)}.${(n % 250) + 1}`;
}

/** A workload's own address, distinct for every workload (10.64.0.1 and up). */
export function workloadAddress(w: number): string {
  const subnet = Math.floor(w / 254);
  return `10.${64 + Math.floor(subnet / 256)}.${subnet % 256}.${(w % 254) + 1}`;
}

/** A namespace with a waypoint (and `istio.io/use-waypoint`): one in four. */
const hasWaypoint = (nsIndex: number) => nsIndex % 4 === 0;

/**
 * Returns file name → YAML text. Service `s` lives in namespace `s mod
 * namespaces` and selects `app: app-s`; workload `w` has `app: app-(w mod
 * services)` and lives in that service's namespace, so every service has
 * workloads / services endpoints. Policy `p` selects `app-(p mod services)`.
 */
export function generateScaleConfig(options: Partial<ScaleOptions> = {}): Record<string, string> {
  const o: ScaleOptions = { ...ACCEPTANCE, ...options };
  for (const [k, v] of Object.entries(o)) {
    if (k !== "singleFile" && !(Number.isInteger(v) && (v as number) >= 1)) {
      throw new RangeError(`${k} must be a positive integer, got ${v}`);
    }
  }
  if (o.services > o.workloads) {
    throw new RangeError("services must not exceed workloads (every service needs an endpoint)");
  }
  const files = new Map<string, string[]>();
  const add = (file: string, doc: string) => {
    const docs = files.get(file);
    if (docs) docs.push(doc);
    else files.set(file, [doc]);
  };
  const nsIndexOfService = (s: number) => s % o.namespaces;
  const ns = (i: number) => `ns-${i}`;
  const nsFile = (i: number) => `${ns(i)}.yaml`;

  add(
    "nodes.yaml",
    `apiVersion: ambit.io/v1alpha1
kind: Mesh
metadata:
  name: mesh
spec:
  trustDomain: ${SCALE_TRUST_DOMAIN}
  dnsSuffix: cluster.local
  vipRange: 10.96.0.0/16`,
  );
  add(
    "nodes.yaml",
    `# Mesh-wide: mutual TLS only.
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT`,
  );
  for (let n = 0; n < o.nodes; n++) {
    add(
      "nodes.yaml",
      `apiVersion: ambit.io/v1alpha1
kind: Node
metadata:
  name: node-${n}
  labels:
    topology.kubernetes.io/zone: zone-${n % 3}
spec:
  address: ${nodeAddress(n)}
  locality: region-1/zone-${n % 3}`,
    );
  }

  for (let i = 0; i < o.namespaces; i++) {
    const wp = hasWaypoint(i) ? "\n    istio.io/use-waypoint: waypoint" : "";
    add(
      nsFile(i),
      `apiVersion: v1
kind: Namespace
metadata:
  name: ${ns(i)}
  labels:
    istio.io/dataplane-mode: ambient${wp}`,
    );
    if (hasWaypoint(i)) {
      add(
        nsFile(i),
        `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: ${ns(i)}
  labels:
    istio.io/waypoint-for: service
  annotations:
    ambit.io/node: node-${i % o.nodes}
spec:
  gatewayClassName: istio-waypoint
  addresses:
  - type: IPAddress
    value: 10.32.${Math.floor(i / 250)}.${(i % 250) + 1}
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE`,
      );
    }
  }

  for (let w = 0; w < o.workloads; w++) {
    const s = w % o.services;
    const i = nsIndexOfService(s);
    add(
      nsFile(i),
      `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: w-${w}
  namespace: ${ns(i)}
  labels:
    app: app-${s}
spec:
  node: node-${w % o.nodes}
  address: ${workloadAddress(w)}
  serviceAccount: sa-${s}
  labels:
    app: app-${s}
    version: v${w % 3}
  ports:
    http: 8080
    grpc: 9090
    metrics: 15020`,
    );
  }

  for (let s = 0; s < o.services; s++) {
    // Every fifth service is a version subset (like reviews-v1); workload s has version v(s mod 3).
    const subset = s % 5 === 4 ? `\n    version: v${s % 3}` : "";
    add(
      nsFile(nsIndexOfService(s)),
      `apiVersion: v1
kind: Service
metadata:
  name: svc-${s}
  namespace: ${ns(nsIndexOfService(s))}
  labels:
    app: app-${s}
spec:
  selector:
    app: app-${s}${subset}
  ports:
  - name: http
    port: 80
    targetPort: http
    appProtocol: http
  - name: grpc
    port: 9090
    targetPort: grpc
    appProtocol: grpc`,
    );
  }

  for (let p = 0; p < o.policies; p++) {
    const s = p % o.services;
    const i = nsIndexOfService(s);
    const caller = (s + 1) % o.services;
    const callerNs = ns(nsIndexOfService(caller));
    const principal = `${SCALE_TRUST_DOMAIN}/ns/${callerNs}/sa/sa-${caller}`;
    const meta = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: pol-${p}
  namespace: ${ns(i)}
spec:`;
    let spec: string;
    if (p % 10 === 4 && hasWaypoint(i)) {
      // L7, enforced by the namespace's waypoint.
      spec = `
  targetRefs:
  - kind: Service
    group: ""
    name: svc-${s}
  action: DENY
  rules:
  - to:
    - operation:
        methods: ["DELETE", "PUT"]
        paths: ["/admin/*"]`;
    } else if (p % 5 === 0) {
      // DENY by namespace or IP block, on some ports.
      spec = `
  selector:
    matchLabels:
      app: app-${s}
  action: DENY
  rules:
  - from:
    - source:
        notNamespaces: ["${ns(i)}", "${callerNs}"]
    to:
    - operation:
        ports: ["15020"]
  - from:
    - source:
        ipBlocks: ["192.168.${p % 256}.0/24"]`;
    } else {
      // ALLOW from a principal or a namespace, on the app ports; sometimes only from an IP range.
      const when = p % 3 === 0
        ? `
    when:
    - key: source.ip
      values: ["10.64.0.0/10"]`
        : "";
      const version = p % 7 === 0 ? `\n      version: v${p % 3}` : "";
      spec = `
  selector:
    matchLabels:
      app: app-${s}${version}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["${principal}"]
    - source:
        namespaces: ["${ns((i + 1) % o.namespaces)}"]
    to:
    - operation:
        ports: ["8080", "9090"]${when}`;
    }
    add(nsFile(i), meta + spec);
  }

  const out: Record<string, string> = {};
  const names = [...files.keys()].sort();
  for (const f of names) out[f] = files.get(f)!.join("\n---\n") + "\n";
  if (o.singleFile) return { "mesh.yaml": names.map((f) => out[f]).join("---\n") };
  return out;
}

/** Writes the generated config into `dir` (created if missing); returns the file paths. */
export async function writeScaleConfig(
  dir: string,
  options: Partial<ScaleOptions> = {},
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const [f, text] of Object.entries(generateScaleConfig(options))) {
    const path = `${dir}/${f}`;
    await Deno.writeTextFile(path, text);
    paths.push(path);
  }
  return paths;
}

/**
 * Compiles the config at `path` and throws unless it compiled with no error
 * and no warning, with the expected numbers of workloads, services and policies.
 */
export async function assertScaleConfigCompiles(
  path: string,
  options: Partial<ScaleOptions> = {},
): Promise<CompileResult> {
  const o: ScaleOptions = { ...ACCEPTANCE, ...options };
  const r = await compilePath(path);
  if (!r.snapshot || r.issues.length > 0) {
    throw new Error(
      `generated config at ${path} has ${r.issues.length} issue(s):\n` +
        r.issues.slice(0, 10).map(formatIssue).join("\n"),
    );
  }
  const s = r.snapshot;
  const got = {
    workloads: s.workloads.size,
    services: s.services.size,
    policies: s.authorizationPolicies.all.length,
    nodes: s.nodes.size,
  };
  const want = {
    workloads: o.workloads,
    services: o.services,
    policies: o.policies,
    nodes: o.nodes,
  };
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(
      `generated config compiled to ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`,
    );
  }
  const empty = [...s.services.values()].filter((svc) => svc.endpoints.length === 0);
  if (empty.length > 0) throw new Error(`services without endpoints: ${empty[0].key}`);
  return r;
}

if (import.meta.main) {
  const usage =
    "usage: gen_scale_config.ts OUTDIR [--workloads N] [--services N] [--policies N] [--nodes N] [--namespaces N] [--single-file]";
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        workloads: { type: "string" },
        services: { type: "string" },
        policies: { type: "string" },
        nodes: { type: "string" },
        namespaces: { type: "string" },
        "single-file": { type: "boolean" },
      },
    });
  } catch (e) {
    console.error(`${(e as Error).message}\n${usage}`);
    Deno.exit(2);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    console.error(usage);
    Deno.exit(2);
  }
  const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
  const options: ScaleOptions = {
    workloads: num(values.workloads, ACCEPTANCE.workloads),
    services: num(values.services, ACCEPTANCE.services),
    policies: num(values.policies, ACCEPTANCE.policies),
    nodes: num(values.nodes, ACCEPTANCE.nodes),
    namespaces: num(values.namespaces, ACCEPTANCE.namespaces),
    singleFile: values["single-file"] === true,
  };
  try {
    const dir = positionals[0];
    const paths = await writeScaleConfig(dir, options);
    const r = await assertScaleConfigCompiles(dir, options);
    const bytes = paths.reduce((sum, p) => sum + Deno.statSync(p).size, 0);
    console.log(
      `${dir}: ${paths.length} file(s), ${(bytes / 1024).toFixed(0)} KiB, ` +
        `${r.snapshot!.resources.length} resources; compiles with no issue`,
    );
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
