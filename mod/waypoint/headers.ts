/**
 * Header handling on the waypoint's HTTP path, pure: hop-by-hop headers
 * dropped in both directions, the headers a waypoint adds toward the app
 * (`x-forwarded-for`, `x-forwarded-proto`, `x-request-id`,
 * `x-forwarded-client-cert` carrying the caller's SPIFFE ID, `traceparent`),
 * and W3C trace context.
 *
 * @module
 */
import { toHex } from "../util/bytes.ts";

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
  // One pass for what `connection` lists (rarely anything), one to copy: this
  // runs twice per request, so no Set or closure per call.
  let listed: string[] | undefined;
  for (const [k, v] of h) {
    if (k !== "connection") continue;
    for (const x of v.split(",")) (listed ??= []).push(x.trim().toLowerCase());
  }
  const out: HeaderList = [];
  for (const e of h) {
    const k = e[0];
    if (k.charCodeAt(0) === 58 /* ":" */ || listed?.includes(k)) continue;
    if (HOP_BY_HOP.has(k) && !(k === "te" && e[1].trim().toLowerCase() === "trailers")) continue;
    out.push(e);
  }
  return out;
}

/** Random bytes drawn 4 KiB at a time (IDs are not secrets, but stay unpredictable). */
const RANDOM = new Uint8Array(4096);
let randomAt = RANDOM.length;

/** `bytes` random bytes as lower-case hex. */
function randomHex(bytes: number): string {
  if (randomAt + bytes > RANDOM.length) {
    crypto.getRandomValues(RANDOM);
    randomAt = 0;
  }
  randomAt += bytes;
  return toHex(RANDOM.subarray(randomAt - bytes, randomAt));
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
  const spanId = randomHex(8);
  if (m && !/^0+$/.test(m[1]) && !/^0+$/.test(m[2])) {
    return { traceId: m[1], parentId: m[2], spanId, sampled: (parseInt(m[3], 16) & 1) === 1 };
  }
  return { traceId: randomHex(16), spanId, sampled: rootSampled };
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

/** Headers the waypoint sets itself toward the app (a client's are dropped). */
const SET_TOWARD_APP = new Set([
  "x-forwarded-client-cert",
  "traceparent",
  "x-request-id",
  "x-forwarded-proto",
]);

/**
 * The request headers toward the app: end-to-end headers, then
 * `x-forwarded-for` (appended), `x-forwarded-proto`, `x-request-id`,
 * `x-forwarded-client-cert` (`By=<waypoint>;URI=<caller>`, replacing any the
 * client sent, so an app can trust it) and `traceparent`.
 */
export function upstreamRequestHeaders(h: HeaderList, f: ForwardInfo): HeaderList {
  const rest: HeaderList = [];
  let xff: string | undefined;
  for (const e of endToEnd(h)) {
    const k = e[0];
    if (k === "x-forwarded-for") xff ??= e[1];
    else if (!SET_TOWARD_APP.has(k)) rest.push(e);
  }
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
