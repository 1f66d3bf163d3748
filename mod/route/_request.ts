/**
 * Reading the parts of a request that routes match on: the path without its
 * query, the query parameters, header values, the host of `:authority`.
 * Nothing is normalized: percent-encoding, repeated and empty segments stay
 * as the client sent them, as the Gateway API matches the path it was given.
 *
 * @module
 */

/** A header as `[name, value]`; names compare case-insensitively. */
export type Header = readonly [name: string, value: string];

/** Splits a raw request target into its path and its query (without `?`). */
export function splitTarget(target: string): { path: string; query?: string } {
  const q = target.indexOf("?");
  return q < 0 ? { path: target } : { path: target.slice(0, q), query: target.slice(q + 1) };
}

/**
 * The first value of each query parameter (Gateway API recommends the first
 * when a parameter repeats). Names and values are percent-decoded; a
 * malformed escape leaves the text as sent.
 */
export function queryParams(query: string | undefined): Map<string, string> {
  const params = new Map<string, string>();
  if (!query) return params;
  for (const part of query.split("&")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = decode(eq < 0 ? part : part.slice(0, eq));
    if (!params.has(name)) params.set(name, decode(eq < 0 ? "" : part.slice(eq + 1)));
  }
  return params;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The value of header `name` (case-insensitive). A header sent several times
 * is one comma-joined value, as RFC 9110 section 5.3 (RFC 7230 3.2.2) combines
 * field lines; undefined when absent.
 */
export function headerValue(headers: readonly Header[], name: string): string | undefined {
  const lower = name.toLowerCase();
  let value: string | undefined;
  for (const [n, v] of headers) {
    if (n.toLowerCase() !== lower) continue;
    value = value === undefined ? v : `${value},${v}`;
  }
  return value;
}

/** The host of an `:authority` (or Host) value: port and brackets removed, lower case. */
export function authorityHost(authority: string): string {
  let host = authority;
  if (host.startsWith("[")) {
    const end = host.indexOf("]");
    host = end < 0 ? host.slice(1) : host.slice(1, end);
  } else {
    const colon = host.lastIndexOf(":");
    if (colon >= 0 && host.indexOf(":") === colon) host = host.slice(0, colon);
  }
  return host.toLowerCase().replace(/\.$/, "");
}
