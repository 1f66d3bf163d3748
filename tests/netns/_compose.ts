/**
 * Runs a docker-compose topology for real in Linux network namespaces, with
 * no container engine: every compose service with its own `ipv4_address` gets
 * a namespace host with that address on a bridge (in a "wire" namespace, as
 * `_netns.ts` does), a service with `network_mode: service:X` runs inside X's
 * namespace, `network_mode: none` gets a namespace with only loopback. Each
 * service's entrypoint and command run with its `environment`; `ambit` is
 * this checkout (`selfCommand()`, and a shim on PATH for shell scripts),
 * `python3` is Debian's; named volumes become temporary directories and bind
 * mounts the paths beside the compose file (paths in arguments and
 * environment values are rewritten). `depends_on` conditions are honoured:
 * started, healthy (the service's healthcheck is run until it passes) and
 * completed successfully.
 *
 * Not modelled: images other than the Dockerfile's entrypoint, `user`
 * (everything runs as root), read-only mounts (not enforced), `ports`, restart
 * policies. Needs root and `ip netns`.
 *
 * @module
 */
import { parse } from "yaml";
import { selfCommand } from "../../mod/lab/self.ts";
import { cleanStaleNetns, NETNS_PREFIX, NetnsProcess, sh } from "./_netns.ts";

/** A `depends_on` condition. */
export type DependsCondition =
  | "service_started"
  | "service_healthy"
  | "service_completed_successfully";

/** A volume mount of a service. */
export interface ComposeMount {
  /** `volume` (named) or `bind` (a path). */
  readonly type: "volume" | "bind";
  /** The volume name, or the bind path as written (relative to the compose file). */
  readonly source: string;
  /** Where the container sees it. */
  readonly target: string;
  readonly readOnly: boolean;
}

/** One service of a compose file, normalized. */
export interface ComposeService {
  readonly name: string;
  readonly image?: string;
  /** The Dockerfile path (relative to the compose file) when the service is built. */
  readonly dockerfile?: string;
  readonly entrypoint?: readonly string[];
  readonly command?: readonly string[];
  readonly environment: Readonly<Record<string, string>>;
  /** `none`, `service:<name>`, or undefined (the service has its own networks). */
  readonly networkMode?: string;
  /** The service's networks and the fixed IPv4 address on each (if given). */
  readonly networks: Readonly<Record<string, string | undefined>>;
  readonly mounts: readonly ComposeMount[];
  readonly dependsOn: Readonly<Record<string, DependsCondition>>;
  /** The healthcheck as an argv (`CMD-SHELL` becomes `/bin/sh -c`). */
  readonly healthcheck?: readonly string[];
  readonly restart?: string;
  readonly user?: string;
}

/** A parsed compose file. */
export interface ComposeFile {
  readonly services: ReadonlyMap<string, ComposeService>;
  /** Network name to its IPv4 subnets (from `ipam.config`). */
  readonly networks: Readonly<Record<string, readonly string[]>>;
  readonly volumes: readonly string[];
}

/** A compose file this module cannot represent (the message says which field). */
export class ComposeFormatError extends TypeError {
  override readonly name = "ComposeFormatError";
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function strings(v: unknown, where: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v) && v.every((x) => typeof x === "string" || typeof x === "number")) {
    return v.map(String);
  }
  throw new ComposeFormatError(
    `${where}: expected a list of strings, got ${JSON.stringify(v)} (use the list form)`,
  );
}

function environment(v: unknown, where: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (Array.isArray(v)) {
    return Object.fromEntries(v.map((e) => {
      const s = String(e);
      const eq = s.indexOf("=");
      if (eq < 1) throw new ComposeFormatError(`${where}: "${s}" is not NAME=value`);
      return [s.slice(0, eq), s.slice(eq + 1)];
    }));
  }
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x ?? "")]));
  throw new ComposeFormatError(`${where}: expected a map or a list, got ${JSON.stringify(v)}`);
}

function mount(v: unknown, named: ReadonlySet<string>, where: string): ComposeMount {
  if (typeof v === "string") {
    const [source, target, mode = "rw"] = v.split(":");
    if (!target) throw new ComposeFormatError(`${where}: "${v}" is not source:target[:mode]`);
    const isPath = /^[./~]/.test(source);
    if (!isPath && !named.has(source)) {
      throw new ComposeFormatError(`${where}: volume "${source}" is not declared under volumes:`);
    }
    return {
      type: isPath ? "bind" : "volume",
      source,
      target,
      readOnly: mode.split(",").includes("ro"),
    };
  }
  if (isObj(v) && typeof v.target === "string" && typeof v.source === "string") {
    const type = v.type === "bind" ? "bind" : "volume";
    return { type, source: v.source, target: v.target, readOnly: v.read_only === true };
  }
  throw new ComposeFormatError(`${where}: cannot read the mount ${JSON.stringify(v)}`);
}

function dependsOn(v: unknown, where: string): Record<string, DependsCondition> {
  if (v === undefined || v === null) return {};
  if (Array.isArray(v)) return Object.fromEntries(v.map((n) => [String(n), "service_started"]));
  if (!isObj(v)) throw new ComposeFormatError(`${where}: expected a map or a list`);
  const out: Record<string, DependsCondition> = {};
  for (const [name, d] of Object.entries(v)) {
    const c = isObj(d) ? d.condition ?? "service_started" : "service_started";
    if (
      c !== "service_started" && c !== "service_healthy" && c !== "service_completed_successfully"
    ) {
      throw new ComposeFormatError(`${where}.${name}.condition: unknown condition ${c}`);
    }
    out[name] = c;
  }
  return out;
}

function healthcheck(v: unknown, where: string): string[] | undefined {
  if (!isObj(v) || v.disable === true) return undefined;
  const t = v.test;
  if (typeof t === "string") return ["/bin/sh", "-c", t];
  const list = strings(t, `${where}.test`) ?? [];
  if (list[0] === "CMD") return list.slice(1);
  if (list[0] === "CMD-SHELL") return ["/bin/sh", "-c", list.slice(1).join(" ")];
  if (list[0] === "NONE") return undefined;
  throw new ComposeFormatError(`${where}.test: must start with CMD, CMD-SHELL or NONE`);
}

/**
 * Parses a compose file (as written, or `docker-compose config` output) into
 * the shape the namespace runner needs; YAML merge keys (`<<: *anchor`) are
 * applied.
 *
 * @example
 * ```ts
 * const file = parseCompose(await Deno.readTextFile("deploy/compose/docker-compose.yml"));
 * file.services.get("host-a")?.networks.mesh; // "172.28.213.11"
 * ```
 */
export function parseCompose(text: string): ComposeFile {
  const doc = parse(text, { merge: true }) as unknown;
  if (!isObj(doc) || !isObj(doc.services)) {
    throw new ComposeFormatError("a compose file needs a services: map");
  }
  const volumes = isObj(doc.volumes) ? Object.keys(doc.volumes) : [];
  const named = new Set(volumes);
  const networks: Record<string, string[]> = {};
  for (const [name, n] of Object.entries(isObj(doc.networks) ? doc.networks : {})) {
    const config = isObj(n) && isObj(n.ipam) && Array.isArray(n.ipam.config) ? n.ipam.config : [];
    networks[name] = config.filter(isObj).map((c) => String(c.subnet)).filter((s) =>
      s.includes(".")
    );
  }
  const services = new Map<string, ComposeService>();
  for (const [name, s] of Object.entries(doc.services)) {
    const where = `services.${name}`;
    if (!isObj(s)) throw new ComposeFormatError(`${where}: expected a map`);
    const build = typeof s.build === "string" ? { context: s.build } : s.build;
    const nets: Record<string, string | undefined> = {};
    if (Array.isArray(s.networks)) { for (const n of s.networks) nets[String(n)] = undefined; }
    else if (isObj(s.networks)) {
      for (const [n, cfg] of Object.entries(s.networks)) {
        nets[n] = isObj(cfg) && typeof cfg.ipv4_address === "string" ? cfg.ipv4_address : undefined;
      }
    }
    services.set(name, {
      name,
      image: typeof s.image === "string" ? s.image : undefined,
      dockerfile: isObj(build)
        ? `${String(build.context ?? ".")}/${String(build.dockerfile ?? "Dockerfile")}`
        : undefined,
      entrypoint: typeof s.entrypoint === "string"
        ? ["/bin/sh", "-c", s.entrypoint]
        : strings(s.entrypoint, `${where}.entrypoint`),
      command: strings(s.command, `${where}.command`),
      environment: environment(s.environment, `${where}.environment`),
      networkMode: typeof s.network_mode === "string" ? s.network_mode : undefined,
      networks: nets,
      mounts: (Array.isArray(s.volumes) ? s.volumes : []).map((v, i) =>
        mount(v, named, `${where}.volumes[${i}]`)
      ),
      dependsOn: dependsOn(s.depends_on, `${where}.depends_on`),
      healthcheck: healthcheck(s.healthcheck, `${where}.healthcheck`),
      restart: typeof s.restart === "string" ? s.restart : undefined,
      user: s.user === undefined ? undefined : String(s.user),
    });
  }
  return { services, networks, volumes };
}

/** The image's `ENTRYPOINT` (exec form) from a Dockerfile's text; the last one wins. */
export function dockerfileEntrypoint(text: string): string[] {
  const lines = text.split("\n").filter((l) => /^\s*ENTRYPOINT\s/i.test(l));
  const last = lines.at(-1);
  if (!last) return [];
  const json = last.replace(/^\s*ENTRYPOINT\s+/i, "").trim();
  try {
    const argv = JSON.parse(json);
    if (Array.isArray(argv) && argv.every((a) => typeof a === "string")) return argv;
  } catch { /* below */ }
  throw new ComposeFormatError(`ENTRYPOINT ${json}: use the exec form (a JSON list)`);
}

/**
 * Services in an order that starts every dependency first (`depends_on` and
 * the implied dependency of `network_mode: service:X` on X).
 */
export function startOrder(file: ComposeFile): string[] {
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, from: string) => {
    const s = file.services.get(name);
    if (!s) throw new ComposeFormatError(`${from} depends on "${name}", which is not a service`);
    if (state.get(name) === "done") return;
    if (state.get(name) === "visiting") {
      throw new ComposeFormatError(`dependency cycle through "${name}"`);
    }
    state.set(name, "visiting");
    for (const d of dependencies(s)) visit(d, name);
    state.set(name, "done");
    order.push(name);
  };
  for (const name of file.services.keys()) visit(name, "the file");
  return order;
}

/** The services `s` waits for: its depends_on and the host whose network namespace it shares. */
export function dependencies(s: ComposeService): string[] {
  const deps = new Set(Object.keys(s.dependsOn));
  const shared = s.networkMode?.match(/^service:(.+)$/)?.[1];
  if (shared) deps.add(shared);
  return [...deps];
}

/** How {@link ComposeBed.up} runs things. */
export interface UpOptions {
  /** Extra environment per service (over its own). */
  env?: Record<string, Record<string, string>>;
  /** Deadline for each service's condition (default 30 s). */
  timeoutMs?: number;
  /** Pause between healthcheck runs (default 200 ms; compose's interval is not waited). */
  healthIntervalMs?: number;
}

/** Result of running a command to completion. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

let beds = 0;

/**
 * The namespaces and processes of one compose topology. Create with
 * {@link ComposeBed.create}, start with {@link ComposeBed.up}, and always
 * {@link ComposeBed.close}.
 */
export class ComposeBed {
  readonly #netns = new Map<string, string>();
  readonly #procs = new Map<string, NetnsProcess>();
  readonly #owned: string[] = [];
  readonly #bin: string;
  #closed = false;

  private constructor(
    readonly file: ComposeFile,
    /** Directory of the compose file (bind mounts and Dockerfiles are relative to it). */
    readonly dir: string,
    /** Temporary directory: named volumes under `volumes/`, the ambit shim under `bin/`. */
    readonly tmp: string,
    /** The Dockerfile's ENTRYPOINT per Dockerfile path. */
    readonly entrypoints: ReadonlyMap<string, readonly string[]>,
    /** Prefix of every namespace this bed made. */
    readonly prefix: string,
  ) {
    this.#bin = `${tmp}/bin`;
  }

  /**
   * Parses `composePath`, creates the wire namespace with a bridge per
   * network (its first address, as Docker's gateway), one namespace per
   * service with its own address and one per `network_mode: none` service.
   */
  static async create(composePath: string, tmp: string): Promise<ComposeBed> {
    const dir = composePath.slice(0, composePath.lastIndexOf("/"));
    const file = parseCompose(await Deno.readTextFile(composePath));
    const entrypoints = new Map<string, string[]>();
    for (const s of file.services.values()) {
      if (s.dockerfile && !entrypoints.has(s.dockerfile)) {
        const text = await Deno.readTextFile(resolvePath(dir, s.dockerfile));
        entrypoints.set(s.dockerfile, dockerfileEntrypoint(text));
      }
    }
    await cleanStaleNetns();
    const prefix = `${NETNS_PREFIX}${Deno.pid}-compose${beds++}-`;
    const bed = new ComposeBed(file, dir, tmp, entrypoints, prefix);
    try {
      await bed.#writeShim();
      await bed.#createNamespaces();
    } catch (e) {
      await bed.close();
      throw e;
    }
    return bed;
  }

  async #writeShim(): Promise<void> {
    await Deno.mkdir(this.#bin, { recursive: true });
    const quoted = selfCommand().map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
    await Deno.writeTextFile(`${this.#bin}/ambit`, `#!/bin/sh\nexec ${quoted} "$@"\n`, {
      mode: 0o755,
    });
    for (const v of this.file.volumes) {
      await Deno.mkdir(`${this.tmp}/volumes/${v}`, { recursive: true });
    }
  }

  async #add(netns: string): Promise<void> {
    await sh(["ip", "netns", "add", netns]);
    this.#owned.push(netns);
    await sh(["ip", "-n", netns, "link", "set", "lo", "up"]);
  }

  async #createNamespaces(): Promise<void> {
    const wire = `${this.prefix}wire`;
    await this.#add(wire);
    const bridges = new Map<string, { bridge: string; prefixLen: string }>();
    for (const [i, [net, subnets]] of Object.entries(this.file.networks).entries()) {
      const subnet = subnets[0];
      if (!subnet) continue;
      const [base, len] = subnet.split("/");
      const bridge = `br${i}`;
      const gw = base.replace(/\.\d+$/, (m) => `.${Number(m.slice(1)) + 1}`);
      await sh(["ip", "-n", wire, "link", "add", bridge, "type", "bridge"]);
      await sh(["ip", "-n", wire, "addr", "add", `${gw}/${len}`, "dev", bridge]);
      await sh(["ip", "-n", wire, "link", "set", bridge, "up"]);
      bridges.set(net, { bridge, prefixLen: len });
    }
    let n = 0;
    for (const s of this.file.services.values()) {
      if (s.networkMode?.startsWith("service:")) continue;
      const netns = `${this.prefix}${s.name}`;
      if (s.networkMode === "none") {
        await this.#add(netns);
        this.#netns.set(s.name, netns);
        continue;
      }
      if (s.networkMode !== undefined) {
        throw new ComposeFormatError(
          `services.${s.name}.network_mode: "${s.networkMode}" is not modelled here`,
        );
      }
      await this.#add(netns);
      this.#netns.set(s.name, netns);
      for (const [i, [net, address]] of Object.entries(s.networks).entries()) {
        const b = bridges.get(net);
        if (!b || !address) {
          throw new ComposeFormatError(
            `services.${s.name}.networks.${net}: needs an ipv4_address on a network with an ipam subnet`,
          );
        }
        const wireIf = `v${n++}-${s.name}`.slice(0, 15);
        const dev = `eth${i}`;
        await sh([
          "ip",
          "-n",
          wire,
          "link",
          "add",
          wireIf,
          "type",
          "veth",
          "peer",
          "name",
          dev,
          "netns",
          netns,
        ]);
        await sh(["ip", "-n", wire, "link", "set", wireIf, "master", b.bridge, "up"]);
        await sh(["ip", "-n", netns, "addr", "add", `${address}/${b.prefixLen}`, "dev", dev]);
        await sh(["ip", "-n", netns, "link", "set", dev, "up"]);
      }
    }
  }

  /** The namespace service `name` runs in (its own, or the one it shares). */
  netnsOf(name: string): string {
    const s = this.file.services.get(name);
    if (!s) throw new RangeError(`no service "${name}"`);
    const shared = s.networkMode?.match(/^service:(.+)$/)?.[1];
    if (shared) return this.netnsOf(shared);
    const ns = this.#netns.get(name);
    if (!ns) throw new RangeError(`service "${name}" has no namespace`);
    return ns;
  }

  /** Every namespace this bed created (the wire one included). */
  get namespaces(): readonly string[] {
    return [...this.#owned];
  }

  /** Where a service's mount target lives here. */
  #mountMap(s: ComposeService): [string, string][] {
    return s.mounts.map((m): [string, string] => [
      m.target,
      m.type === "volume" ? `${this.tmp}/volumes/${m.source}` : resolvePath(this.dir, m.source),
    ]).sort((a, b) => b[0].length - a[0].length);
  }

  /** `text` with every container mount path of `s` replaced by its path here. */
  rewritePaths(s: ComposeService, text: string): string {
    let out = text;
    for (const [target, host] of this.#mountMap(s)) {
      const re = new RegExp(`(^|[\\s=:'"(])${escapeRe(target)}(?=$|[/\\s:'");])`, "g");
      out = out.replace(re, (_m, pre: string) => `${pre}${host}`);
    }
    return out;
  }

  /** The argv that runs `argv` (a container command of `s`) here. */
  #localArgv(s: ComposeService, argv: readonly string[]): string[] {
    const [cmd, ...rest] = argv.map((a) => this.rewritePaths(s, a));
    const base = cmd.slice(cmd.lastIndexOf("/") + 1);
    if (base === "ambit") return [...selfCommand(), ...rest];
    if (base === "python3") return ["/usr/bin/python3", ...rest];
    return [cmd, ...rest];
  }

  /** The full argv of service `s`: `ip netns exec`, its environment, then its process. */
  #argv(s: ComposeService, argv: readonly string[], env: Record<string, string> = {}): string[] {
    const vars = Object.entries({ ...s.environment, ...env }).map(([k, v]) =>
      `${k}=${this.rewritePaths(s, v)}`
    );
    return [
      "env",
      `PATH=${this.#bin}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
      ...vars,
      ...this.#localArgv(s, argv),
    ];
  }

  /** The process argv of service `s` (entrypoint, then command). */
  processArgv(s: ComposeService): string[] {
    const entry = s.entrypoint ?? (s.dockerfile ? this.entrypoints.get(s.dockerfile) : []) ?? [];
    const argv = [...entry, ...(s.command ?? [])];
    if (argv.length === 0) {
      throw new ComposeFormatError(`services.${s.name}: no entrypoint or command to run`);
    }
    return argv;
  }

  /**
   * Starts every service once its dependencies meet their conditions;
   * resolves when all have started and every `service_healthy` and
   * `service_completed_successfully` condition someone waits for holds.
   */
  async up(options: UpOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const started = new Map<string, Promise<NetnsProcess>>();
    const healthy = new Map<string, Promise<void>>();
    const completed = new Map<string, Promise<void>>();
    const start = (name: string): Promise<NetnsProcess> => {
      let p = started.get(name);
      if (!p) {
        const s = this.file.services.get(name)!;
        p = (async () => {
          await Promise.all(dependencies(s).map((d) => condition(d, s.dependsOn[d])));
          if (this.#closed) throw new Error(`the bed closed before ${name} started`);
          const proc = new NetnsProcess(
            name,
            this.netnsOf(name),
            this.#argv(s, this.processArgv(s), options.env?.[name]),
          );
          this.#procs.set(name, proc);
          return proc;
        })();
        started.set(name, p);
      }
      return p;
    };
    const condition = (name: string, c: DependsCondition = "service_started"): Promise<unknown> => {
      if (c === "service_started") return start(name);
      const memo = c === "service_healthy" ? healthy : completed;
      let p = memo.get(name);
      if (!p) {
        p = c === "service_healthy"
          ? start(name).then((proc) => this.#untilHealthy(name, proc, options, timeoutMs))
          : start(name).then((proc) => untilCompleted(proc, timeoutMs));
        memo.set(name, p);
      }
      return p;
    };
    await Promise.all(startOrder(this.file).map((n) => start(n)));
    await Promise.all([...healthy.values(), ...completed.values()]);
  }

  async #untilHealthy(
    name: string,
    proc: NetnsProcess,
    options: UpOptions,
    timeoutMs: number,
  ): Promise<void> {
    const s = this.file.services.get(name)!;
    if (!s.healthcheck) {
      throw new ComposeFormatError(`services.${name}: service_healthy needs a healthcheck`);
    }
    const deadline = Date.now() + timeoutMs;
    let last: RunResult | undefined;
    while (Date.now() < deadline) {
      if (proc.exited) {
        throw new Error(`${name} exited before it was healthy; its log:\n${proc.log()}`);
      }
      last = await this.#run(s, s.healthcheck, options.env?.[name], 5_000);
      if (last.code === 0) return;
      await new Promise((r) => setTimeout(r, options.healthIntervalMs ?? 200));
    }
    throw new Error(
      `${name} not healthy within ${timeoutMs} ms; last check exited ${last?.code}: ` +
        `${last?.stdout}${last?.stderr}\nits log:\n${proc.log()}`,
    );
  }

  async #run(
    s: ComposeService,
    argv: readonly string[],
    env: Record<string, string> | undefined,
    timeoutMs: number,
  ): Promise<RunResult> {
    const full = ["ip", "netns", "exec", this.netnsOf(s.name), ...this.#argv(s, argv, env)];
    const out = await new Deno.Command(full[0], {
      args: full.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  }

  /**
   * Runs `argv` (or the service's own process) to completion the way the
   * service runs, in its namespace with its environment (plus `env`), as
   * `docker compose run` would.
   */
  exec(
    name: string,
    options: { argv?: readonly string[]; env?: Record<string, string>; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    const s = this.file.services.get(name);
    if (!s) throw new RangeError(`no service "${name}"`);
    return this.#run(
      s,
      options.argv ?? this.processArgv(s),
      options.env,
      options.timeoutMs ?? 30_000,
    );
  }

  /** The running (or finished) process of service `name`. */
  process(name: string): NetnsProcess {
    const p = this.#procs.get(name);
    if (!p) throw new RangeError(`service "${name}" was not started`);
    return p;
  }

  /** Output of every process, for failure messages. */
  logs(): string {
    return [...this.#procs.values()].map((p) => p.log()).join("\n");
  }

  /**
   * Stops every service as `docker compose down` does: each one after the
   * services that depend on it, independent ones in parallel, SIGTERM and
   * SIGKILL after `graceMs` (compose's default stop_grace_period, 10 s).
   * Returns each one's exit code.
   */
  async down(graceMs = 10_000): Promise<Map<string, number>> {
    const codes = new Map<string, number>();
    const stopped = new Map<string, Promise<void>>();
    const dependents = (name: string) =>
      [...this.file.services.values()].filter((s) => dependencies(s).includes(name));
    const stop = (name: string): Promise<void> => {
      let p = stopped.get(name);
      if (!p) {
        p = (async () => {
          await Promise.all(dependents(name).map((s) => stop(s.name)));
          const proc = this.#procs.get(name);
          if (proc) codes.set(name, await proc.stop(graceMs));
        })();
        stopped.set(name, p);
      }
      return p;
    };
    await Promise.all([...this.file.services.keys()].map(stop));
    return codes;
  }

  /** Pids still running in the bed's namespaces. */
  async leftoverPids(): Promise<number[]> {
    const pids: number[] = [];
    for (const ns of this.#owned) {
      const { stdout } = await sh(["ip", "netns", "pids", ns], { allowFail: true });
      pids.push(...stdout.split("\n").filter((l) => /^\d+$/.test(l)).map(Number));
    }
    return pids;
  }

  /** Stops what still runs (SIGKILL) and deletes the namespaces. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#procs.values()].map((p) => p.stop(1_000)));
    for (const pid of await this.leftoverPids()) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    for (const ns of this.#owned.reverse()) {
      await sh(["ip", "netns", "del", ns], { allowFail: true });
    }
    this.#owned.length = 0;
  }
}

async function untilCompleted(proc: NetnsProcess, timeoutMs: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const code = await Promise.race([
    proc.status(),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${proc.label} did not finish in ${timeoutMs} ms:\n${proc.log()}`)),
        timeoutMs,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  if (code !== 0) throw new Error(`${proc.label} exited ${code}; its log:\n${proc.log()}`);
}

function resolvePath(dir: string, p: string): string {
  if (p.startsWith("/")) return p;
  const parts = `${dir}/${p}`.split("/");
  const out: string[] = [];
  for (const part of parts) {
    if (part === "..") out.pop();
    else if (part !== "." && part !== "") out.push(part);
  }
  return `/${out.join("/")}`;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
