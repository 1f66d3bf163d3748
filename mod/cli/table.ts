/**
 * Plain-text tables for CLI output.
 *
 * @module
 */

/** Lines of `rows` with columns padded to the widest cell. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const w = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) => r.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd());
}
