/**
 * String formats shared by the resource schemas: names, labels, addresses,
 * durations. Each is a schema {@link Type} with a message that quotes the
 * value and says what was expected.
 *
 * @module
 */
import { isIP } from "node:net";
import { INVALID, map, obj, opt, str, type Type } from "./schema.ts";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A DNS-1123 label: lowercase letters, digits and '-', at most 63 characters. */
export function dnsLabel(name = "name"): Type<string> {
  return str({
    name,
    validate: (s) =>
      s.length > 63 || !DNS_LABEL.test(s) ? `"${s}" is not a valid ${name}` : undefined,
    hint:
      "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63",
  });
}

/** A DNS-1123 subdomain: dot-separated labels, at most 253 characters. */
export function dnsSubdomain(name = "name"): Type<string> {
  return str({
    name,
    validate: (s) =>
      s.length > 253 || !DNS_SUBDOMAIN.test(s) ? `"${s}" is not a valid ${name}` : undefined,
    hint: "lowercase letters, digits, '-' and '.', at most 253",
  });
}

/** A hostname, optionally starting with a `*.` wildcard label (Gateway API / Istio hosts). */
export function hostname(options: { wildcard?: boolean } = {}): Type<string> {
  return str({
    name: "hostname",
    validate: (s) => {
      const bare = options.wildcard && s.startsWith("*.") ? s.slice(2) : s;
      if (s.length > 253 || !DNS_SUBDOMAIN.test(bare)) return `"${s}" is not a valid hostname`;
      return undefined;
    },
    hint: options.wildcard ? "e.g. api.example.com or *.example.com" : "e.g. api.example.com",
  });
}

/** An IPv4 or IPv6 address (no port, no brackets). */
export function ip(): Type<string> {
  return str({
    name: "IP address",
    validate: (s) => (isIP(s) === 0 ? `"${s}" is not an IP address` : undefined),
    hint: "e.g. 10.0.0.5 or fd00::5",
  });
}

/** An IP address or a CIDR block, e.g. `10.0.0.0/8` or `10.1.2.3`. */
export function cidr(): Type<string> {
  return str({
    name: "IP or CIDR",
    validate: (s) => (parseCidr(s) ? undefined : `"${s}" is not an IP address or CIDR block`),
    hint: "e.g. 10.0.0.0/16 or 192.168.1.7",
  });
}

/** A parsed CIDR block. */
export interface Cidr {
  readonly family: 4 | 6;
  /** The network address as a big-endian bigint. */
  readonly base: bigint;
  readonly prefix: number;
}

/** Parses `a.b.c.d/n`, `v6/n`, or a bare address (as /32 or /128). */
export function parseCidr(s: string): Cidr | undefined {
  const slash = s.indexOf("/");
  const addr = slash === -1 ? s : s.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) return undefined;
  const bits = family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash !== -1) {
    const p = s.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(p)) return undefined;
    prefix = Number(p);
    if (prefix > bits) return undefined;
  }
  const value = ipToBigInt(addr);
  const mask = prefix === 0
    ? 0n
    : ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  return { family: family as 4 | 6, base: value & mask, prefix };
}

/** Whether `address` lies in `block`. */
export function cidrContains(block: Cidr, address: string): boolean {
  const family = isIP(address);
  if (family !== block.family) return false;
  const bits = family === 4 ? 32 : 128;
  const mask = block.prefix === 0
    ? 0n
    : ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - block.prefix)) - 1n);
  return (ipToBigInt(address) & mask) === block.base;
}

/** Converts an IP address (v4 or v6, already valid) to a bigint. */
export function ipToBigInt(address: string): bigint {
  if (isIP(address) === 4) {
    return address.split(".").reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  }
  let a = address;
  const v4 = a.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (v4) {
    const n = ipToBigInt(v4[1]);
    a = a.slice(0, -v4[1].length) + ((n >> 16n) & 0xffffn).toString(16) + ":" +
      (n & 0xffffn).toString(16);
  }
  const [head, tail] = a.includes("::") ? a.split("::") : [a, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g || "0", 16)), 0n);
}

/** Converts a bigint back to a dotted IPv4 address. */
export function bigIntToIpv4(n: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((n >> s) & 0xffn)).join(".");
}

/** Canonical text form of an IP (lowercase, compressed IPv6), for map keys. */
export function canonicalIp(address: string): string {
  if (isIP(address) !== 6) return address;
  const n = ipToBigInt(address);
  const groups: string[] = [];
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups (RFC 5952).
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best === -1) return groups.join(":");
  return groups.slice(0, best).join(":") + "::" + groups.slice(best + bestLen).join(":");
}

const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** A Kubernetes label key: optional DNS prefix, then a name of at most 63 characters. */
export function labelKey(): Type<string> {
  return str({
    name: "label key",
    validate: (s) => {
      const slash = s.lastIndexOf("/");
      const prefix = slash === -1 ? undefined : s.slice(0, slash);
      const name = slash === -1 ? s : s.slice(slash + 1);
      if (prefix !== undefined && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) {
        return `"${s}" is not a valid label key: bad prefix "${prefix}"`;
      }
      if (name.length > 63 || !LABEL_NAME.test(name)) return `"${s}" is not a valid label key`;
      return undefined;
    },
    hint: "e.g. app or app.kubernetes.io/name",
  });
}

/** A Kubernetes label value: empty, or at most 63 alphanumerics with `-_.` inside. */
export function labelValue(): Type<string> {
  return str({
    name: "label value",
    validate: (s) =>
      s !== "" && (s.length > 63 || !LABEL_NAME.test(s))
        ? `"${s}" is not a valid label value`
        : undefined,
    hint: "at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
  });
}

/** A map of Kubernetes labels. */
export function labels(): Type<Record<string, string>> {
  return map(labelValue(), labelKey());
}

/** Istio's `selector: {matchLabels: {...}}` (WorkloadSelector). */
export function workloadSelector() {
  return obj({
    matchLabels: opt(labels(), "Labels a workload must all carry to be selected."),
  }, {
    title: "WorkloadSelector",
    doc: "Selects workloads by labels in the resource's namespace.",
  });
}

/** Gateway API duration: `1h`, `10s`, `500ms`, `1h30m` (units h, m, s, ms). */
export function gatewayDuration(): Type<string> {
  return str({
    name: "duration",
    validate: (s) =>
      /^([0-9]{1,5}(h|m|s|ms)){1,4}$/.test(s) ? undefined : `"${s}" is not a Gateway API duration`,
    hint: "e.g. 10s, 500ms or 1h30m",
  });
}

/** Istio (protobuf) duration: `1s`, `0.5s`, `100ms`, `5m`, `1h`. */
export function istioDuration(): Type<string> {
  return str({
    name: "duration",
    validate: (s) => parseDuration(s) === undefined ? `"${s}" is not a duration` : undefined,
    hint: "e.g. 1s, 0.5s, 100ms or 5m",
  });
}

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 };

/** Parses a Gateway API or Istio duration into milliseconds; undefined when malformed. */
export function parseDuration(s: string): number | undefined {
  const re = /([0-9]+(?:\.[0-9]+)?)(ms|us|h|m|s)/y;
  let total = 0;
  let pos = 0;
  if (s.length === 0) return undefined;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) return undefined;
    total += Number(m[1]) * UNIT_MS[m[2]];
    pos = re.lastIndex;
  }
  return total;
}

/** A regular expression (RE2-like syntax as accepted by JavaScript). */
export function regex(): Type<string> {
  return {
    name: "regular expression",
    check(value, at, r) {
      if (typeof value !== "string") {
        r.error(at, `expected a regular expression, got ${typeof value}`);
        return INVALID;
      }
      try {
        new RegExp(value);
        return value;
      } catch (e) {
        r.error(at, `"${value}" is not a valid regular expression: ${(e as Error).message}`);
        return INVALID;
      }
    },
  };
}

/** An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as plain IPv4; other addresses unchanged. */
export function unmapIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const n = ipToBigInt(ip);
  return n >> 32n === 0xffffn ? bigIntToIpv4(n & 0xffffffffn) : ip;
}

/** Whether `ip` is in 127.0.0.0/8 or is ::1 (also written IPv4-mapped). */
export function isLoopbackIp(ip: string): boolean {
  const v4 = unmapIp(ip);
  return v4.startsWith("127.") || canonicalIp(v4) === "::1";
}
