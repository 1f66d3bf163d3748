/**
 * Telling HTTP/1.1, HTTP/2 (prior knowledge) and other bytes apart from the
 * first bytes a client sends, without consuming them.
 *
 * @module
 */
import type { Duplex } from "node:stream";

/** What the first bytes say. */
export type Sniffed = "h1" | "h2" | "tcp";

const H2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const METHOD = /^[A-Z]{3,12} /;

/**
 * Classifies a prefix: the HTTP/2 preface, an HTTP/1 request line start,
 * other bytes, or undefined while too short to tell.
 */
export function classify(prefix: string): Sniffed | undefined {
  if (prefix.length === 0) return undefined;
  if (H2_PREFACE.startsWith(prefix)) return prefix.length >= H2_PREFACE.length ? "h2" : undefined;
  if (prefix.startsWith(H2_PREFACE)) return "h2";
  if (METHOD.test(prefix)) return "h1";
  if (/^[A-Z]{1,12}$/.test(prefix)) return undefined;
  return "tcp";
}

/**
 * Reads until {@link classify} decides (or the client is silent for
 * `timeoutMs`, or ends: "tcp"), puts the bytes back and resolves.
 */
export function sniff(stream: Duplex, timeoutMs: number): Promise<Sniffed> {
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    let text = "";
    const done = (r: Sniffed) => {
      clearTimeout(timer);
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.pause();
      if (chunks.length > 0 && !stream.readableEnded) {
        const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let o = 0;
        for (const c of chunks) {
          all.set(c, o);
          o += c.length;
        }
        stream.unshift(all);
      }
      resolve(r);
    };
    const onData = (c: Uint8Array) => {
      chunks.push(c);
      text += new TextDecoder("latin1").decode(c.subarray(0, 64));
      const r = classify(text.slice(0, 64));
      if (r) done(r);
    };
    const onEnd = () => done("tcp");
    const timer = setTimeout(() => done("tcp"), timeoutMs);
    stream.on("data", onData);
    stream.on("end", onEnd);
    stream.resume();
  });
}
