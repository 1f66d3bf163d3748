/**
 * Test helpers for config tests: run YAML through the checker and get the
 * formatted issue lines back.
 *
 * @module
 */
import type { Resource } from "./kind.ts";
import { formatIssue, parseSources } from "./load.ts";

/** Checks `yaml` as file `test.yaml`; returns every issue as a formatted line. */
export function issuesOf(yaml: string, file = "test.yaml"): string[] {
  return parseSources([{ file, text: yaml }]).issues.map(formatIssue);
}

/** Checks `yaml`, asserting no issues, and returns the resources (with defaults applied). */
export function resourcesOf(yaml: string): Resource[] {
  const { resources, issues } = parseSources([{ file: "test.yaml", text: yaml }]);
  if (issues.length > 0) {
    throw new Error(`unexpected issues:\n${issues.map(formatIssue).join("\n")}`);
  }
  return resources;
}

/** Dedents a template literal so YAML in tests can be indented with the code. */
export function yaml(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = strings.reduce(
    (acc, s, i) => acc + s + (i < values.length ? String(values[i]) : ""),
    "",
  );
  const lines = text.replace(/^\n/, "").split("\n");
  const indent = Math.min(
    ...lines.filter((l) => l.trim() !== "").map((l) => l.match(/^ */)![0].length),
  );
  return lines.map((l) => l.slice(indent)).join("\n");
}
