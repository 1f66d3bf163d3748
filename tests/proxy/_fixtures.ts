/**
 * Fixtures for the explicit-proxy tests: upstream servers (a TCP echo and an
 * HTTP server that describes each request), a fake {@link ProxyConnector}
 * with mesh-like names, a raw socket client and curl.
 *
 * @module
 */
import net from "node:net";
import http from "node:http";
import { Buffer } from "node:buffer";
import type { HostPort } from "../../mod/hbone/authority.ts";
import { relay } from "../../mod/hbone/relay.ts";
import { Logger } from "../../mod/log/logger.ts";
import type {
  ProxyConnector,
  ProxyFailure,
  ProxyOpen,
  ProxyTarget,
} from "../../mod/ztunnel/proxy_connect.ts";
import { freePort } from "../_util/net.ts";
import { assertEventually } from "../_util/asserts.ts";
import type { ProxyServer } from "../../mod/ztunnel/socks5.ts";

/** A logger that keeps its lines (quiet unless a test prints them). */
export function testLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const l = new Logger({ level: "debug", sink: (s) => lines.push(s) });
  return Object.assign(l, { lines });
}

/** Open server-side sockets, for leak checks. */
export interface Upstream {
  readonly address: HostPort;
  readonly open: Set<net.Socket>;
  close(): Promise<void>;
}

async function listen(srv: net.Server, ip: string): Promise<HostPort> {
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, ip, () => resolve());
  });
  const a = srv.address() as net.AddressInfo;
  return { ip: a.address, port: a.port };
}

function tracked(srv: net.Server, address: HostPort, open: Set<net.Socket>): Upstream {
  return {
    address,
    open,
    close: () =>
      new Promise<void>((resolve) => {
        srv.close(() => resolve());
        for (const s of open) s.destroy();
      }),
  };
}

/** A TCP echo server; half-close passes back (it ends when the client ends). */
export async function echoUpstream(ip = "127.0.0.1"): Promise<Upstream> {
  const open = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    open.add(s);
    s.on("close", () => open.delete(s));
    s.on("error", () => {});
    s.pipe(s);
  });
  return tracked(srv, await listen(srv, ip), open);
}

/** What the HTTP upstream saw, as it answers it (JSON). */
export interface SeenRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** An HTTP/1.1 server that answers each request with a JSON {@link SeenRequest}. */
export async function httpUpstream(ip = "127.0.0.1"): Promise<Upstream> {
  const open = new Set<net.Socket>();
  const srv = http.createServer((req, res) => {
    const chunks: Uint8Array[] = [];
    req.on("data", (c: Uint8Array) => chunks.push(c));
    req.on("end", () => {
      const seen: SeenRequest = {
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      };
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(seen));
    });
  });
  srv.on("connection", (s: net.Socket) => {
    open.add(s);
    s.on("close", () => open.delete(s));
  });
  return tracked(srv, await listen(srv, ip), open);
}

/** Names the fake connector refuses, with the failure it reports. */
export const REFUSING: Readonly<Record<string, ProxyFailure | "throw">> = {
  "denied.mesh": "not_allowed",
  "nowhere.mesh": "host_unreachable",
  "slow.mesh": "timed_out",
  "broken.mesh": "general",
  "throws.mesh": "throw",
};

/**
 * A connector with a small name table: `names` maps mesh names to
 * upstreams, IP targets are dialled as they are, `refused.mesh` points at a
 * closed port (a real ECONNREFUSED) and {@link REFUSING} names fail at once.
 */
export class FakeConnector implements ProxyConnector {
  readonly calls: { target: ProxyTarget; via: string }[] = [];
  readonly names = new Map<string, HostPort>([
    ["refused.mesh", { ip: "127.0.0.1", port: freePort() }],
  ]);

  /** While set, connect() waits for it: a slow resolve or connect. */
  hold?: Promise<void>;

  async connect(
    client: net.Socket,
    target: ProxyTarget,
    via: "socks5" | "http",
  ): Promise<ProxyOpen> {
    this.calls.push({ target, via });
    await this.hold;
    const refusal = REFUSING[target.host];
    if (refusal === "throw") throw new Error("connector bug");
    if (refusal) return { ok: false, failure: refusal, message: `${target.host} is ${refusal}` };
    const to = target.kind === "domain"
      ? this.names.get(target.host)
      : { ip: target.host, port: target.port };
    if (!to) {
      return { ok: false, failure: "host_unreachable", message: `no such name ${target.host}` };
    }
    const up = net.connect({ host: to.ip, port: to.port, allowHalfOpen: true });
    const err = await new Promise<Error | undefined>((resolve) => {
      up.once("connect", () => resolve(undefined));
      up.once("error", resolve);
    });
    if (err) {
      up.destroy();
      const refused = (err as { code?: string }).code === "ECONNREFUSED";
      return {
        ok: false,
        failure: refused ? "connection_refused" : "general",
        message: err.message,
      };
    }
    up.on("error", () => {});
    return { ok: true, pipe: async () => void await relay(client, up) };
  }
}

/** What a raw client got: every byte until the server closed, and how it closed. */
export interface RawResult {
  bytes: Uint8Array;
  text: string;
  /** "end" for a clean close (FIN), else the socket error code. */
  closed: string;
  ms: number;
}

/**
 * Connects to `port`, writes `writes` in order (awaiting each write, with
 * `gapMs` between them), optionally half-closes, and collects bytes until
 * the server closes the connection.
 */
export function rawClient(
  at: HostPort,
  writes: (Uint8Array | string)[],
  o: { gapMs?: number; end?: boolean; onData?: (all: Uint8Array, s: net.Socket) => void } = {},
): Promise<RawResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const s = net.connect({ host: at.ip, port: at.port, allowHalfOpen: true });
    s.setNoDelay(true);
    const chunks: Uint8Array[] = [];
    let closed = "end";
    s.on("data", (d: Uint8Array) => {
      chunks.push(d);
      o.onData?.(Buffer.concat(chunks), s);
    });
    s.on("error", (e: Error & { code?: string }) => closed = e.code ?? e.message);
    s.on("end", () => s.end());
    s.on("close", () => {
      const bytes = Buffer.concat(chunks);
      resolve({ bytes, text: bytes.toString("latin1"), closed, ms: Date.now() - t0 });
    });
    s.on("connect", async () => {
      for (const w of writes) {
        if (s.destroyed) break;
        await new Promise<void>((r) => s.write(w, () => r()));
        if (o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
      }
      if (o.end) s.end();
    });
  });
}

/** Runs curl with no proxy variables from the environment; returns exit code and output. */
export async function curl(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("curl", {
    args: ["-sS", "--max-time", "5", ...args],
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Whether this host can listen on ::1. */
export function hasIpv6Loopback(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

/** Upstreams and a connector for one front-end test. */
export interface ProxyWorld<S> {
  readonly server: S;
  readonly connector: FakeConnector;
  readonly echo: Upstream;
  readonly web: Upstream;
  readonly web6?: Upstream;
}

/**
 * Starts the upstreams and a fake connector that knows `echo.mesh` and
 * `web.mesh`, starts the front end with `start`, runs `fn`, then checks that
 * no proxy connection and no upstream socket was left open.
 */
export async function withFrontEnd<S extends ProxyServer<string>>(
  start: (connector: FakeConnector) => Promise<S>,
  fn: (w: ProxyWorld<S>) => Promise<void>,
): Promise<void> {
  const echo = await echoUpstream();
  const web = await httpUpstream();
  const web6 = hasIpv6Loopback() ? await httpUpstream("::1") : undefined;
  const connector = new FakeConnector();
  connector.names.set("echo.mesh", echo.address);
  connector.names.set("web.mesh", web.address);
  const server = await start(connector);
  try {
    await fn({ server, connector, echo, web, web6 });
    await assertEventually(() => server.stats.active === 0, {
      message: `proxy connections left open: ${server.stats.active}`,
    });
    for (const u of [echo, web, web6]) {
      if (u) await assertEventually(() => u.open.size === 0, { message: "upstream left open" });
    }
  } finally {
    await server.close();
    await Promise.all([echo.close(), web.close(), web6?.close()]);
  }
}
