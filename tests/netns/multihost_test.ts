/**
 * The multi-host test bed: three network-namespace hosts on a bridge, the CA
 * service, one real `ambit ztunnel` process per host and real apps, set up
 * as in a real deployment (README "Identity and certificates"): `ambit ca
 * init`, one `ambit ca issue-node` credential per host, `ambit ca serve` on
 * the wire, ztunnels that reach it through `Mesh spec.ca.address`, and one
 * config directory that every process watches.
 *
 * ```text
 *   host-a  10.213.N.11        host-b  10.213.N.12                    host-c  10.213.N.13
 *   client-a (sa client-a)     echo     .12:8080        ns apps       client-c (sa client-c)
 *      │                       private  127.0.0.1:9090  ns apps          │
 *      ▼                       ledger   .12:7070        ns legacy        ▼
 *   ztunnel ════ HBONE ══════▶ ztunnel :15008 ◀═══════ HBONE ═══════ ztunnel
 *      └─── veth ─── br0 in the wire namespace (.1, ambit ca serve :15012) ─── veth ───┘
 * ```
 *
 * Needs root and `ip netns` (ignored otherwise); CI runs it.
 */
import { assertEquals, assertEventually, assertIncludes, assertOk } from "../_util/asserts.ts";
import { runAmbit } from "../_util/proc.ts";
import { selfCommand } from "../../mod/lab/self.ts";
import type { TalkResult } from "./_app.ts";
import {
  Bed,
  cleanStaleNetns,
  type Host,
  NETNS_PREFIX,
  type NetnsProcess,
  netnsUnavailable,
  sh,
} from "./_netns.ts";
import { containsBytes, type TcpSegment, tcpSegments } from "./_pcap.ts";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import type { L7Result } from "./_l7.ts";
import { meshAndNodes, service, workload } from "./_mesh_yaml.ts";

const UNAVAILABLE = netnsUnavailable();
const TD = "ambit.netns";
const APP = new URL("./_app.ts", import.meta.url).pathname;
/** Service VIPs on loopback: every host's ztunnel listens on them in its own namespace. */
const VIP = {
  echo: "127.213.0.10",
  private: "127.213.0.11",
  ledger: "127.213.0.12",
  web: "127.213.0.13",
  webL7: "127.213.0.14",
};
const id = (ns: string, sa: string) => `spiffe://${TD}/ns/${ns}/sa/${sa}`;
const CLIENT_A = id("apps", "client-a");
const CLIENT_C = id("apps", "client-c");
/** Start-up deadline per process: generous, as CI machines may be busy. */
const START_MS = 30_000;

interface MeshOptions {
  /** JWKS (JSON) the `secure` service's RequestAuthentication trusts. */
  jwks?: string;
  /** Label namespace `legacy` with istio.io/dataplane-mode: ambient. */
  legacyAmbient?: boolean;
  /** Extra YAML documents (policies). */
  extra?: string[];
}

function meshYaml(bed: Bed, o: MeshOptions = {}): string {
  const docs = [
    ...meshAndNodes(bed, TD),
    `apiVersion: v1
kind: Namespace
metadata: { name: apps, labels: { istio.io/dataplane-mode: ambient } }`,
    `apiVersion: v1
kind: Namespace
metadata: { name: legacy${
      o.legacyAmbient ? ", labels: { istio.io/dataplane-mode: ambient }" : ""
    } }`,
    workload("apps", "client-a", "host-a"),
    workload("apps", "client-c", "host-c"),
    workload("apps", "echo", "host-b"),
    workload("apps", "private", "host-b", "127.0.0.1"),
    workload("legacy", "ledger", "host-b"),
    workload("apps", "web", "host-b"),
    service("apps", "echo", VIP.echo, 80, 8080),
    service("apps", "web", VIP.web, 80, 8000),
    `apiVersion: v1
kind: Service
metadata: { name: web-l7, namespace: apps, labels: { istio.io/use-waypoint: waypoint } }
spec:
  clusterIP: ${VIP.webL7}
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: 8000, appProtocol: http }]`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: apps
  labels: { istio.io/waypoint-for: service }
  annotations: { ambit.io/node: host-w }
spec:
  gatewayClassName: istio-waypoint
  addresses: [{ type: IPAddress, value: ${bed.host("w").address} }]
  listeners: [{ name: mesh, port: 15008, protocol: HBONE }]`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: web-l7, namespace: apps }
spec:
  parentRefs: [{ group: "", kind: Service, name: web-l7, port: 80 }]
  rules:
    - backendRefs: [{ name: web, port: 80 }]
      filters:
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: x-via, value: waypoint }] }`,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: web-l7-no-admin, namespace: apps }
spec:
  targetRefs: [{ kind: Service, group: "", name: web-l7 }]
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]`,
    service("apps", "private", VIP.private, 9090, 9090),
    service("legacy", "ledger", VIP.ledger, 7070, 7070),
    ...l7Docs(o.jwks ?? JWKS),
    ...(o.extra ?? []),
  ];
  return docs.join("\n---\n") + "\n";
}

/** The L7 apps on host B: name, port, labels. */
const L7_APPS: readonly [string, number, string][] = [
  ["l7-v1", 8101, "app: l7, version: v1"],
  ["l7-v2", 8102, "app: l7, version: v2"],
  ["l7-flaky", 8103, "app: l7flaky"],
  ["l7-slow", 8104, "app: l7slow"],
  ["pair-good", 8105, "app: pair"],
  ["pair-bad", 8106, "app: pair"],
  ["secure", 8107, "app: secure"],
  ["grpc", 8108, "app: grpc"],
];
const L7_VIP = {
  l7: "127.213.1.1",
  l7v1: "127.213.1.2",
  l7v2: "127.213.1.3",
  flaky: "127.213.1.4",
  slow: "127.213.1.5",
  pair: "127.213.1.6",
  secure: "127.213.1.7",
  grpc: "127.213.1.8",
};
const JWT_ISSUER = "https://issuer.netns.example";
const JWT_KEYS = await generateKeyPair("ES256");
const JWKS = JSON.stringify({
  keys: [{ ...(await exportJWK(JWT_KEYS.publicKey)), kid: "k1", alg: "ES256" }],
});
const L7 = new URL("./_l7.ts", import.meta.url).pathname;
const GRPC_PEER = new URL("../waypoint/py/grpc_peer.py", import.meta.url).pathname;

/** Workloads, Services (through the waypoint), routes and policies of the L7 steps. */
function l7Docs(jwks: string): string[] {
  const svc = (name: string, vip: string, selector: string, port = 80, proto = "http") =>
    `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: apps, labels: { istio.io/use-waypoint: waypoint } }
spec:
  clusterIP: ${vip}
  selector: { ${selector} }
  ports: [{ name: ${proto}, port: ${port}, targetPort: http, appProtocol: ${proto} }]`;
  return [
    ...L7_APPS.map(([name, port, labels]) =>
      `apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: apps }
spec: { node: host-b, serviceAccount: ${name}, labels: { ${labels} }, ports: { http: ${port} } }`
    ),
    svc("l7", L7_VIP.l7, "app: l7"),
    svc("l7-v1", L7_VIP.l7v1, "app: l7, version: v1"),
    svc("l7-v2", L7_VIP.l7v2, "app: l7, version: v2"),
    svc("l7-flaky", L7_VIP.flaky, "app: l7flaky"),
    svc("l7-slow", L7_VIP.slow, "app: l7slow"),
    svc("pair", L7_VIP.pair, "app: pair"),
    svc("secure", L7_VIP.secure, "app: secure"),
    svc("grpc", L7_VIP.grpc, "app: grpc", 81, "grpc"),
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: l7, namespace: apps }
spec:
  parentRefs: [{ group: "", kind: Service, name: l7, port: 80 }]
  rules:
    - matches: [{ headers: [{ name: x-user, value: jason }] }]
      backendRefs: [{ name: l7-v2, port: 80 }]
    - matches: [{ path: { type: PathPrefix, value: /flaky } }]
      backendRefs: [{ name: l7-flaky, port: 80 }]
      retry: { attempts: 3, codes: [503], backoff: 10ms }
    - matches: [{ path: { type: PathPrefix, value: /slow } }]
      backendRefs: [{ name: l7-slow, port: 80 }]
      timeouts: { request: 300ms }
    - matches: [{ path: { type: PathPrefix, value: /fault } }]
      backendRefs: [{ name: l7-v1, port: 80 }]
      filters: [{ type: ExtensionRef, extensionRef: { group: ambit.io, kind: HTTPFault, name: teapot } }]
    - matches: [{ path: { type: PathPrefix, value: /limited } }]
      backendRefs: [{ name: l7-v1, port: 80 }]
      filters: [{ type: ExtensionRef, extensionRef: { group: ambit.io, kind: LocalRateLimit, name: three } }]
    - backendRefs:
        - { name: l7-v1, port: 80, weight: 90 }
        - { name: l7-v2, port: 80, weight: 10 }`,
    `apiVersion: ambit.io/v1alpha1
kind: HTTPFault
metadata: { name: teapot, namespace: apps }
spec: { abort: { httpStatus: 418, percentage: { value: 100 } } }`,
    `apiVersion: ambit.io/v1alpha1
kind: LocalRateLimit
metadata: { name: three, namespace: apps }
spec: { tokenBucket: { maxTokens: 3, tokensPerFill: 3, fillInterval: 60s } }`,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: l7-no-admin, namespace: apps }
spec:
  targetRefs: [{ kind: Service, group: "", name: l7 }]
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }]`,
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: pair, namespace: apps }
spec:
  host: pair.apps.svc.cluster.local
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN }
    outlierDetection: { consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50 }`,
    `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: secure-jwt, namespace: apps }
spec:
  targetRefs: [{ kind: Service, group: "", name: secure }]
  jwtRules: [{ issuer: "${JWT_ISSUER}", audiences: [secure-api], jwks: '${jwks}' }]`,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: secure-needs-jwt, namespace: apps }
spec:
  targetRefs: [{ kind: Service, group: "", name: secure }]
  action: ALLOW
  rules: [{ from: [{ source: { requestPrincipals: ["${JWT_ISSUER}/*"] } }] }]`,
  ];
}

function policy(name: string, action: "ALLOW" | "DENY", principals: string[]): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: apps }
spec:
  selector: { matchLabels: { app: echo } }
  action: ${action}
  rules: [{ from: [{ source: { principals: [${
    principals.map((p) => JSON.stringify(p.replace("spiffe://", ""))).join(", ")
  }] } }] }]`;
}

/** The ambit mesh running on a bed. */
class Mesh {
  readonly ztunnels = new Map<string, NetnsProcess>();
  readonly apps = new Map<string, NetnsProcess>();
  ca?: NetnsProcess;
  waypoint?: NetnsProcess;
  #yaml = "";

  constructor(readonly bed: Bed, readonly dir: string) {}

  get configDir(): string {
    return `${this.dir}/mesh`;
  }

  /** CA, credentials, CA service, ztunnels and apps; resolves when every identity has its certificate. */
  async start(): Promise<void> {
    await Deno.mkdir(this.configDir);
    await this.#write(meshYaml(this.bed));
    const init = await runAmbit([
      "ca",
      "init",
      "--trust-domain",
      TD,
      "--out",
      `${this.dir}/ca`,
      "--intermediate",
    ]);
    assertEquals(init.code, 0, init.stderr);
    await Promise.all(this.bed.hosts.map(async (h) => {
      const r = await runAmbit([
        "ca",
        "issue-node",
        `host-${h.name}`,
        "--ca",
        `${this.dir}/ca`,
        "--out",
        `${this.dir}/cred-${h.name}`,
      ]);
      assertEquals(r.code, 0, r.stderr);
    }));
    this.ca = this.bed.spawn("ambit ca serve", this.bed.wire.netns, [
      ...selfCommand(),
      "ca",
      "serve",
      "--config",
      this.configDir,
      "--ca",
      `${this.dir}/ca`,
      "--listen",
      `${this.bed.wire.address}:15012`,
      "--admin",
      "off",
      "--log-format",
      "json",
    ]);
    await this.ca.waitForRecord((r) => r.msg === "CA service listening", { timeoutMs: START_MS });
    const b = this.bed.host("b");
    await Promise.all([
      this.startApp("echo", b, b.address, 8080),
      this.startApp("private", b, "127.0.0.1", 9090),
      this.startApp("ledger", b, b.address, 7070),
      this.startApp("web", b, b.address, 8000, "http"),
      ...L7_APPS.filter(([n]) => n !== "grpc").map(([name, port]) =>
        this.startL7App(name, b, b.address, port)
      ),
      this.startGrpcApp(b, b.address, 8108),
      this.startZtunnel("a", [CLIENT_A]),
      this.startZtunnel("b", [id("apps", "echo"), id("apps", "private"), id("apps", "web")]),
      this.startZtunnel("c", [CLIENT_C]),
    ]);
    await this.startWaypoint();
  }

  /** Starts the waypoint on host W; resolves when it holds its certificate. */
  async startWaypoint(): Promise<NetnsProcess> {
    const w = this.bed.spawn("waypoint host-w", this.bed.host("w").netns, [
      ...selfCommand(),
      "waypoint",
      "--config",
      this.configDir,
      "--name",
      "apps/waypoint",
      "--credential",
      `${this.dir}/cred-w`,
      "--log-format",
      "json",
    ]);
    this.waypoint = w;
    await w.waitForRecord((r) => r.msg === "config loaded", { timeoutMs: START_MS });
    await w.waitForRecord((r) => r.msg === "certificate issued", { timeoutMs: START_MS });
    return w;
  }

  /** Starts host `name`'s ztunnel; resolves when it holds a certificate for each of `ids`. */
  async startZtunnel(name: string, ids: string[]): Promise<NetnsProcess> {
    const z = this.bed.spawn(`ztunnel host-${name}`, this.bed.host(name).netns, [
      ...selfCommand(),
      "ztunnel",
      "--config",
      this.configDir,
      "--node",
      `host-${name}`,
      "--credential",
      `${this.dir}/cred-${name}`,
      "--log-format",
      "json",
    ]);
    this.ztunnels.set(name, z);
    await z.waitForRecord((r) => r.msg === "config loaded", { timeoutMs: START_MS });
    for (const i of ids) {
      await z.waitForRecord((r) => r.msg === "certificate issued" && r.identity === i, {
        timeoutMs: START_MS,
      });
    }
    return z;
  }

  async startApp(
    name: string,
    host: Host,
    ip: string,
    port: number,
    mode: "serve" | "http" = "serve",
  ): Promise<NetnsProcess> {
    const app = this.bed.spawn(`app ${name}`, host.netns, [
      Deno.execPath(),
      "run",
      "--allow-net",
      APP,
      mode,
      name,
      ip,
      String(port),
    ]);
    this.apps.set(name, app);
    await app.waitForRecord((r) => r.event === "listening", { timeoutMs: START_MS });
    return app;
  }

  async startL7App(name: string, host: Host, ip: string, port: number): Promise<NetnsProcess> {
    const app = this.bed.spawn(`l7 app ${name}`, host.netns, [
      Deno.execPath(),
      "run",
      "--allow-net",
      L7,
      "serve",
      name,
      ip,
      String(port),
    ]);
    this.apps.set(name, app);
    await app.waitForRecord((r) => r.event === "listening", { timeoutMs: START_MS });
    return app;
  }

  async startGrpcApp(host: Host, ip: string, port: number): Promise<NetnsProcess> {
    const app = this.bed.spawn("grpc app", host.netns, [
      "/usr/bin/python3",
      GRPC_PEER,
      "serve",
      `${ip}:${port}`,
    ]);
    this.apps.set("grpc", app);
    await assertEventually(() => app.lines.includes("ready") || app.stdout.includes("ready"), {
      timeoutMs: START_MS,
      message: "the gRPC app did not start",
    });
    return app;
  }

  /** Runs the L7 client in `host`'s namespace. */
  async l7(host: string, specs: Record<string, unknown>[]): Promise<L7Result[]> {
    const r = await this.bed.run(this.bed.host(host).netns, [
      Deno.execPath(),
      "run",
      "--allow-net",
      L7,
      "client",
      JSON.stringify(specs),
    ]);
    if (r.code !== 0) throw new Error(`L7 client failed: ${r.stderr}${r.stdout}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!);
  }

  /** Connections the app `name` accepted so far. */
  accepted(name: string): number {
    return this.apps.get(name)!.records.filter((r) => r.event === "accepted").length;
  }

  /** Runs the sample client in `host`'s namespace. */
  async talk(
    host: string,
    ip: string,
    port: number,
    payload: { text: string } | { size: number },
  ): Promise<TalkResult> {
    const r = await this.bed.run(this.bed.host(host).netns, [
      Deno.execPath(),
      "run",
      "--allow-net",
      APP,
      "talk",
      ip,
      String(port),
      ...("text" in payload ? ["--text", payload.text] : ["--size", String(payload.size)]),
    ]);
    const line = r.stdout.trim().split("\n").pop() ?? "";
    if (r.code !== 0 || !line.startsWith("{")) {
      throw new Error(`client on host-${host} exited ${r.code}: ${r.stderr}${r.stdout}`);
    }
    return JSON.parse(line);
  }

  /** Rewrites the config; resolves when the CA and every running ztunnel applied it. */
  async reconfigure(o: MeshOptions): Promise<void> {
    const yaml = meshYaml(this.bed, o);
    if (yaml === this.#yaml) return;
    const procs = [this.ca!, ...this.ztunnels.values()];
    const marks = procs.map((p) => p.records.length);
    await this.#write(yaml);
    await Promise.all(
      procs.map((p, i) =>
        p.waitForRecord((r) => r.msg === "config reload applied", { from: marks[i] })
      ),
    );
  }

  async #write(yaml: string): Promise<void> {
    // Write, then rename: the watchers never read a half-written file.
    await Deno.writeTextFile(`${this.configDir}/.mesh.yaml.tmp`, yaml);
    await Deno.rename(`${this.configDir}/.mesh.yaml.tmp`, `${this.configDir}/mesh.yaml`);
    this.#yaml = yaml;
  }

  /** Records with message `msg` that host `name`'s ztunnel logged from index `from` on. */
  since(name: string, from: number, msg: string): Record<string, unknown>[] {
    return this.ztunnels.get(name)!.records.slice(from).filter((r) => r.msg === msg);
  }
}

/** A running `tcpdump -w` on one interface of the wire namespace. */
interface Capture {
  /** The file as written so far (tcpdump writes every packet at once). */
  read(): Promise<Uint8Array>;
  /** Stops tcpdump; returns the whole file. */
  stop(): Promise<Uint8Array>;
}

async function capture(bed: Bed, iface: string, file: string): Promise<Capture> {
  // --immediate-mode: without it, packets wait in the kernel ring buffer and
  // a capture stopped soon after the traffic may hold none of them.
  const p = bed.spawn(`tcpdump ${iface}`, bed.wire.netns, [
    "tcpdump",
    "-i",
    iface,
    "-n",
    "-U",
    "--immediate-mode",
    "-s",
    "0",
    "-Z",
    "root",
    "-w",
    file,
    "tcp",
  ]);
  await assertEventually(() => p.lines.some((l) => l.includes("listening on")) || p.exited, {
    message: "tcpdump did not start",
  });
  if (p.exited) throw new Error(p.log());
  return {
    read: () => Deno.readFile(file),
    async stop() {
      p.kill("SIGINT");
      await p.status();
      return await Deno.readFile(file);
    },
  };
}

/** A segment, for failure messages. */
function describe(s: TcpSegment): string {
  return `${s.src}:${s.srcPort} > ${s.dst}:${s.dstPort} ${s.payload.length} bytes`;
}

/** {@link assertEventually} for checks that return a value once the condition holds. */
async function eventually<T>(
  check: () => T | undefined | Promise<T | undefined>,
  options: { timeoutMs?: number; message?: string } = {},
): Promise<T> {
  return (await assertEventually(check, { intervalMs: 50, ...options }))!;
}

/** `name pid=N peer=IP` from an app's header line. */
function parseHeader(h: string): { name: string; pid: number; peer: string } | undefined {
  const m = h.match(/^(\S+) pid=(\d+) peer=(\S+)$/);
  return m ? { name: m[1], pid: Number(m[2]), peer: m[3] } : undefined;
}

Deno.test({
  name: "multi-host bed: three namespace hosts, real ztunnels, CA service and apps",
  ignore: UNAVAILABLE !== undefined,
}, async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "ambit-netns-" });
  try {
    const bed = await Bed.create(["a", "b", "c", "w"]);
    try {
      await meshSteps(t, bed, dir);
    } finally {
      if (Deno.env.get("AMBIT_NETNS_LOGS")) console.error(bed.logs());
      await bed.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The steps of the multi-host test, on a fresh bed. */
async function meshSteps(t: Deno.TestContext, bed: Bed, dir: string): Promise<void> {
  const mesh = new Mesh(bed, dir);
  const [a, b] = [bed.host("a"), bed.host("b")];
  const step = (name: string, fn: () => Promise<void>) =>
    t.step({
      name,
      fn: async () => {
        try {
          await fn();
        } catch (e) {
          console.error(bed.logs());
          throw e;
        }
      },
    });
  try {
    await mesh.start();
    const echoPid = mesh.apps.get("echo")!.pid;

    await step(
      "a client on host A reaches the app on host B through a VIP and HBONE; 4 MiB echo intact",
      async () => {
        const from = mesh.ztunnels.get("b")!.records.length;
        const hello = await eventually(async () => {
          const r = await mesh.talk("a", VIP.echo, 80, { text: "hello over the wire" });
          return r.reply === "hello over the wire" ? r : undefined;
        }, { timeoutMs: 15_000, message: "no echo through the mesh" });
        // B's ztunnel delivered it locally: the app sees B's own address, not host A's.
        assertEquals(parseHeader(hello.header), { name: "echo", pid: echoPid, peer: b.address });

        const size = 4 * 1024 * 1024;
        const big = await mesh.talk("a", VIP.echo, 80, { size });
        assertEquals(big.error, undefined);
        assertEquals(big.bytes, size);
        assertEquals(big.receivedSha256, big.sentSha256);

        const inbound = await eventually(() =>
          mesh.since("b", from, "inbound connection closed").find((r) =>
            Number(r.bytes_received) === size
          )
        );
        assertEquals(inbound.src_identity, CLIENT_A);
        assertEquals(inbound.dst_identity, id("apps", "echo"));
        assertEquals(inbound.dst_workload, "apps/echo");
        assertEquals(Number(inbound.bytes_sent), size + hello.header.length + 1);
      },
    );

    await step(
      "apps reach mesh services by name: DNS proxy, curl through SOCKS5 (socks5h) and the HTTP proxy",
      async () => {
        const run = (host: string, argv: string[]) => bed.run(bed.host(host).netns, argv);
        const host = "web.apps.svc.cluster.local";
        // The DNS proxy on host A answers mesh names with the VIP, over UDP and TCP.
        for (const tcp of [[], ["+tcp"]]) {
          const d = await run("a", [
            "dig",
            "@127.0.0.1",
            "-p",
            "15053",
            host,
            "A",
            "+short",
            ...tcp,
          ]);
          assertEquals([d.code, d.stdout.trim()], [0, VIP.web], d.stderr);
        }
        const nx = await run("a", [
          "dig",
          "@127.0.0.1",
          "-p",
          "15053",
          "nope.apps.svc.cluster.local",
        ]);
        assertIncludes(nx.stdout, "status: NXDOMAIN");
        const curl = (args: string[]) =>
          run("a", ["curl", "-sS", "--max-time", "10", ...args]).then((r) => {
            assertEquals(r.code, 0, `curl ${args.join(" ")}: ${r.stderr}`);
            return r.stdout;
          });
        const from = mesh.ztunnels.get("b")!.records.length;
        const cases: [string, string[]][] = [
          ["socks5h by FQDN", ["--socks5-hostname", "127.0.0.1:15080", `http://${host}/s1`]],
          ["socks5h by short name", ["--socks5-hostname", "127.0.0.1:15080", "http://web.apps/s2"]],
          ["socks5 by VIP", ["--socks5", "127.0.0.1:15080", `http://${VIP.web}/s3`]],
          ["HTTP proxy, absolute form", ["-x", "http://127.0.0.1:15081", `http://${host}/h1`]],
          ["HTTP proxy, CONNECT", ["-p", "-x", "http://127.0.0.1:15081", `http://${host}/h2`]],
        ];
        for (const [name, args] of cases) {
          const body = await curl(args);
          const path = args[args.length - 1].replace(/^http:\/\/[^/]+/, "");
          assertIncludes(body, `web pid=${mesh.apps.get("web")!.pid} peer=${b.address}`, name);
          assertIncludes(body, `method=GET path=${path}`, name);
        }
        // Host B saw each one arrive over HBONE from client-a's identity.
        const inbound = await eventually(() => {
          const rs = mesh.since("b", from, "inbound connection closed").filter((r) =>
            r.dst_workload === "apps/web"
          );
          return rs.length === cases.length ? rs : undefined;
        });
        for (const r of inbound) {
          assertEquals([r.via, r.src_identity], ["hbone", CLIENT_A]);
        }
        const outbound = await eventually(() => {
          const rs = mesh.since("a", 0, "outbound connection closed").filter((r) =>
            r.dst_service === host
          );
          return rs.length === cases.length ? rs : undefined;
        });
        assertEquals(outbound.map((r) => r.via).sort(), [
          "http",
          "http",
          "socks5",
          "socks5",
          "socks5",
        ]);
        // A name that is not in the mesh and does not resolve: SOCKS5 host unreachable.
        const bad = await run("a", [
          "curl",
          "-sS",
          "--max-time",
          "10",
          "--socks5-hostname",
          "127.0.0.1:15080",
          "http://nope.apps.svc.cluster.local/",
        ]);
        assertEquals(bad.code === 0, false);
        assertOk(/unreachable|\(4\)/i.test(bad.stderr), `curl said: ${bad.stderr}`);
      },
    );

    await step(
      "HTTP through a waypoint on its own host: route filter, L7 deny, request metrics, waypoint identity at B",
      async () => {
        const run = (host: string, argv: string[]) => bed.run(bed.host(host).netns, argv);
        const w = bed.host("w");
        const ok = await run("a", [
          "curl",
          "-sS",
          "-i",
          "--max-time",
          "10",
          `http://${VIP.webL7}/hello`,
        ]);
        assertEquals(ok.code, 0, ok.stderr);
        assertIncludes(ok.stdout, "HTTP/1.1 200");
        assertIncludes(ok.stdout, "x-via: waypoint");
        assertIncludes(
          ok.stdout,
          `web pid=${mesh.apps.get("web")!.pid} peer=${b.address} method=GET path=/hello`,
        );
        const denied = await run("a", [
          "curl",
          "-sS",
          "-i",
          "--max-time",
          "10",
          `http://${VIP.webL7}/admin/x`,
        ]);
        assertIncludes(denied.stdout, "HTTP/1.1 403");
        assertIncludes(denied.stdout, "RBAC: access denied");
        // Host B counts the connection from the waypoint's identity (kept alive for reuse).
        const bMetrics = await run("a", ["curl", "-sS", `http://${b.address}:15020/metrics`]);
        const fromWaypoint = bMetrics.stdout.split("\n").find((l) =>
          l.startsWith('istio_tcp_connections_opened_total{reporter="destination"') &&
          l.includes(`source_principal="${id("apps", "waypoint")}"`) &&
          l.includes('destination_workload="web"')
        );
        assertOk(fromWaypoint, "host B saw the waypoint's identity");
        const metrics = await run("a", ["curl", "-sS", `http://${w.address}:15020/metrics`]);
        assertIncludes(
          metrics.stdout,
          `istio_requests_total{reporter="waypoint",source_workload="client-a"`,
        );
        assertIncludes(metrics.stdout, 'destination_service="web-l7.apps.svc.cluster.local"');
        assertIncludes(metrics.stdout, 'response_code="403"');
        const records = mesh.waypoint!.records.filter((r) => r.msg === "request");
        assertEquals(records.map((r) => r.status).sort(), [200, 403]);
        assertEquals(records.find((r) => r.status === 200)!.src_identity, CLIENT_A);
      },
    );

    await step(
      "L7 at the waypoint across hosts: routing, 90/10 split, retries, 504, fault, rate limit, 403, outlier, JWT, gRPC",
      async () => {
        const v = L7_VIP.l7;
        const token = (key: CryptoKey) =>
          new SignJWT({})
            .setProtectedHeader({ alg: "ES256", kid: "k1" })
            .setIssuer(JWT_ISSUER)
            .setSubject("alice")
            .setAudience("secure-api")
            .setExpirationTime("5m")
            .sign(key);
        const stranger = await generateKeyPair("ES256");
        const [jason, split, flaky, slow, fault, limited, admin, pair, jwtOk, jwtBad, jwtNone] =
          await mesh.l7("a", [
            { ip: v, port: 80, path: "/x", headers: { "x-user": "jason" } },
            { ip: v, port: 80, path: "/split", repeat: 1000 },
            { ip: v, port: 80, path: "/flaky", repeat: 10 },
            { ip: v, port: 80, path: "/slow" },
            { ip: v, port: 80, path: "/fault" },
            { ip: v, port: 80, path: "/limited", repeat: 5 },
            { ip: v, port: 80, path: "/admin/users" },
            { ip: L7_VIP.pair, port: 80, path: "/p", repeat: 20 },
            {
              ip: L7_VIP.secure,
              port: 80,
              path: "/s",
              headers: { authorization: `Bearer ${await token(JWT_KEYS.privateKey)}` },
            },
            {
              ip: L7_VIP.secure,
              port: 80,
              path: "/s",
              headers: { authorization: `Bearer ${await token(stranger.privateKey)}` },
            },
            { ip: L7_VIP.secure, port: 80, path: "/s" },
          ]);
        assertEquals([jason.statuses, jason.lastBody], [[200], "l7-v2 GET /x"]);
        assertIncludes(String(jason.lastHeaders["x-saw-xfcc"]), `URI=${CLIENT_A}`);
        assertOk(/^00-[0-9a-f]{32}-/.test(String(jason.lastHeaders["x-saw-traceparent"])));
        assertEquals(split.errors, []);
        const v2 = split.bodies["l7-v2"] ?? 0;
        assertOk(v2 >= 50 && v2 <= 150, `l7-v2 got ${v2} of 1000`);
        assertEquals(flaky.statuses, new Array(10).fill(200), "retries hide the 503s");
        assertEquals([slow.statuses, slow.lastBody], [[504], "upstream request timeout"]);
        assertOk(slow.lastMs >= 280 && slow.lastMs < 1500, `504 after ${slow.lastMs} ms`);
        assertEquals([fault.statuses, fault.lastBody], [[418], "fault filter abort"]);
        assertEquals(limited.statuses, [200, 200, 200, 429, 429]);
        assertEquals([admin.statuses, admin.lastBody], [[403], "RBAC: access denied"]);
        assertEquals(pair.statuses, new Array(20).fill(200));
        const badHits = mesh.apps.get("pair-bad")!.records.filter((r) => r.event === "hit").length;
        assertEquals(badHits, 3, "pair-bad is ejected after 3 consecutive 5xx");
        assertEquals([jwtOk.statuses, jwtOk.lastBody], [[200], "secure GET /s"]);
        assertEquals([jwtBad.statuses, jwtBad.lastBody], [[401], "Jwt verification fails"]);
        assertEquals(jwtNone.statuses, [403]);
        // gRPC from host A with Python's grpcio, through the waypoint on host W.
        const g = await bed.run(bed.host("a").netns, [
          "/usr/bin/python3",
          GRPC_PEER,
          "call",
          `${L7_VIP.grpc}:81`,
        ]);
        assertEquals(g.code, 0, g.stderr);
        const grpc = JSON.parse(g.stdout.trim());
        assertIncludes(grpc.unary, `URI=${CLIENT_A}`);
        assertEquals(grpc.stream, ["0:a", "1:b", "2:c"]);
        assertEquals(grpc.missing, "UNIMPLEMENTED");
        const m = await bed.run(bed.host("a").netns, [
          "curl",
          "-sS",
          `http://${bed.host("w").address}:15020/metrics`,
        ]);
        for (
          const part of [
            'response_code="418",grpc_response_status="",response_flags="FI"',
            'response_code="429",grpc_response_status="",response_flags="RL"',
            'response_code="504",grpc_response_status="",response_flags="UT"',
            'request_protocol="grpc",response_code="200",grpc_response_status="0"',
            'destination_workload="l7-v2"',
          ]
        ) assertIncludes(m.stdout, part);
      },
    );

    await step(
      "metrics and readiness answer other hosts; the admin API does not",
      async () => {
        const run = (host: string, argv: string[]) => bed.run(bed.host(host).netns, argv);
        const metrics = await run("a", ["curl", "-sS", `http://${b.address}:15020/metrics`]);
        assertEquals(metrics.code, 0, metrics.stderr);
        assertIncludes(
          metrics.stdout,
          `istio_tcp_connections_opened_total{reporter="destination",source_workload="client-a"`,
        );
        assertIncludes(metrics.stdout, `source_principal="${CLIENT_A}"`);
        assertIncludes(metrics.stdout, `destination_service="web.apps.svc.cluster.local"`);
        assertIncludes(metrics.stdout, 'connection_security_policy="mutual_tls"');
        const ready = await run("a", ["curl", "-sS", `http://${b.address}:15021/healthz/ready`]);
        assertEquals([ready.code, ready.stdout], [0, "ready\n"], ready.stderr);
        const admin = await run("a", [
          "curl",
          "-sS",
          "--max-time",
          "3",
          `http://${b.address}:15000/workloads`,
        ]);
        assertEquals(admin.code === 0, false, "the admin API must not answer another host");
        // On host B itself it answers.
        const local = await run("b", ["curl", "-sS", "http://127.0.0.1:15000/workloads"]);
        assertEquals(local.code, 0, local.stderr);
        assertIncludes(local.stdout, '"apps/web"');
      },
    );

    await step(
      "a capture on the wire shows port 15008 and no plaintext; a plaintext control shows the marker",
      async () => {
        const marker = `AMBIT-MARKER-${crypto.randomUUID()}`;
        const needle = new TextEncoder().encode(marker);

        const hboneBytes = (pcap: Uint8Array) =>
          tcpSegments(pcap).filter((s) =>
            (s.dstPort === 15008 && s.dst === b.address) ||
            (s.srcPort === 15008 && s.src === b.address)
          ).reduce((n, s) => n + s.payload.length, 0);

        // Control: the same app, straight to its address, bypassing the mesh.
        const control = await capture(bed, b.wireIf, `${dir}/control.pcap`);
        const direct = await mesh.talk("a", b.address, 8080, { text: marker });
        assertEquals(direct.reply, marker);
        await eventually(async () => containsBytes(await control.read(), needle), {
          message: "the control capture never showed the plaintext marker",
        });
        const controlPcap = await control.stop();
        const controlSegs = tcpSegments(controlPcap);
        assertOk(
          controlSegs.some((s) =>
            s.dstPort === 8080 && s.dst === b.address && containsBytes(s.payload, needle)
          ),
          `the marker went to port 8080 in plaintext; captured: ${
            controlSegs.map(describe).join("; ")
          }`,
        );

        const cap = await capture(bed, b.wireIf, `${dir}/mesh.pcap`);
        const viaMesh = await mesh.talk("a", VIP.echo, 80, { text: marker });
        assertEquals(viaMesh.reply, marker);
        // Both directions of the marker (request and echo) cross as TLS records on 15008.
        await eventually(async () => hboneBytes(await cap.read()) > 2 * marker.length, {
          message: "no HBONE traffic captured",
        });
        const meshPcap = await cap.stop();
        assertEquals(
          containsBytes(meshPcap, needle),
          false,
          "the marker crossed the wire in plaintext",
        );
        // Between host A and host B, every byte of payload went to or came from port 15008.
        // (Segments without payload may be stragglers of the control connection closing.)
        const ab = new Set([a.address, b.address]);
        const segs = tcpSegments(meshPcap).filter((s) => ab.has(s.src) && ab.has(s.dst));
        const plain = segs.filter((s) =>
          s.payload.length > 0 && s.srcPort !== 15008 && s.dstPort !== 15008
        );
        assertEquals(plain.map(describe), [], "payload outside HBONE between host A and host B");
        // What crossed is TLS: application-data records (type 23, legacy version 3.3).
        assertOk(
          segs.some((s) =>
            s.dstPort === 15008 && s.payload[0] === 23 && s.payload[1] === 3 && s.payload[2] === 3
          ),
          "TLS application data from host A to host B's port 15008",
        );
      },
    );

    await step(
      "L4 AuthorizationPolicy allows and denies by SPIFFE identity across hosts",
      async () => {
        const zb = mesh.ztunnels.get("b")!;
        // ALLOW only client-a: client-c (another host, another identity) is refused.
        await mesh.reconfigure({ extra: [policy("echo-allow", "ALLOW", [CLIENT_A])] });
        let from = zb.records.length;
        let accepted = mesh.accepted("echo");
        const denied = await mesh.talk("c", VIP.echo, 80, { text: "from c" });
        assertEquals([denied.header, denied.bytes], ["", 0], "a denied client gets no bytes");
        const d = await zb.waitForRecord((r) => r.msg === "inbound connection denied", { from });
        assertEquals([d.source, d.policy], [CLIENT_C, "apps/echo-allow"]);
        assertEquals(mesh.accepted("echo"), accepted, "the app never saw the denied connection");
        assertEquals((await mesh.talk("a", VIP.echo, 80, { text: "from a" })).reply, "from a");

        // ALLOW both, DENY client-a: now client-a is refused and client-c gets through.
        await mesh.reconfigure({
          extra: [
            policy("echo-allow", "ALLOW", [CLIENT_A, CLIENT_C]),
            policy("echo-deny", "DENY", [CLIENT_A]),
          ],
        });
        from = zb.records.length;
        accepted = mesh.accepted("echo");
        const deniedA = await mesh.talk("a", VIP.echo, 80, { text: "from a" });
        assertEquals([deniedA.header, deniedA.bytes], ["", 0]);
        const d2 = await zb.waitForRecord((r) => r.msg === "inbound connection denied", { from });
        assertEquals([d2.source, d2.policy], [CLIENT_A, "apps/echo-deny"]);
        assertEquals(mesh.accepted("echo"), accepted);
        const allowedC = await mesh.talk("c", VIP.echo, 80, { text: "from c" });
        assertEquals(allowedC.reply, "from c");
        assertEquals(mesh.accepted("echo"), accepted + 1);

        await mesh.reconfigure({});
        assertEquals(
          (await mesh.talk("a", VIP.echo, 80, { text: "open again" })).reply,
          "open again",
        );
      },
    );

    await step(
      "an app bound to loopback on host B is unreachable from host A directly, reachable through the mesh",
      async () => {
        const privatePid = mesh.apps.get("private")!.pid;
        for (const ip of [b.address, "127.0.0.1"]) {
          const r = await mesh.talk("a", ip, 9090, { text: "direct" });
          assertEquals(
            [r.connected, r.error],
            [false, "ConnectionRefused"],
            `direct to ${ip}:9090`,
          );
        }
        const r = await eventually(async () => {
          const r = await mesh.talk("a", VIP.private, 9090, { text: "via mesh" });
          return r.reply === "via mesh" ? r : undefined;
        });
        assertEquals(parseHeader(r.header), {
          name: "private",
          pid: privatePid,
          peer: "127.0.0.1",
        });
      },
    );

    await step(
      "labelling a namespace ambient in the config file enrolls its running app without a restart",
      async () => {
        await mesh.reconfigure({});
        const ledger = mesh.apps.get("ledger")!;
        const zb = mesh.ztunnels.get("b")!;
        // Not enrolled: host A's ztunnel sends it straight to the app, in plaintext.
        const before = await mesh.talk("a", VIP.ledger, 7070, { text: "before" });
        assertEquals(before.reply, "before");
        assertEquals(parseHeader(before.header), {
          name: "ledger",
          pid: ledger.pid,
          peer: a.address,
        });

        const from = zb.records.length;
        await mesh.reconfigure({ legacyAmbient: true });
        await zb.waitForRecord(
          (r) => r.msg === "workload enrolled" && r.workload === "legacy/ledger",
          {
            from,
          },
        );
        const after = await eventually(async () => {
          const r = await mesh.talk("a", VIP.ledger, 7070, { text: "after" });
          return parseHeader(r.header)?.peer === b.address ? r : undefined;
        }, { timeoutMs: 15_000, message: "ledger traffic never came through host B's ztunnel" });
        assertEquals(after.reply, "after");
        assertEquals(parseHeader(after.header)?.pid, ledger.pid);
        assertEquals(ledger.exited, false, "the app kept running");
        const inbound = await eventually(() =>
          mesh.since("b", from, "inbound connection closed").find((r) =>
            r.dst_workload === "legacy/ledger"
          )
        );
        assertEquals(inbound.src_identity, CLIENT_A);
        assertEquals(inbound.dst_identity, id("legacy", "ledger"));
        await mesh.reconfigure({});
      },
    );

    await step(
      "restarting host B's ztunnel neither restarts nor breaks the app; new connections work again",
      async () => {
        const old = mesh.ztunnels.get("b")!;
        old.kill("SIGKILL");
        await old.status();
        // The app is untouched while its ztunnel is down.
        const local = await mesh.talk("b", b.address, 8080, { text: "local" });
        assertEquals(parseHeader(local.header)?.pid, echoPid);
        assertEquals(local.reply, "local");
        const down = await mesh.talk("a", VIP.echo, 80, { text: "while down" });
        assertEquals(down.bytes, 0, "no path through the mesh while host B's ztunnel is down");

        await mesh.startZtunnel("b", [id("apps", "echo"), id("apps", "private")]);
        const r = await eventually(async () => {
          const r = await mesh.talk("a", VIP.echo, 80, { text: "after restart" });
          return r.reply === "after restart" ? r : undefined;
        }, { timeoutMs: 15_000, message: "no echo after the ztunnel restart" });
        assertEquals(parseHeader(r.header)?.pid, echoPid);
        assertEquals(mesh.apps.get("echo")!.exited, false);
        assertIncludes(r.header, `peer=${b.address}`);
      },
    );
    await step(
      "SIGTERM: readiness turns 500 at once, a live connection drains, then the ztunnel exits 0",
      async () => {
        const zb = mesh.ztunnels.get("b")!;
        // A connection from host A through host B's ztunnel that stays open for 2 s.
        const holder = bed.run(bed.host("a").netns, [
          "bash",
          "-c",
          `exec 3<>/dev/tcp/${VIP.echo}/80; printf hold >&3; sleep 2; exec 3>&-`,
        ]);
        const from = zb.records.length;
        await eventually(async () => {
          const m = await bed.run(bed.host("a").netns, [
            "curl",
            "-sS",
            `http://${b.address}:15020/metrics`,
          ]);
          return /ambit_connections_active\{direction="inbound"\} [1-9]/.test(m.stdout) ||
            undefined;
        });
        zb.kill("SIGTERM");
        const probe = await eventually(async () => {
          const r = await bed.run(bed.host("a").netns, [
            "curl",
            "-sS",
            `http://${b.address}:15021/healthz/ready`,
          ]);
          return r.stdout.includes("stopping") ? r.stdout : undefined;
        });
        assertIncludes(probe, "stopping (SIGTERM)");
        await zb.waitForRecord((r) => r.msg === "draining connections", { from });
        assertEquals(zb.exited, false, "it waits for the live connection");
        await holder;
        assertEquals(await zb.status(), 0, zb.log());
        const drained = zb.records.slice(from).some((r) =>
          r.msg === "drain deadline passed; closing connections"
        );
        assertEquals(drained, false, "the connection finished within the drain deadline");
        mesh.ztunnels.delete("b");
      },
    );
    await step("every ambit process stops cleanly on SIGTERM", async () => {
      // Idle kept-alive connections may hold a ztunnel for its 5 s drain; it then exits 0.
      for (const [name, z] of mesh.ztunnels) {
        assertEquals(await z.stop(15_000), 0, `ztunnel host-${name}: ${z.log()}`);
      }
      assertEquals(await mesh.waypoint!.stop(), 0, mesh.waypoint!.log());
      assertEquals(await mesh.ca!.stop(), 0, mesh.ca!.log());
    });
  } catch (e) {
    console.error(bed.logs());
    throw e;
  }
}

Deno.test({
  name: "the bed removes namespaces, and what runs in them, left behind by a crashed run",
  ignore: UNAVAILABLE !== undefined,
}, async () => {
  // A pid that is surely gone: a process that already exited.
  const gone = new Deno.Command("true").spawn();
  await gone.status;
  const stale = `${NETNS_PREFIX}${gone.pid}-0-wire`;
  await sh(["ip", "netns", "add", stale]);
  const orphan = new Deno.Command("ip", {
    args: ["netns", "exec", stale, "sleep", "300"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await eventually(async () =>
      (await sh(["ip", "netns", "pids", stale])).stdout.trim() !== "" || undefined
    );
    // (A parallel run's clean-up may get there first; either way it must be gone.)
    await cleanStaleNetns();
    const status = await orphan.status;
    assertEquals(status.signal, "SIGKILL");
    assertEquals((await sh(["ip", "netns", "list"])).stdout.includes(stale), false);
  } finally {
    try {
      orphan.kill("SIGKILL");
    } catch { /* already gone */ }
    await orphan.status;
    await sh(["ip", "netns", "del", stale], { allowFail: true });
  }
});
