/**
 * The client side of an HBONE connection's TLS: mutual TLS 1.3 with ALPN
 * h2 to the next hop, then the checks an HBONE client owes: a chain to the
 * trust bundle, h2 negotiated, and the server's SPIFFE ID among the
 * expected identities. HTTP/2 runs on the socket afterwards (pool.ts).
 *
 * @module
 */
import tls from "node:tls";
import { spiffeIdOf, x509 } from "../identity/certs.ts";
import { secureContextOptions, type TlsIdentity } from "../identity/tls.ts";
import { formatAuthority, type HostPort } from "./authority.ts";
import { TunnelError } from "./errors.ts";
import { sniForIdentity } from "./sni.ts";

/** What {@link dialHbone} connects to, and as whom. */
export interface DialOptions {
  /** The client certificate. */
  readonly identity: TlsIdentity;
  /** Trust bundle, PEM. */
  readonly rootsPem: string;
  /** The peer's HBONE address. */
  readonly nextHop: HostPort;
  /** Server identities accepted; the first names the SNI sent. */
  readonly expected: readonly string[];
  /** TCP connect plus TLS handshake deadline. */
  readonly timeoutMs: number;
}

/** A verified HBONE TLS connection. */
export interface DialedHbone {
  readonly socket: tls.TLSSocket;
  /** The server's SPIFFE ID, one of the expected ones. */
  readonly peerIdentity: string;
}

/**
 * Connects and verifies. Rejects with a {@link TunnelError}:
 * `connect_failed` (refused, unreachable, timeout), `tls_failure`
 * (handshake, untrusted chain, no h2) or `identity_mismatch`; the socket is
 * destroyed then.
 */
export async function dialHbone(o: DialOptions): Promise<DialedHbone> {
  const socket = tls.connect({
    ...secureContextOptions(o.identity, o.rootsPem),
    host: o.nextHop.ip,
    port: o.nextHop.port,
    servername: sniForIdentity(o.expected[0]),
    ALPNProtocols: ["h2"],
    rejectUnauthorized: false,
    // Names are not checked, identities are (verifyServer).
    checkServerIdentity: () => undefined,
  });
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 30_000);
  const hop = formatAuthority(o.nextHop);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new TunnelError(
            "connect_failed",
            `no TLS handshake with ${hop} within ${o.timeoutMs} ms`,
          ),
        );
      }, o.timeoutMs);
      const done = () => {
        clearTimeout(timer);
        socket.off("error", onError);
        socket.off("close", onClose);
      };
      const onError = (err: Error & { code?: string }) => {
        done();
        const tlsErr = /SSL|TLS|alert|handshake/i.test(`${err.code} ${err.message}`);
        reject(
          new TunnelError(
            tlsErr ? "tls_failure" : "connect_failed",
            `${tlsErr ? "TLS handshake with" : "cannot connect to"} ${hop}: ${err.message}`,
          ),
        );
      };
      const onClose = () => {
        done();
        reject(new TunnelError("tls_failure", `${hop} closed the connection during TLS`));
      };
      socket.once("secureConnect", () => {
        done();
        resolve();
      });
      socket.once("error", onError);
      socket.once("close", onClose);
    });
    const peerIdentity = verifyServer(socket, o.expected, hop);
    // Errors from here on are the HTTP/2 layer's to handle; never unhandled.
    socket.on("error", () => {});
    return { socket, peerIdentity };
  } catch (e) {
    socket.destroy();
    throw e;
  }
}

/** The server's SPIFFE ID after checking chain, ALPN and expected identity. */
export function verifyServer(
  socket: tls.TLSSocket,
  expected: readonly string[],
  hop: string,
): string {
  const cert = socket.getPeerCertificate();
  let id: string | undefined;
  try {
    id = cert?.raw
      ? spiffeIdOf(new x509.X509Certificate(new Uint8Array(cert.raw).slice()))
      : undefined;
  } catch { /* stays undefined */ }
  if (!socket.authorized) {
    throw new TunnelError(
      "tls_failure",
      `server ${hop} (${id ?? "no SPIFFE ID"}) is not trusted: ${socket.authorizationError}`,
    );
  }
  if (socket.alpnProtocol !== "h2") {
    throw new TunnelError("tls_failure", `server ${hop} did not negotiate h2`);
  }
  if (id === undefined || !expected.includes(id)) {
    throw new TunnelError(
      "identity_mismatch",
      `server ${hop} is ${id ?? "without a SPIFFE ID"}, expected ${expected.join(" or ")}`,
    );
  }
  return id;
}
