/**
 * Does a certificate chain up to one of a bundle's roots? Signatures only
 * (dates are judged separately, so an expired link is reported as expired,
 * not as untrusted).
 *
 * @module
 */
import { x509 } from "../identity/certs.ts";

/** The outcome of {@link verifyChain}. */
export type ChainOutcome =
  | {
    readonly ok: true;
    /** Leaf, intermediates, root. */
    readonly path: readonly x509.X509Certificate[];
  }
  | { readonly ok: false; readonly problem: string };

/** Longest chain followed. */
const MAX_DEPTH = 8;

/**
 * Follows `leaf` through `intermediates` (any order) to a root in `roots`,
 * checking each signature.
 */
export async function verifyChain(
  leaf: x509.X509Certificate,
  intermediates: readonly x509.X509Certificate[],
  roots: readonly x509.X509Certificate[],
): Promise<ChainOutcome> {
  if (roots.length === 0) return { ok: false, problem: "the trust bundle holds no certificate" };
  const path = [leaf];
  let current = leaf;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    for (const root of roots) {
      if (await signedBy(current, root)) return { ok: true, path: [...path, root] };
    }
    let next: x509.X509Certificate | undefined;
    for (const c of intermediates) {
      if (path.some((p) => p.equal(c))) continue;
      if (await signedBy(current, c)) {
        next = c;
        break;
      }
    }
    if (!next) {
      const sameName = [...roots, ...intermediates].some((c) => c.subject === current.issuer);
      if (sameName) {
        return {
          ok: false,
          problem:
            `${depth === 0 ? "it" : `its issuer "${current.subject}"`} names "${current.issuer}" ` +
            "as issuer, and the trust bundle has a certificate of that name, but with another key: " +
            "it comes from another CA",
        };
      }
      return {
        ok: false,
        problem: `${depth === 0 ? "it is" : `its issuer "${current.subject}" is`} not signed by ` +
          `a root of the trust bundle (issuer "${current.issuer}"; bundle: ${
            roots.map((r) => `"${r.subject}"`).join(", ")
          })`,
      };
    }
    path.push(next);
    current = next;
  }
  return { ok: false, problem: `no root found within ${MAX_DEPTH} certificates` };
}

async function signedBy(
  cert: x509.X509Certificate,
  issuer: x509.X509Certificate,
): Promise<boolean> {
  if (cert.issuer !== issuer.subject) return false;
  try {
    return await cert.verify({ publicKey: issuer, signatureOnly: true });
  } catch {
    return false;
  }
}
