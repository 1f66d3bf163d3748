import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import { yaml } from "./_testing.ts";
import { compileSourcesSync } from "./compile.ts";
import { formatIssue } from "./load.ts";
import type { Snapshot } from "./snapshot.ts";
import { decodeSnapshot, encodeSnapshot } from "./snapshot_codec.ts";

/** A node, namespaces shop and other, waypoints shop/waypoint and shop/waypoint-b, Service shop/web. */
const base = yaml`
  apiVersion: ambit.io/v1alpha1
  kind: Node
  metadata: {name: node-a}
  spec: {address: 10.0.0.1}
  ---
  apiVersion: v1
  kind: Namespace
  metadata:
    name: shop
    labels: {istio.io/dataplane-mode: ambient}
  ---
  apiVersion: v1
  kind: Namespace
  metadata:
    name: other
    labels: {istio.io/dataplane-mode: ambient}
  ---
  apiVersion: networking.istio.io/v1
  kind: WorkloadEntry
  metadata: {name: web-1, namespace: shop}
  spec: {address: 10.1.0.1, serviceAccount: web, labels: {app: web}}
  ---
  apiVersion: gateway.networking.k8s.io/v1
  kind: Gateway
  metadata: {name: waypoint, namespace: shop, annotations: {ambit.io/node: node-a}}
  spec:
    gatewayClassName: istio-waypoint
    listeners: [{name: mesh, port: 15008, protocol: HBONE}]
  ---
  apiVersion: gateway.networking.k8s.io/v1
  kind: Gateway
  metadata: {name: waypoint-b, namespace: shop, annotations: {ambit.io/node: node-a}}
  spec:
    gatewayClassName: istio-waypoint
    addresses: [{type: IPAddress, value: 10.0.0.9}]
    listeners: [{name: mesh, port: 15008, protocol: HBONE}]
  ---
  apiVersion: v1
  kind: Service
  metadata:
    name: web
    namespace: shop
    labels: {istio.io/use-waypoint: waypoint}
  spec:
    selector: {app: web}
    ports: [{name: http, port: 80}]
`;

const BASE_LINES = base.split("\n").length;

/** An HTTPFault document. */
const fault = (ns: string, name: string) =>
  `apiVersion: ambit.io/v1alpha1\nkind: HTTPFault\nmetadata: {name: ${name}, namespace: ${ns}}\n` +
  "spec: {abort: {httpStatus: 503, percentage: {value: 1}}}\n";

/** A LocalRateLimit document, targeting `targets` (waypoint names) when given. */
const limit = (ns: string, name: string, ...targets: string[]) =>
  `apiVersion: ambit.io/v1alpha1\nkind: LocalRateLimit\nmetadata: {name: ${name}, namespace: ${ns}}\n` +
  "spec:\n  tokenBucket: {maxTokens: 10, fillInterval: 1s}\n" +
  (targets.length
    ? `  targetRefs: [${targets.map((t) => `{kind: Gateway, name: ${t}}`).join(", ")}]\n`
    : "");

/**
 * An HTTPRoute ns/name on Service shop/web whose one rule has `filters` and whose one
 * backendRef has `backendFilters` (flow YAML lists); the rule is on line 7.
 */
const route = (ns: string, name: string, filters: string, backendFilters = "[]") =>
  `apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: ${name}, namespace: ${ns}}\n` +
  "spec:\n" +
  '  parentRefs: [{group: "", kind: Service, name: web, namespace: shop}]\n' +
  "  rules:\n" +
  `  - filters: ${filters}\n` +
  `    backendRefs: [{name: web, namespace: shop, port: 80, filters: ${backendFilters}}]\n`;

/** An ExtensionRef filter naming `kind` `name`. */
const ext = (kind: string, name: string) =>
  `{type: ExtensionRef, extensionRef: {group: ambit.io, kind: ${kind}, name: ${name}}}`;

function compile(...docs: string[]) {
  const text = [base, ...docs].join("---\n");
  const { snapshot, issues } = compileSourcesSync([{ file: "test.yaml", text }]);
  return { snapshot, issues: issues.map(formatIssue) };
}

/**
 * Line `n` (1-based) of the documents after `base`, counted as one text: each
 * document's lines, then one for the `---` before the next.
 */
const line = (n: number) => BASE_LINES + n;

const names = (s: Snapshot, key: string) =>
  s.rateLimitsByWaypoint.get(key)?.map((r) => r.metadata.name);

Deno.test("compile indexes HTTPFaults and LocalRateLimits by namespace/name and by waypoint", () => {
  const { snapshot, issues } = compile(
    fault("shop", "flaky"),
    fault("other", "flaky"),
    limit("shop", "global", "waypoint"),
    limit("shop", "burst", "waypoint-b", "waypoint"),
    limit("shop", "per-rule"),
    route("shop", "r", `[${ext("HTTPFault", "flaky")}, ${ext("LocalRateLimit", "per-rule")}]`),
    route("other", "consumer", `[${ext("HTTPFault", "flaky")}]`),
  );
  assertEquals(issues, []);
  assertOk(snapshot);
  assertEquals([...snapshot.faults.keys()], ["shop/flaky", "other/flaky"]);
  assertEquals(snapshot.faults.get("other/flaky")?.spec, {
    abort: { httpStatus: 503, percentage: { value: 1 } },
  });
  assertEquals([...snapshot.rateLimits.keys()], ["shop/global", "shop/burst", "shop/per-rule"]);
  assertEquals(snapshot.rateLimits.get("shop/per-rule")?.spec, {
    tokenBucket: { maxTokens: 10, tokensPerFill: 1, fillInterval: "1s" },
    status: 429,
    enableXRateLimitHeaders: "OFF",
  });
  assertEquals(
    [...snapshot.rateLimitsByWaypoint.keys()].sort(),
    ["shop/waypoint", "shop/waypoint-b"],
    "keys are those of snapshot.waypoints",
  );
  assertOk([...snapshot.rateLimitsByWaypoint.keys()].every((k) => snapshot.waypoints.has(k)));
  assertEquals(names(snapshot, "shop/waypoint"), ["burst", "global"], "in name order");
  assertEquals(names(snapshot, "shop/waypoint-b"), ["burst"]);
  assertOk(Object.isFrozen(snapshot.rateLimitsByWaypoint.get("shop/waypoint")));
});

Deno.test("compile reports dangling ExtensionRefs and targetRefs as cross-reference errors", () => {
  const { snapshot, issues } = compile(
    limit("shop", "per-rule"),
    limit("other", "only-there"),
    fault("other", "elsewhere"),
    limit("shop", "lost", "nope"),
    route(
      "shop",
      "r",
      `[${ext("HTTPFault", "elsewhere")}, ${ext("LocalRateLimit", "only-there")}]`,
    ),
  );
  assertEquals(snapshot, undefined);
  assertEquals(issues, [
    `test.yaml:${
      line(23)
    } spec.targetRefs[0].name: Gateway "shop/nope" does not exist (defined in namespace "shop": waypoint, waypoint-b)`,
    `test.yaml:${
      line(31)
    } spec.rules[0].filters[0].extensionRef.name: HTTPFault "shop/elsewhere" does not exist (no HTTPFault is defined in namespace "shop")`,
    `test.yaml:${
      line(31)
    } spec.rules[0].filters[1].extensionRef.name: LocalRateLimit "shop/only-there" does not exist (defined in namespace "shop": per-rule, lost)`,
  ]);
});

Deno.test("compile refuses a route naming a LocalRateLimit that has targetRefs", () => {
  const { snapshot, issues } = compile(
    limit("shop", "global", "waypoint"),
    route("shop", "r", `[${ext("LocalRateLimit", "global")}]`),
  );
  assertEquals(snapshot, undefined);
  assertEquals(issues, [
    `test.yaml:${
      line(14)
    } spec.rules[0].filters[0].extensionRef.name: LocalRateLimit "shop/global" has targetRefs, so it already applies to every request of its waypoints; a route cannot name it too (name a LocalRateLimit without targetRefs here, or remove this filter)`,
  ]);
});

Deno.test("compile warns about an HTTPFault or LocalRateLimit that applies nowhere", () => {
  const { snapshot, issues } = compile(
    fault("shop", "unused"),
    limit("shop", "unused"),
    limit("shop", "global", "waypoint"),
    fault("shop", "used-by-a-backend"),
    route("shop", "r", "[]", `[${ext("HTTPFault", "used-by-a-backend")}]`),
  );
  assertOk(snapshot, issues.join("\n"));
  assertEquals(issues, [
    `test.yaml:${
      line(3)
    } metadata.name: warning: HTTPFault "shop/unused" applies nowhere: no route names it (name it in an ExtensionRef filter of an HTTPRoute or GRPCRoute rule)`,
    `test.yaml:${
      line(8)
    } metadata.name: warning: LocalRateLimit "shop/unused" applies nowhere: it has no targetRefs and no route names it (add targetRefs to a waypoint Gateway, or name it in a route's ExtensionRef filter)`,
  ]);
});

Deno.test("a snapshot from the compile worker keeps the extension indexes", async () => {
  const { snapshot } = compile(
    fault("shop", "flaky"),
    limit("shop", "global", "waypoint", "waypoint-b"),
    limit("shop", "per-rule"),
    route("shop", "r", `[${ext("HTTPFault", "flaky")}, ${ext("LocalRateLimit", "per-rule")}]`),
  );
  assertOk(snapshot);
  const decoded = await decodeSnapshot(
    JSON.parse(JSON.stringify(encodeSnapshot(snapshot))),
    () => Promise.resolve(),
  );
  const plain = (s: Snapshot) => ({
    faults: [...s.faults].map(([k, r]) => [k, r.spec]),
    rateLimits: [...s.rateLimits].map(([k, r]) => [k, r.spec]),
    byWaypoint: [...s.rateLimitsByWaypoint].map(([k, rs]) => [k, rs.map((r) => r.metadata.name)]),
  });
  assertEquals(plain(decoded), plain(snapshot));
  const r = decoded.rateLimits.get("shop/global");
  assertOk(r && decoded.rateLimitsByWaypoint.get("shop/waypoint-b")?.[0] === r, "shared objects");
  assertOk(decoded.resources.includes(r), "the resource itself, not a copy");
});
