/**
 * The compose lab (deploy/compose): `docker-compose config` (the Debian
 * package, 1.29) validates the compose file, and its normalized output is
 * checked against the mesh config: three hosts on one network at the Nodes'
 * addresses, each app in the network namespace of the host its WorkloadEntry
 * names, the waypoint on the Gateway's host, the CA where Mesh spec.ca points.
 * A broken copy is rejected, so the validation is real. No container engine
 * runs; tests/netns/compose_netns_test.ts runs the same topology for real.
 */
import { parseAllDocuments } from "yaml";
import { assertEquals, assertIncludes, assertOk } from "../_util/asserts.ts";
import { REPO_ROOT, runAmbit } from "../_util/proc.ts";
import {
  type ComposeFile,
  type ComposeService,
  dockerfileEntrypoint,
  parseCompose,
  startOrder,
} from "../netns/_compose.ts";

const DIR = `${REPO_ROOT}deploy/compose`;
const COMPOSE = `${DIR}/docker-compose.yml`;

function haveDockerCompose(): boolean {
  try {
    return new Deno.Command("docker-compose", { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}
const HAVE_COMPOSE = haveDockerCompose();

async function composeConfig(file: string): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command("docker-compose", {
    args: ["--file", file, "config"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

type Resource = {
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
};

async function meshResources(): Promise<Resource[]> {
  const out: Resource[] = [];
  for (const entry of Deno.readDirSync(`${DIR}/mesh`)) {
    if (!entry.name.endsWith(".yaml")) continue;
    const text = await Deno.readTextFile(`${DIR}/mesh/${entry.name}`);
    for (const doc of parseAllDocuments(text)) {
      if (!Array.isArray(doc) && doc.contents) out.push(doc.toJS() as Resource);
    }
  }
  return out;
}

/** The value after `flag` in an argv. */
function flag(argv: readonly string[] | undefined, name: string): string | undefined {
  const i = argv?.indexOf(name) ?? -1;
  return i < 0 ? undefined : argv![i + 1];
}

function hostOf(s: ComposeService): string | undefined {
  return s.networkMode?.match(/^service:(.+)$/)?.[1];
}

/** Checks the normalized compose file against the mesh config. */
function checkTopology(file: ComposeFile, mesh: Resource[]): void {
  const nets = Object.keys(file.networks);
  assertEquals(nets.length, 1, "one network");
  const [net] = nets;
  const subnet = file.networks[net][0];
  assertOk(subnet, "the network has a fixed IPv4 subnet");
  const hosts = [...file.services.values()].filter((s) => s.networkMode === undefined);
  assertEquals(hosts.map((s) => s.name).sort(), ["host-a", "host-b", "host-w"], "three hosts");
  // Every Node is a host container at the Node's address, on the one network.
  const nodes = mesh.filter((r) => r.kind === "Node");
  assertEquals(nodes.map((n) => n.metadata.name).sort(), hosts.map((h) => h.name).sort());
  for (const n of nodes) {
    const h = file.services.get(n.metadata.name)!;
    assertEquals(Object.keys(h.networks), [net], `${h.name} is only on ${net}`);
    assertEquals(h.networks[net], n.spec!.address, `${h.name}'s ipv4_address is its Node's`);
    assertOk(inSubnet(String(n.spec!.address), subnet), `${h.name} is in ${subnet}`);
  }
  // Every WorkloadEntry is a container in the network namespace of its Node.
  for (const w of mesh.filter((r) => r.kind === "WorkloadEntry")) {
    const app = file.services.get(w.metadata.name);
    assertOk(app, `a service runs WorkloadEntry ${w.metadata.name}`);
    assertEquals(app.networkMode, `service:${w.spec!.node}`, `${app.name} shares its host`);
  }
  // A ztunnel on each host that has workloads, for its own Node, as the host's process.
  const roles = [...file.services.values()].filter((s) => s.dockerfile !== undefined);
  const ztunnels = roles.filter((s) => s.command?.[0] === "ztunnel");
  assertEquals(ztunnels.map((s) => s.name).sort(), ["host-a", "host-b"]);
  for (const z of ztunnels) assertEquals(flag(z.command, "--node"), z.name);
  // The waypoint on the host its Gateway names, at the Gateway's address.
  const gateway = mesh.find((r) => r.kind === "Gateway")!;
  const waypoint = roles.find((s) => s.command?.[0] === "waypoint")!;
  assertEquals(
    flag(waypoint.command, "--name"),
    `${gateway.metadata.namespace}/${gateway.metadata.name}`,
  );
  const wHost = gateway.metadata.annotations!["ambit.io/node"];
  assertEquals(hostOf(waypoint), wHost);
  const gwAddress = (gateway.spec!.addresses as { value: string }[])[0].value;
  assertEquals(file.services.get(wHost)!.networks[net], gwAddress);
  // The CA where Mesh spec.ca.address says, for the Mesh's trust domain, with a
  // credential for every Node, each mounted only by its host.
  const meshSpec = mesh.find((r) => r.kind === "Mesh")!.spec as {
    trustDomain: string;
    ca: { address: string };
  };
  const ca = roles.find((s) => s.command?.[0] === "ca" && s.command?.[1] === "serve")!;
  assertEquals(
    `${ca.networks[net]}:${flag(ca.command, "--listen")?.split(":")[1]}`,
    meshSpec.ca.address,
  );
  const init = file.services.get("ca-init")!;
  const script = init.command!.join("\n");
  assertIncludes(script, `--trust-domain ${meshSpec.trustDomain}`);
  for (const n of nodes) assertIncludes(script, `issue-node ${n.metadata.name} `);
  for (const n of nodes) {
    const users = [...file.services.values()].filter((s) =>
      s.mounts.some((m) => m.type === "volume" && m.source === `cred-${n.metadata.name}`)
    ).map((s) => hostOf(s) ?? s.name);
    assertEquals([...new Set(users)].sort(), ["ca-init", n.metadata.name].sort());
  }
  // Start-up order: the CA files, then the CA, then the ztunnels and waypoint, then the apps.
  assertEquals(ca.dependsOn["ca-init"], "service_completed_successfully");
  const order = startOrder(file);
  const before = (a: string, b: string) =>
    assertOk(order.indexOf(a) < order.indexOf(b), `${a} starts before ${b}`);
  before("ca-init", ca.name);
  for (const s of [...ztunnels, waypoint]) before(ca.name, s.name);
  for (const s of file.services.values()) {
    for (const [dep, cond] of Object.entries(s.dependsOn)) {
      if (cond === "service_healthy") {
        assertOk(file.services.get(dep)!.healthcheck, `${dep} has a healthcheck`);
      }
    }
  }
  assertEquals(file.services.get("client")!.dependsOn.waypoint, "service_healthy");
}

function inSubnet(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split("/");
  const n = (a: string) => a.split(".").reduce((v, o) => v * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(len));
  return Math.floor(n(ip) / size) === Math.floor(n(base) / size);
}

Deno.test({
  name: "compose lab: docker-compose config accepts the file; its topology matches the mesh",
  ignore: !HAVE_COMPOSE,
}, async () => {
  const r = await composeConfig(COMPOSE);
  assertEquals(r.code, 0, r.err);
  const normalized = parseCompose(r.out);
  checkTopology(normalized, await meshResources());
  // The file as written (what the network-namespace test runs) says the same.
  const written = parseCompose(await Deno.readTextFile(COMPOSE));
  assertEquals([...written.services.keys()].sort(), [...normalized.services.keys()].sort());
  checkTopology(written, await meshResources());
  // The ambit services run the image built from the Dockerfile, whose entrypoint is ambit.
  for (const s of normalized.services.values()) {
    if (s.image?.startsWith("python:")) continue;
    assertEquals(s.dockerfile, `${REPO_ROOT.replace(/\/$/, "")}/deploy/compose/Dockerfile`);
  }
});

Deno.test({
  name: "compose lab: docker-compose config rejects a broken copy (network_mode, condition, key)",
  ignore: !HAVE_COMPOSE,
}, async () => {
  const text = await Deno.readTextFile(COMPOSE);
  const tmp = await Deno.makeTempDir({ prefix: "ambit-compose-" });
  try {
    const cases: [string, string, string][] = [
      ['network_mode: "service:host-a"', 'network_mode: "service:host-z"', "host-z"],
      ["condition: service_completed_successfully", "condition: service_finished", "condition"],
      ["ipv4_address: 172.28.213.11", "ipv4_addres: 172.28.213.11", "ipv4_addres"],
    ];
    for (const [from, to, says] of cases) {
      assertIncludes(text, from);
      const file = `${tmp}/docker-compose.yml`;
      await Deno.writeTextFile(file, text.replace(from, to));
      const r = await composeConfig(file);
      assertOk(r.code !== 0, `docker-compose config accepted ${to}`);
      assertIncludes(r.err, says);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("compose lab: the topology check notices a host that is not at its Node's address", async () => {
  const file = parseCompose(await Deno.readTextFile(COMPOSE));
  const mesh = (await meshResources()).map((r) =>
    r.kind === "Node" && r.metadata.name === "host-b"
      ? { ...r, spec: { ...r.spec, address: "172.28.213.99" } }
      : r
  );
  let error: unknown;
  try {
    checkTopology(file, mesh);
  } catch (e) {
    error = e;
  }
  assertOk(error instanceof Error, "checkTopology accepted a moved Node");
  assertIncludes(error.message, "host-b's ipv4_address is its Node's");
});

Deno.test("compose lab: ambit validate --strict accepts the lab's mesh config", async () => {
  const r = await runAmbit(["validate", "--strict", "deploy/compose/mesh"]);
  assertEquals(r.code, 0, r.stdout + r.stderr);
  assertIncludes(r.stdout, "0 errors, 0 warnings");
});

Deno.test("compose lab: the Dockerfile runs the binaries `deno task compile` builds", async () => {
  const dockerfile = await Deno.readTextFile(`${DIR}/Dockerfile`);
  assertEquals(dockerfileEntrypoint(dockerfile), ["/usr/local/bin/ambit"]);
  assertIncludes(dockerfile, "FROM debian:bookworm-slim");
  assertOk(/^USER (?!root|0\b)\S+/m.test(dockerfile), "the image runs as a non-root user");
  const compile = await Deno.readTextFile(`${REPO_ROOT}scripts/compile.ts`);
  const targets = JSON.parse(compile.match(/const TARGETS = (\[[^\]]*\])/)![1]) as string[];
  const ignore = await Deno.readTextFile(`${DIR}/Dockerfile.dockerignore`);
  const arch = { "x86_64": "amd64", "aarch64": "arm64" } as Record<string, string>;
  for (const t of targets) {
    const stage = new RegExp(
      `FROM base AS binary-${arch[t.split("-")[0]]}\\nCOPY dist/ambit-${t} /usr/local/bin/ambit`,
    );
    assertOk(stage.test(dockerfile), `the Dockerfile copies dist/ambit-${t}`);
    assertIncludes(ignore, `!dist/ambit-${t}`);
  }
});
