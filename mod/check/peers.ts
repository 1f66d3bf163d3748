/**
 * The peers check: every other Node and every waypoint of the config answers
 * HBONE on its address: TCP connect, TLS 1.3 handshake with ALPN h2, and a
 * certificate that chains to the trust bundle and names one of the
 * identities the config places there. {@link peerTargets} and
 * {@link diagnosePeer} are pure; {@link checkPeers} probes concurrently.
 *
 * @module
 */
import type { Snapshot } from "../config/snapshot.ts";
import { HBONE_PORT } from "../hbone/settings.ts";
import { sniForIdentity } from "../hbone/sni.ts";
import { spiffeIdOf } from "../identity/certs.ts";
import { mapConcurrent } from "./_concurrent.ts";
import { formatDate, formatRtt } from "./_format.ts";
import type { CheckedRole } from "./listeners.ts";
import type { CheckItem, CheckResult } from "./result.ts";
import { worstStatus } from "./result.ts";
import { probeTls } from "./tls_probe.ts";
import type { TrustMaterial } from "./certificates.ts";
import { CLOCK_HINT } from "./validity.ts";

/** One HBONE endpoint to probe. */
export interface PeerTarget {
  /** `node node-b` or `waypoint shop/waypoint`. */
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** Identities it may present (its enrolled workloads', or the waypoint's); may be empty. */
  readonly expected: readonly string[];
}

/** Every Node except the checked one and every waypoint except the checked one. Pure. */
export function peerTargets(s: Snapshot, me: CheckedRole): PeerTarget[] {
  const out: PeerTarget[] = [];
  for (const n of [...s.nodes.values()].sort((a, b) => a.name < b.name ? -1 : 1)) {
    if (me.role === "ztunnel" && n.name === me.node) continue;
    const ids = (s.workloadsByNode.get(n.name) ?? []).filter((w) => w.enrolled).map((w) =>
      w.identity
    );
    out.push({
      label: `node ${n.name}`,
      host: n.address,
      port: HBONE_PORT,
      expected: [...new Set(ids)].sort(),
    });
  }
  for (const w of [...s.waypoints.values()].sort((a, b) => a.key < b.key ? -1 : 1)) {
    if (me.role === "waypoint" && w.key === me.name) continue;
    out.push({ label: `waypoint ${w.key}`, host: w.address, port: w.port, expected: [w.identity] });
  }
  return out;
}

/** A probe reduced to what the diagnosis needs. */
export type PeerProbe =
  | { readonly stage: "tcp"; readonly error: string; readonly code?: string }
  | {
    readonly stage: "tls";
    readonly tcpMs: number;
    readonly error: string;
    readonly code?: string;
  }
  | {
    readonly stage: "done";
    readonly tcpMs: number;
    readonly tlsMs: number;
    readonly alpn?: string;
    /** Whether the chain was checked at all (a trust bundle was given). */
    readonly verified: boolean;
    readonly authorized: boolean;
    readonly peerId?: string;
    readonly notBefore?: Date;
    readonly notAfter?: Date;
  };

/** Turns a probe of `t` into an item. Pure. */
export function diagnosePeer(t: PeerTarget, p: PeerProbe, now: Date): CheckItem {
  const at = `${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port}`;
  const subject = `${t.label} ${at}`;
  const reachHint =
    `is ambit running on ${t.host}? does the firewall allow TCP ${t.port} from this host?`;
  if (p.stage === "tcp") {
    return { status: "fail", subject, detail: `unreachable: ${p.error}`, hint: reachHint };
  }
  const rtt = `rtt ${formatRtt(p.tcpMs)}`;
  if (p.stage === "tls") {
    if (t.expected.length === 0) {
      return {
        status: "ok",
        subject,
        detail: `TCP reachable (${rtt}); no enrolled workloads there, so no certificate to check`,
      };
    }
    return {
      status: "fail",
      subject,
      detail: `TCP connects (${rtt}) but the TLS handshake failed: ${p.error}`,
      hint: p.code === "ETIMEDOUT"
        ? `is something other than ambit listening on ${at}?`
        : `is that ambit holding its certificates? run 'ambit status' on ${t.host}`,
    };
  }
  const timing = `${rtt}, TLS ${formatRtt(p.tlsMs)}`;
  if (p.alpn !== "h2") {
    return {
      status: "fail",
      subject,
      detail: `answers TLS but not HBONE (ALPN ${p.alpn ?? "none"}, expected h2)`,
      hint: `another service listens on ${at}: stop it or move it`,
    };
  }
  if (!p.verified) {
    return {
      status: "ok",
      subject,
      detail: `${timing}; identity not verified (no trust bundle)`,
    };
  }
  if (!p.authorized) {
    return { status: "fail", subject, ...untrusted(p, now, t.host) };
  }
  if (t.expected.length > 0 && (p.peerId === undefined || !t.expected.includes(p.peerId))) {
    return {
      status: "warn",
      subject,
      detail: `${timing}; presents ${p.peerId ?? "no SPIFFE ID"}, not ${t.expected.join(" or ")}`,
      hint: `do both hosts run the same config? compare 'ambit config dump' on ${t.host}`,
    };
  }
  return { status: "ok", subject, detail: `${timing}, ${p.peerId ?? "no SPIFFE ID"}` };
}

function untrusted(
  p: Extract<PeerProbe, { stage: "done" }>,
  now: Date,
  host: string,
): { detail: string; hint: string } {
  const id = p.peerId ?? "no SPIFFE ID";
  if (p.notAfter && now > p.notAfter) {
    return {
      detail: `its certificate (${id}) expired ${formatDate(p.notAfter)}`,
      hint: `that ambit cannot renew: check its CA connection ('ambit status' on ${host})`,
    };
  }
  if (p.notBefore && now < p.notBefore) {
    return {
      detail: `its certificate (${id}) is not valid until ${formatDate(p.notBefore)}`,
      hint: CLOCK_HINT,
    };
  }
  return {
    detail: `its certificate (${id}) does not chain to the trust bundle`,
    hint:
      "it is from another CA: is that host in another mesh, or is this host's bundle.pem stale?",
  };
}

/** Options for {@link checkPeers}. */
export interface PeersCheckOptions {
  readonly timeoutMs: number;
  /** Client credential and trust bundle; without a bundle identities are not verified. */
  readonly trust?: TrustMaterial;
  /** Probes in flight at most (default 64). */
  readonly concurrency?: number;
}

/** Probes every target; one item per peer. */
export async function checkPeers(
  targets: readonly PeerTarget[],
  o: PeersCheckOptions,
): Promise<CheckResult> {
  if (targets.length === 0) {
    return { name: "peers", status: "skip", detail: "no other nodes or waypoints in the config" };
  }
  const probes = await mapConcurrent(targets, o.concurrency ?? 64, (t) => probePeer(t, o));
  const now = new Date();
  const items = targets.map((t, i) => diagnosePeer(t, probes[i], now));
  const status = worstStatus(items.map((i) => i.status));
  const rtts = probes.flatMap((p) => p.stage === "tcp" ? [] : [p.tcpMs]);
  const data = {
    peers: targets.map((t, i) => ({
      peer: t.label,
      address: `${t.host}:${t.port}`,
      rttMs: probes[i].stage === "tcp" ? null : round((probes[i] as { tcpMs: number }).tcpMs),
      tlsMs: probes[i].stage === "done" ? round((probes[i] as { tlsMs: number }).tlsMs) : null,
    })),
  };
  const n = targets.length;
  if (status === "ok") {
    const range = rtts.length > 0
      ? `, rtt ${formatRtt(Math.min(...rtts))}${
        rtts.length > 1 ? ` to ${formatRtt(Math.max(...rtts))}` : ""
      }`
      : "";
    return {
      name: "peers",
      status,
      detail: `${n} peer${n === 1 ? " answers" : "s answer"} HBONE${range}`,
      items,
      data,
    };
  }
  const bad = items.filter((i) => i.status === status);
  return {
    name: "peers",
    status,
    detail: `${bad.length} of ${n} peer${n === 1 ? "" : "s"} ${
      status === "fail" ? "unreachable or refused" : "with warnings"
    }`,
    hint: bad[0].hint,
    items,
    data,
  };
}

async function probePeer(t: PeerTarget, o: PeersCheckOptions): Promise<PeerProbe> {
  const r = await probeTls({
    host: t.host,
    port: t.port,
    timeoutMs: o.timeoutMs,
    certPem: o.trust?.credential?.certPem,
    keyPem: o.trust?.credential?.keyPem,
    caPem: o.trust?.bundlePem,
    alpn: ["h2"],
    servername: t.expected.length > 0 ? sniForIdentity(t.expected[0]) : undefined,
  });
  if (!r.ok) return r;
  r.socket.destroy();
  return {
    stage: "done",
    tcpMs: r.tcpMs,
    tlsMs: r.tlsMs,
    alpn: r.alpn,
    verified: o.trust !== undefined,
    authorized: r.authorized,
    peerId: r.peer ? spiffeIdOf(r.peer) : undefined,
    notBefore: r.peer?.notBefore,
    notAfter: r.peer?.notAfter,
  };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
