/**
 * Child processes of the data-plane benchmark (scripts/bench_dataplane.ts):
 * the app (an echo server and a counting sink) and the Deno load clients.
 * Each client prints one JSON line on stdout; every role exits when its stdin
 * closes, so nothing outlives the benchmark.
 *
 * Sink protocol: the client sends an 8-byte big-endian length N, then N
 * bytes; the sink answers with the decimal count of bytes it received after
 * the length and a newline, then closes. Only the count travels back.
 *
 *   deno run --allow-net scripts/_bench_apps.ts app --echo IP:PORT --sink IP:PORT
 *   deno run --allow-net scripts/_bench_apps.ts throughput --to IP:PORT --bytes N [--chunk N]
 *   deno run --allow-net scripts/_bench_apps.ts connrate --to IP:PORT --seconds S [--concurrency C]
 *   deno run --allow-net scripts/_bench_apps.ts hold --to IP:PORT --count N
 *
 * @module
 */
import { parseArgs } from "node:util";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    echo: { type: "string" },
    sink: { type: "string" },
    to: { type: "string" },
    bytes: { type: "string", default: String(1 << 30) },
    chunk: { type: "string", default: String(128 << 10) },
    seconds: { type: "string", default: "5" },
    concurrency: { type: "string", default: "16" },
    size: { type: "string", default: "1024" },
    count: { type: "string", default: "1000" },
    "timeout-ms": { type: "string", default: "600000" },
  },
});

type Addr = { hostname: string; port: number };

function addr(s: string | undefined, flag: string): Addr {
  const m = s?.match(/^(127\.\d+\.\d+\.\d+):(\d+)$/);
  if (!m) throw new RangeError(`--${flag} "${s}" is not a loopback IPv4 address:port`);
  return { hostname: m[1], port: Number(m[2]) };
}

function positive(s: string, flag: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) {
    throw new RangeError(`--${flag} "${s}" is not a positive number`);
  }
  return n;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0, i = 0; off < data.length && i < 1e6; i++) {
    off += await conn.write(data.subarray(off));
  }
}

/** Reads exactly `buf.length` bytes; false on EOF first. */
async function readFull(conn: Deno.Conn, buf: Uint8Array): Promise<boolean> {
  let got = 0;
  for (let i = 0; got < buf.length && i < 1e6; i++) {
    const n = await conn.read(buf.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}

const closeQuietly = (c: Deno.Conn) => {
  try {
    c.close();
  } catch { /* closed */ }
};

/** Resolves when stdin closes (or any byte arrives). */
function stdinClosed(): Promise<void> {
  const r = Deno.stdin.readable.getReader();
  return r.read().then(() => {}, () => {});
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const pct = (s: number[], q: number) =>
  s.length ? s[Math.min(s.length - 1, Math.floor(s.length * q))] : NaN;
const ms3 = (x: number) => Math.round(x * 1000) / 1000;

// --- app ----------------------------------------------------------------------

async function echoConn(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  const buf = new Uint8Array(64 << 10);
  try {
    // Ends at the peer's EOF; the app itself ends when the benchmark does.
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      await writeAll(conn, buf.subarray(0, n));
    }
  } catch { /* reset */ }
  closeQuietly(conn);
}

async function sinkConn(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(1 << 20);
  const header = new Uint8Array(8);
  let headerLen = 0, expected = -1, got = 0;
  try {
    while (expected < 0 || got < expected) {
      const n = await conn.read(buf);
      if (n === null) break;
      let off = 0;
      if (headerLen < 8) {
        off = Math.min(8 - headerLen, n);
        header.set(buf.subarray(0, off), headerLen);
        headerLen += off;
        if (headerLen === 8) expected = Number(new DataView(header.buffer).getBigUint64(0));
      }
      got += n - off;
    }
    await writeAll(conn, new TextEncoder().encode(`${got}\n`));
  } catch { /* reset */ }
  closeQuietly(conn);
}

async function serve(
  l: Deno.TcpListener,
  handle: (c: Deno.TcpConn) => Promise<void>,
): Promise<void> {
  try {
    for await (const c of l) handle(c);
  } catch { /* listener closed */ }
}

async function app(): Promise<void> {
  const echo = Deno.listen(addr(values.echo, "echo"));
  const sink = Deno.listen(addr(values.sink, "sink"));
  console.log("ready");
  serve(echo, echoConn);
  serve(sink, sinkConn);
  await stdinClosed();
  Deno.exit(0);
}

// --- clients --------------------------------------------------------------------

async function throughput(): Promise<unknown> {
  const to = addr(values.to, "to");
  const bytes = positive(values.bytes, "bytes");
  const chunk = positive(values.chunk, "chunk");
  const data = new Uint8Array(chunk).fill(0x61);
  const t0 = performance.now();
  const conn = await Deno.connect(to);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    closeQuietly(conn);
  }, positive(values["timeout-ms"], "timeout-ms"));
  try {
    const header = new Uint8Array(8);
    new DataView(header.buffer).setBigUint64(0, BigInt(bytes));
    await writeAll(conn, header);
    for (let sent = 0; sent < bytes;) {
      const n = Math.min(chunk, bytes - sent);
      await writeAll(conn, data.subarray(0, n));
      sent += n;
    }
    const written = performance.now();
    let reply = "";
    const buf = new Uint8Array(64);
    for (let i = 0; i < 64 && !reply.includes("\n"); i++) {
      const n = await conn.read(buf);
      if (n === null) break;
      reply += new TextDecoder().decode(buf.subarray(0, n));
    }
    const seconds = (performance.now() - t0) / 1000;
    const received = Number(reply.trim());
    return {
      bytes,
      received,
      complete: received === bytes,
      seconds: ms3(seconds),
      writeSeconds: ms3((written - t0) / 1000),
      mibPerSecond: Math.round(bytes / 2 ** 20 / seconds * 10) / 10,
    };
  } catch (e) {
    return { bytes, error: timedOut ? "timed out" : (e as Error).message };
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

/** One connection: connect, send `payload`, read as many bytes back, close. */
async function exchange(to: Addr, payload: Uint8Array, buf: Uint8Array): Promise<void> {
  const conn = await Deno.connect(to);
  const timer = setTimeout(() => closeQuietly(conn), 10_000);
  try {
    conn.setNoDelay(true);
    await writeAll(conn, payload);
    if (!await readFull(conn, buf)) throw new Error("closed before the reply");
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

async function connrate(): Promise<unknown> {
  const to = addr(values.to, "to");
  const seconds = positive(values.seconds, "seconds");
  const conc = positive(values.concurrency, "concurrency");
  const size = positive(values.size, "size");
  const payload = new Uint8Array(size).fill(0x62);
  const maxCount = 2_000_000;
  const times: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(Array.from({ length: conc }, async () => {
    const buf = new Uint8Array(size);
    while (performance.now() < end && times.length + errors < maxCount) {
      const t = performance.now();
      try {
        await exchange(to, payload, buf);
        times.push(performance.now() - t);
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  }));
  const elapsed = (performance.now() - start) / 1000;
  const s = sorted(times);
  return {
    connections: times.length,
    errors,
    firstError,
    seconds: ms3(elapsed),
    perSecond: Math.round(times.length / elapsed),
    p50Ms: ms3(pct(s, 0.5)),
    p99Ms: ms3(pct(s, 0.99)),
  };
}

async function hold(): Promise<void> {
  const to = addr(values.to, "to");
  const count = positive(values.count, "count");
  const conc = positive(values.concurrency, "concurrency");
  const size = positive(values.size, "size");
  const payload = new Uint8Array(size).fill(0x63);
  const conns: Deno.Conn[] = [];
  let next = 0, errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: Math.min(conc, count) }, async () => {
    const buf = new Uint8Array(size);
    while (next < count) {
      next++;
      let conn: Deno.TcpConn | undefined;
      try {
        conn = await Deno.connect(to);
        conn.setNoDelay(true);
        await writeAll(conn, payload);
        if (!await readFull(conn, buf)) throw new Error("closed before the reply");
        conns.push(conn);
      } catch (e) {
        if (conn) closeQuietly(conn);
        errors++;
        firstError ??= (e as Error).message;
      }
    }
  }));
  console.log(JSON.stringify({
    held: conns.length,
    errors,
    firstError,
    openMs: Math.round(performance.now() - t0),
  }));
  const limit = new Promise((r) => setTimeout(r, positive(values["timeout-ms"], "timeout-ms")));
  await Promise.race([stdinClosed(), limit]);
  for (const c of conns) closeQuietly(c);
  console.log(JSON.stringify({ released: conns.length }));
  Deno.exit(0);
}

if (import.meta.main) {
  const role = positionals[0];
  const roles: Record<string, () => Promise<unknown>> = { throughput, connrate };
  if (role === "app") await app();
  else if (role === "hold") await hold();
  else if (roles[role]) {
    // A client also stops when the benchmark goes away.
    stdinClosed().then(() => Deno.exit(3));
    console.log(JSON.stringify(await roles[role]()));
    Deno.exit(0);
  } else {
    console.error(`unknown role "${role}": app, throughput, connrate or hold`);
    Deno.exit(2);
  }
}
