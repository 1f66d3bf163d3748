/**
 * Pieces shared by the Gateway API kinds (gateway.networking.k8s.io): name
 * formats, parent and backend references, header modifiers and matches, the
 * mirror filter, ExtensionRef filters (ambit's HTTPFault and LocalRateLimit),
 * and the checks upstream's CEL rules make on filter lists.
 * Limits and messages follow kubernetes-sigs/gateway-api apis/v1.
 *
 * @module
 */
import type { Reference } from "../kind.ts";
import { dnsLabel, dnsSubdomain, hostname, regex } from "../formats.ts";
import { AMBIT_GROUP } from "./mesh.ts";
import {
  def,
  didYouMean,
  formatPath,
  int,
  INVALID,
  list,
  obj,
  oneOf,
  opt,
  type Path,
  port,
  type Reporter,
  req,
  str,
  type Type,
  unsupported,
} from "../schema.ts";

/** Gateway API's own group. */
export const GATEWAY_GROUP = "gateway.networking.k8s.io";
/** Istio's networking group (for `kind: Hostname` backends). */
export const ISTIO_NETWORKING_GROUP = "networking.istio.io";
/** apiVersions of Gateway and HTTPRoute ambit reads (v1 first). */
export const GATEWAY_API = [`${GATEWAY_GROUP}/v1`, `${GATEWAY_GROUP}/v1beta1`];

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Wraps `type` with a check that runs on its checked value and may report at any path. */
export function withCheck<T>(
  type: Type<T>,
  check: (value: T, at: Path, r: Reporter) => void,
): Type<T> {
  return {
    name: type.name,
    object: type.object,
    element: type.element,
    check(value, at, r) {
      const v = type.check(value, at, r);
      if (v === INVALID) return INVALID;
      const before = r.issues.length;
      check(v, at, r);
      return r.issues.slice(before).some((i) => i.severity === "error") ? INVALID : v;
    },
  };
}

/** Gateway API `Group`: empty (the core group) or a DNS subdomain. */
export function apiGroup(): Type<string> {
  return str({
    name: "API group",
    maxLength: 253,
    validate: (
      s,
    ) => (s === "" || SUBDOMAIN.test(s) ? undefined : `"${s}" is not a valid API group`),
    hint: 'e.g. "" (core) or gateway.networking.k8s.io',
  });
}

/** Gateway API `Kind`: a letter, then letters, digits and '-'. */
export function kindName(): Type<string> {
  return str({
    name: "kind",
    minLength: 1,
    maxLength: 63,
    validate: (s) =>
      /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/.test(s) ? undefined : `"${s}" is not a valid kind`,
    hint: "e.g. Service or Gateway",
  });
}

/** Gateway API `ObjectName`: 1 to 253 characters. */
export function objectName(): Type<string> {
  return str({ name: "name", minLength: 1, maxLength: 253 });
}

/** Gateway API `SectionName`: a DNS subdomain (listener, port or rule name). */
export function sectionName(what = "section name"): Type<string> {
  return dnsSubdomain(what);
}

/** Gateway API `HTTPHeaderName` (also used for query parameter names). */
export function headerName(what = "header name"): Type<string> {
  return str({
    name: what,
    minLength: 1,
    maxLength: 256,
    validate: (s) =>
      /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(s) ? undefined : `"${s}" is not a valid ${what}`,
    hint: "letters, digits and !#$%&'*+-.^_`|~ only; no spaces or ':'",
  });
}

// ---------------------------------------------------------------- parentRefs

/** A route's parentRef: a Service (mesh attachment, GAMMA) or a waypoint Gateway. */
export const parentReference = obj({
  group: def(
    apiGroup(),
    GATEWAY_GROUP,
    'API group of the parent: "" for a Service, gateway.networking.k8s.io for a Gateway.',
  ),
  kind: def(
    kindName(),
    "Gateway",
    "Kind of the parent: Service (mesh attachment, as Istio waypoints serve routes) or Gateway.",
  ),
  namespace: opt(dnsLabel("namespace"), "Namespace of the parent; default the route's."),
  name: req(objectName(), "Name of the parent."),
  sectionName: opt(
    sectionName(),
    "A listener name (Gateway) or port name (Service) of the parent.",
  ),
  port: opt(port(), "A port of the parent: for a Service, the route applies to that port only."),
}, {
  title: "ParentReference",
  doc: 'Where a route attaches. For the mesh: {group: "", kind: Service, name: <service>}.',
  refine(p, at, r) {
    if (p.kind === "Service") {
      if (p.group !== "") {
        r.error(
          [...at, "group"],
          `group must be "" for kind Service, got "${p.group}"`,
          'a mesh parentRef is {group: "", kind: Service, name: <service>}',
        );
      }
    } else if (p.kind === "Gateway") {
      if (p.group !== GATEWAY_GROUP) {
        r.error(
          [...at, "group"],
          `group must be "${GATEWAY_GROUP}" for kind Gateway, got "${p.group}"`,
        );
      }
    } else {
      const near = didYouMean(p.kind, ["Service", "Gateway"]);
      r.error(
        [...at, "kind"],
        `parentRef kind "${p.kind}" is not supported by ambit`,
        near
          ? `did you mean "${near}"?`
          : 'attach the route to a Service with group "" and kind Service, or to a waypoint Gateway',
      );
    }
  },
});

/** The checked shape of a ParentReference. */
export interface ParentRef {
  group: string;
  kind: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

/**
 * Upstream's rule for parentRefs naming one parent more than once: every such
 * reference sets the same of sectionName and port, and no two are equal.
 */
function checkDistinctParents(refs: ParentRef[], at: Path, r: Reporter): void {
  const byParent = new Map<string, number[]>();
  refs.forEach((p, i) => {
    const key = JSON.stringify([p.group, p.kind, p.namespace ?? "", p.name]);
    byParent.set(key, [...(byParent.get(key) ?? []), i]);
  });
  for (const idx of byParent.values()) {
    if (idx.length < 2) continue;
    const first = refs[idx[0]];
    const what = `${first.kind} "${first.namespace ? `${first.namespace}/` : ""}${first.name}"`;
    const shape = (p: ParentRef) => `${p.sectionName !== undefined},${p.port !== undefined}`;
    const seen = new Map<string, number>();
    for (const i of idx) {
      const p = refs[i];
      if (shape(p) !== shape(first)) {
        r.error(
          [...at, i],
          `references ${what} again but sets a different combination of sectionName and port`,
          `every reference to one parent sets the same fields; compare ${
            formatPath([...at, idx[0]])
          }`,
        );
        continue;
      }
      const key = `${p.sectionName ?? ""},${p.port ?? ""}`;
      const j = seen.get(key);
      if (j !== undefined) {
        r.error(
          [...at, i],
          `duplicate parentRef to ${what}`,
          `already at ${formatPath([...at, j])}; give each reference its own sectionName or port`,
        );
      } else seen.set(key, i);
    }
  }
}

/** `spec.parentRefs` of a route. */
export const parentRefs: Type<ParentRef[]> = withCheck(
  list(parentReference, { minItems: 1, maxItems: 32 }),
  checkDistinctParents,
);

/** Hostnames of a route (a leading `*.` wildcard label is allowed). */
export const routeHostnames = list(hostname({ wildcard: true }), { maxItems: 16 });

// ---------------------------------------------------------------- backendRefs

/** Fields of a BackendObjectReference. */
export const backendFields = {
  group: def(
    apiGroup(),
    "",
    'API group: "" (core) for a Service, networking.istio.io for an Istio Hostname.',
  ),
  kind: def(
    kindName(),
    "Service",
    "Service, or Istio's Hostname (a host of a ServiceEntry, named in `name`).",
  ),
  name: req(objectName(), "Name of the Service, or the host for kind Hostname."),
  namespace: opt(
    dnsLabel("namespace"),
    "Namespace of the Service; default the route's. Not allowed with kind Hostname.",
  ),
  port: opt(port(), "Port of the Service (or host) to send to; required."),
};

/** The checked shape of a backend reference. */
export interface BackendRefValue {
  group: string;
  kind: string;
  name: string;
  namespace?: string;
  port?: number;
  weight?: number;
  filters?: FilterLike[];
}

/** Checks a backend reference across its fields (kinds as Istio resolves them). */
export function checkBackend(b: BackendRefValue, at: Path, r: Reporter): void {
  if (b.kind === "Service") {
    if (b.group !== "") {
      r.error([...at, "group"], `group must be "" for kind Service, got "${b.group}"`);
      return;
    }
    if (b.name.includes(".")) {
      r.error(
        [...at, "name"],
        `"${b.name}" is a hostname, not a Service name`,
        "give the Service's name and namespace, or use kind Hostname with group networking.istio.io",
      );
      return;
    }
    if (dnsLabel("Service name").check(b.name, [...at, "name"], r) === INVALID) return;
  } else if (b.kind === "Hostname") {
    if (b.group !== ISTIO_NETWORKING_GROUP) {
      r.error(
        [...at, "group"],
        `group must be "${ISTIO_NETWORKING_GROUP}" for kind Hostname, got "${b.group}"`,
      );
      return;
    }
    if (hostname().check(b.name, [...at, "name"], r) === INVALID) return;
    if (b.namespace !== undefined) {
      r.error(
        [...at, "namespace"],
        "namespace may not be set with kind Hostname",
        "a Hostname backend names a ServiceEntry host, which is not namespaced",
      );
      return;
    }
  } else {
    const near = didYouMean(b.kind, ["Service", "Hostname"]);
    r.error(
      [...at, "kind"],
      `backendRef kind "${b.kind}" is not supported by ambit`,
      near
        ? `did you mean "${near}"?`
        : b.kind === "ServiceEntry"
        ? "refer to a ServiceEntry host as {group: networking.istio.io, kind: Hostname, name: <host>}"
        : 'use a Service (group "") or a ServiceEntry host (group networking.istio.io, kind Hostname)',
    );
    return;
  }
  if (b.port === undefined) {
    r.error(
      [...at, "port"],
      `missing required field "port"`,
      "a backend needs the port to send to",
    );
  }
}

/** A BackendObjectReference (the target of a RequestMirror filter). */
export const backendObjectReference = obj(backendFields, {
  title: "BackendObjectReference",
  doc: "A Service, or a ServiceEntry host (kind Hostname), and a port.",
  refine: checkBackend,
});

/** Weight of a backendRef (BackendRef). */
export const backendWeight = def(
  int({ min: 0, max: 1_000_000 }),
  1,
  "Share of traffic relative to the rule's other backends; 0 sends none.",
);

// ---------------------------------------------------------------- headers

const headerValue = (max: number) => str({ name: "header value", minLength: 1, maxLength: max });

const httpHeader = obj({
  name: req(headerName(), "Header name (case-insensitive)."),
  value: req(headerValue(4096), "Header value."),
}, { title: "HTTPHeader" });

const headerList = (doc: string) =>
  opt(
    list(httpHeader, {
      maxItems: 16,
      uniqueBy: (h) => h.name.toLowerCase(),
      uniqueWhat: "header",
    }),
    doc,
  );

/** RequestHeaderModifier / ResponseHeaderModifier (HTTPHeaderFilter). */
export const headerFilter = obj({
  set: headerList("Headers to set, replacing any values they had."),
  add: headerList("Headers to add, after any values they had."),
  remove: opt(
    list(headerName(), { maxItems: 16, uniqueBy: (h) => h.toLowerCase(), uniqueWhat: "header" }),
    "Names of headers to remove.",
  ),
}, {
  title: "HTTPHeaderFilter",
  doc: "Sets, adds or removes headers; one action per header name.",
  refine(f, at, r) {
    // Upstream: "Filters specifying multiple actions of the same or different type for any
    // one header name are invalid."
    const first = new Map<string, string>();
    const note = (name: string, field: string, i: number) => {
      const key = name.toLowerCase();
      const prev = first.get(key);
      if (prev !== undefined) {
        r.error(
          [...at, field, i],
          `header "${name}" already has an action in "${prev}"`,
          "a header filter may set, add or remove a header, only one of these",
        );
      } else first.set(key, field);
    };
    f.set?.forEach((h, i) => note(h.name, "set", i));
    f.add?.forEach((h, i) => note(h.name, "add", i));
    f.remove?.forEach((h, i) => note(h, "remove", i));
  },
});

/** A header match (HTTPHeaderMatch, GRPCHeaderMatch). */
export function headerMatch(title: string) {
  return obj({
    type: def(
      oneOf(["Exact", "RegularExpression"]),
      "Exact",
      "How the value matches: Exact, or RegularExpression (the whole value).",
    ),
    name: req(headerName(), "Header name (case-insensitive)."),
    value: req(headerValue(4096), "Value, or regular expression."),
  }, {
    title,
    refine(m, at, r) {
      if (m.type === "RegularExpression") regex().check(m.value, [...at, "value"], r);
    },
  });
}

/** Header matches: at most 16, names unique case-insensitively. */
export function headerMatches(title: string) {
  return list(headerMatch(title), {
    maxItems: 16,
    uniqueBy: (h) => h.name.toLowerCase(),
    uniqueWhat: "header match",
  });
}

// ---------------------------------------------------------------- filters

/** RequestMirror (HTTPRequestMirrorFilter). */
export const mirrorFilter = obj({
  backendRef: req(backendObjectReference, "Where copies of requests go (responses are ignored)."),
  percent: opt(int({ min: 0, max: 100 }), "Share of requests mirrored, 0-100 (default all)."),
  fraction: opt(
    obj({
      numerator: req(int({ min: 0 }), "Numerator."),
      denominator: def(int({ min: 1 }), 100, "Denominator."),
    }, {
      title: "Fraction",
      refine(f, at, r) {
        if (f.numerator > f.denominator) {
          r.error(
            [...at, "numerator"],
            `numerator ${f.numerator} is larger than denominator ${f.denominator}`,
          );
        }
      },
    }),
    "Share of requests mirrored, as a fraction.",
  ),
}, {
  title: "HTTPRequestMirrorFilter",
  refine(m, at, r) {
    if (m.percent !== undefined && m.fraction !== undefined) {
      r.error(at, "give percent or fraction, not both");
    }
  },
});

/** Kinds an ExtensionRef filter may name: ambit's filter extensions, group `ambit.io`. */
export const EXTENSION_KINDS = ["HTTPFault", "LocalRateLimit"] as const;
/** One of {@link EXTENSION_KINDS}. */
export type ExtensionKind = typeof EXTENSION_KINDS[number];

/** ExtensionRef (Gateway API LocalObjectReference), limited to ambit's filter extensions. */
export const extensionRef = obj({
  group: req(apiGroup(), `The extension's API group: ${AMBIT_GROUP}.`),
  kind: req(kindName(), "Kind of the extension: HTTPFault or LocalRateLimit."),
  name: req(objectName(), "Name of the HTTPFault or LocalRateLimit, in the route's namespace."),
}, {
  title: "LocalObjectReference",
  doc: "An HTTPFault or LocalRateLimit in the route's namespace.",
  refine(e, at, r) {
    const supported = `{group: ${AMBIT_GROUP}, kind: ${EXTENSION_KINDS.join(" or ")}}`;
    if (e.group !== AMBIT_GROUP) {
      r.error(
        [...at, "group"],
        `extensionRef group "${e.group}" is not supported by ambit`,
        `ambit's filter extensions are ${supported}`,
      );
      return;
    }
    if (!(EXTENSION_KINDS as readonly string[]).includes(e.kind)) {
      const near = didYouMean(e.kind, EXTENSION_KINDS);
      r.error(
        [...at, "kind"],
        `extensionRef kind "${e.kind}" is not supported by ambit`,
        near ? `did you mean "${near}"?` : `ambit's filter extensions are ${supported}`,
      );
    }
  },
});

/** Filter types upstream defines that ambit refuses, with the reason. */
export const UNSUPPORTED_FILTERS: Readonly<Record<string, string>> = {
  CORS: "CORS is not implemented by ambit's waypoint yet",
  ExternalAuth: "ambit has no external authorization; use AuthorizationPolicy",
};

/**
 * Upstream's union rules for one filter: the field named by `type` must be
 * set and every other filter field must not. Unsupported types are refused.
 */
export function checkFilterFields(
  f: { type: string },
  fieldOf: Readonly<Record<string, string>>,
  at: Path,
  r: Reporter,
): void {
  const reason = UNSUPPORTED_FILTERS[f.type];
  if (reason !== undefined) {
    r.error([...at, "type"], `filter type ${f.type} is not supported by ambit`, reason);
    return;
  }
  const fields = f as unknown as Record<string, unknown>;
  const want = fieldOf[f.type];
  for (const [type, field] of Object.entries(fieldOf)) {
    if (field === want) {
      if (fields[field] === undefined) {
        r.error([...at, field], `filter type ${f.type} needs "${field}"`);
      }
    } else if (fields[field] !== undefined) {
      r.error([...at, field], `"${field}" is only allowed with type ${type}, not ${f.type}`);
    }
  }
}

/** The checked shape of a route filter, as far as the shared checks need it. */
export interface FilterLike {
  type: string;
  requestMirror?: { backendRef: BackendRefValue };
  extensionRef?: { group: string; kind: string; name: string };
}

/**
 * Upstream's rules for a list of filters: the types in `once` at most once
 * each; the two types of `exclusive` not together. ambit's own: at most one
 * ExtensionRef per extension kind (one fault and one rate limit per rule or
 * backend, as Istio's VirtualService has one `fault` per route and Envoy one
 * local rate limit per route).
 */
export function checkFilterList(
  filters: readonly FilterLike[],
  at: Path,
  r: Reporter,
  once: readonly string[],
  exclusive?: readonly [string, string],
): void {
  const extensions = new Map<string, number>();
  filters.forEach((f, i) => {
    if (f.type !== "ExtensionRef" || f.extensionRef === undefined) return;
    const kind = f.extensionRef.kind;
    const j = extensions.get(kind);
    if (j !== undefined) {
      r.error(
        [...at, i, "extensionRef", "kind"],
        `filter ExtensionRef to kind ${kind} may appear only once`,
        `already at ${formatPath([...at, j])}`,
      );
    } else extensions.set(kind, i);
  });
  const first = new Map<string, number>();
  filters.forEach((f, i) => {
    if (!once.includes(f.type)) return;
    const j = first.get(f.type);
    if (j !== undefined) {
      r.error(
        [...at, i, "type"],
        `filter ${f.type} may appear only once`,
        `already at ${formatPath([...at, j])}`,
      );
    } else first.set(f.type, i);
  });
  if (exclusive && first.has(exclusive[0]) && first.has(exclusive[1])) {
    r.error(at, `${exclusive[0]} and ${exclusive[1]} cannot be used together`);
  }
}

/** The checked shape of a route rule, as far as the shared checks need it. */
export interface RuleLike {
  name?: string;
  matches?: unknown[];
  filters?: FilterLike[];
  backendRefs?: BackendRefValue[];
}

/**
 * Upstream's rules on a route's rule list: at most 128 matches in all, and
 * rule names unique.
 */
export function checkRules(rules: readonly RuleLike[], at: Path, r: Reporter): void {
  const matches = rules.reduce((n, rule) => n + (rule.matches?.length ?? 0), 0);
  if (matches > 128) {
    r.error(at, `the rules have ${matches} matches in all; at most 128 are allowed`);
  }
  const names = new Map<string, number>();
  rules.forEach((rule, i) => {
    if (rule.name === undefined) return;
    const j = names.get(rule.name);
    if (j !== undefined) {
      r.error(
        [...at, i, "name"],
        `duplicate rule name "${rule.name}"`,
        `already at ${formatPath([...at, j, "name"])}`,
      );
    } else names.set(rule.name, i);
  });
}

// ---------------------------------------------------------------- references

/**
 * References a route's parentRefs, backendRefs, mirror filters and
 * ExtensionRef filters make (an extension in the route's namespace).
 */
export function routeReferences(
  ns: string,
  spec: { parentRefs: readonly ParentRef[]; rules?: readonly RuleLike[] },
): Reference[] {
  const refs: Reference[] = [];
  spec.parentRefs.forEach((p, i) => {
    refs.push({
      path: ["spec", "parentRefs", i, "name"],
      kinds: [p.kind],
      namespace: p.namespace ?? ns,
      name: p.name,
    });
  });
  const backend = (b: BackendRefValue, path: Path) => {
    // Hostname backends name a host, not a resource; the route's waypoint resolves them.
    if (b.kind !== "Service") return;
    refs.push({
      path: [...path, "name"],
      kinds: ["Service"],
      namespace: b.namespace ?? ns,
      name: b.name,
    });
  };
  const mirrors = (filters: RuleLike["filters"], path: Path) =>
    filters?.forEach((f, fi) => {
      if (f.requestMirror) {
        backend(f.requestMirror.backendRef, [...path, fi, "requestMirror", "backendRef"]);
      }
    });
  spec.rules?.forEach((rule, ri) => {
    const at = ["spec", "rules", ri];
    mirrors(rule.filters, [...at, "filters"]);
    rule.backendRefs?.forEach((b, bi) => {
      backend(b, [...at, "backendRefs", bi]);
      mirrors(b.filters, [...at, "backendRefs", bi, "filters"]);
    });
  });
  for (const e of routeExtensionRefs(spec)) {
    refs.push({ path: e.path, kinds: [e.kind], namespace: ns, name: e.name });
  }
  return refs;
}

/** An ExtensionRef filter of a route, with where it is. */
export interface RouteExtensionRef {
  /** Field path of the reference's `name`. */
  readonly path: Path;
  readonly kind: string;
  readonly name: string;
}

/** Every ExtensionRef filter of a route's rules and backendRefs, in document order. */
export function routeExtensionRefs(spec: { rules?: readonly RuleLike[] }): RouteExtensionRef[] {
  const out: RouteExtensionRef[] = [];
  const scan = (filters: RuleLike["filters"], path: Path) =>
    filters?.forEach((f, fi) => {
      if (!f.extensionRef) return;
      const { kind, name } = f.extensionRef;
      out.push({ path: [...path, fi, "extensionRef", "name"], kind, name });
    });
  spec.rules?.forEach((rule, ri) => {
    scan(rule.filters, ["spec", "rules", ri, "filters"]);
    rule.backendRefs?.forEach((b, bi) =>
      scan(b.filters, ["spec", "rules", ri, "backendRefs", bi, "filters"])
    );
  });
  return out;
}

/** Session persistence is not supported by ambit. */
export const noSessionPersistence = unsupported(
  "use a DestinationRule consistentHash load balancer",
);

/** `useDefaultGateways` is not supported by ambit. */
export const noDefaultGateways = unsupported("ambit routes attach by parentRefs only");
