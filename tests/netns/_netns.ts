/**
 * A multi-host test bed from Linux network namespaces: one namespace per
 * "host", each with a veth pair into a bridge that lives in its own "wire"
 * namespace, so nothing is added to the root namespace (no interface, no
 * address, no route). Addresses come from a private /24 that exists only in
 * these namespaces. Needs root and `ip netns`.
 *
 * ```text
 *   wire namespace: br0 10.213.N.1/24 ── v-a ── v-b ── v-c
 *                                         │      │      │
 *   host namespaces:                    eth0   eth0   eth0
 *                                      .11    .12    .13
 * ```
 *
 * @module
 */
import { LoggedChild, type LogRecord } from "../../mod/lab/process.ts";

/** Prefix of every namespace the bed creates: `ambit-nt-<pid>-<seq><random>-<host>`. */
export const NETNS_PREFIX = "ambit-nt-";

/** Why the bed cannot run here, or undefined when it can (root and a working `ip netns`). */
export function netnsUnavailable(): string | undefined {
  if (Deno.build.os !== "linux") return "not Linux";
  if (Deno.uid() !== 0) return "not root";
  try {
    const out = new Deno.Command("ip", { args: ["netns", "list"], stdout: "null", stderr: "null" })
      .outputSync();
    return out.success ? undefined : "`ip netns list` failed";
  } catch {
    return "`ip` (iproute2) not installed";
  }
}

/** Runs a command to completion; throws with its output when it fails (unless `allowFail`). */
export async function sh(
  argv: readonly string[],
  options: { allowFail?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  if (r.code !== 0 && !options.allowFail) {
    throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r;
}

function pidAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

async function listNetns(): Promise<string[]> {
  const { stdout } = await sh(["ip", "netns", "list"]);
  return stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) => n !== "");
}

/** Kills what still runs in `netns` (by pid) and deletes it. */
async function deleteNetns(netns: string): Promise<void> {
  const { stdout } = await sh(["ip", "netns", "pids", netns], { allowFail: true });
  for (const pid of stdout.split("\n").filter((l) => /^\d+$/.test(l))) {
    try {
      Deno.kill(Number(pid), "SIGKILL");
    } catch { /* gone */ }
  }
  await sh(["ip", "netns", "del", netns], { allowFail: true });
}

/**
 * Deletes namespaces with {@link NETNS_PREFIX} whose creating test process is
 * gone (a crashed earlier run), after killing what still runs in them.
 * Returns their names.
 */
export async function cleanStaleNetns(): Promise<string[]> {
  const stale = (await listNetns()).filter((n) => {
    const m = n.match(/^ambit-nt-(\d+)-/);
    return m !== null && Number(m[1]) !== Deno.pid && !pidAlive(Number(m[1]));
  });
  for (const n of stale) await deleteNetns(n);
  return stale;
}

/** One simulated host. */
export interface Host {
  /** Short name given to {@link Bed.create} (e.g. "a"). */
  readonly name: string;
  /** Its network namespace. */
  readonly netns: string;
  /** Its address on the bed's /24 (on its eth0). */
  readonly address: string;
  /** Its veth end in the wire namespace (where captures of its traffic run). */
  readonly wireIf: string;
}

/** A parsed JSON line from a child's stdout or stderr. */
export type JsonRecord = LogRecord;

/**
 * A long-running process inside a namespace (`ip netns exec` execs the
 * command, so {@link pid} is the program's own pid). Lines of stdout and
 * stderr are kept; JSON lines are parsed into {@link records}.
 */
export class NetnsProcess extends LoggedChild {
  constructor(label: string, readonly netns: string, readonly argv: readonly string[]) {
    super(["ip", "netns", "exec", netns, ...argv], { label: `${label} (netns ${netns})` });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; returns the exit code. */
  override stop(graceMs = 5_000): Promise<number> {
    return super.stop(graceMs);
  }
}

let beds = 0;

/** The namespaces, addresses and processes of one bed. */
export class Bed {
  readonly #procs = new Set<NetnsProcess>();
  readonly #hosts = new Map<string, Host>();

  private constructor(
    /** The namespace holding the bridge. */
    readonly wire: { readonly netns: string; readonly address: string; readonly bridge: string },
    /** The /24, e.g. 10.213.7.0/24. */
    readonly subnet: string,
  ) {}

  /**
   * Creates the wire namespace and one host namespace per name (at most 40),
   * after removing stale namespaces of crashed runs. Host `i` (0-based) gets
   * address `.${11 + i}`, the bridge `.1`.
   */
  static async create(hostNames: readonly string[]): Promise<Bed> {
    if (hostNames.length === 0 || hostNames.length > 40) {
      throw new RangeError(`expected 1 to 40 host names, got ${hostNames.length}`);
    }
    await cleanStaleNetns();
    // Test files of one `deno test --parallel` run share a pid: a random part keeps beds apart.
    const id = `${NETNS_PREFIX}${Deno.pid}-${beds++}${crypto.randomUUID().slice(0, 4)}`;
    // The /24 exists only inside the bed's namespaces; the pid spreads parallel runs anyway.
    const net = `10.213.${Deno.pid % 250}`;
    const bed = new Bed({ netns: `${id}-wire`, address: `${net}.1`, bridge: "br0" }, `${net}.0/24`);
    const created: string[] = [];
    try {
      const w = bed.wire.netns;
      await sh(["ip", "netns", "add", w]);
      created.push(w);
      await sh(["ip", "-n", w, "link", "set", "lo", "up"]);
      await sh(["ip", "-n", w, "link", "add", "br0", "type", "bridge"]);
      await sh(["ip", "-n", w, "addr", "add", `${bed.wire.address}/24`, "dev", "br0"]);
      await sh(["ip", "-n", w, "link", "set", "br0", "up"]);
      for (const [i, name] of hostNames.entries()) {
        const host: Host = {
          name,
          netns: `${id}-${name}`,
          address: `${net}.${11 + i}`,
          wireIf: `v-${name}`.slice(0, 15),
        };
        await sh(["ip", "netns", "add", host.netns]);
        created.push(host.netns);
        await sh(["ip", "-n", host.netns, "link", "set", "lo", "up"]);
        await sh([
          "ip",
          "-n",
          w,
          "link",
          "add",
          host.wireIf,
          "type",
          "veth",
          "peer",
          "name",
          "eth0",
          "netns",
          host.netns,
        ]);
        await sh(["ip", "-n", w, "link", "set", host.wireIf, "master", "br0", "up"]);
        await sh(["ip", "-n", host.netns, "addr", "add", `${host.address}/24`, "dev", "eth0"]);
        await sh(["ip", "-n", host.netns, "link", "set", "eth0", "up"]);
        bed.#hosts.set(name, host);
      }
    } catch (e) {
      for (const n of created.reverse()) await deleteNetns(n);
      throw e;
    }
    return bed;
  }

  /** The host named `name`. */
  host(name: string): Host {
    const h = this.#hosts.get(name);
    if (!h) {
      throw new RangeError(`no host "${name}" (hosts: ${[...this.#hosts.keys()].join(", ")})`);
    }
    return h;
  }

  /** Every host, in creation order. */
  get hosts(): Host[] {
    return [...this.#hosts.values()];
  }

  /** Starts a long-running process in `netns`; the bed stops it on {@link close}. */
  spawn(label: string, netns: string, argv: readonly string[]): NetnsProcess {
    const p = new NetnsProcess(label, netns, argv);
    this.#procs.add(p);
    p.status().finally(() => this.#procs.delete(p));
    return p;
  }

  /** Runs a command in `netns` to completion. */
  run(
    netns: string,
    argv: readonly string[],
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return sh(["ip", "netns", "exec", netns, ...argv], { allowFail: true });
  }

  /** Output of every process still running, for failure messages. */
  logs(): string {
    return [...this.#procs].map((p) => p.log()).join("\n");
  }

  /** Stops every process (SIGTERM, then SIGKILL), then deletes the namespaces. */
  async close(): Promise<void> {
    await Promise.all([...this.#procs].map((p) => p.stop(3_000)));
    for (const h of this.#hosts.values()) await deleteNetns(h.netns);
    await deleteNetns(this.wire.netns);
  }
}
