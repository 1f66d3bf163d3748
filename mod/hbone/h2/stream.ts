/**
 * One HTTP/2 stream as a node:stream Duplex, so relay.ts treats it like a
 * socket: reads are the peer's DATA, writes become our DATA, `end()` sends
 * END_STREAM, `destroy()` sends RST_STREAM (CANCEL, or INTERNAL_ERROR with
 * an error), and an RST_STREAM from the peer destroys the stream with an
 * {@link H2ResetError} (`rstCode`, `aborted` tell a reset from a clean end).
 *
 * Back-pressure both ways: a write's callback waits until the data is on
 * the socket within the peer's flow-control windows (and the socket has
 * drained), and the peer's window is only reopened as the reader consumes
 * what arrived, so a reader that stops reading stops the peer.
 *
 * The protocol work is the connection's (connection.ts); this class holds
 * the stream's state and adapts it to the Duplex interface.
 *
 * @module
 */
import { Duplex } from "node:stream";
import type { H2Headers } from "./headers.ts";

/** What a stream asks of its connection. */
export interface StreamHost {
  /** Hands queued data to the socket as far as the windows allow. */
  flush(stream: H2Stream): void;
  /** Sends END_STREAM once everything queued is out; calls `done` then. */
  endStream(stream: H2Stream, done: (err?: Error | null) => void): void;
  /** Credits octets the reader consumed back to the peer. */
  consumed(stream: H2Stream): void;
  /** The Duplex was destroyed: reset the stream if still open, release its window. */
  destroyed(stream: H2Stream, err: Error | null): void;
  /** Sends response HEADERS (server side). */
  respond(
    stream: H2Stream,
    status: number,
    headers?: Readonly<Record<string, string>>,
    endStream?: boolean,
  ): void;
}

/** Initial windows of a new stream. */
export interface StreamWindows {
  /** Octets we may send before the peer's next WINDOW_UPDATE. */
  readonly send: number;
  /** Octets the peer may send us (our SETTINGS_INITIAL_WINDOW_SIZE). */
  readonly recv: number;
}

/** An HTTP/2 stream (one CONNECT tunnel) as a Duplex. */
export class H2Stream extends Duplex {
  /** Request headers (server side) or response headers (client side, once answered). */
  headers: H2Headers = {};
  /** The response status (client side), once answered. */
  status?: number;
  /** The RST_STREAM code, when reset by either side. */
  rstCode?: number;
  /** Reset before both directions ended. */
  aborted = false;
  /** Our HEADERS were sent (always true for a client's request). */
  headersSent: boolean;

  // Everything below is the connection's bookkeeping (connection.ts).
  /** @internal Our send window on this stream. */
  sendWindow: number;
  /** @internal How much the peer may still send. */
  recvWindow: number;
  /** @internal Data octets received (pushed to the reader). */
  received = 0;
  /** @internal Received octets already counted as consumed. */
  consumedTotal = 0;
  /** @internal Consumed octets not yet returned in a stream WINDOW_UPDATE. */
  pendingCredit = 0;
  /** @internal Data waiting for window: chunks, and the offset into the first. */
  queue: Uint8Array[] = [];
  /** @internal */
  queueOffset = 0;
  /** @internal The pending write's callback, released once its data is out. */
  writeCb: ((err?: Error | null) => void) | null = null;
  /** @internal END_STREAM waiting for queued data or for the response. */
  endCb: ((err?: Error | null) => void) | null = null;
  /** @internal We sent END_STREAM. */
  localEnded = false;
  /** @internal The peer sent END_STREAM. */
  remoteEnded = false;
  /** @internal Gone from the connection (both ends, or a reset). */
  done = false;
  /** @internal The peer reset with NO_ERROR after its END_STREAM: our writes are dropped. */
  discardWrites = false;
  /** @internal Called with the response (client side). */
  onResponse: ((status: number, headers: H2Headers, endStream: boolean) => void) | null = null;

  constructor(
    readonly host: StreamHost,
    /** The stream identifier. */
    readonly id: number,
    windows: StreamWindows,
    headersSent: boolean,
  ) {
    super({ allowHalfOpen: true, decodeStrings: true });
    this.sendWindow = windows.send;
    this.recvWindow = windows.recv;
    this.headersSent = headersSent;
  }

  /**
   * Answers a request (server side): `:status` and `headers`; with
   * `endStream` nothing follows. Data written before the answer waits for it.
   */
  respond(status: number, headers?: Readonly<Record<string, string>>, endStream = false): void {
    this.host.respond(this, status, headers, endStream);
  }

  /** Resets the stream with `code` (RST_STREAM) and destroys it. */
  close(code: number): void {
    if (!this.done) this.rstCode = code;
    this.destroy();
  }

  /** @internal Delivers DATA content to the reader. */
  deliver(chunk: Uint8Array): void {
    if (this.#idleMs > 0) this.#active = Date.now();
    this.received += chunk.length;
    this.push(chunk);
    this.host.consumed(this);
  }

  #clearsIdleOnClose = false;

  /**
   * Emits "timeout" after `ms` without data either way (0 turns it off), as
   * a socket does: servers (node:http, node:http2) fed this stream as their
   * connection call it.
   */
  setTimeout(ms: number, onTimeout?: () => void): this {
    const off = !(ms > 0 && Number.isFinite(ms));
    // As net.Socket: a callback with 0 is removed, otherwise added once.
    if (onTimeout) off ? this.off("timeout", onTimeout) : this.once("timeout", onTimeout);
    if (!off && ms === this.#idleMs && this.#idleTimer !== undefined) {
      // The same timeout again (node:http sets it after every response): the
      // armed timer re-arms itself from the last activity, no new timer needed.
      this.#active = Date.now();
      return this;
    }
    clearTimeout(this.#idleTimer);
    this.#idleMs = off ? 0 : ms;
    this.#idleTimer = undefined;
    if (this.#idleMs > 0) {
      this.#active = Date.now();
      this.#armIdle(this.#idleMs);
      // Once per stream: node:http calls setTimeout after every response.
      if (!this.#clearsIdleOnClose) {
        this.#clearsIdleOnClose = true;
        this.once("close", () => clearTimeout(this.#idleTimer));
      }
    }
    return this;
  }

  /**
   * No-op: each write becomes DATA frames at once, so holding writes back
   * would batch nothing (relay.ts corks whatever it writes to).
   */
  override cork(): void {}

  /** No-op, see {@link cork}. */
  override uncork(): void {}

  /** A socket's method; nothing to do on a stream (the connection's socket has TCP_NODELAY). */
  setNoDelay(_noDelay?: boolean): this {
    return this;
  }

  /** A socket's method; keepalive is the connection's PINGs. */
  setKeepAlive(_enable?: boolean, _delayMs?: number): this {
    return this;
  }

  #idleMs = 0;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  #active = 0;

  #armIdle(ms: number): void {
    this.#idleTimer = setTimeout(() => {
      if (this.destroyed || this.#idleMs === 0) return;
      const idle = Date.now() - this.#active;
      if (idle >= this.#idleMs) {
        this.emit("timeout");
        this.#armIdle(this.#idleMs);
      } else this.#armIdle(this.#idleMs - idle);
    }, ms);
  }

  /**
   * Every read from the buffer (flowing mode reads through here too) tells
   * the connection what was consumed, so the peer's window reopens.
   */
  // deno-lint-ignore no-explicit-any
  override read(size?: number): any {
    const chunk = super.read(size);
    if (chunk !== null) this.host.consumed(this);
    return chunk;
  }

  override _read(): void {
    // Data is pushed as it arrives; flow control is what holds the peer back.
  }

  override _write(chunk: Uint8Array, _enc: string, cb: (err?: Error | null) => void): void {
    if (this.#idleMs > 0) this.#active = Date.now();
    if (this.discardWrites) return cb();
    this.queue.push(chunk);
    this.writeCb = cb;
    this.host.flush(this);
  }

  override _writev(
    chunks: { chunk: Uint8Array }[],
    cb: (err?: Error | null) => void,
  ): void {
    if (this.#idleMs > 0) this.#active = Date.now();
    if (this.discardWrites) return cb();
    for (const c of chunks) this.queue.push(c.chunk);
    this.writeCb = cb;
    this.host.flush(this);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.discardWrites || this.localEnded) return cb();
    this.host.endStream(this, cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.host.destroyed(this, err);
    cb(err);
  }
}
