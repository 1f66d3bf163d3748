/**
 * The waypoint's HTTP path: HTTP/1.1 and HTTP/2 (h2c, gRPC) spoken inside
 * an HBONE tunnel with Node's HTTP servers fed the tunnel stream, each
 * request decided (`decide`) and then forwarded to an endpoint over a new
 * hop from the waypoint (HBONE with the waypoint's identity), with the
 * caller's identity passed on in `x-forwarded-client-cert`, Istio's request
 * metrics and one access record per request.
 *
 * @module
 */
import http2 from "node:http2";
import { randomUUID } from "node:crypto";
import { type Duplex, PassThrough, type Readable, type Writable } from "node:stream";
import type { Endpoint } from "../config/snapshot.ts";
import { type HeaderModifier, modifyResponseHeaders } from "../route/mod.ts";
import type { Backends, BackendState } from "./backends.ts";
import { type PlanEnv, planRequest, type RequestPlan } from "./plan.ts";
import { shouldRetry } from "./retry.ts";
import type { OtlpExporter } from "../telemetry/otlp.ts";
import type { Snapshot, WaypointInfo } from "../config/snapshot.ts";
import type { HostPort } from "../hbone/authority.ts";
import { TunnelError } from "../hbone/errors.ts";
import type { HbonePool } from "../hbone/pool.ts";
import type { Logger } from "../log/logger.ts";
import type { HttpMetrics, RequestLabels } from "../telemetry/http_metrics.ts";
import {
  type PeerLabels,
  serviceLabels,
  UNKNOWN,
  unknownPeer,
  workloadLabels,
} from "../telemetry/tcp_metrics.ts";
import {
  endToEnd,
  formatTraceparent,
  getHeader,
  type HeaderList,
  type TraceContext,
  traceContext,
  upstreamRequestHeaders,
} from "./headers.ts";
import type { WaypointTarget } from "./target.ts";
import { openEndpoint, openWorkload } from "./upstream.ts";
import type { UpstreamPool } from "./upstream_pool.ts";
import {
  Http1ServerConnection,
  type Http1ServerRequest,
  type Http1ServerResponse,
} from "./http1_server.ts";
import {
  Http1Connection,
  type Http1Exchange,
  type Http1Pool,
  Http1ResponseError,
} from "./http1_client.ts";

/** One request's access record. */
export type RequestRecord = Record<string, unknown>;

/** What the HTTP path reads from the running waypoint. */
export interface L7Context {
  readonly logger: Logger;
  snapshot(): Snapshot;
  waypoint(): WaypointInfo;
  readonly pool: HbonePool;
  readonly metrics: HttpMetrics;
  /** One record per request (the access log). */
  readonly access: (r: RequestRecord) => void;
  connectTimeout(): string;
  /** Authentication, authorization and routing. */
  readonly plan: PlanEnv;
  /** Load balancing, outlier detection and circuit breaking per backend host. */
  readonly backends: Backends;
  /** Pooled connections to endpoints (undefined: a new tunnel per request). */
  readonly upstreams?: UpstreamPool;
  /** Where sampled spans go (one per request), when tracing is on. */
  readonly spans?: OtlpExporter;
  /** Share of new traces (no caller traceparent) that are sampled, 0..1 (default 1 with spans). */
  readonly sampling?: number;
  readonly random?: () => number;
  /** HTTP connections in the tunnels, for a graceful stop (undefined: not tracked). */
  readonly drain?: L7Drain;
}

/**
 * The HTTP connections inside tunnels, for a graceful stop: once
 * {@link L7Drain.start} is called, idle HTTP/1.1 connections close, busy ones
 * close after their response (`connection: close`), and HTTP/2 sessions get
 * GOAWAY and close when their streams are done. The tunnels then end on
 * their own, well before the drain deadline.
 */
export class L7Drain {
  #draining = false;
  readonly #h1 = new Map<Duplex, H1State>();
  readonly #h2 = new Set<http2.Http2Session>();

  /** Whether the waypoint is stopping. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Starts draining every tracked connection. */
  start(): void {
    this.#draining = true;
    for (const [stream, st] of this.#h1) if (st.inflight === 0) stream.end();
    for (const session of this.#h2) session.close();
  }

  /** Tracks an HTTP/1.1 tunnel stream. */
  trackH1(stream: Duplex): H1State {
    const st: H1State = { inflight: 0 };
    this.#h1.set(stream, st);
    stream.once("close", () => this.#h1.delete(stream));
    return st;
  }

  /** Tracks an HTTP/2 session; a session that starts while draining is closed at once. */
  trackH2(session: http2.Http2Session): void {
    this.#h2.add(session);
    session.once("close", () => this.#h2.delete(session));
    if (this.#draining) session.close();
  }

  /** The state of an HTTP/1.1 tunnel stream. */
  h1(stream: Duplex): H1State | undefined {
    return this.#h1.get(stream);
  }
}

/** An HTTP/1.1 connection in a tunnel: how many of its requests are in progress. */
interface H1State {
  inflight: number;
}

/** Which endpoint a request went to, for metrics and logs. */
interface UpstreamRef {
  readonly address: string;
  readonly workload: string;
  readonly peerIdentity?: string;
}

/** How a try reaches the endpoint: its own tunnel, pooled HTTP/1.1 connections, or a shared HTTP/2 session. */
type Via =
  | { readonly stream: Duplex }
  | { readonly h1: Http1Pool }
  | { readonly session: http2.ClientHttp2Session };

/** Who sent a tunnel and what it is for. */
export interface TunnelInfo {
  readonly target: WaypointTarget;
  readonly sourceIdentity: string;
  readonly source: PeerLabels;
  /** The original client, from `forwarded`, else the sending node. */
  readonly client: HostPort;
}

/** A request as the decision sees it. */
export interface L7Request {
  readonly method: string;
  /** Path with query, as sent. */
  readonly path: string;
  readonly authority: string;
  readonly headers: HeaderList;
  readonly protocol: "http" | "grpc";
}

/** Envoy's texts for the answers a proxy makes itself. */
const UPSTREAM_CONNECT_ERROR =
  "upstream connect error or disconnect/reset before headers. reset reason: connection failure";
const UPSTREAM_TIMEOUT = "upstream request timeout";
/** Bodies up to this size are buffered, so a retry or a mirror can send them again. */
const MAX_BUFFERED_BODY = 1 << 20;

/** Plans a request: a service target through authn/authz/routing, a workload target as is. */
async function planFor(
  ctx: L7Context,
  info: TunnelInfo,
  req: L7Request,
  headers: HeaderList,
): Promise<RequestPlan | { kind: "workload" }> {
  if (info.target.kind === "workload") return { kind: "workload" };
  const snapshot = ctx.snapshot();
  const svc = snapshot.services.get(info.target.service.key) ?? info.target.service;
  return await planRequest(ctx.plan, info, svc, info.target.port.port, {
    method: req.method,
    path: req.path,
    authority: req.authority,
    headers,
    grpc: req.protocol === "grpc",
  });
}

function describeTarget(t: WaypointTarget): string {
  return t.kind === "service" ? `${t.service.key}:${t.port.port}` : `${t.workload.key}:${t.port}`;
}

/** Metrics and access log of one finished request. */
function finish(
  ctx: L7Context,
  info: TunnelInfo,
  req: L7Request,
  r: {
    status: number;
    flags: string;
    grpcStatus?: string;
    started: number;
    requestBytes: number;
    responseBytes: number;
    upstream?: UpstreamRef;
    trace: TraceContext;
    requestId: string;
    error?: string;
    route?: string;
    attempts?: number;
  },
): void {
  const durationMs = performance.now() - r.started;
  const snapshot = ctx.snapshot();
  const w = r.upstream ? snapshot.workloads.get(r.upstream.workload) : undefined;
  const labels: RequestLabels = {
    source: info.source,
    destination: w
      ? { ...workloadLabels(w), principal: r.upstream?.peerIdentity ?? UNKNOWN }
      : unknownPeer(),
    service: info.target.kind === "service" ? serviceLabels(info.target.service) : undefined,
    protocol: req.protocol,
    responseCode: r.status,
    grpcStatus: r.grpcStatus,
    responseFlags: r.flags,
    securityPolicy: "mutual_tls",
  };
  ctx.metrics.observe({
    labels,
    durationMs,
    requestBytes: r.requestBytes,
    responseBytes: r.responseBytes,
  });
  if (ctx.spans && r.trace.sampled) {
    const end = Date.now();
    ctx.spans.add({
      traceId: r.trace.traceId,
      spanId: r.trace.spanId,
      parentSpanId: r.trace.parentId,
      name: `${req.method} ${
        info.target.kind === "service" ? info.target.service.hostname : req.authority
      }`,
      startMs: end - durationMs,
      endMs: end,
      error: r.status >= 500 || (r.grpcStatus !== undefined && r.grpcStatus !== "0"),
      attributes: {
        "http.request.method": req.method,
        "url.path": req.path.split("?")[0],
        "server.address": req.authority,
        "http.response.status_code": r.status,
        "rpc.grpc.status_code": r.grpcStatus === undefined ? undefined : Number(r.grpcStatus),
        "istio.response_flags": r.flags,
        "istio.source_principal": info.sourceIdentity,
        "istio.upstream_cluster": r.upstream?.workload,
        "upstream.address": r.upstream?.address,
        "ambit.route": r.route,
        "guid:x-request-id": r.requestId,
      },
    });
  }
  ctx.access({
    method: req.method,
    path: req.path,
    authority: req.authority,
    protocol: req.protocol,
    status: r.status,
    grpc_status: r.grpcStatus,
    flags: r.flags,
    duration_ms: Math.round(durationMs * 1000) / 1000,
    bytes_received: r.requestBytes,
    bytes_sent: r.responseBytes,
    src: `${info.client.ip}:${info.client.port}`,
    src_identity: info.sourceIdentity,
    dst_service: info.target.kind === "service" ? info.target.service.hostname : undefined,
    upstream: r.upstream?.address,
    upstream_workload: r.upstream?.workload,
    trace_id: r.trace.traceId,
    span_id: r.trace.spanId,
    request_id: r.requestId,
    route: r.route,
    attempts: r.attempts,
    error: r.error,
  });
}

// ---------------------------------------------------------------------------
// HTTP/1.1

/** Serves HTTP/1.1 on `stream` (the tunnel's bytes) until it closes. */
export function serveHttp1(ctx: L7Context, stream: Duplex, info: TunnelInfo): void {
  const st = ctx.drain?.trackH1(stream);
  new Http1ServerConnection(stream, {
    onRequest(req, res) {
      if (st) st.inflight++;
      handleHttp1(ctx, info, req, res).catch((e) => {
        ctx.logger.error("waypoint request failed", { error: e as Error });
        if (!res.headersSent) res.reply(500, "");
        else res.destroy();
      });
    },
    onResponseEnd() {
      if (!st) return;
      st.inflight--;
      if (ctx.drain!.draining && st.inflight === 0) stream.end();
    },
    onClientError(err) {
      ctx.logger.debug("malformed HTTP request in a tunnel", { error: err.message });
    },
  });
  // Sniffing paused the stream.
  stream.resume();
}

async function handleHttp1(
  ctx: L7Context,
  info: TunnelInfo,
  req: Http1ServerRequest,
  res: Http1ServerResponse,
): Promise<void> {
  const headers = req.headers;
  // Stopping: a response begun now is its connection's last (connection: close).
  const lastIfDraining = () => {
    if (ctx.drain?.draining) res.last = true;
  };
  const ex: Exchange = {
    h2: false,
    request: {
      method: req.method,
      path: req.target,
      authority: getHeader(headers, "host") ?? "",
      headers,
      protocol: "http",
    },
    // The body stream of a bodiless request is made only if asked for.
    requestBody: () => req.body,
    bodyless: !req.hasBody,
    respond(status, h) {
      lastIfDraining();
      res.writeHead(status, endToEnd(h));
    },
    write: (c) => res.write(c),
    onDrain: (f) => res.onDrain(f),
    end(trailers) {
      res.end(
        trailers
          ? Object.entries(trailers).map(([k, v]) =>
            [k, Array.isArray(v) ? v.join(", ") : v] as [string, string]
          )
          : undefined,
      );
    },
    reply(status, body, h = []) {
      lastIfDraining();
      res.reply(status, body, [["content-type", "text/plain"], ...h]);
    },
    abort: () => res.destroy(),
    // Methods, not getters, on this per-request object: see Exchange.
    headersSent: () => res.headersSent,
    onClose: (f) => res.onClose(f),
  };
  await exchange(ctx, info, ex);
}

// ---------------------------------------------------------------------------
// HTTP/2 (h2c and gRPC)

/** Serves HTTP/2 (prior knowledge) on `stream` until it closes. */
export function serveHttp2(ctx: L7Context, stream: Duplex, info: TunnelInfo): void {
  const srv = http2.createServer({ maxSessionMemory: 64 });
  srv.on("stream", (s, h) => {
    handleHttp2(ctx, info, s, h).catch((e) => {
      ctx.logger.error("waypoint request failed", { error: e as Error });
      if (!s.destroyed) s.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
  });
  srv.on("sessionError", (e) => ctx.logger.debug("HTTP/2 session error", { error: e }));
  if (ctx.drain) srv.on("session", (session) => ctx.drain!.trackH2(session));
  srv.emit("connection", stream);
  stream.resume();
}

async function handleHttp2(
  ctx: L7Context,
  info: TunnelInfo,
  s: http2.ServerHttp2Stream,
  h: http2.IncomingHttpHeaders,
): Promise<void> {
  const headers: HeaderList = [];
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || k.startsWith(":")) continue;
    for (const x of Array.isArray(v) ? v : [v]) headers.push([k, String(x)]);
  }
  const contentType = getHeader(headers, "content-type") ?? "";
  const grpc = contentType.startsWith("application/grpc");
  let trailersPending: Record<string, string | string[]> | undefined;
  s.on("wantTrailers", () => s.sendTrailers(trailersPending ?? {}));
  const ex: Exchange = {
    h2: true,
    request: {
      method: String(h[":method"] ?? "GET"),
      path: String(h[":path"] ?? "/"),
      authority: String(h[":authority"] ?? getHeader(headers, "host") ?? ""),
      headers,
      protocol: grpc ? "grpc" : "http",
    },
    requestBody: () => s,
    bodyless: false,
    respond(status, hs) {
      if (s.destroyed || s.headersSent) return;
      const out: http2.OutgoingHttpHeaders = { ":status": status };
      for (const [k, v] of endToEnd(hs)) {
        const prev = out[k];
        out[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [String(prev)]), v];
      }
      s.respond(out, { waitForTrailers: true });
    },
    write: (c) => s.destroyed ? true : s.write(c),
    onDrain: (f) => s.once("drain", f),
    end(trailers) {
      trailersPending = trailers;
      if (!s.destroyed) s.end();
    },
    reply(status, body, hs = []) {
      if (s.destroyed) return;
      // gRPC clients read the outcome from grpc-status, as Envoy maps it.
      s.respond({
        ":status": grpc ? 200 : status,
        "content-type": grpc ? "application/grpc" : "text/plain",
        ...(grpc ? { "grpc-status": grpcStatusFor(status), "grpc-message": body.trim() } : {}),
        ...Object.fromEntries(hs),
      }, { endStream: grpc });
      if (!grpc) s.end(body);
    },
    abort: () => !s.destroyed && s.close(http2.constants.NGHTTP2_INTERNAL_ERROR),
    headersSent: () => s.headersSent,
    onClose: (f) => s.on("close", () => f()),
  };
  await exchange(ctx, info, ex);
}

// ---------------------------------------------------------------------------
// One request, either way in and either way out

/** A downstream request, whichever HTTP version carried it. */
interface Exchange {
  readonly request: L7Request;
  /** The client spoke HTTP/2. */
  readonly h2: boolean;
  /** The request body stream (made on first call for a bodiless HTTP/1.1 request). */
  requestBody(): Readable;
  /** Known to carry no body: `requestBody()` need not be called at all. */
  readonly bodyless: boolean;
  respond(status: number, headers: HeaderList): void;
  /** Writes response body; false when the client is full (wait for onDrain). */
  write(chunk: Uint8Array): boolean;
  onDrain(f: () => void): void;
  end(trailers?: Record<string, string | string[]>): void;
  /** A whole answer made by the waypoint. */
  reply(status: number, body: string, headers?: HeaderList): void;
  abort(): void;
  /**
   * Whether the response head went out. A method, not a getter: an object
   * literal with a closure getter gets a hidden class of its own, allocated
   * in the old generation, and that keeps the request's whole closure
   * context alive through young collections until the next full one (at
   * 1000 req/s: 6.6 MB/s promoted, a 10-20 ms mark-compact every ~1.2 s).
   */
  headersSent(): boolean;
  /** Runs `f` if the client goes away before the response ended. */
  onClose(f: () => void): void;
}

/** The result of one try to an endpoint. */
interface Forwarded {
  status: number;
  flags: string;
  grpcStatus?: string;
  responseBytes: number;
  error?: string;
  /** The response was not passed on: the caller may retry. */
  discarded?: boolean;
  /** How the try failed before a response, for retries and outlier detection. */
  failure?: "connect_failure" | "reset" | "per_try_timeout";
}

/** The upstream request of one try. */
interface TryRequest {
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly headers: HeaderList;
  /** The buffered body, or undefined to stream the client's (no retry after it started). */
  readonly body?: Uint8Array[];
  /** Called when the client's body starts streaming upstream. */
  readonly onStream?: () => void;
  readonly responseModifiers: readonly HeaderModifier[];
  /** Whether a response with this status is passed on (false: discarded for a retry). */
  commit(status: number): boolean;
  readonly perTryTimeoutMs?: number;
}

async function exchange(ctx: L7Context, info: TunnelInfo, ex: Exchange): Promise<void> {
  const started = performance.now();
  const req = ex.request;
  const sampleRoot = ctx.spans !== undefined &&
    (ctx.random ?? Math.random)() < (ctx.sampling ?? 1);
  const trace = traceContext(getHeader(req.headers, "traceparent"), sampleRoot);
  const requestId = getHeader(req.headers, "x-request-id") ?? randomUUID();
  const wp = ctx.waypoint();
  const headers = upstreamRequestHeaders(req.headers, {
    clientIp: info.client.ip,
    sourceIdentity: info.sourceIdentity,
    waypointIdentity: wp.identity,
    trace,
    requestId,
  });
  let requestBytes = 0;
  const grpcOf = (status: number) => req.protocol === "grpc" ? grpcStatusFor(status) : undefined;
  const done = (r: Omit<Parameters<typeof finish>[3], "started" | "trace" | "requestId">) =>
    finish(ctx, info, req, { ...r, started, trace, requestId });
  const reply = (status: number, body: string, flags: string, hs?: HeaderList, error?: string) => {
    if (!ex.bodyless) {
      // The unread body is drained (and counted) so the connection can go on.
      const stream = ex.requestBody();
      stream.on("data", (c: Uint8Array) => requestBytes += c.length);
      stream.resume();
    }
    const text = body ? body + "\n" : "";
    ex.reply(status, text, hs);
    done({
      status,
      flags,
      grpcStatus: grpcOf(status),
      requestBytes,
      responseBytes: text.length,
      error,
    });
  };

  // The body waits (paused) while the plan is made.
  let plan;
  try {
    plan = await planFor(ctx, info, req, headers);
  } catch (e) {
    ctx.logger.error("planning a request failed", { error: e as Error });
    return reply(500, "", "-", undefined, (e as Error).message);
  }
  if (plan.kind === "reply") {
    if (plan.reason) {
      ctx.logger.debug("waypoint answered itself", {
        status: plan.status,
        reason: plan.reason,
        path: req.path,
      });
    }
    return reply(plan.status, plan.body, plan.flags, plan.headers, plan.reason);
  }

  // The body: buffered when small (retries and mirrors resend it), else streamed.
  const length = Number(getHeader(req.headers, "content-length") ?? "NaN");
  // HTTP/1.1 knows from the head's framing (no length, no transfer-encoding); HTTP/2 from the stream.
  const bodiless = ex.h2 ? ex.requestBody().readableEnded || length === 0 : ex.bodyless;
  const bufferable = req.protocol !== "grpc" &&
    (bodiless || (length >= 0 && length <= MAX_BUFFERED_BODY));
  let body: Uint8Array[] | undefined;
  if (bufferable) {
    const chunks: Uint8Array[] = body = [];
    // A body that cannot come is neither listened to nor waited for (nor its stream made).
    if (!ex.bodyless) {
      const stream = ex.requestBody();
      stream.on("data", (c: Uint8Array) => {
        requestBytes += c.length;
        chunks.push(c);
      });
      await new Promise<void>((r) => {
        if (stream.readableEnded) return r();
        stream.once("end", () => r());
        stream.once("close", () => r());
      });
    }
  }
  // A streamed body is counted from when it is piped upstream (not before: it would flow away).
  const countStreamed = () =>
    ex.requestBody().on("data", (c: Uint8Array) => requestBytes += c.length);

  const snapshot = ctx.snapshot();
  const deadline = plan.kind === "forward" && plan.timeoutMs ? started + plan.timeoutMs : undefined;
  let attempt = 0;
  let last: Forwarded | undefined;
  let conn: UpstreamRef | undefined;
  const upstreamH2 = upstreamIsHttp2(info, req, ex.h2);
  while (true) {
    const remaining = deadline ? deadline - performance.now() : undefined;
    if (remaining !== undefined && remaining <= 0) {
      if (!ex.headersSent()) ex.reply(504, UPSTREAM_TIMEOUT + "\n");
      return done({
        status: 504,
        flags: "UT",
        grpcStatus: grpcOf(504),
        requestBytes,
        responseBytes: 0,
        upstream: conn,
        route: plan.kind === "forward" ? plan.route : undefined,
        attempts: attempt,
      });
    }
    let r: Forwarded;
    let endpoint: Endpoint | undefined;
    let state: BackendState | undefined;
    let release = () => {};
    let via: Via | undefined;
    try {
      if (plan.kind === "workload") {
        const t = info.target as Extract<WaypointTarget, { kind: "workload" }>;
        const c = await openWorkload(
          {
            waypoint: wp,
            pool: ctx.pool,
            connectTimeout: ctx.connectTimeout(),
            client: info.client,
          },
          snapshot,
          t.workload,
          t.port,
        );
        conn = c;
        via = { stream: c.stream };
      } else {
        state = ctx.backends.for(snapshot, plan.backend);
        const eps = state.endpoints(plan.port);
        const usable = state.outlier ? state.outlier.eligible(eps) : eps;
        const picked = state.balancer.pick(usable, {
          headers: { get: (n: string) => getHeader(plan.request.headers, n.toLowerCase()) ?? null },
          // Parsed only if a consistent hash asks for a query parameter.
          query: { get: (n: string) => queryParams(plan.request.path).get(n) },
          sourceIp: info.client.ip,
        });
        if (!picked) {
          if (last) break;
          return reply(503, "no healthy upstream", "UH");
        }
        const slot = state.breaker.tryAcquire("request");
        if (!slot.ok) {
          if (last) break;
          return reply(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            "UO",
          );
        }
        release = slot.release;
        endpoint = picked.endpoint;
        state.balancer.onStart(endpoint);
        if (ctx.upstreams) {
          const w = snapshot.workloads.get(endpoint.workload);
          conn = {
            address: `${endpoint.address}:${endpoint.ports[plan.port]}`,
            workload: endpoint.workload,
            peerIdentity: w?.enrolled ? w.identity : undefined,
          };
          via = upstreamH2
            ? {
              session: await ctx.upstreams.session(
                plan.backend,
                endpoint,
                plan.port,
                plan.request.authority,
              ),
            }
            : { h1: ctx.upstreams.h1(plan.backend, endpoint, plan.port) };
        } else {
          const c = await openEndpoint(
            {
              snapshot,
              waypoint: wp,
              pool: ctx.pool,
              connectTimeout: ctx.connectTimeout(),
              client: info.client,
            },
            plan.backend,
            endpoint,
            plan.port,
          );
          conn = c;
          via = { stream: c.stream };
        }
      }
      const p = plan;
      const tr: TryRequest = {
        method: p.kind === "forward" ? p.request.method : req.method,
        path: p.kind === "forward" ? p.request.path : req.path,
        authority: p.kind === "forward" ? p.request.authority : req.authority,
        headers: p.kind === "forward" ? p.request.headers : headers,
        body,
        onStream: countStreamed,
        responseModifiers: p.kind === "forward" ? p.responseModifiers : [],
        perTryTimeoutMs: minDefined(
          p.kind === "forward" ? p.retry.perTryTimeoutMs : undefined,
          deadline ? deadline - performance.now() : undefined,
        ),
        commit: (status) => {
          if (p.kind !== "forward" || body === undefined) return true;
          const d = shouldRetry(p.retry, attempt, { status }, { random: ctx.random });
          return !d.retry;
        },
      };
      r = upstreamH2 ? await forwardHttp2(ex, via!, tr) : await forwardHttp1(ex, via!, tr);
      if (r.failure && "session" in via! && plan.kind === "forward" && endpoint) {
        ctx.upstreams?.dropSession(plan.backend, endpoint, plan.port);
      }
    } catch (e) {
      const err = e as Error;
      ctx.logger.warn("waypoint upstream failed", {
        destination: describeTarget(info.target),
        endpoint: endpoint?.workload,
        error: err.message,
      });
      const denied = err instanceof TunnelError && err.failure === "peer_status" &&
        err.status === 401;
      if (denied) return reply(403, "RBAC: access denied", "UAEX", undefined, err.message);
      r = {
        status: 503,
        flags: "UF",
        responseBytes: 0,
        error: err.message,
        failure: "connect_failure",
      };
    } finally {
      release();
      if (endpoint) state?.balancer.onEnd(endpoint);
    }
    if (endpoint && state?.outlier) {
      state.outlier.report(
        endpoint,
        r.failure === "per_try_timeout" ? "timeout" : r.failure ?? r.status,
      );
    }
    last = r;
    if (!r.discarded && !r.failure) break;
    if (plan.kind !== "forward") break;
    const outcome = r.failure ? { failure: r.failure } : { status: r.status };
    const d = shouldRetry(plan.retry, attempt, outcome, {
      random: ctx.random,
      bodyReplayable: body !== undefined || r.failure === "connect_failure",
    });
    if (!d.retry || ex.headersSent()) break;
    attempt++;
    await new Promise((res) => setTimeout(res, d.delayMs));
  }
  const r = last!;
  if (!ex.headersSent() && (r.discarded || r.failure)) {
    // The last try's answer was held back for a retry that will not come, or it failed.
    const status = r.failure === "per_try_timeout" ? 504 : r.status || 503;
    const text = r.failure === "per_try_timeout"
      ? UPSTREAM_TIMEOUT
      : r.failure
      ? UPSTREAM_CONNECT_ERROR
      : "upstream answered " + r.status;
    ex.reply(status, text + "\n");
    r.responseBytes = text.length + 1;
    r.status = status;
    if (r.flags === "-") r.flags = r.failure === "per_try_timeout" ? "UT" : "URX";
  }
  done({
    ...r,
    grpcStatus: r.grpcStatus ?? (r.flags !== "-" ? grpcOf(r.status) : undefined),
    requestBytes,
    upstream: conn,
    route: plan.kind === "forward" ? plan.route : undefined,
    attempts: attempt + 1,
  });
  if (plan.kind === "forward" && body && plan.mirrors.length > 0) {
    mirror(ctx, info, plan, body, upstreamH2);
  }
}

/** The query parameters of a request target. */
function queryParams(path: string): URLSearchParams {
  const i = path.indexOf("?");
  return new URLSearchParams(i < 0 ? "" : path.slice(i + 1));
}

function minDefined(a?: number, b?: number): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/** Sends copies of a buffered request to the mirror backends; answers are dropped. */
function mirror(
  ctx: L7Context,
  info: TunnelInfo,
  plan: Extract<RequestPlan, { kind: "forward" }>,
  body: Uint8Array[],
  h2: boolean,
): void {
  const snapshot = ctx.snapshot();
  for (const m of plan.mirrors) {
    const svc = m.kind === "Service" ? snapshot.services.get(m.service) : undefined;
    if (!svc) continue;
    const eps = svc.endpoints.filter((e) => e.ports[m.port] !== undefined && e.weight > 0);
    if (eps.length === 0) continue;
    const ep = eps[Math.floor((ctx.random ?? Math.random)() * eps.length)];
    openEndpoint(
      {
        snapshot,
        waypoint: ctx.waypoint(),
        pool: ctx.pool,
        connectTimeout: ctx.connectTimeout(),
        client: info.client,
      },
      svc,
      ep,
      m.port,
    ).then((conn) => {
      const sink = sinkExchange(plan.request.method, plan.request.path, plan.request.authority);
      const tr: TryRequest = {
        ...plan.request,
        authority: `${plan.request.authority}-shadow`,
        body,
        responseModifiers: [],
        commit: () => true,
        perTryTimeoutMs: 10_000,
      };
      const v = { stream: conn.stream };
      return h2 ? forwardHttp2(sink, v, tr) : forwardHttp1(sink, v, tr);
    }).catch((e) => ctx.logger.debug("mirror failed", { error: (e as Error).message }));
  }
}

/** An Exchange that discards the response (mirrors). */
function sinkExchange(method: string, path: string, authority: string): Exchange {
  const body = new PassThrough();
  body.end();
  return {
    h2: false,
    request: { method, path, authority, headers: [], protocol: "http" },
    requestBody: () => body,
    bodyless: true,
    respond: () => {},
    write: () => true,
    onDrain: () => {},
    end: () => {},
    reply: () => {},
    abort: () => {},
    headersSent: () => false,
    onClose: () => {},
  };
}

/**
 * The protocol toward the app, as Istio picks it: HTTP/2 for ports declared
 * `http2`/`grpc`, HTTP/1.1 for `http`, else what the client spoke (gRPC is
 * always HTTP/2).
 */
function upstreamIsHttp2(info: TunnelInfo, req: L7Request, downstreamH2: boolean): boolean {
  if (req.protocol === "grpc") return true;
  const p = info.target.protocol;
  if (p === "http2") return true;
  if (p === "http") return false;
  return downstreamH2;
}

/** Feeds the try's body upstream: the buffered chunks, or the client's stream. */
function sendBody(ex: Exchange, tr: TryRequest, up: Writable): void {
  if (tr.body) {
    for (const c of tr.body) up.write(c);
    up.end();
  } else {
    tr.onStream?.();
    ex.requestBody().pipe(up);
  }
}

/** Response headers with the route's modifiers applied. */
function responseHeaders(tr: TryRequest, hs: HeaderList): HeaderList {
  return tr.responseModifiers.length === 0
    ? hs
    : modifyResponseHeaders(hs, tr.responseModifiers).map(([k, v]) => [k, v] as [string, string]);
}

/** The headers of a try toward an HTTP/1.1 app: `host` from `:authority`, no `te`. */
function http1Headers(tr: TryRequest, close: boolean): HeaderList {
  const out: HeaderList = [];
  const hasHost = getHeader(tr.headers, "host") !== undefined;
  // HTTP/1.1 needs Host; from HTTP/2 it comes as :authority.
  if (!hasHost && tr.authority) out.push(["host", tr.authority]);
  for (const h of tr.headers) {
    if (h[0] === "te" || (h[0] === "host" && tr.authority !== "")) continue;
    out.push(h);
  }
  if (hasHost && tr.authority) out.push(["host", tr.authority]);
  // A tunnel of its own ends with the request; a pooled one is kept alive.
  if (close) out.push(["connection", "close"]);
  return out;
}

async function forwardHttp1(ex: Exchange, via: Via, tr: TryRequest): Promise<Forwarded> {
  const own = "stream" in via;
  let conn: Http1Connection;
  let reused = false;
  if (own) conn = new Http1Connection(via.stream);
  else ({ conn, reused } = await (via as { h1: Http1Pool }).h1.acquire());
  return new Promise((resolve) => {
    const r: Forwarded = { status: 0, flags: "-", responseBytes: 0 };
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let trailerNames = false;
    const end = (x: Forwarded) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(x);
    };
    const contentLength = getHeader(tr.headers, "content-length");
    let discard = false;
    let up: Http1Exchange;
    try {
      up = conn.request({
        method: tr.method,
        path: tr.path,
        headers: http1Headers(tr, own),
        body: tr.body,
        contentLength: contentLength === undefined ? undefined : Number(contentLength),
      }, {
        onHead(status, headers) {
          r.status = status;
          if (!tr.commit(status)) {
            // Held back for a retry: the body is read to its end so the connection is reused.
            discard = true;
            return;
          }
          clearTimeout(timer);
          trailerNames = headers.some(([k]) => k === "trailer");
          ex.respond(status, responseHeaders(tr, headers));
        },
        onData(c) {
          if (discard) return true;
          r.responseBytes += c.length;
          if (ex.write(c)) return true;
          ex.onDrain(() => up.resume());
          return false;
        },
        onEnd(trailers) {
          if (discard) return end({ ...r, discarded: true });
          const t: Record<string, string> = {};
          if (trailerNames) { for (const [k, v] of trailers) t[k] = t[k] ? `${t[k]}, ${v}` : v; }
          ex.end(t);
          end(r);
        },
        onError(e, beforeResponse) {
          if (beforeResponse && e instanceof Http1ResponseError && !e.closed) {
            // The app answered, but not in HTTP/1.1 the waypoint accepts: 502, no retry.
            if (!ex.headersSent()) ex.reply(502, "upstream protocol error\n");
            return end({ ...r, status: 502, flags: "UPE", responseBytes: 24, error: e.message });
          }
          if (beforeResponse) {
            // A pooled connection the app closed meanwhile: as connect failure, so it is retried.
            return end({
              ...r,
              flags: "UF",
              failure: reused ? "connect_failure" : "reset",
              error: e.message,
            });
          }
          if (discard) return end({ ...r, discarded: true });
          end(upstreamFailure(ex, e, r));
        },
      });
    } catch (e) {
      if (own) conn.destroy();
      return end({ ...r, status: 500, flags: "UF", failure: "reset", error: (e as Error).message });
    }
    if (tr.perTryTimeoutMs !== undefined) {
      timer = setTimeout(() => {
        // The outcome first: failing the exchange reports an error of its own.
        end({ ...r, flags: "UT", failure: "per_try_timeout", error: "per-try timeout" });
        up.fail(new Error("per-try timeout"));
      }, tr.perTryTimeoutMs);
    }
    ex.onClose(() => {
      if (done) return;
      end({ ...r, status: r.status || 499, flags: "DC", error: "downstream closed" });
      up.fail(new Error("downstream closed"));
    });
    if (!tr.body) {
      tr.onStream?.();
      ex.requestBody().pipe(up.bodyWriter());
    }
  });
}

function forwardHttp2(ex: Exchange, via: Via, tr: TryRequest): Promise<Forwarded> {
  return new Promise((resolve) => {
    const r: Forwarded = { status: 0, flags: "-", responseBytes: 0 };
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const own = "stream" in via;
    const session = own
      ? http2.connect(`http://${tr.authority || "upstream"}`, {
        createConnection: () => via.stream,
      } as unknown as http2.SecureClientSessionOptions)
      : (via as { session: http2.ClientHttp2Session }).session;
    if (own) session.on("error", () => {});
    const end = (x: Forwarded) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (own) session.close();
      resolve(x);
    };
    const out: http2.OutgoingHttpHeaders = {
      ":method": tr.method,
      ":path": tr.path,
      ":authority": tr.authority,
      ":scheme": "http",
    };
    for (const [k, v] of tr.headers) {
      if (k === "host") continue;
      const prev = out[k];
      out[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [String(prev)]), v];
    }
    const up = session.request(out, { endStream: false });
    if (tr.perTryTimeoutMs !== undefined) {
      timer = setTimeout(() => {
        up.close(http2.constants.NGHTTP2_CANCEL);
        end({ ...r, flags: "UT", failure: "per_try_timeout", error: "per-try timeout" });
      }, tr.perTryTimeoutMs);
    }
    let trailers: Record<string, string | string[]> | undefined;
    let headerGrpc: Record<string, string> | undefined;
    let responded = false;
    let discarded = false;
    // Deno's client may emit body data before "response": hold it until the headers went out.
    const early: Uint8Array[] = [];
    const write = (c: Uint8Array) => {
      if (!ex.write(c)) {
        up.pause();
        ex.onDrain(() => up.resume());
      }
    };
    const keepTrailers = (t: http2.IncomingHttpHeaders) => {
      trailers = {};
      for (const [k, v] of Object.entries(t)) {
        if (!k.startsWith(":") && v !== undefined) trailers[k] = v as string | string[];
      }
      if (t["grpc-status"] !== undefined) r.grpcStatus = String(t["grpc-status"]);
    };
    up.on("response", (rh) => {
      if (responded) return keepTrailers(rh); // Deno reports trailers as a second response.
      responded = true;
      r.status = Number(rh[":status"] ?? 502);
      if (rh["grpc-status"] !== undefined) {
        // A trailers-only gRPC answer: repeat its status as trailers (the client reads those).
        r.grpcStatus = String(rh["grpc-status"]);
        headerGrpc = { "grpc-status": r.grpcStatus };
        if (rh["grpc-message"] !== undefined) {
          headerGrpc["grpc-message"] = String(rh["grpc-message"]);
        }
      }
      if (!tr.commit(r.status)) {
        discarded = true;
        up.close(http2.constants.NGHTTP2_CANCEL);
        return end({ ...r, discarded: true });
      }
      clearTimeout(timer);
      const hs: HeaderList = [];
      for (const [k, v] of Object.entries(rh)) {
        if (k.startsWith(":") || v === undefined) continue;
        for (const x of Array.isArray(v) ? v : [v]) hs.push([k, String(x)]);
      }
      ex.respond(r.status, responseHeaders(tr, hs));
      for (const c of early.splice(0)) write(c);
    });
    up.on("trailers", keepTrailers);
    up.on("data", (c: Uint8Array) => {
      if (discarded) return;
      r.responseBytes += c.length;
      if (!responded) early.push(c);
      else write(c);
    });
    // Trailers may be reported after "end": finish on "close", when the stream is done.
    let ended = false;
    up.on("end", () => ended = true);
    up.on("close", () => {
      if (done) return;
      if (ended || responded) {
        ex.end(trailers ?? headerGrpc);
        end(r);
      } else {end({
          ...r,
          flags: "UF",
          failure: "reset",
          error: "upstream stream closed before a response",
        });}
    });
    up.on("error", (e) => {
      if (!responded) return end({ ...r, flags: "UF", failure: "reset", error: e.message });
      end(upstreamFailure(ex, e, r));
    });
    ex.onClose(() => {
      if (done) return;
      up.close(http2.constants.NGHTTP2_CANCEL);
      end({ ...r, status: r.status || 499, flags: "DC", error: "downstream closed" });
    });
    sendBody(ex, tr, up);
  });
}

/** A failure after the response started: the client's stream is aborted. */
function upstreamFailure(ex: Exchange, error: Error, r: Forwarded): Forwarded {
  if (!ex.headersSent()) return { ...r, flags: "UF", failure: "reset", error: error.message };
  ex.abort();
  return { ...r, flags: "UPE", error: error.message };
}

/** The gRPC status Envoy maps an HTTP status to. */
export function grpcStatusFor(status: number): string {
  switch (status) {
    case 400:
      return "13";
    case 401:
      return "16";
    case 403:
      return "7";
    case 404:
      return "12";
    case 429:
    case 502:
    case 503:
    case 504:
      return "14";
    default:
      return "2";
  }
}

export { formatTraceparent };
