/**
 * Copies bytes both ways between two duplex streams (a TCP socket and an
 * HTTP/2 stream), keeping order, honouring back-pressure, passing half-close
 * (end of one direction) through and turning an error on either side into
 * an abort of the other: a TCP socket is reset (RST, not FIN, so the app can
 * tell an abort from a clean end), an HTTP/2 stream gets RST_STREAM.
 *
 * @module
 */
import type { Duplex } from "node:stream";

/** Byte counts and outcome of a finished relay. */
export interface RelayResult {
  /** Bytes from `a` to `b`. */
  readonly aToB: number;
  /** Bytes from `b` to `a`. */
  readonly bToA: number;
  /** The first error on either side, if any. */
  readonly error?: Error;
}

/** Live byte counts of a running relay. */
export interface RelayCounters {
  aToB: number;
  bToA: number;
}

/**
 * Relays until both directions ended or either side failed.
 * `abort(a|b, err)` is called to tear a side down (socket destroy or
 * stream reset); `counters` updates as bytes move.
 */
export function relay(
  a: Duplex,
  b: Duplex,
  counters: RelayCounters = { aToB: 0, bToA: 0 },
): Promise<RelayResult> {
  return new Promise((resolve) => {
    let done = false;
    let ended = 0;
    let error: Error | undefined;
    const finish = () => {
      if (done) return;
      done = true;
      resolve({ aToB: counters.aToB, bToA: counters.bToA, error });
    };
    const fail = (err: Error) => {
      if (!error) error = err;
      abort(a);
      abort(b);
      finish();
    };
    const pump = (from: Duplex, to: Duplex, count: (n: number) => void) => {
      // Chunks that arrive in one turn (an HTTP/2 read yields one per DATA
      // frame) leave in one write: cork until the microtask queue drains.
      let corked = false;
      const uncork = () => {
        corked = false;
        to.uncork();
      };
      from.on("data", (chunk: Uint8Array) => {
        count(chunk.length);
        if (!corked) {
          corked = true;
          to.cork();
          queueMicrotask(uncork);
        }
        if (!to.write(chunk)) from.pause();
      });
      to.on("drain", () => from.resume());
      // An HTTP/2 stream whose HEADERS carried END_STREAM has ended before
      // the relay starts: pass that end on at once.
      if (from.readableEnded) to.end();
      else from.on("end", () => to.end());
    };
    pump(a, b, (n) => counters.aToB += n);
    pump(b, a, (n) => counters.bToA += n);
    // Sockets accepted with pauseOnConnect stay paused until told otherwise.
    a.resume();
    b.resume();
    for (const s of [a, b]) {
      s.on("error", fail);
      s.on("finish", () => {
        // Our write side ended; when both have, and both reads ended, we are done.
        if (++ended === 2) finish();
      });
      s.on("close", () => {
        if (done) return;
        // A side that closed after both of its directions ended cleanly is
        // done; the other side still flushes its end. Anything else is an
        // abort, passed on as one.
        if (!(s.readableEnded && s.writableFinished) || wasReset(s)) {
          fail(error ?? new Error(`${s === a ? "first" : "second"} side closed early`));
        }
      });
    }
  });
}

/** Tears a side down: RST for a TCP socket, RST_STREAM (via destroy) for an HTTP/2 stream. */
function abort(s: Duplex): void {
  if (s.destroyed) return;
  const reset = (s as Duplex & { resetAndDestroy?: () => void }).resetAndDestroy;
  if (typeof reset === "function" && "remoteAddress" in s) {
    try {
      reset.call(s);
      return;
    } catch { /* not connected: plain destroy */ }
  }
  s.destroy();
}

/** Whether an HTTP/2 stream ended by RST_STREAM (its readable side may still have "ended"). */
function wasReset(s: Duplex): boolean {
  const h2 = s as Duplex & { aborted?: boolean; rstCode?: number };
  return h2.aborted === true || (h2.rstCode !== undefined && h2.rstCode !== 0);
}
