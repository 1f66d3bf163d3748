/**
 * The compose lab (deploy/compose) for real, without a container engine: the
 * topology is read from docker-compose.yml (hosts and their addresses, which
 * services share which host's network namespace, commands, environment,
 * volumes, depends_on and healthchecks) and run in network namespaces by
 * `_compose.ts`, with ambit from this checkout and the sample apps under
 * Debian's python3. Then the client's own output shows identity, routing and
 * policy: hello answers from v1 (host-a) and v2 (host-b) through the
 * waypoint, each app sees the client's SPIFFE ID, /admin is denied by the
 * waypoint and hello-v2 called directly is refused at L4.
 *
 * Needs root and `ip netns` (ignored otherwise); CI runs it.
 */
import { assertEquals, assertEventually, assertIncludes, assertOk } from "../_util/asserts.ts";
import { ComposeBed } from "./_compose.ts";
import { netnsUnavailable } from "./_netns.ts";

const UNAVAILABLE = netnsUnavailable();
const COMPOSE = new URL("../../deploy/compose/docker-compose.yml", import.meta.url).pathname;
const HELLO = "http://hello.demo.svc.cluster.local:8080/";
const CLIENT_ID = "spiffe://ambit.compose/ns/demo/sa/client";
const WAYPOINT_ID = "spiffe://ambit.compose/ns/demo/sa/waypoint";
/** Answers to GET hello/ to collect: at 80/20, the chance of seeing no v2 in 60 is 2e-6. */
const SAMPLES = 60;

/** One line of the client's output (deploy/compose/apps/client.py). */
interface ClientLine {
  url: string;
  status?: number;
  app?: string;
  version?: string;
  caller?: string;
  via?: string;
  body?: string;
  error?: string;
}

function clientLines(stdout: readonly string[]): ClientLine[] {
  return stdout.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

Deno.test({
  name: "compose lab: the compose topology runs in network namespaces and shows identity, " +
    "canary routing and policy",
  ignore: UNAVAILABLE !== undefined,
}, async () => {
  const tmp = await Deno.makeTempDir({ prefix: "ambit-compose-netns-" });
  let bed: ComposeBed | undefined;
  try {
    bed = await ComposeBed.create(COMPOSE, tmp);
    // The hosts are what the compose file says: one namespace per service with an address.
    const hosts = [...bed.file.services.values()].filter((s) => s.networkMode === undefined);
    assertEquals(hosts.map((s) => s.name).sort(), ["host-a", "host-b", "host-w"]);
    for (const h of hosts) {
      const addr = Object.values(h.networks)[0]!;
      const r = await bed.exec(h.name, { argv: ["ip", "-4", "-o", "addr", "show"] });
      assertIncludes(r.stdout, `inet ${addr}/`, `${h.name} has its compose address`);
    }

    await bed.up({ env: { client: { INTERVAL_SECONDS: "0.02" } } });
    const client = bed.process("client");
    await assertEventually(
      () => clientLines(client.stdout).filter((l) => l.url === HELLO).length >= SAMPLES,
      { timeoutMs: 30_000, message: "the client did not get enough answers from hello" },
    );
    assertEquals(await client.stop(), 0, client.log());
    const lines = clientLines(client.stdout);

    // Routing: every answer is a hello, from both versions, mostly v1 (80/20).
    const hello = lines.filter((l) => l.url === HELLO);
    for (const l of hello) assertEquals([l.status, l.app], [200, "hello"], JSON.stringify(l));
    const count = (v: string) => hello.filter((l) => l.version === v).length;
    assertEquals(count("v1") + count("v2"), hello.length);
    assertOk(count("v2") > 0 && count("v1") > count("v2"), `v1 ${count("v1")}, v2 ${count("v2")}`);
    // Identity: each app saw the client's SPIFFE ID, vouched for by the waypoint.
    for (const l of hello) {
      assertEquals([l.caller, l.via], [CLIENT_ID, WAYPOINT_ID], JSON.stringify(l));
    }

    // L7 policy: /admin is denied by the waypoint.
    const admin = lines.filter((l) => l.url === `${HELLO}admin`);
    assertOk(admin.length > 0, "the client called /admin");
    for (const l of admin) {
      assertEquals(l.status, 403, JSON.stringify(l));
      assertIncludes(l.body ?? "", "RBAC: access denied");
    }
    // L4 policy: hello-v2 called directly (not through the waypoint) is refused by
    // host-b's ztunnel; the HTTP proxy on host-a answers 403.
    const direct = lines.filter((l) => l.url.startsWith("http://hello-v2."));
    assertOk(direct.length > 0, "the client called hello-v2 directly");
    for (const l of direct) {
      assertEquals(l.status, 403, JSON.stringify(l));
      assertIncludes(l.body ?? "", "denied by authorization policy");
    }
    // (Logs are read as they come: wait for the last lines rather than racing them.)
    const denials = () =>
      bed!.process("host-b").lines.filter((l) =>
        l.includes("inbound connection denied") && l.includes(`source=${CLIENT_ID}`) &&
        l.includes("policy=demo/hello-only-via-waypoint")
      ).length;
    await assertEventually(() => denials() === direct.length, {
      message: `host-b's ztunnel denied each of the ${direct.length} direct calls`,
    });

    // The route's header rule, with the client's own program run once more.
    const canary = await bed.exec("client", {
      env: {
        COUNT: "5",
        INTERVAL_SECONDS: "0",
        TARGETS: HELLO,
        REQUEST_HEADERS: "x-canary: always",
      },
    });
    assertEquals(canary.code, 0, canary.stderr);
    const pinned = clientLines(canary.stdout.trim().split("\n"));
    assertEquals(pinned.map((l) => l.version), ["v2", "v2", "v2", "v2", "v2"], canary.stdout);

    // The apps saw exactly the requests the waypoint passed: none of the direct calls.
    const served = (name: string) =>
      bed!.process(name).lines.filter((l) => l.includes('"GET / ')).length;
    await assertEventually(
      () =>
        served("hello-v1") === count("v1") && served("hello-v2") === count("v2") + pinned.length,
      { message: `apps served v1 ${served("hello-v1")}, v2 ${served("hello-v2")}` },
    );

    // Each ztunnel is ready, as `docker compose exec host-a ambit status` shows it.
    for (const host of ["host-a", "host-b"]) {
      const st = await bed.exec(host, { argv: ["ambit", "status", "--admin", "127.0.0.1:15000"] });
      assertEquals(st.code, 0, st.stdout + st.stderr);
      assertIncludes(
        st.stdout,
        `node ${host} (${bed.file.services.get(host)!.networks.mesh}): ready`,
      );
    }

    // Down: every process stops cleanly and nothing is left in the namespaces.
    const codes = await bed.down();
    for (const [name, c] of codes) {
      assertEquals(c, 0, `${name} exit code; log:\n${bed.process(name).log()}`);
    }
    assertEquals(await bed.leftoverPids(), [], "no process is left in the namespaces");
  } catch (e) {
    if (bed) console.error(bed.logs());
    throw e;
  } finally {
    const namespaces = bed?.namespaces ?? [];
    await bed?.close();
    const { stdout } = await new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped" })
      .output();
    const left = new TextDecoder().decode(stdout);
    for (const ns of namespaces) assertOk(!left.includes(ns), `namespace ${ns} was deleted`);
    await Deno.remove(tmp, { recursive: true });
  }
});
