/**
 * The config pipeline's first half: read files, parse YAML, check each
 * resource. Pure except for {@link readSources}.
 *
 * @module
 */
import type { Resource } from "./kind.ts";
import { checkResource } from "./resource.ts";
import { formatPath, type Issue, type Path, Reporter, type Severity } from "./schema.ts";
import { MAX_FILE_BYTES, parseYaml, type YamlDocument } from "./yaml.ts";

/** A config file's text. */
export interface SourceFile {
  /** Path as shown in messages (as the user gave it, not absolute). */
  readonly file: string;
  readonly text: string;
}

/** A problem found in the config, located in a file. */
export interface ConfigIssue {
  readonly file: string;
  readonly line: number;
  /** Field path, e.g. `spec.rules[0].to[0].operation.ports[0]`; empty for the whole document. */
  readonly path: string;
  readonly message: string;
  readonly hint?: string;
  readonly severity: Severity;
}

/** Formats an issue as one line: `file:line path: message (hint)`. */
export function formatIssue(i: ConfigIssue): string {
  const where = i.path === "" ? `${i.file}:${i.line}:` : `${i.file}:${i.line} ${i.path}:`;
  const level = i.severity === "warning" ? " warning:" : "";
  return `${where}${level} ${i.message}${i.hint ? ` (${i.hint})` : ""}`;
}

/** Raised by the pipeline when the config has errors; carries every issue. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** Stable code users can match on. */
  readonly code = "ECONFIG";
  constructor(readonly issues: readonly ConfigIssue[]) {
    const errors = issues.filter((i) => i.severity === "error");
    super(
      `config has ${errors.length} error${errors.length === 1 ? "" : "s"}:\n` +
        errors.map(formatIssue).join("\n"),
    );
  }
}

/** Result of parsing and checking sources. */
export interface ParseResult {
  readonly resources: Resource[];
  readonly issues: ConfigIssue[];
  /** Line of a field path inside a resource's document. */
  readonly lineOf: (res: Resource, path: Path) => number;
}

/** Parses and checks every document of every source; reports all problems at once. */
export function parseSources(sources: readonly SourceFile[]): ParseResult {
  const resources: Resource[] = [];
  const issues: ConfigIssue[] = [];
  const docOf = new WeakMap<Resource, YamlDocument>();
  for (const { file, text } of sources) {
    const { docs, errors } = parseYaml(text, file);
    for (const e of errors) {
      issues.push({
        file,
        line: e.line,
        path: "",
        message: `YAML: ${e.message}`,
        severity: "error",
      });
    }
    for (const doc of docs) {
      const r = new Reporter();
      const res = checkResource(doc.value, { file, line: doc.line, doc: doc.index }, r);
      for (const i of r.issues) issues.push(locate(i, file, doc.lineOf(i.path)));
      if (res) {
        resources.push(res);
        docOf.set(res, doc);
      }
    }
  }
  issues.sort((a, b) => (a.file === b.file ? a.line - b.line : 0));
  const lineOf = (res: Resource, path: Path) => docOf.get(res)?.lineOf(path) ?? res.source.line;
  return { resources, issues, lineOf };
}

/** Turns a schema issue into a located config issue. */
export function locate(i: Issue, file: string, line: number): ConfigIssue {
  return {
    file,
    line,
    path: formatPath(i.path),
    message: i.message,
    hint: i.hint,
    severity: i.severity,
  };
}

/** Raised when config files cannot be read at all (missing path, permissions). */
export class ConfigReadError extends Error {
  override readonly name = "ConfigReadError";
  readonly code = "ECONFIGREAD";
}

/**
 * Reads a config file, or every `.yaml`/`.yml` file below a directory (sorted,
 * so the order is stable). Hidden files and directories are skipped.
 */
export async function readSources(path: string): Promise<SourceFile[]> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    throw new ConfigReadError(`cannot read config "${path}": ${(e as Error).message}`, {
      cause: e,
    });
  }
  const files = info.isDirectory ? await listYaml(path) : [path];
  if (info.isDirectory && files.length === 0) {
    throw new ConfigReadError(`config directory "${path}" has no .yaml or .yml files`);
  }
  const out: SourceFile[] = [];
  for (const file of files) {
    const stat = await Deno.stat(file);
    if (stat.size > MAX_FILE_BYTES) {
      throw new ConfigReadError(
        `config file "${file}" is ${stat.size} bytes; the limit is ${MAX_FILE_BYTES} (split it into several files)`,
      );
    }
    try {
      out.push({ file, text: await Deno.readTextFile(file) });
    } catch (e) {
      throw new ConfigReadError(`cannot read config file "${file}": ${(e as Error).message}`, {
        cause: e,
      });
    }
  }
  return out;
}

/** Whether a file name is a config file ambit reads. */
export function isConfigFile(name: string): boolean {
  const base = name.slice(name.lastIndexOf("/") + 1);
  return !base.startsWith(".") && (base.endsWith(".yaml") || base.endsWith(".yml"));
}

async function listYaml(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    const entries: Deno.DirEntry[] = [];
    for await (const e of Deno.readDir(d)) entries.push(e);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith(".")) continue;
      const p = d.endsWith("/") ? d + e.name : `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if ((e.isFile || e.isSymlink) && isConfigFile(e.name)) out.push(p);
    }
  };
  await walk(dir);
  return out;
}
