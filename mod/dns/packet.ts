/**
 * DNS wire format, through the `dns-packet` library (RFC 1035 messages, EDNS
 * OPT): typed wrappers for the few calls the proxy makes, the header bit
 * masks, and the 12-byte header read that answers packets the library cannot
 * decode (a FORMERR needs the query's ID).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as lib from "dns-packet";

/** A question: name (without the trailing dot), type (`A`, `AAAA`, `UNKNOWN_65`, ...), class. */
export interface DnsQuestion {
  readonly name: string;
  readonly type: string;
  readonly class?: string;
}

/** A resource record other than OPT. `data` depends on the type (an address for A/AAAA). */
export interface DnsRecord {
  readonly name: string;
  readonly type: string;
  readonly class?: string;
  readonly ttl?: number;
  readonly data?: unknown;
}

/** The EDNS(0) pseudo-record (RFC 6891). */
export interface OptRecord {
  readonly name: ".";
  readonly type: "OPT";
  readonly udpPayloadSize: number;
  readonly extendedRcode?: number;
  readonly ednsVersion?: number;
  readonly flags?: number;
  readonly options?: readonly unknown[];
}

/** SOA record data. */
export interface SoaData {
  readonly mname: string;
  readonly rname: string;
  readonly serial: number;
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  readonly minimum: number;
}

/** A decoded message. `flags` holds the 15 bits after QR (opcode, AA, TC, RD, RA, ..., rcode). */
export interface DnsMessage {
  readonly id: number;
  readonly type: "query" | "response";
  readonly flags: number;
  readonly opcode: string;
  readonly rcode: string;
  readonly questions: readonly DnsQuestion[];
  readonly answers: readonly DnsRecord[];
  readonly authorities: readonly DnsRecord[];
  readonly additionals: readonly (DnsRecord | OptRecord)[];
}

/** A message to encode. `flags` carries opcode and rcode too (`rcode` and `opcode` are ignored). */
export interface DnsMessageInit {
  readonly id: number;
  readonly type: "query" | "response";
  readonly flags: number;
  readonly questions?: readonly DnsQuestion[];
  readonly answers?: readonly DnsRecord[];
  readonly authorities?: readonly DnsRecord[];
  readonly additionals?: readonly (DnsRecord | OptRecord)[];
}

/** Header bits, as in `DnsMessage.flags`. */
export const FLAG = {
  AA: 1 << 10,
  TC: 1 << 9,
  RD: 1 << 8,
  RA: 1 << 7,
  AD: 1 << 5,
  CD: 1 << 4,
} as const;

/** Response codes (the 4 header bits). */
export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;

/** Extended rcode BADVERS (16): OPT `extendedRcode` 1 with header rcode 0. */
export const BADVERS_EXTENDED = 1;

/** The fixed 12-byte header, read without decoding the rest. */
export interface DnsHeader {
  readonly id: number;
  readonly qr: boolean;
  readonly opcode: number;
  readonly flags: number;
  readonly rcode: number;
  readonly qdcount: number;
  readonly ancount: number;
  readonly nscount: number;
  readonly arcount: number;
}

/** Raised when bytes are not a DNS message; `message` says what is wrong. */
export class DnsDecodeError extends Error {
  override readonly name = "DnsDecodeError";
  readonly code = "EDNSDECODE";
}

interface Lib {
  decode(buf: Buffer, offset?: number): DnsMessage;
  encode(msg: DnsMessageInit): Buffer;
  /** `decode.bytes`: bytes the last question decode consumed (abstract-encoding). */
  question: { decode: { bytes: number } };
}
const dns = lib as unknown as Lib & { decode: { bytes: number } };

/** Reads the header; undefined when `bytes` is shorter than 12. */
export function readHeader(bytes: Uint8Array): DnsHeader | undefined {
  if (bytes.length < 12) return undefined;
  const v = new DataView(bytes.buffer, bytes.byteOffset, 12);
  const bits = v.getUint16(2);
  return {
    id: v.getUint16(0),
    qr: (bits & 0x8000) !== 0,
    opcode: (bits >> 11) & 0xf,
    flags: bits & 0x7fff,
    rcode: bits & 0xf,
    qdcount: v.getUint16(4),
    ancount: v.getUint16(6),
    nscount: v.getUint16(8),
    arcount: v.getUint16(10),
  };
}

/** Decodes a whole message; throws {@link DnsDecodeError} (also for trailing bytes). */
export function decodeMessage(bytes: Uint8Array): DnsMessage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let msg: DnsMessage;
  try {
    msg = dns.decode(buf);
  } catch (e) {
    throw new DnsDecodeError(describeDecodeError(e), { cause: e });
  }
  const used = dns.decode.bytes;
  if (used !== bytes.length) {
    throw new DnsDecodeError(`${bytes.length - used} bytes after the last record`);
  }
  return msg;
}

function describeDecodeError(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  if (m.includes("name too long")) return "a name is longer than 255 bytes";
  if (m.includes("bad label")) return "a label is longer than 63 bytes (bad label type)";
  if (m.includes("bad pointer")) return "a name has a bad compression pointer";
  if (m.includes("buffer overflow") || e instanceof RangeError) {
    return "the message ends in the middle of a record";
  }
  return `undecodable message (${m})`;
}

/** Encodes a message. */
export function encodeMessage(msg: DnsMessageInit): Uint8Array {
  return dns.encode(msg);
}

/**
 * Decodes a query with exactly one question (check the header first) and
 * says how many bytes that question takes on the wire, from offset 12.
 */
export function decodeQuery(bytes: Uint8Array): { message: DnsMessage; questionLength: number } {
  const message = decodeMessage(bytes);
  if (message.questions.length !== 1) {
    throw new DnsDecodeError(`${message.questions.length} questions (expected 1)`);
  }
  // The library's abstract-encoding `bytes`: what the last question decode consumed.
  return { message, questionLength: dns.question.decode.bytes };
}

/** The OPT record of a message, if any. */
export function optOf(msg: DnsMessage): OptRecord | undefined {
  return msg.additionals.find((r): r is OptRecord => r.type === "OPT");
}
