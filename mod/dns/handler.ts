/**
 * The DNS proxy's decision for one query, without sockets: check the message,
 * look the name up in the mesh table, and either build the answer or say
 * "forward". Also builds the messages for the other outcomes (SERVFAIL after
 * failed forwarding, truncation for UDP).
 *
 * Checks, in order: shorter than a header → dropped; a response (QR set) →
 * dropped (never answer answers: no loops between servers); opcode other than
 * QUERY → NOTIMP; QDCOUNT ≠ 1 → FORMERR; undecodable (names over 255 bytes,
 * bad labels, truncated records, trailing bytes) → FORMERR; several OPT
 * records → FORMERR; EDNS version > 0 → BADVERS.
 *
 * @module
 */
import type { NameLookup } from "./names.ts";
import {
  BADVERS_EXTENDED,
  decodeQuery,
  DnsDecodeError,
  type DnsMessage,
  type DnsMessageInit,
  type DnsQuestion,
  type DnsRecord,
  encodeMessage,
  FLAG,
  optOf,
  type OptRecord,
  RCODE,
  readHeader,
} from "./packet.ts";

/** How a query ended, as counted in {@link DnsStats}. */
export type DnsOutcome =
  | "answer"
  | "nodata"
  | "nxdomain"
  | "forwarded"
  | "servfail"
  | "formerr"
  | "notimp"
  | "dropped";

/** The transports the proxy serves. */
export type DnsTransport = "udp" | "tcp";

/** Every outcome, in a stable order (for metrics). */
export const DNS_OUTCOMES: readonly DnsOutcome[] = [
  "answer",
  "nodata",
  "nxdomain",
  "forwarded",
  "servfail",
  "formerr",
  "notimp",
  "dropped",
];

/** A parsed, checked query. */
export interface ParsedQuery {
  readonly message: DnsMessage;
  readonly question: DnsQuestion;
  /** The question's bytes as sent (name, type, class). */
  readonly questionWire: Uint8Array;
  readonly opt?: OptRecord;
}

/** What to do with one incoming message. */
export type QueryDecision =
  | {
    readonly kind: "reply";
    readonly outcome: DnsOutcome;
    readonly response: Uint8Array;
    readonly query?: ParsedQuery;
    readonly detail?: string;
  }
  | { readonly kind: "forward"; readonly query: ParsedQuery }
  | { readonly kind: "drop"; readonly detail: string };

/** Inputs of {@link decideQuery}. */
export interface DecideOptions {
  /** The mesh table's decision for a name and type (called at most once). */
  lookup(name: string, type: string): NameLookup;
  /** TTL of mesh answers, seconds. */
  readonly ttl: number;
  /** The mesh zone (for the SOA of negative answers), e.g. `svc.cluster.local`. */
  readonly zone: string;
  /** Reuses encoded mesh answers (one cache per name table and TTL). */
  readonly cache?: ResponseCache;
}

/** The UDP payload size ambit advertises in its OPT records (DNS flag day 2020). */
export const ADVERTISED_UDP_SIZE = 1232;

/** Decides what to answer to `bytes`. */
export function decideQuery(bytes: Uint8Array, o: DecideOptions): QueryDecision {
  const parsed = parseQuery(bytes);
  if (!("message" in parsed)) return parsed;
  const query = parsed;
  const { question } = query;
  if ((question.class ?? "IN") !== "IN") return { kind: "forward", query };
  const found = o.lookup(question.name, question.type);
  if (found.kind === "forward") return { kind: "forward", query };
  const key = o.cache && cacheKey(query, found);
  const cached = key ? o.cache!.get(key, query.message.id) : undefined;
  const response = cached ?? meshReply(query, found, o).response;
  // The answer repeats the question as the library encodes it; a name that
  // does not survive a decode/encode round trip (non-UTF-8 bytes, a dot
  // inside a label, compression in the question) is left to the upstream.
  if (!echoes(response, query.questionWire)) return { kind: "forward", query };
  if (key && !cached) o.cache!.set(key, response);
  return { kind: "reply", outcome: found.kind, response, query };
}

/**
 * Checks and decodes a query; returns it, or the decision for a message
 * that is refused (FORMERR, NOTIMP, BADVERS) or dropped.
 */
export function parseQuery(
  bytes: Uint8Array,
): ParsedQuery | Exclude<QueryDecision, { kind: "forward" }> {
  const header = readHeader(bytes);
  if (!header) return { kind: "drop", detail: `${bytes.length} bytes, shorter than a DNS header` };
  if (header.qr) return { kind: "drop", detail: "a response, not a query" };
  const bare = (rcode: number, outcome: DnsOutcome, detail: string) => ({
    kind: "reply" as const,
    outcome,
    detail,
    response: encodeMessage({
      id: header.id,
      type: "response",
      flags: (header.opcode << 11) | (header.flags & (FLAG.RD | FLAG.CD)) | FLAG.RA | rcode,
    }),
  });
  if (header.opcode !== 0) {
    return bare(RCODE.NOTIMP, "notimp", `opcode ${header.opcode} is not supported`);
  }
  if (header.qdcount !== 1) {
    return bare(RCODE.FORMERR, "formerr", `${header.qdcount} questions (expected 1)`);
  }
  let message: DnsMessage, questionLength: number;
  try {
    ({ message, questionLength } = decodeQuery(bytes));
  } catch (e) {
    if (!(e instanceof DnsDecodeError)) throw e;
    return bare(RCODE.FORMERR, "formerr", e.message);
  }
  const opts = message.additionals.filter((r) => r.type === "OPT");
  const question = message.questions[0];
  if (opts.length > 1) {
    const detail = `${opts.length} OPT records`;
    return replyTo({ message, question }, { outcome: "formerr", rcode: RCODE.FORMERR, detail });
  }
  const opt = opts[0] as OptRecord | undefined;
  const query = { message, question, opt, questionWire: bytes.subarray(12, 12 + questionLength) };
  if (opt && (opt.ednsVersion ?? 0) > 0) {
    return replyTo(query, {
      outcome: "formerr",
      extendedRcode: BADVERS_EXTENDED,
      detail: `EDNS version ${opt.ednsVersion} (only 0 is supported)`,
    });
  }
  return query;
}

function meshReply(
  query: ParsedQuery,
  found: Exclude<NameLookup, { kind: "forward" }>,
  o: DecideOptions,
): QueryDecision & { kind: "reply" } {
  const q = query.question;
  switch (found.kind) {
    case "answer":
      return replyTo(query, {
        outcome: "answer",
        aa: true,
        answers: found.addresses.map((address) => ({
          name: q.name,
          type: address.includes(":") ? "AAAA" : "A",
          class: "IN",
          ttl: o.ttl,
          data: address,
        })),
      });
    case "nodata":
      return replyTo(query, {
        outcome: "nodata",
        aa: true,
        authorities: found.inZone ? [soa(o.zone, o.ttl)] : [],
      });
    case "nxdomain":
      return replyTo(query, {
        outcome: "nxdomain",
        aa: true,
        rcode: RCODE.NXDOMAIN,
        authorities: [soa(o.zone, o.ttl)],
      });
  }
}

/** Whether `response` carries `questionWire` right after its header. */
function echoes(response: Uint8Array, questionWire: Uint8Array): boolean {
  if (response.length < 12 + questionWire.length) return false;
  for (let i = 0; i < questionWire.length; i++) {
    if (response[12 + i] !== questionWire[i]) return false;
  }
  return true;
}

function cacheKey(q: ParsedQuery, found: Exclude<NameLookup, { kind: "forward" }>): string {
  const bits = q.message.flags & (FLAG.RD | FLAG.CD);
  const host = found.kind === "nxdomain" ? "" : found.host;
  return `${q.question.type}|${bits}|${q.opt ? 1 : 0}|${found.kind}|${host}|${q.question.name}`;
}

/**
 * Encoded mesh answers, reused with the ID patched in: encoding is most of
 * the cost of a mesh answer. Keep one per name table (a reload starts a new
 * one) and TTL; it forgets everything when full.
 */
export class ResponseCache {
  readonly #map = new Map<string, Uint8Array>();
  constructor(readonly capacity = 4096) {}

  /** A copy of the cached response with `id`, or undefined. */
  get(key: string, id: number): Uint8Array | undefined {
    const hit = this.#map.get(key);
    if (!hit) return undefined;
    const response = hit.slice();
    response[0] = id >> 8;
    response[1] = id & 0xff;
    return response;
  }

  set(key: string, response: Uint8Array): void {
    if (this.#map.size >= this.capacity) this.#map.clear();
    this.#map.set(key, response);
  }

  /** Number of cached responses. */
  get size(): number {
    return this.#map.size;
  }
}

/** Options of {@link replyTo}. */
export interface ReplyOptions {
  readonly outcome: DnsOutcome;
  readonly rcode?: number;
  readonly extendedRcode?: number;
  /** Authoritative answer (mesh names). */
  readonly aa?: boolean;
  readonly answers?: readonly DnsRecord[];
  readonly authorities?: readonly DnsRecord[];
  readonly detail?: string;
}

/**
 * A response to `query`: same ID, its question, RD and CD copied, RA set,
 * and an OPT record when the query had one.
 */
export function replyTo(
  query: Pick<ParsedQuery, "message" | "question" | "opt">,
  o: ReplyOptions,
): QueryDecision & { kind: "reply" } {
  const m = query.message;
  const opt = query.opt ?? optOf(m);
  const init: DnsMessageInit = {
    id: m.id,
    type: "response",
    flags: (m.flags & (FLAG.RD | FLAG.CD)) | FLAG.RA | (o.aa ? FLAG.AA : 0) | (o.rcode ?? 0),
    questions: [query.question],
    answers: o.answers ?? [],
    authorities: o.authorities ?? [],
    additionals: opt ? [ourOpt(o.extendedRcode)] : [],
  };
  return {
    kind: "reply",
    outcome: o.outcome,
    detail: o.detail,
    query: query as ParsedQuery,
    response: encodeMessage(init),
  };
}

/** SERVFAIL for a query whose forwarding failed. */
export function servfail(query: ParsedQuery, detail: string): Uint8Array {
  return replyTo(query, { outcome: "servfail", rcode: RCODE.SERVFAIL, detail }).response;
}

/**
 * The largest UDP response the client accepts: 512 bytes, or its EDNS UDP
 * payload size when larger (RFC 6891).
 */
export function udpLimit(query: ParsedQuery | undefined): number {
  const size = query?.opt?.udpPayloadSize ?? 512;
  return Math.max(512, Math.min(size, 65_535));
}

/**
 * `response` if it fits in `limit` bytes; otherwise a truncated response
 * (TC set, no records beyond the question and OPT, header bits and rcode of
 * the original), so the client retries over TCP.
 */
export function fitUdp(response: Uint8Array, query: ParsedQuery | undefined, limit: number): {
  response: Uint8Array;
  truncated: boolean;
} {
  if (response.length <= limit) return { response, truncated: false };
  const h = readHeader(response)!;
  const init: DnsMessageInit = {
    id: h.id,
    type: "response",
    flags: h.flags | FLAG.TC,
    questions: query ? [query.question] : [],
    additionals: query?.opt ? [ourOpt()] : [],
  };
  return { response: encodeMessage(init), truncated: true };
}

function ourOpt(extendedRcode = 0): OptRecord {
  return {
    name: ".",
    type: "OPT",
    udpPayloadSize: ADVERTISED_UDP_SIZE,
    extendedRcode,
    ednsVersion: 0,
    flags: 0,
    options: [],
  };
}

function soa(zone: string, ttl: number): DnsRecord {
  return {
    name: zone,
    type: "SOA",
    class: "IN",
    ttl,
    data: {
      mname: `ns.dns.${zone}`,
      rname: `hostmaster.${zone}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86_400,
      minimum: ttl,
    },
  };
}
