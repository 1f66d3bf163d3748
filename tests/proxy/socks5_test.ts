/**
 * The SOCKS5 front end with real sockets: curl (socks5h and socks5, IPv4
 * and IPv6), a raw client sending what real clients never should, early
 * data, the handshake deadline, listen errors and leak checks.
 */
import { Buffer } from "node:buffer";
import {
  assertEquals,
  assertEventually,
  assertIncludes,
  assertOk,
  assertRejects,
} from "../_util/asserts.ts";
import {
  encodeSocks5Reply,
  ProxyListenError,
  serveSocks5,
  SOCKS4_REJECTED,
  type Socks5Server,
} from "../../mod/ztunnel/socks5.ts";
import {
  curl,
  echoUpstream,
  FakeConnector,
  rawClient,
  type SeenRequest,
  testLogger,
  type Upstream,
  withFrontEnd,
} from "./_fixtures.ts";

interface World {
  socks: Socks5Server;
  connector: FakeConnector;
  echo: Upstream;
  web: Upstream;
  web6?: Upstream;
}

/** Runs `fn` against a SOCKS5 server, then checks that no socket was left open anywhere. */
function withSocks(
  fn: (w: World) => Promise<void>,
  o: { handshakeTimeoutMs?: number } = {},
): Promise<void> {
  return withFrontEnd(
    (connector) =>
      serveSocks5({ listen: { ip: "127.0.0.1", port: 0 }, connector, logger: testLogger(), ...o }),
    (w) => fn({ ...w, socks: w.server }),
  );
}

const GREET = [5, 1, 0];
const OK_REPLY = [5, 0, ...encodeSocks5Reply(0)];
const bytes = (...b: number[]) => Uint8Array.from(b);
const domainRequest = (name: string, port: number) =>
  bytes(...GREET, 5, 1, 0, 3, name.length, ...Buffer.from(name), port >> 8, port & 0xff);
const ipv4Request = (ip: string, port: number) =>
  bytes(...GREET, 5, 1, 0, 1, ...ip.split(".").map(Number), port >> 8, port & 0xff);

/** A good request that must still work after a refusal. */
async function stillServes(w: World): Promise<void> {
  const r = await rawClient(w.socks.address, [domainRequest("echo.mesh", 7), "ping"], {
    onData: (all, s) => {
      if (all.length >= OK_REPLY.length + 4) s.end();
    },
  });
  assertEquals(r.text, Buffer.from([...OK_REPLY, ...Buffer.from("ping")]).toString("latin1"));
}

Deno.test("curl reaches a mesh name (socks5h), an IPv4 address (socks5) and IPv6", async () => {
  await withSocks(async (w) => {
    const proxy = `127.0.0.1:${w.socks.address.port}`;
    const r = await curl(["--socks5-hostname", proxy, `http://web.mesh:${w.web.address.port}/a?b`]);
    assertEquals(r.code, 0, r.stderr);
    const seen: SeenRequest = JSON.parse(r.stdout);
    assertEquals([seen.method, seen.url, seen.headers.host], [
      "GET",
      "/a?b",
      `web.mesh:${w.web.address.port}`,
    ]);
    assertEquals(w.connector.calls.at(-1), {
      target: { host: "web.mesh", port: w.web.address.port, kind: "domain" },
      via: "socks5",
    });

    const ip = await curl(["--socks5", proxy, `http://127.0.0.1:${w.web.address.port}/ip`]);
    assertEquals(ip.code, 0, ip.stderr);
    assertEquals(JSON.parse(ip.stdout).url, "/ip");
    assertEquals(w.connector.calls.at(-1)?.target, {
      host: "127.0.0.1",
      port: w.web.address.port,
      kind: "ipv4",
    });

    if (w.web6) {
      for (const flag of ["--socks5", "--socks5-hostname"]) {
        const v6 = await curl([flag, proxy, `http://[::1]:${w.web6.address.port}/six`]);
        assertEquals(v6.code, 0, `${flag}: ${v6.stderr}`);
        assertEquals(JSON.parse(v6.stdout).url, "/six");
        assertEquals(w.connector.calls.at(-1)?.target, {
          host: "::1",
          port: w.web6.address.port,
          kind: "ipv6",
        });
      }
    }
    assertEquals(w.socks.stats.connects.ok, w.web6 ? 4 : 2);
    assertEquals(w.socks.stats.handshakes, w.socks.stats.connects.ok);
  });
});

Deno.test("connect failures get the SOCKS5 reply code of proxy_connect.ts", async () => {
  await withSocks(async (w) => {
    const rows: [string, number, string][] = [
      ["denied.mesh", 0x02, "not_allowed"],
      ["nowhere.mesh", 0x04, "host_unreachable"],
      ["unknown.mesh", 0x04, "host_unreachable"],
      ["refused.mesh", 0x05, "connection_refused"],
      ["slow.mesh", 0x06, "timed_out"],
      ["broken.mesh", 0x01, "general"],
      ["throws.mesh", 0x01, "general"],
    ];
    for (const [name, code] of rows) {
      const r = await rawClient(w.socks.address, [domainRequest(name, 80)]);
      assertEquals([...r.bytes], [5, 0, ...encodeSocks5Reply(code)], name);
      assertEquals(r.closed, "end", name);
    }
    assertEquals(w.socks.stats.connects, {
      ok: 0,
      not_allowed: 1,
      host_unreachable: 2,
      connection_refused: 1,
      timed_out: 1,
      general: 2,
    });
    const c = await curl([
      "--socks5-hostname",
      `127.0.0.1:${w.socks.address.port}`,
      "http://denied.mesh/",
    ]);
    assertOk(c.code !== 0);
    assertIncludes(c.stderr, "(2)"); // curl shows the reply code
    await stillServes(w);
  });
});

Deno.test("bad SOCKS input gets a clear refusal, is closed, and the server keeps serving", async () => {
  await withSocks(async (w) => {
    const greeted = (code: number) => [5, 0, ...encodeSocks5Reply(code)];
    const rows: [string, (Uint8Array | string)[], number[], string, boolean?][] = [
      ["not SOCKS at all", ["GET / HTTP/1.1\r\n\r\n"], [], "bad_version"],
      ["SOCKS4", [bytes(4, 1, 0, 80, 127, 0, 0, 1, 0)], [...SOCKS4_REJECTED], "bad_version"],
      ["only user/password auth", [bytes(5, 1, 2)], [5, 0xff], "no_acceptable_method"],
      ["GSSAPI and user/password", [bytes(5, 2, 1, 2)], [5, 0xff], "no_acceptable_method"],
      [
        "BIND",
        [bytes(...GREET, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80)],
        greeted(7),
        "unsupported_command",
      ],
      [
        "UDP ASSOCIATE",
        [bytes(...GREET, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0)],
        greeted(7),
        "unsupported_command",
      ],
      [
        "ATYP 0x05",
        [bytes(...GREET, 5, 1, 0, 5, 1, 2, 3, 4, 0, 80)],
        greeted(8),
        "unsupported_address_type",
      ],
      ["empty domain", [bytes(...GREET, 5, 1, 0, 3, 0, 0, 80)], greeted(1), "malformed"],
      [
        "NUL in the domain",
        [bytes(...GREET, 5, 1, 0, 3, 2, 0x61, 0, 0, 80)],
        greeted(1),
        "malformed",
      ],
      ["port 0", [ipv4Request("127.0.0.1", 0)], greeted(1), "malformed"],
      ["truncated greeting, then close", [bytes(5, 2, 0)], [], "closed_early", true],
      [
        "truncated request, then close",
        [bytes(...GREET, 5, 1, 0, 3, 9, 0x61)],
        [5, 0],
        "closed_early",
        true,
      ],
      ["connect, then close at once", [], [], "closed_early", true],
    ];
    for (const [what, writes, want, reason, end] of rows) {
      const before = w.socks.stats.refused[reason as keyof typeof w.socks.stats.refused];
      const r = await rawClient(w.socks.address, writes, { end });
      assertEquals([...r.bytes], want, what);
      assertEquals(r.closed, "end", `${what}: closed with ${r.closed}, not a clean end`);
      assertEquals(
        w.socks.stats.refused[reason as keyof typeof w.socks.stats.refused],
        before + 1,
        what,
      );
      await stillServes(w);
    }
    // A refusal with the rest of a large write still in flight is not lost to a reset.
    const r = await rawClient(w.socks.address, [bytes(5, 1, 2), new Uint8Array(256 << 10)]);
    assertEquals([...r.bytes], [5, 0xff]);
  });
});

Deno.test("bytes sent with or right after the request reach the upstream in order", async () => {
  await withSocks(async (w) => {
    const payload = Buffer.from("early data, then more ".repeat(50));
    const expect = Buffer.concat([Buffer.from(OK_REPLY), payload]).toString("latin1");
    const untilAll = (all: Uint8Array, s: import("node:net").Socket) => {
      if (all.length >= OK_REPLY.length + payload.length) s.end();
    };
    // All at once: greeting, request and payload in a single write.
    const once = await rawClient(w.socks.address, [
      Buffer.concat([domainRequest("echo.mesh", 1), payload]),
    ], { onData: untilAll });
    assertEquals(once.text, expect);
    // In fragments: one byte at a time through the handshake, then the payload in pieces.
    const req = domainRequest("echo.mesh", 1);
    const pieces = [...req].map((b) => bytes(b));
    for (let i = 0; i < payload.length; i += 97) pieces.push(payload.subarray(i, i + 97));
    const frag = await rawClient(w.socks.address, pieces, { gapMs: 1, onData: untilAll });
    assertEquals(frag.text, expect);
    // The client half-closes right after its early data: the upstream still gets it all.
    const half = await rawClient(w.socks.address, [
      Buffer.concat([domainRequest("echo.mesh", 1), payload]),
    ], { end: true });
    assertEquals(half.text, expect);
    assertEquals(w.socks.stats.connects.ok, 3);
  });
});

Deno.test("a client that half-closes while the connector is still working is relayed in full", async () => {
  await withSocks(async (w) => {
    let release!: () => void;
    w.connector.hold = new Promise((r) => release = r);
    const calls = w.connector.calls.length;
    const payload = Buffer.from("sent before the upstream existed");
    const results = Promise.all([
      rawClient(w.socks.address, [domainRequest("echo.mesh", 1)], { end: true }),
      rawClient(w.socks.address, [Buffer.concat([domainRequest("echo.mesh", 1), payload])], {
        end: true,
      }),
    ]);
    await assertEventually(() => w.connector.calls.length === calls + 2);
    release();
    const [bare, early] = await results;
    assertEquals([...bare.bytes], OK_REPLY);
    assertEquals(early.text, Buffer.concat([Buffer.from(OK_REPLY), payload]).toString("latin1"));
    assertEquals([bare.closed, early.closed], ["end", "end"]);
  });
});

Deno.test("a client that stalls in the handshake is closed at the deadline", async () => {
  await withSocks(async (w) => {
    const silent = await rawClient(w.socks.address, []);
    const slow = await rawClient(w.socks.address, [bytes(5), bytes(1), bytes(0), bytes(5)], {
      gapMs: 40,
    });
    assertEquals([...silent.bytes], []);
    assertEquals([...slow.bytes], [5, 0]); // the greeting completed; the request never did
    for (const r of [silent, slow]) {
      assertEquals(r.closed, "end");
      assertOk(r.ms >= 200 && r.ms < 2000, `closed after ${r.ms} ms`);
    }
    assertEquals(w.socks.stats.refused.timeout, 2);
    await stillServes(w);
  }, { handshakeTimeoutMs: 250 });
});

Deno.test("serveSocks5() says what to fix when it cannot listen", async () => {
  const logger = testLogger();
  const connector = new FakeConnector();
  // Another program (no SO_REUSEPORT) holds the port; a second ambit could share it.
  const other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const first = { address: { ip: "127.0.0.1", port: other.addr.port }, close: () => other.close() };
  try {
    const e = await assertRejects(
      () => serveSocks5({ listen: first.address, connector, logger }),
      ProxyListenError,
      "already in use",
    ) as ProxyListenError;
    assertEquals(e.code, "EADDRINUSE");
    assertIncludes(e.message, `127.0.0.1:${first.address.port}`);
  } finally {
    await first.close();
  }
  const remote = await assertRejects(
    () => serveSocks5({ listen: { ip: "192.0.2.1", port: 15080 }, connector, logger }),
    ProxyListenError,
    "not a loopback address",
  ) as ProxyListenError;
  assertEquals(remote.code, "ENOTLOOPBACK");
  await assertRejects(
    () => serveSocks5({ listen: { ip: "localhost", port: 1 }, connector, logger }),
    TypeError,
    "must be an IP address",
  );
  await assertRejects(
    () => serveSocks5({ listen: { ip: "::1", port: 70000 }, connector, logger }),
    RangeError,
    "0-65535",
  );
  await assertRejects(
    () => serveSocks5({ connector, logger, handshakeTimeoutMs: 0 }),
    RangeError,
    "handshakeTimeoutMs",
  );
});

Deno.test("close() ends tunnels and handshakes in progress", async () => {
  const echo = await echoUpstream();
  const connector = new FakeConnector();
  connector.names.set("echo.mesh", echo.address);
  const socks = await serveSocks5({
    listen: { ip: "127.0.0.1", port: 0 },
    connector,
    logger: testLogger(),
  });
  let tunnelUp!: () => void;
  const up = new Promise<void>((r) => tunnelUp = r);
  const tunnel = rawClient(socks.address, [domainRequest("echo.mesh", 1), "x"], {
    onData: (all) => all.length === OK_REPLY.length + 1 && tunnelUp(),
  });
  const handshake = rawClient(socks.address, [bytes(5, 1)]);
  await up;
  await assertEventually(() => socks.stats.active === 2);
  await socks.close();
  const [t, h] = await Promise.all([tunnel, handshake]);
  assertEquals(t.bytes.length, OK_REPLY.length + 1);
  assertEquals(h.bytes.length, 0);
  assertEquals(socks.stats.active, 0);
  assertEquals(socks.stats.refused.closed_early, 0, "close() is not the client's doing");
  await assertEventually(() => echo.open.size === 0);
  await echo.close();
});
