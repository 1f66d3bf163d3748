/**
 * Test helpers: an HTTP/2 peer that writes frames by hand (to send what a
 * correct peer never would) and records every frame it receives, plus a
 * plaintext socket pair to run {@link H2Connection} on.
 *
 * @module
 */
import net from "node:net";
import type { Duplex } from "node:stream";
import { FrameReader, type FrameSink, FrameType } from "./frames.ts";
import { H2Connection, type H2ConnectionOptions } from "./connection.ts";

/** A received frame; DATA content joined (padding removed). */
export interface RawFrame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Uint8Array;
}

/** One side of a connection, speaking raw frames. */
export class RawPeer {
  readonly frames: RawFrame[] = [];
  #waiters: (() => void)[] = [];
  #closed = false;
  readonly closed: Promise<void>;

  constructor(readonly socket: Duplex, expectPreface = false) {
    let data: number[] = [];
    const sink: FrameSink = {
      onFrame: (type, flags, stream, payload) =>
        this.#add({ type, flags, stream, payload: new Uint8Array(payload) }),
      onDataStart: () => void (data = []),
      onData: (_s, c) => void data.push(...c),
      onDataEnd: (stream, flags) =>
        this.#add({ type: FrameType.DATA, flags, stream, payload: new Uint8Array(data) }),
    };
    const reader = new FrameReader(sink, { maxFrameSize: 1 << 24, expectPreface });
    socket.on("data", (c: Uint8Array) => reader.push(c));
    socket.on("error", () => {});
    this.closed = new Promise((r) =>
      socket.on("close", () => {
        this.#closed = true;
        r();
        this.#wake();
      })
    );
  }

  #add(f: RawFrame): void {
    this.frames.push(f);
    this.#wake();
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Writes raw bytes. */
  send(...parts: Uint8Array[]): void {
    for (const p of parts) this.socket.write(p);
  }

  /** The first received frame matching `pred`; rejects after `timeoutMs`. */
  async wait(pred: (f: RawFrame) => boolean, what: string, timeoutMs = 3000): Promise<RawFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(pred);
      if (f) return f;
      if (this.#closed) throw new Error(`connection closed before ${what}; got ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms; got ${this.describe()}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** The frames received, as `TYPE(stream)` for messages. */
  describe(): string {
    return this.frames.map((f) => `${f.type}/${f.flags}@${f.stream}`).join(" ") || "nothing";
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A listening server running `H2Connection` (role server) on each plaintext connection. */
export async function h2Server(
  options: Omit<H2ConnectionOptions, "role">,
): Promise<{ port: number; conns: H2Connection[]; close(): Promise<void> }> {
  const conns: H2Connection[] = [];
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    conns.push(new H2Connection(s, { ...options, role: "server" }));
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  return {
    port: (srv.address() as net.AddressInfo).port,
    conns,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** A raw peer connected to `port`. */
export async function rawClient(port: number): Promise<RawPeer> {
  const s = net.connect(port, "127.0.0.1");
  await new Promise((r) => s.once("connect", r));
  return new RawPeer(s);
}

/** A raw peer accepting one connection, and an `H2Connection` client connected to it. */
export async function rawServer(
  options: Omit<H2ConnectionOptions, "role">,
): Promise<{ peer: RawPeer; client: H2Connection; close(): void }> {
  let accepted!: (s: net.Socket) => void;
  const got = new Promise<net.Socket>((r) => accepted = r);
  const srv = net.createServer((s) => accepted(s));
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const sock = net.connect((srv.address() as net.AddressInfo).port, "127.0.0.1");
  await new Promise((r) => sock.once("connect", r));
  const client = new H2Connection(sock, { ...options, role: "client" });
  const peer = new RawPeer(await got, true);
  return {
    peer,
    client,
    close() {
      peer.close();
      sock.destroy();
      srv.close();
    },
  };
}
