/**
 * Sample apps for the lab: plain TCP servers on the workload addresses. An
 * app that opted into PROXY protocol reads the header ztunnel sends and
 * answers with its caller's SPIFFE ID.
 *
 * @module
 */
import http from "node:http";
import net from "node:net";
import { decodeProxyHeader } from "../hbone/proxy_protocol.ts";

/** A running sample app. */
export interface SampleApp {
  readonly name: string;
  close(): void;
}

/** Starts an app that answers `<name>: <request> (from <caller>)` to each connection. */
export function startSampleApp(
  name: string,
  ip: string,
  port: number,
  opts: { proxyProtocol?: boolean } = {},
): Promise<SampleApp> {
  const srv = net.createServer({ allowHalfOpen: true }, (sock) => {
    sock.on("error", () => {});
    let buf = new Uint8Array(0);
    let caller = `${sock.remoteAddress}:${sock.remotePort}`;
    let headerDone = !opts.proxyProtocol;
    sock.on("data", (chunk: Uint8Array) => {
      const next = new Uint8Array(buf.length + chunk.length);
      next.set(buf);
      next.set(chunk, buf.length);
      buf = next;
      if (!headerDone) {
        const r = decodeProxyHeader(buf);
        if (r === "incomplete") return;
        headerDone = true;
        caller = r.header.spiffeId ??
          (r.header.source ? `${r.header.source.ip}:${r.header.source.port}` : caller);
        buf = buf.slice(r.consumed);
      }
    });
    sock.on("end", () => {
      const request = new TextDecoder().decode(buf).trim();
      sock.end(`${name}: ${request || "(empty)"} (from ${caller})\n`);
    });
  });
  return new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(port, ip, () => resolve({ name, close: () => srv.close() }));
  });
}

/** Sends `text` from `localAddress` to ip:port, half-closes, returns the reply or the error. */
export function ask(
  ip: string,
  port: number,
  text: string,
  localAddress?: string,
): Promise<{ reply: string; error?: string }> {
  return new Promise((resolve) => {
    let reply = "";
    let error: string | undefined;
    const s = net.connect({ host: ip, port, localAddress, allowHalfOpen: true });
    s.setEncoding("utf8");
    s.on("connect", () => s.end(text));
    s.on("data", (d: string) => reply += d);
    s.on("error", (e) => error = e.message);
    s.on("close", () => resolve({ reply: reply.trim(), error }));
  });
}

/**
 * Like {@link ask}, through a SOCKS5 proxy (RFC 1928, no authentication),
 * naming the destination by host name so the proxy resolves it.
 */
export function askViaSocks5(
  proxy: { ip: string; port: number },
  host: string,
  port: number,
  text: string,
  localAddress?: string,
): Promise<{ reply: string; error?: string }> {
  return new Promise((resolve) => {
    const name = new TextEncoder().encode(host);
    let stage: "method" | "reply" | "data" = "method";
    let buf = new Uint8Array(0);
    let reply = "";
    let error: string | undefined;
    const s = net.connect({ host: proxy.ip, port: proxy.port, localAddress, allowHalfOpen: true });
    s.on("connect", () => s.write(Uint8Array.of(5, 1, 0)));
    s.on("data", (chunk: Uint8Array) => {
      if (stage === "data") return void (reply += new TextDecoder().decode(chunk));
      const next = new Uint8Array(buf.length + chunk.length);
      next.set(buf);
      next.set(chunk, buf.length);
      buf = next;
      if (stage === "method" && buf.length >= 2) {
        if (buf[1] !== 0) return void (error = "the proxy refused the method", s.destroy());
        buf = buf.slice(2);
        stage = "reply";
        s.write(Uint8Array.of(5, 1, 0, 3, name.length, ...name, port >> 8, port & 255));
      }
      if (stage === "reply" && buf.length >= 10) {
        if (buf[1] !== 0) {
          error = `SOCKS5 reply ${buf[1]}`;
          return void s.destroy();
        }
        stage = "data";
        s.end(text);
      }
    });
    s.on("error", (e) => error ??= e.message);
    s.on("close", () => resolve({ reply: reply.trim(), error }));
  });
}

/** Starts an HTTP app that answers `<name>: <METHOD> <path>` (for the L7 part of the demo). */
export function startHttpApp(name: string, ip: string, port: number): Promise<SampleApp> {
  const srv = http.createServer((req, res) => {
    res.setHeader("content-type", "text/plain");
    res.end(`${name}: ${req.method} ${req.url}`);
  });
  return new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(port, ip, () => resolve({ name, close: () => srv.close() }));
  });
}

/** HTTP requests from `localAddress` over one kept-alive connection pool. */
export function httpClient(localAddress: string) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  return {
    request(
      ip: string,
      port: number,
      path: string,
      o: { method?: string; headers?: Record<string, string> } = {},
    ): Promise<{ status: number; body: string; error?: string }> {
      return new Promise((resolve) => {
        const req = http.request(
          {
            host: ip,
            port,
            path,
            method: o.method ?? "GET",
            headers: o.headers,
            agent,
            localAddress,
          },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (d: string) => body += d);
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
          },
        );
        req.on("error", (e) => resolve({ status: 0, body: "", error: e.message }));
        req.end();
      });
    },
    close: () => agent.destroy(),
  };
}
