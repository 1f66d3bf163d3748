/**
 * HPACK header compression (RFC 7541): the static table, a decoder with
 * the dynamic table (size updates, eviction), integer and string literals,
 * Huffman strings, and a stateless encoder.
 *
 * The decoder handles every representation a peer may send. The encoder
 * never adds to the dynamic table (ambit sends a handful of headers per
 * stream): it uses static-table references where they match and literals
 * "without indexing" otherwise, Huffman-coded when that is shorter, so its
 * peer's table stays empty and no state has to be kept in step.
 *
 * Strings are handled as latin1 (one code unit per octet), as HTTP/2 field
 * values are octets.
 *
 * @module
 */
import { huffmanDecode, huffmanEncode, HuffmanError, huffmanLength, latin1 } from "./huffman.ts";

/** A header field: name and value. */
export type HeaderField = readonly [name: string, value: string];

/** RFC 7541 Appendix A: the static table, index 1 first. */
export const STATIC_TABLE: readonly HeaderField[] = [
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

/** Per-entry overhead in table size accounting (RFC 7541 §4.1). */
export const ENTRY_OVERHEAD = 32;

/** A header block that cannot be decoded: a connection error (COMPRESSION_ERROR). */
export class HpackError extends Error {
  override readonly name = "HpackError";
}

/** Result of {@link HpackDecoder.decode}. */
export interface DecodedBlock {
  /** The fields in order; stops growing once the list exceeds the limit. */
  readonly headers: HeaderField[];
  /** Whether the decoded list exceeded `maxListSize` (fields beyond it are dropped). */
  readonly oversized: boolean;
}

/**
 * Decodes header blocks, keeping the dynamic table across blocks of one
 * connection. `maxTableSize` is the SETTINGS_HEADER_TABLE_SIZE we
 * advertised (4096 unless changed): the most a size update may ask for.
 */
export class HpackDecoder {
  #entries: HeaderField[] = [];
  #size = 0;
  #max: number;

  constructor(readonly maxTableSize = 4096) {
    this.#max = maxTableSize;
  }

  /** The dynamic table, newest first (for tests). */
  get table(): readonly HeaderField[] {
    return [...this.#entries].reverse();
  }

  /** The dynamic table's size in RFC 7541 octets. */
  get tableSize(): number {
    return this.#size;
  }

  /**
   * Decodes one complete header block. The whole block is always processed
   * (the dynamic table must stay in step with the peer's encoder) even when
   * the list grows past `maxListSize`, but fields past the limit are dropped
   * and `oversized` is set. Throws {@link HpackError} on malformed input.
   */
  decode(block: Uint8Array, maxListSize = Infinity): DecodedBlock {
    const r = { b: block, o: 0 };
    const headers: HeaderField[] = [];
    let listSize = 0;
    let oversized = false;
    let fieldsSeen = false;
    while (r.o < block.length) {
      const first = block[r.o];
      let field: HeaderField;
      if (first & 0x80) {
        // Indexed field (§6.1).
        field = this.#lookup(readInt(r, 7));
      } else if (first & 0x40) {
        // Literal with incremental indexing (§6.2.1).
        field = this.#readLiteral(r, 6);
        this.#insert(field);
      } else if (first & 0x20) {
        // Dynamic table size update (§6.3): only before the first field.
        if (fieldsSeen) throw new HpackError("a dynamic table size update after a header field");
        const size = readInt(r, 5);
        if (size > this.maxTableSize) {
          throw new HpackError(
            `a dynamic table size update to ${size} exceeds the limit of ${this.maxTableSize}`,
          );
        }
        this.#max = size;
        this.#evict(0);
        continue;
      } else {
        // Literal without indexing (0000) or never indexed (0001) (§6.2.2, §6.2.3).
        field = this.#readLiteral(r, 4);
      }
      fieldsSeen = true;
      if (oversized) continue;
      listSize += field[0].length + field[1].length + ENTRY_OVERHEAD;
      if (listSize > maxListSize) oversized = true;
      else headers.push(field);
    }
    return { headers, oversized };
  }

  #readLiteral(r: Reader, prefix: number): HeaderField {
    const index = readInt(r, prefix);
    const name = index === 0 ? readString(r) : this.#lookup(index)[0];
    return [name, readString(r)];
  }

  #lookup(index: number): HeaderField {
    if (index === 0) throw new HpackError("header index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1];
    const d = index - STATIC_TABLE.length;
    if (d > this.#entries.length) {
      throw new HpackError(
        `header index ${index} is beyond the tables (${
          STATIC_TABLE.length + this.#entries.length
        } entries)`,
      );
    }
    return this.#entries[this.#entries.length - d];
  }

  #insert(field: HeaderField): void {
    const size = field[0].length + field[1].length + ENTRY_OVERHEAD;
    // An entry larger than the table empties it and is not added (§4.4).
    this.#evict(size);
    if (size <= this.#max) {
      this.#entries.push(field);
      this.#size += size;
    }
  }

  /** Evicts the oldest entries until `room` more octets fit. */
  #evict(room: number): void {
    let drop = 0;
    while (this.#size + room > this.#max && drop < this.#entries.length) {
      const [n, v] = this.#entries[drop++];
      this.#size -= n.length + v.length + ENTRY_OVERHEAD;
    }
    if (drop > 0) this.#entries.splice(0, drop);
  }
}

interface Reader {
  b: Uint8Array;
  o: number;
}

/** Largest integer accepted in a representation: no field or table is this large. */
const MAX_INT = 0x7fffffff;

/** Reads an integer with an N-bit prefix (§5.1). */
export function readInt(r: Reader, prefix: number): number {
  const mask = (1 << prefix) - 1;
  if (r.o >= r.b.length) throw new HpackError("a header block ends inside an integer");
  let v = r.b[r.o++] & mask;
  if (v < mask) return v;
  let m = 1;
  for (;;) {
    if (r.o >= r.b.length) throw new HpackError("a header block ends inside an integer");
    const byte = r.b[r.o++];
    v += (byte & 0x7f) * m;
    if (v > MAX_INT) throw new HpackError("an integer in a header block is too large");
    if ((byte & 0x80) === 0) return v;
    m *= 128;
  }
}

/** Reads a string literal (§5.2), Huffman-coded or raw. */
function readString(r: Reader): string {
  if (r.o >= r.b.length) throw new HpackError("a header block ends before a string");
  const huffman = (r.b[r.o] & 0x80) !== 0;
  const len = readInt(r, 7);
  if (len > r.b.length - r.o) {
    throw new HpackError(`a string of ${len} octets overruns the header block`);
  }
  const raw = r.b.subarray(r.o, r.o + len);
  r.o += len;
  if (!huffman) return latin1(raw);
  try {
    return huffmanDecode(raw);
  } catch (e) {
    if (e instanceof HuffmanError) throw new HpackError(e.message);
    throw e;
  }
}

/** Writes an integer with an N-bit prefix; `flags` fills the bits above it. */
export function writeInt(out: number[], value: number, prefix: number, flags: number): void {
  const mask = (1 << prefix) - 1;
  if (value < mask) {
    out.push(flags | value);
    return;
  }
  out.push(flags | mask);
  let v = value - mask;
  while (v >= 128) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function writeString(out: number[], s: string): void {
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 0xff) {
      throw new TypeError(`header text ${JSON.stringify(s)} is not latin1 (one octet per char)`);
    }
  }
  const h = huffmanLength(s);
  if (h < s.length) {
    writeInt(out, h, 7, 0x80);
    const buf = new Uint8Array(h);
    huffmanEncode(s, buf, 0);
    for (const b of buf) out.push(b);
  } else {
    writeInt(out, s.length, 7, 0);
    for (let i = 0; i < s.length; i++) out.push(s.charCodeAt(i));
  }
}

const STATIC_FULL = new Map<string, number>();
const STATIC_NAME = new Map<string, number>();
STATIC_TABLE.forEach(([n, v], i) => {
  const key = `${n}\0${v}`;
  if (!STATIC_FULL.has(key)) STATIC_FULL.set(key, i + 1);
  if (!STATIC_NAME.has(n)) STATIC_NAME.set(n, i + 1);
});

/** Options for {@link encodeHeaderBlock}. */
export interface EncodeOptions {
  /**
   * Start with a dynamic table size update to 0 (after the peer changed
   * SETTINGS_HEADER_TABLE_SIZE, and on a connection's first block): our
   * encoder keeps no table, and says so.
   */
  readonly tableSizeZero?: boolean;
}

/**
 * Encodes header fields without touching any dynamic table: an indexed
 * static entry when name and value match one, else a literal without
 * indexing (static name index when the name matches).
 *
 * @example
 * ```ts
 * const block = encodeHeaderBlock([[":method", "CONNECT"], [":authority", "10.0.0.5:8080"]]);
 * ```
 */
export function encodeHeaderBlock(
  fields: readonly HeaderField[],
  options: EncodeOptions = {},
): Uint8Array {
  const out: number[] = [];
  if (options.tableSizeZero) writeInt(out, 0, 5, 0x20);
  for (const [name, value] of fields) {
    const full = STATIC_FULL.get(`${name}\0${value}`);
    if (full !== undefined) {
      writeInt(out, full, 7, 0x80);
      continue;
    }
    const index = STATIC_NAME.get(name);
    if (index !== undefined) writeInt(out, index, 4, 0);
    else {
      out.push(0);
      writeString(out, name);
    }
    writeString(out, value);
  }
  return new Uint8Array(out);
}
