/**
 * Checks one YAML document as a resource: the envelope (`apiVersion`, `kind`,
 * `metadata`) and then the kind's spec schema, applying defaults.
 *
 * @module
 */
import { dnsLabel, dnsSubdomain, labelKey, labels } from "./formats.ts";
import type { KindDef, Metadata, Resource, Source } from "./kind.ts";
import { KINDS, KINDS_BY_NAME } from "./kinds/mod.ts";
import {
  describe,
  didYouMean,
  INVALID,
  isPlainObject,
  map,
  obj,
  opt,
  type Path,
  type Reporter,
  str,
  unsupported,
} from "./schema.ts";

const metadataSchema = obj({
  name: opt(str(), "Name, unique per kind (and namespace)."),
  namespace: opt(dnsLabel("namespace"), "Namespace of a namespaced kind; default `default`."),
  labels: opt(labels(), "Labels."),
  annotations: opt(map(str(), labelKey()), "Annotations (free text values)."),
  creationTimestamp: opt(
    str({
      name: "RFC 3339 time",
      validate: (s) => (Number.isNaN(Date.parse(s)) ? `"${s}" is not an RFC 3339 time` : undefined),
    }),
    "Used for Gateway API route precedence (older wins).",
  ),
  uid: unsupported("server-populated; remove it"),
  resourceVersion: unsupported("server-populated; remove it"),
  generation: unsupported("server-populated; remove it"),
  managedFields: unsupported("server-populated; remove it"),
  ownerReferences: unsupported("ambit has no garbage collector"),
  finalizers: unsupported("ambit has no garbage collector"),
  generateName: unsupported("give every resource a name"),
}, { title: "ObjectMeta", doc: "Kubernetes object metadata." });

const TOP_LEVEL = ["apiVersion", "kind", "metadata", "spec", "status"];

/** Checks `value` (one YAML document) as a resource; issues go to `r`. */
export function checkResource(value: unknown, source: Source, r: Reporter): Resource | undefined {
  if (!isPlainObject(value)) {
    r.error([], `expected a resource (apiVersion, kind, metadata, spec), got ${describe(value)}`);
    return undefined;
  }
  const kindName = value.kind;
  if (typeof kindName !== "string") {
    r.error(
      kindName === undefined ? [] : ["kind"],
      kindName === undefined
        ? `missing "kind"`
        : `"kind" must be a string, got ${describe(kindName)}`,
    );
    return undefined;
  }
  const def = KINDS_BY_NAME.get(kindName);
  if (def === undefined) {
    const near = didYouMean(kindName, KINDS.map((k) => k.kind));
    r.error(
      ["kind"],
      `unknown kind "${kindName}"`,
      near ? `did you mean "${near}"?` : `supported: ${KINDS.map((k) => k.kind).join(", ")}`,
    );
    return undefined;
  }
  let ok = true;
  const apiVersion = value.apiVersion;
  if (typeof apiVersion !== "string" || !def.apiVersions.includes(apiVersion)) {
    r.error(
      apiVersion === undefined ? [] : ["apiVersion"],
      apiVersion === undefined
        ? `missing "apiVersion"`
        : `apiVersion ${describe(apiVersion)} is not served for kind ${kindName}`,
      `use ${def.apiVersions[0]}`,
    );
    ok = false;
  }
  for (const key of Object.keys(value)) {
    if (!TOP_LEVEL.includes(key)) {
      const near = didYouMean(key, TOP_LEVEL);
      r.error([key], `unknown field "${key}"`, near && `did you mean "${near}"?`);
      ok = false;
    }
  }
  const metadata = checkMetadata(def, value.metadata, r);
  if (metadata === undefined) ok = false;
  const spec = checkSpec(def, value.spec, r);
  if (spec === INVALID) ok = false;
  if (!ok || metadata === undefined) return undefined;
  const res: Resource = {
    apiVersion: apiVersion as string,
    kind: kindName,
    metadata,
    spec: spec as unknown,
    source,
  };
  const before = r.issues.length;
  def.check?.(res, r);
  if (r.issues.slice(before).some((i) => i.severity === "error")) return undefined;
  return res;
}

function checkMetadata(def: KindDef, value: unknown, r: Reporter): Metadata | undefined {
  const at: Path = ["metadata"];
  if (value === undefined || value === null) {
    r.error(at, `missing "metadata"`, "every resource needs metadata.name");
    return undefined;
  }
  const m = metadataSchema.check(value, at, r);
  if (m === INVALID) return undefined;
  let ok = true;
  if (m.name === undefined) {
    r.error([...at, "name"], `missing required field "name"`);
    ok = false;
  } else if (dnsSubdomain().check(m.name, [...at, "name"], r) === INVALID) ok = false;
  if (!def.namespaced && m.namespace !== undefined) {
    r.error(
      [...at, "namespace"],
      `${def.kind} is cluster-scoped and takes no namespace`,
      "remove it",
    );
    ok = false;
  }
  if (!ok) return undefined;
  return {
    name: m.name as string,
    namespace: def.namespaced ? m.namespace ?? "default" : undefined,
    labels: m.labels ?? {},
    annotations: m.annotations ?? {},
    creationTimestamp: m.creationTimestamp,
  };
}

function checkSpec(def: KindDef, value: unknown, r: Reporter): unknown {
  if (def.spec === undefined) {
    if (value !== undefined && value !== null) {
      r.error(["spec"], `${def.kind} has no spec`, "remove it");
      return INVALID;
    }
    return undefined;
  }
  if (value === undefined || value === null) {
    if (def.specRequired) {
      r.error(["spec"], `missing "spec"`);
      return INVALID;
    }
    return def.spec.check({}, ["spec"], r);
  }
  return def.spec.check(value, ["spec"], r);
}
