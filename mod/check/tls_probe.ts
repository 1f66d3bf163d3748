/**
 * One connection attempt as a client: TCP connect (timed: the round trip of
 * the SYN), then a TLS 1.3 handshake (timed), within one deadline. The
 * chain is checked against the given roots but the handshake is not aborted
 * on a bad certificate, so the caller can say why it is bad.
 *
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { x509 } from "../identity/certs.ts";

/** Options for {@link probeTls}. */
export interface TlsProbeOptions {
  readonly host: string;
  readonly port: number;
  /** Deadline for connect and handshake together. */
  readonly timeoutMs: number;
  /** Client certificate (leaf then chain) and key, PEM. */
  readonly certPem?: string;
  readonly keyPem?: string;
  /** Roots the server's chain must reach, PEM; without them nothing is verified. */
  readonly caPem?: string;
  readonly alpn?: readonly string[];
  /** SNI; none when absent or empty. */
  readonly servername?: string;
}

/** What a probe found. */
export type TlsProbeResult =
  | { readonly ok: false; readonly stage: "tcp"; readonly error: string; readonly code?: string }
  | {
    readonly ok: false;
    readonly stage: "tls";
    readonly tcpMs: number;
    readonly error: string;
    readonly code?: string;
  }
  | {
    readonly ok: true;
    readonly tcpMs: number;
    readonly tlsMs: number;
    /** The open TLS socket; the caller ends it. */
    readonly socket: tls.TLSSocket;
    /** The chain reached `caPem` and the dates hold. */
    readonly authorized: boolean;
    readonly authorizationError?: string;
    /** The server's leaf certificate. */
    readonly peer?: x509.X509Certificate;
    readonly alpn?: string;
  };

/** Connects and shakes hands with `o.host:o.port`. Never throws. */
export function probeTls(o: TlsProbeOptions): Promise<TlsProbeResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    let tcpMs = 0;
    let stage: "tcp" | "tls" = "tcp";
    let done = false;
    let secure: tls.TLSSocket | undefined;
    const raw = net.connect({ host: o.host, port: o.port });
    const finish = (r: TlsProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!r.ok) {
        secure?.destroy();
        raw.destroy();
      }
      resolve(r);
    };
    const failed = (e: Error & { code?: string }) =>
      finish(
        stage === "tcp"
          ? { ok: false, stage, error: e.message, code: e.code }
          : { ok: false, stage, tcpMs, error: e.message, code: e.code },
      );
    const timer = setTimeout(() => {
      const what = stage === "tcp" ? "TCP connect" : "TLS handshake";
      failed(Object.assign(new Error(`${what} did not finish within ${o.timeoutMs}ms`), {
        code: "ETIMEDOUT",
      }));
    }, o.timeoutMs);
    raw.once("error", failed);
    raw.once("connect", () => {
      tcpMs = performance.now() - started;
      stage = "tls";
      raw.off("error", failed);
      secure = tls.connect({
        socket: raw,
        ...(o.servername ? { servername: o.servername } : {}),
        ...(o.certPem && o.keyPem ? { cert: o.certPem, key: o.keyPem } : {}),
        ...(o.caPem ? { ca: o.caPem } : {}),
        ALPNProtocols: o.alpn ? [...o.alpn] : undefined,
        minVersion: "TLSv1.3",
        rejectUnauthorized: false,
        // Names are not checked, identities are (by the caller).
        checkServerIdentity: () => undefined,
      });
      secure.once("error", failed);
      secure.once("secureConnect", () => {
        const s = secure!;
        s.off("error", failed);
        s.on("error", () => {});
        const raw = s.getPeerCertificate()?.raw;
        let peer: x509.X509Certificate | undefined;
        try {
          peer = raw ? new x509.X509Certificate(new Uint8Array(raw).slice()) : undefined;
        } catch { /* unparsable: reported as no certificate */ }
        const authError = s.authorizationError;
        finish({
          ok: true,
          tcpMs,
          tlsMs: performance.now() - started - tcpMs,
          socket: s,
          authorized: o.caPem !== undefined && s.authorized,
          ...(authError ? { authorizationError: String(authError) } : {}),
          ...(peer ? { peer } : {}),
          ...(s.alpnProtocol ? { alpn: s.alpnProtocol } : {}),
        });
      });
    });
  });
}
