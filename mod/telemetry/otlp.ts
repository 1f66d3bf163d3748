/**
 * Spans of the waypoint exported as OTLP/HTTP JSON (`POST <endpoint>/v1/traces`),
 * batched: one span per request, a SERVER span in the caller's trace.
 * Export is best effort: a collector that is down or slow costs at most the
 * batch in memory (older spans are dropped beyond `maxQueue`) and a warning.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";

/** One finished request as a span. */
export interface SpanRecord {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  /** Epoch milliseconds (fractions allowed). */
  readonly startMs: number;
  readonly endMs: number;
  /** HTTP status ≥ 500 (or a gRPC error) marks the span as an error. */
  readonly error: boolean;
  readonly attributes: Readonly<Record<string, string | number | boolean | undefined>>;
}

/** Options of {@link OtlpExporter}. */
export interface OtlpOptions {
  /** Collector base URL, e.g. `http://127.0.0.1:4318` (the path `/v1/traces` is added). */
  readonly endpoint: string;
  /** Resource attributes, e.g. `service.name`. */
  readonly resource: Readonly<Record<string, string>>;
  readonly logger: Logger;
  /** Flush at least this often (default 1000 ms). */
  readonly intervalMs?: number;
  /** Spans per request body (default 512). */
  readonly maxBatch?: number;
  /** Spans kept while the collector is unreachable (default 4096). */
  readonly maxQueue?: number;
  readonly fetch?: typeof fetch;
}

/** Raised when the OTLP endpoint is not an http(s) URL. */
export class OtlpEndpointError extends Error {
  override readonly name = "OtlpEndpointError";
}

/** Batches spans and posts them as OTLP/HTTP JSON. */
export class OtlpExporter {
  #queue: SpanRecord[] = [];
  #timer: ReturnType<typeof setInterval>;
  #url: string;
  #flushing?: Promise<void>;
  #dropped = 0;
  /** Spans sent, failed posts (for metrics and tests). */
  readonly stats = { exported: 0, failures: 0, dropped: 0 };

  constructor(readonly options: OtlpOptions) {
    let u: URL;
    try {
      u = new URL(options.endpoint);
    } catch {
      throw new OtlpEndpointError(
        `OTLP endpoint "${options.endpoint}" is not a URL (e.g. http://127.0.0.1:4318)`,
      );
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") {
      throw new OtlpEndpointError(
        `OTLP endpoint "${options.endpoint}" must be http:// or https://`,
      );
    }
    this.#url = `${u.origin}${u.pathname.replace(/\/$/, "")}/v1/traces`;
    this.#timer = setInterval(() => void this.flush(), options.intervalMs ?? 1000);
  }

  /** Queues a span. */
  add(s: SpanRecord): void {
    this.#queue.push(s);
    const max = this.options.maxQueue ?? 4096;
    if (this.#queue.length > max) {
      const n = this.#queue.length - max;
      this.#queue.splice(0, n);
      this.#dropped += n;
      this.stats.dropped += n;
    }
    if (this.#queue.length >= (this.options.maxBatch ?? 512)) void this.flush();
  }

  /** Sends what is queued (one post at a time). */
  flush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => this.#flushing = undefined);
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.options.maxBatch ?? 512);
      try {
        const res = await (this.options.fetch ?? fetch)(this.#url, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(otlpBody(batch, this.options.resource)),
          signal: AbortSignal.timeout(5000),
        });
        await res.body?.cancel();
        if (!res.ok) throw new Error(`collector answered ${res.status}`);
        this.stats.exported += batch.length;
      } catch (e) {
        this.stats.failures++;
        this.options.logger.warn("OTLP export failed; spans dropped", {
          endpoint: this.#url,
          spans: batch.length,
          error: (e as Error).message,
        });
        return;
      }
    }
  }

  /** Flushes and stops the timer. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}

/** The OTLP/HTTP JSON request body for `spans` (one resource, one scope). */
export function otlpBody(spans: readonly SpanRecord[], resource: Readonly<Record<string, string>>) {
  const attrs = (o: Readonly<Record<string, string | number | boolean | undefined>>) =>
    Object.entries(o).filter(([, v]) => v !== undefined).map(([key, v]) => ({
      key,
      value: typeof v === "number"
        ? (Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v })
        : typeof v === "boolean"
        ? { boolValue: v }
        : { stringValue: String(v) },
    }));
  const nanos = (ms: number) => (BigInt(Math.round(ms * 1000)) * 1000n).toString();
  return {
    resourceSpans: [{
      resource: { attributes: attrs(resource) },
      scopeSpans: [{
        scope: { name: "ambit" },
        spans: spans.map((s) => ({
          traceId: s.traceId,
          spanId: s.spanId,
          ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
          name: s.name,
          kind: 2,
          startTimeUnixNano: nanos(s.startMs),
          endTimeUnixNano: nanos(s.endMs),
          attributes: attrs(s.attributes),
          status: s.error ? { code: 2 } : { code: 0 },
        })),
      }],
    }],
  };
}
