/**
 * The certificates check: the node credential (`--credential`) parses, its
 * key matches, it chains to its bundle, it is this node's identity in the
 * mesh's trust domain, and every certificate on its path is valid now and
 * not close to expiry; or, in a lab (`--ca-dir`), the CA's own certificates.
 *
 * @module
 */
import { CaDirError, loadCaDir } from "../identity/ca_dir.ts";
import { type Credential, loadCredentialDir } from "../identity/ca_client.ts";
import { importPrivateKeyPem, parseCertificates, spiffeIdOf, x509 } from "../identity/certs.ts";
import { formatDate } from "./_format.ts";
import { verifyChain } from "./chain.ts";
import { credentialIdentityVerdict } from "./identity.ts";
import type { CheckItem, CheckResult } from "./result.ts";
import { worstStatus } from "./result.ts";
import { evaluateValidity } from "./validity.ts";

/** What the certificate checks compare against. */
export interface CertificateCheckOptions {
  readonly trustDomain: string;
  /** The Node whose credential it must be (a waypoint's: the node its Gateway names). */
  readonly node: string;
  readonly now: Date;
  /** Warn when a certificate expires within this long. */
  readonly warnWithinMs: number;
}

/** What later checks (CA, peers) use: the credential and the roots it trusts. */
export interface TrustMaterial {
  /** The client credential; absent with `--ca-dir`. */
  readonly credential?: Credential;
  /** The trust bundle, PEM. */
  readonly bundlePem: string;
}

/** The certificates check's result, and the material when it could be read. */
export interface CertificateCheck {
  readonly result: CheckResult;
  readonly material?: TrustMaterial;
}

const NAME = "certificates";

/** Checks a node credential directory (cert.pem, key.pem, bundle.pem). */
export async function checkCredential(
  dir: string,
  o: CertificateCheckOptions,
): Promise<CertificateCheck> {
  const issue = `ambit ca issue-node ${o.node} --ca <CA dir> --out <new dir>`;
  let credential: Credential;
  try {
    credential = await loadCredentialDir(dir);
  } catch (e) {
    return fail((e as Error).message, `create the credential with: ${issue}`);
  }
  let certs: x509.X509Certificate[];
  let roots: x509.X509Certificate[];
  try {
    certs = parseCertificates(credential.certPem);
    roots = parseCertificates(credential.bundlePem);
  } catch (e) {
    return fail(`${dir}: a certificate does not parse: ${(e as Error).message}`, issue);
  }
  if (certs.length === 0) return fail(`${dir}/cert.pem holds no certificate`, issue);
  if (roots.length === 0) return fail(`${dir}/bundle.pem holds no certificate`, issue);
  const [leaf, ...chain] = certs;
  const items: CheckItem[] = [];
  const id = spiffeIdOf(leaf);
  const who = credentialIdentityVerdict(id, o.trustDomain, o.node);
  items.push({ subject: "identity", ...who });
  items.push(await keyItem(dir, credential.keyPem, leaf));
  const path = await verifyChain(leaf, chain, roots);
  items.push(
    path.ok
      ? {
        status: "ok",
        subject: "chain",
        detail: `cert.pem chains to a root of bundle.pem (${path.path.length} certificates)`,
      }
      : {
        status: "fail",
        subject: "chain",
        detail: `cert.pem: ${path.problem}`,
        hint: `bundle.pem must hold the root of the CA that issued cert.pem: ${issue}`,
      },
  );
  const renewLeaf = `renew the credential: ${issue}, then replace ${dir} with it`;
  items.push(dateItem("cert.pem", leaf, o, renewLeaf));
  const onPath = path.ok ? path.path.slice(1) : [...chain, ...roots];
  for (const c of onPath) {
    const role = roots.some((r) => r.equal(c)) ? "root" : "intermediate";
    items.push(
      dateItem(`${role} "${c.subject}"`, c, o, `rotate the CA's ${role} and re-issue credentials`),
    );
  }
  const material = { credential, bundlePem: credential.bundlePem };
  const status = worstStatus(items.map((i) => i.status));
  if (status === "ok") {
    const validity = items.find((i) => i.subject === "cert.pem")!.detail;
    return {
      result: {
        name: NAME,
        status,
        detail: `node credential ${id}, ${validity}`,
        items,
        data: { identity: id, notAfter: formatDate(leaf.notAfter) },
      },
      material,
    };
  }
  return {
    result: summarize(items, { identity: id, notAfter: formatDate(leaf.notAfter) }),
    material,
  };
}

/** Checks a lab CA directory's own certificates (signer, chain, roots). */
export async function checkCaDir(
  dir: string,
  o: CertificateCheckOptions,
): Promise<CertificateCheck> {
  let ca;
  try {
    ca = await loadCaDir(dir);
  } catch (e) {
    if (e instanceof CaDirError) {
      return fail(e.message, `create a CA with: ambit ca init --out ${dir}`);
    }
    throw e;
  }
  if (ca.trustDomain !== o.trustDomain) {
    return fail(
      `--ca-dir ${dir} is for trust domain "${ca.trustDomain}" but the mesh is "${o.trustDomain}"`,
      "give the CA directory of this mesh, or fix Mesh spec.trustDomain",
    );
  }
  const items: CheckItem[] = [];
  const seen: x509.X509Certificate[] = [];
  for (const c of [ca.signer.cert, ...ca.chain, ...ca.roots]) {
    if (seen.some((s) => s.equal(c))) continue;
    seen.push(c);
    const role = ca.roots.some((r) => r.equal(c)) ? "root" : "intermediate";
    items.push(dateItem(`${role} "${c.subject}"`, c, o, `rotate the CA's ${role}`));
  }
  const bundlePem = ca.roots.map((r) => r.toString("pem")).join("\n") + "\n";
  const status = worstStatus(items.map((i) => i.status));
  const result: CheckResult = status === "ok"
    ? {
      name: NAME,
      status,
      detail: `lab CA ${dir} (trust domain ${ca.trustDomain}): ${
        items.map((i) => `${i.subject.split(" ")[0]} ${i.detail}`).join("; ")
      }`,
      items,
    }
    : summarize(items);
  return { result, material: { bundlePem } };
}

/** Neither --credential nor --ca-dir. */
export function noCertificateSource(node: string): CertificateCheck {
  return fail(
    "no certificate source given",
    `give --credential DIR (a node credential: ambit ca issue-node ${node} --ca <CA dir> --out DIR) ` +
      "or, in a lab, --ca-dir DIR",
  );
}

function fail(detail: string, hint: string): CertificateCheck {
  return { result: { name: NAME, status: "fail", detail, hint } };
}

function summarize(items: readonly CheckItem[], data?: Record<string, unknown>): CheckResult {
  const status = worstStatus(items.map((i) => i.status));
  const worst = items.find((i) => i.status === status)!;
  const more = items.filter((i) => i.status === "fail" || i.status === "warn").length - 1;
  return {
    name: NAME,
    status,
    detail: `${worst.subject}: ${worst.detail}${more > 0 ? ` (and ${more} more)` : ""}`,
    hint: worst.hint,
    items,
    ...(data ? { data } : {}),
  };
}

function dateItem(
  subject: string,
  cert: x509.X509Certificate,
  o: CertificateCheckOptions,
  renewHint: string,
): CheckItem {
  const v = evaluateValidity(cert, { now: o.now, warnWithinMs: o.warnWithinMs, renewHint });
  return { status: v.status, subject, detail: v.detail, ...(v.hint ? { hint: v.hint } : {}) };
}

async function keyItem(
  dir: string,
  keyPem: string,
  leaf: x509.X509Certificate,
): Promise<CheckItem> {
  const hint = "cert.pem and key.pem must come from the same 'ambit ca issue-node' run";
  let key: CryptoKey;
  try {
    key = await importPrivateKeyPem(keyPem);
  } catch (e) {
    return {
      status: "fail",
      subject: "key.pem",
      detail: `${dir}/key.pem is not an ECDSA P-256 PKCS#8 key: ${(e as Error).message}`,
      hint,
    };
  }
  const probe = new TextEncoder().encode("ambit-check-probe");
  const alg = { name: "ECDSA", hash: "SHA-256" };
  const sig = await crypto.subtle.sign(alg, key, probe);
  let matches = false;
  try {
    const pub = await leaf.publicKey.export({ name: "ECDSA", namedCurve: "P-256" }, ["verify"]);
    matches = await crypto.subtle.verify(alg, pub, sig, probe);
  } catch { /* not a P-256 key: no match */ }
  return matches ? { status: "ok", subject: "key.pem", detail: "matches cert.pem" } : {
    status: "fail",
    subject: "key.pem",
    detail: `${dir}/key.pem does not belong to cert.pem`,
    hint,
  };
}
