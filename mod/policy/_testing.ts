/**
 * Fixtures shared by the L4 and L7 authorization tables: policies through
 * the real schema, policies the schema would refuse, and rule builders.
 *
 * @module
 */
import { resourcesOf } from "../config/_testing.ts";
import type { Resource } from "../config/kind.ts";

/** A loose object (JSON is YAML). */
export type Obj = Record<string, unknown>;

/** An AuthorizationPolicy checked by the real schema. */
export function ap(
  name: string,
  spec: Obj,
  opts: { ns?: string; annotations?: Obj } = {},
): Resource {
  const metadata: Obj = { name, namespace: opts.ns ?? "shop" };
  if (opts.annotations) metadata.annotations = opts.annotations;
  const [r] = resourcesOf(JSON.stringify({
    apiVersion: "security.istio.io/v1",
    kind: "AuthorizationPolicy",
    metadata,
    spec,
  }));
  return r;
}

/** A policy the schema would refuse (CUSTOM, Envoy keys, bad CIDRs, bare service accounts). */
export function raw(name: string, spec: Obj, ns = "shop"): Resource {
  return {
    apiVersion: "security.istio.io/v1",
    kind: "AuthorizationPolicy",
    metadata: { name, namespace: ns, labels: {}, annotations: {} },
    spec,
    source: { file: "raw", line: 1, doc: 0 },
  };
}

/** `from` with one source per argument. */
export const from = (...sources: Obj[]): Obj => ({ from: sources.map((source) => ({ source })) });
/** `to` with one operation per argument. */
export const to = (...operations: Obj[]): Obj => ({
  to: operations.map((operation) => ({ operation })),
});
/** A `when` condition. */
export const cond = (key: string, values?: string[], notValues?: string[]): Obj => ({
  key,
  ...(values ? { values } : {}),
  ...(notValues ? { notValues } : {}),
});
/** `when` with these conditions. */
export const when = (...conditions: Obj[]): Obj => ({ when: conditions });
/** An ALLOW spec. */
export const allow = (...rules: Obj[]): Obj => ({ action: "ALLOW", rules });
/** A DENY spec. */
export const deny = (...rules: Obj[]): Obj => ({ action: "DENY", rules });
/** An AUDIT spec. */
export const audit = (...rules: Obj[]): Obj => ({ action: "AUDIT", rules });
