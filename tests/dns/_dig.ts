/**
 * Clients for the DNS proxy tests: the real `dig`, and raw UDP/TCP sockets
 * for messages no well-behaved client would send.
 *
 * @module
 */
import dgram from "node:dgram";
import net from "node:net";
import { Buffer } from "node:buffer";

/** What `dig` printed, with the header fields tests look at. */
export interface DigResult {
  readonly text: string;
  readonly status?: string;
  readonly flags: readonly string[];
  readonly answers: readonly { name: string; ttl: number; type: string; data: string }[];
  readonly answerCount?: number;
}

/** Runs `dig @127.0.0.1 -p PORT ARGS…` (one try, 2 s) and parses its output. */
export function dig(port: number, ...args: string[]): Promise<DigResult> {
  return digAt("127.0.0.1", port, ...args);
}

/** Runs `dig @SERVER -p PORT ARGS…` (one try, 2 s) and parses its output. */
export async function digAt(server: string, port: number, ...args: string[]): Promise<DigResult> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("dig", {
      args: [`@${server}`, "-p", String(port), "+time=2", "+tries=1", "+nocookie", ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new Error(
      "the DNS tests need dig on PATH: apt-get install -y bind9-dnsutils (Debian/Ubuntu)",
      { cause: e },
    );
  }
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  const status = text.match(/status: ([A-Z]+)/)?.[1];
  const flags = text.match(/;; flags: ([a-z ]+);/)?.[1].trim().split(/\s+/) ?? [];
  const answerCount = text.match(/ANSWER: (\d+)/)?.[1];
  const section = text.split(";; ANSWER SECTION:\n")[1]?.split("\n\n")[0] ?? "";
  const answers = section.split("\n").filter((l) => l.trim() !== "").map((l) => {
    const [name, ttl, , type, data] = l.split(/\s+/);
    return { name, ttl: Number(ttl), type, data };
  });
  return {
    text,
    status,
    flags,
    answers,
    answerCount: answerCount === undefined ? undefined : Number(answerCount),
  };
}

/** Sends one datagram to 127.0.0.1:`port` and resolves with the first reply. */
export function udpAsk(port: number, bytes: Uint8Array, timeoutMs = 2000): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket("udp4");
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error(`no UDP reply within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.on("message", (msg: Buffer) => {
      clearTimeout(timer);
      sock.close();
      resolve(new Uint8Array(msg));
    });
    sock.send(bytes, port, "127.0.0.1");
  });
}

/** Sends one datagram and does not wait for anything. */
export function udpSend(port: number, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket("udp4");
    sock.send(bytes, port, "127.0.0.1", () => {
      sock.close();
      resolve();
    });
  });
}

/** A raw TCP connection speaking length-framed DNS. */
export interface TcpDnsClient {
  /** Writes bytes as they are (frames or anything else). */
  write(bytes: Uint8Array): void;
  /** Resolves with the next `n` messages received. */
  read(n: number): Promise<Uint8Array[]>;
  /** Resolves when the server closes the connection. */
  readonly closed: Promise<void>;
  close(): void;
}

/** Frames a message with its 2-byte length. */
export function frame(msg: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + msg.length);
  new DataView(out.buffer).setUint16(0, msg.length);
  out.set(msg, 2);
  return out;
}

/** Opens a TCP connection to 127.0.0.1:`port`. */
export function tcpConnect(port: number): Promise<TcpDnsClient> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: "127.0.0.1", port });
    let buf: Buffer = Buffer.alloc(0);
    const messages: Uint8Array[] = [];
    let waiter: { n: number; resolve: (m: Uint8Array[]) => void } | undefined;
    const deliver = () => {
      if (waiter && messages.length >= waiter.n) {
        const w = waiter;
        waiter = undefined;
        w.resolve(messages.splice(0, w.n));
      }
    };
    const closed = new Promise<void>((r) => sock.once("close", () => r()));
    sock.on("error", () => {});
    sock.once("error", reject);
    sock.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        messages.push(new Uint8Array(buf.subarray(2, 2 + len)));
        buf = buf.subarray(2 + len);
      }
      deliver();
    });
    sock.once("connect", () =>
      resolve({
        write: (b) => void sock.write(b),
        read: (n) =>
          new Promise((r) => {
            waiter = { n, resolve: r };
            deliver();
          }),
        closed,
        close: () => sock.destroy(),
      }));
  });
}
