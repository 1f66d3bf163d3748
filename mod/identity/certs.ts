/**
 * X.509 for ambit's identities, on WebCrypto and @peculiar/x509: key pairs,
 * CA certificates, CSRs (made on the node, checked at the CA) and workload
 * leaf certificates with Istio's profile.
 *
 * @module
 */
import * as x509 from "@peculiar/x509";
import { parseSpiffeId, type SpiffeId, SpiffeIdError } from "./spiffe.ts";
import { toHex } from "../util/bytes.ts";

x509.cryptoProvider.set(crypto);

/** ECDSA P-256 with SHA-256: the only algorithm ambit issues and accepts. */
export const EC_ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** How far NotBefore is backdated, for clock skew between hosts (Istio: ~2 minutes). */
export const BACKDATE_MS = 2 * 60 * 1000;

/** Generates an ECDSA P-256 key pair (extractable, so node:tls can use the private key). */
export function generateKeyPair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(EC_ALG, true, ["sign", "verify"]) as Promise<CryptoKeyPair>;
}

/** PKCS#8 PEM of a private key. */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY");
}

/** Imports a PKCS#8 PEM ECDSA P-256 private key (and derives nothing else). */
export async function importPrivateKeyPem(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem).find(Boolean);
  if (!der) throw new TypeError("no PEM block in private key file");
  return await crypto.subtle.importKey("pkcs8", der, EC_ALG, true, ["sign"]);
}

/** Splits a PEM bundle into certificates; throws TypeError when one does not parse. */
export function parseCertificates(pem: string): x509.X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new x509.X509Certificate(b));
}

/** PEM of certificates, one after another. */
export function toPem(certs: readonly x509.X509Certificate[]): string {
  return certs.map((c) => c.toString("pem")).join("\n") + "\n";
}

/** A random positive 128-bit serial number in hex. */
export function randomSerial(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[0] &= 0x7f;
  b[0] |= 0x01; // never a leading zero byte
  return toHex(b);
}

/** Options for {@link createCaCertificate}. */
export interface CaCertOptions {
  readonly trustDomain: string;
  readonly keys: CryptoKeyPair;
  /** Common name, e.g. "ambit root CA". */
  readonly commonName: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Signer for an intermediate; absent for a self-signed root. */
  readonly issuer?: { readonly cert: x509.X509Certificate; readonly key: CryptoKey };
}

/** Creates a root (self-signed) or intermediate CA certificate. */
export async function createCaCertificate(o: CaCertOptions): Promise<x509.X509Certificate> {
  const name = `O=${o.trustDomain}, CN=${o.commonName}`;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(true, o.issuer ? 0 : 1, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    await x509.SubjectKeyIdentifierExtension.create(o.keys.publicKey),
    new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${o.trustDomain}` }]),
  ];
  if (!o.issuer) {
    return await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name,
      notBefore: o.notBefore,
      notAfter: o.notAfter,
      keys: o.keys,
      signingAlgorithm: EC_ALG,
      extensions,
    });
  }
  extensions.push(await x509.AuthorityKeyIdentifierExtension.create(o.issuer.cert, false));
  return await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: name,
    issuer: o.issuer.cert.subject,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    signingKey: o.issuer.key,
    publicKey: o.keys.publicKey,
    signingAlgorithm: EC_ALG,
    extensions,
  });
}

/** Creates a PEM CSR for `id`, signed by `keys` (made on the node; the key never leaves it). */
export async function createCsr(id: string, keys: CryptoKeyPair): Promise<string> {
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: EC_ALG,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: "url", value: id }], true)],
  });
  return csr.toString("pem");
}

/** Why a CSR was refused. Stable codes for metrics and clients. */
export type CsrProblem =
  | "malformed"
  | "bad_signature"
  | "bad_key"
  | "bad_san"
  | "ca_requested";

/** Raised when a CSR is refused; the message says what to fix. */
export class CsrError extends Error {
  override readonly name = "CsrError";
  constructor(readonly problem: CsrProblem, message: string) {
    super(message);
  }
}

/** A CSR that passed {@link inspectCsr}. */
export interface CheckedCsr {
  /** The single SPIFFE ID requested. */
  readonly id: string;
  readonly spiffe: SpiffeId;
  readonly publicKey: x509.PublicKey;
}

/** Largest CSR accepted (PEM characters). */
export const MAX_CSR_LENGTH = 8 * 1024;

/**
 * Checks a PEM CSR: it parses, its self-signature holds, its key is ECDSA
 * P-256, it asks for exactly one SAN, a SPIFFE URI, and no CA rights.
 */
export async function inspectCsr(pem: string): Promise<CheckedCsr> {
  if (pem.length > MAX_CSR_LENGTH) {
    throw new CsrError(
      "malformed",
      `CSR is ${pem.length} characters; at most ${MAX_CSR_LENGTH} are accepted`,
    );
  }
  let csr: x509.Pkcs10CertificateRequest;
  try {
    if (!/-----BEGIN (NEW )?CERTIFICATE REQUEST-----/.test(pem)) {
      throw new Error("no PEM CERTIFICATE REQUEST block");
    }
    csr = new x509.Pkcs10CertificateRequest(pem);
  } catch (e) {
    throw new CsrError("malformed", `CSR does not parse: ${(e as Error).message}`);
  }
  const alg = csr.publicKey.algorithm as EcKeyAlgorithm;
  if (alg.name !== "ECDSA" || alg.namedCurve !== "P-256") {
    throw new CsrError(
      "bad_key",
      `CSR key is ${alg.name}${
        alg.namedCurve ? ` ${alg.namedCurve}` : ""
      }; only ECDSA P-256 is accepted`,
    );
  }
  let valid = false;
  try {
    valid = await csr.verify();
  } catch { /* falls through */ }
  if (!valid) throw new CsrError("bad_signature", "CSR signature does not verify");
  const bc = csr.extensions.find((e): e is x509.BasicConstraintsExtension =>
    e instanceof x509.BasicConstraintsExtension
  );
  if (bc?.ca) {
    throw new CsrError(
      "ca_requested",
      "CSR asks for a CA certificate; workloads get leaf certificates only",
    );
  }
  for (const ext of csr.extensions) {
    if (
      ext instanceof x509.SubjectAlternativeNameExtension ||
      ext instanceof x509.BasicConstraintsExtension
    ) continue;
    if (ext instanceof x509.KeyUsagesExtension || ext instanceof x509.ExtendedKeyUsageExtension) {
      continue;
    }
    throw new CsrError("malformed", `CSR carries extension ${ext.type}, which ambit does not sign`);
  }
  const san = csr.extensions.find((e): e is x509.SubjectAlternativeNameExtension =>
    e instanceof x509.SubjectAlternativeNameExtension
  );
  const names = san?.names.items ?? [];
  if (names.length !== 1 || names[0].type !== "url") {
    const got = names.map((n) => `${n.type}:${n.value}`).join(", ") || "none";
    throw new CsrError(
      "bad_san",
      `CSR must ask for exactly one SAN, a SPIFFE URI; it asks for ${got}`,
    );
  }
  const id = names[0].value;
  let spiffe: SpiffeId;
  try {
    spiffe = parseSpiffeId(id);
  } catch (e) {
    if (e instanceof SpiffeIdError) throw new CsrError("bad_san", e.message);
    throw e;
  }
  return { id, spiffe, publicKey: csr.publicKey };
}

/** Options for {@link issueLeaf}. */
export interface LeafOptions {
  readonly id: string;
  readonly publicKey: x509.PublicKey | CryptoKey;
  readonly signer: { readonly cert: x509.X509Certificate; readonly key: CryptoKey };
  readonly now: Date;
  readonly ttlMs: number;
  /** Workloads get serverAuth+clientAuth; node credentials clientAuth only. */
  readonly usage?: "workload" | "node";
}

/**
 * Issues a leaf with Istio's workload profile: empty subject, the SPIFFE ID as
 * the only (critical) URI SAN, KU digitalSignature+keyEncipherment, EKU
 * serverAuth+clientAuth, NotBefore backdated {@link BACKDATE_MS}. The lifetime
 * never extends past the signer's.
 */
export async function issueLeaf(o: LeafOptions): Promise<x509.X509Certificate> {
  const notBefore = new Date(o.now.getTime() - BACKDATE_MS);
  const wanted = new Date(o.now.getTime() + o.ttlMs);
  const notAfter = wanted > o.signer.cert.notAfter ? o.signer.cert.notAfter : wanted;
  const publicKey = o.publicKey instanceof x509.PublicKey
    ? await o.publicKey.export()
    : o.publicKey;
  const eku = o.usage === "node"
    ? [x509.ExtendedKeyUsage.clientAuth]
    : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
  return await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: "",
    issuer: o.signer.cert.subject,
    notBefore,
    notAfter,
    signingKey: o.signer.key,
    publicKey,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: o.id }], true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(eku),
      new x509.BasicConstraintsExtension(false, undefined, true),
      await x509.AuthorityKeyIdentifierExtension.create(o.signer.cert, false),
    ],
  });
}

/** The single SPIFFE URI SAN of a certificate, or undefined. */
export function spiffeIdOf(cert: x509.X509Certificate): string | undefined {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = san?.names.items.filter((n) => n.type === "url") ?? [];
  return uris.length === 1 && uris[0].value.startsWith("spiffe://") ? uris[0].value : undefined;
}

export { x509 };
