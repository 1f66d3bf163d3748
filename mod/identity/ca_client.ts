/**
 * Where a node gets workload certificates: the CA service over mutual TLS
 * ({@link CaClient}, authenticated with the node credential), or, in a lab,
 * a CA directory on the node itself ({@link LocalCa}).
 *
 * @module
 */
import https from "node:https";
import type { PeerCertificate } from "node:tls";
import type { CaMaterial } from "./ca_dir.ts";
import { inspectCsr, issueLeaf, parseCertificates, spiffeIdOf, toPem, x509 } from "./certs.ts";
import { caId } from "./spiffe.ts";

/** A signed certificate: leaf first, then the chain; and the trust bundle. */
export interface Signed {
  readonly chain: readonly x509.X509Certificate[];
  readonly roots: readonly x509.X509Certificate[];
}

/** Something that turns a CSR into a certificate. */
export interface CertificateSource {
  sign(csrPem: string): Promise<Signed>;
}

/** The CA refused the request (it answered); retrying the same request will not help soon. */
export class CaRefusedError extends Error {
  override readonly name = "CaRefusedError";
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** The CA could not be reached or answered nonsense; worth retrying. */
export class CaUnavailableError extends Error {
  override readonly name = "CaUnavailableError";
  readonly code = "ECAUNAVAILABLE";
}

/** A node credential on disk: `cert.pem` (leaf, chain), `key.pem`, `bundle.pem`. */
export interface Credential {
  readonly certPem: string;
  readonly keyPem: string;
  readonly bundlePem: string;
}

/** Reads a credential directory as written by `ambit ca issue` / `ca issue-node`. */
export async function loadCredentialDir(dir: string): Promise<Credential> {
  const read = async (f: string) => {
    try {
      return await Deno.readTextFile(`${dir}/${f}`);
    } catch (e) {
      throw new Error(
        `cannot read ${dir}/${f}: ${(e as Error).message} (create it with: ambit ca issue-node)`,
        {
          cause: e,
        },
      );
    }
  };
  return {
    certPem: await read("cert.pem"),
    keyPem: await read("key.pem"),
    bundlePem: await read("bundle.pem"),
  };
}

/** Options for {@link CaClient}. */
export interface CaClientOptions {
  /** `host:port` of the CA service. */
  readonly address: string;
  readonly credential: Credential;
  readonly trustDomain: string;
  /** Per-request timeout (default 10 s). */
  readonly timeoutMs?: number;
}

/** Talks to `ambit ca serve`. */
export class CaClient implements CertificateSource {
  readonly #agent: https.Agent;
  readonly #host: string;
  readonly #port: number;

  constructor(readonly options: CaClientOptions) {
    const i = options.address.lastIndexOf(":");
    this.#host = options.address.slice(0, i).replace(/^\[|\]$/g, "");
    this.#port = Number(options.address.slice(i + 1));
    const expected = caId(options.trustDomain);
    this.#agent = new https.Agent({
      keepAlive: true,
      maxSockets: 4,
      key: options.credential.keyPem,
      cert: options.credential.certPem,
      ca: options.credential.bundlePem,
      minVersion: "TLSv1.3",
      // Names are not checked, identities are: the server must be the mesh's CA.
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        const id = cert.raw
          ? spiffeIdOf(new x509.X509Certificate(new Uint8Array(cert.raw).slice()))
          : undefined;
        return id === expected
          ? undefined
          : new Error(`CA server identity is ${id ?? "none"}, expected ${expected}`);
      },
    });
  }

  /** Sends a CSR; returns the chain and trust bundle. */
  async sign(csrPem: string): Promise<Signed> {
    const { status, body } = await this.#request(
      "POST",
      "/v1/certificates",
      JSON.stringify({ csr: csrPem }),
    );
    const parsed = this.#parse(status, body) as { certChain?: string; trustBundle?: string };
    if (typeof parsed.certChain !== "string" || typeof parsed.trustBundle !== "string") {
      throw new CaUnavailableError("CA answered 200 without certChain/trustBundle");
    }
    return {
      chain: parseCertificates(parsed.certChain),
      roots: parseCertificates(parsed.trustBundle),
    };
  }

  /** Fetches the current trust bundle. */
  async trustBundle(): Promise<x509.X509Certificate[]> {
    const { status, body } = await this.#request("GET", "/v1/trust-bundle");
    const parsed = this.#parse(status, body) as { trustBundle?: string };
    return parseCertificates(parsed.trustBundle ?? "");
  }

  #parse(status: number, body: string): Record<string, unknown> {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(body);
    } catch {
      throw new CaUnavailableError(`CA answered ${status} with a body that is not JSON`);
    }
    if (status !== 200) {
      const err = (json.error ?? {}) as { code?: string; message?: string };
      throw new CaRefusedError(
        status,
        err.code ?? "unknown",
        `CA refused (${status} ${err.code}): ${err.message}`,
      );
    }
    return json;
  }

  #request(method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = https.request({
        host: this.#host,
        port: this.#port,
        method,
        path,
        agent: this.#agent,
        servername: "",
        headers: body === undefined
          ? {}
          : { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        timeout: this.options.timeoutMs ?? 10_000,
      }, (res) => {
        const chunks: Uint8Array[] = [];
        res.on("data", (c) => chunks.push(c));
        res.on(
          "end",
          () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on(
          "error",
          (e) => reject(new CaUnavailableError(`CA ${this.options.address}: ${e.message}`)),
        );
      });
      req.on("timeout", () => req.destroy(new Error("timed out")));
      req.on(
        "error",
        (e) =>
          reject(new CaUnavailableError(`CA ${this.options.address} unreachable: ${e.message}`)),
      );
      req.end(body);
    });
  }

  /** Closes pooled connections. */
  close(): void {
    this.#agent.destroy();
  }
}

/**
 * Signs on the node itself with a CA directory. Lab only: a node holding the
 * CA key can mint any identity, which is exactly what node authorization
 * exists to prevent.
 */
export class LocalCa implements CertificateSource {
  constructor(
    readonly ca: CaMaterial,
    readonly ttlMs: number,
    readonly now: () => Date = () => new Date(),
  ) {}

  async sign(csrPem: string): Promise<Signed> {
    const csr = await inspectCsr(csrPem);
    const leaf = await issueLeaf({
      id: csr.id,
      publicKey: csr.publicKey,
      signer: this.ca.signer,
      now: this.now(),
      ttlMs: this.ttlMs,
    });
    return { chain: [leaf, ...this.ca.chain], roots: this.ca.roots };
  }
}

export { toPem };
