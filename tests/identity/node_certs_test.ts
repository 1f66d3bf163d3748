/**
 * End to end with real processes: `ambit ca serve`, a node credential from
 * `ambit ca issue-node`, and `ambit ztunnel` obtaining certificates for its
 * workloads; `ambit certs` reads them from the admin API.
 */
import { assertEquals, assertEventually, assertIncludes } from "../_util/asserts.ts";
import { AmbitProcess, runAmbit } from "../_util/proc.ts";
import { freePort } from "../_util/net.ts";
import { meshYaml, TD } from "./_ca_fixture.ts";
import { NO_HOST_PORTS } from "../_util/proc.ts";

Deno.test("ztunnel obtains certificates from the CA service with its node credential; ambit certs shows them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ambit-node-certs-" });
  const caPort = freePort();
  const adminPort = freePort();
  const procs: AmbitProcess[] = [];
  try {
    await Deno.mkdir(`${dir}/mesh`);
    await Deno.writeTextFile(`${dir}/mesh/mesh.yaml`, meshYaml(["node-a", "node-b"]));
    assertEquals(
      (await runAmbit(["ca", "init", "--trust-domain", TD, "--out", `${dir}/ca`, "--intermediate"]))
        .code,
      0,
    );
    assertEquals(
      (await runAmbit([
        "ca",
        "issue-node",
        "node-a",
        "--ca",
        `${dir}/ca`,
        "--out",
        `${dir}/node-a`,
      ])).code,
      0,
    );
    const caAdmin = freePort();
    const ca = new AmbitProcess([
      "ca",
      "serve",
      "--config",
      `${dir}/mesh`,
      "--ca",
      `${dir}/ca`,
      "--listen",
      `127.0.0.1:${caPort}`,
      "--admin",
      `127.0.0.1:${caAdmin}`,
      "--log-format",
      "json",
    ]);
    procs.push(ca);
    await ca.waitForRecord((r) => r.msg === "CA service listening");
    const z = new AmbitProcess([
      "ztunnel",
      "--config",
      `${dir}/mesh`,
      "--node",
      "node-a",
      "--credential",
      `${dir}/node-a`,
      "--ca-address",
      `127.0.0.1:${caPort}`,
      "--admin",
      `127.0.0.1:${adminPort}`,
      ...NO_HOST_PORTS,
      "--log-format",
      "json",
    ]);
    procs.push(z);
    const issued = await z.waitForRecord((r) => r.msg === "certificate issued");
    assertEquals(issued.identity, `spiffe://${TD}/ns/shop/sa/web`);
    await ca.waitForRecord((r) => r.msg === "certificate issued" && r.node === "node-a");

    const text = await runAmbit(["certs", "--admin", `127.0.0.1:${adminPort}`]);
    assertEquals(text.code, 0, text.stderr);
    assertIncludes(text.stdout, "node node-a");
    assertIncludes(text.stdout, `spiffe://${TD}/ns/shop/sa/web`);
    assertIncludes(text.stdout, "valid");
    assertIncludes(text.stdout, "trust root: O=ambit.test, CN=ambit root CA");

    // `ambit status` and `ambit config dump` read the same running node.
    const status = await runAmbit(["status", "--admin", `127.0.0.1:${adminPort}`]);
    assertEquals(status.code, 0, status.stdout + status.stderr);
    assertIncludes(status.stdout, "node node-a");
    assertIncludes(status.stdout, ": ready");
    assertIncludes(status.stdout, `shop/web`);
    assertIncludes(status.stdout, `spiffe://${TD}/ns/shop/sa/web`);
    const dump = await runAmbit([
      "config",
      "dump",
      "--admin",
      `127.0.0.1:${adminPort}`,
      "--node",
      "node-a",
      "--output",
      "json",
    ]);
    assertEquals(dump.code, 0, dump.stdout + dump.stderr);
    const effective = JSON.parse(dump.stdout);
    assertEquals(effective.node.name, "node-a");
    assertEquals(effective.lastReloadError, null);
    assertEquals(effective.certificates[0].id, `spiffe://${TD}/ns/shop/sa/web`);
    const wrong = await runAmbit([
      "config",
      "dump",
      "--admin",
      `127.0.0.1:${adminPort}`,
      "--node",
      "node-b",
    ]);
    assertEquals(wrong.code, 2);
    assertIncludes(wrong.stderr, 'is "node-a", not "node-b"');

    // Expiry and failure metrics on the node, signed counts at the CA.
    const nodeMetrics = await (await fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`))
      .text();
    assertIncludes(
      nodeMetrics,
      `ambit_certificate_expiry_timestamp_seconds{identity="spiffe://${TD}/ns/shop/sa/web"}`,
    );
    assertIncludes(
      nodeMetrics,
      `ambit_certificate_consecutive_failures{identity="spiffe://${TD}/ns/shop/sa/web"} 0`,
    );
    const caMetrics = await (await fetch(`http://127.0.0.1:${caAdmin}/stats/prometheus`)).text();
    assertIncludes(caMetrics, "ambit_ca_certificates_signed_total 1");

    // The workload moves to node-b: node-a forgets its certificate.
    await Deno.writeTextFile(
      `${dir}/mesh/mesh.yaml`,
      meshYaml(["node-a", "node-b"]).replace(
        "{node: node-a, serviceAccount: web}",
        "{node: node-b, serviceAccount: web}",
      ),
    );
    await z.waitForRecord((r) => r.msg === "certificate forgotten: identity left the node");
    await assertEventually(async () => {
      const json = await runAmbit([
        "certs",
        "--admin",
        `127.0.0.1:${adminPort}`,
        "--output",
        "json",
      ]);
      return JSON.parse(json.stdout).identities.length === 0;
    });

    // The admin API is local only: no answer on a non-loopback address, and a clear error from the CLI when down.
    const unused = `127.0.0.1:${freePort()}`;
    for (const cmd of [["certs"], ["status"], ["config", "dump"]]) {
      const down = await runAmbit([...cmd, "--admin", unused]);
      assertEquals(down.code, 1, cmd.join(" "));
      assertIncludes(down.stdout, "is the node running");
    }
  } finally {
    for (const p of procs.reverse()) assertEquals(await p.stop(), 0);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ztunnel refuses to start without a certificate source, naming the options", async () => {
  const r = await runAmbit([
    "ztunnel",
    "--config",
    "config/edge",
    "--node",
    "edge-1",
    "--admin",
    "off",
  ]);
  assertEquals(r.code, 2);
  assertIncludes(r.stderr, "no certificate source: give --credential DIR");
});
