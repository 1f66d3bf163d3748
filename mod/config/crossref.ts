/**
 * Checks across resources: duplicates and dangling references. Runs after
 * every resource checked on its own; reports every problem at once.
 *
 * @module
 */
import type { Resource } from "./kind.ts";
import { KINDS_BY_NAME } from "./kinds/mod.ts";
import { type ConfigIssue, locate } from "./load.ts";
import type { Issue, Path } from "./schema.ts";

/** `Kind/namespace/name` (or `Kind/name` for cluster-scoped kinds). */
export function resourceKey(kind: string, namespace: string | undefined, name: string): string {
  return namespace === undefined ? `${kind}/${name}` : `${kind}/${namespace}/${name}`;
}

/** Display name of a resource in messages: `"shop/reviews"` or `"node-a"`. */
export function displayName(res: Resource): string {
  const { namespace, name } = res.metadata;
  return namespace === undefined ? name : `${namespace}/${name}`;
}

/** Resources indexed by {@link resourceKey}. */
export type ResourceIndex = ReadonlyMap<string, Resource>;

/** Reports duplicates and builds the index (the first of duplicates wins). */
export function indexResources(
  resources: readonly Resource[],
  issues: ConfigIssue[],
  lineOf: LineLookup,
): ResourceIndex {
  const index = new Map<string, Resource>();
  let mesh: Resource | undefined;
  for (const res of resources) {
    const key = resourceKey(res.kind, res.metadata.namespace, res.metadata.name);
    const first = index.get(key);
    if (first) {
      issues.push(at(res, ["metadata", "name"], lineOf, {
        message: `duplicate ${res.kind} "${displayName(res)}"`,
        hint: `first defined at ${first.source.file}:${first.source.line}`,
      }));
      continue;
    }
    if (res.kind === "Mesh") {
      if (mesh) {
        issues.push(at(res, ["kind"], lineOf, {
          message: "only one Mesh resource is allowed",
          hint: `the first is at ${mesh.source.file}:${mesh.source.line}`,
        }));
        continue;
      }
      mesh = res;
    }
    index.set(key, res);
  }
  return index;
}

/** Checks every reference that every resource declares. */
export function checkReferences(
  index: ResourceIndex,
  issues: ConfigIssue[],
  lineOf: LineLookup,
): void {
  for (const res of index.values()) {
    const def = KINDS_BY_NAME.get(res.kind);
    for (const ref of def?.references?.(res) ?? []) {
      const found = ref.kinds.some((kind) => {
        const target = KINDS_BY_NAME.get(kind);
        const ns = target?.namespaced ? ref.namespace ?? res.metadata.namespace : undefined;
        return index.has(resourceKey(kind, ns, ref.name));
      });
      if (found) continue;
      const target = KINDS_BY_NAME.get(ref.kinds[0]);
      const ns = target?.namespaced ? ref.namespace ?? res.metadata.namespace : undefined;
      const what = ref.kinds.join(" or ");
      issues.push(at(res, ref.path, lineOf, {
        message: `${what} "${ns === undefined ? ref.name : `${ns}/${ref.name}`}" does not exist`,
        hint: ref.hint ?? hintFor(index, ref.kinds, ns),
        severity: ref.severity,
      }));
    }
  }
}

function hintFor(index: ResourceIndex, kinds: readonly string[], ns: string | undefined): string {
  const names = [...index.values()]
    .filter((r) => kinds.includes(r.kind) && (ns === undefined || r.metadata.namespace === ns))
    .map((r) => r.metadata.name);
  if (names.length === 0) {
    return `no ${kinds.join(" or ")} is defined${ns ? ` in namespace "${ns}"` : ""}`;
  }
  const shown = names.slice(0, 5).join(", ") + (names.length > 5 ? ", ..." : "");
  return `defined${ns ? ` in namespace "${ns}"` : ""}: ${shown}`;
}

/** Finds the line of a field path inside a resource's document. */
export type LineLookup = (res: Resource, path: Path) => number;

/** Builds a located issue for a field of a resource. */
export function at(
  res: Resource,
  path: Path,
  lineOf: LineLookup,
  issue: { message: string; hint?: string; severity?: "error" | "warning" },
): ConfigIssue {
  const i: Issue = {
    path,
    message: issue.message,
    hint: issue.hint,
    severity: issue.severity ?? "error",
  };
  return locate(i, res.source.file, lineOf(res, path));
}
