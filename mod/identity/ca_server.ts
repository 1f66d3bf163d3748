/**
 * The CA service (port 15012): signs workload CSRs for nodes over mutual TLS,
 * applying node authorization against the live config.
 *
 * API (JSON over HTTPS, client certificate required):
 * - `POST /v1/certificates` with `{"csr": "<PEM>"}` → 200
 *   `{"certChain": "<PEM leaf, then chain>", "trustBundle": "<PEM roots>",
 *   "serial": "<hex>", "notAfter": "<RFC 3339>"}`;
 * - `GET /v1/trust-bundle` → 200 `{"trustBundle": "<PEM roots>"}`;
 * - errors → `{"error": {"code": "...", "message": "..."}}` with 400 (bad CSR),
 *   403 (not authorized), 404, 405, 413 (body over 64 KiB), 415 (not JSON).
 *
 * @module
 */
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Snapshot } from "../config/snapshot.ts";
import { parseDuration } from "../config/formats.ts";
import type { Logger } from "../log/logger.ts";
import { authorizeSigning } from "./authorize.ts";
import type { CaMaterial } from "./ca_dir.ts";
import {
  CsrError,
  exportPrivateKeyPem,
  generateKeyPair,
  inspectCsr,
  issueLeaf,
  spiffeIdOf,
  toPem,
  x509,
} from "./certs.ts";
import { caId, parseSpiffeId, SpiffeIdError } from "./spiffe.ts";
import { listenOn } from "../util/listen.ts";
import { concatBytes } from "../util/bytes.ts";

/** Largest request body accepted. */
export const MAX_BODY_BYTES = 64 * 1024;

/** A response of the CA API. */
export interface CaResponse {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** Counters for metrics: signed, and refused by reason. */
export interface CaStats {
  signed: number;
  refused: Record<string, number>;
}

/** Everything a request is decided on. */
export interface CaRequest {
  readonly method: string;
  readonly path: string;
  readonly contentType?: string;
  readonly body: string;
  /** DER of the verified client certificate. */
  readonly peerCert?: Uint8Array<ArrayBuffer>;
}

/** Options for {@link handleCaRequest} and {@link CaServer}. */
export interface CaContext {
  readonly ca: CaMaterial;
  /** The live config (node placement is read from it on every request). */
  readonly snapshot: () => Snapshot;
  readonly now?: () => Date;
  readonly logger?: Logger;
  readonly stats?: CaStats;
}

/** Decides one CA API request. Never throws. */
export async function handleCaRequest(req: CaRequest, ctx: CaContext): Promise<CaResponse> {
  const stats = ctx.stats;
  const refuse = (
    status: number,
    code: string,
    message: string,
    fields: Record<string, unknown> = {},
  ) => {
    if (stats) stats.refused[code] = (stats.refused[code] ?? 0) + 1;
    ctx.logger?.warn("certificate request refused", {
      event: "security",
      code,
      reason: message,
      ...fields,
    });
    return { status, body: { error: { code, message } } };
  };
  let requester;
  try {
    const id = req.peerCert ? spiffeIdOf(new x509.X509Certificate(req.peerCert)) : undefined;
    if (!id) return refuse(403, "no_identity", "client certificate carries no SPIFFE ID");
    requester = parseSpiffeId(id);
  } catch (e) {
    return refuse(403, "no_identity", `client certificate: ${(e as Error).message}`);
  }
  const who = requester.kind === "node" ? { node: requester.node } : {};
  if (req.path === "/v1/trust-bundle") {
    if (req.method !== "GET") {
      return refuse(405, "method_not_allowed", `use GET for ${req.path}`, who);
    }
    return { status: 200, body: { trustBundle: toPem(ctx.ca.roots) } };
  }
  if (req.path !== "/v1/certificates") {
    return refuse(404, "not_found", `no endpoint ${req.path}`, who);
  }
  if (req.method !== "POST") {
    return refuse(405, "method_not_allowed", "use POST for /v1/certificates", who);
  }
  if (!/^application\/json\s*(;|$)/i.test(req.contentType ?? "")) {
    return refuse(
      415,
      "unsupported_media_type",
      `content type must be application/json, got "${req.contentType ?? ""}"`,
      who,
    );
  }
  let csrPem: unknown;
  try {
    csrPem = (JSON.parse(req.body) as { csr?: unknown })?.csr;
  } catch {
    return refuse(400, "malformed", "body is not JSON", who);
  }
  if (typeof csrPem !== "string") {
    return refuse(400, "malformed", 'body needs a "csr" string (PEM)', who);
  }
  let csr;
  try {
    csr = await inspectCsr(csrPem);
  } catch (e) {
    if (e instanceof CsrError) return refuse(400, e.problem, e.message, who);
    if (e instanceof SpiffeIdError) return refuse(400, "bad_san", e.message, who);
    return refuse(400, "malformed", `CSR: ${(e as Error).message}`, who);
  }
  const decision = authorizeSigning(ctx.snapshot(), requester, csr.spiffe);
  if (!decision.allowed) {
    return refuse(403, decision.code, decision.message, { ...who, requested: csr.id });
  }
  const now = ctx.now?.() ?? new Date();
  const ttlMs = decision.usage === "node" ? 365 * 24 * 3600e3 : workloadTtl(ctx.snapshot());
  const leaf = await issueLeaf({
    id: csr.id,
    publicKey: csr.publicKey,
    signer: ctx.ca.signer,
    now,
    ttlMs,
    usage: decision.usage,
  });
  if (stats) stats.signed++;
  ctx.logger?.info("certificate issued", { ...who, identity: csr.id, serial: leaf.serialNumber });
  return {
    status: 200,
    body: {
      certChain: toPem([leaf, ...ctx.ca.chain]),
      trustBundle: toPem(ctx.ca.roots),
      serial: leaf.serialNumber,
      notAfter: leaf.notAfter.toISOString(),
    },
  };
}

function workloadTtl(s: Snapshot): number {
  return parseDuration(s.mesh.ca.workloadCertTTL) ?? 24 * 3600e3;
}

/** Options for {@link CaServer.start}. */
export interface CaServerOptions extends CaContext {
  readonly hostname?: string;
  /** Default 15012; 0 picks a free port. */
  readonly port?: number;
}

/** The running CA service. */
export class CaServer {
  readonly stats: CaStats = { signed: 0, refused: {} };
  #server!: https.Server;
  #renew?: ReturnType<typeof setInterval>;

  private constructor(readonly options: CaServerOptions) {}

  /** Starts serving; binds before returning, so a port conflict fails here. */
  static async start(options: CaServerOptions): Promise<CaServer> {
    const s = new CaServer(options);
    const ctx: CaContext = { ...options, stats: s.stats };
    const tlsOpts = await s.#serverCredentials();
    s.#server = https.createServer({
      ...tlsOpts,
      ca: toPem(options.ca.roots),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.3",
    }, (req, res) => void s.#serve(req, res, ctx));
    s.#server.headersTimeout = 10_000;
    s.#server.requestTimeout = 15_000;
    await new Promise<void>((resolve, reject) => {
      s.#server.once("error", reject);
      s.#server.listen(
        listenOn({ ip: options.hostname ?? "0.0.0.0", port: options.port ?? 15012 }),
        () => {
          s.#server.off("error", reject);
          resolve();
        },
      );
    });
    // The serving certificate is short-lived like a workload's; refresh it well before expiry.
    s.#renew = setInterval(async () => {
      try {
        s.#server.setSecureContext({
          ...await s.#serverCredentials(),
          ca: toPem(options.ca.roots),
        });
      } catch (e) {
        options.logger?.error("CA serving certificate refresh failed", { error: e as Error });
      }
    }, 6 * 3600e3);
    Deno.unrefTimer?.(s.#renew as unknown as number);
    return s;
  }

  async #serverCredentials(): Promise<{ key: string; cert: string }> {
    const keys = await generateKeyPair();
    const cert = await issueLeaf({
      id: caId(this.options.ca.trustDomain),
      publicKey: keys.publicKey,
      signer: this.options.ca.signer,
      now: new Date(),
      ttlMs: 24 * 3600e3,
    });
    return {
      key: await exportPrivateKeyPem(keys.privateKey),
      cert: toPem([cert, ...this.options.ca.chain]),
    };
  }

  async #serve(req: IncomingMessage, res: ServerResponse, ctx: CaContext): Promise<void> {
    let size = 0;
    const chunks: Uint8Array[] = [];
    let tooBig = false;
    for await (const chunk of req) {
      size += (chunk as Uint8Array).length;
      if (size > MAX_BODY_BYTES) {
        tooBig = true;
        break;
      }
      chunks.push(chunk as Uint8Array);
    }
    let out: CaResponse;
    if (tooBig) {
      this.stats.refused.too_large = (this.stats.refused.too_large ?? 0) + 1;
      ctx.logger?.warn("certificate request refused", { event: "security", code: "too_large" });
      out = {
        status: 413,
        body: {
          error: { code: "too_large", message: `request body over ${MAX_BODY_BYTES} bytes` },
        },
      };
    } else {
      const peer = (req.socket as TLSSocket).getPeerCertificate?.();
      out = await handleCaRequest({
        method: req.method ?? "GET",
        path: (req.url ?? "/").split("?")[0],
        contentType: req.headers["content-type"],
        body: new TextDecoder().decode(concatBytes(chunks)),
        peerCert: peer?.raw ? new Uint8Array(peer.raw).slice() : undefined,
      }, ctx);
    }
    const body = JSON.stringify(out.body);
    res.writeHead(out.status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(body),
      ...(tooBig ? { connection: "close" } : {}),
    });
    res.end(body);
  }

  /** The bound address. */
  get address(): { hostname: string; port: number } {
    const a = this.#server.address() as { address: string; port: number };
    return { hostname: a.address, port: a.port };
  }

  /** Stops accepting and closes connections. */
  async close(): Promise<void> {
    clearInterval(this.#renew);
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections?.();
    });
  }
}
