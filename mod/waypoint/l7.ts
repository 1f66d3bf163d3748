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
import http from "node:http";
import http2 from "node:http2";
import { randomUUID } from "node:crypto";
import type { Duplex, Readable } from "node:stream";
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
  fromRaw,
  getHeader,
  type HeaderList,
  type TraceContext,
  traceContext,
  upstreamRequestHeaders,
} from "./headers.ts";
import type { WaypointTarget } from "./target.ts";
import { type EndpointConnection, openEndpoint, openWorkload } from "./upstream.ts";

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
  /** Endpoint chooser; default weighted random among endpoints serving the port. */
  readonly random?: () => number;
}

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

/** The decision for one request. */
type Decision =
  | {
    readonly kind: "reply";
    readonly status: number;
    readonly body: string;
    readonly flags: string;
    readonly headers?: HeaderList;
  }
  | {
    readonly kind: "forward";
    readonly conn: EndpointConnection;
    readonly headers: HeaderList;
  };

/** Envoy's texts for the answers a proxy makes itself. */
const UPSTREAM_CONNECT_ERROR =
  "upstream connect error or disconnect/reset before headers. reset reason: connection failure";

/** Decides what to do with one request: forward to an endpoint, or answer. */
async function decide(
  ctx: L7Context,
  info: TunnelInfo,
  req: L7Request,
  trace: TraceContext,
  requestId: string,
): Promise<Decision> {
  const snapshot = ctx.snapshot();
  const wp = ctx.waypoint();
  const headers = upstreamRequestHeaders(req.headers, {
    clientIp: info.client.ip,
    sourceIdentity: info.sourceIdentity,
    waypointIdentity: wp.identity,
    trace,
    requestId,
  });
  const o = {
    snapshot,
    waypoint: wp,
    pool: ctx.pool,
    connectTimeout: ctx.connectTimeout(),
    client: info.client,
  };
  try {
    if (info.target.kind === "workload") {
      const conn = await openWorkload(o, snapshot, info.target.workload, info.target.port);
      return { kind: "forward", conn, headers };
    }
    const svc = snapshot.services.get(info.target.service.key) ?? info.target.service;
    const port = info.target.port.port;
    const serving = svc.endpoints.filter((e) => e.ports[port] !== undefined && e.weight > 0);
    if (serving.length === 0) {
      return { kind: "reply", status: 503, body: "no healthy upstream", flags: "UH" };
    }
    const total = serving.reduce((n, e) => n + e.weight, 0);
    let r = (ctx.random ?? Math.random)() * total;
    const ep = serving.find((e) => (r -= e.weight) < 0) ?? serving[serving.length - 1];
    const conn = await openEndpoint(o, svc, ep, port);
    return { kind: "forward", conn, headers };
  } catch (e) {
    const err = e as Error;
    ctx.logger.warn("waypoint upstream failed", {
      destination: describeTarget(info.target),
      error: err.message,
    });
    const denied = err instanceof TunnelError && err.failure === "peer_status" &&
      err.status === 401;
    return denied
      ? { kind: "reply", status: 403, body: "RBAC: access denied", flags: "UAEX" }
      : { kind: "reply", status: 503, body: UPSTREAM_CONNECT_ERROR, flags: "UF" };
  }
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
    upstream?: EndpointConnection;
    trace: TraceContext;
    requestId: string;
    error?: string;
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
    error: r.error,
  });
}

// ---------------------------------------------------------------------------
// HTTP/1.1

const h1Info = new WeakMap<object, TunnelInfo>();
const h1Servers = new WeakMap<L7Context, http.Server>();

/** Serves HTTP/1.1 on `stream` (the tunnel's bytes) until it closes. */
export function serveHttp1(ctx: L7Context, stream: Duplex, info: TunnelInfo): void {
  let srv = h1Servers.get(ctx);
  if (!srv) {
    srv = http.createServer({ maxHeaderSize: 16 * 1024 } as http.ServerOptions, (req, res) => {
      const i = h1Info.get(req.socket);
      if (!i) {
        res.writeHead(500).end("no tunnel context\n");
        return;
      }
      handleHttp1(ctx, i, req, res).catch((e) => {
        ctx.logger.error("waypoint request failed", { error: e as Error });
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
    });
    srv.on("clientError", (err: Error & { code?: string }, sock: Duplex) => {
      ctx.logger.debug("malformed HTTP request in a tunnel", { error: err.message });
      const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
      if (sock.writable) {
        sock.end(
          `HTTP/1.1 ${status} ${
            status === 431 ? "Request Header Fields Too Large" : "Bad Request"
          }\r\n` +
            "content-length: 0\r\nconnection: close\r\n\r\n",
        );
      } else sock.destroy();
    });
    h1Servers.set(ctx, srv);
  }
  h1Info.set(stream, info);
  srv.emit("connection", stream);
  // Sniffing paused the stream; the server's data listener does not undo an explicit pause.
  stream.resume();
}

async function handleHttp1(
  ctx: L7Context,
  info: TunnelInfo,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const headers = fromRaw(req.rawHeaders);
  const ex: Exchange = {
    h2: false,
    request: {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      authority: getHeader(headers, "host") ?? "",
      headers,
      protocol: "http",
    },
    body: req,
    respond(status, h) {
      res.writeHead(status, endToEnd(h).flat());
    },
    write: (c) => res.write(c),
    onDrain: (f) => res.once("drain", f),
    end(trailers) {
      if (trailers && Object.keys(trailers).length > 0 && res.hasHeader("trailer")) {
        res.addTrailers(trailers as http.OutgoingHttpHeaders);
      }
      res.end();
    },
    reply(status, body, h = []) {
      res.writeHead(status, [["content-type", "text/plain"], ...h].flat());
      res.end(body);
    },
    abort: () => res.destroy(),
    get headersSent() {
      return res.headersSent;
    },
    onClose: (f) => res.on("close", () => !res.writableFinished && f()),
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
    body: s,
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
    get headersSent() {
      return s.headersSent;
    },
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
  readonly body: Readable;
  respond(status: number, headers: HeaderList): void;
  /** Writes response body; false when the client is full (wait for onDrain). */
  write(chunk: Uint8Array): boolean;
  onDrain(f: () => void): void;
  end(trailers?: Record<string, string | string[]>): void;
  /** A whole answer made by the waypoint. */
  reply(status: number, body: string, headers?: HeaderList): void;
  abort(): void;
  readonly headersSent: boolean;
  /** Runs `f` if the client goes away before the response ended. */
  onClose(f: () => void): void;
}

/** The result of forwarding to an endpoint. */
interface Forwarded {
  status: number;
  flags: string;
  grpcStatus?: string;
  responseBytes: number;
  error?: string;
}

async function exchange(ctx: L7Context, info: TunnelInfo, ex: Exchange): Promise<void> {
  const started = performance.now();
  const req = ex.request;
  const trace = traceContext(getHeader(req.headers, "traceparent"));
  const requestId = getHeader(req.headers, "x-request-id") ?? randomUUID();
  let requestBytes = 0;
  // The body waits (paused) while the decision is made; counting starts with the forwarding.
  const d = await decide(ctx, info, req, trace, requestId);
  ex.body.on("data", (c: Uint8Array) => requestBytes += c.length);
  const grpcOf = (status: number) => req.protocol === "grpc" ? grpcStatusFor(status) : undefined;
  if (d.kind === "reply") {
    ex.body.resume();
    const body = d.body ? d.body + "\n" : "";
    ex.reply(d.status, body, d.headers);
    finish(ctx, info, req, {
      status: d.status,
      flags: d.flags,
      grpcStatus: grpcOf(d.status),
      started,
      requestBytes,
      responseBytes: body.length,
      trace,
      requestId,
    });
    return;
  }
  const upstreamH2 = upstreamIsHttp2(info, req, ex.h2);
  const r = upstreamH2
    ? await forwardHttp2(ex, d.conn, d.headers)
    : await forwardHttp1(ex, d.conn, d.headers);
  finish(ctx, info, req, {
    ...r,
    grpcStatus: r.grpcStatus ?? (r.flags !== "-" ? grpcOf(r.status) : undefined),
    started,
    requestBytes,
    upstream: d.conn,
    trace,
    requestId,
  });
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

/** Envoy's texts for answers made when the upstream fails. */
function upstreamFailure(ex: Exchange, error: Error, r: Forwarded): Forwarded {
  if (!ex.headersSent) {
    const body = UPSTREAM_CONNECT_ERROR + "\n";
    ex.reply(503, body);
    return { ...r, status: 503, flags: "UF", responseBytes: body.length, error: error.message };
  }
  ex.abort();
  return { ...r, flags: "UPE", error: error.message };
}

function forwardHttp1(
  ex: Exchange,
  conn: EndpointConnection,
  headers: HeaderList,
): Promise<Forwarded> {
  return new Promise((resolve) => {
    const r: Forwarded = { status: 0, flags: "-", responseBytes: 0 };
    let done = false;
    const end = (x: Forwarded) => {
      if (done) return;
      done = true;
      resolve(x);
    };
    const up = http.request({
      method: ex.request.method,
      path: ex.request.path,
      headers: [
        // HTTP/1.1 needs Host; from HTTP/2 it comes as :authority.
        ...(getHeader(headers, "host") === undefined && ex.request.authority
          ? [["host", ex.request.authority]]
          : []),
        ...headers.filter(([k]) => k !== "te"),
        ["connection", "close"],
      ].flat(),
      setHost: false,
      createConnection: () => conn.stream,
    } as unknown as http.RequestOptions);
    up.on("response", (ures) => {
      r.status = ures.statusCode ?? 502;
      ex.respond(r.status, fromRaw(ures.rawHeaders));
      ures.on("data", (c: Uint8Array) => {
        r.responseBytes += c.length;
        if (!ex.write(c)) {
          ures.pause();
          ex.onDrain(() => ures.resume());
        }
      });
      ures.on("end", () => {
        ex.end(ures.trailers as Record<string, string>);
        end(r);
      });
      ures.on("error", (e) => end(upstreamFailure(ex, e, r)));
    });
    up.on("error", (e) => {
      conn.stream.destroy();
      end(upstreamFailure(ex, e, r));
    });
    ex.onClose(() => {
      if (done) return;
      up.destroy();
      end({ ...r, status: r.status || 499, flags: "DC", error: "downstream closed" });
    });
    ex.body.pipe(up);
  });
}

function forwardHttp2(
  ex: Exchange,
  conn: EndpointConnection,
  headers: HeaderList,
): Promise<Forwarded> {
  return new Promise((resolve) => {
    const r: Forwarded = { status: 0, flags: "-", responseBytes: 0 };
    let done = false;
    const session = http2.connect(`http://${ex.request.authority || "upstream"}`, {
      createConnection: () => conn.stream,
    } as unknown as http2.SecureClientSessionOptions);
    session.on("error", () => {});
    const end = (x: Forwarded) => {
      if (done) return;
      done = true;
      session.close();
      resolve(x);
    };
    const out: http2.OutgoingHttpHeaders = {
      ":method": ex.request.method,
      ":path": ex.request.path,
      ":authority": ex.request.authority,
      ":scheme": "http",
    };
    for (const [k, v] of headers) {
      if (k === "host") continue;
      const prev = out[k];
      out[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [String(prev)]), v];
    }
    const up = session.request(out, { endStream: false });
    let trailers: Record<string, string | string[]> | undefined;
    let responded = false;
    up.on("response", (rh) => {
      if (responded) {
        // Deno's client reports trailers as a second response: keep them as trailers.
        trailers = {};
        for (const [k, v] of Object.entries(rh)) {
          if (!k.startsWith(":") && v !== undefined) trailers[k] = v as string | string[];
        }
        if (rh["grpc-status"] !== undefined) r.grpcStatus = String(rh["grpc-status"]);
        return;
      }
      responded = true;
      r.status = Number(rh[":status"] ?? 502);
      if (rh["grpc-status"] !== undefined) r.grpcStatus = String(rh["grpc-status"]);
      const hs: HeaderList = [];
      for (const [k, v] of Object.entries(rh)) {
        if (k.startsWith(":") || v === undefined) continue;
        for (const x of Array.isArray(v) ? v : [v]) hs.push([k, String(x)]);
      }
      ex.respond(r.status, hs);
      for (const c of early.splice(0)) write(c);
    });
    up.on("trailers", (t) => {
      trailers = {};
      for (const [k, v] of Object.entries(t)) {
        if (!k.startsWith(":") && v !== undefined) trailers[k] = v as string | string[];
      }
      if (t["grpc-status"] !== undefined) r.grpcStatus = String(t["grpc-status"]);
    });
    // Deno's client may emit body data before "response": hold it until the headers went out.
    const early: Uint8Array[] = [];
    const write = (c: Uint8Array) => {
      if (!ex.write(c)) {
        up.pause();
        ex.onDrain(() => up.resume());
      }
    };
    up.on("data", (c: Uint8Array) => {
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
        ex.end(trailers);
        end(r);
      } else end(upstreamFailure(ex, new Error("upstream stream closed before a response"), r));
    });
    up.on("error", (e) => end(upstreamFailure(ex, e, r)));
    ex.onClose(() => {
      if (done) return;
      up.close(http2.constants.NGHTTP2_CANCEL);
      end({ ...r, status: r.status || 499, flags: "DC", error: "downstream closed" });
    });
    ex.body.pipe(up);
  });
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
