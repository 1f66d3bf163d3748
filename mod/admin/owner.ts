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

/**
 * Asks `GET /ready` on an admin address over a new connection (plain
 * HTTP/1.0 on a socket: no pooled client, so each call may reach another
 * process sharing the port); undefined when no ambit answers.
 */
export async function runningAmbitAt(
  at: { hostname: string; port: number },
  timeoutMs = 500,
): Promise<RunningAmbit | undefined> {
  let conn: Deno.TcpConn | undefined;
  const timer = setTimeout(() => conn?.close(), timeoutMs);
  try {
    conn = await Deno.connect({ hostname: at.hostname, port: at.port });
    const host = at.hostname.includes(":") ? `[${at.hostname}]` : at.hostname;
    await conn.write(
      new TextEncoder().encode(`GET /ready HTTP/1.0\r\nHost: ${host}:${at.port}\r\n\r\n`),
    );
    const chunks: Uint8Array[] = [];
    let size = 0;
    const buf = new Uint8Array(4096);
    while (size < 65536) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      size += n;
    }
    const text = new TextDecoder().decode(concatBytes(chunks));
    const body = text.slice(text.indexOf("\r\n\r\n") + 4);
    const parsed = JSON.parse(body) as Partial<RunningAmbit>;
    if (typeof parsed.pid !== "number") return undefined;
    return { pid: parsed.pid, ready: parsed.ready === true, role: parsed.role, name: parsed.name };
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed */ }
  }
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
