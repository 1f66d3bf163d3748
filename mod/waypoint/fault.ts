/**
 * Fault injection as Istio's VirtualService `http[].fault` describes it:
 * a fixed delay before the request is forwarded and/or an abort answered in
 * place of the upstream, each applied to `percentage.value` percent of
 * requests (0 to 100, fractions allowed; absent: none, as Istio documents).
 * The two draws are independent; when both hit, the delay comes first, then
 * the abort (Envoy's fault filter order). Draws have Envoy's resolution of
 * one in a million.
 *
 * Responses: an HTTP abort answers `httpStatus`; a gRPC abort answers HTTP
 * 200 with `grpc-status` (a trailers-only response), as Envoy does. Access
 * logs carry Envoy's response flags `FI` (abort) and `DI` (delay).
 *
 * The type mirrors Istio's `HTTPFaultInjection`; the config kind `HTTPFault`
 * (`mod/config/kinds/http_fault.ts`) carries it, and a checked `HTTPFault`
 * spec can be passed as it is.
 *
 * @example
 * ```ts
 * const d = decideFault({ abort: { httpStatus: 503, percentage: { value: 10 } } }, Math.random);
 * if (d.delayMs) await sleep(d.delayMs);
 * if (d.abort) return respond(d.abort.status, d.abort.grpcStatus);
 * ```
 *
 * @module
 */
import { parseDuration } from "../config/formats.ts";
import type { Random } from "./_seeded_random.ts";
import { ResilienceConfigError } from "./resilience_error.ts";

export type { Random } from "./_seeded_random.ts";

/** Istio `Percent`: a share of requests, 0 to 100. */
export interface Percent {
  value: number;
}

/** Istio `HTTPFaultInjection`. */
export interface HTTPFaultInjection {
  delay?: {
    /** Delay before forwarding, e.g. `5s` or `100ms`. */
    fixedDelay: string;
    percentage?: Percent;
    /** Deprecated integer share, used only when `percentage` is absent (as Istio does). */
    percent?: number;
  };
  abort?: {
    /** HTTP status to answer, 200 to 599. */
    httpStatus?: number;
    /** gRPC status name to answer, e.g. `UNAVAILABLE`. */
    grpcStatus?: string;
    percentage?: Percent;
  };
}

/** What to do to one request. */
export interface FaultDecision {
  readonly delayMs?: number;
  readonly abort?: { readonly status: number; readonly grpcStatus?: number };
}

/** Response flag of an injected abort. */
export const FAULT_ABORT_FLAG = "FI";
/** Response flag of an injected delay. */
export const FAULT_DELAY_FLAG = "DI";

/** gRPC status codes by the names Istio's `grpcStatus` takes. */
export const GRPC_STATUS: Readonly<Record<string, number>> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

/** A fault with its durations parsed and shares in millionths. */
export interface CompiledFault {
  readonly delay?: { readonly ms: number; readonly perMillion: number };
  readonly abort?: {
    readonly status: number;
    readonly grpcStatus?: number;
    readonly perMillion: number;
  };
}

const compiled = new WeakMap<HTTPFaultInjection, CompiledFault>();
const isCompiledSet = new WeakSet<object>();

/** Decides the fault for one request; `fault` is compiled once and cached. */
export function decideFault(
  fault: HTTPFaultInjection | CompiledFault | undefined,
  random: Random,
): FaultDecision {
  if (fault === undefined) return {};
  const f = isCompiled(fault) ? fault : cachedCompile(fault);
  const out: { delayMs?: number; abort?: FaultDecision["abort"] } = {};
  if (f.delay && hit(f.delay.perMillion, random)) out.delayMs = f.delay.ms;
  if (f.abort && hit(f.abort.perMillion, random)) {
    out.abort = f.abort.grpcStatus === undefined
      ? { status: f.abort.status }
      : { status: f.abort.status, grpcStatus: f.abort.grpcStatus };
  }
  return out;
}

/** Checks and compiles a fault; throws {@link ResilienceConfigError} naming the field. */
export function compileFault(fault: HTTPFaultInjection): CompiledFault {
  const out: { delay?: CompiledFault["delay"]; abort?: CompiledFault["abort"] } = {};
  if (fault.delay) {
    const ms = parseDuration(fault.delay.fixedDelay ?? "");
    if (ms === undefined) {
      throw new ResilienceConfigError(
        "fault.delay.fixedDelay",
        `"${fault.delay.fixedDelay}" is not a duration (e.g. 5s)`,
      );
    }
    const share = fault.delay.percentage?.value ?? fault.delay.percent ?? 0;
    out.delay = { ms, perMillion: perMillion("fault.delay.percentage.value", share) };
  }
  if (fault.abort) out.abort = compileAbort(fault.abort);
  isCompiledSet.add(out);
  return out;
}

function compileAbort(a: NonNullable<HTTPFaultInjection["abort"]>): CompiledFault["abort"] {
  const share = perMillion("fault.abort.percentage.value", a.percentage?.value ?? 0);
  if ((a.httpStatus === undefined) === (a.grpcStatus === undefined)) {
    throw new ResilienceConfigError("fault.abort", "give exactly one of httpStatus, grpcStatus");
  }
  if (a.grpcStatus !== undefined) {
    const code = GRPC_STATUS[a.grpcStatus];
    if (code === undefined) {
      throw new ResilienceConfigError(
        "fault.abort.grpcStatus",
        `"${a.grpcStatus}" is not a gRPC status name (e.g. UNAVAILABLE)`,
      );
    }
    return { status: 200, grpcStatus: code, perMillion: share };
  }
  const status = a.httpStatus!;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new ResilienceConfigError("fault.abort.httpStatus", `${status} is not in 200-599`);
  }
  return { status, perMillion: share };
}

function perMillion(field: string, value: number): number {
  if (!Number.isFinite(value) || value < 0 || value > 100) {
    throw new ResilienceConfigError(field, `${value} is not a percentage in 0-100`);
  }
  return Math.round(value * 10_000);
}

function hit(perMillion: number, random: Random): boolean {
  return Math.floor(random() * 1_000_000) < perMillion;
}

function isCompiled(f: HTTPFaultInjection | CompiledFault): f is CompiledFault {
  return isCompiledSet.has(f);
}

function cachedCompile(f: HTTPFaultInjection): CompiledFault {
  let c = compiled.get(f);
  if (!c) compiled.set(f, c = compileFault(f));
  return c;
}
