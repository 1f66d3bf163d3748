/**
 * The command-line options that say where a node role gets certificates:
 * the CA service with a node credential, or (lab only) a local CA directory.
 *
 * @module
 */
import { parseDuration } from "../config/formats.ts";
import type { Snapshot } from "../config/snapshot.ts";
import { CaDirError, loadCaDir } from "../identity/ca_dir.ts";
import {
  CaClient,
  type CertificateSource,
  loadCredentialDir,
  LocalCa,
  toPem,
} from "../identity/ca_client.ts";
import type { Logger } from "../log/logger.ts";
import { type Context, type OptionSpec, parseHostPort, UsageError } from "./command.ts";

/** Options shared by the node roles. */
export const IDENTITY_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  credential: {
    type: "string",
    arg: "DIR",
    description: "node credential from 'ambit ca issue-node' (cert.pem, key.pem, bundle.pem)",
  },
  "ca-address": {
    type: "string",
    arg: "HOST:PORT",
    description: "CA service address (default: Mesh spec.ca.address)",
  },
  "ca-dir": {
    type: "string",
    arg: "DIR",
    description: "LAB ONLY: mint certificates locally with this CA directory",
  },
  admin: {
    type: "string",
    arg: "HOST:PORT",
    description: "admin API address, loopback only; 'off' disables",
    default: "127.0.0.1:15000",
  },
};

/** Where certificates come from, resolved from the options. */
export async function certSource(
  ctx: Context,
  s: Snapshot,
  logger: Logger,
): Promise<{ source: CertificateSource; bundlePem?: string; close: () => void }> {
  const caDir = ctx.options["ca-dir"] as string | undefined;
  const credDir = ctx.options.credential as string | undefined;
  if (caDir && credDir) throw new UsageError("give either --credential or --ca-dir, not both");
  if (caDir) {
    let ca;
    try {
      ca = await loadCaDir(caDir);
    } catch (e) {
      if (e instanceof CaDirError) throw new UsageError(e.message);
      throw e;
    }
    if (ca.trustDomain !== s.mesh.trustDomain) {
      throw new UsageError(
        `--ca-dir is for trust domain "${ca.trustDomain}" but the mesh is "${s.mesh.trustDomain}"`,
      );
    }
    logger.warn(
      "minting certificates locally with --ca-dir: lab only, this node can mint any identity",
    );
    const ttl = parseDuration(s.mesh.ca.workloadCertTTL) ?? 24 * 3600e3;
    return { source: new LocalCa(ca, ttl), bundlePem: toPem(ca.roots), close: () => {} };
  }
  if (!credDir) {
    throw new UsageError(
      "no certificate source: give --credential DIR (a node credential from 'ambit ca issue-node') or, in a lab, --ca-dir DIR",
    );
  }
  const address = (ctx.options["ca-address"] as string | undefined) ?? s.mesh.ca.address;
  if (!address) {
    throw new UsageError("no CA address: set Mesh spec.ca.address or give --ca-address");
  }
  let credential;
  try {
    credential = await loadCredentialDir(credDir);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const client = new CaClient({ address, credential, trustDomain: s.mesh.trustDomain });
  return { source: client, bundlePem: credential.bundlePem, close: () => client.close() };
}

/** Parses --admin; undefined when it is "off". */
export function adminAddress(ctx: Context): { hostname: string; port: number } | undefined {
  const v = ctx.options.admin as string;
  return v === "off" ? undefined : parseHostPort(v, "admin");
}
