/**
 * Generates the README's config and CLI reference from the same schemas and
 * command tree the program uses, so the docs cannot drift from the code.
 *
 * @module
 */
import { type Command, GLOBAL_OPTIONS, helpText } from "../cli/command.ts";
import type { KindDef } from "../config/kind.ts";
import { KINDS } from "../config/kinds/mod.ts";
import type { Type } from "../config/schema.ts";

interface Row {
  path: string;
  type: string;
  required: string;
  doc: string;
}

/** Markdown for every kind: doc, example and one row per field. */
export function configReference(kinds: readonly KindDef<unknown>[] = KINDS): string {
  const out: string[] = [];
  out.push("| kind | apiVersion | scope |", "|---|---|---|");
  for (const k of kinds) {
    out.push(
      `| [${k.kind}](#${k.kind.toLowerCase()}) | ${
        k.apiVersions.map((v) => `\`${v}\``).join(", ")
      } | ${k.namespaced ? "namespaced" : "cluster"} |`,
    );
  }
  out.push(
    "",
    "Every resource has `apiVersion`, `kind` and `metadata` (`name`; `namespace` for namespaced kinds, " +
      "default `default`; `labels`; `annotations`; `creationTimestamp`). Server-populated metadata " +
      "(`uid`, `resourceVersion`, `generation`, `managedFields`) and `ownerReferences`, `finalizers`, " +
      "`generateName` are rejected; a top-level `status` is ignored.",
  );
  for (const k of kinds) {
    out.push("", `### ${k.kind}`, "", k.doc, "");
    if (k.example) out.push("```yaml", k.example.trim(), "```", "");
    if (!k.spec) continue;
    const rows: Row[] = [];
    const rejected: string[] = [];
    walk(k.spec, "spec", rows, rejected, new Set());
    out.push("| field | type | default | description |", "|---|---|---|---|");
    for (const r of rows) {
      out.push(`| \`${r.path}\` | ${r.type} | ${r.required} | ${escape(r.doc)} |`);
    }
    if (rejected.length > 0) {
      out.push("", `Rejected upstream fields: ${rejected.join("; ")}.`);
    }
  }
  return out.join("\n");
}

function walk(
  type: Type<unknown>,
  path: string,
  rows: Row[],
  rejected: string[],
  seen: Set<Type<unknown>>,
): void {
  let t: Type<unknown> | undefined = type;
  let suffix = "";
  while (t && !t.object && t.element) {
    suffix += t.name.startsWith("list") ? "[]" : ".*";
    t = t.element;
  }
  if (!t?.object || seen.has(t)) return;
  seen.add(t);
  for (const [name, f] of Object.entries(t.object.fields)) {
    const p = `${path}${suffix}.${name}`;
    if (f.unsupported !== undefined) {
      rejected.push(`\`${p}\` (${f.unsupported})`);
      continue;
    }
    rows.push({
      path: p,
      type: escape(typeName(f.type)),
      required: f.required
        ? "**required**"
        : f.defaultText !== undefined
        ? `\`${f.defaultText}\``
        : "",
      doc: f.doc,
    });
    walk(f.type, p, rows, rejected, seen);
  }
  seen.delete(t);
}

function typeName(t: Type<unknown>): string {
  if (t.object) return "object";
  if (t.element?.object) return t.name.startsWith("list") ? "list of objects" : "map of objects";
  return t.name;
}

function escape(s: string): string {
  return s.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/** Markdown with the `--help` of every command, depth first. */
export function cliReference(root: Command): string {
  const out: string[] = [];
  const visit = (cmd: Command, path: string) => {
    if (path !== root.name) {
      out.push(
        `#### \`${path}\``,
        "",
        "```text",
        helpText(cmd, path).replace(globalHelp(), "").trimEnd(),
        "```",
        "",
      );
    }
    for (const sub of cmd.subcommands ?? []) visit(sub, `${path} ${sub.name}`);
  };
  visit(root, root.name);
  out.push(
    "Every command also takes:",
    "",
    "```text",
    globalHelp().trim(),
    "```",
  );
  return out.join("\n");
}

function globalHelp(): string {
  const rows = Object.entries(GLOBAL_OPTIONS).map(([k, s]) => {
    const flag = `${s.short ? `-${s.short}, ` : ""}--${k}${
      s.type === "string" ? ` ${s.arg ?? "VALUE"}` : ""
    }`;
    return [flag, s.description + (s.default !== undefined ? ` (default ${s.default})` : "")];
  });
  const w = Math.max(...rows.map((r) => r[0].length));
  return "\nGlobal options:\n" + rows.map(([f, d]) => `  ${f.padEnd(w)}  ${d}`).join("\n");
}

/** Replaces the text between `<!-- NAME:start -->` and `<!-- NAME:end -->`. */
export function replaceSection(doc: string, name: string, content: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i === -1 || j === -1 || j < i) throw new Error(`README has no ${start} ... ${end} section`);
  return doc.slice(0, i + start.length) + "\n" + content.trim() + "\n" + doc.slice(j);
}
