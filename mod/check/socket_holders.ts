/**
 * Which processes hold the sockets on an address (Linux): the socket's
 * inode from /proc/net/{tcp,tcp6,udp,udp6}, then the process whose
 * /proc/<pid>/fd links to it. Best effort: without the right to read other
 * users' /proc/<pid>/fd (root sees all) the holder stays unknown.
 *
 * @module
 */
import { canonicalIp, unmapIp } from "../config/formats.ts";
import { parseProcNetTcp, type TcpSocketEntry } from "../ztunnel/sockets.ts";
import { readProcText, socketInodeOwners } from "./_proc.ts";

/** A process holding a socket. */
export interface SocketHolder {
  readonly pid: number;
  /** Its command name (`/proc/<pid>/comm`), when readable. */
  readonly command?: string;
}

/** A socket address to look up. */
export interface SocketAddress {
  readonly ip: string;
  readonly port: number;
  readonly proto: "tcp" | "udp";
}

/** TCP_LISTEN in /proc/net/tcp; TCP_CLOSE (7) is how an unconnected bound UDP socket shows. */
const TCP_LISTEN = 0x0a;
const UDP_UNCONNECTED = 0x07;

/**
 * Inodes of the sockets that occupy `at`: listening TCP (or unconnected
 * UDP) sockets on the same port, bound to the same address or a wildcard.
 * `entries` are /proc/net rows of `at.proto`. Pure.
 */
export function occupyingInodes(entries: readonly TcpSocketEntry[], at: SocketAddress): number[] {
  const want = canonicalIp(unmapIp(at.ip));
  const state = at.proto === "tcp" ? TCP_LISTEN : UDP_UNCONNECTED;
  const out: number[] = [];
  for (const e of entries) {
    if (e.local.port !== at.port || e.state !== state || e.inode === 0) continue;
    const ip = canonicalIp(unmapIp(e.local.ip));
    if (ip === want || ip === "0.0.0.0" || ip === "::") out.push(e.inode);
  }
  return out;
}

/**
 * The holders of the sockets occupying each address, in the order of
 * `addresses`; an empty list when unknown. Never throws.
 */
export async function socketHolders(
  addresses: readonly SocketAddress[],
): Promise<SocketHolder[][]> {
  const tables: Record<"tcp" | "udp", TcpSocketEntry[]> = { tcp: [], udp: [] };
  await Promise.all(
    (["tcp", "udp"] as const).flatMap((proto) =>
      ([["", 4], ["6", 6]] as const).map(async ([suffix, family]) => {
        // /proc/net/udp has the same columns as /proc/net/tcp.
        const text = await readProcText(`/proc/net/${proto}${suffix}`);
        if (text) tables[proto].push(...parseProcNetTcp(text, family));
      })
    ),
  );
  const inodesOf = addresses.map((a) => occupyingInodes(tables[a.proto], a));
  const owners = inodesOf.some((i) => i.length > 0)
    ? await socketInodeOwners()
    : new Map<number, number>();
  const commands = new Map<number, string | undefined>();
  const holder = async (pid: number): Promise<SocketHolder> => {
    if (!commands.has(pid)) {
      commands.set(pid, (await readProcText(`/proc/${pid}/comm`))?.trim());
    }
    const command = commands.get(pid);
    return command ? { pid, command } : { pid };
  };
  return await Promise.all(inodesOf.map(async (inodes) => {
    const pids = [...new Set(inodes.map((i) => owners.get(i)).filter((p) => p !== undefined))];
    return await Promise.all(pids.sort((a, b) => a - b).map(holder));
  }));
}
