/**
 * The mesh's name table, built from a config snapshot: which names the DNS
 * proxy answers itself and with which addresses. Pure: {@link MeshNames.lookup}
 * takes a name, a type and the asking client's namespaces and returns a
 * decision; the server turns it into a DNS message.
 *
 * - `<service>.<namespace>.svc.<dnsSuffix>` → the Service VIP (A or AAAA by family).
 * - Short forms, as a pod's search path would expand them:
 *   `<service>.<namespace>.svc` and `<service>.<namespace>` for any namespace;
 *   `<service>` only when exactly one of the client's namespaces has it.
 *   Anything else with those shapes is forwarded (it may be a real domain).
 * - ServiceEntry hosts (exact, or `*.domain` wildcards, most specific first)
 *   with `spec.addresses`: those IPs (CIDRs other than /32 and /128 are
 *   skipped). A host without usable addresses is forwarded, as Istio does for
 *   hosts it has no VIP for.
 * - Any other name inside the mesh zone `svc.<dnsSuffix>`: authoritative
 *   NXDOMAIN, never forwarded (NOERROR/no data for names that have names below
 *   them, e.g. `<namespace>.svc.<dnsSuffix>`).
 *
 * Names compare case-insensitively; a trailing dot is ignored. A Service wins
 * over a ServiceEntry host with the same name.
 *
 * @module
 */
import { isIP } from "node:net";
import { canonicalIp, parseCidr } from "../config/formats.ts";
import type { Resource } from "../config/kind.ts";
import type { Snapshot } from "../config/snapshot.ts";

/** Where a name in the table comes from: `Service/ns/name` or `ServiceEntry/ns/name`. */
export type NameSource = string;

/** What {@link MeshNames.lookup} decided. */
export type NameLookup =
  /** Mesh addresses for the name (IPv4 for A, IPv6 for AAAA, both for ANY). */
  | {
    readonly kind: "answer";
    readonly addresses: readonly string[];
    /** The table entry's host name (FQDN, lower case). */
    readonly host: string;
    readonly source: NameSource;
  }
  /** The name exists but has no record of the asked type: NOERROR, empty answer. */
  | { readonly kind: "nodata"; readonly host: string; readonly inZone: boolean }
  /** Inside the mesh zone but unknown: authoritative NXDOMAIN. */
  | { readonly kind: "nxdomain" }
  /** Not a mesh name: ask the host's resolvers. */
  | { readonly kind: "forward" };

/** Who is asking: the namespaces of the querying client's workloads (for short names). */
export interface LookupContext {
  readonly namespaces: readonly string[];
}

interface Entry {
  readonly host: string;
  readonly v4: readonly string[];
  readonly v6: readonly string[];
  readonly source: NameSource;
}

const FORWARD: NameLookup = Object.freeze({ kind: "forward" });
const NXDOMAIN: NameLookup = Object.freeze({ kind: "nxdomain" });

/** The name table of one snapshot. Immutable; build one per snapshot ({@link meshNamesFor}). */
export class MeshNames {
  /** The mesh zone, `svc.<dnsSuffix>` (lower case). */
  readonly zone: string;
  /** The DNS suffix, e.g. `cluster.local`. */
  readonly suffix: string;
  readonly #exact = new Map<string, Entry>();
  /** Hosts known but without addresses (ServiceEntry without spec.addresses): forwarded. */
  readonly #known = new Set<string>();
  /** Service name → namespace → entry, for short forms. */
  readonly #short = new Map<string, Map<string, Entry>>();
  /** `*.example.com` hosts by `example.com`. */
  readonly #wildcards = new Map<string, Entry>();
  /** Names inside the zone that have names below them (empty non-terminals). */
  readonly #interior = new Set<string>();

  /**
   * Builds the table.
   *
   * @example
   * ```ts
   * const names = MeshNames.fromSnapshot(snapshot);
   * names.lookup("reviews.shop.svc.cluster.local", "A", { namespaces: [] });
   * ```
   */
  static fromSnapshot(snapshot: Snapshot): MeshNames {
    return new MeshNames(snapshot);
  }

  private constructor(snapshot: Snapshot) {
    this.suffix = normalizeName(snapshot.mesh.dnsSuffix);
    this.zone = `svc.${this.suffix}`;
    for (const s of snapshot.services.values()) {
      const host = normalizeName(s.hostname);
      const vip = canonicalIp(s.vip);
      const entry: Entry = {
        host,
        v4: isIP(vip) === 4 ? [vip] : [],
        v6: isIP(vip) === 6 ? [vip] : [],
        source: `Service/${s.key}`,
      };
      this.#exact.set(host, entry);
      const byNs = this.#short.get(s.name) ?? new Map<string, Entry>();
      byNs.set(s.namespace, entry);
      this.#short.set(s.name, byNs);
    }
    this.#addServiceEntries(snapshot.serviceEntries);
    for (const host of [...this.#exact.keys(), ...this.#known]) this.#markInterior(host);
  }

  #addServiceEntries(entries: readonly Resource[]): void {
    const merged = new Map<string, { v4: Set<string>; v6: Set<string>; source: string }>();
    for (const res of entries) {
      const spec = res.spec as { hosts?: readonly string[]; addresses?: readonly string[] };
      const { v4, v6 } = entryAddresses(spec.addresses ?? []);
      for (const raw of spec.hosts ?? []) {
        const host = normalizeName(raw);
        if (host === "*" || host === "") continue;
        const m = merged.get(host) ??
          {
            v4: new Set(),
            v6: new Set(),
            source: `ServiceEntry/${res.metadata.namespace}/${res.metadata.name}`,
          };
        for (const a of v4) m.v4.add(a);
        for (const a of v6) m.v6.add(a);
        merged.set(host, m);
      }
    }
    for (const [host, m] of merged) {
      const wildcard = host.startsWith("*.");
      if (!wildcard && this.#exact.has(host)) continue; // a Service wins
      const entry: Entry = { host, v4: [...m.v4], v6: [...m.v6], source: m.source };
      const usable = entry.v4.length + entry.v6.length > 0;
      if (wildcard) {
        if (usable) this.#wildcards.set(host.slice(2), entry);
      } else if (usable) this.#exact.set(host, entry);
      else this.#known.add(host);
    }
  }

  #markInterior(host: string): void {
    if (!this.#inZone(host)) return;
    let rest = host;
    while (rest !== this.zone) {
      rest = rest.slice(rest.indexOf(".") + 1);
      this.#interior.add(rest);
    }
  }

  #inZone(name: string): boolean {
    return name === this.zone || name.endsWith(`.${this.zone}`);
  }

  /** Number of names answered (exact hosts and wildcards). */
  get size(): number {
    return this.#exact.size + this.#wildcards.size;
  }

  /**
   * Decides how to answer `qname` for record type `qtype` (`A`, `AAAA`, `ANY`,
   * or any other type name, which has no mesh data).
   */
  lookup(qname: string, qtype: string, context: LookupContext): NameLookup {
    const name = normalizeName(qname);
    if (name === "") return FORWARD;
    const exact = this.#exact.get(name);
    if (exact) return answerFor(exact, qtype, this.#inZone(name));
    if (this.#known.has(name)) return FORWARD;
    if (this.#inZone(name)) {
      return this.#interior.has(name) ? { kind: "nodata", host: name, inZone: true } : NXDOMAIN;
    }
    const short = this.#shortForm(name, context);
    if (short) return answerFor(short, qtype, false);
    const wild = this.#wildcard(name);
    if (wild) return answerFor(wild, qtype, false);
    return FORWARD;
  }

  /**
   * The mesh addresses for `name` (both families), or undefined when the mesh
   * does not answer it (unknown, forwarded, or NXDOMAIN). For proxies that
   * take domain names, e.g. SOCKS5.
   */
  resolve(name: string, namespaces: readonly string[]): readonly string[] | undefined {
    const r = this.lookup(name, "ANY", { namespaces });
    return r.kind === "answer" ? r.addresses : undefined;
  }

  #shortForm(name: string, context: LookupContext): Entry | undefined {
    const labels = name.split(".");
    if (labels.length === 1) {
      const byNs = this.#short.get(labels[0]);
      if (!byNs) return undefined;
      let found: Entry | undefined;
      for (const ns of new Set(context.namespaces)) {
        const e = byNs.get(ns);
        if (!e) continue;
        if (found) return undefined; // ambiguous: leave it to the search path / upstream
        found = e;
      }
      return found;
    }
    if (labels.length === 2 || (labels.length === 3 && labels[2] === "svc")) {
      return this.#short.get(labels[0])?.get(labels[1]);
    }
    return undefined;
  }

  #wildcard(name: string): Entry | undefined {
    if (this.#wildcards.size === 0) return undefined;
    for (let i = name.indexOf("."); i !== -1; i = name.indexOf(".", i + 1)) {
      const e = this.#wildcards.get(name.slice(i + 1));
      if (e) return e;
    }
    return undefined;
  }
}

function answerFor(e: Entry, qtype: string, inZone: boolean): NameLookup {
  const t = qtype.toUpperCase();
  const addresses = t === "A" ? e.v4 : t === "AAAA" ? e.v6 : t === "ANY" ? [...e.v4, ...e.v6] : [];
  return addresses.length > 0
    ? { kind: "answer", addresses, host: e.host, source: e.source }
    : { kind: "nodata", host: e.host, inZone };
}

function entryAddresses(addresses: readonly string[]): { v4: string[]; v6: string[] } {
  const v4: string[] = [], v6: string[] = [];
  for (const a of addresses) {
    const c = parseCidr(a);
    if (!c) continue;
    if (c.prefix !== (c.family === 4 ? 32 : 128)) continue; // a range has no single address
    const ip = canonicalIp(a.split("/")[0]);
    (c.family === 4 ? v4 : v6).push(ip);
  }
  return { v4, v6 };
}

/** Lower case, without one trailing dot. */
export function normalizeName(name: string): string {
  const n = name.endsWith(".") ? name.slice(0, -1) : name;
  return n.toLowerCase();
}

const cache = new WeakMap<Snapshot, MeshNames>();

/** The name table of `snapshot`, built once per snapshot (cheap to call per query). */
export function meshNamesFor(snapshot: Snapshot): MeshNames {
  let names = cache.get(snapshot);
  if (!names) {
    names = MeshNames.fromSnapshot(snapshot);
    cache.set(snapshot, names);
  }
  return names;
}
