/**
 * The HTTP/2 frame layer (RFC 9113 §4, §6): constants, encoders for every
 * frame ambit sends, payload decoders that check each frame's fixed layout,
 * and {@link FrameReader}, which cuts a byte stream into frames.
 *
 * The reader streams DATA: a DATA frame's content is handed on in the
 * pieces it arrives in (subarrays of the socket's chunks, never copied), so
 * a 1 MiB frame is neither buffered nor concatenated. Other frames are
 * collected whole (they are small, and bounded by the frame size limit).
 *
 * @module
 */
import { ErrorCode, H2ConnectionError, H2StreamError } from "./errors.ts";

/** Frame types (RFC 9113 §6). */
export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

/** Frame flags; END_STREAM and ACK share a bit on different frame types. */
export const Flags = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** SETTINGS identifiers (RFC 9113 §6.5.2, RFC 8441). */
export const SettingId = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
  ENABLE_CONNECT_PROTOCOL: 0x8,
} as const;

/** Octets in a frame header. */
export const FRAME_HEADER_SIZE = 9;
/** The initial SETTINGS_MAX_FRAME_SIZE and the smallest one allowed. */
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
/** The largest SETTINGS_MAX_FRAME_SIZE allowed (2^24 - 1). */
export const MAX_FRAME_SIZE_LIMIT = 16_777_215;
/** The largest flow-control window (2^31 - 1). */
export const MAX_WINDOW = 2_147_483_647;
/** The initial flow-control window of streams and the connection. */
export const DEFAULT_WINDOW = 65_535;

const EMPTY = new Uint8Array(0);

/** The client connection preface (RFC 9113 §3.4). */
export const PREFACE: Uint8Array = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Writes a 9-octet frame header into `buf` at `offset`. */
export function writeFrameHeader(
  buf: Uint8Array,
  offset: number,
  length: number,
  type: number,
  flags: number,
  streamId: number,
): void {
  buf[offset] = length >>> 16;
  buf[offset + 1] = (length >>> 8) & 0xff;
  buf[offset + 2] = length & 0xff;
  buf[offset + 3] = type;
  buf[offset + 4] = flags;
  writeUint31(buf, offset + 5, streamId);
}

/** One frame as bytes: header then payload. */
export function encodeFrame(
  type: number,
  flags: number,
  streamId: number,
  payload: Uint8Array = EMPTY,
): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE + payload.length);
  writeFrameHeader(out, 0, payload.length, type, flags, streamId);
  out.set(payload, FRAME_HEADER_SIZE);
  return out;
}

/** The 9-octet header of a DATA frame of `length` octets (the payload is written after it). */
export function dataFrameHeader(streamId: number, length: number, endStream: boolean): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE);
  writeFrameHeader(out, 0, length, FrameType.DATA, endStream ? Flags.END_STREAM : 0, streamId);
  return out;
}

/** A DATA frame, header and payload in one buffer (for small payloads; large ones use {@link dataFrameHeader}). */
export function encodeData(streamId: number, payload: Uint8Array, endStream: boolean): Uint8Array {
  return encodeFrame(FrameType.DATA, endStream ? Flags.END_STREAM : 0, streamId, payload);
}

/** A SETTINGS frame with `[id, value]` entries. */
export function encodeSettings(entries: readonly (readonly [number, number])[]): Uint8Array {
  const p = new Uint8Array(entries.length * 6);
  entries.forEach(([id, value], i) => {
    p[i * 6] = id >>> 8;
    p[i * 6 + 1] = id & 0xff;
    writeUint32(p, i * 6 + 2, value);
  });
  return encodeFrame(FrameType.SETTINGS, 0, 0, p);
}

/** The SETTINGS acknowledgement. */
export const SETTINGS_ACK: Uint8Array = encodeFrame(FrameType.SETTINGS, Flags.ACK, 0);

/** A PING (or its ACK) carrying 8 octets of opaque data. */
export function encodePing(data: Uint8Array, ack: boolean): Uint8Array {
  if (data.length !== 8) throw new RangeError(`PING data is ${data.length} octets, expected 8`);
  return encodeFrame(FrameType.PING, ack ? Flags.ACK : 0, 0, data);
}

/** A GOAWAY naming the last stream processed, an error code and optional debug text. */
export function encodeGoaway(lastStreamId: number, code: number, debug = ""): Uint8Array {
  const text = new TextEncoder().encode(debug.slice(0, 256));
  const p = new Uint8Array(8 + text.length);
  writeUint31(p, 0, lastStreamId);
  writeUint32(p, 4, code);
  p.set(text, 8);
  return encodeFrame(FrameType.GOAWAY, 0, 0, p);
}

/** An RST_STREAM with an error code. */
export function encodeRstStream(streamId: number, code: number): Uint8Array {
  const p = new Uint8Array(4);
  writeUint32(p, 0, code);
  return encodeFrame(FrameType.RST_STREAM, 0, streamId, p);
}

/** A WINDOW_UPDATE granting `increment` (1 to 2^31-1) octets. */
export function encodeWindowUpdate(streamId: number, increment: number): Uint8Array {
  if (!(increment >= 1 && increment <= MAX_WINDOW)) {
    throw new RangeError(`WINDOW_UPDATE increment ${increment} is not in 1..${MAX_WINDOW}`);
  }
  const p = new Uint8Array(4);
  writeUint31(p, 0, increment);
  return encodeFrame(FrameType.WINDOW_UPDATE, 0, streamId, p);
}

/**
 * A header block as one HEADERS frame, followed by CONTINUATION frames when
 * it exceeds `maxFrameSize`; all in one buffer, so it is written at once and
 * nothing can come between them.
 */
export function encodeHeaders(
  streamId: number,
  block: Uint8Array,
  endStream: boolean,
  maxFrameSize: number,
): Uint8Array {
  const frames = Math.max(1, Math.ceil(block.length / maxFrameSize));
  const out = new Uint8Array(block.length + frames * FRAME_HEADER_SIZE);
  let o = 0;
  for (let i = 0; i < frames; i++) {
    const part = block.subarray(i * maxFrameSize, (i + 1) * maxFrameSize);
    const last = i === frames - 1;
    writeFrameHeader(
      out,
      o,
      part.length,
      i === 0 ? FrameType.HEADERS : FrameType.CONTINUATION,
      (last ? Flags.END_HEADERS : 0) | (i === 0 && endStream ? Flags.END_STREAM : 0),
      streamId,
    );
    out.set(part, o + FRAME_HEADER_SIZE);
    o += FRAME_HEADER_SIZE + part.length;
  }
  return out;
}

/** A decoded SETTINGS frame: the entries in order (unknown identifiers included). */
export type SettingsEntries = [id: number, value: number][];

/**
 * The entries of a SETTINGS frame, checked as RFC 9113 §6.5 requires:
 * stream 0, a multiple of 6 octets, an empty ACK, valid values.
 */
export function decodeSettings(flags: number, streamId: number, p: Uint8Array): SettingsEntries {
  if (streamId !== 0) throw protocol(`SETTINGS on stream ${streamId}`);
  if (flags & Flags.ACK) {
    if (p.length !== 0) throw frameSize(`SETTINGS ACK with ${p.length} octets of payload`);
    return [];
  }
  if (p.length % 6 !== 0) throw frameSize(`SETTINGS of ${p.length} octets, not a multiple of 6`);
  const out: SettingsEntries = [];
  for (let o = 0; o < p.length; o += 6) {
    const id = (p[o] << 8) | p[o + 1];
    const value = readUint32(p, o + 2);
    checkSetting(id, value);
    out.push([id, value]);
  }
  return out;
}

function checkSetting(id: number, value: number): void {
  switch (id) {
    case SettingId.ENABLE_PUSH:
    case SettingId.ENABLE_CONNECT_PROTOCOL:
      if (value > 1) throw protocol(`setting 0x${id.toString(16)} is ${value}, not 0 or 1`);
      break;
    case SettingId.INITIAL_WINDOW_SIZE:
      if (value > MAX_WINDOW) {
        throw new H2ConnectionError(
          ErrorCode.FLOW_CONTROL_ERROR,
          `SETTINGS_INITIAL_WINDOW_SIZE ${value} exceeds ${MAX_WINDOW}`,
        );
      }
      break;
    case SettingId.MAX_FRAME_SIZE:
      if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) {
        throw protocol(
          `SETTINGS_MAX_FRAME_SIZE ${value} is not in ${DEFAULT_MAX_FRAME_SIZE}..${MAX_FRAME_SIZE_LIMIT}`,
        );
      }
  }
}

/** The 8 octets of a PING (stream 0, exactly 8 octets). */
export function decodePing(streamId: number, p: Uint8Array): Uint8Array {
  if (streamId !== 0) throw protocol(`PING on stream ${streamId}`);
  if (p.length !== 8) throw frameSize(`PING of ${p.length} octets, expected 8`);
  return p;
}

/** A decoded GOAWAY. */
export interface Goaway {
  readonly lastStreamId: number;
  readonly code: number;
  readonly debug: string;
}

/** A GOAWAY's fields (stream 0, at least 8 octets). */
export function decodeGoaway(streamId: number, p: Uint8Array): Goaway {
  if (streamId !== 0) throw protocol(`GOAWAY on stream ${streamId}`);
  if (p.length < 8) throw frameSize(`GOAWAY of ${p.length} octets, expected at least 8`);
  return {
    lastStreamId: readUint31(p, 0),
    code: readUint32(p, 4),
    debug: new TextDecoder().decode(p.subarray(8, 8 + 256)),
  };
}

/** An RST_STREAM's error code (not stream 0, exactly 4 octets). */
export function decodeRstStream(streamId: number, p: Uint8Array): number {
  if (streamId === 0) throw protocol("RST_STREAM on stream 0");
  if (p.length !== 4) throw frameSize(`RST_STREAM of ${p.length} octets, expected 4`);
  return readUint32(p, 0);
}

/**
 * A WINDOW_UPDATE's increment (exactly 4 octets, not 0). An increment of 0
 * is a stream error on a stream and a connection error on stream 0.
 */
export function decodeWindowUpdate(streamId: number, p: Uint8Array): number {
  if (p.length !== 4) throw frameSize(`WINDOW_UPDATE of ${p.length} octets, expected 4`);
  const inc = readUint31(p, 0);
  if (inc === 0) {
    const msg = "WINDOW_UPDATE with an increment of 0";
    throw streamId === 0
      ? protocol(msg)
      : new H2StreamError(ErrorCode.PROTOCOL_ERROR, streamId, msg);
  }
  return inc;
}

/** Checks a PRIORITY frame (deprecated, otherwise ignored): not stream 0, 5 octets, no self-dependency. */
export function decodePriority(streamId: number, p: Uint8Array): void {
  if (streamId === 0) throw protocol("PRIORITY on stream 0");
  if (p.length !== 5) {
    throw new H2StreamError(
      ErrorCode.FRAME_SIZE_ERROR,
      streamId,
      `PRIORITY of ${p.length} octets, expected 5`,
    );
  }
  if (readUint31(p, 0) === streamId) {
    throw new H2StreamError(ErrorCode.PROTOCOL_ERROR, streamId, "stream depends on itself");
  }
}

/**
 * The header block fragment of a HEADERS frame: padding and the priority
 * fields removed (RFC 9113 §6.2).
 */
export function decodeHeadersPayload(flags: number, streamId: number, p: Uint8Array): Uint8Array {
  if (streamId === 0) throw protocol("HEADERS on stream 0");
  let start = 0;
  let end = p.length;
  if (flags & Flags.PADDED) {
    if (p.length < 1) throw frameSize("padded HEADERS without a pad length");
    const pad = p[0];
    start = 1;
    if (pad > p.length - 1) throw protocol(`HEADERS padding ${pad} exceeds its payload`);
    end -= pad;
  }
  if (flags & Flags.PRIORITY) {
    if (end - start < 5) throw frameSize("HEADERS with PRIORITY but no room for its fields");
    if (readUint31(p, start) === streamId) {
      throw new H2StreamError(ErrorCode.PROTOCOL_ERROR, streamId, "stream depends on itself");
    }
    start += 5;
  }
  if (start > end) throw protocol("HEADERS padding overlaps its priority fields");
  return p.subarray(start, end);
}

/** What a {@link FrameReader} hands each frame to. */
export interface FrameSink {
  /** A complete frame other than DATA; `payload` is valid only during the call unless copied. */
  onFrame(type: number, flags: number, streamId: number, payload: Uint8Array): void;
  /** A DATA frame begins; `length` is its whole payload, padding included (flow control counts it). */
  onDataStart(streamId: number, flags: number, length: number): void;
  /** Content of the current DATA frame, padding removed; called zero or more times per frame. */
  onData(streamId: number, chunk: Uint8Array): void;
  /** The current DATA frame is complete. */
  onDataEnd(streamId: number, flags: number): void;
}

/** Options for {@link FrameReader}. */
export interface FrameReaderOptions {
  /** Largest frame payload accepted (our SETTINGS_MAX_FRAME_SIZE). */
  readonly maxFrameSize: number;
  /** Expect the client preface first (a server). */
  readonly expectPreface?: boolean;
}

/** Reader phases. */
const Phase = {
  Preface: 0,
  Header: 1,
  Payload: 2,
  DataPadLength: 3,
  Data: 4,
  DataPadding: 5,
} as const;
type Phase = typeof Phase[keyof typeof Phase];

/**
 * Cuts a byte stream into frames for a {@link FrameSink}. Errors from
 * framing (bad preface, a frame over the size limit, bad DATA padding) and
 * any error the sink throws propagate out of {@link push}; after one, or
 * after {@link stop}, further input is ignored.
 */
export class FrameReader {
  #phase: Phase;
  #prefaceAt = 0;
  #head = new Uint8Array(FRAME_HEADER_SIZE);
  #headLen = 0;
  #type = 0;
  #flags = 0;
  #stream = 0;
  #length = 0;
  /** Octets of the current payload (or DATA part) still to come. */
  #left = 0;
  #pad = 0;
  #parts: Uint8Array[] = [];
  #stopped = false;
  maxFrameSize: number;

  constructor(readonly sink: FrameSink, options: FrameReaderOptions) {
    this.maxFrameSize = options.maxFrameSize;
    this.#phase = options.expectPreface ? Phase.Preface : Phase.Header;
  }

  /** Ignores all further input. */
  stop(): void {
    this.#stopped = true;
  }

  /** Whether the client preface has been read (always true for a client). */
  get prefaceDone(): boolean {
    return this.#phase !== Phase.Preface;
  }

  /** Feeds bytes; frames are handed to the sink as they complete. */
  push(chunk: Uint8Array): void {
    let o = 0;
    const n = chunk.length;
    try {
      while (o < n && !this.#stopped) {
        switch (this.#phase) {
          case Phase.Preface:
            o = this.#readPreface(chunk, o);
            break;
          case Phase.Header:
            o = this.#readHeader(chunk, o);
            break;
          case Phase.Payload: {
            const take = Math.min(this.#left, n - o);
            if (take === this.#length && this.#parts.length === 0) {
              // The whole payload in this chunk: no copy.
              this.#left = 0;
              this.#phase = Phase.Header;
              this.sink.onFrame(this.#type, this.#flags, this.#stream, chunk.subarray(o, o + take));
            } else {
              this.#parts.push(chunk.slice(o, o + take));
              this.#left -= take;
              if (this.#left === 0) this.#completeFrame();
            }
            o += take;
            break;
          }
          case Phase.DataPadLength:
            o = this.#readPadLength(chunk, o);
            break;
          case Phase.Data: {
            const take = Math.min(this.#left, n - o);
            this.#left -= take;
            // A plain view: cheaper than Buffer#subarray's species constructor.
            if (take > 0) {
              this.sink.onData(
                this.#stream,
                new Uint8Array(chunk.buffer, chunk.byteOffset + o, take),
              );
            }
            o += take;
            if (this.#left === 0) this.#afterData();
            break;
          }
          case Phase.DataPadding: {
            const take = Math.min(this.#left, n - o);
            this.#left -= take;
            o += take;
            if (this.#left === 0) this.#endData();
            break;
          }
        }
      }
    } catch (e) {
      this.#stopped = true;
      throw e;
    }
  }

  #readPreface(chunk: Uint8Array, o: number): number {
    while (o < chunk.length && this.#prefaceAt < PREFACE.length) {
      if (chunk[o] !== PREFACE[this.#prefaceAt]) {
        throw protocol("the client did not send the HTTP/2 connection preface");
      }
      o++;
      this.#prefaceAt++;
    }
    if (this.#prefaceAt === PREFACE.length) this.#phase = Phase.Header;
    return o;
  }

  #readHeader(chunk: Uint8Array, o: number): number {
    let h: Uint8Array;
    let at: number;
    if (this.#headLen === 0 && chunk.length - o >= FRAME_HEADER_SIZE) {
      h = chunk;
      at = o;
      o += FRAME_HEADER_SIZE;
    } else {
      const take = Math.min(FRAME_HEADER_SIZE - this.#headLen, chunk.length - o);
      this.#head.set(chunk.subarray(o, o + take), this.#headLen);
      this.#headLen += take;
      o += take;
      if (this.#headLen < FRAME_HEADER_SIZE) return o;
      this.#headLen = 0;
      h = this.#head;
      at = 0;
    }
    const length = (h[at] << 16) | (h[at + 1] << 8) | h[at + 2];
    this.#type = h[at + 3];
    this.#flags = h[at + 4];
    this.#stream = readUint31(h, at + 5);
    this.#length = length;
    if (length > this.maxFrameSize) {
      throw frameSize(`a frame of ${length} octets exceeds the limit of ${this.maxFrameSize}`);
    }
    if (this.#type === FrameType.DATA) {
      this.sink.onDataStart(this.#stream, this.#flags, length);
      if (this.#flags & Flags.PADDED) {
        if (length === 0) throw frameSize("padded DATA without a pad length");
        this.#phase = Phase.DataPadLength;
      } else {
        this.#left = length;
        this.#pad = 0;
        this.#phase = Phase.Data;
        if (length === 0) this.#afterData();
      }
      return o;
    }
    this.#left = length;
    this.#phase = Phase.Payload;
    if (length === 0) {
      this.#phase = Phase.Header;
      this.sink.onFrame(this.#type, this.#flags, this.#stream, EMPTY);
    }
    return o;
  }

  #readPadLength(chunk: Uint8Array, o: number): number {
    const pad = chunk[o];
    if (pad > this.#length - 1) throw protocol(`DATA padding ${pad} exceeds its payload`);
    this.#pad = pad;
    this.#left = this.#length - 1 - pad;
    this.#phase = Phase.Data;
    if (this.#left === 0) this.#afterData();
    return o + 1;
  }

  #afterData(): void {
    if (this.#pad > 0) {
      this.#left = this.#pad;
      this.#phase = Phase.DataPadding;
    } else this.#endData();
  }

  #endData(): void {
    this.#phase = Phase.Header;
    this.sink.onDataEnd(this.#stream, this.#flags);
  }

  #completeFrame(): void {
    const parts = this.#parts;
    this.#parts = [];
    const payload = parts.length === 1 ? parts[0] : concat(parts, this.#length);
    this.#phase = Phase.Header;
    this.sink.onFrame(this.#type, this.#flags, this.#stream, payload);
  }
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function protocol(message: string): H2ConnectionError {
  return new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, message);
}

function frameSize(message: string): H2ConnectionError {
  return new H2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, message);
}

function readUint31(b: Uint8Array, o: number): number {
  return ((b[o] & 0x7f) << 24 | b[o + 1] << 16 | b[o + 2] << 8 | b[o + 3]) >>> 0;
}

function readUint32(b: Uint8Array, o: number): number {
  return (b[o] << 24 | b[o + 1] << 16 | b[o + 2] << 8 | b[o + 3]) >>> 0;
}

function writeUint31(b: Uint8Array, o: number, v: number): void {
  writeUint32(b, o, v & 0x7fffffff);
}

function writeUint32(b: Uint8Array, o: number, v: number): void {
  b[o] = v >>> 24;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}
