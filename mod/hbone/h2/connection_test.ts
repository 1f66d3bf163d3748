import net from "node:net";
import { assertEquals, assertEventually, assertOk } from "../../../tests/_util/asserts.ts";
import { H2Connection } from "./connection.ts";
import { ErrorCode } from "./errors.ts";
import {
  decodeGoaway,
  encodeFrame,
  encodeHeaders,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeWindowUpdate,
  Flags,
  FrameType,
  PREFACE,
  SettingId,
  SETTINGS_ACK,
} from "./frames.ts";
import { encodeHeaderBlock, type HeaderField, HpackDecoder } from "./hpack.ts";
import type { H2Stream } from "./stream.ts";
import { h2Server, rawClient, type RawFrame, rawServer } from "./_test_peer.ts";

const CONNECT: HeaderField[] = [[":method", "CONNECT"], [":authority", "10.0.0.1:80"]];

const headers = (id: number, fields = CONNECT, flags: number = Flags.END_HEADERS) =>
  encodeFrame(FrameType.HEADERS, flags, id, encodeHeaderBlock(fields));
const data = (id: number, n: number, flags = 0) =>
  encodeFrame(FrameType.DATA, flags, id, new Uint8Array(n).fill(0x61));
const preface = (settings: [number, number][] = []) => [PREFACE, encodeSettings(settings)];
const isGoaway = (f: RawFrame) => f.type === FrameType.GOAWAY;
const isRst = (id: number) => (f: RawFrame) => f.type === FrameType.RST_STREAM && f.stream === id;
const u32 = (p: Uint8Array, o = 0) => new DataView(p.buffer, p.byteOffset).getUint32(o);

Deno.test("H2Connection: a CONNECT stream carries data both ways, half-closes, and closes", async () => {
  const streams: H2Stream[] = [];
  const srv = await h2Server({
    settings: { initialWindowSize: 1 << 20, maxFrameSize: 1 << 20, maxConcurrentStreams: 10 },
    connectionWindow: 4 << 20,
    onStream: (st) => {
      streams.push(st);
      st.respond(200);
      const got: Uint8Array[] = [];
      st.on("data", (d: Uint8Array) => got.push(d));
      st.on("end", () => st.end(`got ${got.reduce((n, d) => n + d.length, 0)}`));
    },
  });
  const sock = net.connect(srv.port, "127.0.0.1");
  await new Promise((r) => sock.once("connect", r));
  const client = new H2Connection(sock, {
    role: "client",
    settings: { initialWindowSize: 1 << 20, maxFrameSize: 1 << 20 },
    connectionWindow: 4 << 20,
  });
  try {
    const st = client.request({ ":method": "CONNECT", ":authority": "10.0.0.1:80" });
    const status = await new Promise<number>((r) => st.onResponse = (s) => r(s));
    assertEquals(status, 200);
    const reply: string[] = [];
    st.setEncoding("utf8");
    st.on("data", (d: string) => reply.push(d));
    const ended = new Promise((r) => st.once("end", r));
    const closed = new Promise((r) => st.once("close", r));
    st.end(new Uint8Array(3 << 20)); // more than a window: WINDOW_UPDATEs must flow
    await ended;
    await closed;
    assertEquals(reply.join(""), `got ${3 << 20}`);
    assertEquals([st.rstCode, st.aborted], [undefined, false]);
    await assertEventually(() => client.openStreams === 0 && srv.conns[0].openStreams === 0);
    assertEquals(streams[0].headers[":authority"], "10.0.0.1:80");
  } finally {
    client.destroy();
    await srv.close();
  }
});

Deno.test("H2Connection server: malformed input gets the RFC 9113 error, on the connection or the stream", async () => {
  const P = ErrorCode.PROTOCOL_ERROR;
  type Case = [name: string, frames: Uint8Array[], expect: ["goaway" | "rst", number, number?]];
  const cases: Case[] = [
    ["DATA on stream 0", [data(0, 1)], ["goaway", P]],
    ["DATA on an idle stream", [data(5, 1)], ["goaway", P]],
    ["HEADERS on an even stream", [headers(2)], ["goaway", P]],
    ["HEADERS then a lower stream", [headers(5), headers(3)], ["rst", ErrorCode.STREAM_CLOSED, 3]],
    ["a frame over SETTINGS_MAX_FRAME_SIZE", [data(1, 16_385)], [
      "goaway",
      ErrorCode.FRAME_SIZE_ERROR,
    ]],
    ["a PING of 7 octets", [encodeFrame(FrameType.PING, 0, 0, new Uint8Array(7))], [
      "goaway",
      ErrorCode.FRAME_SIZE_ERROR,
    ]],
    ["INITIAL_WINDOW_SIZE 2^31", [
      encodeFrame(FrameType.SETTINGS, 0, 0, new Uint8Array([0, 4, 0x80, 0, 0, 0])),
    ], [
      "goaway",
      ErrorCode.FLOW_CONTROL_ERROR,
    ]],
    ["a connection window overflow", [encodeWindowUpdate(0, 0x7fffffff)], [
      "goaway",
      ErrorCode.FLOW_CONTROL_ERROR,
    ]],
    ["a stream window overflow", [headers(1), encodeWindowUpdate(1, 0x7fffffff)], [
      "rst",
      ErrorCode.FLOW_CONTROL_ERROR,
      1,
    ]],
    ["WINDOW_UPDATE 0 on a stream", [
      headers(1),
      encodeFrame(FrameType.WINDOW_UPDATE, 0, 1, new Uint8Array(4)),
    ], [
      "rst",
      P,
      1,
    ]],
    ["an HPACK index 0", [
      encodeFrame(FrameType.HEADERS, Flags.END_HEADERS, 1, new Uint8Array([0x80])),
    ], [
      "goaway",
      ErrorCode.COMPRESSION_ERROR,
    ]],
    ["a PING inside a header block", [
      encodeFrame(FrameType.HEADERS, 0, 1, encodeHeaderBlock(CONNECT)),
      encodePing(new Uint8Array(8), false),
    ], ["goaway", P]],
    ["CONTINUATION without HEADERS", [encodeFrame(FrameType.CONTINUATION, Flags.END_HEADERS, 1)], [
      "goaway",
      P,
    ]],
    ["a CONTINUATION flood", [
      encodeFrame(FrameType.HEADERS, 0, 1, encodeHeaderBlock(CONNECT)),
      ...Array.from({ length: 70 }, () => encodeFrame(FrameType.CONTINUATION, 0, 1)),
    ], ["goaway", ErrorCode.ENHANCE_YOUR_CALM]],
    ["DATA over the stream window", [
      headers(1),
      data(1, 16_384),
      data(1, 16_384),
      data(1, 16_384),
      data(1, 16_384),
      data(1, 1),
    ], [
      "rst",
      ErrorCode.FLOW_CONTROL_ERROR,
      1,
    ]],
    ["DATA after END_STREAM", [
      headers(1, CONNECT, Flags.END_HEADERS | Flags.END_STREAM),
      data(1, 1),
    ], [
      "rst",
      ErrorCode.STREAM_CLOSED,
      1,
    ]],
    ["PUSH_PROMISE from a client", [
      encodeFrame(FrameType.PUSH_PROMISE, Flags.END_HEADERS, 1, new Uint8Array(4)),
    ], [
      "goaway",
      P,
    ]],
    ["an uppercase field name", [headers(1, [...CONNECT, ["Forwarded", "x"]])], ["rst", P, 1]],
    ["a pseudo-header after a field", [
      headers(1, [[":method", "CONNECT"], ["a", "b"], [":authority", "x:1"]]),
    ], [
      "rst",
      P,
      1,
    ]],
    ["a connection-specific field", [headers(1, [...CONNECT, ["connection", "close"]])], [
      "rst",
      P,
      1,
    ]],
    ["trailers without END_STREAM", [headers(1), headers(1, [["x", "y"]])], ["rst", P, 1]],
    ["RST_STREAM on an idle stream", [encodeRstStream(9, ErrorCode.CANCEL)], ["goaway", P]],
    ["the third concurrent stream", [headers(1), headers(3), headers(5)], [
      "rst",
      ErrorCode.REFUSED_STREAM,
      5,
    ]],
  ];
  const srv = await h2Server({
    settings: { initialWindowSize: 65_535, maxFrameSize: 16_384, maxConcurrentStreams: 2 },
    connectionWindow: 1 << 20,
    onStream: (st) => st.on("error", () => {}),
  });
  try {
    for (const [name, frames, [kind, code, stream]] of cases) {
      const peer = await rawClient(srv.port);
      peer.send(...preface(), ...frames);
      const f = await peer.wait(kind === "goaway" ? isGoaway : isRst(stream!), `${name}: ${kind}`);
      const got = kind === "goaway" ? decodeGoaway(0, f.payload).code : u32(f.payload);
      assertEquals(got, code, `${name}: ${kind} code`);
      if (kind === "goaway") await peer.closed;
      peer.close();
    }
    // The first frame after the preface must be SETTINGS.
    const peer = await rawClient(srv.port);
    peer.send(PREFACE, encodePing(new Uint8Array(8), false));
    assertEquals(decodeGoaway(0, (await peer.wait(isGoaway, "GOAWAY")).payload).code, P);
    peer.close();
  } finally {
    await srv.close();
  }
});

Deno.test("H2Connection server: floods of resets, PINGs and oversized headers are cut off", async () => {
  const srv = await h2Server({
    settings: {
      initialWindowSize: 65_535,
      maxFrameSize: 16_384,
      maxConcurrentStreams: 100,
      maxHeaderListSize: 200,
    },
    limits: { earlyResets: { burst: 3, perSecond: 0 }, emptyFrames: { burst: 5, perSecond: 0 } },
    onStream: (st) => st.on("error", () => {}),
  });
  try {
    // Rapid reset: streams opened and reset before an answer.
    let peer = await rawClient(srv.port);
    peer.send(...preface());
    for (let id = 1; id < 12; id += 2) {
      peer.send(headers(id), encodeRstStream(id, ErrorCode.CANCEL));
    }
    let g = await peer.wait(isGoaway, "GOAWAY");
    assertEquals(decodeGoaway(0, g.payload).code, ErrorCode.ENHANCE_YOUR_CALM);
    peer.close();
    // PING flood.
    peer = await rawClient(srv.port);
    peer.send(
      ...preface(),
      ...Array.from({ length: 8 }, () => encodePing(new Uint8Array(8), false)),
    );
    g = await peer.wait(isGoaway, "GOAWAY");
    assertEquals(decodeGoaway(0, g.payload).code, ErrorCode.ENHANCE_YOUR_CALM);
    assertEquals(peer.frames.filter((f) => f.type === FrameType.PING).length, 5, "5 answered");
    peer.close();
    // A header list over the limit: 431, then RST_STREAM(NO_ERROR); the connection lives on.
    peer = await rawClient(srv.port);
    peer.send(...preface(), headers(1, [...CONNECT, ["x-big", "v".repeat(300)]]));
    const h = await peer.wait((f) => f.type === FrameType.HEADERS && f.stream === 1, "431");
    assertEquals(new HpackDecoder().decode(h.payload).headers, [[":status", "431"]]);
    assertEquals(u32((await peer.wait(isRst(1), "RST_STREAM")).payload), ErrorCode.NO_ERROR);
    peer.send(headers(3));
    await assertEventually(() => srv.conns.at(-1)!.openStreams === 1);
    peer.close();
  } finally {
    await srv.close();
  }
});

Deno.test("H2Connection flow control: windows are reopened only as the reader consumes, in coalesced updates", async () => {
  let stream!: H2Stream;
  const srv = await h2Server({
    settings: { initialWindowSize: 64 << 10, maxFrameSize: 16_384 },
    connectionWindow: 256 << 10,
    onStream: (st) => {
      stream = st;
      st.on("error", () => {});
      st.respond(200);
    },
  });
  try {
    const peer = await rawClient(srv.port);
    peer.send(...preface(), headers(1));
    // The server raised its connection window at start: 256 KiB - 65,535.
    const wu0 = await peer.wait((f) => f.type === FrameType.WINDOW_UPDATE && f.stream === 0, "WU");
    assertEquals(u32(wu0.payload), (256 << 10) - 65_535);
    await peer.wait((f) => f.type === FrameType.HEADERS, "200");
    const conn = srv.conns[0];
    // 64 KiB (the stream window) with nobody reading: no WINDOW_UPDATE.
    for (let i = 0; i < 4; i++) peer.send(data(1, 16_384));
    await assertEventually(() => conn.windows.recv === (256 << 10) - (64 << 10));
    const updates = () => peer.frames.filter((f) => f.type === FrameType.WINDOW_UPDATE).slice(1);
    assertEquals(updates().length, 0, "nothing consumed, nothing credited");
    assertEquals(stream.readableLength, 64 << 10);
    // Reading it reopens the stream window in updates of half the window each.
    while (stream.read() !== null);
    const streamUpdates = () => updates().filter((f) => f.stream === 1).map((f) => u32(f.payload));
    await assertEventually(() => streamUpdates().length === 2);
    assertEquals(streamUpdates(), [32 << 10, 32 << 10]);
    assertEquals(updates().length, 2, "the connection update waits for half its window");
    // Another 64 KiB, consumed: 128 KiB consumed on the connection, half its window.
    stream.on("data", () => {});
    for (let i = 0; i < 4; i++) peer.send(data(1, 16_384));
    await assertEventually(() => updates().some((f) => f.stream === 0));
    assertEquals(u32(updates().find((f) => f.stream === 0)!.payload), 128 << 10);
    assertEquals(conn.windows.recv, 256 << 10);
    // Padding never reaches the reader and counts as consumed at once: 128
    // frames of pad only (256 octets each) are half a stream window.
    const pad = encodeFrame(FrameType.DATA, Flags.PADDED, 1, new Uint8Array(256).fill(0, 0));
    pad[9] = 255;
    for (let i = 0; i < 128; i++) peer.send(pad);
    await assertEventually(() => streamUpdates().length === 5);
    assertEquals(stream.readableLength, 0);
    peer.close();
  } finally {
    await srv.close();
  }
});

Deno.test("H2Connection client: sends within the peer's windows and frame size, waits for WINDOW_UPDATE", async () => {
  const { peer, client, close } = await rawServer({
    settings: { initialWindowSize: 1 << 20, maxFrameSize: 1 << 20 },
  });
  try {
    await peer.wait((f) => f.type === FrameType.SETTINGS, "client SETTINGS");
    peer.send(
      encodeSettings([[SettingId.INITIAL_WINDOW_SIZE, 1000], [
        SettingId.MAX_CONCURRENT_STREAMS,
        1,
      ]]),
    );
    await peer.wait((f) => f.type === FrameType.SETTINGS && (f.flags & Flags.ACK) !== 0, "ACK");
    assertEquals(client.peerSettings.initialWindowSize, 1000);
    const st = client.request({ ":method": "CONNECT", ":authority": "10.0.0.1:80" });
    let threw: unknown;
    try {
      client.request({ ":method": "CONNECT", ":authority": "10.0.0.1:80" });
    } catch (e) {
      threw = e;
    }
    assertOk(threw instanceof RangeError, "MAX_CONCURRENT_STREAMS 1 is respected");
    const h = await peer.wait((f) => f.type === FrameType.HEADERS, "HEADERS");
    assertEquals(new HpackDecoder().decode(h.payload).headers, [[":method", "CONNECT"], [
      ":authority",
      "10.0.0.1:80",
    ]]);
    peer.send(encodeHeaders(1, encodeHeaderBlock([[":status", "200"]]), false, 16_384));
    let written = false;
    st.write(new Uint8Array(5000), () => written = true);
    const dataBytes = () =>
      peer.frames.filter((f) => f.type === FrameType.DATA).reduce(
        (n, f) => n + f.payload.length,
        0,
      );
    await assertEventually(() => dataBytes() === 1000);
    await new Promise((r) => setTimeout(r, 50));
    assertEquals([dataBytes(), written], [1000, false], "held at the stream window");
    // A larger initial window applies to the open stream; the connection window (65,535) still caps.
    peer.send(encodeSettings([[SettingId.INITIAL_WINDOW_SIZE, 3000]]));
    await assertEventually(() => dataBytes() === 3000);
    peer.send(encodeWindowUpdate(1, 2000));
    await assertEventually(() => dataBytes() === 5000 && written);
    assertEquals(client.windows.send, 65_535 - 5000);
    st.end();
    await peer.wait(
      (f) => f.type === FrameType.DATA && (f.flags & Flags.END_STREAM) !== 0,
      "END_STREAM",
    );
    // A reset from the peer ends the stream with an error naming the code.
    const err = new Promise<Error>((r) => st.once("error", r));
    peer.send(encodeRstStream(1, ErrorCode.CANCEL));
    assertOk((await err).message.includes("CANCEL"));
    assertEquals([st.rstCode, st.aborted], [ErrorCode.CANCEL, true]);
  } finally {
    client.destroy();
    close();
  }
});

Deno.test("H2Connection answers PINGs, acknowledges SETTINGS, and drops a peer that stops answering", async () => {
  let dead = false;
  const { peer, client, close } = await rawServer({
    settings: { initialWindowSize: 65_535, maxFrameSize: 16_384 },
    keepalive: { intervalMs: 50, timeoutMs: 300 },
    onDead: () => dead = true,
  });
  try {
    peer.send(encodeSettings([]));
    await peer.wait((f) => f.type === FrameType.SETTINGS && (f.flags & Flags.ACK) !== 0, "ACK");
    peer.send(encodePing(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), false));
    const ack = await peer.wait(
      (f) => f.type === FrameType.PING && (f.flags & Flags.ACK) !== 0,
      "PING ACK",
    );
    assertEquals([...ack.payload], [1, 2, 3, 4, 5, 6, 7, 8]);
    // Our keepalive PINGs go unanswered: the connection is dropped after the timeout.
    await peer.wait((f) => f.type === FrameType.PING && (f.flags & Flags.ACK) === 0, "PING");
    const started = Date.now();
    await peer.closed;
    assertOk(dead && client.closed, "dropped as dead");
    assertOk(Date.now() - started < 2000);
    peer.send(SETTINGS_ACK);
  } finally {
    client.destroy();
    close();
  }
});

Deno.test("H2Connection: GOAWAY refuses streams past its last stream and closes when the rest are done", async () => {
  const { peer, client, close } = await rawServer({
    settings: { initialWindowSize: 65_535, maxFrameSize: 16_384 },
  });
  try {
    peer.send(encodeSettings([]));
    const a = client.request({ ":method": "CONNECT", ":authority": "10.0.0.1:80" });
    const b = client.request({ ":method": "CONNECT", ":authority": "10.0.0.1:80" });
    const bErr = new Promise<Error>((r) => b.once("error", r));
    a.on("error", () => {});
    peer.send(encodeFrame(FrameType.GOAWAY, 0, 0, new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0])));
    assertOk((await bErr).message.includes("going away"));
    assertEquals([client.usable, client.openStreams], [false, 1]);
    peer.send(encodeHeaders(1, encodeHeaderBlock([[":status", "200"]]), true, 16_384));
    a.resume();
    a.end();
    await peer.closed;
    assertEquals(client.openStreams, 0);
  } finally {
    client.destroy();
    close();
  }
});

Deno.test("H2Stream.setTimeout, called after every response by node:http, adds no listener per call", async () => {
  const srv = await h2Server({
    settings: { initialWindowSize: 65535, maxFrameSize: 16384 },
    onStream: (st) => st.respond(200),
  });
  const sock = net.connect(srv.port, "127.0.0.1");
  await new Promise((r) => sock.once("connect", r));
  const client = new H2Connection(sock, {
    role: "client",
    settings: { initialWindowSize: 65535, maxFrameSize: 16384 },
  });
  try {
    const st = client.request({ ":method": "CONNECT", ":authority": "10.0.0.1:80" });
    await new Promise<number>((r) => st.onResponse = (s) => r(s));
    const before = st.listenerCount("close");
    const cb = () => {};
    for (let i = 0; i < 1000; i++) st.setTimeout(5000);
    st.setTimeout(5000, cb);
    assertEquals(st.listenerCount("close"), before + 1, "one close listener for the idle timer");
    assertEquals(st.listenerCount("timeout"), 1);
    st.setTimeout(0, cb);
    assertEquals(
      st.listenerCount("timeout"),
      0,
      "a callback given with 0 is removed, as net.Socket",
    );
    st.destroy();
  } finally {
    client.destroy();
    await srv.close();
  }
});

Deno.test("H2Connection.close() right after a stream's last write: the peer gets every byte and END_STREAM; whenClosed resolves after", async () => {
  // A stopping node closes its connections as soon as its last tunnel is done:
  // the stream's final DATA and END_STREAM may still be in the socket's
  // write buffer then. close() must let them out; destroy() would cut them.
  const SIZE = 3 << 20;
  for (let round = 0; round < 5; round++) {
    let closedAfter: Promise<void> | undefined;
    const srv = await h2Server({
      settings: { initialWindowSize: 4 << 20, maxFrameSize: 1 << 20, maxConcurrentStreams: 10 },
      connectionWindow: 8 << 20,
      onStream: (st) => {
        st.respond(200);
        st.resume();
        st.on("finish", () => {
          const conn = srv.conns[0];
          conn.close();
          closedAfter = conn.whenClosed;
        });
        st.end(new Uint8Array(SIZE).fill(0x62));
      },
    });
    const sock = net.connect(srv.port, "127.0.0.1");
    await new Promise((r) => sock.once("connect", r));
    const client = new H2Connection(sock, {
      role: "client",
      settings: { initialWindowSize: 4 << 20, maxFrameSize: 1 << 20 },
      connectionWindow: 8 << 20,
    });
    try {
      const st = client.request({ ":method": "CONNECT", ":authority": "10.0.0.1:80" }, {
        endStream: true,
      });
      st.on("error", () => {});
      let got = 0;
      st.on("data", (d: Uint8Array) => got += d.length);
      const outcome = await new Promise<string>((r) => {
        st.once("end", () => r("end"));
        st.once("close", () => r(st.readableEnded ? "end" : "closed early"));
      });
      assertEquals([outcome, got, st.aborted], ["end", SIZE, false], `round ${round}`);
      await client.whenClosed;
      await closedAfter;
      assertOk(srv.conns[0].closed);
    } finally {
      client.destroy();
      await srv.close();
    }
  }
});
