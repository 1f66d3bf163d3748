/**
 * The connection access log: one line per proxied connection when it ends
 * (or is refused), as text or JSON, to stderr through the logger or to a
 * file of its own.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";

/** One finished (or refused) connection. */
export interface AccessRecord {
  readonly direction: "inbound" | "outbound";
  /** How the app reached the mesh: vip, socks5, http, hbone, plaintext. */
  readonly via: string;
  /** Client `ip:port`. */
  readonly src: string;
  readonly srcWorkload?: string;
  readonly srcIdentity?: string;
  /** Destination `ip:port` (the workload, or the VIP/authority). */
  readonly dst: string;
  readonly dstService?: string;
  readonly dstWorkload?: string;
  readonly dstIdentity?: string;
  /** Next hop when not the destination itself (a node's 15008, a waypoint). */
  readonly hop?: string;
  /** Client to server. */
  readonly bytesReceived: number;
  /** Server to client. */
  readonly bytesSent: number;
  readonly durationMs: number;
  /** `ok`, `error` (ended by a failure after it was made) or `refused`. */
  readonly outcome: "ok" | "error" | "refused";
  /** Istio response flag (`-` when none). */
  readonly flag: string;
  readonly error?: string;
}

/** Where access records go. */
export type AccessSink = (r: AccessRecord) => void;

/** Options of {@link accessLog}. */
export interface AccessLogOptions {
  /** `off`, `stderr` (through the logger, default) or a file path. */
  readonly target?: string;
  readonly format?: "text" | "json";
  readonly logger: Logger;
}

/** An access log writer and its close function. */
export interface AccessLog {
  readonly write: AccessSink;
  close(): void;
}

/** Opens the access log described by `o`. */
export function accessLog(o: AccessLogOptions): AccessLog {
  const target = o.target ?? "stderr";
  if (target === "off") return { write: () => {}, close: () => {} };
  if (target === "stderr") {
    const log = o.logger.child({ component: "access" });
    return {
      write: (r) =>
        log.info(
          `${r.direction} connection ${r.outcome === "refused" ? "refused" : "closed"}`,
          flatten(r),
        ),
      close: () => {},
    };
  }
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(target, { append: true, create: true });
  } catch (e) {
    throw new AccessLogError(
      `cannot open access log ${target}: ${(e as Error).message} ` +
        "(check that its directory exists and is writable, or use --access-log stderr)",
    );
  }
  const enc = new TextEncoder();
  const format = o.format ?? "text";
  return {
    write: (r) => {
      const time = new Date().toISOString();
      const line = format === "json"
        ? JSON.stringify({ time, ...flatten(r) })
        : `${time} ${formatText(r)}`;
      try {
        file.writeSync(enc.encode(line + "\n"));
      } catch (e) {
        o.logger.warn("access log write failed", { path: target, error: e as Error });
      }
    },
    close: () => {
      try {
        file.close();
      } catch { /* already closed */ }
    },
  };
}

/** Raised when the access log file cannot be opened. */
export class AccessLogError extends Error {
  override readonly name = "AccessLogError";
}

function flatten(r: AccessRecord): Record<string, unknown> {
  return {
    direction: r.direction,
    via: r.via,
    src: r.src,
    src_workload: r.srcWorkload,
    src_identity: r.srcIdentity,
    dst: r.dst,
    dst_service: r.dstService,
    dst_workload: r.dstWorkload,
    dst_identity: r.dstIdentity,
    hop: r.hop,
    bytes_received: r.bytesReceived,
    bytes_sent: r.bytesSent,
    duration_ms: r.durationMs,
    outcome: r.outcome,
    flag: r.flag,
    error: r.error,
  };
}

function formatText(r: AccessRecord): string {
  let out = "";
  for (const [k, v] of Object.entries(flatten(r))) {
    if (v === undefined) continue;
    const s = String(v);
    out += `${out ? " " : ""}${k}=${/[\s"=]/.test(s) || s === "" ? JSON.stringify(s) : s}`;
  }
  return out;
}
