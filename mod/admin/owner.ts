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

/** Asks `GET /ready` on an admin address over a fresh connection; undefined when no ambit answers. */
export async function runningAmbitAt(
  at: { hostname: string; port: number },
  timeoutMs = 500,
): Promise<RunningAmbit | undefined> {
  const client = Deno.createHttpClient({});
  try {
    const host = at.hostname.includes(":") ? `[${at.hostname}]` : at.hostname;
    const res = await fetch(`http://${host}:${at.port}/ready`, {
      client,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = await res.json().catch(() => undefined) as Partial<RunningAmbit> | undefined;
    if (!body || typeof body.pid !== "number") return undefined;
    return { pid: body.pid, ready: body.ready === true, role: body.role, name: body.name };
  } catch {
    return undefined;
  } finally {
    client.close();
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
