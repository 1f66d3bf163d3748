/**
 * How ambit's listeners bind. Every TCP listener sets SO_REUSEPORT, so a new
 * ambit process for the same node can bind the same addresses while the old
 * one still runs: the kernel spreads new connections over both, the old one
 * closes its listeners on SIGTERM and drains, and no new connection is
 * refused (with `net.ipv4.tcp_migrate_req=1`, connections queued on the old
 * listener when it closes move to the new one instead of being reset).
 * Linux only lets sockets of the same user share a port this way. Before a
 * role binds, it asks the admin address who is there (mod/admin/owner.ts), so
 * two different roles or nodes never share ports by accident.
 *
 * @module
 */

/** Whether listeners bind with SO_REUSEPORT (TCP) and SO_REUSEADDR (UDP). */
export const REUSE_PORT = true;

/** `net.Server.listen` options for `ip:port` with SO_REUSEPORT. */
export function listenOn(at: { ip: string; port: number }): {
  host: string;
  port: number;
  reusePort: boolean;
} {
  return { host: at.ip, port: at.port, reusePort: REUSE_PORT };
}
