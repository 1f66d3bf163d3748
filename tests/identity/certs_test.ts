/**
 * Certificates as other implementations see them: OpenSSL verifies the chain,
 * Python's `cryptography` (Debian's python3-cryptography) parses the profile.
 */
import { assertEquals, assertIncludes, assertOk, assertRejects } from "../_util/asserts.ts";
import { CaDirError, initCaDir, loadCaDir } from "../../mod/identity/ca_dir.ts";
import {
  createCsr,
  CsrError,
  exportPrivateKeyPem,
  generateKeyPair,
  inspectCsr,
  issueLeaf,
  toPem,
  x509,
} from "../../mod/identity/certs.ts";

async function run(cmd: string, args: string[], stdin?: string) {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const PY_INSPECT = `
import sys, json, datetime
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.hazmat.primitives.asymmetric import ec
leaf = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
print(json.dumps({
  "subject": leaf.subject.rfc4514_string(),
  "uris": san.value.get_values_for_type(x509.UniformResourceIdentifier),
  "dns": san.value.get_values_for_type(x509.DNSName),
  "sanCritical": san.critical,
  "digitalSignature": ku.value.digital_signature,
  "keyCertSign": ku.value.key_cert_sign,
  "eku": sorted(o._name for o in eku.value),
  "ca": bc.value.ca,
  "curve": leaf.public_key().curve.name,
  "sig": leaf.signature_hash_algorithm.name,
  "lifetimeSeconds": int((leaf.not_valid_after - leaf.not_valid_before).total_seconds()),
  "backdatedSeconds": int((datetime.datetime.utcnow() - leaf.not_valid_before).total_seconds()),
}))
`;

async function issueFor(dir: string, id: string, intermediate: boolean) {
  await initCaDir(dir, { trustDomain: "ambit.test", intermediate });
  const ca = await loadCaDir(dir);
  const keys = await generateKeyPair();
  const csr = await inspectCsr(await createCsr(id, keys));
  const leaf = await issueLeaf({
    id: csr.id,
    publicKey: csr.publicKey,
    signer: ca.signer,
    now: new Date(),
    ttlMs: 24 * 3600e3,
  });
  await Deno.writeTextFile(`${dir}/leaf.pem`, toPem([leaf, ...ca.chain]));
  await Deno.writeTextFile(`${dir}/leaf-key.pem`, await exportPrivateKeyPem(keys.privateKey));
  await Deno.writeTextFile(`${dir}/bundle.pem`, toPem([...ca.roots]));
  return { ca, leaf };
}

for (const intermediate of [false, true]) {
  Deno.test(`workload certificates verify with openssl and parse under Python's cryptography${intermediate ? " (intermediate CA)" : ""}`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      await issueFor(dir, "spiffe://ambit.test/ns/shop/sa/reviews", intermediate);
      const args = [
        "verify",
        "-x509_strict",
        "-purpose",
        "sslclient",
        "-CAfile",
        `${dir}/bundle.pem`,
      ];
      if (intermediate) args.push("-untrusted", `${dir}/cert-chain.pem`);
      const ossl = await run("openssl", [...args, `${dir}/leaf.pem`]);
      assertEquals(ossl.code, 0, ossl.stdout + ossl.stderr);
      assertIncludes(ossl.stdout, ": OK");
      const server = await run("openssl", [
        ...args.map((a) => (a === "sslclient" ? "sslserver" : a)),
        `${dir}/leaf.pem`,
      ]);
      assertEquals(server.code, 0, server.stderr);

      const py = await run("/usr/bin/python3", ["-c", PY_INSPECT, `${dir}/leaf.pem`]);
      assertEquals(py.code, 0, py.stderr);
      const info = JSON.parse(py.stdout);
      assertEquals(info.subject, "");
      assertEquals(info.uris, ["spiffe://ambit.test/ns/shop/sa/reviews"]);
      assertEquals(info.dns, []);
      assertEquals(info.sanCritical, true);
      assertEquals(info.digitalSignature, true);
      assertEquals(info.keyCertSign, false);
      assertEquals(info.eku, ["clientAuth", "serverAuth"]);
      assertEquals(info.ca, false);
      assertEquals(info.curve, "secp256r1");
      assertEquals(info.sig, "sha256");
      assertEquals(info.lifetimeSeconds, 24 * 3600 + 120, "24 h TTL plus the 2 min backdate");
      assertOk(
        info.backdatedSeconds >= 115 && info.backdatedSeconds < 200,
        `backdated ${info.backdatedSeconds}s`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("ca init writes keys 0600 and refuses to overwrite", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await initCaDir(dir, { trustDomain: "ambit.test" });
    for (const f of ["ca-key.pem", "root-key.pem"]) {
      assertEquals((await Deno.stat(`${dir}/${f}`)).mode! & 0o777, 0o600, f);
    }
    await assertRejects(
      () => initCaDir(dir, { trustDomain: "ambit.test" }),
      CaDirError,
      "refusing to overwrite",
    );
    const ca = await loadCaDir(dir);
    assertEquals(ca.trustDomain, "ambit.test");
    assertEquals(ca.chain.length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCaDir refuses a world-readable key and a key that does not match", async () => {
  const dir = await Deno.makeTempDir();
  const other = await Deno.makeTempDir();
  try {
    await initCaDir(dir, { trustDomain: "ambit.test" });
    await Deno.chmod(`${dir}/ca-key.pem`, 0o644);
    await assertRejects(() => loadCaDir(dir), CaDirError, "is readable by others (mode 644)");
    await Deno.chmod(`${dir}/ca-key.pem`, 0o600);
    await initCaDir(other, { trustDomain: "ambit.test" });
    await Deno.remove(`${dir}/ca-key.pem`);
    await Deno.copyFile(`${other}/ca-key.pem`, `${dir}/ca-key.pem`);
    await Deno.chmod(`${dir}/ca-key.pem`, 0o600);
    await assertRejects(() => loadCaDir(dir), CaDirError, "does not belong to");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(other, { recursive: true });
  }
});

/** CSRs made by OpenSSL, the way an attacker or a confused tool would. */
async function opensslCsr(args: string[]): Promise<string> {
  const dir = await Deno.makeTempDir();
  try {
    const key = `${dir}/k.pem`;
    await run("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
    const r = await run("openssl", ["req", "-new", "-key", key, "-subj", "/", ...args]);
    if (r.code !== 0) throw new Error(r.stderr);
    return r.stdout;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Flips a bit in the last byte of the DER (inside the signature). */
function tamper(pem: string): string {
  const der = new Uint8Array(x509.PemConverter.decode(pem)[0]);
  der[der.length - 2] ^= 0x01;
  return x509.PemConverter.encode(der.buffer, "CERTIFICATE REQUEST");
}

Deno.test("inspectCsr refuses bad CSRs with a clear reason", async () => {
  const keys = await generateKeyPair();
  const good = await createCsr("spiffe://ambit.test/ns/a/sa/b", keys);
  const cases: [string, string, string, string][] = [
    ["not PEM", "hello", "malformed", "CSR does not parse: no PEM CERTIFICATE REQUEST block"],
    [
      "garbage in PEM",
      "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
      "malformed",
      "CSR does not parse",
    ],
    ["oversized", good + "x".repeat(9000), "malformed", "at most 8192 are accepted"],
    ["tampered signature", tamper(good), "bad_signature", "CSR signature does not verify"],
    [
      "extra SAN",
      await opensslCsr([
        "-addext",
        "subjectAltName=URI:spiffe://ambit.test/ns/a/sa/b,DNS:evil.example",
      ]),
      "bad_san",
      "exactly one SAN",
    ],
    [
      "two SPIFFE IDs",
      await opensslCsr([
        "-addext",
        "subjectAltName=URI:spiffe://ambit.test/ns/a/sa/b,URI:spiffe://ambit.test/ns/x/sa/y",
      ]),
      "bad_san",
      "exactly one SAN",
    ],
    ["no SAN", await opensslCsr([]), "bad_san", "it asks for none"],
    [
      "CA bit",
      await opensslCsr([
        "-addext",
        "subjectAltName=URI:spiffe://ambit.test/ns/a/sa/b",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
      ]),
      "ca_requested",
      "asks for a CA certificate",
    ],
    [
      "not a SPIFFE URI",
      await opensslCsr(["-addext", "subjectAltName=URI:https://example.com/"]),
      "bad_san",
      "is not a SPIFFE ID",
    ],
  ];
  for (const [name, pem, problem, message] of cases) {
    const e = await assertRejects(() => inspectCsr(pem), CsrError, message);
    assertEquals((e as CsrError).problem, problem, name);
  }
  const ok = await inspectCsr(good);
  assertEquals(ok.spiffe, {
    kind: "workload",
    trustDomain: "ambit.test",
    namespace: "a",
    serviceAccount: "b",
  });
});

Deno.test("inspectCsr refuses an RSA key", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await run("openssl", ["genrsa", "-out", `${dir}/k.pem`, "2048"]);
    const r = await run("openssl", [
      "req",
      "-new",
      "-key",
      `${dir}/k.pem`,
      "-subj",
      "/",
      "-addext",
      "subjectAltName=URI:spiffe://ambit.test/ns/a/sa/b",
    ]);
    await assertRejects(() => inspectCsr(r.stdout), CsrError, "only ECDSA P-256 is accepted");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a leaf never outlives its signer", async () => {
  const keys = await generateKeyPair();
  const caKeys = await generateKeyPair();
  const { createCaCertificate } = await import("../../mod/identity/certs.ts");
  const now = new Date();
  const root = await createCaCertificate({
    trustDomain: "t",
    keys: caKeys,
    commonName: "short",
    notBefore: now,
    notAfter: new Date(now.getTime() + 3600e3),
  });
  const leaf = await issueLeaf({
    id: "spiffe://t/ns/a/sa/b",
    publicKey: keys.publicKey,
    signer: { cert: root, key: caKeys.privateKey },
    now,
    ttlMs: 24 * 3600e3,
  });
  assertEquals(leaf.notAfter.getTime(), root.notAfter.getTime());
  assertOk(leaf instanceof x509.X509Certificate);
});
