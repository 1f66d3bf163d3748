/**
 * Plaintext inbound on port 15006, for clients outside the mesh where
 * PeerAuthentication allows it (PERMISSIVE). Without iptables there is no
 * original destination, so the client states it in a PROXY protocol header
 * (v1 or v2) first: the destination address is the workload's ip:port.
 * STRICT workloads refuse; L4 policy applies with no source identity.
 *
 * @module
 */
import net from "node:net";
import { decodeProxyHeader, type ProxyHeader } from "../hbone/proxy_protocol.ts";
import type { HostPort } from "../hbone/authority.ts";
import { evaluateL4 } from "../policy/authz.ts";
import { mtlsModeFor } from "../policy/peer_auth.ts";
import { sourceLabels } from "../telemetry/tcp_metrics.ts";
import {
  deliver,
  type InboundContext,
  type InboundOrigin,
  inboundService,
  recordInboundRefusal,
  resolveInbound,
} from "./inbound.ts";
import { listenOn } from "../util/listen.ts";

/** Options for {@link servePlaintext}. */
export type PlaintextContext = InboundContext;

/** Listens on `at`; returns the server. */
export function servePlaintext(ctx: PlaintextContext, at: HostPort): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (sock) => {
    sock.on("error", () => {});
    readHeader(sock).then((h) => {
      if (h) handle(ctx, sock, h);
    }, (e) => {
      ctx.logger.info("plaintext inbound refused: bad PROXY header", {
        peer: `${sock.remoteAddress}:${sock.remotePort}`,
        error: (e as Error).message,
      });
      sock.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(listenOn(at), () => {
      srv.off("error", reject);
      resolve(srv);
    });
  });
}

function readHeader(sock: net.Socket): Promise<ProxyHeader | undefined> {
  return new Promise((resolve, reject) => {
    let buf = new Uint8Array(0);
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error("no PROXY header within 5 s"));
    }, 5000);
    const cleanup = () => {
      clearTimeout(timer);
      sock.off("data", onData);
      sock.off("end", onEnd);
    };
    const onEnd = () => {
      cleanup();
      resolve(undefined);
      sock.destroy();
    };
    const onData = (chunk: Uint8Array) => {
      const next = new Uint8Array(buf.length + chunk.length);
      next.set(buf);
      next.set(chunk, buf.length);
      buf = next;
      let r;
      try {
        r = decodeProxyHeader(buf);
      } catch (e) {
        cleanup();
        reject(e);
        return;
      }
      if (r === "incomplete") return;
      cleanup();
      sock.pause();
      if (r.consumed < buf.length) sock.unshift(buf.subarray(r.consumed));
      resolve(r.header);
    };
    sock.on("data", onData);
    sock.on("end", onEnd);
  });
}

function handle(ctx: PlaintextContext, sock: net.Socket, h: ProxyHeader): void {
  const log = ctx.logger;
  const peer = { ip: sock.remoteAddress ?? "", port: sock.remotePort ?? 0 };
  if (!h.destination) {
    log.info("plaintext inbound refused: PROXY header without a destination", { peer: peer.ip });
    return void sock.destroy();
  }
  const target = h.destination;
  const dst = `${target.ip}:${target.port}`;
  const snapshot = ctx.snapshot();
  const client = h.source ?? peer;
  const origin = (w?: Parameters<typeof inboundService>[2]): InboundOrigin => ({
    via: "plaintext",
    peer: `${peer.ip}:${peer.port}`,
    source: sourceLabels(snapshot, undefined, peer.ip, undefined),
    service: inboundService(snapshot, undefined, w, target.port),
  });
  const resolved = resolveInbound(ctx.view(), target, (ip) => ctx.isHostAddress(ip));
  if (!resolved.ok) {
    log.info("plaintext inbound refused", { peer: peer.ip, reason: resolved.detail });
    recordInboundRefusal(ctx, origin(), dst, undefined, resolved.failure, resolved.detail);
    return void sock.destroy();
  }
  const w = resolved.workload;
  const mode = mtlsModeFor(snapshot, w, target.port);
  if (mode === "STRICT") {
    log.warn("plaintext inbound refused: PeerAuthentication is STRICT", {
      peer: `${peer.ip}:${peer.port}`,
      workload: w.key,
    });
    recordInboundRefusal(ctx, origin(w), dst, w, "denied", "PeerAuthentication is STRICT");
    return void sock.destroy();
  }
  const conn = { sourceIp: peer.ip, destinationIp: target.ip, destinationPort: target.port };
  const decision = evaluateL4(ctx.policies().forWorkload(w), conn);
  if (!decision.allow) {
    log.info("plaintext inbound denied", {
      peer: peer.ip,
      workload: w.key,
      reason: decision.reason,
    });
    recordInboundRefusal(ctx, origin(w), dst, w, "denied", decision.reason);
    return void sock.destroy();
  }
  let closed = false;
  const closers: (() => void)[] = [];
  sock.once("close", () => {
    closed = true;
    for (const f of closers.splice(0)) f();
  });
  deliver(ctx, {
    workload: w,
    target,
    conn,
    source: client,
    origin: origin(w),
    closed: () => closed,
    onClose: (fn) => closed ? fn() : void closers.push(fn),
    accept: () => sock,
    reject: () => sock.destroy(),
  });
}
