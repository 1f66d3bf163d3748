/**
 * Header handling on the waypoint's HTTP path, pure: hop-by-hop headers
 * dropped in both directions, the headers a waypoint adds toward the app
 * (`x-forwarded-for`, `x-forwarded-proto`, `x-request-id`,
 * `x-forwarded-client-cert` carrying the caller's SPIFFE ID, `traceparent`),
 * and W3C trace context.
 *
 * @module
 */
import { randomBytes } from "node:crypto";

/** Headers as name/value pairs, names lower case, order kept. */
export type HeaderList = [string, string][];

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "http2-settings",
]);

/** Pairs from Node's `rawHeaders` (name, value, name, value, ...), names lower-cased. */
export function fromRaw(raw: readonly string[]): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i].toLowerCase(), raw[i + 1]]);
  return out;
}

/** The first value of `name`. */
export function getHeader(h: HeaderList, name: string): string | undefined {
  return h.find(([k]) => k === name)?.[1];
}

/**
 * Drops hop-by-hop headers and those the `connection` header lists; HTTP/2
 * pseudo-headers are dropped too (the caller sets its own). `te: trailers`
 * is kept (gRPC needs it).
 */
export function endToEnd(h: HeaderList): HeaderList {
  const listed = new Set(
    h.filter(([k]) => k === "connection").flatMap(([, v]) =>
      v.split(",").map((x) => x.trim().toLowerCase())
    ),
  );
  return h.filter(([k, v]) =>
    !k.startsWith(":") && !listed.has(k) &&
    (!HOP_BY_HOP.has(k) || (k === "te" && v.trim().toLowerCase() === "trailers"))
  );
}

/** A W3C trace context: the trace kept from the caller, a new span for this hop. */
export interface TraceContext {
  readonly traceId: string;
  /** The caller's span, if it sent one. */
  readonly parentId?: string;
  readonly spanId: string;
  readonly sampled: boolean;
}

/**
 * Continues the caller's `traceparent` (version 00; its sampled flag is
 * kept) or starts a trace, sampled when `rootSampled`.
 */
export function traceContext(traceparent: string | undefined, rootSampled = false): TraceContext {
  const m = traceparent?.trim().match(/^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/);
  const spanId = randomBytes(8).toString("hex");
  if (m && !/^0+$/.test(m[1]) && !/^0+$/.test(m[2])) {
    return { traceId: m[1], parentId: m[2], spanId, sampled: (parseInt(m[3], 16) & 1) === 1 };
  }
  return { traceId: randomBytes(16).toString("hex"), spanId, sampled: rootSampled };
}

/** The `traceparent` to send on: this hop's span as the parent. */
export function formatTraceparent(t: TraceContext): string {
  return `00-${t.traceId}-${t.spanId}-${t.sampled ? "01" : "00"}`;
}

/** What the waypoint tells the app about the request. */
export interface ForwardInfo {
  /** The original client's address. */
  readonly clientIp: string;
  /** The caller's SPIFFE ID (the source workload's, from its ztunnel's certificate). */
  readonly sourceIdentity?: string;
  /** The waypoint's SPIFFE ID. */
  readonly waypointIdentity: string;
  readonly trace: TraceContext;
  readonly requestId: string;
}

/**
 * The request headers toward the app: end-to-end headers, then
 * `x-forwarded-for` (appended), `x-forwarded-proto`, `x-request-id`,
 * `x-forwarded-client-cert` (`By=<waypoint>;URI=<caller>`, replacing any the
 * client sent, so an app can trust it) and `traceparent`.
 */
export function upstreamRequestHeaders(h: HeaderList, f: ForwardInfo): HeaderList {
  const out = endToEnd(h).filter(([k]) =>
    k !== "x-forwarded-client-cert" && k !== "traceparent" && k !== "x-request-id" &&
    k !== "x-forwarded-proto"
  );
  const xff = getHeader(out, "x-forwarded-for");
  const rest = out.filter(([k]) => k !== "x-forwarded-for");
  rest.push(["x-forwarded-for", xff ? `${xff}, ${f.clientIp}` : f.clientIp]);
  rest.push(["x-forwarded-proto", "http"]);
  rest.push(["x-request-id", f.requestId]);
  rest.push([
    "x-forwarded-client-cert",
    `By=${f.waypointIdentity}` + (f.sourceIdentity ? `;URI=${f.sourceIdentity}` : ""),
  ]);
  rest.push(["traceparent", formatTraceparent(f.trace)]);
  return rest;
}
