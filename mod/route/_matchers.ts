/**
 * Compiles one HTTPRouteMatch or GRPCRouteMatch into a test over a parsed
 * request and a precedence key (higher sorts first).
 *
 * Regular expressions use JavaScript's RegExp (the dialect the config
 * checker accepts) and must match the whole value: a pattern P is compiled as
 * `^(?:P)$`, as Envoy's RE2 full match does. RE2-only syntax such as
 * `(?P<name>...)` or `\C` is not available.
 *
 * @module
 */
import { type Header, headerValue } from "./_request.ts";

/** A request as the matchers see it. */
export interface ParsedRequest {
  readonly method: string;
  /** Path without the query. */
  readonly path: string;
  readonly query: ReadonlyMap<string, string>;
  readonly headers: readonly Header[];
  /** gRPC service and method from `/<service>/<method>`, for gRPC requests. */
  readonly grpc?: GrpcCall;
}

/** A compiled match: a test and its precedence key. */
export interface CompiledMatch {
  readonly test: (req: ParsedRequest) => boolean;
  /** Compared element by element; larger wins. */
  readonly key: readonly number[];
  /** The PathPrefix value, when the match is a PathPrefix match. */
  readonly prefix?: string;
}

/** The checked shape of an HTTPRouteMatch. */
export interface HttpMatchSpec {
  readonly path: { readonly type: string; readonly value: string };
  readonly headers?: readonly ValueMatch[];
  readonly queryParams?: readonly ValueMatch[];
  readonly method?: string;
}

/** The checked shape of a GRPCRouteMatch. */
export interface GrpcMatchSpec {
  readonly method?: { readonly type: string; readonly service?: string; readonly method?: string };
  readonly headers?: readonly ValueMatch[];
}

/** A header or query parameter match. */
export interface ValueMatch {
  readonly type: string;
  readonly name: string;
  readonly value: string;
}

/** Anchors a pattern so it must match the whole value. */
export function fullMatch(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}

function valueTest(m: ValueMatch): (v: string) => boolean {
  if (m.type === "RegularExpression") {
    const re = fullMatch(m.value);
    return (v) => re.test(v);
  }
  return (v) => v === m.value;
}

/** Only the first entry of each name counts (Gateway API); names already unique when checked. */
function firstByName(list: readonly ValueMatch[], fold: boolean): ValueMatch[] {
  const seen = new Set<string>();
  return list.filter((m) => {
    const k = fold ? m.name.toLowerCase() : m.name;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function headerTests(list: readonly ValueMatch[] | undefined) {
  return firstByName(list ?? [], true).map((m) => {
    const ok = valueTest(m);
    return (req: ParsedRequest) => {
      const v = headerValue(req.headers, m.name);
      return v !== undefined && ok(v);
    };
  });
}

/** `/foo/` and `/foo` are one prefix: a trailing slash is ignored. */
export function normalizePrefix(prefix: string): string {
  return prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
}

/** PathPrefix: whole segments, so `/foo` matches `/foo` and `/foo/bar`, not `/foobar`. */
export function prefixMatches(prefix: string, path: string): boolean {
  const p = normalizePrefix(prefix);
  return p === "" || path === p || path.startsWith(`${p}/`);
}

const PATH_RANK: Record<string, number> = { Exact: 2, PathPrefix: 1, RegularExpression: 0 };

/**
 * An HTTPRouteMatch. Key: path kind (Exact > PathPrefix > RegularExpression,
 * the spec leaving regular expressions to implementations), path length
 * (prefix without its trailing slash; pattern length), method given, number
 * of header matches, of query matches.
 */
export function compileHttpMatch(m: HttpMatchSpec): CompiledMatch {
  const tests: ((r: ParsedRequest) => boolean)[] = [];
  const { type, value } = m.path;
  let pathLength = 0;
  if (type === "Exact") {
    tests.push((r) => r.path === value);
    pathLength = value.length;
  } else if (type === "PathPrefix") {
    tests.push((r) => prefixMatches(value, r.path));
    pathLength = normalizePrefix(value).length;
  } else {
    const re = fullMatch(value);
    tests.push((r) => re.test(r.path));
    pathLength = value.length; // as Istio: the longer pattern first
  }
  if (m.method !== undefined) tests.push((r) => r.method === m.method);
  const headers = headerTests(m.headers);
  tests.push(...headers);
  const queries = firstByName(m.queryParams ?? [], false).map((q) => {
    const ok = valueTest(q);
    return (r: ParsedRequest) => {
      const v = r.query.get(q.name);
      return v !== undefined && ok(v);
    };
  });
  tests.push(...queries);
  return {
    test: (r) => tests.every((t) => t(r)),
    key: [
      PATH_RANK[type] ?? 0,
      pathLength,
      m.method !== undefined ? 1 : 0,
      headers.length,
      queries.length,
    ],
    prefix: type === "PathPrefix" ? value : undefined,
  };
}

/**
 * A GRPCRouteMatch (undefined: every gRPC call). Key, after the spec's
 * "characters in a matching service, then method, then header matches":
 * characters of an Exact service, of an Exact method, then (the spec leaves
 * RegularExpression to implementations) characters of a RegularExpression
 * service pattern, of a method pattern, then the number of header matches.
 * So any Exact service outranks a pattern, and a pattern outranks no match.
 */
export function compileGrpcMatch(m: GrpcMatchSpec | undefined): CompiledMatch {
  const tests: ((r: ParsedRequest) => boolean)[] = [];
  const mm = m?.method;
  const regex = mm?.type === "RegularExpression";
  const part = (want: string | undefined, pick: (g: GrpcCall) => string) => {
    if (want === undefined) return;
    const re = regex ? fullMatch(want) : undefined;
    tests.push((r) => r.grpc !== undefined && (re ? re.test(pick(r.grpc)) : pick(r.grpc) === want));
  };
  part(mm?.service, (g) => g.service);
  part(mm?.method, (g) => g.method);
  const headers = headerTests(m?.headers);
  tests.push(...headers);
  const service = mm?.service?.length ?? 0, method = mm?.method?.length ?? 0;
  return {
    test: (r) => tests.every((t) => t(r)),
    key: regex ? [0, 0, service, method, headers.length] : [service, method, 0, 0, headers.length],
  };
}

/** The service and method a gRPC call names. */
export interface GrpcCall {
  readonly service: string;
  readonly method: string;
}

/** Service and method of a gRPC path `/<package.Service>/<Method>`. */
export function grpcCall(path: string): GrpcCall | undefined {
  const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
  return m ? { service: m[1], method: m[2] } : undefined;
}
