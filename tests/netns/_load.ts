/**
 * Steady load for the drain and upgrade tests, against the bed's echo app
 * (one header line, then every byte back until the client half-closes):
 *
 * ```text
 * deno run --allow-net --allow-read _load.ts HOST PORT --short-every MS --long N --long-bytes BYTES
 *     [--long-rate BYTES_PER_S] [--stop-file PATH] [--max-ms MS]
 * ```
 *
 * - short: a new connection every MS milliseconds (never more than 64 open),
 *   each sends 1 KiB, half-closes and must get the header and exactly its
 *   1 KiB back;
 * - long: N transfers of BYTES each, sent at BYTES_PER_S (0: as fast as the
 *   path goes), SHA-256 compared on both directions without holding the
 *   data in memory.
 *
 * Prints JSON lines: `{"event":"started"}`, then `{"event":"long-done",...}`
 * per transfer, and at the end (stop file seen, or `--max-ms`, and every
 * transfer finished) one `{"event":"summary",...}` with every failure.
 *
 * @module
 */
import { createHash } from "node:crypto";

interface Failure {
  kind: "short" | "long";
  at: number;
  error: string;
}

const emit = (e: Record<string, unknown>) => console.log(JSON.stringify(e));

function arg(name: string, fallback?: string): string {
  const i = Deno.args.indexOf(name);
  const v = i === -1 ? fallback : Deno.args[i + 1];
  if (v === undefined) throw new Error(`missing ${name}`);
  return v;
}

const [hostname, portText] = Deno.args;
const port = Number(portText);
const shortEvery = Number(arg("--short-every", "5"));
const longCount = Number(arg("--long", "0"));
const longBytes = Number(arg("--long-bytes", String(64 * 1024 * 1024)));
const longRate = Number(arg("--long-rate", "0"));
const stopFile = Deno.args.includes("--stop-file") ? arg("--stop-file") : undefined;
const maxMs = Number(arg("--max-ms", "120000"));
const t0 = performance.now();
const now = () => Math.round(performance.now() - t0);

const failures: Failure[] = [];
let shortOk = 0;
let shortOpen = 0;
const shortPeers = new Map<string, number>();

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await conn.write(data.subarray(o));
}

/** Reads to EOF; returns the header line and the body length and hash. */
async function readReply(
  conn: Deno.Conn,
  onBody?: (chunk: Uint8Array) => void,
): Promise<{ header: string; bytes: number }> {
  const buf = new Uint8Array(256 * 1024);
  let header: string | undefined;
  let pending: number[] = [];
  let bytes = 0;
  while (true) {
    const n = await conn.read(buf);
    if (n === null) break;
    let chunk = buf.subarray(0, n);
    if (header === undefined) {
      const nl = chunk.indexOf(10);
      if (nl === -1) {
        pending.push(...chunk);
        continue;
      }
      header = new TextDecoder().decode(new Uint8Array([...pending, ...chunk.subarray(0, nl)]));
      pending = [];
      chunk = chunk.subarray(nl + 1);
    }
    bytes += chunk.length;
    onBody?.(chunk);
  }
  return { header: header ?? "", bytes };
}

const SHORT = new Uint8Array(1024).map((_, i) => i & 0xff);

async function short(): Promise<void> {
  const at = now();
  shortOpen++;
  let conn: Deno.TcpConn | undefined;
  const timer = setTimeout(() => conn?.close(), 10_000);
  try {
    conn = await Deno.connect({ hostname, port });
    const c = conn;
    const send = writeAll(c, SHORT).then(() => c.closeWrite());
    const { header, bytes } = await readReply(c);
    await send;
    if (header === "" || bytes !== SHORT.length) {
      throw new Error(`short reply: header "${header}", ${bytes} bytes`);
    }
    const pid = header.match(/pid=(\d+)/)?.[1] ?? "?";
    shortPeers.set(pid, (shortPeers.get(pid) ?? 0) + 1);
    shortOk++;
  } catch (e) {
    failures.push({ kind: "short", at, error: `${(e as Error).name}: ${(e as Error).message}` });
  } finally {
    clearTimeout(timer);
    shortOpen--;
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

/** A deterministic stream: block `i` is a fixed random 64 KiB block with `i` in its first bytes. */
const BLOCK = crypto.getRandomValues(new Uint8Array(64 * 1024));
function block(i: number): Uint8Array {
  const b = BLOCK.slice();
  new DataView(b.buffer).setUint32(0, i);
  return b;
}

async function long(n: number): Promise<void> {
  const at = now();
  const sent = createHash("sha256");
  const got = createHash("sha256");
  let conn: Deno.TcpConn | undefined;
  try {
    conn = await Deno.connect({ hostname, port });
    const c = conn;
    const send = (async () => {
      const started = performance.now();
      for (let off = 0, i = 0; off < longBytes; i++) {
        let b = block(i);
        if (off + b.length > longBytes) b = b.subarray(0, longBytes - off);
        sent.update(b);
        await writeAll(c, b);
        off += b.length;
        if (longRate > 0) {
          const due = started + (off / longRate) * 1000;
          const wait = due - performance.now();
          if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        }
      }
      await c.closeWrite();
    })();
    const reply = await readReply(c, (chunk) => got.update(chunk));
    await send;
    const [s, g] = [sent.digest("hex"), got.digest("hex")];
    const ok = reply.bytes === longBytes && s === g;
    emit({
      event: "long-done",
      n,
      ok,
      bytes: reply.bytes,
      ms: now() - at,
      header: reply.header,
      sha256: g,
    });
    if (!ok) {
      throw new Error(`transfer ${n}: ${reply.bytes} of ${longBytes} bytes, sha256 ${g} != ${s}`);
    }
  } catch (e) {
    failures.push({ kind: "long", at, error: `${(e as Error).name}: ${(e as Error).message}` });
  } finally {
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

const stopped = () => {
  if (now() > maxMs) return true;
  if (!stopFile) return false;
  try {
    Deno.statSync(stopFile);
    return true;
  } catch {
    return false;
  }
};

emit({ event: "started", pid: Deno.pid });
const longs = Array.from({ length: longCount }, (_, i) => long(i));
const shorts: Promise<void>[] = [];
if (shortEvery > 0) {
  while (!stopped()) {
    if (shortOpen < 64) shorts.push(short());
    await new Promise((r) => setTimeout(r, shortEvery));
  }
}
await Promise.all([...longs, ...shorts]);
emit({
  event: "summary",
  ms: now(),
  shortOk,
  shortPeers: Object.fromEntries(shortPeers),
  longOk: longCount - failures.filter((f) => f.kind === "long").length,
  failures,
});
