/**
 * Number formats shared by the checks' messages.
 *
 * @module
 */

/** A span for people: `3d 4h`, `5h 2m`, `4m 3s`, `12s`, `850ms`. */
export function formatSpan(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)}ms`;
  const s = Math.floor(abs / 1000);
  const units: [string, number][] = [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]];
  const parts: string[] = [];
  let rest = s;
  for (const [u, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 || parts.length > 0) parts.push(`${n}${u}`);
    if (parts.length === 2) break;
  }
  return parts.filter((p) => !/^0[a-z]$/.test(p)).join(" ");
}

/** A round-trip time: `0.42 ms`, `12.3 ms`, `250 ms`. */
export function formatRtt(ms: number): string {
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

/** A date as RFC 3339 UTC to the second: `2026-01-02T03:04:05Z`. */
export function formatDate(d: Date): string {
  return d.toISOString().replace(/\.[0-9]{3}Z$/, "Z");
}
