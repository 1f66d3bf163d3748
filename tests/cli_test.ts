/**
 * The CLI as users run it: real processes with the compiled binary's flags.
 */
import { assertEquals, assertIncludes, assertOk } from "./_util/asserts.ts";
import { REPO_ROOT, runAmbit } from "./_util/proc.ts";
import { AMBIT_RUN_FLAGS } from "../mod/permissions.ts";
import { VERSION } from "../mod/version.ts";
import { rootCommand } from "../mod/cli/main.ts";
import { renderLabConfig, renderReadme } from "../scripts/generate.ts";

const badUsage: [string, string[], string][] = [
  ["no command", [], "ambit: missing command"],
  ["unknown command", ["frobnicate"], 'ambit: unknown command "frobnicate"'],
  [
    "unknown option",
    ["validate", "--frob", "config/lab"],
    "ambit validate: Unknown option '--frob'",
  ],
  ["validate without a path", ["validate"], "ambit validate: missing argument <path>"],
  ["validate with two paths", ["validate", "a", "b"], 'ambit validate: unexpected argument "b"'],
  [
    "validate bad --output",
    ["validate", "--output", "xml", "config/lab"],
    "--output must be one of text, json",
  ],
  ["validate a missing path", ["validate", "no/such/dir"], 'cannot read config "no/such/dir"'],
  ["config without a command", ["config"], "ambit config: missing command"],
  [
    "config dump with a bad --admin",
    ["config", "dump", "--admin", "nope"],
    '--admin "nope" is not host:port',
  ],
  ["status with a bad --admin", ["status", "--admin", "host"], '--admin "host" is not host:port'],
  ["status stray argument", ["status", "x"], 'unexpected argument "x"'],
  ["certs with a bad --admin", ["certs", "--admin", ":99999"], '--admin ":99999" is not host:port'],
  ["ztunnel with a bad --dns", [
    "ztunnel",
    "--config",
    "config/lab",
    "--node",
    "node-a",
    "--dns",
    "53",
  ], '--dns "53" is not host:port'],
  ["ztunnel with a bad --drain", [
    "ztunnel",
    "--config",
    "config/lab",
    "--node",
    "node-a",
    "--drain",
    "soon",
  ], '--drain "soon" is not a duration'],
  [
    "config dump unknown node",
    ["config", "dump", "--config", "config/lab", "--node", "node-z"],
    'node "node-z" is not in the config',
  ],
  ["ztunnel without --config", ["ztunnel", "--node", "node-a"], "ambit ztunnel: missing --config"],
  [
    "ztunnel without --node",
    ["ztunnel", "--config", "config/lab"],
    "ambit ztunnel: missing --node",
  ],
  [
    "ztunnel unknown node",
    ["ztunnel", "--config", "config/lab", "--node", "node-z"],
    'node "node-z" is not in the config (nodes: node-a, node-b)',
  ],
  ["ztunnel stray argument", ["ztunnel", "extra"], 'unexpected argument "extra"'],
  [
    "waypoint without --name",
    ["waypoint", "--config", "config/lab"],
    "ambit waypoint: missing --name",
  ],
  [
    "waypoint malformed --name",
    ["waypoint", "--config", "config/lab", "--name", "waypoint"],
    "--name must be namespace/name",
  ],
  [
    "waypoint unknown",
    ["waypoint", "--config", "config/lab", "--name", "shop/nope"],
    'waypoint "shop/nope" is not in the config',
  ],
  ["ca without a command", ["ca"], "ambit ca: missing command"],
  [
    "ca init without --out",
    ["ca", "init", "--trust-domain", "ex.org"],
    "ambit ca init: missing --out",
  ],
  [
    "ca init bad trust domain",
    ["ca", "init", "--trust-domain", "Ex Org", "--out", "/tmp/x"],
    'ambit ca init: "Ex Org" is not a valid trust domain',
  ],
  [
    "ca issue without --id",
    ["ca", "issue", "--ca", "/tmp/none", "--out", "/tmp/x"],
    "ambit ca issue: missing --id",
  ],
  [
    "ca issue bad id",
    ["ca", "issue", "--ca", "/tmp/none", "--out", "/tmp/x", "--id", "web"],
    'ambit ca issue: "web" is not a SPIFFE ID',
  ],
  ["ca issue bad ttl", [
    "ca",
    "issue",
    "--ca",
    "/tmp/none",
    "--out",
    "/tmp/x",
    "--id",
    "spiffe://t/ns/a/sa/b",
    "--ttl",
    "soon",
  ], '--ttl "soon" is not a duration'],
  ["ca issue missing CA", [
    "ca",
    "issue",
    "--ca",
    "/tmp/ambit-no-ca",
    "--out",
    "/tmp/x",
    "--id",
    "spiffe://t/ns/a/sa/b",
  ], "cannot read /tmp/ambit-no-ca/root-cert.pem"],
  [
    "ca issue-node without node",
    ["ca", "issue-node", "--ca", "/tmp/none", "--out", "/tmp/x"],
    "ambit ca issue-node: missing argument <node>",
  ],
  [
    "ca serve without --ca",
    ["ca", "serve", "--config", "config/lab"],
    "ambit ca serve: missing --ca",
  ],
  ["ca serve bad --listen", [
    "ca",
    "serve",
    "--config",
    "config/lab",
    "--ca",
    "/tmp/none",
    "--listen",
    "nope",
  ], "cannot read /tmp/none/root-cert.pem"],
  ["lab stray argument", ["lab", "extra"], 'unknown command "extra"'],
  ["lab up stray argument", ["lab", "up", "extra"], 'ambit lab up: unexpected argument "extra"'],
  ["lab up --dir without a value", ["lab", "up", "--dir"], "argument missing"],
  ["lab down unknown option", ["lab", "down", "--frob"], "ambit lab down: Unknown option '--frob'"],
  ["check without --config", ["check"], "ambit check: missing --config"],
  [
    "check without --node or --waypoint",
    ["check", "--config", "config/lab"],
    "ambit check: missing --node NAME (or --waypoint NS/NAME)",
  ],
  [
    "status with a bad --wait-ready",
    ["status", "--wait-ready", "soon"],
    '--wait-ready "soon" is not a duration',
  ],
  ["version stray argument", ["version", "x"], 'unexpected argument "x"'],
  [
    "bad --log-level",
    ["version", "--log-level", "loud"],
    "--log-level must be one of error, warn, info, debug, trace",
  ],
];

Deno.test("every bad command line prints usage and exits 2", async () => {
  const results = await Promise.all(badUsage.map(([, args]) => runAmbit(args)));
  badUsage.forEach(([name, , want], i) => {
    const { code, stderr } = results[i];
    assertEquals(code, 2, `${name}: exit code; stderr:\n${stderr}`);
    assertIncludes(stderr, want, `${name}: message`);
    assertOk(
      /Usage: ambit|config has|cannot read config|is not in the config/.test(stderr),
      `${name}: usage shown\n${stderr}`,
    );
  });
});

Deno.test("the bad-usage table covers every command that runs", () => {
  const paths: string[] = [];
  const visit = (cmd: typeof rootCommand, path: string[]) => {
    if (cmd.run && path.length > 0) paths.push(path.join(" "));
    for (const sub of cmd.subcommands ?? []) visit(sub, [...path, sub.name]);
  };
  visit(rootCommand, []);
  const covered = (p: string) =>
    badUsage.some(([, args]) => {
      const words = args.filter((a) => !a.startsWith("-"));
      return words.slice(0, p.split(" ").length).join(" ") === p;
    });
  assertEquals(paths.filter((p) => !covered(p)), [], "commands without a bad-usage case");
});

Deno.test("every command has --help, exiting 0", async () => {
  const paths: string[][] = [];
  const visit = (cmd: typeof rootCommand, path: string[]) => {
    paths.push(path);
    for (const sub of cmd.subcommands ?? []) visit(sub, [...path, sub.name]);
  };
  visit(rootCommand, []);
  const results = await Promise.all(paths.map((p) => runAmbit([...p, "--help"])));
  paths.forEach((p, i) => {
    assertEquals(results[i].code, 0, `ambit ${p.join(" ")} --help`);
    assertIncludes(results[i].stdout, `Usage: ambit${p.length ? " " + p.join(" ") : ""}`);
  });
});

Deno.test("validate: the example configs are valid", async () => {
  for (const dir of ["config/lab", "config/edge"]) {
    const { code, stdout } = await runAmbit(["validate", "--strict", dir]);
    assertEquals(code, 0, stdout);
    assertIncludes(stdout, `${dir}: valid`);
  }
});

Deno.test("validate: a broken config exits 2 and reports every problem with file and line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/a.yaml`,
      "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selctor: {app: x}\n  ports: [{port: http}]\n",
    );
    await Deno.writeTextFile(
      `${dir}/b.yaml`,
      "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [x\n",
    );
    const { code, stdout } = await runAmbit(["validate", dir]);
    assertEquals(code, 2);
    assertEquals(stdout.trimEnd().split("\n"), [
      `${dir}/a.yaml:5 spec.selctor: unknown field "selctor" (did you mean "selector"?)`,
      `${dir}/a.yaml:6 spec.ports[0].port: "http" is not a port number (use a number from 1 to 65535)`,
      `${dir}/b.yaml:5: YAML: Flow sequence in block collection must be sufficiently indented and end with a ]`,
      `${dir}: invalid, 3 errors, 0 warnings`,
    ]);
    const json = await runAmbit(["validate", "--output", "json", dir]);
    assertEquals(json.code, 2);
    const parsed = JSON.parse(json.stdout);
    assertEquals(parsed.valid, false);
    assertEquals(parsed.issues[0].path, "spec.selctor");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config dump --node shows only that node's workloads", async () => {
  const { code, stdout } = await runAmbit([
    "config",
    "dump",
    "--config",
    "config/lab",
    "--node",
    "node-a",
    "--output",
    "json",
  ]);
  assertEquals(code, 0);
  const dump = JSON.parse(stdout);
  assertEquals(dump.node.name, "node-a");
  assertEquals(
    dump.workloads.map((w: { key: string }) => w.key).sort(),
    ["legacy/batch", "shop/productpage", "shop/sleep"],
  );
  const reviews = dump.services.find((s: { key: string }) => s.key === "shop/reviews");
  assertEquals(reviews.waypoint, "shop/waypoint");
  assertEquals(reviews.endpoints.length, 2);
});

Deno.test("version prints ambit's and the runtime's versions", async () => {
  const { code, stdout } = await runAmbit(["version", "--output", "json"]);
  assertEquals(code, 0);
  const v = JSON.parse(stdout);
  assertEquals(v.ambit, VERSION);
  assertEquals(v.deno, Deno.version.deno);
});

Deno.test("deno.json agrees with the code: version, permission flags, pinned Deno", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}deno.json`));
  assertEquals(denoJson.version, VERSION);
  assertEquals(denoJson.tasks.ambit, `deno run ${AMBIT_RUN_FLAGS.join(" ")} main.ts`);
  const wrapper = await Deno.readTextFile(`${REPO_ROOT}scripts/deno`);
  assertIncludes(wrapper, `DENO_VERSION=${Deno.version.deno}`);
});

Deno.test("generated files are current: README reference sections and the embedded lab config", async () => {
  const readme = await Deno.readTextFile(`${REPO_ROOT}README.md`);
  assertOk(
    (await renderReadme(readme)) === readme,
    "README.md is out of date: run deno task generate",
  );
  const lab = await Deno.readTextFile(`${REPO_ROOT}mod/lab/lab_config.ts`);
  assertOk(
    (await renderLabConfig()) === lab,
    "mod/lab/lab_config.ts is out of date: run deno task generate",
  );
});
