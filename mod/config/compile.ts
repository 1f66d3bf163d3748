/**
 * The whole config pipeline: parse → check → defaults → cross-reference →
 * compile into a {@link Snapshot}. Pure: give it file texts, get a snapshot or
 * every problem at once.
 *
 * @module
 */
import { checkReferences, indexResources } from "./crossref.ts";
import { type ConfigIssue, parseSources, readSources, type SourceFile } from "./load.ts";
import { buildSnapshot, type Snapshot } from "./snapshot.ts";
import { toHex } from "../util/bytes.ts";

/** What compiling a config gives: a snapshot when there were no errors, and every issue. */
export interface CompileResult {
  readonly snapshot?: Snapshot;
  /** Errors and warnings, in file and line order. */
  readonly issues: readonly ConfigIssue[];
  /** SHA-256 of the sources (names and contents), to tell real changes from touches. */
  readonly digest: string;
  /** Total length of the source texts (decides where the next reload compiles). */
  readonly bytes: number;
}

/** Compiles config sources into a snapshot. */
export async function compileSources(sources: readonly SourceFile[]): Promise<CompileResult> {
  return {
    ...compileSourcesSync(sources),
    digest: await digestSources(sources),
    bytes: sources.reduce((n, s) => n + s.text.length, 0),
  };
}

/** Same as {@link compileSources} without the digest (synchronous). */
export function compileSourcesSync(
  sources: readonly SourceFile[],
): Omit<CompileResult, "digest" | "bytes"> {
  const { resources, issues, lineOf } = parseSources(sources);
  const index = indexResources(resources, issues, lineOf);
  checkReferences(index, issues, lineOf);
  const failed = issues.some((i) => i.severity === "error");
  const snapshot = failed ? undefined : buildSnapshot(index, issues, lineOf);
  const all = [...issues, ...(snapshot?.warnings ?? [])];
  const order = new Map(sources.map((s, i) => [s.file, i]));
  all.sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line);
  return { snapshot, issues: all };
}

/** Reads and compiles the config at `path` (a file or a directory). */
export async function compilePath(path: string): Promise<CompileResult> {
  return compileSources(await readSources(path));
}

async function digestSources(sources: readonly SourceFile[]): Promise<string> {
  const enc = new TextEncoder();
  const parts = sources.flatMap((s) => [s.file, "\0", s.text, "\0"]).join("");
  const hash = await crypto.subtle.digest("SHA-256", enc.encode(parts));
  return toHex(new Uint8Array(hash));
}
