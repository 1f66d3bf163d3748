/**
 * The DNS proxy in-process on 127.0.0.1 with a fake upstream resolver, asked
 * by the real `dig` and by raw sockets for malformed messages.
 */
import {
  assertEquals,
  assertEventually,
  assertIncludes,
  assertOk,
  assertRejects,
} from "../_util/asserts.ts";
import dgram from "node:dgram";
import { Logger } from "../../mod/log/logger.ts";
import { MeshNames } from "../../mod/dns/names.ts";
import {
  decodeMessage,
  type DnsMessage,
  encodeMessage,
  FLAG,
  RCODE,
} from "../../mod/dns/packet.ts";
import {
  DnsBindError,
  type DnsServer,
  type DnsServerOptions,
  serveDns,
} from "../../mod/dns/server.ts";
import { Upstream } from "../../mod/dns/upstream.ts";
import { meshSnapshot } from "./_mesh.ts";
import { type FakeResolver, fakeResolver } from "./_upstream.ts";
import { dig, digAt, frame, tcpConnect, udpAsk, udpSend } from "./_dig.ts";

const NAMES = MeshNames.fromSnapshot(meshSnapshot());

interface Proxy {
  readonly server: DnsServer;
  readonly port: number;
  readonly upstream: FakeResolver;
  readonly logs: string[];
}

/** Runs `fn` against a proxy on a free port whose upstream is a fake resolver. */
async function withProxy(
  fn: (p: Proxy) => Promise<void>,
  o: Partial<DnsServerOptions> & { upstreamMode?: FakeResolver["mode"]; timeoutMs?: number } = {},
): Promise<void> {
  const upstream = await fakeResolver(undefined, o.upstreamMode);
  const logs: string[] = [];
  const server = await serveDns({
    udp: { ip: "127.0.0.1", port: 0 },
    names: () => NAMES,
    namespacesFor: (ip) => (ip === "127.0.0.1" ? ["shop"] : []),
    upstream: new Upstream({ servers: [upstream.address], timeoutMs: o.timeoutMs ?? 1000 }),
    logger: new Logger({ level: "debug", sink: (l) => logs.push(l) }),
    ...o,
  });
  try {
    await fn({ server, port: server.udp!.port, upstream, logs });
  } finally {
    await server.close();
    await upstream.close();
  }
}

function query(name: string, type = "A", id = 0x1234, flags: number = FLAG.RD): Uint8Array {
  return encodeMessage({ id, type: "query", flags, questions: [{ name, type }] });
}
const rcode = (m: DnsMessage) => m.flags & 0xf;

Deno.test("dns proxy: UDP and TCP share the port; a mesh name gets its VIP, authoritative, TTL 30", async () => {
  await withProxy(async ({ server, port, upstream }) => {
    assertEquals(server.tcp?.port, port);
    for (const transport of ["+notcp", "+tcp"]) {
      const r = await dig(port, "reviews.shop.svc.cluster.local", "A", transport);
      assertEquals(r.status, "NOERROR", r.text);
      assertOk(r.flags.includes("aa") && r.flags.includes("rd") && r.flags.includes("ra"), r.text);
      assertEquals(r.answers, [
        { name: "reviews.shop.svc.cluster.local.", ttl: 30, type: "A", data: "10.96.0.10" },
      ]);
    }
    assertEquals(upstream.queries, [], "mesh names are never forwarded");
    assertEquals([server.stats.queries.udp.answer, server.stats.queries.tcp.answer], [1, 1]);
  });
});

Deno.test("dns proxy: AAAA on an IPv4 VIP is NOERROR with no answer; an IPv6 VIP answers AAAA", async () => {
  await withProxy(async ({ port, server }) => {
    const r = await dig(port, "reviews.shop.svc.cluster.local", "AAAA");
    assertEquals([r.status, r.answerCount, r.flags.includes("aa")], ["NOERROR", 0, true], r.text);
    assertIncludes(r.text, "svc.cluster.local.\t30\tIN\tSOA");
    const six = await dig(port, "web6.shop.svc.cluster.local", "AAAA", "+short");
    assertEquals(six.text.trim(), "fd00::10");
    assertEquals(server.stats.queries.udp.nodata, 1);
  });
});

Deno.test("dns proxy: an unknown mesh name is an authoritative NXDOMAIN, never forwarded", async () => {
  await withProxy(async ({ port, upstream, server }) => {
    const r = await dig(port, "x.default.svc.cluster.local", "A");
    assertEquals([r.status, r.flags.includes("aa")], ["NXDOMAIN", true], r.text);
    assertEquals(upstream.queries, []);
    assertEquals(server.stats.queries.udp.nxdomain, 1);
  });
});

Deno.test("dns proxy: external names are forwarded to the upstream, over UDP and over TCP", async () => {
  await withProxy(async ({ port, upstream, server }) => {
    assertEquals((await dig(port, "www.example.org", "+short")).text.trim(), "93.184.216.34");
    assertEquals(
      (await dig(port, "www.example.org", "AAAA", "+short", "+tcp")).text.trim(),
      "2606:2800:220:1::1",
    );
    const nx = await dig(port, "nothing.example.org");
    assertEquals(
      [nx.status, nx.flags.includes("aa")],
      ["NXDOMAIN", false],
      "the upstream's NXDOMAIN",
    );
    assertEquals(upstream.queries.map((q) => [q.name, q.type, q.transport]), [
      ["www.example.org", "A", "udp"],
      ["www.example.org", "AAAA", "tcp"],
      ["nothing.example.org", "A", "udp"],
    ]);
    assertEquals([server.stats.queries.udp.forwarded, server.stats.queries.tcp.forwarded], [2, 1]);
  });
});

Deno.test("dns proxy: a forwarded query keeps the client's ID", async () => {
  await withProxy(async ({ port, upstream }) => {
    const m = decodeMessage(await udpAsk(port, query("www.example.org", "A", 0x4d2)));
    assertEquals([m.id, m.answers.map((a) => a.data)], [0x4d2, ["93.184.216.34"]]);
    assertEquals(upstream.queries[0].id, 0x4d2);
  });
});

Deno.test("dns proxy: short names resolve within the client's namespace", async () => {
  await withProxy(async ({ port }) => {
    const ask = async (name: string) => (await dig(port, name, "+short")).text.trim();
    assertEquals(await ask("reviews"), "10.96.0.10");
    assertEquals(await ask("reviews.payments"), "10.96.0.20");
    assertEquals(await ask("ratings.shop.svc"), "10.96.0.11");
    assertEquals(await ask("api.example.com"), "192.0.2.10");
  });
});

Deno.test("dns proxy: an ambiguous short name is forwarded, not guessed", async () => {
  await withProxy(async ({ port, upstream }) => {
    const r = await dig(port, "reviews");
    assertEquals([r.status, r.flags.includes("aa")], ["NXDOMAIN", false], r.text);
    assertEquals(upstream.queries.map((q) => q.name), ["reviews"]);
  }, { namespacesFor: () => ["shop", "payments"] });
});

Deno.test("dns proxy: a large upstream answer is truncated over UDP; TCP gets all of it", async () => {
  await withProxy(async ({ port, server }) => {
    const udp = await dig(port, "big.example.org", "+ignore", "+notcp");
    assertOk(udp.flags.includes("tc"), udp.text);
    assertEquals(udp.answerCount, 0);
    const tcp = await dig(port, "big.example.org", "+tcp");
    assertEquals([tcp.status, tcp.answers.length], ["NOERROR", 100], tcp.text);
    const fallback = await dig(port, "big.example.org");
    assertIncludes(fallback.text, "Truncated, retrying in TCP mode");
    assertEquals(fallback.answers.length, 100);
    // Without EDNS, the 512-byte limit applies.
    const plain = await dig(port, "big.example.org", "+noedns", "+ignore");
    assertOk(plain.flags.includes("tc"), plain.text);
    assertEquals(server.stats.queries.udp.forwarded, 3);
  });
});

Deno.test("dns proxy: mesh answers over the client's UDP size are truncated by the proxy", async () => {
  const many = MeshNames.fromSnapshot(meshSnapshot(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: many, namespace: shop}
spec:
  hosts: [many.example.com]
  addresses: [${Array.from({ length: 20 }, (_, i) => `"192.0.2.${i + 1}"`).join(", ")}]
  ports: [{number: 80, name: http}]
`));
  await withProxy(async ({ port, server }) => {
    const udp = await dig(port, "many.example.com", "+noedns", "+ignore");
    assertOk(udp.flags.includes("tc") && udp.flags.includes("aa"), udp.text);
    const full = await dig(port, "many.example.com", "+noedns");
    assertEquals(full.answers.length, 20, full.text);
    assertEquals(server.stats.truncated, 2);
    // With EDNS (dig offers 1232 bytes) the same answer (~700 bytes: the
    // library writes no name compression) fits, cached or not.
    for (let i = 0; i < 2; i++) {
      const edns = await dig(port, "many.example.com", "+notcp");
      assertEquals([edns.flags.includes("tc"), edns.answers.length], [false, 20], edns.text);
    }
    assertEquals(server.stats.truncated, 2);
  }, { names: () => many });
});

Deno.test("dns proxy: a dead upstream gives SERVFAIL within the timeout", async () => {
  await withProxy(async ({ port, server, logs }) => {
    const t0 = performance.now();
    const r = await dig(port, "www.example.org");
    assertEquals(r.status, "SERVFAIL", r.text);
    assertOk(performance.now() - t0 < 1500, "answered within the 200 ms try plus dig's overhead");
    assertEquals(server.stats.queries.udp.servfail, 1);
    assertOk(
      logs.some((l) => l.includes("dns forward failed") && l.includes("no reply within 200 ms")),
    );
  }, { upstreamMode: "silent", timeoutMs: 200 });
});

Deno.test("dns proxy: malformed messages get clear refusals, and the proxy keeps answering", async () => {
  await withProxy(async ({ port, server, logs }) => {
    // Shorter than a header: nothing to answer to; counted.
    await udpSend(port, new Uint8Array([1, 2, 3, 4, 5]));
    await assertEventually(() => server.stats.queries.udp.dropped === 1);
    const ask = async (bytes: Uint8Array) => decodeMessage(await udpAsk(port, bytes));
    // Garbage after a header.
    const garbage = new Uint8Array(40).fill(0xff);
    garbage.set([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01]);
    let m = await ask(garbage);
    assertEquals([m.id, rcode(m)], [0xabcd, RCODE.FORMERR]);
    // A name over 255 bytes.
    const long = [0x00, 0x07, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for (let i = 0; i < 5; i++) long.push(60, ...new Array(60).fill(0x61));
    long.push(0, 0, 1, 0, 1);
    m = await ask(new Uint8Array(long));
    assertEquals([m.id, rcode(m)], [7, RCODE.FORMERR]);
    // 100 questions.
    m = await ask(encodeMessage({
      id: 8,
      type: "query",
      flags: FLAG.RD,
      questions: Array.from({ length: 100 }, (_, i) => ({ name: `q${i}.example.org`, type: "A" })),
    }));
    assertEquals([m.id, rcode(m)], [8, RCODE.FORMERR]);
    // Opcode 5 (UPDATE).
    m = await ask(query("reviews", "A", 9, (5 << 11) | FLAG.RD));
    assertEquals([m.id, rcode(m)], [9, RCODE.NOTIMP]);
    // Still answering.
    assertEquals((await dig(port, "reviews", "+short")).text.trim(), "10.96.0.10");
    assertEquals(
      [
        server.stats.queries.udp.formerr,
        server.stats.queries.udp.notimp,
        server.stats.queries.udp.answer,
      ],
      [3, 1, 1],
    );
    assertOk(
      logs.some((l) => l.includes("dns query refused") && l.includes("longer than 255 bytes")),
    );
  });
});

Deno.test("dns proxy: logs about bad input are rate-limited", async () => {
  await withProxy(async ({ port, server, logs }) => {
    const garbage = new Uint8Array(20).fill(0xff);
    garbage.set([0x00, 0x01, 0x01, 0x00, 0x00, 0x01]);
    for (let i = 0; i < 30; i++) await udpAsk(port, garbage);
    assertEquals(server.stats.queries.udp.formerr, 30);
    assertEquals(logs.filter((l) => l.includes("dns query refused")).length, 20);
  });
});

Deno.test("dns proxy: TCP carries several queries per connection, bad frames included", async () => {
  await withProxy(async ({ port, server }) => {
    const c = await tcpConnect(port);
    try {
      const bad = new Uint8Array(20).fill(0xff);
      bad.set([0x00, 0x42, 0x01, 0x00, 0x00, 0x01]);
      // Three frames in one write: a mesh name, garbage, a forwarded name.
      const all = [
        frame(query("reviews", "A", 1)),
        frame(bad),
        frame(query("www.example.org", "A", 2)),
      ];
      c.write(new Uint8Array(all.flatMap((f) => [...f])));
      const replies = (await c.read(3)).map(decodeMessage);
      const byId = new Map(replies.map((m) => [m.id, m]));
      assertEquals(byId.get(1)!.answers.map((a) => a.data), ["10.96.0.10"]);
      assertEquals(rcode(byId.get(0x42)!), RCODE.FORMERR);
      assertEquals(byId.get(2)!.answers.map((a) => a.data), ["93.184.216.34"]);
      // A frame too short for a header is dropped; the connection stays usable.
      c.write(frame(new Uint8Array([1, 2, 3])));
      c.write(frame(query("ratings", "A", 3)));
      const [next] = (await c.read(1)).map(decodeMessage);
      assertEquals([next.id, next.answers.map((a) => a.data)], [3, ["10.96.0.11"]]);
      assertEquals(server.stats.queries.tcp.dropped, 1);
    } finally {
      c.close();
    }
  });
});

Deno.test("dns proxy: idle TCP connections are closed by the server", async () => {
  await withProxy(async ({ server }) => {
    const idle = await tcpConnect(server.tcp!.port);
    await idle.closed; // after tcpIdleMs with nothing in flight
    assertEquals(server.stats.tcpConnections, 0);
  }, { tcpIdleMs: 100 });
});

Deno.test("dns proxy: TCP connections over the limit are closed at once", async () => {
  await withProxy(async ({ port, server }) => {
    const a = await tcpConnect(port);
    const b = await tcpConnect(port);
    await assertEventually(() => server.stats.tcpConnections === 2);
    const c = await tcpConnect(port);
    await c.closed;
    assertEquals(server.stats.tcpConnectionsRejected, 1);
    a.write(frame(query("reviews", "A", 11)));
    assertEquals(decodeMessage((await a.read(1))[0]).id, 11);
    a.close();
    b.close();
  }, { maxTcpConnections: 2 });
});

Deno.test("dns proxy: the name table is read per query, so a reload applies at once", async () => {
  let names = NAMES;
  await withProxy(async ({ port }) => {
    assertEquals((await dig(port, "reviews", "+short")).text.trim(), "10.96.0.10");
    names = MeshNames.fromSnapshot(meshSnapshot(`
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  clusterIP: 10.96.9.9
  ports: [{port: 80}]
`));
    assertEquals((await dig(port, "reviews", "+short")).text.trim(), "10.96.9.9");
    assertEquals((await dig(port, "ratings.shop.svc.cluster.local")).status, "NXDOMAIN");
  }, { names: () => names });
});

Deno.test("dns proxy: serves on IPv6 too, forwarding to an IPv4 upstream", async () => {
  await withProxy(async ({ server }) => {
    const port = server.udp!.port;
    assertEquals([server.udp?.ip, server.tcp?.ip, server.tcp?.port], ["::1", "::1", port]);
    for (const transport of ["+notcp", "+tcp"]) {
      const ask = async (...a: string[]) =>
        (await digAt("::1", port, transport, "+short", ...a)).text.trim();
      assertEquals(await ask("reviews"), "10.96.0.10", "the client ::1 is in namespace shop");
      assertEquals(await ask("web6.shop.svc.cluster.local", "AAAA"), "fd00::10");
      assertEquals(await ask("www.example.org"), "93.184.216.34");
    }
  }, { udp: { ip: "::1", port: 0 }, namespacesFor: (ip) => (ip === "::1" ? ["shop"] : []) });
});

Deno.test("dns proxy: a port taken by another program fails start-up with the address and what to do", async () => {
  // A program that did not set SO_REUSEADDR holds the UDP port (a second ambit would share it).
  const other = dgram.createSocket("udp4");
  await new Promise<void>((r) => other.bind(0, "127.0.0.1", () => r()));
  const port = other.address().port;
  try {
    const e = await assertRejects(
      () =>
        serveDns({
          udp: { ip: "127.0.0.1", port },
          names: () => NAMES,
          namespacesFor: () => [],
          upstream: new Upstream({ servers: [] }),
          logger: new Logger({ sink: () => {} }),
        }),
      DnsBindError,
      `cannot bind the DNS proxy to UDP 127.0.0.1:${port}: the address is already in use`,
    );
    assertEquals((e as DnsBindError).code, "EDNSBIND");
  } finally {
    await new Promise<void>((r) => other.close(() => r()));
  }
});

Deno.test("dns proxy: close() frees both ports", async () => {
  // Between close and rebind, another test's outgoing connection may take the
  // freed port as its ephemeral port; then this tries again with a new one.
  for (let attempt = 1;; attempt++) {
    let port = 0;
    await withProxy(async (p) => {
      port = p.port;
      const c = await tcpConnect(port);
      c.write(frame(query("reviews", "A", 1)));
      await c.read(1);
    });
    try {
      const again = await serveDns({
        udp: { ip: "127.0.0.1", port },
        names: () => NAMES,
        namespacesFor: () => [],
        upstream: new Upstream({ servers: [] }),
        logger: new Logger({ sink: () => {} }),
      });
      assertEquals([again.udp?.port, again.tcp?.port], [port, port]);
      await again.close();
      return;
    } catch (e) {
      const taken = await new Deno.Command("ss", {
        args: ["-tanH", `sport = :${port}`],
        stdout: "piped",
      }).output();
      const others = new TextDecoder().decode(taken.stdout).trim();
      // Only another live connection on the port excuses a retry: a listener we left
      // behind, or our own closed connection in TIME-WAIT blocking the rebind, would be a bug.
      if (attempt >= 3 || !/^ESTAB|^SYN/m.test(others) || /LISTEN|TIME-WAIT/.test(others)) throw e;
    }
  }
});
