/**
 * Just enough of the pcap format (what `tcpdump -w` writes) to check a
 * capture: TCP segments over Ethernet and IPv4, with their payloads.
 *
 * @module
 */

/** One captured TCP segment. */
export interface TcpSegment {
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly payload: Uint8Array;
}

/**
 * The TCP/IPv4 segments of a pcap file (link type Ethernet); other frames
 * are skipped, and so is a last record that is not complete yet.
 */
export function tcpSegments(file: Uint8Array): TcpSegment[] {
  if (file.length < 24) throw new SyntaxError(`not a pcap file: ${file.length} bytes`);
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const magic = v.getUint32(0, true);
  let le: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) le = true;
  else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) le = false;
  else throw new SyntaxError(`not a pcap file: magic 0x${magic.toString(16)}`);
  const linkType = v.getUint32(20, le);
  if (linkType !== 1) throw new RangeError(`link type ${linkType}, expected 1 (Ethernet)`);
  const out: TcpSegment[] = [];
  for (let o = 24; o + 16 <= file.length;) {
    const caplen = v.getUint32(o + 8, le);
    if (o + 16 + caplen > file.length) break; // a record still being written
    const frame = file.subarray(o + 16, o + 16 + caplen);
    o += 16 + caplen;
    const seg = parseFrame(frame);
    if (seg) out.push(seg);
  }
  return out;
}

function parseFrame(f: Uint8Array): TcpSegment | undefined {
  if (f.length < 14 + 20 || f[12] !== 0x08 || f[13] !== 0x00) return undefined; // IPv4 only
  const ip = f.subarray(14);
  const ihl = (ip[0] & 0x0f) * 4;
  const total = (ip[2] << 8) | ip[3];
  if (ip[9] !== 6 || ip.length < ihl + 20) return undefined; // TCP only
  const tcp = ip.subarray(ihl, Math.min(ip.length, total));
  const dataOffset = (tcp[12] >> 4) * 4;
  return {
    src: ip.subarray(12, 16).join("."),
    dst: ip.subarray(16, 20).join("."),
    srcPort: (tcp[0] << 8) | tcp[1],
    dstPort: (tcp[2] << 8) | tcp[3],
    payload: tcp.subarray(dataOffset),
  };
}

/** Whether `needle` occurs in `hay`. */
export function containsBytes(hay: Uint8Array, needle: Uint8Array): boolean {
  if (needle.length === 0) return true;
  let i = hay.indexOf(needle[0]);
  while (i !== -1 && i + needle.length <= hay.length) {
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return true;
    i = hay.indexOf(needle[0], i + 1);
  }
  return false;
}
