/**
 * Writes a large, valid mesh config for benchmarks: N workloads spread over
 * nodes and namespaces, services selecting them, policies of every L4 shape.
 *
 *   deno run -A scripts/gen_scale_config.ts OUTDIR [--workloads 2000] [--services 500]
 *     [--policies 500] [--nodes 20] [--namespaces 20] [--single-file]
 */
import { parseArgs } from "node:util";

/** Sizes of the generated mesh. */
export interface ScaleOptions {
  workloads: number;
  services: number;
  policies: number;
  nodes: number;
  namespaces: number;
  singleFile: boolean;
}

/** Returns file name → YAML text. */
export function generateScaleConfig(o: ScaleOptions): Record<string, string> {
  const files: Record<string, string[]> = { "nodes.yaml": [] };
  const add = (file: string, doc: string) => (files[file] ??= []).push(doc);
  add(
    "nodes.yaml",
    "apiVersion: ambit.io/v1alpha1\nkind: Mesh\nmetadata: {name: mesh}\nspec: {trustDomain: scale.ambit}",
  );
  for (let n = 0; n < o.nodes; n++) {
    add(
      "nodes.yaml",
      `apiVersion: ambit.io/v1alpha1\nkind: Node\nmetadata: {name: node-${n}}\nspec: {address: 10.0.${n}.1}`,
    );
  }
  const ns = (i: number) => `ns-${i % o.namespaces}`;
  for (let i = 0; i < o.namespaces; i++) {
    const wp = i % 4 === 0 ? `\n    istio.io/use-waypoint: waypoint` : "";
    add(
      `${ns(i)}.yaml`,
      `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${
        ns(i)
      }\n  labels:\n    istio.io/dataplane-mode: ambient${wp}`,
    );
    if (i % 4 === 0) {
      add(
        `${ns(i)}.yaml`,
        `apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: waypoint\n  namespace: ${
          ns(i)
        }\n  annotations: {ambit.io/node: node-${
          i % o.nodes
        }}\nspec:\n  gatewayClassName: istio-waypoint\n  addresses: [{value: 10.1.${i}.1}]\n  listeners: [{name: mesh, port: 15008, protocol: HBONE}]`,
      );
    }
  }
  for (let w = 0; w < o.workloads; w++) {
    const n = w % o.nodes;
    const app = `app-${w % o.services}`;
    add(
      `${ns(w % o.services)}.yaml`,
      `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: w-${w}\n  namespace: ${
        ns(w % o.services)
      }\n` +
        `spec:\n  node: node-${n}\n  address: 10.2.${w >> 8}.${w & 255}\n  serviceAccount: sa-${
          w % o.services
        }\n` +
        `  labels:\n    app: ${app}\n    version: v${
          w % 3
        }\n  ports:\n    http: 8080\n    grpc: 9090`,
    );
  }
  for (let s = 0; s < o.services; s++) {
    add(
      `${ns(s)}.yaml`,
      `apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-${s}\n  namespace: ${
        ns(s)
      }\nspec:\n  selector:\n    app: app-${s}\n` +
        `  ports:\n  - name: http\n    port: 80\n    targetPort: http\n    appProtocol: http\n  - name: grpc\n    port: 9090\n    targetPort: grpc`,
    );
  }
  for (let p = 0; p < o.policies; p++) {
    const action = p % 5 === 0 ? "DENY" : "ALLOW";
    const when = p % 3 === 0
      ? `\n    when:\n    - key: source.ip\n      values: ["10.2.0.0/16"]`
      : "";
    add(
      `${ns(p)}.yaml`,
      `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: pol-${p}\n  namespace: ${
        ns(p)
      }\n` +
        `spec:\n  selector:\n    matchLabels:\n      app: app-${
          p % o.services
        }\n  action: ${action}\n  rules:\n  - from:\n` +
        `    - source:\n        principals: ["scale.ambit/ns/${ns(p + 1)}/sa/sa-${
          (p + 1) % o.services
        }"]\n` +
        `    - source:\n        namespaces: ["${
          ns(p + 2)
        }"]\n    to:\n    - operation:\n        ports: ["8080", "9090"]${when}`,
    );
  }
  const out: Record<string, string> = {};
  for (const [f, docs] of Object.entries(files)) out[f] = docs.join("\n---\n") + "\n";
  if (o.singleFile) return { "mesh.yaml": Object.values(out).join("---\n") };
  return out;
}

/** Writes the generated config into `dir`. */
export async function writeScaleConfig(dir: string, o: ScaleOptions): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const [f, text] of Object.entries(generateScaleConfig(o))) {
    await Deno.writeTextFile(`${dir}/${f}`, text);
  }
}

/** Default sizes: the acceptance figures. */
export const ACCEPTANCE: ScaleOptions = {
  workloads: 2000,
  services: 500,
  policies: 500,
  nodes: 20,
  namespaces: 20,
  singleFile: false,
};

if (import.meta.main) {
  const { values, positionals } = parseArgs({
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
  if (positionals.length !== 1) {
    console.error(
      "usage: gen_scale_config.ts OUTDIR [--workloads N] [--services N] [--policies N] [--single-file]",
    );
    Deno.exit(2);
  }
  const num = (v: string | undefined, d: number) => (v === undefined ? d : Number(v));
  await writeScaleConfig(positionals[0], {
    workloads: num(values.workloads, ACCEPTANCE.workloads),
    services: num(values.services, ACCEPTANCE.services),
    policies: num(values.policies, ACCEPTANCE.policies),
    nodes: num(values.nodes, ACCEPTANCE.nodes),
    namespaces: num(values.namespaces, ACCEPTANCE.namespaces),
    singleFile: values["single-file"] === true,
  });
}
