/**
 * The HTTPRoute/GRPCRoute filters as pure functions over a small request
 * model (`authority`, raw `path` with query, header list): header modifiers,
 * redirects, URL rewrites and mirrors. The waypoint applies a rule's filters,
 * then the chosen backend's, with {@link applyRequestFilters}. ExtensionRef
 * filters (ambit's HTTPFault and LocalRateLimit) are carried in the list for
 * the waypoint, which looks them up in the snapshot and applies them itself.
 *
 * @module
 */
import { authorityHost, type Header, splitTarget } from "./_request.ts";

export type { Header } from "./_request.ts";

/** An HTTPHeaderFilter: set, add or remove headers (one action per name). */
export interface HeaderModifier {
  readonly set?: readonly { readonly name: string; readonly value: string }[];
  readonly add?: readonly { readonly name: string; readonly value: string }[];
  readonly remove?: readonly string[];
}

/** An HTTPPathModifier. */
export interface PathModifier {
  readonly type: "ReplaceFullPath" | "ReplacePrefixMatch";
  readonly replaceFullPath?: string;
  readonly replacePrefixMatch?: string;
}

/** An HTTPRequestRedirectFilter with defaults applied. */
export interface RequestRedirect {
  readonly scheme?: "http" | "https";
  readonly hostname?: string;
  readonly path?: PathModifier;
  readonly port?: number;
  /** 301, 302 (default), 303, 307 or 308. */
  readonly statusCode: number;
}

/** An HTTPURLRewriteFilter. */
export interface UrlRewrite {
  readonly hostname?: string;
  readonly path?: PathModifier;
}

/** A backend a request can be sent (or mirrored) to. */
export interface BackendTarget {
  /** `Service`: a mesh Service; `Hostname`: a ServiceEntry host (Istio's kind). */
  readonly kind: "Service" | "Hostname";
  /** `namespace/name` of the Service, or the host for kind Hostname. */
  readonly service: string;
  readonly port: number;
}

/** A RequestMirror target and the share of requests copied to it. */
export interface MirrorTarget extends BackendTarget {
  /** Share mirrored, as numerator/denominator (default 100/100: every request). */
  readonly numerator: number;
  readonly denominator: number;
}

/**
 * An ExtensionRef filter: an ambit HTTPFault or LocalRateLimit in the route's
 * namespace. Look it up with `key` in the snapshot's `faults` or `rateLimits`.
 */
export interface ExtensionFilter {
  readonly type: "ExtensionRef";
  /** Always `ambit.io`. */
  readonly group: string;
  readonly kind: "HTTPFault" | "LocalRateLimit";
  readonly name: string;
  /** `namespace/name`, the namespace being the route's. */
  readonly key: string;
}

/** One compiled filter, in the order the rule lists it. */
export type RouteFilter =
  | { readonly type: "RequestHeaderModifier"; readonly modifier: HeaderModifier }
  | { readonly type: "ResponseHeaderModifier"; readonly modifier: HeaderModifier }
  | { readonly type: "RequestRedirect"; readonly redirect: RequestRedirect }
  | { readonly type: "URLRewrite"; readonly rewrite: UrlRewrite }
  | { readonly type: "RequestMirror"; readonly mirror: MirrorTarget }
  | ExtensionFilter;

/**
 * Applies a header modifier: `set` replaces every value of the name (at the
 * place of its first occurrence, else at the end), `add` appends a field line,
 * `remove` drops every occurrence. Names compare case-insensitively.
 *
 * @example
 * ```ts
 * modifyHeaders([["X-A", "1"], ["x-a", "2"]], { set: [{ name: "x-a", value: "3" }] });
 * // [["x-a", "3"]]
 * ```
 */
export function modifyHeaders(headers: readonly Header[], mod: HeaderModifier): Header[] {
  let out: Header[] = [...headers];
  for (const { name, value } of mod.set ?? []) {
    const lower = name.toLowerCase();
    const next: Header[] = [];
    let placed = false;
    for (const h of out) {
      if (h[0].toLowerCase() !== lower) next.push(h);
      else if (!placed) {
        next.push([name, value]);
        placed = true;
      }
    }
    if (!placed) next.push([name, value]);
    out = next;
  }
  for (const { name, value } of mod.add ?? []) out.push([name, value]);
  const remove = new Set((mod.remove ?? []).map((n) => n.toLowerCase()));
  if (remove.size > 0) out = out.filter(([n]) => !remove.has(n.toLowerCase()));
  return out;
}

/**
 * Replaces the matched `prefix` of `path` (no query) with `replacement`, by
 * whole segments and ignoring trailing slashes on both, as the Gateway API's
 * ReplacePrefixMatch table specifies: `/foo/bar`, `/foo` → `/xyz` gives
 * `/xyz/bar`; `/foo/`, `/foo` → `` gives `/`. A path the prefix does not
 * match is returned unchanged.
 */
export function replacePrefix(path: string, prefix: string, replacement: string): string {
  const p = trimSlash(prefix);
  if (p !== "" && path !== p && !path.startsWith(`${p}/`)) return path;
  const out = trimSlash(replacement) + path.slice(p.length);
  if (out === "") return "/";
  return out.startsWith("/") ? out : `/${out}`;
}

function trimSlash(s: string): string {
  return s.endsWith("/") ? s.slice(0, -1) : s;
}

/**
 * Applies a path modifier to a raw request target; the query string is kept.
 * ReplacePrefixMatch needs the prefix the rule's PathPrefix match matched.
 *
 * @throws {TypeError} ReplacePrefixMatch without a matched prefix.
 */
export function modifyPath(target: string, mod: PathModifier, matchedPrefix?: string): string {
  const { path, query } = splitTarget(target);
  let next: string;
  if (mod.type === "ReplaceFullPath") {
    next = mod.replaceFullPath || "/";
  } else {
    if (matchedPrefix === undefined) {
      throw new TypeError(
        `ReplacePrefixMatch "${mod.replacePrefixMatch}" needs the rule's PathPrefix match; ` +
          "this request did not match a PathPrefix",
      );
    }
    next = replacePrefix(path, matchedPrefix, mod.replacePrefixMatch ?? "");
  }
  return query === undefined ? next : `${next}?${query}`;
}

/** What a redirect answers: the status and the `Location` header. */
export interface Redirect {
  readonly status: number;
  readonly location: string;
}

/** The parts of a request that filters read and change. */
export interface FilterRequest {
  /** `http` or `https`: the scheme the client used. */
  readonly scheme: string;
  readonly authority: string;
  /** Raw request target: path and query, as sent. */
  readonly path: string;
  readonly headers: readonly Header[];
}

/** Context for filters: the port the request came in on, the matched prefix. */
export interface FilterOptions {
  /** Port the client addressed (the Service port; the Gateway API's "listener port"). */
  readonly listenerPort: number;
  /** The value of the PathPrefix match that selected the rule (for ReplacePrefixMatch). */
  readonly matchedPrefix?: string;
  /** Random number in [0, 1) for mirror fractions. Default `Math.random`. */
  readonly random?: () => number;
}

/**
 * Builds a redirect per HTTPRequestRedirectFilter: scheme and host default to
 * the request's; the port is the filter's, else the scheme's well-known port
 * when the filter sets a scheme, else the listener port; port 80 with http and
 * 443 with https are left out. The query string is kept.
 *
 * @example
 * ```ts
 * redirectResponse(
 *   { scheme: "http", authority: "web:8080", path: "/a?x=1", headers: [] },
 *   { scheme: "https", statusCode: 301 },
 *   { listenerPort: 8080 },
 * ); // { status: 301, location: "https://web/a?x=1" }
 * ```
 */
export function redirectResponse(
  req: FilterRequest,
  redirect: RequestRedirect,
  options: FilterOptions,
): Redirect {
  const scheme = redirect.scheme ?? req.scheme;
  const host = redirect.hostname ?? authorityHost(req.authority);
  const port = redirect.port ??
    (redirect.scheme ? (scheme === "https" ? 443 : 80) : options.listenerPort);
  const defaultPort = (scheme === "http" && port === 80) || (scheme === "https" && port === 443);
  const path = redirect.path
    ? modifyPath(req.path, redirect.path, options.matchedPrefix)
    : req.path;
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return {
    status: redirect.statusCode,
    location: `${scheme}://${hostPart}${defaultPort ? "" : `:${port}`}${path}`,
  };
}

/** The outcome of a rule's (or backend's) filters. */
export type FilterResult =
  | {
    readonly kind: "forward";
    /** The request to send on, rewritten and with its headers modified. */
    readonly request: FilterRequest;
    /** Response header modifiers, in order, for the response that comes back. */
    readonly response: readonly HeaderModifier[];
    /** Where copies of the (final) request go, after mirror fractions were drawn. */
    readonly mirrors: readonly BackendTarget[];
  }
  | {
    readonly kind: "redirect";
    readonly redirect: Redirect;
    readonly response: readonly HeaderModifier[];
  };

/**
 * Applies filters in the order given (the Gateway API asks for list order).
 * A RequestRedirect ends the chain with a redirect; ResponseHeaderModifiers
 * are collected for the response (a redirect's too). ExtensionRef filters
 * are skipped: the waypoint applies faults and rate limits itself.
 */
export function applyRequestFilters(
  req: FilterRequest,
  filters: readonly RouteFilter[],
  options: FilterOptions,
): FilterResult {
  const random = options.random ?? Math.random;
  let request = req;
  const response: HeaderModifier[] = [];
  const mirrors: BackendTarget[] = [];
  for (const f of filters) {
    switch (f.type) {
      case "RequestHeaderModifier":
        request = { ...request, headers: modifyHeaders(request.headers, f.modifier) };
        break;
      case "ResponseHeaderModifier":
        response.push(f.modifier);
        break;
      case "URLRewrite":
        request = {
          ...request,
          authority: f.rewrite.hostname ?? request.authority,
          path: f.rewrite.path
            ? modifyPath(request.path, f.rewrite.path, options.matchedPrefix)
            : request.path,
        };
        break;
      case "RequestMirror":
        if (shouldMirror(f.mirror, random)) {
          const { kind, service, port } = f.mirror;
          mirrors.push({ kind, service, port });
        }
        break;
      case "ExtensionRef":
        break;
      case "RequestRedirect": {
        const rest = filters.slice(filters.indexOf(f) + 1);
        for (const g of rest) if (g.type === "ResponseHeaderModifier") response.push(g.modifier);
        return {
          kind: "redirect",
          redirect: redirectResponse(request, f.redirect, options),
          response,
        };
      }
    }
  }
  return { kind: "forward", request, response, mirrors };
}

/** Whether one request is mirrored to `target`, drawing against its fraction. */
export function shouldMirror(target: MirrorTarget, random: () => number): boolean {
  if (target.numerator >= target.denominator) return true;
  if (target.numerator <= 0) return false;
  return random() < target.numerator / target.denominator;
}

/** Applies response header modifiers in order. */
export function modifyResponseHeaders(
  headers: readonly Header[],
  modifiers: readonly HeaderModifier[],
): Header[] {
  return modifiers.reduce<Header[]>((h, m) => modifyHeaders(h, m), [...headers]);
}
