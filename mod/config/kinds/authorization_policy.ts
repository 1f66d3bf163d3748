/**
 * `AuthorizationPolicy` (security.istio.io/v1). ztunnels enforce the L4
 * parts; waypoints the whole policy.
 *
 * @module
 */
import { cidr, workloadSelector } from "../formats.ts";
import { defineKind } from "../kind.ts";
import {
  def,
  didYouMean,
  list,
  obj,
  opt,
  type Path,
  portString,
  type Reporter,
  str,
  unsupported,
} from "../schema.ts";
import {
  checkTargeting,
  ISTIO_SECURITY,
  policyTargetReference,
  targetReferences,
} from "./policy_common.ts";

const strings = (doc: string) => opt(list(str({ minLength: 1 })), doc);

const serviceAccount = str({
  name: "service account",
  validate: (s) =>
    /^([a-z0-9]([a-z0-9-]*[a-z0-9])?\/)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(s)
      ? undefined
      : `"${s}" is not <namespace>/<service account> or <service account>`,
});

const source = obj({
  principals: strings(
    "Peer identities without spiffe://, e.g. cluster.local/ns/shop/sa/web; exact, prefix*, *suffix or *.",
  ),
  notPrincipals: strings("Negative match of principals."),
  requestPrincipals: strings("JWT identities <iss>/<sub> (L7)."),
  notRequestPrincipals: strings("Negative match of requestPrincipals (L7)."),
  namespaces: strings("Peer namespaces."),
  notNamespaces: strings("Negative match of namespaces."),
  serviceAccounts: opt(
    list(serviceAccount),
    "Peer service accounts as <namespace>/<name>, or <name> in the policy's namespace.",
  ),
  notServiceAccounts: opt(list(serviceAccount), "Negative match of serviceAccounts."),
  ipBlocks: opt(list(cidr()), "Peer IPs or CIDR blocks."),
  notIpBlocks: opt(list(cidr()), "Negative match of ipBlocks."),
  remoteIpBlocks: opt(list(cidr()), "Original client IPs (X-Forwarded-For) (L7)."),
  notRemoteIpBlocks: opt(list(cidr()), "Negative match of remoteIpBlocks (L7)."),
}, {
  title: "Source",
  refine(s, at, r) {
    const accounts = s.serviceAccounts
      ? "serviceAccounts"
      : s.notServiceAccounts
      ? "notServiceAccounts"
      : undefined;
    if (accounts && (s.principals || s.notPrincipals || s.namespaces || s.notNamespaces)) {
      r.error(
        [...at, accounts],
        `${accounts} cannot be combined with principals or namespaces (or their not* forms)`,
        "as upstream",
      );
    }
  },
});

const operation = obj({
  hosts: strings("Host header values (L7)."),
  notHosts: strings("Negative match of hosts (L7)."),
  ports: opt(list(portString()), 'Destination ports, as strings upstream (e.g. "8080").'),
  notPorts: opt(list(portString()), "Negative match of ports."),
  methods: strings("HTTP methods, or gRPC as POST (L7)."),
  notMethods: strings("Negative match of methods (L7)."),
  paths: strings("Request paths; exact, prefix*, *suffix (L7)."),
  notPaths: strings("Negative match of paths (L7)."),
}, { title: "Operation" });

const CONDITION_KEYS = [
  "source.ip",
  "source.namespace",
  "source.principal",
  "source.serviceAccount",
  "remote.ip",
  "destination.ip",
  "destination.port",
  "connection.sni",
  "request.auth.principal",
  "request.auth.audiences",
  "request.auth.presenter",
];

const conditionKey = str({
  name: "condition key",
  validate(k) {
    if (CONDITION_KEYS.includes(k)) return undefined;
    if (/^request\.headers\[[^\[\]]+\]$/.test(k)) return undefined;
    if (/^request\.auth\.claims(\[[^\[\]]+\])+$/.test(k)) return undefined;
    if (k.startsWith("experimental.envoy.filters.")) {
      return `"${k}" is an Envoy-specific key, not supported by ambit`;
    }
    const near = didYouMean(k, CONDITION_KEYS);
    return `"${k}" is not a supported condition key${near ? ` (did you mean "${near}"?)` : ""}`;
  },
  hint:
    "source.ip, source.namespace, source.principal, destination.ip, destination.port, request.headers[name], request.auth.claims[name], ...",
});

const condition = obj({
  key: opt(conditionKey, "Attribute, e.g. source.ip or request.headers[x-user]."),
  values: strings("Any of these matches."),
  notValues: strings("None of these may match."),
}, {
  title: "Condition",
  refine(c, at, r) {
    if (c.key === undefined) r.error([...at, "key"], `missing required field "key"`);
    if (!c.values && !c.notValues) r.error(at, "a condition needs values or notValues");
    if (c.key === "destination.port") {
      for (const [i, v] of (c.values ?? []).entries()) {
        portString().check(v, [...at, "values", i], r);
      }
    }
  },
});

/**
 * Istio's validation: `from` and `to`, when present, are not empty, and
 * neither are their `source` and `operation` (leave a field out to match
 * anything; an empty one is almost always a mistake that would match all).
 */
function checkRuleNotEmpty(rule: Record<string, unknown>, at: Path, r: Reporter): void {
  for (const [field, inner] of [["from", "source"], ["to", "operation"]] as const) {
    const entries = rule[field] as Record<string, unknown>[] | undefined;
    if (!Array.isArray(entries)) continue;
    if (entries.length === 0) {
      r.error(
        [...at, field],
        `\`${field}\` must not be empty`,
        `leave it out to match any ${inner}`,
      );
    }
    entries.forEach((e, i) => {
      const v = e?.[inner];
      if (v === undefined || v === null || (typeof v === "object" && Object.keys(v).length === 0)) {
        r.error([...at, field, i, inner], `\`${field}.${inner}\` must not be empty`, "as upstream");
      }
    });
  }
}

/** Schema of `AuthorizationPolicy.spec`. */
export const authorizationPolicySpec = obj({
  selector: opt(
    workloadSelector(),
    "Workloads in the policy's namespace it applies to; absent: all of the namespace (or the mesh, in the root namespace).",
  ),
  targetRef: opt(
    policyTargetReference,
    "A Gateway (waypoint), Service or ServiceEntry the policy applies to, at its waypoint.",
  ),
  targetRefs: opt(list(policyTargetReference, { maxItems: 16 }), "Several targets."),
  action: def(
    str({
      name: "ALLOW | DENY | AUDIT",
      validate: (s) =>
        s === "CUSTOM"
          ? "action CUSTOM is not supported by ambit (it has no external authorizer)"
          : ["ALLOW", "DENY", "AUDIT"].includes(s)
          ? undefined
          : `"${s}" is not one of ALLOW, DENY, AUDIT`,
    }),
    "ALLOW",
    "DENY is checked first; then, if any ALLOW policy applies, a request must match one. AUDIT never changes the decision.",
  ),
  rules: opt(
    list(obj({
      from: opt(
        list(obj({ source: opt(source, "Who.") }, { title: "Rule.From" })),
        "Sources; any may match.",
      ),
      to: opt(
        list(obj({ operation: opt(operation, "What.") }, { title: "Rule.To" })),
        "Operations; any may match.",
      ),
      when: opt(list(condition), "Conditions; all must match."),
    }, { title: "Rule", refine: checkRuleNotEmpty })),
    "Rules; any may match. No rules: an ALLOW policy allows nothing. rules: [{}] matches everything.",
  ),
  provider: unsupported("CUSTOM authorization providers are not supported"),
}, { title: "AuthorizationPolicySpec" });

/** The `AuthorizationPolicy` kind. */
export const AuthorizationPolicy = defineKind({
  kind: "AuthorizationPolicy",
  apiVersions: ISTIO_SECURITY,
  namespaced: true,
  doc:
    "Access control with Istio's semantics. Policies with a selector (or none) are enforced by " +
    "the destination's ztunnel on their L4 fields (principals, namespaces, serviceAccounts, ipBlocks, " +
    "ports, and when keys source.*/destination.*); an ALLOW rule with L7 fields matches nothing there, " +
    "and a DENY rule is enforced on its L4 part. Policies with targetRefs are enforced in full by the " +
    "target's waypoint (403 `RBAC: access denied`).",
  spec: authorizationPolicySpec,
  check(res, r) {
    checkTargeting(res.spec, res.metadata.namespace!, r);
  },
  references: (res) => targetReferences(res.spec, res.metadata.namespace!),
  example: `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ratings-from-reviews
  namespace: payments
spec:
  selector:
    matchLabels:
      app: ratings
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/reviews"]
    to:
    - operation:
        ports: ["9090"]`,
});
