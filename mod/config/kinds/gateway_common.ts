/**
 * Pieces shared by the Gateway API kinds (gateway.networking.k8s.io):
 * parent and backend references, header modifiers, header matches.
 *
 * @module
 */
import type { Reference } from "../kind.ts";
import { dnsLabel, dnsSubdomain, hostname, regex } from "../formats.ts";
import {
  def,
  int,
  list,
  obj,
  oneOf,
  opt,
  type Path,
  port,
  type Reporter,
  req,
  str,
  unsupported,
} from "../schema.ts";

/** apiVersions of Gateway API kinds ambit reads. */
export const GATEWAY_API = ["gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"];

/** Gateway API's own group. */
export const GATEWAY_GROUP = "gateway.networking.k8s.io";

/** A route's parentRef: a Service (mesh/GAMMA attachment) or a Gateway. */
export const parentReference = obj({
  group: def(
    str({ name: "group" }),
    GATEWAY_GROUP,
    'API group of the parent: "" for a Service, gateway.networking.k8s.io for a Gateway.',
  ),
  kind: def(
    oneOf(["Gateway", "Service"]),
    "Gateway",
    "Kind of the parent: Service (mesh attachment, GAMMA) or Gateway (a waypoint).",
  ),
  namespace: opt(dnsLabel("namespace"), "Namespace of the parent; default the route's."),
  name: req(dnsSubdomain(), "Name of the parent."),
  sectionName: opt(
    dnsLabel("section name"),
    "A listener (Gateway) or port name (Service) of the parent.",
  ),
  port: opt(port(), "A port of the parent (a Service port for mesh attachment)."),
}, {
  title: "ParentReference",
  doc: "Where a route attaches.",
  refine(p, at, r) {
    const want = p.kind === "Service" ? "" : GATEWAY_GROUP;
    if (p.group !== want) {
      r.error([...at, "group"], `group must be "${want}" for kind ${p.kind}, got "${p.group}"`);
    }
  },
});

/** The checked shape of a ParentReference. */
export interface ParentRef {
  group: string;
  kind: "Gateway" | "Service";
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

const headerName = str({
  name: "header name",
  validate: (
    s,
  ) => (/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(s)
    ? undefined
    : `"${s}" is not a valid HTTP header name`),
});

/** `set`/`add` entries of a header modifier. */
const headerValue = obj({
  name: req(headerName, "Header name (case-insensitive)."),
  value: req(str({ maxLength: 4096 }), "Header value."),
}, { title: "HTTPHeader" });

/** RequestHeaderModifier / ResponseHeaderModifier. */
export const headerFilter = obj({
  set: opt(
    list(headerValue, {
      maxItems: 16,
      uniqueBy: (h) => h.name.toLowerCase(),
      uniqueWhat: "header",
    }),
    "Headers to set, replacing existing values.",
  ),
  add: opt(
    list(headerValue, {
      maxItems: 16,
      uniqueBy: (h) => h.name.toLowerCase(),
      uniqueWhat: "header",
    }),
    "Headers to add to existing values.",
  ),
  remove: opt(
    list(headerName, { maxItems: 16, uniqueBy: (h) => h.toLowerCase(), uniqueWhat: "header" }),
    "Header names to remove.",
  ),
}, { title: "HTTPHeaderFilter", doc: "Adds, sets or removes headers." });

/** A header match (HTTPRoute and GRPCRoute). */
export const headerMatch = obj({
  type: def(oneOf(["Exact", "RegularExpression"]), "Exact", "How the value matches."),
  name: req(headerName, "Header name (case-insensitive)."),
  value: req(str({ maxLength: 4096 }), "Value, or regular expression."),
}, {
  title: "HeaderMatch",
  refine(m, at, r) {
    if (m.type === "RegularExpression") regex().check(m.value, [...at, "value"], r);
  },
});

/** Header matches are unique by name, case-insensitively. */
export const headerMatches = list(headerMatch, {
  maxItems: 16,
  uniqueBy: (h) => h.name.toLowerCase(),
  uniqueWhat: "header match",
});

/** Fields of a backend reference (BackendObjectReference). */
export const backendFields = {
  group: def(
    str({ name: "group" }),
    "",
    'API group: "" (core) for a Service, networking.istio.io for an Istio Hostname.',
  ),
  kind: def(
    oneOf(["Service", "Hostname"]),
    "Service",
    "Service, or Istio's Hostname (a ServiceEntry host).",
  ),
  name: req(
    str({ name: "name", minLength: 1, maxLength: 253 }),
    "Service name, or the hostname for kind Hostname.",
  ),
  namespace: opt(
    dnsLabel("namespace"),
    "Namespace; default the route's. Cross-namespace backends are allowed in one mesh config.",
  ),
  port: opt(port(), "Port of the Service; required."),
};

/** Checks a backend reference across its fields. */
export function checkBackend(
  b: { group: string; kind: "Service" | "Hostname"; name: string; port?: number },
  at: Path,
  r: Reporter,
): void {
  if (b.kind === "Service" && b.group !== "") {
    r.error([...at, "group"], `group must be "" for kind Service, got "${b.group}"`);
  }
  if (b.kind === "Hostname" && b.group !== "networking.istio.io") {
    r.error(
      [...at, "group"],
      `group must be "networking.istio.io" for kind Hostname, got "${b.group}"`,
    );
  }
  if (b.kind === "Hostname") hostname().check(b.name, [...at, "name"], r);
  else dnsLabel("Service name").check(b.name, [...at, "name"], r);
  if (b.port === undefined) {
    r.error([...at, "port"], `missing required field "port"`, "a backend needs a port");
  }
}

/** A backend reference without weight or filters (RequestMirror). */
export const backendObjectReference = obj(backendFields, {
  title: "BackendObjectReference",
  refine: checkBackend,
});

/** The checked shape of a backend reference. */
export interface BackendRefValue {
  group: string;
  kind: "Service" | "Hostname";
  name: string;
  namespace?: string;
  port?: number;
  weight?: number;
}

/** RequestMirror. */
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
        if (f.numerator > f.denominator) r.error(at, "numerator must not exceed denominator");
      },
    }),
    "Share of requests mirrored as a fraction.",
  ),
}, {
  title: "HTTPRequestMirrorFilter",
  refine(m, at, r) {
    if (m.percent !== undefined && m.fraction !== undefined) {
      r.error(at, "give percent or fraction, not both");
    }
  },
});

/** References a route's parentRefs and backendRefs make, for the cross-reference check. */
export function routeReferences(
  ns: string,
  spec: {
    parentRefs?: ParentRef[];
    rules?: {
      backendRefs?: BackendRefValue[];
      filters?: { requestMirror?: { backendRef: BackendRefValue } }[];
    }[];
  },
): Reference[] {
  const refs: Reference[] = [];
  spec.parentRefs?.forEach((p, i) => {
    refs.push({
      path: ["spec", "parentRefs", i, "name"],
      kinds: [p.kind],
      namespace: p.namespace ?? ns,
      name: p.name,
    });
  });
  spec.rules?.forEach((rule, ri) => {
    rule.backendRefs?.forEach((b, bi) => {
      if (b.kind === "Service") {
        refs.push({
          path: ["spec", "rules", ri, "backendRefs", bi, "name"],
          kinds: ["Service"],
          namespace: b.namespace ?? ns,
          name: b.name,
        });
      }
    });
    rule.filters?.forEach((f, fi) => {
      const b = f.requestMirror?.backendRef;
      if (b?.kind === "Service") {
        refs.push({
          path: ["spec", "rules", ri, "filters", fi, "requestMirror", "backendRef", "name"],
          kinds: ["Service"],
          namespace: b.namespace ?? ns,
          name: b.name,
        });
      }
    });
  });
  return refs;
}

/** Checks that each filter has exactly the field its type names, and no other. */
export function checkFilterFields(
  f: Record<string, unknown> & { type: string },
  fieldOf: Readonly<Record<string, string>>,
  at: Path,
  r: Reporter,
): void {
  const want = fieldOf[f.type];
  for (const [type, field] of Object.entries(fieldOf)) {
    if (field === want) {
      if (f[field] === undefined) r.error([...at, field], `filter type ${f.type} needs "${field}"`);
    } else if (f[field] !== undefined) {
      r.error([...at, field], `"${field}" is only allowed with type ${type}, not ${f.type}`);
    }
  }
}

/** Hostnames of a route (wildcards allowed). */
export const routeHostnames = list(hostname({ wildcard: true }), { maxItems: 16 });

/** Session persistence is not supported by ambit. */
export const noSessionPersistence = unsupported(
  "use a DestinationRule consistentHash load balancer",
);
