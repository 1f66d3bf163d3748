/**
 * The SNI an ambit HBONE client sends: a name derived from the identity it
 * expects, so a node whose workloads share one address can present the
 * right certificate. Istio's ztunnel sends no SNI (each pod has its own IP);
 * ambit servers still answer SNI-less clients (see server.ts).
 *
 * @module
 */
import { createHash } from "node:crypto";

const SUFFIX = ".hbone.ambit.invalid";

/** SNI for an expected SPIFFE ID: `<32 hex of sha256>.hbone.ambit.invalid`. */
export function sniForIdentity(spiffeId: string): string {
  return createHash("sha256").update(spiffeId).digest("hex").slice(0, 32) + SUFFIX;
}

/** Whether `name` looks like an ambit identity SNI. */
export function isIdentitySni(name: string | undefined): boolean {
  return name !== undefined && name.endsWith(SUFFIX);
}
