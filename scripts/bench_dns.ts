/**
 * DNS proxy benchmark: queries per second over UDP answered from the mesh
 * table, and, as the baseline, the same load through the forwarding path to
 * a local fake upstream resolver.
 *
 * Three processes, so none shares an event loop with another: the proxy
 * (`--role proxy`, a mesh of `--services` Services in 10 namespaces, run
 * with ambit's V8 flags), the fake upstream (`--role upstream`) and this
 * one, which drives a Python load generator (one UDP socket keeping
 * `--concurrency` queries outstanding: a new query as each answer arrives;
 * one lost for 1 s is replaced and counted). Needs python3 on PATH. Per scenario: a warm-up second, then `--runs` runs
 * of `--seconds` each; the table shows the median, the JSON every run and
 * the latency percentiles of the median run. The last rows time the pure
 * decision (decideQuery + the name table, no sockets) in this process, with
 * and without the cache of encoded answers.
 *
 * Writes `.bench/dns.json`.
 *
 *   deno run --allow-all scripts/bench_dns.ts [--runs 5] [--seconds 2] [--concurrency 64]
 *     [--services 1000]
 */
import { parseArgs } from "node:util";
import { compileSourcesSync } from "../mod/config/compile.ts";
import { decideQuery, ResponseCache } from "../mod/dns/handler.ts";
import { MeshNames } from "../mod/dns/names.ts";
import { encodeMessage, FLAG } from "../mod/dns/packet.ts";
import { serveDns } from "../mod/dns/server.ts";
import { Upstream } from "../mod/dns/upstream.ts";
import { Logger } from "../mod/log/logger.ts";
import { AMBIT_V8_FLAGS } from "../mod/permissions.ts";
import { fakeResolver } from "../tests/dns/_upstream.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    seconds: { type: "string", default: "2" },
    concurrency: { type: "string", default: "64" },
    services: { type: "string", default: "1000" },
    role: { type: "string" },
    upstream: { type: "string" },
  },
});
const RUNS = Number(values.runs);
const SECONDS = Number(values.seconds);
const CONCURRENCY = Number(values.concurrency);
const SERVICES = Number(values.services);
const NAMESPACES = 10;

function meshNames(): MeshNames {
  const docs: string[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const ns = `ns-${i % NAMESPACES}`;
    docs.push(
      `apiVersion: v1\nkind: Service\nmetadata: {name: svc-${i}, namespace: ${ns}}\n` +
        `spec:\n  clusterIP: 10.96.${Math.floor(i / 250)}.${
          (i % 250) + 1
        }\n  ports: [{port: 80}]\n`,
    );
  }
  const r = compileSourcesSync([{ file: "bench.yaml", text: docs.join("---\n") }]);
  if (!r.snapshot) throw new Error(r.issues.map((i) => i.message).join("\n"));
  return MeshNames.fromSnapshot(r.snapshot);
}

const meshName = (i: number) =>
  `svc-${i % SERVICES}.ns-${i % SERVICES % NAMESPACES}.svc.cluster.local`;
const externalName = (i: number) => `host-${i % SERVICES}.example.org`;

// --- child roles ------------------------------------------------------------

async function untilStdinCloses(): Promise<void> {
  for await (const _ of Deno.stdin.readable) { /* keep reading */ }
}

if (values.role === "upstream") {
  const records: Record<string, string[]> = {};
  for (let i = 0; i < SERVICES; i++) {
    records[`${externalName(i)}|A`] = [`198.51.100.${(i % 250) + 1}`];
  }
  const fake = await fakeResolver(records);
  console.log(`READY ${fake.address.port}`);
  await untilStdinCloses();
  await fake.close();
  Deno.exit(0);
}

if (values.role === "proxy") {
  const names = meshNames();
  const server = await serveDns({
    udp: { ip: "127.0.0.1", port: 0 },
    names: () => names,
    namespacesFor: () => ["ns-0"],
    upstream: new Upstream({ servers: [{ ip: "127.0.0.1", port: Number(values.upstream) }] }),
    logger: new Logger({ level: "warn" }),
  });
  console.log(`READY ${server.udp!.port}`);
  await untilStdinCloses();
  console.error(`proxy counters (udp): ${JSON.stringify(server.stats.queries.udp)}`);
  await server.close();
  Deno.exit(0);
}

// --- load generator ---------------------------------------------------------

interface Child {
  port: number;
  stop(): Promise<void>;
}

async function spawnRole(role: string, extra: string[] = []): Promise<Child> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--v8-flags=${AMBIT_V8_FLAGS.join(",")}`,
      "--allow-all",
      new URL(import.meta.url).pathname,
      "--role",
      role,
      "--services",
      String(SERVICES),
      ...extra,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${role} exited before it was ready`);
    text += value;
  }
  const port = Number(text.match(/READY (\d+)/)?.[1]);
  // Keep draining stdout so the child never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  return {
    port,
    async stop() {
      await child.stdin.close();
      await child.status;
    },
  };
}

interface RunResult {
  qps: number;
  lost: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * The load generator, in Python: Deno's node:dgram tops out near 15,000
 * round trips per second on this kind of host, so a Deno generator would
 * measure itself. One connected UDP socket keeps CONC queries outstanding:
 * each answer (matched by ID) sends the next query; a query unanswered for
 * 1 s is counted lost and replaced. Prints one JSON line.
 *
 *   python3 - PORT SECONDS CONC QUERIES_FILE   (queries as hex, one a line)
 */
const LOAD_PY = String.raw`
import json, socket, struct, sys, time


def pct(s, q):
    return round(s[min(len(s) - 1, int(len(s) * q))] * 1000, 3) if s else None


def main():
    port, seconds, conc = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    queries = [bytes.fromhex(l) for l in open(sys.argv[4]).read().split()]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.connect(("127.0.0.1", port))
    s.settimeout(0.25)
    clock = time.perf_counter
    sent_at = {}
    state = {"id": 0, "seq": 0}
    answered, lost, lat = 0, 0, []

    def send():
        i = state["id"]
        state["id"] = (i + 1) & 0xFFFF
        q = queries[state["seq"] % len(queries)]
        state["seq"] += 1
        sent_at[i] = clock()
        s.send(struct.pack("!H", i) + q[2:])

    t0 = clock()
    end, sweep = t0 + seconds, t0 + 0.25
    for _ in range(conc):
        send()
    while True:
        now = clock()
        if now >= end:
            break
        if now >= sweep:
            sweep = now + 0.25
            for i, t in list(sent_at.items()):
                if now - t > 1.0:
                    del sent_at[i]
                    lost += 1
                    send()
        try:
            data = s.recv(65535)
        except socket.timeout:
            continue
        if len(data) < 2:
            continue
        t = sent_at.pop(struct.unpack_from("!H", data)[0], None)
        if t is None:
            continue
        answered += 1
        lat.append(clock() - t)
        send()
    elapsed = clock() - t0
    lat.sort()
    print(json.dumps({"qps": round(answered / elapsed), "lost": lost,
                      "p50Ms": pct(lat, 0.5), "p99Ms": pct(lat, 0.99)}))


main()
`;

/** Keeps `CONCURRENCY` queries for `nameOf(i)` outstanding against 127.0.0.1:`port`. */
async function load(
  port: number,
  nameOf: (i: number) => string,
  seconds: number,
): Promise<RunResult> {
  const file = await Deno.makeTempFile({ suffix: ".hex" });
  try {
    const lines = Array.from({ length: 4096 }, (_, i) =>
      Array.from(
        encodeMessage({
          id: 0,
          type: "query",
          flags: FLAG.RD,
          questions: [{ name: nameOf(i), type: "A" }],
        }),
        (b) => b.toString(16).padStart(2, "0"),
      ).join(""));
    await Deno.writeTextFile(file, lines.join("\n") + "\n");
    const out = await new Deno.Command("python3", {
      args: ["-c", LOAD_PY, String(port), String(seconds), String(CONCURRENCY), file],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error("the python3 load generator failed");
    return JSON.parse(new TextDecoder().decode(out.stdout));
  } finally {
    await Deno.remove(file);
  }
}

async function scenario(
  port: number,
  nameOf: (i: number) => string,
): Promise<{ median: RunResult; runs: RunResult[] }> {
  await load(port, nameOf, 1); // warm-up: JIT, caches
  const runs: RunResult[] = [];
  for (let r = 0; r < RUNS; r++) runs.push(await load(port, nameOf, SECONDS));
  const median = [...runs].sort((a, b) => a.qps - b.qps)[Math.floor(runs.length / 2)];
  return { median, runs };
}

/**
 * The decision alone (no sockets), in this process, with the response cache
 * as the server uses it and without: an upper bound for the table path.
 */
function pureDecisions(): { cached: number; uncached: number } {
  const names = meshNames();
  const queries = Array.from({ length: 4096 }, (_, i) =>
    encodeMessage({
      id: i,
      type: "query",
      flags: FLAG.RD,
      questions: [{ name: meshName(i), type: "A" }],
    }));
  const rate = (cache?: ResponseCache) => {
    const o = {
      ttl: 30,
      zone: names.zone,
      cache,
      lookup: (n: string, t: string) => names.lookup(n, t, { namespaces: ["ns-0"] }),
    };
    for (let i = 0; i < 20_000; i++) decideQuery(queries[i % queries.length], o);
    const n = 200_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) decideQuery(queries[i % queries.length], o);
    return Math.round(n / ((performance.now() - t0) / 1000));
  };
  return { cached: rate(new ResponseCache()), uncached: rate() };
}

const upstream = await spawnRole("upstream");
const proxy = await spawnRole("proxy", ["--upstream", String(upstream.port)]);
try {
  const mesh = await scenario(proxy.port, meshName);
  const forwarded = await scenario(proxy.port, externalName);
  const direct = await scenario(upstream.port, externalName);
  const pure = pureDecisions();
  const rows: [string, RunResult | undefined, number][] = [
    ["mesh table (UDP, via proxy)", mesh.median, mesh.median.qps],
    ["forwarded to fake upstream (UDP, via proxy)", forwarded.median, forwarded.median.qps],
    ["fake upstream directly (no proxy)", direct.median, direct.median.qps],
    ["decideQuery() alone, no sockets, response cache", undefined, pure.cached],
    ["decideQuery() alone, no sockets, no cache", undefined, pure.uncached],
  ];
  console.log(
    `DNS proxy, ${SERVICES} services, concurrency ${CONCURRENCY}, median of ${RUNS} × ${SECONDS} s\n`,
  );
  console.log("| path | queries/s | p50 ms | p99 ms | lost |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const [label, r, qps] of rows) {
    console.log(
      `| ${label} | ${qps.toLocaleString("en-US")} | ${r?.p50Ms ?? "-"} | ${r?.p99Ms ?? "-"} | ${
        r?.lost ?? "-"
      } |`,
    );
  }
  console.log(`\nmesh / forwarded: ${(mesh.median.qps / forwarded.median.qps).toFixed(2)}×`);
  const result = {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    services: SERVICES,
    concurrency: CONCURRENCY,
    runs: RUNS,
    secondsPerRun: SECONDS,
    meshTable: mesh,
    forwarded,
    upstreamDirect: direct,
    decideQueryPerSecond: pure,
    meshOverForwarded: +(mesh.median.qps / forwarded.median.qps).toFixed(2),
  };
  const out = new URL("../.bench/dns.json", import.meta.url).pathname;
  await Deno.mkdir(new URL("../.bench/", import.meta.url).pathname, { recursive: true });
  await Deno.writeTextFile(out, JSON.stringify(result, null, 2) + "\n");
  console.log(`wrote ${out}`);
} finally {
  await proxy.stop();
  await upstream.stop();
}
