/**
 * HTTP/2 field rules (RFC 9113 §8.2, §8.3): which header lists are
 * malformed, and the record shape callers read (`headers["forwarded"]`).
 *
 * The checks are the ones that make a message ambiguous or unsafe to pass
 * on (uppercase or invalid names, CR/LF/NUL in values, unknown, repeated
 * or misplaced pseudo-headers, connection-specific fields). Whether a
 * request is a well-formed CONNECT is left to the HBONE server, which
 * answers 400 with a reason instead of resetting the stream.
 *
 * @module
 */
import type { HeaderField } from "./hpack.ts";

/** Header fields by lowercase name, as node:http2's `IncomingHttpHeaders`. */
export type H2Headers = Record<string, string | string[] | undefined>;

const REQUEST_PSEUDO = new Set([":method", ":scheme", ":authority", ":path", ":protocol"]);
const RESPONSE_PSEUDO = new Set([":status"]);
const NO_PSEUDO = new Set<string>();
const CONNECTION_SPECIFIC = new Set([
  "connection",
  "proxy-connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
]);
// RFC 9110 token characters, lowercase only.
const NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const BAD_VALUE = /[\0\r\n]/;

/** What kind of header list is checked. */
export type FieldKind = "request" | "response" | "trailers";

/**
 * Why a header list is malformed, or undefined when it is acceptable.
 *
 * @example
 * ```ts
 * checkFields([[":status", "200"]], "response"); // undefined
 * checkFields([["Host", "x"]], "request"); // 'field name "Host" is not lowercase ...'
 * ```
 */
export function checkFields(fields: readonly HeaderField[], kind: FieldKind): string | undefined {
  const allowed = kind === "request"
    ? REQUEST_PSEUDO
    : kind === "response"
    ? RESPONSE_PSEUDO
    : NO_PSEUDO;
  const seen = new Set<string>();
  let regular = false;
  for (const [name, value] of fields) {
    if (BAD_VALUE.test(value)) return `field ${name} has a CR, LF or NUL in its value`;
    if (name.startsWith(":")) {
      if (regular) return `pseudo-header ${name} after a regular field`;
      if (!allowed.has(name)) return `pseudo-header ${name} is not allowed in a ${kind}`;
      if (seen.has(name)) return `pseudo-header ${name} appears twice`;
      seen.add(name);
      continue;
    }
    regular = true;
    if (!NAME.test(name)) {
      return `field name ${JSON.stringify(name)} is not lowercase token characters`;
    }
    if (CONNECTION_SPECIFIC.has(name)) return `connection-specific field ${name}`;
    if (name === "te" && value !== "trailers") return `te: ${value} (only "trailers" is allowed)`;
  }
  if (kind === "request" && !seen.has(":method")) return "no :method";
  if (kind === "response" && !seen.has(":status")) return "no :status";
  return undefined;
}

/**
 * The fields as a record: repeated fields are joined with ", " (`cookie`
 * with "; "), except `set-cookie`, which stays a list.
 */
export function toRecord(fields: readonly HeaderField[]): H2Headers {
  const out: H2Headers = {};
  for (const [name, value] of fields) {
    const prev = out[name];
    if (prev === undefined) out[name] = name === "set-cookie" ? [value] : value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = `${prev}${name === "cookie" ? "; " : ", "}${value}`;
  }
  return out;
}

/**
 * Request or response fields from a record: pseudo-headers first, names
 * lowercased; `undefined` values are left out. Throws TypeError on a name
 * or value HTTP/2 cannot carry.
 */
export function fromRecord(headers: Readonly<Record<string, string | undefined>>): HeaderField[] {
  const pseudo: HeaderField[] = [];
  const regular: HeaderField[] = [];
  for (const [rawName, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const name = rawName.toLowerCase();
    const ok = name.startsWith(":") ? NAME.test(name.slice(1)) : NAME.test(name);
    if (!ok) throw new TypeError(`header name ${JSON.stringify(rawName)} is not a valid token`);
    if (BAD_VALUE.test(value)) {
      throw new TypeError(`header ${rawName} has a CR, LF or NUL in ${JSON.stringify(value)}`);
    }
    (name.startsWith(":") ? pseudo : regular).push([name, value]);
  }
  return [...pseudo, ...regular];
}
