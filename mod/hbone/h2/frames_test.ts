import { assertEquals, assertOk } from "../../../tests/_util/asserts.ts";
import { ErrorCode, H2ConnectionError, H2StreamError } from "./errors.ts";
import {
  decodeGoaway,
  decodeHeadersPayload,
  decodePing,
  decodePriority,
  decodeRstStream,
  decodeSettings,
  decodeWindowUpdate,
  encodeFrame,
  encodeGoaway,
  encodeHeaders,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeWindowUpdate,
  Flags,
  FrameReader,
  type FrameSink,
  FrameType,
  PREFACE,
  SettingId,
  SETTINGS_ACK,
} from "./frames.ts";

/** What a reader saw, one entry per frame (DATA content joined). */
type Seen = [type: number, flags: number, stream: number, payload: number[]];

function collector(): { sink: FrameSink; seen: Seen[]; dataChunks: Uint8Array[] } {
  const seen: Seen[] = [];
  const dataChunks: Uint8Array[] = [];
  let data: number[] = [];
  const sink: FrameSink = {
    onFrame: (t, f, s, p) => void seen.push([t, f, s, [...p]]),
    onDataStart: () => void (data = []),
    onData: (_s, c) => {
      dataChunks.push(c);
      data.push(...c);
    },
    onDataEnd: (s, f) => void seen.push([FrameType.DATA, f, s, data]),
  };
  return { sink, seen, dataChunks };
}

function readAll(bytes: Uint8Array, piece: number, expectPreface = false): Seen[] {
  const c = collector();
  const r = new FrameReader(c.sink, { maxFrameSize: 1 << 20, expectPreface });
  for (let o = 0; o < bytes.length; o += piece) r.push(bytes.subarray(o, o + piece));
  return c.seen;
}

function join(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A padded DATA frame by hand: pad length, content, padding. */
function paddedData(stream: number, content: number[], pad: number, flags = 0): Uint8Array {
  return encodeFrame(
    FrameType.DATA,
    Flags.PADDED | flags,
    stream,
    new Uint8Array([pad, ...content, ...new Array(pad).fill(0)]),
  );
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

Deno.test("frames round-trip through FrameReader whole, byte by byte and in odd pieces", () => {
  const block = new Uint8Array(40_000).map((_, i) => i & 0xff);
  const wire = join(
    PREFACE,
    encodeSettings([[SettingId.INITIAL_WINDOW_SIZE, 4 << 20], [SettingId.MAX_FRAME_SIZE, 1 << 20]]),
    SETTINGS_ACK,
    encodePing(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), true),
    encodeWindowUpdate(0, 16 << 20),
    encodeHeaders(1, block, true, 16_384), // HEADERS + 2 CONTINUATION
    encodeFrame(FrameType.DATA, 0, 1, new Uint8Array([9, 8, 7])),
    paddedData(3, [1, 2], 5, Flags.END_STREAM),
    paddedData(3, [], 0),
    encodeRstStream(3, ErrorCode.CANCEL),
    encodeGoaway(7, ErrorCode.NO_ERROR, "bye"),
    encodeFrame(0xfa, 0, 0, new Uint8Array([1])), // unknown type: passed on
  );
  const whole = readAll(wire, wire.length, true);
  assertEquals(whole.map(([t, f, s]) => [t, f, s]), [
    [FrameType.SETTINGS, 0, 0],
    [FrameType.SETTINGS, Flags.ACK, 0],
    [FrameType.PING, Flags.ACK, 0],
    [FrameType.WINDOW_UPDATE, 0, 0],
    [FrameType.HEADERS, Flags.END_STREAM, 1],
    [FrameType.CONTINUATION, 0, 1],
    [FrameType.CONTINUATION, Flags.END_HEADERS, 1],
    [FrameType.DATA, 0, 1],
    [FrameType.DATA, Flags.PADDED | Flags.END_STREAM, 3],
    [FrameType.DATA, Flags.PADDED, 3],
    [FrameType.RST_STREAM, 0, 3],
    [FrameType.GOAWAY, 0, 0],
    [0xfa, 0, 0],
  ]);
  assertEquals(whole[7][3], [9, 8, 7]);
  assertEquals(whole[8][3], [1, 2], "padding is removed");
  assertEquals([...whole[4][3], ...whole[5][3], ...whole[6][3]], [...block], "block split");
  for (const piece of [1, 7, 4096]) {
    assertEquals(readAll(wire, piece, true), whole, `pieces of ${piece}`);
  }
});

Deno.test("FrameReader hands DATA on as subarrays of the input, without copying", () => {
  const c = collector();
  const r = new FrameReader(c.sink, { maxFrameSize: 1 << 20 });
  const payload = new Uint8Array(100_000).fill(7);
  const wire = encodeFrame(FrameType.DATA, 0, 1, payload);
  r.push(wire.subarray(0, 50_000));
  r.push(wire.subarray(50_000));
  assertEquals(c.dataChunks.map((d) => d.length), [50_000 - 9, 50_009]);
  assertOk(c.dataChunks.every((d) => d.buffer === wire.buffer), "views of the pushed chunks");
});

Deno.test("encoders and payload decoders agree", () => {
  const s = encodeSettings([[SettingId.MAX_CONCURRENT_STREAMS, 200], [0xf0, 9]]);
  assertEquals(decodeSettings(0, 0, s.subarray(9)), [[3, 200], [0xf0, 9]]);
  assertEquals([...decodePing(0, encodePing(new Uint8Array(8).fill(5), false).subarray(9))], [
    5,
    5,
    5,
    5,
    5,
    5,
    5,
    5,
  ]);
  assertEquals(
    decodeGoaway(0, encodeGoaway(0x7fffffff, ErrorCode.ENHANCE_YOUR_CALM, "x").subarray(9)),
    {
      lastStreamId: 0x7fffffff,
      code: ErrorCode.ENHANCE_YOUR_CALM,
      debug: "x",
    },
  );
  assertEquals(
    decodeRstStream(5, encodeRstStream(5, ErrorCode.CANCEL).subarray(9)),
    ErrorCode.CANCEL,
  );
  assertEquals(decodeWindowUpdate(0, encodeWindowUpdate(0, 0x7fffffff).subarray(9)), 0x7fffffff);
  // The reserved bit of a WINDOW_UPDATE is ignored.
  assertEquals(decodeWindowUpdate(1, new Uint8Array([0x80, 0, 0, 1])), 1);
  // HEADERS with padding and priority fields.
  const p = new Uint8Array([2, 0, 0, 0, 3, 16, 0xaa, 0xbb, 0, 0]);
  assertEquals([...decodeHeadersPayload(Flags.PADDED | Flags.PRIORITY, 1, p)], [0xaa, 0xbb]);
  assertEquals(thrown(() => encodeWindowUpdate(1, 0)) instanceof RangeError, true);
});

Deno.test("malformed frames are the RFC 9113 errors, on the connection or the stream", () => {
  const conn = (code: number) => ["connection", code] as const;
  const stream = (code: number) => ["stream", code] as const;
  const P = ErrorCode.PROTOCOL_ERROR;
  const F = ErrorCode.FRAME_SIZE_ERROR;
  const table: [string, () => unknown, readonly ["connection" | "stream", number]][] = [
    ["SETTINGS on a stream", () => decodeSettings(0, 1, new Uint8Array(0)), conn(P)],
    ["SETTINGS of 5 octets", () => decodeSettings(0, 0, new Uint8Array(5)), conn(F)],
    ["SETTINGS ACK with payload", () => decodeSettings(Flags.ACK, 0, new Uint8Array(6)), conn(F)],
    ["ENABLE_PUSH 2", () => decodeSettings(0, 0, new Uint8Array([0, 2, 0, 0, 0, 2])), conn(P)],
    [
      "INITIAL_WINDOW_SIZE 2^31",
      () => decodeSettings(0, 0, new Uint8Array([0, 4, 0x80, 0, 0, 0])),
      conn(ErrorCode.FLOW_CONTROL_ERROR),
    ],
    [
      "MAX_FRAME_SIZE 16383",
      () => decodeSettings(0, 0, new Uint8Array([0, 5, 0, 0, 0x3f, 0xff])),
      conn(P),
    ],
    [
      "MAX_FRAME_SIZE 2^24",
      () => decodeSettings(0, 0, new Uint8Array([0, 5, 1, 0, 0, 0])),
      conn(P),
    ],
    ["PING of 7 octets", () => decodePing(0, new Uint8Array(7)), conn(F)],
    ["PING on a stream", () => decodePing(3, new Uint8Array(8)), conn(P)],
    ["GOAWAY of 7 octets", () => decodeGoaway(0, new Uint8Array(7)), conn(F)],
    ["GOAWAY on a stream", () => decodeGoaway(1, new Uint8Array(8)), conn(P)],
    ["RST_STREAM on stream 0", () => decodeRstStream(0, new Uint8Array(4)), conn(P)],
    ["RST_STREAM of 5 octets", () => decodeRstStream(1, new Uint8Array(5)), conn(F)],
    ["WINDOW_UPDATE of 3 octets", () => decodeWindowUpdate(1, new Uint8Array(3)), conn(F)],
    ["WINDOW_UPDATE 0 on the connection", () => decodeWindowUpdate(0, new Uint8Array(4)), conn(P)],
    ["WINDOW_UPDATE 0 on a stream", () => decodeWindowUpdate(1, new Uint8Array(4)), stream(P)],
    ["PRIORITY on stream 0", () => decodePriority(0, new Uint8Array(5)), conn(P)],
    ["PRIORITY of 4 octets", () => decodePriority(1, new Uint8Array(4)), stream(F)],
    ["PRIORITY on itself", () => decodePriority(1, new Uint8Array([0, 0, 0, 1, 0])), stream(P)],
    ["HEADERS on stream 0", () => decodeHeadersPayload(0, 0, new Uint8Array(1)), conn(P)],
    [
      "HEADERS padding too long",
      () => decodeHeadersPayload(Flags.PADDED, 1, new Uint8Array([3, 0, 0])),
      conn(P),
    ],
    [
      "HEADERS padded, empty",
      () => decodeHeadersPayload(Flags.PADDED, 1, new Uint8Array(0)),
      conn(F),
    ],
    [
      "HEADERS priority cut short",
      () => decodeHeadersPayload(Flags.PRIORITY, 1, new Uint8Array(4)),
      conn(F),
    ],
  ];
  for (const [name, fn, [kind, code]] of table) {
    const e = thrown(fn);
    const ok = kind === "connection" ? e instanceof H2ConnectionError : e instanceof H2StreamError;
    assertOk(ok && (e as H2ConnectionError).code === code, `${name}: ${e}`);
  }
});

Deno.test("FrameReader refuses a bad preface, oversized frames and bad DATA padding", () => {
  const table: [string, Uint8Array, boolean, number][] = [
    [
      "HTTP/1.1 instead of the preface",
      new TextEncoder().encode("GET / HTTP/1.1\r\n"),
      true,
      ErrorCode.PROTOCOL_ERROR,
    ],
    [
      "a frame over the limit",
      encodeFrame(FrameType.PING, 0, 0, new Uint8Array(1025)),
      false,
      ErrorCode.FRAME_SIZE_ERROR,
    ],
    [
      "padding over the payload",
      encodeFrame(FrameType.DATA, Flags.PADDED, 1, new Uint8Array([5, 1])),
      false,
      ErrorCode.PROTOCOL_ERROR,
    ],
    [
      "padded DATA of 0 octets",
      encodeFrame(FrameType.DATA, Flags.PADDED, 1),
      false,
      ErrorCode.FRAME_SIZE_ERROR,
    ],
  ];
  for (const [name, bytes, preface, code] of table) {
    const r = new FrameReader(collector().sink, { maxFrameSize: 1024, expectPreface: preface });
    const e = thrown(() => r.push(bytes));
    assertOk(e instanceof H2ConnectionError && e.code === code, `${name}: ${e}`);
    // After an error the reader ignores everything.
    r.push(encodeFrame(FrameType.PING, 0, 0, new Uint8Array(8)));
  }
});
