/**
 * The sample app of the multi-host bed: an unmodified TCP program that knows
 * nothing about ambit, run inside a host's network namespace with
 * `ip netns exec`.
 *
 * ```text
 * deno run --allow-net _app.ts serve NAME HOST PORT
 *     echo server: for every connection, one header line
 *     "NAME pid=PID peer=IP\n", then every byte back until the client
 *     half-closes. Prints JSON events on stdout: listening, accepted.
 * deno run --allow-net _app.ts http NAME HOST PORT
 *     HTTP/1.1 server: answers every request with
 *     "NAME pid=PID peer=IP method=M path=P\n". Same events.
 * deno run --allow-net _app.ts talk HOST PORT (--text TEXT | --size BYTES) [--timeout MS]
 *     client: connects, sends, half-closes, reads to the end, prints one
 *     JSON {@link TalkResult} on stdout.
 * ```
 *
 * @module
 */

/** What `talk` prints. */
export interface TalkResult {
  /** The TCP connect succeeded. */
  readonly connected: boolean;
  /** The app's header line (empty when the app never answered). */
  readonly header: string;
  /** Bytes received after the header line. */
  readonly bytes: number;
  /** The reply after the header, as text, when it is at most 4 KiB. */
  readonly reply?: string;
  readonly sentSha256: string;
  readonly receivedSha256: string;
  /** Error name (ConnectionRefused, ConnectionReset, timeout …), if any. */
  readonly error?: string;
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(out.subarray(o, o + 65536));
  return out;
}

function emit(event: Record<string, unknown>): void {
  console.log(JSON.stringify(event));
}

async function serve(name: string, hostname: string, port: number): Promise<void> {
  const listener = Deno.listen({ hostname, port });
  emit({ event: "listening", name, pid: Deno.pid, address: `${hostname}:${port}` });
  for await (const conn of listener) {
    const peer = (conn.remoteAddr as Deno.NetAddr).hostname;
    emit({ event: "accepted", name, peer });
    echo(conn, `${name} pid=${Deno.pid} peer=${peer}\n`).catch(() => {});
  }
}

async function echo(conn: Deno.TcpConn, header: string): Promise<void> {
  try {
    await writeAll(conn, new TextEncoder().encode(header));
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      await writeAll(conn, buf.subarray(0, n));
    }
    await conn.closeWrite();
  } finally {
    conn.close();
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let o = 0; o < data.length;) o += await conn.write(data.subarray(o));
}

async function talk(
  hostname: string,
  port: number,
  payload: Uint8Array,
  timeoutMs: number,
): Promise<TalkResult> {
  const sentSha256 = await sha256(payload);
  const chunks: Uint8Array[] = [];
  let connected = false;
  let error: string | undefined;
  let conn: Deno.TcpConn | undefined;
  const timer = setTimeout(() => {
    error = "timeout";
    try {
      conn?.close();
    } catch { /* closed */ }
  }, timeoutMs);
  try {
    conn = await Deno.connect({ hostname, port });
    connected = true;
    const c = conn;
    const send = (async () => {
      await writeAll(c, payload);
      await c.closeWrite();
    })();
    send.catch(() => {});
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await c.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    await send.catch((e) => error ??= (e as Error).name);
  } catch (e) {
    error ??= (e as Error).name;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed */ }
  }
  const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let o = 0;
  for (const c of chunks) all.set(c, (o += c.length) - c.length);
  const nl = all.indexOf(10);
  const header = nl === -1 ? "" : new TextDecoder().decode(all.subarray(0, nl));
  const body = nl === -1 ? all : all.subarray(nl + 1);
  return {
    connected,
    header,
    bytes: body.length,
    reply: body.length <= 4096 ? new TextDecoder().decode(body) : undefined,
    sentSha256,
    receivedSha256: await sha256(body),
    error,
  };
}

function httpServe(name: string, hostname: string, port: number): void {
  Deno.serve({
    hostname,
    port,
    onListen: () =>
      emit({ event: "listening", name, pid: Deno.pid, address: `${hostname}:${port}` }),
  }, (req, info) => {
    const peer = (info.remoteAddr as Deno.NetAddr).hostname;
    emit({ event: "accepted", name, peer });
    const url = new URL(req.url);
    return new Response(
      `${name} pid=${Deno.pid} peer=${peer} method=${req.method} path=${url.pathname}\n`,
    );
  });
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
}

if (import.meta.main) {
  const [mode, ...args] = Deno.args;
  if (mode === "serve") {
    await serve(args[0], args[1], Number(args[2]));
  } else if (mode === "http") {
    httpServe(args[0], args[1], Number(args[2]));
  } else if (mode === "talk") {
    const text = option(args, "--text");
    const size = option(args, "--size");
    const payload = text !== undefined
      ? new TextEncoder().encode(text)
      : randomBytes(Number(size ?? 0));
    const timeoutMs = Number(option(args, "--timeout") ?? 5000);
    emit({ ...await talk(args[0], Number(args[1]), payload, timeoutMs) });
  } else {
    console.error(
      "usage: _app.ts serve|http NAME HOST PORT | talk HOST PORT (--text T | --size N)",
    );
    Deno.exit(2);
  }
}
