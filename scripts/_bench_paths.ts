/**
 * The three paths of the data-plane benchmark, all on loopback addresses in
 * one 127.252.K.0/24 block (K from the pid, away from the tests' 127.60-249
 * blocks and the lab's 127.0/16 and 127.10/16):
 *
 * - direct:  client → app
 * - stunnel: client → stunnel (client mode) → mutual TLS 1.3 → stunnel → app
 * - ambit:   client → node-a's ztunnel on the Service VIP → HBONE (HTTP/2
 *   CONNECT over mutual TLS 1.3) → node-b's ztunnel → app
 *
 * Each proxy is a separate process started as a real deployment would be:
 * `stunnel CONF`, `ambit ztunnel --config --node --ca-dir` (the lab's local
 * minting, as `ambit lab` does).
 *
 * @module
 */
import { initCaDir } from "../mod/identity/ca_dir.ts";
import { HBONE_CIPHERSUITES } from "../mod/identity/tls.ts";
import { selfCommand } from "../mod/lab/self.ts";
import { Proc, run } from "./_bench_proc.ts";

/** A TCP address. */
export interface HostPort {
  readonly hostname: string;
  readonly port: number;
}

/** Where everything listens. */
export interface Addresses {
  readonly nodeA: string;
  readonly nodeB: string;
  /** The client workload's address on node-a (attribution is by "only workload"). */
  readonly client: string;
  readonly app: string;
  readonly vip: string;
  readonly stunnelClient: string;
  readonly stunnelServer: string;
}

/** Ports (all above 1023: no privilege needed): the app's, the Service's, stunnel's TLS side. */
export const PORTS = {
  echo: 8080,
  sink: 8081,
  vipEcho: 8080,
  vipSink: 8081,
  tlsEcho: 9443,
  tlsSink: 9444,
};

export const TRUST_DOMAIN = "bench.ambit";

/** The address block for this benchmark process. */
export function addresses(k = 1 + (Deno.pid % 250)): Addresses {
  const n = `127.252.${k}`;
  return {
    nodeA: `${n}.1`,
    nodeB: `${n}.2`,
    client: `${n}.10`,
    app: `${n}.20`,
    vip: `${n}.100`,
    stunnelClient: `${n}.30`,
    stunnelServer: `${n}.31`,
  };
}

/** The echo and sink addresses a client uses on each path. */
export function targets(a: Addresses): Record<"direct" | "stunnel" | "ambit", {
  echo: HostPort;
  sink: HostPort;
}> {
  return {
    direct: {
      echo: { hostname: a.app, port: PORTS.echo },
      sink: { hostname: a.app, port: PORTS.sink },
    },
    stunnel: {
      echo: { hostname: a.stunnelClient, port: PORTS.echo },
      sink: { hostname: a.stunnelClient, port: PORTS.sink },
    },
    ambit: {
      echo: { hostname: a.vip, port: PORTS.vipEcho },
      sink: { hostname: a.vip, port: PORTS.vipSink },
    },
  };
}

// --- stunnel ----------------------------------------------------------------------

/** A throwaway CA and two ECDSA P-256 leaves (as ambit's), made with openssl. */
export async function writeStunnelCerts(dir: string, a: Addresses): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    "/CN=ambit-bench-ca",
  ], dir);
  for (const [name, ip] of [["server", a.stunnelServer], ["client", a.stunnelClient]]) {
    await Deno.writeTextFile(
      `${dir}/${name}.ext`,
      "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" +
        `extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:${ip}\n`,
    );
    await run("openssl", [
      "req",
      ...ec,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=${name}`,
    ], dir);
    await run("openssl", [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.crt`,
    ], dir);
  }
}

/** The TLS settings both stunnels share: mutual, chain-verified, TLS 1.3, ambit's suites. */
function tlsLines(dir: string, name: string): string[] {
  return [
    `cert = ${dir}/${name}.crt`,
    `key = ${dir}/${name}.key`,
    `CAfile = ${dir}/ca.crt`,
    "verifyChain = yes",
    "requireCert = yes",
    "sslVersionMin = TLSv1.3",
    `ciphersuites = ${HBONE_CIPHERSUITES}`,
    "socket = l:TCP_NODELAY=1",
    "socket = r:TCP_NODELAY=1",
  ];
}

/** Writes the two stunnel configs; returns their paths. */
async function writeStunnelConfigs(
  dir: string,
  a: Addresses,
): Promise<{ client: string; server: string }> {
  const global = (side: string) => [
    "foreground = quiet",
    "pid =",
    "syslog = no",
    `output = ${dir}/stunnel-${side}.log`,
  ];
  const client = [...global("client")];
  const server = [...global("server")];
  for (
    const [svc, plain, tls] of [["echo", PORTS.echo, PORTS.tlsEcho], [
      "sink",
      PORTS.sink,
      PORTS.tlsSink,
    ]]
  ) {
    client.push(
      `[${svc}]`,
      "client = yes",
      `accept = ${a.stunnelClient}:${plain}`,
      `connect = ${a.stunnelServer}:${tls}`,
      ...tlsLines(dir, "client"),
      // The server's identity, as ambit checks the server's SPIFFE ID.
      `checkIP = ${a.stunnelServer}`,
    );
    server.push(
      `[${svc}]`,
      `accept = ${a.stunnelServer}:${tls}`,
      `connect = ${a.app}:${plain}`,
      ...tlsLines(dir, "server"),
    );
  }
  const paths = { client: `${dir}/client.conf`, server: `${dir}/server.conf` };
  await Deno.writeTextFile(paths.client, client.join("\n") + "\n");
  await Deno.writeTextFile(paths.server, server.join("\n") + "\n");
  return paths;
}

/** Starts the server-side and client-side stunnels; resolves once both accept. */
export async function startStunnelPair(dir: string, a: Addresses): Promise<Proc[]> {
  const conf = await writeStunnelConfigs(dir, a);
  const procs: Proc[] = [];
  try {
    procs.push(await Proc.start("stunnel server", ["stunnel", conf.server], `${dir}/server.out`));
    procs.push(await Proc.start("stunnel client", ["stunnel", conf.client], `${dir}/client.out`));
    await waitListening(procs[0], { hostname: a.stunnelServer, port: PORTS.tlsEcho });
    await waitListening(procs[0], { hostname: a.stunnelServer, port: PORTS.tlsSink });
    await waitListening(procs[1], { hostname: a.stunnelClient, port: PORTS.echo });
    await waitListening(procs[1], { hostname: a.stunnelClient, port: PORTS.sink });
    return procs;
  } catch (e) {
    for (const p of procs) await p.stop();
    throw e;
  }
}

/** Polls until `to` accepts a TCP connection, up to 15 s, failing early when `p` exits. */
async function waitListening(p: Proc, to: HostPort): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (let i = 0; Date.now() < deadline && i < 1000; i++) {
    if (p.exited) throw new Error(`${p.label} exited; its log:\n${await p.tail()}`);
    try {
      (await Deno.connect(to)).close();
      return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${p.label} not listening on ${to.hostname}:${to.port}; log:\n${await p.tail()}`);
}

// --- ambit ------------------------------------------------------------------------

/** The mesh: two nodes, a client workload on node-a, the app behind a Service on node-b. */
export function meshYaml(a: Addresses): string {
  return `apiVersion: ambit.io/v1alpha1
kind: Mesh
metadata: { name: mesh }
spec: { trustDomain: ${TRUST_DOMAIN} }
---
apiVersion: ambit.io/v1alpha1
kind: Node
metadata: { name: node-a }
spec: { address: ${a.nodeA} }
---
apiVersion: ambit.io/v1alpha1
kind: Node
metadata: { name: node-b }
spec: { address: ${a.nodeB}, outbound: { vips: false } }
---
apiVersion: v1
kind: Namespace
metadata: { name: bench, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: client, namespace: bench }
spec: { node: node-a, address: ${a.client}, serviceAccount: client, labels: { app: client } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: app, namespace: bench }
spec: { node: node-b, address: ${a.app}, serviceAccount: app, labels: { app: app } }
---
apiVersion: v1
kind: Service
metadata: { name: app, namespace: bench }
spec:
  clusterIP: ${a.vip}
  selector: { app: app }
  ports:
    - { name: echo, port: ${PORTS.vipEcho}, targetPort: ${PORTS.echo} }
    - { name: sink, port: ${PORTS.vipSink}, targetPort: ${PORTS.sink} }
`;
}

/** Writes the mesh config and a CA directory under `dir`. */
export async function writeMesh(dir: string, a: Addresses): Promise<void> {
  await Deno.mkdir(`${dir}/mesh`, { recursive: true });
  await Deno.writeTextFile(`${dir}/mesh/mesh.yaml`, meshYaml(a));
  await initCaDir(`${dir}/ca`, { trustDomain: TRUST_DOMAIN });
}

/**
 * Starts node-b's then node-a's ztunnel (`ambit ztunnel`, real processes),
 * each with its admin API on its node address; resolves once both hold valid
 * certificates.
 */
export async function startAmbitPair(
  dir: string,
  a: Addresses,
  opts: { logLevel: string; run: number; metrics?: boolean },
): Promise<Proc[]> {
  const procs: Proc[] = [];
  try {
    for (const [node, ip] of [["node-b", a.nodeB], ["node-a", a.nodeA]]) {
      const p = await Proc.start(`ztunnel ${node}`, [
        ...selfCommand(),
        "ztunnel",
        "--config",
        `${dir}/mesh`,
        "--node",
        node,
        "--ca-dir",
        `${dir}/ca`,
        "--admin",
        `${ip}:15000`,
        "--dns",
        "off",
        "--socks5",
        "off",
        "--http-proxy",
        "off",
        ...(opts.metrics === false ? ["--metrics", "off"] : []),
        "--log-format",
        "json",
        "--log-level",
        opts.logLevel,
      ], `${dir}/ztunnel-${node}-run${opts.run}.log`);
      procs.push(p);
    }
    for (const [i, ip] of [a.nodeB, a.nodeA].entries()) await waitForCerts(procs[i], ip);
    return procs;
  } catch (e) {
    for (const p of procs) await p.stop();
    throw e;
  }
}

/** Polls the node's admin /certs until every identity it tracks is valid (30 s at most). */
async function waitForCerts(p: Proc, ip: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (let i = 0; Date.now() < deadline && i < 1000; i++) {
    if (p.exited) throw new Error(`${p.label} exited; its log:\n${await p.tail()}`);
    try {
      const res = await fetch(`http://${ip}:15000/certs`, { signal: AbortSignal.timeout(2000) });
      const body = await res.json() as { identities: { state: string }[] };
      if (body.identities.length > 0 && body.identities.every((c) => c.state === "valid")) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${p.label}: certificates not valid in time; log:\n${await p.tail()}`);
}
