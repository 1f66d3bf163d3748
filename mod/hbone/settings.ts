/**
 * HBONE constants shared by server and client: ports and the HTTP/2
 * settings Istio's ztunnel uses for tunnels (see REFERENCE.md).
 *
 * @module
 */

/** HBONE inbound (mTLS). */
export const HBONE_PORT = 15008;
/** Plaintext inbound, where PeerAuthentication allows it. */
export const PLAINTEXT_PORT = 15006;
/** Prometheus metrics. */
export const METRICS_PORT = 15020;
/** Readiness probe. */
export const READINESS_PORT = 15021;
/** Ports a ztunnel listens on itself; tunnels to them are refused. */
export const AMBIT_PORTS: ReadonlySet<number> = new Set([
  15000,
  15001,
  15006,
  15008,
  15012,
  15014,
  15020,
  15021,
  15053,
  15080,
  15081,
]);

/** Per-stream flow-control window: 4 MiB. */
export const STREAM_WINDOW = 4 << 20;
/** Per-connection flow-control window: 16 MiB. */
export const CONNECTION_WINDOW = 16 << 20;
/** Largest frame either side accepts: 1 MiB. */
export const MAX_FRAME_SIZE = 1 << 20;
/** Concurrent streams a server allows per connection. */
export const SERVER_MAX_STREAMS = 200;
/** Largest `:authority` accepted (`[v6]:port` fits easily). */
export const MAX_AUTHORITY_LENGTH = 64;

/** Keepalive timings; tests shorten them. */
export interface KeepaliveOptions {
  /** PING interval (default 10 s). */
  readonly intervalMs: number;
  /** Drop the connection when no PING was answered for this long (default 20 s). */
  readonly timeoutMs: number;
}

/**
 * How long a stopping node waits for its drained HBONE connections to close
 * cleanly (GOAWAY, last frames out, the peer's close) before cutting them.
 */
export const CLOSE_GRACE_MS = 2500;

/** Istio's keepalive: PING every 10 s, drop after 20 s of silence. */
export const DEFAULT_KEEPALIVE: KeepaliveOptions = { intervalMs: 10_000, timeoutMs: 20_000 };

/** HTTP/2 SETTINGS a server advertises. */
export const SERVER_SETTINGS = {
  initialWindowSize: STREAM_WINDOW,
  maxFrameSize: MAX_FRAME_SIZE,
  maxConcurrentStreams: SERVER_MAX_STREAMS,
  enablePush: false,
  maxHeaderListSize: 16 << 10,
} as const;

/** HTTP/2 SETTINGS a client advertises. */
export const CLIENT_SETTINGS = {
  initialWindowSize: STREAM_WINDOW,
  maxFrameSize: MAX_FRAME_SIZE,
  enablePush: false,
} as const;

/**
 * Whether HBONE runs on Deno's `node:http2` instead of ambit's own HTTP/2
 * (`AMBIT_HBONE_H2=node`), for A/B measurement. Read once.
 */
export function useNodeHttp2(): boolean {
  if (nodeHttp2 === undefined) {
    try {
      nodeHttp2 = Deno.env.get("AMBIT_HBONE_H2") === "node";
    } catch {
      nodeHttp2 = false; // no --allow-env: the default
    }
  }
  return nodeHttp2;
}

let nodeHttp2: boolean | undefined;
