/**
 * An HTTP/2 connection (RFC 9113) over an established socket, client or
 * server side, carrying streams as {@link H2Stream} Duplexes.
 *
 * It does what HBONE needs and what the RFC requires of every endpoint:
 * the preface and SETTINGS exchange; flow control on both levels (windows
 * reopened as readers consume, WINDOW_UPDATEs coalesced until half a
 * window is due); stream states, identifiers and MAX_CONCURRENT_STREAMS;
 * RST_STREAM; GOAWAY both ways; PING answers and keepalive PINGs that find
 * dead peers; header blocks over CONTINUATION. Violations end the stream
 * (RST_STREAM) or the connection (GOAWAY) with the RFC's error code, and
 * the limits in limits.ts bound what a misbehaving peer can cost.
 *
 * Not implemented, as HBONE needs none of it: server push (disabled),
 * priorities (PRIORITY frames are checked and ignored), padding on send.
 *
 * @module
 */
import type { Duplex } from "node:stream";
import type { KeepaliveOptions } from "../settings.ts";
import { ErrorCode, errorName, H2ConnectionError, H2ResetError, H2StreamError } from "./errors.ts";
import {
  dataFrameHeader,
  decodeGoaway,
  decodeHeadersPayload,
  decodePing,
  decodePriority,
  decodeRstStream,
  decodeSettings,
  decodeWindowUpdate,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  encodeData,
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
  type Goaway,
  MAX_WINDOW,
  PREFACE,
  SettingId,
  SETTINGS_ACK,
} from "./frames.ts";
import { checkFields, fromRecord, toRecord } from "./headers.ts";
import {
  type DecodedBlock,
  encodeHeaderBlock,
  type HeaderField,
  HpackDecoder,
  HpackError,
} from "./hpack.ts";
import { DEFAULT_LIMITS, type H2Limits, TokenBucket } from "./limits.ts";
import { H2Stream, type StreamHost } from "./stream.ts";

/** SETTINGS we advertise. */
export interface H2Settings {
  /** SETTINGS_INITIAL_WINDOW_SIZE: each stream's receive window. */
  readonly initialWindowSize: number;
  /** SETTINGS_MAX_FRAME_SIZE: the largest frame we accept. */
  readonly maxFrameSize: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS (server side; unlimited when left out). */
  readonly maxConcurrentStreams?: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE (advertised when set; also the decoding limit). */
  readonly maxHeaderListSize?: number;
}

/** The peer's SETTINGS as they stand. */
export interface PeerSettings {
  headerTableSize: number;
  enablePush: boolean;
  maxConcurrentStreams: number;
  initialWindowSize: number;
  maxFrameSize: number;
  maxHeaderListSize: number;
  enableConnectProtocol: boolean;
}

/** Options for {@link H2Connection}. */
export interface H2ConnectionOptions {
  readonly role: "client" | "server";
  readonly settings: H2Settings;
  /** The connection's receive window, raised from 65,535 at start (default: not raised). */
  readonly connectionWindow?: number;
  readonly limits?: Partial<H2Limits>;
  /** PING every `intervalMs`; the connection is dead after `timeoutMs` without hearing the peer. */
  readonly keepalive?: KeepaliveOptions;
  /** A new stream from the peer (server side): its request headers are in `stream.headers`. */
  onStream?(stream: H2Stream): void;
  /** The peer's SETTINGS arrived (`first`: its preface). */
  onSettings?(settings: Readonly<PeerSettings>, first: boolean): void;
  /** The peer sent GOAWAY: no new streams on this connection. */
  onGoaway?(goaway: Goaway): void;
  /** The keepalive deadline passed; the connection is destroyed right after. */
  onDead?(): void;
  /** The number of open streams dropped to zero. */
  onIdle?(): void;
  /** The socket closed; `err` is the connection error that ended it, either side's. */
  onClose?(err?: Error): void;
}

/** DATA payloads up to this size are copied behind their header and written at once. */
const COALESCE_LIMIT = 16 << 10;
/** Stream IDs we remember having reset, to ignore what the peer still had in flight. */
const RESET_MEMORY = 1024;

/** An HTTP/2 connection on a connected socket (TLS for HBONE). */
export class H2Connection implements StreamHost, FrameSink {
  readonly role: "client" | "server";
  #socket: Duplex;
  #opts: H2ConnectionOptions;
  #limits: H2Limits;
  #local: Required<H2Settings>;
  #reader: FrameReader;
  #decoder = new HpackDecoder();
  #streams = new Map<number, H2Stream>();
  #peer: PeerSettings = {
    headerTableSize: 4096,
    enablePush: true,
    maxConcurrentStreams: Infinity,
    initialWindowSize: DEFAULT_WINDOW,
    maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
    maxHeaderListSize: Infinity,
    enableConnectProtocol: false,
  };
  #gotSettings = false;
  #sizeUpdateDue = true;
  #sendWindow = DEFAULT_WINDOW;
  #recvWindow: number;
  #pendingConnCredit = 0;
  #connThreshold: number;
  #streamThreshold: number;
  #blocked = new Set<H2Stream>();
  #nextStreamId = 1;
  #lastPeerStream = 0;
  #resetByUs = new Set<number>();
  #hdr: { id: number; flags: number; parts: Uint8Array[]; size: number; frames: number } | null =
    null;
  #dataStream: H2Stream | null = null;
  #dataLeft = 0;
  #goawaySent = false;
  #goaway: Goaway | undefined;
  #ending = false;
  #closed = false;
  #error: Error | undefined;
  #socketError: Error | undefined;
  #needDrain = false;
  #drainWaiters: (() => void)[] = [];
  #queuedControl = 0;
  #earlyResets: TokenBucket;
  #emptyFrames: TokenBucket;
  #heard = false;
  #lastHeard = Date.now();
  #pingsOut = 0;
  #keepalive: ReturnType<typeof setInterval> | undefined;
  #endTimer: ReturnType<typeof setTimeout> | undefined;
  #whenClosed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(socket: Duplex, options: H2ConnectionOptions) {
    this.role = options.role;
    this.#whenClosed = new Promise((r) => this.#resolveClosed = r);
    this.#socket = socket;
    this.#opts = options;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    const s = options.settings;
    this.#local = {
      initialWindowSize: s.initialWindowSize,
      maxFrameSize: s.maxFrameSize,
      maxConcurrentStreams: s.maxConcurrentStreams ?? Infinity,
      maxHeaderListSize: s.maxHeaderListSize ?? this.#limits.maxHeaderListSize,
    };
    this.#recvWindow = Math.max(options.connectionWindow ?? DEFAULT_WINDOW, DEFAULT_WINDOW);
    this.#connThreshold = Math.max(this.#recvWindow >>> 1, 1);
    this.#streamThreshold = Math.max(s.initialWindowSize >>> 1, 1);
    this.#earlyResets = new TokenBucket(this.#limits.earlyResets);
    this.#emptyFrames = new TokenBucket(this.#limits.emptyFrames);
    this.#reader = new FrameReader(this, {
      maxFrameSize: s.maxFrameSize,
      expectPreface: this.role === "server",
    });
    socket.on("data", (chunk: Uint8Array) => this.#onData(chunk));
    socket.on("drain", () => this.#onDrain());
    socket.on("error", (err: Error) => this.#socketError ??= err);
    socket.on("close", () => this.#teardown());
    this.#write(this.#preface());
    if (options.keepalive) this.#startKeepalive(options.keepalive);
  }

  /** Streams open on this connection (not yet closed or reset). */
  get openStreams(): number {
    return this.#streams.size;
  }

  /** The peer's SETTINGS (defaults until its preface arrived). */
  get peerSettings(): Readonly<PeerSettings> {
    return this.#peer;
  }

  /** The flow-control windows: what we may send, and what the peer may still send us. */
  get windows(): { readonly send: number; readonly recv: number } {
    return { send: this.#sendWindow, recv: this.#recvWindow };
  }

  /** Whether new streams can be opened (no GOAWAY either way, not closed). */
  get usable(): boolean {
    return !this.#closed && !this.#ending && !this.#goawaySent && this.#goaway === undefined;
  }

  /** Whether the socket has closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Resolves once the socket has closed. After {@link close}, that is when
   * our last frames are out and the peer closed too (or 2 s after our end):
   * a process that exits before then can cut off a stream's last DATA or
   * END_STREAM still in the socket's write buffer.
   */
  get whenClosed(): Promise<void> {
    return this.#whenClosed;
  }

  /**
   * Opens a stream with request headers (client side). Throws when the
   * connection is going away or the peer's MAX_CONCURRENT_STREAMS is reached.
   */
  request(
    headers: Readonly<Record<string, string>>,
    options: { endStream?: boolean } = {},
  ): H2Stream {
    if (this.role !== "client") throw new TypeError("only a client opens streams");
    if (!this.usable) throw new Error("the HTTP/2 connection is closed or going away");
    if (this.#streams.size >= this.#peer.maxConcurrentStreams) {
      throw new RangeError(
        `the peer allows ${this.#peer.maxConcurrentStreams} concurrent streams, all in use`,
      );
    }
    const id = this.#nextStreamId;
    if (id > 0x7fffffff) {
      throw new RangeError("stream identifiers are exhausted on this connection");
    }
    const fields = fromRecord(headers);
    this.#nextStreamId += 2;
    const st = new H2Stream(this, id, {
      send: this.#peer.initialWindowSize,
      recv: this.#local.initialWindowSize,
    }, true);
    this.#streams.set(id, st);
    this.#writeHeaders(id, fields, options.endStream === true);
    if (options.endStream) st.localEnded = true;
    return st;
  }

  /** Sends GOAWAY and closes once the open streams are done. */
  close(): void {
    if (this.#closed) return;
    if (!this.#goawaySent) {
      this.#goawaySent = true;
      this.#write(encodeGoaway(this.#lastPeerStream, ErrorCode.NO_ERROR));
    }
    if (this.#streams.size === 0) this.#end();
  }

  /**
   * Closes at once: every open stream is destroyed. With `err`, a GOAWAY
   * carrying its code (INTERNAL_ERROR unless an {@link H2ConnectionError})
   * is attempted first.
   */
  destroy(err?: Error): void {
    if (this.#closed) return;
    if (err) {
      this.#error ??= err;
      const code = err instanceof H2ConnectionError ? err.code : ErrorCode.INTERNAL_ERROR;
      if (!this.#goawaySent) this.#write(encodeGoaway(this.#lastPeerStream, code, err.message));
    }
    this.#goawaySent = true;
    this.#reader.stop();
    this.#socket.destroy();
    this.#teardown();
  }

  // --- StreamHost: what streams ask of the connection --------------------

  /** @internal */
  flush(st: H2Stream): void {
    if (st.done) {
      this.#dropWrites(st);
      return;
    }
    if (!st.headersSent) return;
    const max = this.#peer.maxFrameSize;
    const q = st.queue;
    while (q.length > 0) {
      const chunk = q[0];
      const off = st.queueOffset;
      const left = chunk.length - off;
      if (left === 0) {
        q.shift();
        st.queueOffset = 0;
        continue;
      }
      const n = Math.min(left, st.sendWindow, this.#sendWindow, max);
      if (n <= 0) {
        if (st.sendWindow > 0) this.#blocked.add(st);
        return;
      }
      this.#writeData(st.id, off === 0 && n === left ? chunk : chunk.subarray(off, off + n));
      st.sendWindow -= n;
      this.#sendWindow -= n;
      if (n === left) {
        q.shift();
        st.queueOffset = 0;
      } else st.queueOffset += n;
    }
    this.#blocked.delete(st);
    const cb = st.writeCb;
    if (cb) {
      st.writeCb = null;
      if (this.#needDrain) this.#drainWaiters.push(cb);
      else cb();
    }
    if (st.endCb) this.#sendEnd(st);
  }

  /** @internal */
  endStream(st: H2Stream, done: (err?: Error | null) => void): void {
    if (st.done || st.localEnded) return done();
    st.endCb = done;
    if (st.headersSent && st.queue.length === 0) this.#sendEnd(st);
  }

  /** @internal */
  consumed(st: H2Stream): void {
    const c = st.received - st.readableLength - st.consumedTotal;
    if (c <= 0) return;
    st.consumedTotal += c;
    this.#pendingConnCredit += c;
    if (!st.remoteEnded && !st.done) st.pendingCredit += c;
    this.#sendCredit(st);
  }

  /** @internal */
  destroyed(st: H2Stream, err: Error | null): void {
    if (!st.done) {
      const code = st.rstCode ?? (err ? ErrorCode.INTERNAL_ERROR : ErrorCode.CANCEL);
      st.rstCode = code;
      st.aborted = true;
      this.#sendRst(st.id, code, false);
      this.#finish(st);
    }
    // What the reader never consumed goes back to the connection window.
    const unread = st.received - st.consumedTotal;
    if (unread > 0) {
      st.consumedTotal = st.received;
      this.#creditConn(unread);
    }
  }

  /** @internal */
  respond(
    st: H2Stream,
    status: number,
    headers: Readonly<Record<string, string>> = {},
    endStream = false,
  ): void {
    if (this.role !== "server") throw new TypeError("only a server responds");
    if (st.headersSent) throw new Error(`stream ${st.id} was already answered`);
    if (st.done || this.#closed) return;
    this.#writeHeaders(st.id, [[":status", String(status)], ...fromRecord(headers)], endStream);
    st.headersSent = true;
    if (endStream) {
      st.localEnded = true;
      const cb = st.endCb;
      st.endCb = null;
      this.#maybeDone(st);
      cb?.();
    } else if (st.queue.length > 0) this.flush(st);
    else if (st.endCb) this.#sendEnd(st);
  }

  // --- FrameSink: what the reader hands over ------------------------------

  /** @internal */
  onFrame(type: number, flags: number, id: number, payload: Uint8Array): void {
    try {
      this.#frame(type, flags, id, payload);
    } catch (e) {
      if (e instanceof H2StreamError) this.#streamError(e);
      else throw e;
    }
  }

  /** @internal */
  onDataStart(id: number, flags: number, length: number): void {
    try {
      this.#dataStart(id, flags, length);
    } catch (e) {
      if (e instanceof H2StreamError) this.#streamError(e);
      else throw e;
    }
  }

  /** @internal */
  onData(_id: number, chunk: Uint8Array): void {
    const st = this.#dataStream;
    if (st === null) return;
    this.#dataLeft -= chunk.length;
    if (st.destroyed || st.done) this.#creditConn(chunk.length);
    else st.deliver(chunk);
  }

  /** @internal */
  onDataEnd(_id: number, flags: number): void {
    const st = this.#dataStream;
    this.#dataStream = null;
    if (st === null) return;
    if (this.#dataLeft > 0) {
      // Padding never reaches the reader: give it back now.
      this.#pendingConnCredit += this.#dataLeft;
      if (!st.done) st.pendingCredit += this.#dataLeft;
      this.#sendCredit(st);
    }
    if (flags & Flags.END_STREAM && !st.done) this.#remoteEnd(st);
  }

  // --- Frames ----------------------------------------------------------------

  #frame(type: number, flags: number, id: number, p: Uint8Array): void {
    if (this.#hdr !== null && type !== FrameType.CONTINUATION) {
      throw protocol(`a ${frameName(type)} frame inside a header block`);
    }
    if (!this.#gotSettings && type !== FrameType.SETTINGS) {
      throw protocol(`the first frame is ${frameName(type)}, not SETTINGS`);
    }
    switch (type) {
      case FrameType.HEADERS:
        return this.#onHeaders(flags, id, p);
      case FrameType.CONTINUATION:
        return this.#onContinuation(flags, id, p);
      case FrameType.SETTINGS:
        return this.#onSettings(flags, id, p);
      case FrameType.PING:
        return this.#onPing(flags, id, p);
      case FrameType.WINDOW_UPDATE:
        return this.#onWindowUpdate(id, p);
      case FrameType.RST_STREAM:
        return this.#onRst(id, p);
      case FrameType.GOAWAY:
        return this.#onGoaway(id, p);
      case FrameType.PRIORITY:
        this.#spend();
        return decodePriority(id, p);
      case FrameType.PUSH_PROMISE:
        throw protocol("PUSH_PROMISE, but push is disabled");
      default:
        // Unknown frame types are ignored (RFC 9113 §5.5).
        this.#spend();
    }
  }

  #dataStart(id: number, flags: number, length: number): void {
    this.#dataStream = null;
    this.#dataLeft = length;
    if (this.#hdr !== null) throw protocol("a DATA frame inside a header block");
    if (!this.#gotSettings) throw protocol("the first frame is DATA, not SETTINGS");
    if (id === 0) throw protocol("DATA on stream 0");
    if (length > this.#recvWindow) {
      throw new H2ConnectionError(
        ErrorCode.FLOW_CONTROL_ERROR,
        `DATA of ${length} octets exceeds the connection window of ${this.#recvWindow}`,
      );
    }
    this.#recvWindow -= length;
    if (length === 0 && !(flags & Flags.END_STREAM)) this.#spend();
    const st = this.#streams.get(id);
    if (!st) {
      if (this.#isIdle(id)) throw protocol(`DATA on idle stream ${id}`);
      if (this.#resetByUs.has(id)) return void this.#creditConn(length);
      throw this.#refuseData(id, length, ErrorCode.STREAM_CLOSED, "DATA on a closed stream");
    }
    if (st.remoteEnded) {
      throw this.#refuseData(id, length, ErrorCode.STREAM_CLOSED, "DATA after END_STREAM");
    }
    if (this.role === "client" && st.status === undefined) {
      throw this.#refuseData(id, length, ErrorCode.PROTOCOL_ERROR, "DATA before the response");
    }
    if (length > st.recvWindow) {
      throw this.#refuseData(
        id,
        length,
        ErrorCode.FLOW_CONTROL_ERROR,
        `DATA of ${length} octets exceeds the stream window of ${st.recvWindow}`,
      );
    }
    st.recvWindow -= length;
    this.#dataStream = st;
  }

  /** A DATA frame the stream cannot take: its octets go back to the connection window. */
  #refuseData(id: number, length: number, code: number, why: string): H2StreamError {
    this.#creditConn(length);
    return new H2StreamError(code, id, why);
  }

  #onHeaders(flags: number, id: number, p: Uint8Array): void {
    const fragment = decodeHeadersPayload(flags, id, p);
    if (fragment.length > this.#limits.maxHeaderBlockSize) throw this.#tooLarge(fragment.length);
    if (flags & Flags.END_HEADERS) return this.#onHeaderBlock(id, flags, fragment);
    this.#hdr = { id, flags, parts: [fragment.slice()], size: fragment.length, frames: 0 };
  }

  #onContinuation(flags: number, id: number, p: Uint8Array): void {
    const h = this.#hdr;
    if (h === null) throw protocol("CONTINUATION without a header block to continue");
    if (h.id !== id) {
      throw protocol(`CONTINUATION on stream ${id} inside a block of stream ${h.id}`);
    }
    h.size += p.length;
    if (h.size > this.#limits.maxHeaderBlockSize) throw this.#tooLarge(h.size);
    if (++h.frames > this.#limits.maxContinuations) {
      throw new H2ConnectionError(
        ErrorCode.ENHANCE_YOUR_CALM,
        `a header block in more than ${this.#limits.maxContinuations} CONTINUATION frames`,
      );
    }
    h.parts.push(p.slice());
    if (!(flags & Flags.END_HEADERS)) return;
    this.#hdr = null;
    const block = new Uint8Array(h.size);
    let o = 0;
    for (const part of h.parts) {
      block.set(part, o);
      o += part.length;
    }
    this.#onHeaderBlock(h.id, h.flags, block);
  }

  #tooLarge(size: number): H2ConnectionError {
    return new H2ConnectionError(
      ErrorCode.ENHANCE_YOUR_CALM,
      `a header block of ${size} octets exceeds ${this.#limits.maxHeaderBlockSize}`,
    );
  }

  #onHeaderBlock(id: number, flags: number, block: Uint8Array): void {
    let decoded: DecodedBlock;
    try {
      decoded = this.#decoder.decode(block, this.#local.maxHeaderListSize);
    } catch (e) {
      if (e instanceof HpackError) {
        throw new H2ConnectionError(ErrorCode.COMPRESSION_ERROR, e.message);
      }
      throw e;
    }
    const end = (flags & Flags.END_STREAM) !== 0;
    if (this.role === "server") this.#onRequest(id, decoded, end);
    else this.#onResponse(id, decoded, end);
  }

  #onRequest(id: number, d: DecodedBlock, end: boolean): void {
    const existing = this.#streams.get(id);
    if (existing) return this.#onTrailers(existing, d, end);
    if (id % 2 === 0) throw protocol(`the client opened stream ${id}, an even identifier`);
    if (id <= this.#lastPeerStream) {
      if (this.#resetByUs.has(id)) return;
      throw new H2StreamError(ErrorCode.STREAM_CLOSED, id, "HEADERS on a closed stream");
    }
    this.#lastPeerStream = id;
    if (this.#goawaySent || this.#ending) {
      throw new H2StreamError(ErrorCode.REFUSED_STREAM, id, "the connection is going away");
    }
    if (this.#streams.size >= this.#local.maxConcurrentStreams) {
      throw new H2StreamError(
        ErrorCode.REFUSED_STREAM,
        id,
        `over the limit of ${this.#local.maxConcurrentStreams} concurrent streams`,
      );
    }
    if (d.oversized) {
      // RFC 9113 §10.5.1: answer 431, then stop the request.
      this.#writeHeaders(id, [[":status", "431"]], true);
      throw new H2StreamError(
        ErrorCode.NO_ERROR,
        id,
        `a header list over ${this.#local.maxHeaderListSize} octets`,
      );
    }
    const why = checkFields(d.headers, "request");
    if (why) throw new H2StreamError(ErrorCode.PROTOCOL_ERROR, id, `malformed request: ${why}`);
    const st = new H2Stream(this, id, {
      send: this.#peer.initialWindowSize,
      recv: this.#local.initialWindowSize,
    }, false);
    st.headers = toRecord(d.headers);
    this.#streams.set(id, st);
    if (end) {
      st.remoteEnded = true;
      st.push(null);
    }
    try {
      this.#opts.onStream?.(st);
    } catch (e) {
      st.destroy(e as Error);
    }
  }

  #onResponse(id: number, d: DecodedBlock, end: boolean): void {
    const st = this.#streams.get(id);
    if (!st) {
      if (this.#isIdle(id)) throw protocol(`HEADERS on idle stream ${id}`);
      if (this.#resetByUs.has(id)) return;
      throw new H2StreamError(ErrorCode.STREAM_CLOSED, id, "HEADERS on a closed stream");
    }
    if (st.status !== undefined) return this.#onTrailers(st, d, end);
    const malformed = (why: string) =>
      new H2StreamError(ErrorCode.PROTOCOL_ERROR, id, `malformed response: ${why}`);
    if (d.oversized) throw malformed(`a header list over ${this.#local.maxHeaderListSize} octets`);
    const why = checkFields(d.headers, "response");
    if (why) throw malformed(why);
    const headers = toRecord(d.headers);
    const raw = String(headers[":status"]);
    if (!/^[1-9][0-9]{2}$/.test(raw)) throw malformed(`:status ${raw}`);
    const status = Number(raw);
    if (status < 200) {
      // Informational (1xx): the final answer follows. 101 has no place in HTTP/2.
      if (status === 101 || end) throw malformed(`:status ${status}`);
      return;
    }
    st.status = status;
    st.headers = headers;
    try {
      st.onResponse?.(status, headers, end);
    } catch (e) {
      st.destroy(e as Error);
      return;
    }
    if (end && !st.done) this.#remoteEnd(st);
  }

  #onTrailers(st: H2Stream, d: DecodedBlock, end: boolean): void {
    if (st.remoteEnded) {
      throw new H2StreamError(ErrorCode.STREAM_CLOSED, st.id, "HEADERS after END_STREAM");
    }
    if (!end) {
      throw new H2StreamError(ErrorCode.PROTOCOL_ERROR, st.id, "trailers without END_STREAM");
    }
    const why = checkFields(d.headers, "trailers");
    if (why) throw new H2StreamError(ErrorCode.PROTOCOL_ERROR, st.id, `malformed trailers: ${why}`);
    this.#remoteEnd(st);
  }

  #onSettings(flags: number, id: number, p: Uint8Array): void {
    const entries = decodeSettings(flags, id, p);
    if (flags & Flags.ACK) {
      if (!this.#gotSettings) throw protocol("a SETTINGS ACK before the peer's SETTINGS");
      return;
    }
    const first = !this.#gotSettings;
    if (!first) this.#spend();
    this.#gotSettings = true;
    let opened = false;
    for (const [key, value] of entries) {
      switch (key) {
        case SettingId.HEADER_TABLE_SIZE:
          this.#peer.headerTableSize = value;
          this.#sizeUpdateDue = true;
          break;
        case SettingId.ENABLE_PUSH:
          if (this.role === "client" && value !== 0) {
            throw protocol("a server sent SETTINGS_ENABLE_PUSH 1");
          }
          this.#peer.enablePush = value === 1;
          break;
        case SettingId.MAX_CONCURRENT_STREAMS:
          this.#peer.maxConcurrentStreams = value;
          break;
        case SettingId.INITIAL_WINDOW_SIZE: {
          const delta = value - this.#peer.initialWindowSize;
          this.#peer.initialWindowSize = value;
          for (const st of this.#streams.values()) {
            st.sendWindow += delta;
            if (st.sendWindow > MAX_WINDOW) {
              throw new H2ConnectionError(
                ErrorCode.FLOW_CONTROL_ERROR,
                `SETTINGS_INITIAL_WINDOW_SIZE ${value} overflows the window of stream ${st.id}`,
              );
            }
          }
          opened ||= delta > 0;
          break;
        }
        case SettingId.MAX_FRAME_SIZE:
          this.#peer.maxFrameSize = value;
          break;
        case SettingId.MAX_HEADER_LIST_SIZE:
          this.#peer.maxHeaderListSize = value;
          break;
        case SettingId.ENABLE_CONNECT_PROTOCOL:
          this.#peer.enableConnectProtocol = value === 1;
      }
    }
    this.#writeControl(SETTINGS_ACK);
    if (opened) {
      for (const st of [...this.#streams.values()]) {
        if (st.queue.length) this.flush(st);
      }
    }
    this.#opts.onSettings?.(this.#peer, first);
  }

  #onPing(flags: number, id: number, p: Uint8Array): void {
    const data = decodePing(id, p);
    if (flags & Flags.ACK) {
      this.#pingsOut = 0;
      return;
    }
    this.#spend();
    this.#writeControl(encodePing(data, true));
  }

  #onWindowUpdate(id: number, p: Uint8Array): void {
    const inc = decodeWindowUpdate(id, p);
    if (id === 0) {
      if (this.#sendWindow + inc > MAX_WINDOW) {
        throw new H2ConnectionError(
          ErrorCode.FLOW_CONTROL_ERROR,
          `WINDOW_UPDATE of ${inc} overflows the connection window of ${this.#sendWindow}`,
        );
      }
      this.#sendWindow += inc;
      for (const st of [...this.#blocked]) {
        if (this.#sendWindow <= 0) break;
        this.flush(st);
      }
      return;
    }
    const st = this.#streams.get(id);
    if (!st) {
      if (this.#isIdle(id)) throw protocol(`WINDOW_UPDATE on idle stream ${id}`);
      return;
    }
    if (st.sendWindow + inc > MAX_WINDOW) {
      throw new H2StreamError(
        ErrorCode.FLOW_CONTROL_ERROR,
        id,
        `WINDOW_UPDATE of ${inc} overflows the stream window of ${st.sendWindow}`,
      );
    }
    st.sendWindow += inc;
    if (st.queue.length > 0) this.flush(st);
  }

  #onRst(id: number, p: Uint8Array): void {
    const code = decodeRstStream(id, p);
    const st = this.#streams.get(id);
    if (!st) {
      if (this.#isIdle(id)) throw protocol(`RST_STREAM on idle stream ${id}`);
      return;
    }
    if (this.role === "server" && !st.headersSent && !this.#earlyResets.take()) {
      throw new H2ConnectionError(
        ErrorCode.ENHANCE_YOUR_CALM,
        "too many streams reset before they were answered",
      );
    }
    st.rstCode = code;
    if (code === ErrorCode.NO_ERROR && st.remoteEnded) {
      // The peer finished and wants nothing more (RFC 9113 §8.1): drop our writes.
      st.discardWrites = true;
      st.localEnded = true;
      this.#finish(st);
      return;
    }
    st.aborted = true;
    this.#finish(st);
    st.destroy(code === ErrorCode.NO_ERROR ? undefined : new H2ResetError(code, true));
  }

  #onGoaway(id: number, p: Uint8Array): void {
    const g = decodeGoaway(id, p);
    this.#goaway = g;
    for (const st of [...this.#streams.values()]) {
      if (this.#ours(st.id) && st.id > g.lastStreamId) {
        st.rstCode = ErrorCode.REFUSED_STREAM;
        st.aborted = true;
        this.#finish(st);
        st.destroy(
          new Error(`stream ${st.id} refused: the peer is going away (${errorName(g.code)})`),
        );
      }
    }
    try {
      this.#opts.onGoaway?.(g);
    } finally {
      if (this.#streams.size === 0) this.#end();
    }
  }

  // --- Stream lifecycle ---------------------------------------------------

  #remoteEnd(st: H2Stream): void {
    st.remoteEnded = true;
    st.pendingCredit = 0;
    st.push(null);
    this.#maybeDone(st);
  }

  #maybeDone(st: H2Stream): void {
    if (st.localEnded && st.remoteEnded) this.#finish(st);
  }

  #sendEnd(st: H2Stream): void {
    const cb = st.endCb;
    st.endCb = null;
    if (!st.done) {
      this.#write(encodeData(st.id, EMPTY, true));
      st.localEnded = true;
      this.#maybeDone(st);
    }
    cb?.();
  }

  /** The stream leaves the connection (both ends done, or reset). */
  #finish(st: H2Stream): void {
    if (st.done) return;
    st.done = true;
    this.#streams.delete(st.id);
    this.#blocked.delete(st);
    this.#dropWrites(st);
    if (this.#streams.size > 0) return;
    if (this.#goawaySent || this.#goaway) this.#end();
    if (!this.#closed) this.#opts.onIdle?.();
  }

  #dropWrites(st: H2Stream): void {
    st.queue = [];
    st.queueOffset = 0;
    const cb = st.writeCb;
    const end = st.endCb;
    st.writeCb = null;
    st.endCb = null;
    if (st.discardWrites) {
      cb?.();
      end?.();
    }
  }

  #streamError(e: H2StreamError): void {
    this.#sendRst(e.streamId, e.code, true);
    const st = this.#streams.get(e.streamId);
    if (!st) return;
    st.rstCode = e.code;
    st.aborted = true;
    this.#finish(st);
    st.destroy(e);
  }

  #sendRst(id: number, code: number, reactive: boolean): void {
    if (this.#closed) return;
    if (reactive) this.#writeControl(encodeRstStream(id, code));
    else this.#write(encodeRstStream(id, code));
    this.#resetByUs.add(id);
    if (this.#resetByUs.size > RESET_MEMORY) {
      this.#resetByUs.delete(this.#resetByUs.values().next().value!);
    }
  }

  // --- Flow control -----------------------------------------------------

  #creditConn(n: number): void {
    this.#pendingConnCredit += n;
    this.#sendCredit(null);
  }

  /** Sends the WINDOW_UPDATEs that are due, in one write. */
  #sendCredit(st: H2Stream | null): void {
    if (this.#closed) return;
    let frames: Uint8Array | undefined;
    if (st !== null && st.pendingCredit >= this.#streamThreshold && !st.done && !st.remoteEnded) {
      const inc = st.pendingCredit;
      st.pendingCredit = 0;
      st.recvWindow += inc;
      frames = encodeWindowUpdate(st.id, inc);
    }
    if (this.#pendingConnCredit >= this.#connThreshold) {
      const inc = this.#pendingConnCredit;
      this.#pendingConnCredit = 0;
      this.#recvWindow += inc;
      const conn = encodeWindowUpdate(0, inc);
      frames = frames ? concat2(frames, conn) : conn;
    }
    if (frames) this.#write(frames);
  }

  // --- I/O ------------------------------------------------------------------

  #preface(): Uint8Array {
    const entries: [number, number][] = [];
    if (this.role === "client") entries.push([SettingId.ENABLE_PUSH, 0]);
    if (this.#opts.settings.maxConcurrentStreams !== undefined) {
      entries.push([SettingId.MAX_CONCURRENT_STREAMS, this.#opts.settings.maxConcurrentStreams]);
    }
    entries.push([SettingId.INITIAL_WINDOW_SIZE, this.#local.initialWindowSize]);
    entries.push([SettingId.MAX_FRAME_SIZE, this.#local.maxFrameSize]);
    if (this.#opts.settings.maxHeaderListSize !== undefined) {
      entries.push([SettingId.MAX_HEADER_LIST_SIZE, this.#opts.settings.maxHeaderListSize]);
    }
    let out = encodeSettings(entries);
    if (this.role === "client") out = concat2(PREFACE, out);
    if (this.#recvWindow > DEFAULT_WINDOW) {
      out = concat2(out, encodeWindowUpdate(0, this.#recvWindow - DEFAULT_WINDOW));
    }
    return out;
  }

  #onData(chunk: Uint8Array): void {
    this.#heard = true;
    try {
      this.#reader.push(chunk);
    } catch (e) {
      this.#fail(e as Error);
    }
  }

  #onDrain(): void {
    this.#needDrain = false;
    this.#queuedControl = 0;
    const waiters = this.#drainWaiters;
    if (waiters.length === 0) return;
    this.#drainWaiters = [];
    for (const cb of waiters) cb();
  }

  #write(b: Uint8Array): void {
    if (this.#closed || this.#ending) return;
    if (!this.#socket.write(b)) this.#needDrain = true;
  }

  /** A frame sent in answer to the peer's; too many unread ones mean a flood. */
  #writeControl(b: Uint8Array): void {
    if (this.#needDrain && ++this.#queuedControl > this.#limits.maxQueuedControl) {
      throw new H2ConnectionError(
        ErrorCode.ENHANCE_YOUR_CALM,
        "the peer does not read the answers to its control frames",
      );
    }
    this.#write(b);
  }

  #writeData(id: number, payload: Uint8Array): void {
    if (payload.length <= COALESCE_LIMIT) this.#write(encodeData(id, payload, false));
    else {
      // Header and payload leave in one writev (one TLS record write, one
      // system call), and the payload is not copied.
      if (this.#closed || this.#ending) return;
      this.#socket.cork();
      this.#write(dataFrameHeader(id, payload.length, false));
      this.#write(payload);
      this.#socket.uncork();
    }
  }

  #writeHeaders(id: number, fields: readonly HeaderField[], endStream: boolean): void {
    const block = encodeHeaderBlock(fields, { tableSizeZero: this.#sizeUpdateDue });
    this.#sizeUpdateDue = false;
    this.#write(encodeHeaders(id, block, endStream, this.#peer.maxFrameSize));
  }

  #spend(): void {
    if (!this.#emptyFrames.take()) {
      throw new H2ConnectionError(
        ErrorCode.ENHANCE_YOUR_CALM,
        "too many frames that carry nothing (PING, SETTINGS, PRIORITY, empty DATA)",
      );
    }
  }

  /** Whether `id` names a stream never opened. */
  #isIdle(id: number): boolean {
    return this.#ours(id) ? id >= this.#nextStreamId : id > this.#lastPeerStream;
  }

  /** Whether `id` is in our numbering (odd for a client, even for a server). */
  #ours(id: number): boolean {
    return (id % 2 === 1) === (this.role === "client");
  }

  #fail(err: Error): void {
    if (this.#closed) return;
    const e = err instanceof H2ConnectionError
      ? err
      : new H2ConnectionError(ErrorCode.INTERNAL_ERROR, err.message);
    this.#error ??= e;
    if (!this.#ending) this.#write(encodeGoaway(this.#lastPeerStream, e.code, e.message));
    this.#goawaySent = true;
    this.#reader.stop();
    this.#abortStreams(e);
    this.#end();
  }

  /** Ends the socket once our frames are out; destroys it if the peer lingers. */
  #end(): void {
    if (this.#ending || this.#closed) return;
    this.#ending = true;
    this.#socket.end();
    this.#endTimer = setTimeout(() => this.#socket.destroy(), 2000);
  }

  #abortStreams(err: Error | null): void {
    for (const st of [...this.#streams.values()]) {
      st.aborted = true;
      this.#finish(st);
      st.destroy(err ?? undefined);
    }
  }

  #teardown(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keepalive);
    clearTimeout(this.#endTimer);
    this.#reader.stop();
    this.#drainWaiters = [];
    // Streams still open are cut off: with an error when there was one, else
    // just destroyed (`aborted`), as a socket whose peer vanished would be.
    const cause = this.#error ?? this.#socketError;
    this.#abortStreams(cause ? new Error(`the HTTP/2 connection failed: ${cause.message}`) : null);
    try {
      this.#opts.onClose?.(cause);
    } finally {
      this.#resolveClosed();
    }
  }

  #startKeepalive(opts: KeepaliveOptions): void {
    let seq = 0;
    this.#keepalive = setInterval(() => {
      const now = Date.now();
      if (this.#heard) {
        this.#heard = false;
        this.#lastHeard = now;
      }
      if (now - this.#lastHeard > opts.timeoutMs) {
        clearInterval(this.#keepalive);
        try {
          this.#opts.onDead?.();
        } finally {
          this.destroy();
        }
        return;
      }
      if (this.#pingsOut >= 8) return;
      this.#pingsOut++;
      const data = new Uint8Array(8);
      new DataView(data.buffer).setUint32(4, ++seq);
      this.#write(encodePing(data, false));
    }, opts.intervalMs);
  }
}

const EMPTY = new Uint8Array(0);

function concat2(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function protocol(message: string): H2ConnectionError {
  return new H2ConnectionError(ErrorCode.PROTOCOL_ERROR, message);
}

const FRAME_NAMES = new Map<number, string>(Object.entries(FrameType).map(([k, v]) => [v, k]));

function frameName(type: number): string {
  return FRAME_NAMES.get(type) ?? `unknown (0x${type.toString(16)})`;
}
