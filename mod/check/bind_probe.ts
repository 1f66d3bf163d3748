/**
 * Can this process bind an address right now? Binds (TCP listen, or UDP)
 * and closes again. Deliberately without SO_REUSEPORT: ambit's own
 * listeners set it, and a probe that set it too could share a port with a
 * running listener instead of noticing it.
 *
 * @module
 */
import dgram from "node:dgram";

/** Why a bind failed, or that it worked. */
export type BindOutcome =
  | { readonly ok: true }
  | {
    readonly ok: false;
    /** in_use: EADDRINUSE; not_local: EADDRNOTAVAIL; permission: EACCES; other: anything else. */
    readonly reason: "in_use" | "not_local" | "permission" | "other";
    readonly message: string;
  };

/** Binds `ip:port` over `proto` and closes again. Never throws. */
export async function probeBind(
  at: { readonly ip: string; readonly port: number; readonly proto: "tcp" | "udp" },
): Promise<BindOutcome> {
  return at.proto === "tcp" ? probeTcp(at.ip, at.port) : await probeUdp(at.ip, at.port);
}

function probeTcp(ip: string, port: number): BindOutcome {
  try {
    Deno.listen({ hostname: ip, port, transport: "tcp" }).close();
    return { ok: true };
  } catch (e) {
    return failure(e);
  }
}

function probeUdp(ip: string, port: number): Promise<BindOutcome> {
  return new Promise((resolve) => {
    let sock: dgram.Socket;
    try {
      sock = dgram.createSocket({ type: ip.includes(":") ? "udp6" : "udp4", reuseAddr: false });
    } catch (e) {
      return resolve(failure(e));
    }
    sock.once("error", (e) => {
      try {
        sock.close();
      } catch { /* never bound */ }
      resolve(failure(e));
    });
    sock.bind({ address: ip, port, exclusive: true }, () => {
      sock.close(() => resolve({ ok: true }));
    });
  });
}

function failure(e: unknown): BindOutcome {
  const err = e as Error & { code?: string };
  const message = err.message ?? String(e);
  if (e instanceof Deno.errors.AddrInUse || err.code === "EADDRINUSE") {
    return { ok: false, reason: "in_use", message };
  }
  if (e instanceof Deno.errors.AddrNotAvailable || err.code === "EADDRNOTAVAIL") {
    return { ok: false, reason: "not_local", message };
  }
  if (
    e instanceof Deno.errors.PermissionDenied || err.code === "EACCES" || err.code === "EPERM"
  ) {
    return { ok: false, reason: "permission", message };
  }
  return { ok: false, reason: "other", message };
}
