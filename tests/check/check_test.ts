/**
 * `ambit check` against real processes: a CA service, a peer ztunnel, node
 * credentials from `ambit ca issue-node`, real listeners in the way.
 */
import { assertEquals, assertIncludes, assertOk } from "../_util/asserts.ts";
import { addressBlock } from "../_util/addresses.ts";
import { freePort } from "../_util/net.ts";
import { NO_HOST_PORTS, runAmbit } from "../_util/proc.ts";
import { UPGRADE_HINT } from "../../mod/check/ports.ts";
import { type CheckJson, checkMesh, meshYaml } from "./_fixture.ts";

const item = (r: CheckJson, check: string, subject: string) => {
  const c = r.checks.find((x) => x.name === check)!;
  const i = c.items?.find((x) => x.subject.includes(subject));
  assertOk(i, `no ${check} item "${subject}" in ${JSON.stringify(c, null, 2)}`);
  return i;
};

const migrateReq = await Deno.readTextFile("/proc/sys/net/ipv4/tcp_migrate_req")
  .then((t) => t.trim(), () => undefined);

Deno.test("ambit check diagnoses a node against its real mesh", async (t) => {
  const m = await checkMesh();
  try {
    await t.step("all ok with a peer node running (exit 0)", async () => {
      const r = await m.checkJson();
      assertEquals(r.code, 0, JSON.stringify(r, null, 2));
      assertEquals(r.status, {
        config: "ok",
        ports: "ok",
        certificates: "ok",
        ca: "ok",
        peers: "ok",
        clock: "ok",
        upgrade: migrateReq === "1" ? "ok" : "warn",
      });
      assertIncludes(r.checks[0].detail, `1 file, 7 resources, node node-a (${m.a(1, 1)})`);
      // HBONE, plaintext, the outbound VIP listener, metrics, readiness, admin.
      assertEquals(r.checks[1].items?.length, 6);
      assertIncludes(item(r, "ports", "outbound apps/echo:80").subject, `${m.a(3, 1)}:80/tcp`);
      assertIncludes(r.checks[2].detail, "node credential spiffe://ambit.test/ambit/node/node-a");
      assertIncludes(r.checks[3].detail, `${m.a(0, 1)}:15012 is spiffe://ambit.test/ambit/ca`);
      const peer = item(r, "peers", "node node-b");
      assertEquals(peer.status, "ok");
      assertIncludes(peer.detail, "spiffe://ambit.test/ns/apps/sa/echo");
      assertOk(typeof (r.checks[4].data?.peers as { rttMs: number }[])[0].rttMs === "number");
      assertOk(Math.abs(r.checks[5].data?.skewMs as number) < 2000);
    });

    await t.step(
      "a role started on another node's admin address is refused (exit 2) before it binds anything",
      async () => {
        const r = await runAmbit([
          "ztunnel",
          "--config",
          m.config,
          "--node",
          "node-a",
          "--credential",
          m.cred["node-a"],
          "--admin",
          `${m.a(2, 1)}:15000`,
          ...NO_HOST_PORTS,
        ]);
        assertEquals(r.code, 2, r.stderr);
        assertIncludes(
          r.stderr,
          `admin address ${m.a(2, 1)}:15000 belongs to ztunnel node-b (pid ${m.nodeB.pid})`,
        );
        assertIncludes(r.stderr, "give it another --admin");
        // node-a's HBONE port was never bound: a plain listener can still take it.
        const l = Deno.listen({ hostname: m.a(1, 1), port: 15008 });
        l.close();
      },
    );

    await t.step("text output: a line per check and a summary", async () => {
      const r = await m.check();
      assertEquals(r.code, 0, r.stdout + r.stderr);
      const lines = r.stdout.trimEnd().split("\n");
      assertOk(lines[0].startsWith("ok    config        1 file, 7 resources, node node-a"));
      assertOk(lines.some((l) => /^ok {4}peers {9}1 peer answers HBONE, rtt /.test(l)), r.stdout);
      assertOk(lines.some((l) => l.startsWith("      ok    node node-b ")), r.stdout);
      assertIncludes(lines.at(-1)!, "0 failed, 0 skipped: ready to start");
    });

    await t.step(
      "a port taken by a plain listener fails with the holder and the flag",
      async () => {
        const plaintext = Deno.listen({ hostname: m.a(1, 1), port: 15006 });
        const metrics = Deno.listen({ hostname: m.a(1, 1), port: 15020 });
        try {
          const r = await m.checkJson();
          assertEquals(r.code, 1);
          assertEquals(r.status.ports, "fail");
          const p = item(r, "ports", "plaintext inbound");
          assertEquals(p.status, "fail");
          assertIncludes(p.detail, `port in use by pid ${Deno.pid}`);
          assertEquals(p.hint, "stop it, or change Node spec.address");
          const mt = item(r, "ports", "metrics");
          assertEquals(mt.hint, "stop it, or pass --metrics HOST:PORT (or --metrics off)");
          assertEquals(item(r, "ports", "HBONE").status, "ok");
          // Moving the metrics listener clears that one.
          const moved = await m.checkJson(["--metrics", `${m.a(1, 1)}:${freePort(m.a(1, 1))}`]);
          assertEquals(item(moved, "ports", "metrics").status, "ok");
        } finally {
          plaintext.close();
          metrics.close();
        }
      },
    );

    await t.step("ports held by a running ambit of the same node warn (exit 0)", async () => {
      const z = await m.ztunnel("node-a");
      try {
        const r = await m.checkJson();
        assertEquals(r.code, 0, JSON.stringify(r.checks[1], null, 2));
        assertEquals(r.status.ports, "warn");
        for (const i of r.checks[1].items!) {
          assertEquals(i.status, "warn", i.subject);
          assertIncludes(i.detail, `by ambit pid ${z.pid} (ztunnel node-a)`);
          assertEquals(i.hint, UPGRADE_HINT);
        }
        assertIncludes(r.checks[1].detail, `all 6 addresses held by ambit pid ${z.pid}`);
        // The same ports checked as node-b's would be another instance: a failure.
        const other = await runAmbit([
          "check",
          "--config",
          m.config,
          "--node",
          "node-b",
          "--credential",
          m.cred["node-b"],
          "--admin",
          `${m.a(1, 1)}:15000`,
          ...NO_HOST_PORTS,
          "--output",
          "json",
        ]);
        const admin = JSON.parse(other.stdout).checks[1].items.find((
          i: { subject: string },
        ) => i.subject.includes("admin API"));
        assertEquals(admin.status, "fail");
        assertIncludes(admin.detail, "(ztunnel node-a), another role or instance");
      } finally {
        assertEquals(await z.stop(), 0);
      }
    });

    await t.step("a credential near expiry warns (exit 0)", async () => {
      const r = await m.checkJson(["--credential", m.cred.near]);
      assertEquals(r.code, 0);
      assertEquals(r.status.certificates, "warn");
      assertIncludes(r.checks[2].detail, "cert.pem: expires in 4d");
      assertIncludes(r.checks[2].hint ?? "", "ambit ca issue-node node-a");
      // Under a shorter threshold it is fine.
      const fine = await m.checkJson(["--credential", m.cred.near, "--cert-warn", "24h"]);
      assertEquals(fine.status.certificates, "ok");
    });

    await t.step("an expired credential fails, and the CA refuses it", async () => {
      const r = await m.checkJson(["--credential", m.cred.expired]);
      assertEquals(r.code, 1);
      assertEquals(r.status.certificates, "fail");
      assertIncludes(r.checks[2].detail, "cert.pem: expired");
      assertEquals(r.status.ca, "fail");
    });

    await t.step("a credential from another CA fails at the CA and the peers", async () => {
      const r = await m.checkJson(["--credential", m.cred.other]);
      assertEquals(r.code, 1);
      assertEquals(r.status.ca, "fail");
      assertIncludes(r.checks[3].detail, "does not chain to bundle.pem");
      assertIncludes(r.checks[3].hint ?? "", "this mesh's CA");
      assertEquals(item(r, "peers", "node node-b").status, "fail");
      assertIncludes(item(r, "peers", "node node-b").detail, "does not chain to the trust bundle");
    });

    await t.step("another node's credential fails the identity check", async () => {
      const r = await m.checkJson(["--credential", m.cred["node-b"]]);
      assertEquals(r.status.certificates, "fail");
      assertIncludes(r.checks[2].detail, `node "node-b"'s credential, not "node-a"'s`);
    });

    await t.step("CA down fails with what to check; the clock is skipped", async () => {
      const r = await m.checkJson(["--ca-address", `${m.a(0, 2)}:15012`]);
      assertEquals(r.code, 1);
      assertEquals(r.status.ca, "fail");
      assertIncludes(r.checks[3].detail, `cannot connect to the CA at ${m.a(0, 2)}:15012`);
      assertIncludes(r.checks[3].hint ?? "", "is 'ambit ca serve' running there?");
      assertEquals(r.status.clock, "skip");
    });

    await t.step("a CA address that never answers TLS times out", async () => {
      const silent = Deno.listen({ hostname: m.a(0, 3), port: 15012 });
      const held: Deno.Conn[] = [];
      const accepting = (async () => {
        for await (const c of silent) held.push(c);
      })();
      try {
        const started = Date.now();
        const r = await m.checkJson(["--ca-address", `${m.a(0, 3)}:15012`, "--timeout", "300ms"]);
        assertEquals(r.status.ca, "fail");
        assertIncludes(r.checks[3].detail, "TLS handshake did not finish within 300ms");
        assertOk(Date.now() - started < 15_000);
      } finally {
        silent.close();
        await accepting.catch(() => {});
        for (const c of held) c.close();
      }
    });

    await t.step("lab mode with --ca-dir checks the CA's own certificates", async () => {
      const r = await m.checkJson(["--credential", "", "--ca-dir", m.caDir]);
      assertEquals(r.code, 0, JSON.stringify(r.checks, null, 2));
      assertEquals(r.status.certificates, "ok");
      assertIncludes(r.checks[2].detail, "lab CA");
      assertEquals(r.status.ca, "skip");
      assertEquals(item(r, "peers", "node node-b").status, "ok");
    });

    await t.step("no certificate source fails with how to get one", async () => {
      const r = await m.checkJson(["--credential", ""]);
      assertEquals(r.status.certificates, "fail");
      assertIncludes(r.checks[2].hint ?? "", "ambit ca issue-node node-a");
    });

    await t.step("an unreachable peer fails with the hint", async () => {
      assertEquals(await m.nodeB.stop(), 0);
      const r = await m.checkJson();
      assertEquals(r.code, 1);
      assertEquals(r.status.peers, "fail");
      const p = item(r, "peers", "node node-b");
      assertIncludes(p.detail, "unreachable: ");
      assertEquals(
        p.hint,
        `is ambit running on ${m.a(2, 1)}? does the firewall allow TCP 15008 from this host?`,
      );
    });
  } finally {
    await m.close();
  }
});

Deno.test("ambit check reports an invalid config with file:line and skips the rest", async () => {
  const a = addressBlock();
  const dir = await Deno.makeTempDir({ prefix: "ambit-check-bad-" });
  try {
    const text = meshYaml(a).replace(`address: ${a(2, 1)},`, "address: 10.0.0,");
    await Deno.writeTextFile(`${dir}/mesh.yaml`, text);
    const line = text.split("\n").findIndex((l) => l.includes("10.0.0,")) + 1;
    const r = await runAmbit([
      "check",
      "--config",
      `${dir}/mesh.yaml`,
      "--node",
      "node-a",
      ...NO_HOST_PORTS,
    ]);
    assertEquals(r.code, 1, r.stdout + r.stderr);
    const lines = r.stdout.split("\n");
    assertOk(lines[0].startsWith("fail  config        1 file, 2 errors"), r.stdout);
    assertIncludes(lines[1], `fail  ${dir}/mesh.yaml:${line}: spec.address: "10.0.0" is not`);
    for (const name of ["ports", "certificates", "ca", "peers", "clock"]) {
      assertOk(
        lines.some((l) => l.startsWith(`skip  ${name.padEnd(12)}  needs a config that compiles`)),
        r.stdout,
      );
    }
    // A path that does not exist is a failed config check too, with what to give.
    const missing = await runAmbit(["check", "--config", `${dir}/nope`, "--node", "node-a"]);
    assertEquals(missing.code, 1);
    assertIncludes(missing.stdout, `fail  config        cannot read config "${dir}/nope"`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ambit check: every usage error exits 2 and shows the usage", async () => {
  const a = addressBlock();
  const dir = await Deno.makeTempDir({ prefix: "ambit-check-usage-" });
  try {
    await Deno.writeTextFile(`${dir}/mesh.yaml`, meshYaml(a));
    const c = ["--config", `${dir}/mesh.yaml`];
    const cases: [string[], string][] = [
      [[], "missing --config"],
      [[...c], "missing --node NAME (or --waypoint NS/NAME)"],
      [[...c, "--node", "node-a", "--waypoint", "apps/wp"], "either --node or --waypoint"],
      [[...c, "--node", "node-x"], 'node "node-x" is not in the config (nodes: node-a, node-b)'],
      [[...c, "--waypoint", "apps"], '--waypoint must be namespace/name, got "apps"'],
      [[...c, "--waypoint", "apps/wp"], 'waypoint "apps/wp" is not in the config'],
      [[...c, "--node", "node-a", "--timeout", "soon"], '--timeout "soon" is not a duration'],
      [[...c, "--node", "node-a", "--cert-warn", "0s"], '--cert-warn "0s" is not a duration'],
      [[...c, "--node", "node-a", "--ca-address", "ca"], '--ca-address "ca" is not host:port'],
      [[...c, "--node", "node-a", "--dns", "53"], '--dns "53" is not host:port'],
      [[...c, "--node", "node-a", "--metrics", "x:y"], '--metrics "x:y" is not host:port'],
      [[...c, "--node", "node-a", "--admin", "10.0.0.1:15000"], "is not a loopback address"],
      [[...c, "--node", "node-a", "--credential", "x", "--ca-dir", "y"], "not both"],
      [[...c, "--node", "node-a", "--output", "xml"], "--output must be one of text, json"],
      [[...c, "--node", "node-a", "--bogus"], "Unknown option '--bogus'"],
      [[...c, "--node", "node-a", "extra"], 'unexpected argument "extra"'],
    ];
    await Promise.all(cases.map(async ([args, message]) => {
      const r = await runAmbit(["check", ...args]);
      const what = `ambit check ${args.join(" ")}`;
      assertEquals(r.code, 2, `${what}: ${r.stdout}${r.stderr}`);
      assertIncludes(r.stderr, message, what);
      assertIncludes(r.stderr, "Usage: ambit check", what);
    }));
    const help = await runAmbit(["check", "--help"]);
    assertEquals(help.code, 0);
    assertIncludes(help.stdout, "Usage: ambit check [options]");
    assertIncludes(help.stdout, "--dns HOST:PORT");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
