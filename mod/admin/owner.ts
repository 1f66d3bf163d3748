/**
 * Who answers on an admin address. Listeners bind with SO_REUSEPORT (see
 * mod/util/listen.ts), so before a role binds anything it asks the admin
 * address: nobody there, or the same role and instance (an upgrade in
 * progress), is fine; a different role or node is refused, because the two
 * would silently share ports.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import type { AdminOwner } from "./admin.ts";
import { concatBytes } from "../util/bytes.ts";

/** What a running ambit says about itself on `GET /ready`. */
export interface RunningAmbit {
  readonly pid: number;
  readonly ready: boolean;
  readonly role?: string;
  readonly name?: string;
}

/** Raised when another role or node already answers on the admin address. */
export class AdminInUseError extends Error {
  override readonly name = "AdminInUseError";
}

/** What one `GET /ready` on a new connection saw. */
export type ReadyProbe =
  | {
    readonly kind: "answer";
    readonly status: number;
    /** The body parsed as JSON (undefined when it is not JSON). */
    readonly body?: Record<string, unknown>;
    readonly text: string;
  }
  | { readonly kind: "error"; readonly message: string; readonly timedOut: boolean };

/**
 * `GET /ready` on an admin address over a new connection: plain HTTP/1.0 on
 * a socket of its own, no pooled client, so while two processes share the
 * port (an upgrade) each call may reach either. `timeoutMs` covers the
 * connect and the answer.
 */
export async function probeReady(
  at: { hostname: string; port: number },
  timeoutMs: number,
): Promise<ReadyProbe> {
  let conn: Deno.TcpConn | undefined;
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Error(`no answer within ${Math.round(timeoutMs)} ms`));
    }, timeoutMs);
  });
  expired.catch(() => {});
  try {
    const connecting = Deno.connect({ hostname: at.hostname, port: at.port });
    connecting.then((c) => timedOut && c.close(), () => {});
    conn = await Promise.race([connecting, expired]);
    const host = at.hostname.includes(":") ? `[${at.hostname}]` : at.hostname;
    await conn.write(
      new TextEncoder().encode(`GET /ready HTTP/1.0\r\nHost: ${host}:${at.port}\r\n\r\n`),
    );
    const chunks: Uint8Array[] = [];
    let size = 0;
    const buf = new Uint8Array(4096);
    while (size < 65536) {
      const n = await Promise.race([conn.read(buf), expired]);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      size += n;
    }
    const raw = new TextDecoder().decode(concatBytes(chunks));
    const status = Number(/^HTTP\/1\.[01] ([0-9]{3})/.exec(raw)?.[1] ?? 0);
    const split = raw.indexOf("\r\n\r\n");
    if (status === 0 || split < 0) {
      return { kind: "error", message: "the answer is not HTTP", timedOut: false };
    }
    const text = raw.slice(split + 4);
    let body: Record<string, unknown> | undefined;
    try {
      const parsed = JSON.parse(text);
      if (parsed && typeof parsed === "object") body = parsed;
    } catch { /* not JSON */ }
    return { kind: "answer", status, body, text };
  } catch (e) {
    return { kind: "error", message: (e as Error).message, timedOut };
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

/** Who answers `GET /ready` on an admin address (see {@link probeReady}); undefined when no ambit does. */
export async function runningAmbitAt(
  at: { hostname: string; port: number },
  timeoutMs = 500,
): Promise<RunningAmbit | undefined> {
  const r = await probeReady(at, timeoutMs);
  if (r.kind !== "answer" || typeof r.body?.pid !== "number") return undefined;
  const { pid, ready, role, name } = r.body;
  return {
    pid,
    ready: ready === true,
    role: typeof role === "string" ? role : undefined,
    name: typeof name === "string" ? name : undefined,
  };
}

/**
 * Checks that the admin address is free or held by the same role and
 * instance (then logs that the ports are shared until the old process stops);
 * throws {@link AdminInUseError} otherwise.
 */
export async function claimAdminAddress(
  at: { hostname: string; port: number },
  me: AdminOwner,
  logger: Logger,
): Promise<RunningAmbit | undefined> {
  const other = await runningAmbitAt(at);
  if (!other || other.pid === Deno.pid) return undefined;
  const where = `${at.hostname}:${at.port}`;
  if (other.role === undefined || other.name === undefined) {
    logger.warn("an ambit that does not say its role answers on the admin address; sharing ports", {
      admin: where,
      pid: other.pid,
    });
    return other;
  }
  if (other.role !== me.role || other.name !== me.name) {
    throw new AdminInUseError(
      `admin address ${where} belongs to ${other.role} ${other.name} (pid ${other.pid}); ` +
        `this ${me.role} ${me.name} would share its ports: give it another --admin ` +
        `(and its own listen addresses)`,
    );
  }
  logger.info(
    `another ${me.role} ${me.name} runs (pid ${other.pid}): sharing its ports with SO_REUSEPORT ` +
      "until it stops (zero-downtime upgrade)",
    { admin: where, pid: other.pid },
  );
  return other;
}
