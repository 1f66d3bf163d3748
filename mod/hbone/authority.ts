/**
 * Parsing of the HBONE `:authority` (`ip:port` or `[ipv6]:port`). Pure.
 *
 * @module
 */
import { isIP } from "node:net";
import { canonicalIp } from "../config/formats.ts";
import { MAX_AUTHORITY_LENGTH } from "./settings.ts";

/** A socket address. */
export interface HostPort {
  readonly ip: string;
  readonly port: number;
}

/** Result of {@link parseAuthority}: the address, or why it is not one. */
export type AuthorityResult =
  | { readonly ok: true; readonly target: HostPort }
  | { readonly ok: false; readonly reason: string };

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/**
 * Parses `:authority` as an IP literal and a port (1-65535). Host names are
 * refused: HBONE carries addresses, the sender resolved names already.
 *
 * @example
 * parseAuthority("10.0.0.5:8080"); // { ok: true, target: { ip: "10.0.0.5", port: 8080 } }
 */
export function parseAuthority(authority: string | undefined): AuthorityResult {
  if (authority === undefined || authority === "") {
    return { ok: false, reason: "missing :authority" };
  }
  if (authority.length > MAX_AUTHORITY_LENGTH) {
    return {
      ok: false,
      reason: `:authority is ${authority.length} bytes, more than ${MAX_AUTHORITY_LENGTH}`,
    };
  }
  let host: string, portText: string;
  if (authority.startsWith("[")) {
    const end = authority.indexOf("]");
    if (end < 0 || authority[end + 1] !== ":") return bad(authority);
    host = authority.slice(1, end);
    portText = authority.slice(end + 2);
    if (isIP(host) !== 6) return bad(authority);
  } else {
    const i = authority.lastIndexOf(":");
    if (i < 0) return bad(authority);
    host = authority.slice(0, i);
    portText = authority.slice(i + 1);
    if (!V4.test(host)) return bad(authority);
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return bad(authority);
  const port = Number(portText);
  if (port < 1 || port > 65535) return bad(authority);
  return { ok: true, target: { ip: canonicalIp(host), port } };
}

/** Formats an address as an `:authority` (`[v6]:port` for IPv6). */
export function formatAuthority(t: HostPort): string {
  return t.ip.includes(":") ? `[${t.ip}]:${t.port}` : `${t.ip}:${t.port}`;
}

function bad(authority: string): AuthorityResult {
  return {
    ok: false,
    reason: `:authority ${JSON.stringify(authority)} is not an IP address and port`,
  };
}
