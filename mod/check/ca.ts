/**
 * The CA check: the CA service answers at its address with mutual TLS
 * using the node credential, presents the mesh CA's identity chained to the
 * trust bundle, and serves `GET /v1/trust-bundle`; its `Date` header gives
 * the clock check.
 *
 * @module
 */
import type { TLSSocket } from "node:tls";
import { spiffeIdOf } from "../identity/certs.ts";
import { caId } from "../identity/spiffe.ts";
import { formatRtt } from "./_format.ts";
import type { TrustMaterial } from "./certificates.ts";
import { evaluateSkew, skewFromDate } from "./clock.ts";
import type { CheckResult } from "./result.ts";
import { probeTls } from "./tls_probe.ts";
import { concatBytes } from "../util/bytes.ts";

/** Options for {@link checkCa}. */
export interface CaCheckOptions {
  /** `host:port` of the CA service. */
  readonly address: string;
  readonly trustDomain: string;
  readonly trust: TrustMaterial;
  readonly timeoutMs: number;
}

/** The ca and clock results. */
export interface CaCheck {
  readonly ca: CheckResult;
  readonly clock: CheckResult;
}

const REACH_HINT =
  "is 'ambit ca serve' running there? does the firewall allow TCP to it from this host?";

/** Probes the CA service. */
export async function checkCa(o: CaCheckOptions): Promise<CaCheck> {
  const i = o.address.lastIndexOf(":");
  const host = o.address.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(o.address.slice(i + 1));
  const deadline = performance.now() + o.timeoutMs;
  const noClock = (why: string): CheckResult => ({
    name: "clock",
    status: "skip",
    detail: `not measured: ${why}`,
  });
  const failed = (detail: string, hint: string): CaCheck => ({
    ca: { name: "ca", status: "fail", detail, hint },
    clock: noClock("the CA did not answer"),
  });
  const cred = o.trust.credential;
  const r = await probeTls({
    host,
    port,
    timeoutMs: o.timeoutMs,
    certPem: cred?.certPem,
    keyPem: cred?.keyPem,
    caPem: o.trust.bundlePem,
    alpn: ["http/1.1"],
  });
  if (!r.ok) {
    return r.stage === "tcp"
      ? failed(`cannot connect to the CA at ${o.address}: ${r.error}`, REACH_HINT)
      : failed(
        `the CA at ${o.address} accepts TCP (rtt ${
          formatRtt(r.tcpMs)
        }) but the TLS handshake failed: ${r.error}`,
        "is it the CA service (ambit ca serve) on that port? check the certificates result",
      );
  }
  const rtt = `rtt ${formatRtt(r.tcpMs)}, TLS ${formatRtt(r.tlsMs)}`;
  const want = caId(o.trustDomain);
  const got = r.peer ? spiffeIdOf(r.peer) : undefined;
  if (!r.authorized || got !== want) {
    r.socket.destroy();
    return failed(
      !r.authorized
        ? `the CA at ${o.address} presents a certificate (${
          got ?? "no SPIFFE ID"
        }) that does not chain to bundle.pem`
        : `the server at ${o.address} is ${
          got ?? "not a SPIFFE identity"
        }, not the mesh CA ${want}`,
      "the credential must come from this mesh's CA: re-issue it with 'ambit ca issue-node', " +
        "or fix --ca-address / Mesh spec.ca.address",
    );
  }
  const sentAt = Date.now();
  let res: { status: number; date?: string; body: string };
  try {
    res = await httpGet(r.socket, host, "/v1/trust-bundle", deadline - performance.now());
  } catch (e) {
    return failed(
      `the CA at ${o.address} closed the connection after the handshake: ${(e as Error).message}`,
      "the CA refused this credential: check the certificates result (expired? another CA?)",
    );
  } finally {
    r.socket.destroy();
  }
  const receivedAt = Date.now();
  if (res.status !== 200) {
    let reason = res.body.trim().slice(0, 200);
    try {
      const err = (JSON.parse(res.body) as { error?: { code?: string; message?: string } }).error;
      if (err) reason = `${err.code}: ${err.message}`;
    } catch { /* keep the text */ }
    return {
      ca: {
        name: "ca",
        status: "fail",
        detail: `the CA at ${o.address} answered ${res.status}: ${reason}`,
        hint: "check the CA's log ('ambit ca serve') for the refusal",
      },
      clock: clockFrom(res.date, sentAt, receivedAt, o.address),
    };
  }
  return {
    ca: {
      name: "ca",
      status: "ok",
      detail: `${o.address} is ${want} (${rtt})`,
      data: { address: o.address, rttMs: round(r.tcpMs), tlsMs: round(r.tlsMs) },
    },
    clock: clockFrom(res.date, sentAt, receivedAt, o.address),
  };
}

function clockFrom(
  date: string | undefined,
  sentAt: number,
  receivedAt: number,
  address: string,
): CheckResult {
  const m = skewFromDate(date, sentAt, receivedAt);
  if (!m) {
    return { name: "clock", status: "skip", detail: "the CA's answer carries no Date header" };
  }
  return evaluateSkew(m, address);
}

/** HTTP/1.1 GET over an open TLS socket; the answer is read until the server closes. */
function httpGet(
  socket: TLSSocket,
  host: string,
  path: string,
  timeoutMs: number,
): Promise<{ status: number; date?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    const timer = setTimeout(
      () => done(new Error(`no answer within the timeout`)),
      Math.max(1, timeoutMs),
    );
    let finished = false;
    const done = (err?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.removeAllListeners("data");
      socket.removeAllListeners("end");
      socket.removeAllListeners("close");
      if (err) return reject(err);
      const text = new TextDecoder().decode(concatBytes(chunks));
      const head = text.slice(
        0,
        text.indexOf("\r\n\r\n") === -1 ? text.length : text.indexOf("\r\n\r\n"),
      );
      const m = /^HTTP\/1\.[01] ([0-9]{3})/.exec(head);
      if (!m) return reject(new Error("the answer is not HTTP"));
      const date = /\r\ndate:\s*([^\r\n]+)/i.exec(head)?.[1];
      resolve({ status: Number(m[1]), date, body: text.slice(head.length + 4) });
    };
    socket.on("data", (c: Uint8Array) => {
      size += c.length;
      if (size > 1 << 20) return done(new Error("answer over 1 MiB"));
      chunks.push(c);
    });
    socket.once("error", (e: Error) => done(e));
    socket.once(
      "end",
      () => done(size === 0 ? new Error("connection closed without an answer") : undefined),
    );
    socket.once(
      "close",
      () => done(size === 0 ? new Error("connection closed without an answer") : undefined),
    );
    const h = host.includes(":") ? `[${host}]` : host;
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\nAccept: application/json\r\n\r\n`,
    );
  });
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
