/**
 * TLS for the data plane (HBONE) and its identity checks. OpenSSL (via
 * node:tls) verifies the chain to the trust bundle and the validity period;
 * {@link peerIdentity} then requires a single SPIFFE workload ID in the
 * mesh's trust domain, and clients require the server's ID to equal an
 * expected identity. Names are never checked, identities are.
 *
 * @module
 */
import type { PeerCertificate, SecureContextOptions, TLSSocket } from "node:tls";
import { spiffeIdOf, x509 } from "./certs.ts";
import { parseSpiffeId } from "./spiffe.ts";

/** TLS 1.3 AES-GCM suites only, as Istio's HBONE. */
export const HBONE_CIPHERSUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";

/** Key material for one end of a TLS connection. */
export interface TlsIdentity {
  /** Leaf then chain, PEM. */
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * Server options: TLS 1.3 only, client certificate requested and verified
 * against `rootsPem`. The handshake itself does not abort on a bad client
 * certificate so the reason can be logged; every accepted socket must pass
 * {@link peerIdentity} before anything is read from it.
 */
export function serverTlsOptions(id: TlsIdentity, rootsPem: string, alpn: string[] = ["h2"]) {
  return {
    ...secureContextOptions(id, rootsPem),
    requestCert: true,
    rejectUnauthorized: false,
    ALPNProtocols: alpn,
  };
}

/** Options for a secure context (also for SNI-less per-identity contexts). */
export function secureContextOptions(id: TlsIdentity, rootsPem: string): SecureContextOptions {
  return {
    key: id.keyPem,
    cert: id.certPem,
    ca: rootsPem,
    minVersion: "TLSv1.3",
    maxVersion: "TLSv1.3",
    ciphers: HBONE_CIPHERSUITES,
  };
}

/** Raised when a peer's certificate is not an acceptable identity. */
export class PeerIdentityError extends Error {
  override readonly name = "PeerIdentityError";
  readonly code = "EPEERIDENTITY";
}

/**
 * The verified peer's SPIFFE ID. Requires that OpenSSL authorized the chain,
 * that the leaf carries exactly one SPIFFE URI, a workload ID, in `trustDomain`.
 */
export function peerIdentity(socket: TLSSocket, trustDomain: string, now = new Date()): string {
  const cert = socket.getPeerCertificate();
  if (!socket.authorized) {
    throw new PeerIdentityError(
      `peer certificate not trusted: ${explainUntrusted(cert, now, socket.authorizationError)}`,
    );
  }
  return checkIdentity(cert, trustDomain);
}

/**
 * Why a chain failed. The TLS layer's own code is coarse, so the usual
 * causes are told apart here from the leaf itself.
 */
function explainUntrusted(
  cert: PeerCertificate | undefined,
  now: Date,
  code?: Error | string,
): string {
  if (!cert?.raw) return "no client certificate";
  try {
    const leaf = new x509.X509Certificate(new Uint8Array(cert.raw).slice());
    const id = spiffeIdOf(leaf) ?? "no SPIFFE ID";
    if (now > leaf.notAfter) {
      return `certificate has expired (${id}, notAfter ${leaf.notAfter.toISOString()})`;
    }
    if (now < leaf.notBefore) {
      return `certificate is not yet valid (${id}, notBefore ${leaf.notBefore.toISOString()})`;
    }
    return `not signed by a trusted root (${id}, issuer "${leaf.issuer}", ${
      String(code ?? "unknown")
    })`;
  } catch {
    return `unparsable certificate (${String(code ?? "unknown")})`;
  }
}

/** Checks a peer certificate's identity (see {@link peerIdentity}). */
export function checkIdentity(cert: PeerCertificate, trustDomain: string): string {
  if (!cert?.raw) throw new PeerIdentityError("peer presented no certificate");
  const id = spiffeIdOf(new x509.X509Certificate(new Uint8Array(cert.raw).slice()));
  if (!id) throw new PeerIdentityError("peer certificate has no single SPIFFE URI SAN");
  const parsed = parseSpiffeId(id);
  if (parsed.trustDomain !== trustDomain) {
    throw new PeerIdentityError(
      `peer ${id} is from trust domain "${parsed.trustDomain}", not "${trustDomain}"`,
    );
  }
  if (parsed.kind !== "workload") {
    throw new PeerIdentityError(`peer ${id} is not a workload identity`);
  }
  return id;
}

/**
 * A `checkServerIdentity` for clients: the server's SPIFFE ID must equal one
 * of `expected` (the destination workload's, or the waypoint's).
 */
export function expectIdentity(expected: readonly string[]) {
  return (_host: string, cert: PeerCertificate): Error | undefined => {
    let id: string | undefined;
    try {
      id = cert?.raw
        ? spiffeIdOf(new x509.X509Certificate(new Uint8Array(cert.raw).slice()))
        : undefined;
    } catch { /* unparsable: id stays undefined */ }
    if (id !== undefined && expected.includes(id)) return undefined;
    return new PeerIdentityError(
      `server identity ${id ?? "none"} is not the expected ${expected.join(" or ")}`,
    );
  };
}
