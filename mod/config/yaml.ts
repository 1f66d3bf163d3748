/**
 * Multi-document YAML parsing that can tell, for every field path, the line
 * it was written on, so validation messages can point at `file:line`.
 *
 * Two parsers, for speed: js-yaml (YAML 1.2 core schema) reads the values
 * and the line each document starts on, about ten times faster than the
 * `yaml` package on large configs. The `yaml` package, which keeps source
 * positions, is used when js-yaml reports a syntax error (for its messages),
 * when the text uses aliases (it caps alias expansion), and lazily, once per
 * file, when an issue needs the line of a field.
 *
 * @module
 */
import jsyaml from "js-yaml";
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseAllDocuments } from "yaml";
import { formatPath, type Path } from "./schema.ts";

/** One YAML document of a file. */
export interface YamlDocument {
  readonly file: string;
  /** 0-based index in the file. */
  readonly index: number;
  /** 1-based line where the document's content starts. */
  readonly line: number;
  /** The plain JavaScript value of the document. */
  readonly value: unknown;
  /** Line of `path` (or of its nearest written ancestor). */
  lineOf(path: Path): number;
}

/** A YAML syntax error. */
export interface YamlError {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

/** Largest YAML input ambit reads from one file (bytes). */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;

/** Parses every document of `text`; syntax errors are returned, not thrown. */
export function parseYaml(text: string, file: string): {
  docs: YamlDocument[];
  errors: YamlError[];
} {
  // Aliases: let the `yaml` package expand them, with its limit on expansion.
  if (/(^|[\s\[{,:-])\*[^\s,\]}]/m.test(text)) return parseYamlWithPositions(text, file);
  const starts: number[] = [];
  let depth = 0;
  let values: unknown[];
  try {
    values = jsyaml.loadAll(text, undefined, {
      schema: jsyaml.CORE_SCHEMA,
      listener(event: string, state: { line: number }) {
        if (event === "open") {
          if (depth === 0) starts.push(state.line + 1);
          depth++;
        } else depth--;
      },
    });
  } catch {
    return parseYamlWithPositions(text, file);
  }
  if (values.length !== starts.length) return parseYamlWithPositions(text, file);
  let positions: YamlDocument[] | undefined;
  const precise = (line: number) => {
    positions ??= parseYamlWithPositions(text, file).docs;
    return positions.find((d) => d.line === line);
  };
  const docs: YamlDocument[] = [];
  values.forEach((value, index) => {
    if (value === null || value === undefined) return;
    const line = starts[index];
    docs.push({ file, index, line, value, lineOf: (path) => precise(line)?.lineOf(path) ?? line });
  });
  return { docs, errors: [] };
}

/** Parses with the `yaml` package, recording the line of every field path. */
export function parseYamlWithPositions(text: string, file: string): {
  docs: YamlDocument[];
  errors: YamlError[];
} {
  const lineCounter = new LineCounter();
  const parsed = parseAllDocuments(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
    strict: true,
  });
  const docs: YamlDocument[] = [];
  const errors: YamlError[] = [];
  const all = Array.isArray(parsed) ? parsed : [];
  if (!Array.isArray(parsed)) {
    // An empty stream parses to an EmptyStream; nothing to do.
    return { docs, errors };
  }
  all.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        errors.push({
          file,
          line: lineCounter.linePos(e.pos[0]).line,
          message: cleanYamlMessage(e.message),
        });
      }
      return;
    }
    if (doc.contents === null) return; // an empty document, e.g. a trailing '---'
    const lines = new Map<string, number>();
    indexLines(doc.contents as Node, [], lines, lineCounter);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      errors.push({
        file,
        line: lineCounter.linePos(doc.contents.range?.[0] ?? 0).line,
        message: (e as Error).message,
      });
      return;
    }
    const start = lineCounter.linePos(doc.contents.range?.[0] ?? 0).line;
    docs.push({
      file,
      index,
      line: start,
      value,
      lineOf(path: Path): number {
        for (let n = path.length; n >= 0; n--) {
          const l = lines.get(formatPath(path.slice(0, n)));
          if (l !== undefined) return l;
        }
        return start;
      },
    });
  });
  return { docs, errors };
}

function indexLines(node: Node, path: Path, out: Map<string, number>, lc: LineCounter): void {
  if (node.range) out.set(formatPath(path), lc.linePos(node.range[0]).line);
  if (isMap(node)) {
    for (const item of node.items) {
      if (!isPair(item) || !isScalar(item.key)) continue;
      const key = String(item.key.value);
      const childPath = [...path, key];
      // Point a field at its key's line: that is where a reader looks.
      if (item.key.range) out.set(formatPath(childPath), lc.linePos(item.key.range[0]).line);
      if (item.value && (isMap(item.value) || isSeq(item.value))) {
        const keyLine = out.get(formatPath(childPath));
        indexLines(item.value as Node, childPath, out, lc);
        if (keyLine !== undefined) out.set(formatPath(childPath), keyLine);
      }
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      if (item && typeof item === "object" && "range" in item) {
        indexLines(item as Node, [...path, i], out, lc);
      }
    });
  }
}

function cleanYamlMessage(message: string): string {
  // The yaml library appends " at line N, column M" and a code frame; the
  // caller reports the line itself.
  return message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
}
