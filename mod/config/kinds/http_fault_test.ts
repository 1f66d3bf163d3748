import { assertEquals } from "../../../tests/_util/asserts.ts";
import { decideFault, GRPC_STATUS } from "../../waypoint/fault.ts";
import { issuesOf, resourcesOf, yaml } from "../_testing.ts";
import { GRPC_STATUS_NAMES, type HttpFaultSpec } from "./http_fault.ts";

/** An HTTPFault shop/f whose `spec:` is `spec` (YAML); spec lines start at line 5. */
const fault = (spec: string) =>
  yaml`
  apiVersion: ambit.io/v1alpha1
  kind: HTTPFault
  metadata: {name: f, namespace: shop}
  spec:
` + spec.split("\n").map((l) => "  " + l).join("\n") + "\n";

const ALL = "percentage: {value: 100}";

const cases: { name: string; doc: string; want: string[] }[] = [
  {
    name: "neither delay nor abort",
    doc: fault("{}"),
    want: [
      "test.yaml:4 spec: an HTTPFault needs delay or abort (give one or both, as in Istio's HTTPFaultInjection)",
    ],
  },
  {
    name: "no spec",
    doc: yaml`
      apiVersion: ambit.io/v1alpha1
      kind: HTTPFault
      metadata: {name: f, namespace: shop}
    `,
    want: ['test.yaml:1 spec: missing "spec"'],
  },
  {
    name: "a delay without fixedDelay",
    doc: fault(`delay: {${ALL}}`),
    want: [
      'test.yaml:5 spec.delay.fixedDelay: missing required field "fixedDelay" (how long to hold a request before forwarding it, such as 5s or 100ms)',
    ],
  },
  {
    name: "fixedDelay that is not a duration",
    doc: fault(`delay: {fixedDelay: 5 s, ${ALL}}`),
    want: [
      'test.yaml:5 spec.delay.fixedDelay: "5 s" is not a duration (e.g. 1s, 0.5s, 100ms or 5m)',
    ],
  },
  {
    name: "fixedDelay as a bare number",
    doc: fault(`delay: {fixedDelay: 5, ${ALL}}`),
    want: ['test.yaml:5 spec.delay.fixedDelay: expected a duration, got number 5 (quote it: "5")'],
  },
  {
    name: "fixedDelay under 1ms",
    doc: fault(`delay: {fixedDelay: 500us, ${ALL}}`),
    want: [
      'test.yaml:5 spec.delay.fixedDelay: "500us" is shorter than 1ms (Istio takes at least 1ms, in whole milliseconds)',
    ],
  },
  {
    name: "fixedDelay finer than a millisecond",
    doc: fault(`delay: {fixedDelay: 1.5ms, ${ALL}}`),
    want: [
      'test.yaml:5 spec.delay.fixedDelay: "1.5ms" is not a whole number of milliseconds (Istio takes at least 1ms, in whole milliseconds)',
    ],
  },
  {
    name: "percentage above 100",
    doc: fault("delay: {fixedDelay: 1s, percentage: {value: 101}}"),
    want: ["test.yaml:5 spec.delay.percentage.value: 101 is above the maximum 100"],
  },
  {
    name: "percentage below 0",
    doc: fault("abort: {httpStatus: 503, percentage: {value: -0.5}}"),
    want: ["test.yaml:5 spec.abort.percentage.value: -0.5 is below the minimum 0"],
  },
  {
    name: "percentage as a string",
    doc: fault('delay: {fixedDelay: 1s, percentage: {value: "50"}}'),
    want: ['test.yaml:5 spec.delay.percentage.value: expected a number, got "50"'],
  },
  {
    name: "percentage without value",
    doc: fault("delay: {fixedDelay: 1s, percentage: {}}"),
    want: [
      'test.yaml:5 spec.delay.percentage.value: missing required field "value" (percent of requests delayed, 0 to 100, fractions allowed; resolution one in a million)',
    ],
  },
  {
    name: "percentage as a bare number",
    doc: fault("delay: {fixedDelay: 1s, percentage: 50}"),
    want: ["test.yaml:5 spec.delay.percentage: expected an object (Percent), got number 50"],
  },
  {
    name: "the deprecated integer percent",
    doc: fault("delay: {fixedDelay: 1s, percent: 50}"),
    want: [
      'test.yaml:5 spec.delay.percent: "percent" is not supported by ambit (deprecated upstream; use percentage.value)',
    ],
  },
  {
    name: "exponentialDelay",
    doc: fault(`delay: {fixedDelay: 1s, exponentialDelay: 1s, ${ALL}}`),
    want: [
      'test.yaml:5 spec.delay.exponentialDelay: "exponentialDelay" is not supported by ambit (Istio does not implement it either; use fixedDelay)',
    ],
  },
  {
    name: "an abort without a status",
    doc: fault(`abort: {${ALL}}`),
    want: [
      "test.yaml:5 spec.abort: an abort needs httpStatus or grpcStatus (give one of them)",
    ],
  },
  {
    name: "an abort with both statuses",
    doc: fault(`abort: {httpStatus: 503, grpcStatus: UNAVAILABLE, ${ALL}}`),
    want: ["test.yaml:5 spec.abort: give httpStatus or grpcStatus, not both"],
  },
  {
    name: "httpStatus above 599",
    doc: fault(`abort: {httpStatus: 600, ${ALL}}`),
    want: ["test.yaml:5 spec.abort.httpStatus: 600 is above the maximum 599"],
  },
  {
    name: "httpStatus below 200",
    doc: fault(`abort: {httpStatus: 100, ${ALL}}`),
    want: ["test.yaml:5 spec.abort.httpStatus: 100 is below the minimum 200"],
  },
  {
    name: "httpStatus as a string",
    doc: fault(`abort: {httpStatus: "503", ${ALL}}`),
    want: ['test.yaml:5 spec.abort.httpStatus: expected an HTTP status code, got "503"'],
  },
  {
    name: "grpcStatus as a number",
    doc: fault(`abort: {grpcStatus: 14, ${ALL}}`),
    want: [
      "test.yaml:5 spec.abort.grpcStatus: number 14 is not one of " + GRPC_STATUS_NAMES.join(", "),
    ],
  },
  {
    name: "grpcStatus in lower case",
    doc: fault(`abort: {grpcStatus: unavailable, ${ALL}}`),
    want: [
      'test.yaml:5 spec.abort.grpcStatus: "unavailable" is not one of ' +
      GRPC_STATUS_NAMES.join(", ") + ' (did you mean "UNAVAILABLE"?)',
    ],
  },
  {
    name: "http2Error",
    doc: fault(`abort: {http2Error: REFUSED_STREAM, ${ALL}}`),
    want: [
      'test.yaml:5 spec.abort.http2Error: "http2Error" is not supported by ambit (Istio does not implement it either; use httpStatus or grpcStatus)',
    ],
  },
  {
    name: "unknown field with did-you-mean",
    doc: fault("dealy: {fixedDelay: 1s}"),
    want: ['test.yaml:5 spec.dealy: unknown field "dealy" (did you mean "delay"?)'],
  },
  {
    name: "a VirtualService-style wrapper",
    doc: fault("fault: {abort: {httpStatus: 503}}"),
    want: ['test.yaml:5 spec.fault: unknown field "fault"'],
  },
  {
    name: "no percentage: a warning, since Istio's default is none",
    doc: fault("delay: {fixedDelay: 1s}\nabort: {httpStatus: 503}"),
    want: [
      "test.yaml:5 spec.delay: warning: no request is delayed: percentage is absent, and Istio's default is none (set percentage.value, e.g. 100 for every request)",
      "test.yaml:6 spec.abort: warning: no request is aborted: percentage is absent, and Istio's default is none (set percentage.value, e.g. 100 for every request)",
    ],
  },
  {
    name: "an explicit 0% is no warning",
    doc: fault("abort: {httpStatus: 503, percentage: {value: 0}}"),
    want: [],
  },
  {
    name: "Istio's networking apiVersion",
    doc: yaml`
      apiVersion: networking.istio.io/v1
      kind: HTTPFault
      metadata: {name: f}
      spec: {abort: {httpStatus: 503}}
    `,
    want: [
      'test.yaml:1 apiVersion: apiVersion "networking.istio.io/v1" is not served for kind HTTPFault (use ambit.io/v1alpha1)',
    ],
  },
];

for (const c of cases) {
  Deno.test(`HTTPFault: ${c.name}`, () => {
    assertEquals(issuesOf(c.doc), c.want);
  });
}

Deno.test("HTTPFault: Istio's fault-injection task faults check clean, unchanged", () => {
  // istio.io tasks/traffic-management/fault-injection: the `fault:` of
  // virtual-service-ratings-test-delay.yaml and -test-abort.yaml, plus a gRPC abort.
  const [delay, abort, grpc] = resourcesOf([
    fault("delay:\n  percentage:\n    value: 100.0\n  fixedDelay: 7s"),
    fault("abort:\n  percentage:\n    value: 100.0\n  httpStatus: 500"),
    fault("abort: {grpcStatus: UNAVAILABLE, percentage: {value: 0.1}}"),
  ].join("---\n"));
  assertEquals(delay.metadata.namespace, "shop");
  assertEquals(delay.spec, { delay: { fixedDelay: "7s", percentage: { value: 100 } } });
  assertEquals(abort.spec, { abort: { httpStatus: 500, percentage: { value: 100 } } });
  assertEquals(grpc.spec, { abort: { grpcStatus: "UNAVAILABLE", percentage: { value: 0.1 } } });
});

Deno.test("HTTPFault: a checked spec feeds decideFault() as it is", () => {
  const specOf = (doc: string) => resourcesOf(fault(doc))[0].spec as HttpFaultSpec;
  const rows: [spec: string, random: number, want: unknown][] = [
    ["delay: {fixedDelay: 1m30s, percentage: {value: 100}}", 0.999, { delayMs: 90_000 }],
    ["delay: {fixedDelay: 100ms, percentage: {value: 0.5}}", 0.004, { delayMs: 100 }],
    ["delay: {fixedDelay: 100ms, percentage: {value: 0.5}}", 0.005, {}],
    ["abort: {httpStatus: 503, percentage: {value: 100}}", 0.5, { abort: { status: 503 } }],
    [
      "abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}",
      0.5,
      { abort: { status: 200, grpcStatus: 14 } },
    ],
    [
      "delay: {fixedDelay: 2s, percentage: {value: 100}}\nabort: {httpStatus: 429, percentage: {value: 100}}",
      0,
      { delayMs: 2000, abort: { status: 429 } },
    ],
  ];
  for (const [spec, random, want] of rows) {
    assertEquals(decideFault(specOf(spec), () => random), want, spec);
  }
});

Deno.test("HTTPFault: grpcStatus takes exactly the names the waypoint maps", () => {
  assertEquals([...GRPC_STATUS_NAMES], Object.keys(GRPC_STATUS));
  GRPC_STATUS_NAMES.forEach((name, code) => assertEquals(GRPC_STATUS[name], code, name));
});
