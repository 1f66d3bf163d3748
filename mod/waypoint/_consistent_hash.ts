/**
 * The consistent-hash balancer: the hash key from the request (header,
 * cookie, source IP or query parameter), an optional generated cookie, and
 * the ring lookup.
 *
 * @module
 */
import type { Endpoint } from "../config/snapshot.ts";
import { endpointKey } from "./_endpoint_key.ts";
import { hash32 } from "./_hash32.ts";
import type { Random } from "./_seeded_random.ts";
import { buildRing, lookupRing, type Ring } from "./_ring.ts";
import type { ConsistentHashSettings } from "./traffic_policy.ts";
import { durationMs } from "./traffic_policy.ts";
import { toHex } from "../util/bytes.ts";

/** What a balancer may read from a request. */
export interface RequestContext {
  /** Request headers, names case-insensitive (a `Headers` fits). */
  readonly headers?: { get(name: string): string | null };
  /** Query parameters (a `URLSearchParams` fits). */
  readonly query?: { get(name: string): string | null };
  /** The downstream client's IP address. */
  readonly sourceIp?: string;
}

/** A pick: the endpoint, and a `Set-Cookie` value to add to the response when one was generated. */
export interface Pick {
  readonly endpoint: Endpoint;
  readonly setCookie?: string;
}

/** Reads one cookie from a `Cookie` header; surrounding double quotes are dropped. */
export function readCookie(header: string | null | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const v = part.slice(eq + 1).trim();
    return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
  }
  return undefined;
}

/** A random 16-hex-digit cookie value. */
export function randomCookieValue(): string {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return toHex(b);
}

/** Picks by consistent hash; see `createBalancer`. */
export class ConsistentHashPicker {
  #ring?: Ring;
  #signature = "";
  readonly #cookieTtlMs?: number;

  constructor(
    readonly settings: ConsistentHashSettings,
    readonly random: Random,
    readonly newCookieValue: () => string,
  ) {
    const ttl = settings.httpCookie?.ttl;
    this.#cookieTtlMs = ttl === undefined
      ? undefined
      : durationMs("loadBalancer.consistentHash.httpCookie.ttl", ttl, 0);
  }

  pick(endpoints: readonly Endpoint[], ctx: RequestContext): Pick {
    const ring = this.#ringFor(endpoints);
    const key = this.#hashKey(ctx);
    if (key !== undefined) return { endpoint: lookupRing(ring, hash32(key)) };
    const cookie = this.settings.httpCookie;
    if (cookie && this.#cookieTtlMs !== undefined) {
      const value = this.newCookieValue();
      return { endpoint: lookupRing(ring, hash32(value)), setCookie: this.#setCookie(value) };
    }
    // No key: a random point on the ring, as Envoy does when the hash policy yields nothing.
    return { endpoint: lookupRing(ring, Math.floor(this.random() * 2 ** 32)) };
  }

  #hashKey(ctx: RequestContext): string | undefined {
    const s = this.settings;
    if (s.httpHeaderName !== undefined) {
      return ctx.headers?.get(s.httpHeaderName) ?? undefined;
    }
    if (s.httpCookie !== undefined) {
      return readCookie(ctx.headers?.get("cookie"), s.httpCookie.name);
    }
    if (s.useSourceIp) return ctx.sourceIp;
    if (s.httpQueryParameterName !== undefined) {
      return ctx.query?.get(s.httpQueryParameterName) ?? undefined;
    }
    return undefined;
  }

  #setCookie(value: string): string {
    const c = this.settings.httpCookie!;
    const parts = [`${c.name}=${value}`];
    if (c.path !== undefined && c.path !== "") parts.push(`Path=${c.path}`);
    // A zero ttl makes a session cookie, as in Envoy.
    if (this.#cookieTtlMs! > 0) {
      parts.push(`Max-Age=${Math.max(1, Math.floor(this.#cookieTtlMs! / 1000))}`);
    }
    parts.push("HttpOnly");
    return parts.join("; ");
  }

  /** The ring for this endpoint set, rebuilt only when the set or a weight changes. */
  #ringFor(endpoints: readonly Endpoint[]): Ring {
    if (this.#ring?.endpoints === endpoints) return this.#ring;
    const signature = endpoints.map((e) => `${endpointKey(e)}\u0000${e.weight}`).join("\u0001");
    if (!this.#ring || signature !== this.#signature) {
      this.#ring = buildRing(endpoints);
      this.#signature = signature;
    } else {
      this.#ring = { ...this.#ring, endpoints };
    }
    return this.#ring;
  }
}
