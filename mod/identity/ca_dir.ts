/**
 * The CA directory, in Istio's plug-in CA layout so existing tooling and
 * habits carry over:
 *
 * | file | content |
 * |---|---|
 * | `root-cert.pem` | trust bundle: the root (and, during a rotation, older/newer roots) |
 * | `ca-cert.pem` | the signing certificate (the root itself, or an intermediate) |
 * | `ca-key.pem` | the signing key, mode 0600 |
 * | `cert-chain.pem` | the signing certificate's chain up to (excluding) the root; empty for a root |
 * | `root-key.pem` | the root key, mode 0600, only when `ca init` made it here |
 *
 * @module
 */
import {
  createCaCertificate,
  exportPrivateKeyPem,
  generateKeyPair,
  importPrivateKeyPem,
  parseCertificates,
  toPem,
  x509,
} from "./certs.ts";

/** A loaded CA: what it signs with and what it hands out as trust. */
export interface CaMaterial {
  readonly trustDomain: string;
  readonly signer: { readonly cert: x509.X509Certificate; readonly key: CryptoKey };
  /** Certificates between the signer and the root (signer first), excluding the root. */
  readonly chain: readonly x509.X509Certificate[];
  /** Trust bundle: every root nodes should accept. */
  readonly roots: readonly x509.X509Certificate[];
}

/** Raised for CA directory problems, with what to do. */
export class CaDirError extends Error {
  override readonly name = "CaDirError";
  readonly code = "ECADIR";
}

/** Options for {@link initCaDir}. */
export interface InitOptions {
  readonly trustDomain: string;
  /** Root lifetime (default 10 years). */
  readonly rootTtlMs?: number;
  /** Also create an intermediate that signs, keeping the root key offline-able. */
  readonly intermediate?: boolean;
  /** Intermediate lifetime (default 1 year). */
  readonly intermediateTtlMs?: number;
  readonly now?: Date;
}

const YEAR = 365 * 24 * 3600 * 1000;

/** Creates a new CA in `dir`; refuses when any CA file exists there already. */
export async function initCaDir(dir: string, o: InitOptions): Promise<CaMaterial> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  for (
    const f of ["root-cert.pem", "root-key.pem", "ca-cert.pem", "ca-key.pem", "cert-chain.pem"]
  ) {
    if (await exists(`${dir}/${f}`)) {
      throw new CaDirError(
        `${dir}/${f} already exists; refusing to overwrite a CA (choose another --out)`,
      );
    }
  }
  const now = o.now ?? new Date();
  const rootKeys = await generateKeyPair();
  const root = await createCaCertificate({
    trustDomain: o.trustDomain,
    keys: rootKeys,
    commonName: "ambit root CA",
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + (o.rootTtlMs ?? 10 * YEAR)),
  });
  let signer = { cert: root, key: rootKeys.privateKey };
  const chain: x509.X509Certificate[] = [];
  if (o.intermediate) {
    const keys = await generateKeyPair();
    const cert = await createCaCertificate({
      trustDomain: o.trustDomain,
      keys,
      commonName: "ambit intermediate CA",
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + (o.intermediateTtlMs ?? YEAR)),
      issuer: { cert: root, key: rootKeys.privateKey },
    });
    signer = { cert, key: keys.privateKey };
    chain.push(cert);
  }
  await writeSecret(`${dir}/root-key.pem`, await exportPrivateKeyPem(rootKeys.privateKey));
  await writeSecret(`${dir}/ca-key.pem`, await exportPrivateKeyPem(signer.key));
  await Deno.writeTextFile(`${dir}/root-cert.pem`, toPem([root]), { createNew: true });
  await Deno.writeTextFile(`${dir}/ca-cert.pem`, toPem([signer.cert]), { createNew: true });
  await Deno.writeTextFile(`${dir}/cert-chain.pem`, chain.length ? toPem(chain) : "", {
    createNew: true,
  });
  return { trustDomain: o.trustDomain, signer, chain, roots: [root] };
}

/** Loads the CA in `dir`, checking that the pieces fit together. */
export async function loadCaDir(dir: string): Promise<CaMaterial> {
  const read = async (f: string) => {
    try {
      return await Deno.readTextFile(`${dir}/${f}`);
    } catch (e) {
      throw new CaDirError(
        `cannot read ${dir}/${f}: ${
          (e as Error).message
        } (create a CA with: ambit ca init --out ${dir})`,
        { cause: e },
      );
    }
  };
  const certsOf = (f: string, text: string) => {
    try {
      return parseCertificates(text);
    } catch (e) {
      throw new CaDirError(
        `${dir}/${f} holds a certificate that does not parse: ${(e as Error).message}`,
      );
    }
  };
  const roots = certsOf("root-cert.pem", await read("root-cert.pem"));
  const [signerCert] = certsOf("ca-cert.pem", await read("ca-cert.pem"));
  const chainText = await read("cert-chain.pem").catch(() => "");
  const chain = certsOf("cert-chain.pem", chainText).filter((c) => !roots.some((r) => r.equal(c)));
  if (roots.length === 0) throw new CaDirError(`${dir}/root-cert.pem holds no certificate`);
  if (!signerCert) throw new CaDirError(`${dir}/ca-cert.pem holds no certificate`);
  const keyPem = await read("ca-key.pem");
  const mode = (await Deno.stat(`${dir}/ca-key.pem`)).mode;
  if (mode !== null && (mode & 0o077) !== 0) {
    throw new CaDirError(
      `${dir}/ca-key.pem is readable by others (mode ${
        (mode & 0o777).toString(8)
      }); run: chmod 600 ${dir}/ca-key.pem`,
    );
  }
  let key: CryptoKey;
  try {
    key = await importPrivateKeyPem(keyPem);
  } catch (e) {
    throw new CaDirError(
      `${dir}/ca-key.pem is not an ECDSA P-256 PKCS#8 key: ${(e as Error).message}`,
    );
  }
  // The key must belong to the certificate: sign and verify a probe.
  const probe = new TextEncoder().encode("ambit-ca-probe");
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key, probe);
  const pub = await signerCert.publicKey.export({ name: "ECDSA", namedCurve: "P-256" }, ["verify"]);
  if (!await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, pub, sig, probe)) {
    throw new CaDirError(`${dir}/ca-key.pem does not belong to ${dir}/ca-cert.pem`);
  }
  const td = /O=([^,]+)/.exec(signerCert.subject)?.[1];
  const sanTd = signerCert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items
    .find((n) => n.type === "url" && n.value.startsWith("spiffe://"))?.value.slice(
      "spiffe://".length,
    );
  const trustDomain = sanTd ?? td;
  if (!trustDomain) {
    throw new CaDirError(`${dir}/ca-cert.pem names no trust domain (no spiffe:// SAN or O=)`);
  }
  return { trustDomain, signer: { cert: signerCert, key }, chain, roots };
}

async function writeSecret(path: string, text: string): Promise<void> {
  await Deno.writeTextFile(path, text, { mode: 0o600, createNew: true });
  await Deno.chmod(path, 0o600);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
