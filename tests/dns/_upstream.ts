/**
 * A fake upstream resolver for the DNS tests, on UDP and TCP at one port,
 * built with the same packet library: it answers from a fixed table, says
 * NXDOMAIN otherwise, truncates UDP answers that exceed the client's size
 * (as real servers do), and records what it was asked. Modes make it silent
 * (a dead server that still holds its port) or answer SERVFAIL.
 *
 * @module
 */
import dgram from "node:dgram";
import net from "node:net";
import { Buffer } from "node:buffer";
import {
  decodeMessage,
  type DnsMessage,
  type DnsRecord,
  encodeMessage,
  FLAG,
  type OptRecord,
  RCODE,
} from "../../mod/dns/packet.ts";
import type { HostPort } from "../../mod/hbone/authority.ts";

/** Records by `name|TYPE` (name in lower case). */
export type FakeRecords = Record<string, readonly string[]>;

/** One query the fake resolver received. */
export interface SeenQuery {
  readonly id: number;
  readonly name: string;
  readonly type: string;
  readonly transport: "udp" | "tcp";
}

/** A running fake resolver. */
export interface FakeResolver {
  readonly address: HostPort;
  readonly queries: SeenQuery[];
  /** How it answers from now on. */
  mode: "answer" | "silent" | "servfail";
  close(): Promise<void>;
}

/** Records used by the tests: one external name, one with 100 addresses, one IPv6. */
export const EXTERNAL_RECORDS: FakeRecords = {
  "www.example.org|A": ["93.184.216.34"],
  "www.example.org|AAAA": ["2606:2800:220:1::1"],
  "ext.example.org|A": ["203.0.113.7"],
  "big.example.org|A": Array.from({ length: 100 }, (_, i) => `198.51.100.${i + 1}`),
};

/** Starts a fake resolver on 127.0.0.1 (a free port, the same for UDP and TCP). */
export async function fakeResolver(
  records: FakeRecords = EXTERNAL_RECORDS,
  mode: FakeResolver["mode"] = "answer",
): Promise<FakeResolver> {
  const queries: SeenQuery[] = [];
  const state = { mode };
  const answer = (bytes: Uint8Array, transport: "udp" | "tcp"): Uint8Array | undefined => {
    let q: DnsMessage;
    try {
      q = decodeMessage(bytes);
    } catch {
      return undefined;
    }
    const question = q.questions[0];
    queries.push({ id: q.id, name: question.name, type: question.type, transport });
    if (state.mode === "silent") return undefined;
    const opt = q.additionals.find((r): r is OptRecord => r.type === "OPT");
    const key = `${question.name.toLowerCase()}|${question.type}`;
    const data = records[key];
    const rcode = state.mode === "servfail" ? RCODE.SERVFAIL : data ? 0 : RCODE.NXDOMAIN;
    const answers: DnsRecord[] = state.mode === "answer"
      ? (data ?? []).map((d) => ({ name: question.name, type: question.type, ttl: 60, data: d }))
      : [];
    const base = {
      id: q.id,
      type: "response" as const,
      questions: [question],
      additionals: opt ? [{ name: ".", type: "OPT", udpPayloadSize: 1232 } as OptRecord] : [],
    };
    const flags = (q.flags & FLAG.RD) | FLAG.RA | rcode;
    const full = encodeMessage({ ...base, flags, answers });
    const limit = Math.max(512, opt?.udpPayloadSize ?? 512);
    if (transport === "tcp" || full.length <= limit) return full;
    return encodeMessage({ ...base, flags: flags | FLAG.TC });
  };

  const sockets = new Set<net.Socket>();
  const { udp, tcp, port } = await bindPair(
    (msg, rinfo, sock) => {
      const r = answer(new Uint8Array(msg), "udp");
      if (r) sock.send(r, rinfo.port, rinfo.address);
    },
    (sock) => {
      sockets.add(sock);
      sock.on("error", () => {});
      sock.on("close", () => sockets.delete(sock));
      let buf: Buffer = Buffer.alloc(0);
      sock.on("data", (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const len = buf.readUInt16BE(0);
          const r = answer(new Uint8Array(buf.subarray(2, 2 + len)), "tcp");
          buf = buf.subarray(2 + len);
          if (!r) continue;
          const frame = Buffer.alloc(2 + r.length);
          frame.writeUInt16BE(r.length, 0);
          frame.set(r, 2);
          sock.write(frame);
        }
      });
    },
  );

  return {
    address: { ip: "127.0.0.1", port },
    queries,
    get mode() {
      return state.mode;
    },
    set mode(m) {
      state.mode = m;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all([
        new Promise<void>((r) => udp.close(() => r())),
        new Promise<void>((r) => tcp.close(() => r())),
      ]);
    },
  };
}

/** Binds UDP on a free port of 127.0.0.1 and TCP on the same port, retrying if TCP's is taken. */
async function bindPair(
  onMessage: (msg: Buffer, rinfo: { address: string; port: number }, sock: dgram.Socket) => void,
  onConnection: (sock: net.Socket) => void,
): Promise<{ udp: dgram.Socket; tcp: net.Server; port: number }> {
  for (let attempt = 0;; attempt++) {
    const udp = dgram.createSocket("udp4");
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(0, "127.0.0.1", () => resolve());
    });
    const port = udp.address().port;
    const tcp = net.createServer(onConnection);
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once("error", reject);
        tcp.listen(port, "127.0.0.1", () => resolve());
      });
    } catch (e) {
      await new Promise<void>((r) => udp.close(() => r()));
      if (attempt < 5) continue;
      throw e;
    }
    udp.on(
      "message",
      (msg: Buffer, rinfo: { address: string; port: number }) => onMessage(msg, rinfo, udp),
    );
    return { udp, tcp, port };
  }
}
