/** Small real apps for data-plane tests: an echo server and a client. */
import net from "node:net";

/** A TCP echo server that prefixes its replies with `name:` and echoes until the client half-closes. */
export function echoServer(
  ip: string,
  port: number,
  name = "echo",
): Promise<net.Server & { connections: number }> {
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    (srv as net.Server & { connections: number }).connections++;
    s.on("error", () => {});
    s.write(`${name}:`);
    s.pipe(s);
  }) as net.Server & { connections: number };
  srv.connections = 0;
  return new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(port, ip, () => resolve(srv));
  });
}

/** Outcome of {@link talk}. */
export interface TalkResult {
  readonly reply: string;
  /** Set when the connection was refused or reset instead of answered. */
  readonly error?: string;
}

/**
 * Connects (from `localAddress` when given), sends `payload`, half-closes
 * and collects everything until the server closes.
 */
export function talk(
  ip: string,
  port: number,
  payload: string | Uint8Array,
  localAddress?: string,
): Promise<TalkResult> {
  return new Promise((resolve) => {
    const chunks: Uint8Array[] = [];
    const s = net.connect({ host: ip, port, localAddress, allowHalfOpen: true });
    let error: string | undefined;
    s.on("connect", () => {
      s.write(payload);
      s.end();
    });
    s.on("data", (d: Uint8Array) => chunks.push(d));
    s.on("error", (e) => error = e.message);
    s.on("close", () => {
      const total = chunks.reduce((n, c) => n + c.length, 0);
      const buf = new Uint8Array(total);
      let o = 0;
      for (const c of chunks) {
        buf.set(c, o);
        o += c.length;
      }
      resolve({ reply: new TextDecoder().decode(buf), error });
    });
  });
}
