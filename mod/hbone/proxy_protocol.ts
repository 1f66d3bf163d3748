/**
 * HAProxy PROXY protocol: v2 encoding (what ztunnel sends to apps that opt
 * in, with the source SPIFFE ID in TLV 0xD0) and a v1/v2 decoder (for
 * plaintext inbound on 15006 and for apps).
 *
 * @module
 */
import { isIP } from "node:net";
import { canonicalIp } from "../config/formats.ts";

/** TLV type carrying the peer's SPIFFE ID (as Istio's ztunnel). */
export const SPIFFE_TLV = 0xd0;
const SIG = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);

/** An address and port. */
export interface ProxyAddress {
  readonly ip: string;
  readonly port: number;
}

/** A TLV of a v2 header. */
export interface Tlv {
  readonly type: number;
  readonly value: Uint8Array;
}

/** A decoded header. */
export interface ProxyHeader {
  readonly version: 1 | 2;
  readonly command: "PROXY" | "LOCAL";
  readonly source?: ProxyAddress;
  readonly destination?: ProxyAddress;
  readonly tlvs: readonly Tlv[];
  /** TLV 0xD0, decoded. */
  readonly spiffeId?: string;
}

/** Raised for a malformed header. */
export class ProxyProtocolError extends Error {
  override readonly name = "ProxyProtocolError";
  readonly code = "EPROXYPROTO";
}

/** Encodes a v2 PROXY header for TCP over IPv4 or IPv6. */
export function encodeProxyV2(o: {
  source: ProxyAddress;
  destination: ProxyAddress;
  tlvs?: readonly Tlv[];
}): Uint8Array {
  const fam = isIP(o.source.ip);
  if (fam === 0 || fam !== isIP(o.destination.ip)) {
    throw new TypeError(
      `PROXY v2 needs two addresses of one family, got "${o.source.ip}" and "${o.destination.ip}"`,
    );
  }
  const addrLen = fam === 4 ? 12 : 36;
  const tlvLen = (o.tlvs ?? []).reduce((n, t) => n + 3 + t.value.length, 0);
  const out = new Uint8Array(16 + addrLen + tlvLen);
  const dv = new DataView(out.buffer);
  out.set(SIG, 0);
  out[12] = 0x21; // version 2, PROXY
  out[13] = fam === 4 ? 0x11 : 0x21; // TCP over IPv4 / IPv6
  dv.setUint16(14, addrLen + tlvLen);
  let off = 16;
  const a = ipBytes(o.source.ip), b = ipBytes(o.destination.ip);
  out.set(a, off);
  out.set(b, off + a.length);
  off += a.length * 2;
  dv.setUint16(off, o.source.port);
  dv.setUint16(off + 2, o.destination.port);
  off += 4;
  for (const t of o.tlvs ?? []) {
    out[off] = t.type;
    dv.setUint16(off + 1, t.value.length);
    out.set(t.value, off + 3);
    off += 3 + t.value.length;
  }
  return out;
}

/** A v2 header for a proxied peer, with its SPIFFE ID in TLV 0xD0 when known. */
export function proxyHeaderForPeer(
  source: ProxyAddress,
  destination: ProxyAddress,
  spiffeId?: string,
): Uint8Array {
  let src = source;
  // Mixed families (an IPv4 client to an IPv6 workload): map the IPv4 side.
  if (isIP(source.ip) !== isIP(destination.ip) && isIP(source.ip) === 4) {
    src = { ip: `::ffff:${source.ip}`, port: source.port };
  }
  let dst = destination;
  if (isIP(src.ip) !== isIP(dst.ip) && isIP(dst.ip) === 4) {
    dst = { ip: `::ffff:${dst.ip}`, port: dst.port };
  }
  return encodeProxyV2({
    source: src,
    destination: dst,
    tlvs: spiffeId ? [{ type: SPIFFE_TLV, value: new TextEncoder().encode(spiffeId) }] : [],
  });
}

/**
 * Decodes a v1 or v2 header at the start of `buf`: the header and the bytes
 * it took, or "incomplete" when more bytes are needed. Throws
 * {@link ProxyProtocolError} when the bytes cannot be a valid header.
 */
export function decodeProxyHeader(
  buf: Uint8Array,
  maxLength = 4096,
): { header: ProxyHeader; consumed: number } | "incomplete" {
  if (buf.length === 0) return "incomplete";
  if (buf[0] === 0x0d) return decodeV2(buf, maxLength);
  if (buf[0] === 0x50) return decodeV1(buf);
  throw new ProxyProtocolError("connection does not start with a PROXY protocol header");
}

function decodeV2(buf: Uint8Array, maxLength: number) {
  const n = Math.min(buf.length, 12);
  for (let i = 0; i < n; i++) {
    if (buf[i] !== SIG[i]) throw new ProxyProtocolError("bad PROXY v2 signature");
  }
  if (buf.length < 16) return "incomplete" as const;
  const vc = buf[12];
  if (vc >> 4 !== 2) throw new ProxyProtocolError(`unsupported PROXY version ${vc >> 4}`);
  const cmd = vc & 0xf;
  if (cmd > 1) throw new ProxyProtocolError(`unknown PROXY v2 command ${cmd}`);
  const len = (buf[14] << 8) | buf[15];
  if (16 + len > maxLength) {
    throw new ProxyProtocolError(`PROXY v2 header of ${16 + len} bytes exceeds ${maxLength}`);
  }
  if (buf.length < 16 + len) return "incomplete" as const;
  const body = buf.subarray(16, 16 + len);
  const famProto = buf[13];
  let off = 0;
  let source: ProxyAddress | undefined, destination: ProxyAddress | undefined;
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (famProto === 0x11 || famProto === 0x21) {
    const al = famProto === 0x11 ? 4 : 16;
    if (len < al * 2 + 4) throw new ProxyProtocolError("PROXY v2 address block is truncated");
    source = { ip: ipString(body.subarray(0, al)), port: dv.getUint16(al * 2) };
    destination = { ip: ipString(body.subarray(al, al * 2)), port: dv.getUint16(al * 2 + 2) };
    off = al * 2 + 4;
  } else if (famProto !== 0x00 && cmd === 1) {
    throw new ProxyProtocolError(`unsupported PROXY v2 family/protocol 0x${famProto.toString(16)}`);
  } else {
    off = len; // LOCAL or UNSPEC: skip the block, no TLVs parsed
  }
  const tlvs: Tlv[] = [];
  while (off < len) {
    if (off + 3 > len) throw new ProxyProtocolError("PROXY v2 TLV is truncated");
    const type = body[off];
    const l = dv.getUint16(off + 1);
    if (off + 3 + l > len) throw new ProxyProtocolError("PROXY v2 TLV value is truncated");
    tlvs.push({ type, value: body.slice(off + 3, off + 3 + l) });
    off += 3 + l;
  }
  const id = tlvs.find((t) => t.type === SPIFFE_TLV);
  const header: ProxyHeader = {
    version: 2,
    command: cmd === 1 ? "PROXY" : "LOCAL",
    source: cmd === 1 ? source : undefined,
    destination: cmd === 1 ? destination : undefined,
    tlvs,
    spiffeId: id ? new TextDecoder().decode(id.value) : undefined,
  };
  return { header, consumed: 16 + len };
}

function decodeV1(buf: Uint8Array) {
  const prefix = "PROXY ";
  for (let i = 0; i < Math.min(buf.length, prefix.length); i++) {
    if (buf[i] !== prefix.charCodeAt(i)) throw new ProxyProtocolError("bad PROXY v1 header");
  }
  const end = buf.indexOf(0x0a);
  if (end < 0) {
    if (buf.length >= 107) throw new ProxyProtocolError("PROXY v1 header longer than 107 bytes");
    return "incomplete" as const;
  }
  if (end + 1 > 107 || buf[end - 1] !== 0x0d) {
    throw new ProxyProtocolError("PROXY v1 header must end with CRLF within 107 bytes");
  }
  const parts = new TextDecoder().decode(buf.subarray(0, end - 1)).split(" ");
  if (parts[1] === "UNKNOWN") {
    return {
      header: { version: 1 as const, command: "PROXY" as const, tlvs: [] },
      consumed: end + 1,
    };
  }
  if (parts.length !== 6 || (parts[1] !== "TCP4" && parts[1] !== "TCP6")) {
    throw new ProxyProtocolError("PROXY v1 header is not TCP4/TCP6 with two addresses and ports");
  }
  const fam = parts[1] === "TCP4" ? 4 : 6;
  const [, , sip, dip, sp, dp] = parts;
  for (const ip of [sip, dip]) {
    if (isIP(ip) !== fam) throw new ProxyProtocolError(`"${ip}" is not an IPv${fam} address`);
  }
  for (const p of [sp, dp]) {
    if (!/^[0-9]{1,5}$/.test(p) || Number(p) > 65535) {
      throw new ProxyProtocolError(`"${p}" is not a port`);
    }
  }
  return {
    header: {
      version: 1 as const,
      command: "PROXY" as const,
      source: { ip: canonicalIp(sip), port: Number(sp) },
      destination: { ip: canonicalIp(dip), port: Number(dp) },
      tlvs: [],
    },
    consumed: end + 1,
  };
}

function ipBytes(ip: string): Uint8Array {
  if (isIP(ip) === 4) return new Uint8Array(ip.split(".").map(Number));
  const full = canonicalIp(ip);
  let text = full;
  let tail: number[] = [];
  const v4 = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    const p = v4[1].split(".").map(Number);
    tail = [(p[0] << 8) | p[1], (p[2] << 8) | p[3]];
    text = text.slice(0, -v4[1].length) + "0:0";
  }
  const [head, rest] = text.split("::");
  const h = head ? head.split(":") : [];
  const r = rest !== undefined ? (rest ? rest.split(":") : []) : [];
  const groups = rest !== undefined ? [...h, ...Array(8 - h.length - r.length).fill("0"), ...r] : h;
  const words = groups.map((g) => parseInt(g, 16));
  if (tail.length) words.splice(6, 2, ...tail);
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  return out;
}

function ipString(b: Uint8Array): string {
  if (b.length === 4) return [...b].join(".");
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((b[i] << 8) | b[i + 1]).toString(16));
  return canonicalIp(words.join(":"));
}
