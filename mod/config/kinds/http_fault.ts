/**
 * `HTTPFault` (ambit.io/v1alpha1): fault injection at the waypoint. The spec
 * is Istio's `HTTPFaultInjection` (VirtualService `http[].fault`) as a
 * resource of its own, so Gateway API routes can use it: a rule (or a
 * backendRef) names it with an ExtensionRef filter. The waypoint applies it
 * with `decideFault` (`mod/waypoint/fault.ts`).
 *
 * @module
 */
import { istioDuration, parseDuration } from "../formats.ts";
import { defineKind } from "../kind.ts";
import { type Infer, int, num, obj, oneOf, opt, refine, req, unsupported } from "../schema.ts";
import { AMBIT_API } from "./mesh.ts";

/** gRPC status names `abort.grpcStatus` takes (Istio's; the codes are their positions). */
export const GRPC_STATUS_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** Istio `Percent`. */
const percent = (what: string) =>
  obj({
    value: req(
      num({ min: 0, max: 100 }),
      `Percent of requests ${what}, 0 to 100, fractions allowed; resolution one in a million.`,
    ),
  }, { title: "Percent" });

/** Istio's rule for durations: at least 1ms, in whole milliseconds. */
const fixedDelay = refine(istioDuration(), "duration", (s) => {
  const ms = parseDuration(s)!;
  if (ms < 1) return `"${s}" is shorter than 1ms`;
  if (Math.abs(ms - Math.round(ms)) > 1e-9) return `"${s}" is not a whole number of milliseconds`;
  return undefined;
}, "Istio takes at least 1ms, in whole milliseconds");

const delay = obj({
  fixedDelay: req(
    fixedDelay,
    "How long to hold a request before forwarding it, such as 5s or 100ms.",
  ),
  percentage: opt(
    percent("delayed"),
    "Share of requests delayed. Absent: none is delayed, as in Istio.",
  ),
  percent: unsupported("deprecated upstream; use percentage.value"),
  exponentialDelay: unsupported("Istio does not implement it either; use fixedDelay"),
}, { title: "Delay", doc: "A fixed delay before forwarding." });

const abort = obj({
  httpStatus: opt(
    int({ name: "HTTP status code", min: 200, max: 599 }),
    "HTTP status to answer instead of forwarding, 200 to 599.",
  ),
  grpcStatus: opt(
    oneOf(GRPC_STATUS_NAMES),
    "gRPC status to answer, by name (e.g. UNAVAILABLE): HTTP 200 with grpc-status, as Envoy does.",
  ),
  http2Error: unsupported("Istio does not implement it either; use httpStatus or grpcStatus"),
  percentage: opt(
    percent("aborted"),
    "Share of requests aborted. Absent: none is aborted, as in Istio.",
  ),
}, {
  title: "Abort",
  doc: "An answer in place of the upstream's: httpStatus or grpcStatus.",
  refine(a, at, r) {
    if (a.httpStatus === undefined && a.grpcStatus === undefined) {
      r.error(at, "an abort needs httpStatus or grpcStatus", "give one of them");
    } else if (a.httpStatus !== undefined && a.grpcStatus !== undefined) {
      r.error(at, "give httpStatus or grpcStatus, not both");
    }
  },
});

/** Schema of `HTTPFault.spec` (Istio's HTTPFaultInjection). */
export const httpFaultSpec = obj({
  delay: opt(delay, "Delay requests before forwarding them."),
  abort: opt(abort, "Answer requests with an error instead of forwarding them."),
}, {
  title: "HTTPFaultInjection",
  doc: "Istio's HTTPFaultInjection: delay and/or abort; when both hit, the delay comes first.",
  refine(f, at, r) {
    if (f.delay === undefined && f.abort === undefined) {
      r.error(
        at,
        "an HTTPFault needs delay or abort",
        "give one or both, as in Istio's HTTPFaultInjection",
      );
    }
  },
});

/** Checked `HTTPFault.spec`; assignable to the waypoint's `HTTPFaultInjection`. */
export type HttpFaultSpec = Infer<typeof httpFaultSpec>;

/** The `HTTPFault` kind. */
export const HTTPFault = defineKind({
  kind: "HTTPFault",
  apiVersions: [AMBIT_API],
  namespaced: true,
  specRequired: true,
  doc: "Fault injection at the waypoint: Istio's HTTPFaultInjection (VirtualService " +
    "`http[].fault`) as a resource, for Gateway API routes. An HTTPRoute or GRPCRoute rule, or " +
    "one of its backendRefs, applies it with the filter `{type: ExtensionRef, extensionRef: " +
    "{group: ambit.io, kind: HTTPFault, name: <name>}}` (same namespace; one HTTPFault per " +
    "filter list). The delay and the abort are drawn independently, each for its `percentage`; " +
    "an absent percentage means no request, as in Istio. Access logs flag an abort `FI` and a " +
    "delay `DI`.",
  spec: httpFaultSpec,
  check(res, r) {
    // Istio's default share is none, which surprises: say so.
    for (const [part, verb] of [["delay", "delayed"], ["abort", "aborted"]] as const) {
      if (res.spec[part] !== undefined && res.spec[part].percentage === undefined) {
        r.warn(
          ["spec", part],
          `no request is ${verb}: percentage is absent, and Istio's default is none`,
          "set percentage.value, e.g. 100 for every request",
        );
      }
    }
  },
  example: `apiVersion: ambit.io/v1alpha1
kind: HTTPFault
metadata:
  name: ratings-flaky
  namespace: shop
spec:
  delay:
    fixedDelay: 2s
    percentage:
      value: 10
  abort:
    httpStatus: 503
    percentage:
      value: 0.5`,
});
