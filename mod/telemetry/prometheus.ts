/**
 * Prometheus text exposition (format 0.0.4) from metric families that are
 * read at scrape time: each family is a function returning its samples, so
 * the data path keeps plain counters and pays nothing for the format.
 *
 * @module
 */

/** One sample of a family. */
export interface Sample {
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: number;
}

/** A counter or gauge family. */
export interface ScalarFamily {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge";
  readonly samples: () => readonly Sample[];
}

/** One series of a histogram: counts per bucket (not cumulative; the last is above every bound). */
export interface HistogramSample {
  readonly labels?: Readonly<Record<string, string>>;
  /** `bounds.length + 1` counts: observations ≤ bounds[i] and > bounds[i-1]; the last over all. */
  readonly counts: readonly number[];
  readonly sum: number;
}

/** A histogram family with fixed bucket upper bounds. */
export interface HistogramFamily {
  readonly name: string;
  readonly help: string;
  readonly type: "histogram";
  /** Ascending upper bounds (`le`), without +Inf. */
  readonly bounds: readonly number[];
  readonly samples: () => readonly HistogramSample[];
}

/** A metric family. */
export type Family = ScalarFamily | HistogramFamily;

/** Renders families as Prometheus text. Names must already be valid metric names. */
export function renderPrometheus(families: readonly Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    if (f.type === "histogram") {
      for (const s of f.samples()) renderHistogram(out, f, s);
      continue;
    }
    for (const s of f.samples()) {
      out.push(`${f.name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
    }
  }
  return out.join("\n") + "\n";
}

function renderHistogram(out: string[], f: HistogramFamily, s: HistogramSample): void {
  let cumulative = 0;
  f.bounds.forEach((b, i) => {
    cumulative += s.counts[i] ?? 0;
    out.push(`${f.name}_bucket${formatLabels(s.labels, ["le", formatValue(b)])} ${cumulative}`);
  });
  cumulative += s.counts[f.bounds.length] ?? 0;
  out.push(`${f.name}_bucket${formatLabels(s.labels, ["le", "+Inf"])} ${cumulative}`);
  out.push(`${f.name}_sum${formatLabels(s.labels)} ${formatValue(s.sum)}`);
  out.push(`${f.name}_count${formatLabels(s.labels)} ${cumulative}`);
}

/** Index of the bucket `value` falls in (`bounds.length` when above all). */
export function bucketIndex(bounds: readonly number[], value: number): number {
  let lo = 0, hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (value <= bounds[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function formatLabels(
  labels?: Readonly<Record<string, string>>,
  extra?: [string, string],
): string {
  const parts = Object.entries(labels ?? {}).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) parts.push(`${extra[0]}="${extra[1]}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function escapeLabel(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');
}

function escapeHelp(v: string): string {
  return v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n");
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}
