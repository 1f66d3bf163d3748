/**
 * Gateway API route hostnames: matching a request host, the precedence score
 * of a match, and whether two hostname lists intersect.
 *
 * @module
 */

/** How well a route's hostnames match a host; higher wins (Gateway API HTTPRouteSpec.hostnames). */
export interface HostScore {
  /** Characters in the matching non-wildcard hostname (0 for a wildcard or no hostnames). */
  readonly exact: number;
  /** Characters in the matching hostname, wildcard or not. */
  readonly any: number;
}

const NONE: HostScore = { exact: 0, any: 0 };

/** Whether hostname `pattern` (`*.` wildcard allowed) matches host `host`. */
export function hostnameMatches(pattern: string, host: string): boolean {
  const p = pattern.toLowerCase();
  if (!p.startsWith("*.")) return p === host;
  // "*.example.com" is a suffix match of at least one label: not "example.com" itself.
  return host.endsWith(p.slice(1)) && host.length > p.length - 1;
}

/**
 * The best score among `hostnames` matching `host`; a route without
 * hostnames matches every host with score 0, and undefined means no match.
 */
export function hostScore(hostnames: readonly string[], host: string): HostScore | undefined {
  if (hostnames.length === 0) return NONE;
  let best: HostScore | undefined;
  for (const h of hostnames) {
    if (!hostnameMatches(h, host)) continue;
    const score = { exact: h.startsWith("*.") ? 0 : h.length, any: h.length };
    if (!best || compareHostScore(score, best) < 0) best = score;
  }
  return best;
}

/** Sorts better scores first. */
export function compareHostScore(a: HostScore, b: HostScore): number {
  return b.exact - a.exact || b.any - a.any;
}

/** Whether some host could match both lists (an empty list matches every host). */
export function hostnamesIntersect(a: readonly string[], b: readonly string[]): boolean {
  if (a.length === 0 || b.length === 0) return true;
  return a.some((x) => b.some((y) => pairIntersects(x.toLowerCase(), y.toLowerCase())));
}

function pairIntersects(x: string, y: string): boolean {
  const wx = x.startsWith("*."), wy = y.startsWith("*.");
  if (!wx && !wy) return x === y;
  if (wx && !wy) return hostnameMatches(x, y);
  if (!wx && wy) return hostnameMatches(y, x);
  // Two wildcards meet when one suffix contains the other.
  return x.endsWith(y.slice(1)) || y.endsWith(x.slice(1));
}
