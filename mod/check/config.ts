/**
 * The config check: the files read, parse and compile as a node would load
 * them (every issue with file:line), and the checked node or waypoint is in
 * them.
 *
 * @module
 */
import { compileSources } from "../config/compile.ts";
import { type ConfigIssue, ConfigReadError, readSources } from "../config/load.ts";
import type { Snapshot } from "../config/snapshot.ts";
import type { CheckedRole } from "./listeners.ts";
import type { CheckItem, CheckResult } from "./result.ts";

/** The config result, and the snapshot when it compiled. */
export interface ConfigCheck {
  readonly result: CheckResult;
  readonly snapshot?: Snapshot;
}

/** An issue as an item: `file:line`, `field.path: message`, the hint. Pure. */
export function issueItem(i: ConfigIssue): CheckItem {
  return {
    status: i.severity === "error" ? "fail" : "warn",
    subject: `${i.file}:${i.line}`,
    detail: `${i.path ? `${i.path}: ` : ""}${i.message}`,
    ...(i.hint ? { hint: i.hint } : {}),
  };
}

/** Reads and compiles `path`. Whether `me` is in it is the caller's to decide (a usage error). */
export async function checkConfig(path: string, me: CheckedRole): Promise<ConfigCheck> {
  let sources;
  try {
    sources = await readSources(path);
  } catch (e) {
    if (!(e instanceof ConfigReadError)) throw e;
    return {
      result: {
        name: "config",
        status: "fail",
        detail: e.message,
        hint: "give --config the mesh config: a YAML file or a directory of them",
      },
    };
  }
  const compiled = await compileSources(sources);
  const items = compiled.issues.map(issueItem);
  const errors = compiled.issues.filter((i) => i.severity === "error").length;
  const warnings = compiled.issues.length - errors;
  const files = `${sources.length} file${sources.length === 1 ? "" : "s"}`;
  const s = compiled.snapshot;
  if (!s) {
    return {
      result: {
        name: "config",
        status: "fail",
        detail: `${files}, ${errors} error${errors === 1 ? "" : "s"}` +
          (warnings ? `, ${warnings} warning${warnings === 1 ? "" : "s"}` : ""),
        hint:
          `fix the errors listed (each is file:line field: message); 'ambit validate ${path}' reports the same`,
        items,
      },
    };
  }
  const where = me.role === "ztunnel"
    ? s.nodes.has(me.node) ? `node ${me.node} (${s.nodes.get(me.node)!.address})` : ""
    : s.waypoints.has(me.name)
    ? `waypoint ${me.name} (${s.waypoints.get(me.name)!.address}:${s.waypoints.get(me.name)!.port})`
    : "";
  const detail = `${files}, ${s.resources.length} resources` + (where ? `, ${where}` : "") +
    (warnings ? `, ${warnings} warning${warnings === 1 ? "" : "s"}` : "");
  return {
    result: warnings > 0
      ? {
        name: "config",
        status: "warn",
        detail,
        hint: "legal but suspicious: see each warning",
        items,
      }
      : { name: "config", status: "ok", detail, items },
    snapshot: s,
  };
}
