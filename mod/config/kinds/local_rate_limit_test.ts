import { assertEquals } from "../../../tests/_util/asserts.ts";
import { FakeClock } from "../../util/clock.ts";
import { LocalRateLimiter } from "../../waypoint/rate_limit.ts";
import type { Resource } from "../kind.ts";
import { issuesOf, resourcesOf, yaml } from "../_testing.ts";
import { LocalRateLimit, type LocalRateLimitSpec } from "./local_rate_limit.ts";

/** A LocalRateLimit shop/l whose `spec:` is `spec` (YAML); spec lines start at line 5. */
const limit = (spec: string) =>
  yaml`
  apiVersion: ambit.io/v1alpha1
  kind: LocalRateLimit
  metadata: {name: l, namespace: shop}
  spec:
` + spec.split("\n").map((l) => "  " + l).join("\n") + "\n";

/** A valid bucket, to put on line 5. */
const BUCKET = "tokenBucket: {maxTokens: 10, fillInterval: 1s}";

const cases: { name: string; doc: string; want: string[] }[] = [
  {
    name: "no token bucket",
    doc: limit("status: 429"),
    want: [
      'test.yaml:4 spec.tokenBucket: missing required field "tokenBucket" (the token bucket)',
    ],
  },
  {
    name: "no spec",
    doc: yaml`
      apiVersion: ambit.io/v1alpha1
      kind: LocalRateLimit
      metadata: {name: l, namespace: shop}
    `,
    want: ['test.yaml:1 spec: missing "spec"'],
  },
  {
    name: "a bucket without maxTokens and fillInterval",
    doc: limit("tokenBucket: {tokensPerFill: 5}"),
    want: [
      'test.yaml:5 spec.tokenBucket.maxTokens: missing required field "maxTokens" (bucket size, and the tokens it starts with; each request takes one or is refused)',
      'test.yaml:5 spec.tokenBucket.fillInterval: missing required field "fillInterval" (time between fills, such as 1s; at least 50ms)',
    ],
  },
  {
    name: "maxTokens and tokensPerFill below 1, fillInterval under 50ms",
    doc: limit("tokenBucket: {maxTokens: 0, tokensPerFill: 0, fillInterval: 10ms}"),
    want: [
      "test.yaml:5 spec.tokenBucket.maxTokens: 0 is below the minimum 1",
      "test.yaml:5 spec.tokenBucket.tokensPerFill: 0 is below the minimum 1",
      'test.yaml:5 spec.tokenBucket.fillInterval: "10ms" is shorter than the minimum 50ms (Envoy requires a fill interval of at least 50ms)',
    ],
  },
  {
    name: "maxTokens with a fraction",
    doc: limit("tokenBucket: {maxTokens: 1.5, fillInterval: 1s}"),
    want: ["test.yaml:5 spec.tokenBucket.maxTokens: expected an integer, got number 1.5"],
  },
  {
    name: "fillInterval that is not a duration",
    doc: limit("tokenBucket: {maxTokens: 1, fillInterval: 1 sec}"),
    want: [
      'test.yaml:5 spec.tokenBucket.fillInterval: "1 sec" is not a duration (e.g. 1s, 0.5s, 100ms or 5m)',
    ],
  },
  {
    name: "status outside 400-599",
    doc: limit(`${BUCKET}\nstatus: 200`),
    want: ["test.yaml:6 spec.status: 200 is below the minimum 400"],
  },
  {
    name: "status as Envoy's HttpStatus object",
    doc: limit(`${BUCKET}\nstatus: {code: 503}`),
    want: ["test.yaml:6 spec.status: expected an HTTP status code, got an object"],
  },
  {
    name: "enableXRateLimitHeaders typo",
    doc: limit(`${BUCKET}\nenableXRateLimitHeaders: DRAFT_VERSION_3`),
    want: [
      'test.yaml:6 spec.enableXRateLimitHeaders: "DRAFT_VERSION_3" is not one of OFF, DRAFT_VERSION_03 (did you mean "DRAFT_VERSION_03"?)',
    ],
  },
  {
    name: "targetRefs to a Service, a misspelt Gateway and a Gateway of another group",
    doc: limit(
      `${BUCKET}\ntargetRefs:\n` +
        '- {kind: Service, group: "", name: a}\n' +
        "- {kind: gateway, name: b}\n" +
        "- {kind: Gateway, group: networking.istio.io, name: c}",
    ),
    want: [
      'test.yaml:7 spec.targetRefs[0].kind: targetRef kind "Service" is not supported by LocalRateLimit (target a waypoint Gateway; to limit one route, name the LocalRateLimit in an ExtensionRef filter of its rule)',
      'test.yaml:8 spec.targetRefs[1].kind: targetRef kind "gateway" is not supported by LocalRateLimit (did you mean "Gateway"?)',
      'test.yaml:9 spec.targetRefs[2].group: group must be "gateway.networking.k8s.io" for kind Gateway, got "networking.istio.io"',
    ],
  },
  {
    name: "a targetRef without kind",
    doc: limit(`${BUCKET}\ntargetRefs: [{name: waypoint}]`),
    want: [
      'test.yaml:6 spec.targetRefs[0].kind: missing required field "kind" (kind of the target: Gateway (a waypoint, class istio-waypoint))',
    ],
  },
  {
    name: "a targetRef in another namespace",
    doc: limit(`${BUCKET}\ntargetRefs: [{kind: Gateway, name: waypoint, namespace: other}]`),
    want: [
      'test.yaml:6 spec.targetRefs[0].namespace: targetRef namespace "other" differs from the LocalRateLimit\'s "shop" (a LocalRateLimit may only target waypoints in its own namespace)',
    ],
  },
  {
    name: "one waypoint targeted twice",
    doc: limit(
      `${BUCKET}\ntargetRefs: [{kind: Gateway, name: waypoint}, {kind: Gateway, name: waypoint}]`,
    ),
    want: [
      'test.yaml:6 spec.targetRefs[1]: duplicate targetRef "waypoint" (already at spec.targetRefs[0])',
    ],
  },
  {
    name: "an empty targetRefs",
    doc: limit(`${BUCKET}\ntargetRefs: []`),
    want: ["test.yaml:6 spec.targetRefs: must have at least one item"],
  },
  {
    name: "a singular targetRef",
    doc: limit(`${BUCKET}\ntargetRef: {kind: Gateway, name: waypoint}`),
    want: ['test.yaml:6 spec.targetRef: unknown field "targetRef" (did you mean "targetRefs"?)'],
  },
  {
    name: "unknown bucket field with did-you-mean",
    doc: limit("tokenBucket: {maxTokens: 1, fillInterval: 1s, tokensPerFil: 2}"),
    want: [
      'test.yaml:5 spec.tokenBucket.tokensPerFil: unknown field "tokensPerFil" (did you mean "tokensPerFill"?)',
    ],
  },
  {
    name: "Istio's networking apiVersion",
    doc: yaml`
      apiVersion: networking.istio.io/v1alpha3
      kind: LocalRateLimit
      metadata: {name: l}
      spec: {tokenBucket: {maxTokens: 1, fillInterval: 1s}}
    `,
    want: [
      'test.yaml:1 apiVersion: apiVersion "networking.istio.io/v1alpha3" is not served for kind LocalRateLimit (use ambit.io/v1alpha1)',
    ],
  },
];

for (const c of cases) {
  Deno.test(`LocalRateLimit: ${c.name}`, () => {
    assertEquals(issuesOf(c.doc), c.want);
  });
}

Deno.test("LocalRateLimit: defaults as Envoy's local rate limit has them", () => {
  const [r] = resourcesOf(limit(BUCKET));
  assertEquals(r.spec, {
    tokenBucket: { maxTokens: 10, tokensPerFill: 1, fillInterval: "1s" },
    status: 429,
    enableXRateLimitHeaders: "OFF",
  });
});

Deno.test("LocalRateLimit: targetRefs check clean and reference their Gateways", () => {
  const [r] = resourcesOf(limit(
    "tokenBucket: {maxTokens: 100, tokensPerFill: 20, fillInterval: 200ms}\n" +
      "status: 503\n" +
      "enableXRateLimitHeaders: DRAFT_VERSION_03\n" +
      "targetRefs:\n" +
      "- {kind: Gateway, group: gateway.networking.k8s.io, name: waypoint}\n" +
      "- {kind: Gateway, name: waypoint-b, namespace: shop}",
  ));
  assertEquals(LocalRateLimit.references!(r as Resource<LocalRateLimitSpec>), [
    {
      path: ["spec", "targetRefs", 0, "name"],
      kinds: ["Gateway"],
      namespace: "shop",
      name: "waypoint",
    },
    {
      path: ["spec", "targetRefs", 1, "name"],
      kinds: ["Gateway"],
      namespace: "shop",
      name: "waypoint-b",
    },
  ]);
});

Deno.test("LocalRateLimit: a checked spec feeds LocalRateLimiter as it is", async () => {
  const [r] = resourcesOf(limit(
    "tokenBucket: {maxTokens: 2, fillInterval: 500ms}\nenableXRateLimitHeaders: DRAFT_VERSION_03",
  ));
  const clock = new FakeClock();
  const limiter = new LocalRateLimiter(r.spec as LocalRateLimitSpec, { clock });
  const taken = () => {
    const d = limiter.take();
    return `${d.allowed ? "allowed" : d.status} remaining=${d.headers["x-ratelimit-remaining"]}`;
  };
  assertEquals([taken(), taken(), taken()], [
    "allowed remaining=1",
    "allowed remaining=0",
    "429 remaining=0",
  ]);
  await clock.advance(500);
  assertEquals(taken(), "allowed remaining=0", "tokensPerFill defaults to 1");
});
