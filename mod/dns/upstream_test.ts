import {
  assertEquals,
  assertIncludes,
  assertOk,
  assertRejects,
} from "../../tests/_util/asserts.ts";
import { fakeResolver } from "../../tests/dns/_upstream.ts";
import { decodeMessage, encodeMessage, FLAG, RCODE } from "./packet.ts";
import { parseResolvConf, ResolvConfError, Upstream } from "./upstream.ts";

const resolvCases: {
  name: string;
  text: string;
  exclude?: { ip: string; port: number }[];
  want: string[];
}[] = [
  {
    name: "nameserver lines in order, port 53",
    text: "search example.org\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n",
    want: ["10.0.0.2:53", "10.0.0.3:53"],
  },
  {
    name: "comments, options and blank lines ignored",
    text:
      "# generated\n\noptions ndots:5\nnameserver 1.1.1.1 # cloudflare\n; old\n;nameserver 9.9.9.9\n",
    want: ["1.1.1.1:53"],
  },
  {
    name: "IPv6, canonical, with a zone",
    text: "nameserver 2001:DB8:0::1\nnameserver fe80::1%eth0\n",
    want: ["2001:db8::1:53", "fe80::1%eth0:53"],
  },
  {
    name: "duplicates and junk dropped",
    text: "nameserver 10.0.0.2\nnameserver 10.0.0.2\nnameserver dns.example\nnameserver\n",
    want: ["10.0.0.2:53"],
  },
  {
    name: "the proxy's own address is skipped (no loop)",
    text: "nameserver 127.0.0.1\nnameserver 10.0.0.2\n",
    exclude: [{ ip: "127.0.0.1", port: 53 }],
    want: ["10.0.0.2:53"],
  },
  {
    name: "the same IP on another port is a different server",
    text: "nameserver 127.0.0.1\n",
    exclude: [{ ip: "127.0.0.1", port: 15053 }],
    want: ["127.0.0.1:53"],
  },
  {
    name: "listening on 0.0.0.0:53 excludes loopback resolvers",
    text: "nameserver 127.0.0.53\nnameserver ::1\nnameserver 10.0.0.2\n",
    exclude: [{ ip: "0.0.0.0", port: 53 }],
    want: ["10.0.0.2:53"],
  },
  { name: "no nameserver lines", text: "search x\n", want: [] },
];

for (const c of resolvCases) {
  Deno.test(`parseResolvConf(): ${c.name}`, () => {
    assertEquals(parseResolvConf(c.text, c.exclude).map((s) => `${s.ip}:${s.port}`), c.want);
  });
}

Deno.test("Upstream.fromResolvConf() reads the injected path; a missing file means no servers", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/resolv.conf`, "nameserver 10.0.0.9\n");
    const up = await Upstream.fromResolvConf({ path: `${dir}/resolv.conf` });
    assertEquals(up.servers, [{ ip: "10.0.0.9", port: 53 }]);
    const none = await Upstream.fromResolvConf({ path: `${dir}/absent` });
    assertEquals(none.servers, []);
    const r = await none.forward(query(1), { transport: "udp" });
    assertEquals(r, { ok: false, error: "no upstream resolvers configured" });
    await Deno.mkdir(`${dir}/dir.conf`);
    await assertRejects(
      () => Upstream.fromResolvConf({ path: `${dir}/dir.conf` }),
      ResolvConfError,
      "upstream resolvers",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Upstream rejects invalid servers and timeouts with clear errors", async () => {
  await assertRejects(
    () => new Upstream({ servers: [{ ip: "dns.example", port: 53 }] }),
    TypeError,
    '"dns.example:53" is not an IP address',
  );
  await assertRejects(
    () => new Upstream({ servers: [], timeoutMs: 0 }),
    RangeError,
    "timeoutMs must be > 0",
  );
});

function query(id: number, name = "www.example.org", type = "A"): Uint8Array {
  return encodeMessage({ id, type: "query", flags: FLAG.RD, questions: [{ name, type }] });
}

Deno.test("Upstream forwards over UDP and TCP, keeping the client's ID", async () => {
  const fake = await fakeResolver();
  const up = new Upstream({ servers: [fake.address], timeoutMs: 1000 });
  try {
    for (const transport of ["udp", "tcp"] as const) {
      const r = await up.forward(query(0xbeef), { transport });
      assertOk(r.ok);
      const m = decodeMessage(r.response);
      assertEquals([m.id, m.answers.map((a) => a.data)], [0xbeef, ["93.184.216.34"]]);
    }
    assertEquals(fake.queries.map((q) => [q.id, q.transport]), [[0xbeef, "udp"], [0xbeef, "tcp"]]);
  } finally {
    up.close();
    await fake.close();
  }
});

Deno.test("Upstream fails over: a silent server times out, SERVFAIL moves on, the next answers", async () => {
  const dead = await fakeResolver(undefined, "silent");
  const failing = await fakeResolver(undefined, "servfail");
  const good = await fakeResolver();
  const up = new Upstream({
    servers: [dead.address, failing.address, good.address],
    timeoutMs: 150,
  });
  try {
    const r = await up.forward(query(5), { transport: "udp" });
    assertOk(r.ok);
    assertEquals(r.server, `127.0.0.1:${good.address.port}`);
    assertEquals([dead.queries.length, failing.queries.length, good.queries.length], [1, 1, 1]);
  } finally {
    up.close();
    await Promise.all([dead.close(), failing.close(), good.close()]);
  }
});

Deno.test("Upstream returns the last SERVFAIL when no server does better, and fails when all are silent", async () => {
  const failing = await fakeResolver(undefined, "servfail");
  const dead = await fakeResolver(undefined, "silent");
  try {
    const up = new Upstream({ servers: [failing.address], timeoutMs: 150 });
    const r = await up.forward(query(6), { transport: "udp" });
    assertOk(r.ok);
    assertEquals(decodeMessage(r.response).flags & 0xf, RCODE.SERVFAIL);
    const up2 = new Upstream({ servers: [dead.address], timeoutMs: 100 });
    const t0 = performance.now();
    const r2 = await up2.forward(query(7), { transport: "tcp" });
    assertOk(!r2.ok);
    assertIncludes(r2.error, "no TCP reply within 100 ms");
    assertOk(performance.now() - t0 < 1000);
  } finally {
    await Promise.all([failing.close(), dead.close()]);
  }
});

Deno.test("Upstream.close() cancels forwards in flight", async () => {
  const dead = await fakeResolver(undefined, "silent");
  const up = new Upstream({ servers: [dead.address], timeoutMs: 10_000 });
  try {
    const pending = up.forward(query(8), { transport: "udp" });
    up.close();
    const r = await pending;
    assertOk(!r.ok);
    assertIncludes(r.error, "cancelled");
  } finally {
    await dead.close();
  }
});
