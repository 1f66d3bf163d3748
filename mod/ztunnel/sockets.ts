/**
 * The owning uid of a local TCP connection, from /proc/net/tcp and tcp6
 * (Linux). Used to attribute outbound connections to workloads by user.
 *
 * @module
 */
import { readProcText } from "../util/proc_fs.ts";
import { canonicalIp, unmapIp } from "../config/formats.ts";

/** One row of /proc/net/tcp{,6}. */
export interface TcpSocketEntry {
  readonly local: { ip: string; port: number };
  readonly remote: { ip: string; port: number };
  readonly state: number;
  readonly uid: number;
  readonly inode: number;
}

/** Parses /proc/net/tcp (family 4) or /proc/net/tcp6 (family 6). */
export function parseProcNetTcp(text: string, family: 4 | 6): TcpSocketEntry[] {
  const out: TcpSocketEntry[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const local = hexAddr(f[1], family), remote = hexAddr(f[2], family);
    if (!local || !remote) continue;
    out.push({ local, remote, state: parseInt(f[3], 16), uid: Number(f[7]), inode: Number(f[9]) });
  }
  return out;
}

function hexAddr(s: string, family: 4 | 6): { ip: string; port: number } | undefined {
  const [a, p] = s.split(":");
  if (!a || !p) return undefined;
  const port = parseInt(p, 16);
  if (family === 4) {
    if (a.length !== 8) return undefined;
    const n = parseInt(a, 16);
    return { ip: [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join("."), port };
  }
  if (a.length !== 32) return undefined;
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = a.slice(w * 8, w * 8 + 8);
    for (let i = 3; i >= 0; i--) bytes.push(parseInt(word.slice(i * 2, i * 2 + 2), 16));
  }
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255;
  if (mapped) return { ip: bytes.slice(12).join("."), port };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return { ip: canonicalIp(groups.join(":")), port };
}

function norm(ip: string): string {
  return canonicalIp(unmapIp(ip));
}

/**
 * The uid owning the socket whose local end is `local` and remote end is
 * `remote`: pass the client's address as seen by the server as `local` and
 * the server's address as `remote`. Undefined when not found or not Linux.
 */
export async function socketOwner(
  local: { ip: string; port: number },
  remote: { ip: string; port: number },
  opts: { procRoot?: string } = {},
): Promise<number | undefined> {
  const root = opts.procRoot ?? "/proc";
  const lip = norm(local.ip), rip = norm(remote.ip);
  for (const [file, fam] of [["tcp", 4], ["tcp6", 6]] as const) {
    // Through `cat` when Deno refuses /proc (it does without --allow-all).
    const text = await readProcText(`${root}/net/${file}`);
    if (text === undefined) continue;
    for (const e of parseProcNetTcp(text, fam)) {
      if (
        e.local.port === local.port && e.remote.port === remote.port &&
        norm(e.local.ip) === lip && norm(e.remote.ip) === rip
      ) return e.uid;
    }
  }
  return undefined;
}
