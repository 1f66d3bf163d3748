/**
 * Independent HBONE peers for the interop tests: a Go program on the
 * standard library only (`go/`, client and server) and a Python client on
 * `ssl` + `h2` (`py/`). They share no code with ambit; they are found at
 * Debian's paths (/usr/bin/go, /usr/bin/python3 with python3-h2) and the
 * tests that need one are skipped, saying so, when it is missing.
 *
 * @module
 */

const GO = "/usr/bin/go";
const PYTHON = "/usr/bin/python3";
const HERE = new URL(".", import.meta.url).pathname;

async function works(cmd: string, args: string[]): Promise<boolean> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).output();
    return out.success;
  } catch {
    return false;
  }
}

/** Whether Debian's Go toolchain is installed. */
export const haveGo: boolean = await works(GO, ["version"]);
/** Whether Debian's python3 with the h2 library is installed. */
export const havePythonH2: boolean = await works(PYTHON, ["-c", "import ssl, h2.connection"]);

if (!haveGo) {
  console.warn(
    `interop: ${GO} not found; the Go HBONE interop tests are skipped (apt-get install golang-go)`,
  );
}
if (!havePythonH2) {
  console.warn(
    `interop: ${PYTHON} with h2 not found; the Python HBONE interop test is skipped ` +
      "(apt-get install python3-h2)",
  );
}

let built: Promise<string> | undefined;

/** Builds `go/` once per test run into a temporary directory; resolves to the binary. */
export function goPeer(): Promise<string> {
  built ??= buildGoPeer();
  return built;
}

async function buildGoPeer(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "ambit-interop-go-" });
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* already gone */ }
  });
  const bin = `${dir}/hbonepeer`;
  const env: Record<string, string> = {
    GOCACHE: await goCache(dir),
    GOPATH: `${dir}/gopath`,
    GOTOOLCHAIN: "local",
    GO111MODULE: "on",
    GOFLAGS: "",
    GOPROXY: "off",
    GOWORK: "off",
  };
  const build = (extra: Record<string, string>) =>
    new Deno.Command(GO, {
      args: ["build", "-o", bin, "."],
      cwd: `${HERE}go`,
      env: { ...env, ...extra },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output();
  // The default uses the prebuilt cgo standard library (fast); without a C
  // compiler that fails, and a pure-Go build (slower, once) is the fallback.
  let out = await build({});
  if (!out.success) out = await build({ CGO_ENABLED: "0" });
  if (!out.success) {
    throw new Error(
      `go build of tests/interop/go failed:\n${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return bin;
}

/** A persistent build cache when the user has one, else one inside `dir`. */
async function goCache(dir: string): Promise<string> {
  const home = Deno.env.get("HOME");
  const base = Deno.env.get("XDG_CACHE_HOME") || (home ? `${home}/.cache` : undefined);
  if (base) {
    const cache = `${base}/ambit-interop-go-build`;
    try {
      await Deno.mkdir(cache, { recursive: true });
      await Deno.writeTextFile(`${cache}/.probe`, "");
      return cache;
    } catch { /* not writable: fall through */ }
  }
  return `${dir}/gocache`;
}

/** Certificate, key and trust bundle as files, for the peers. */
export interface CredFiles {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
}

/** Writes PEM credentials (from `mesh.issue`) to `dir/name.*`. */
export async function writeCreds(
  dir: string,
  name: string,
  creds: { certPem: string; keyPem: string; caPem: string },
): Promise<CredFiles> {
  const files = { cert: `${dir}/${name}.crt`, key: `${dir}/${name}.key`, ca: `${dir}/${name}.ca` };
  await Deno.writeTextFile(files.cert, creds.certPem);
  await Deno.writeTextFile(files.key, creds.keyPem, { mode: 0o600 });
  await Deno.writeTextFile(files.ca, creds.caPem);
  return files;
}

/** One case for a peer client; see go/client.go and py/hbone_client.py. */
export interface ClientCase {
  readonly name: string;
  /** Go only: what to do with the tunnel (Python always sends, half-closes and reads). */
  readonly op?:
    | "echo"
    | "early"
    | "earlyclose"
    | "nobody"
    | "reset"
    | "bulk"
    | "halfclose"
    | "status"
    | "parallel";
  readonly authority: string;
  readonly send?: string;
  readonly bytes?: number;
  readonly prefix?: string;
  readonly streams?: number;
  /** Go echo: idle this long, then echo `send` again. Python: sleep this long unread. */
  readonly holdMs?: number;
  /** Go: this case's deadline (default the spec's, 15 s). */
  readonly timeoutMs?: number;
}

/** What the peer client reported for one case. */
export interface CaseResult {
  name: string;
  status?: number;
  proto?: string;
  body?: string;
  tail?: string;
  peer?: string[];
  tlsVersion?: string;
  cipher?: string;
  alpn?: string;
  sent?: number;
  recv?: number;
  sentSha?: string;
  recvSha?: string;
  prefixOk?: boolean;
  ok?: number;
  handshakes?: number;
  /** Go: how long the case took. */
  ms?: number;
  reset?: number;
  /** Python: the server's SETTINGS and the connection window it granted. */
  settings?: Record<string, number>;
  error?: string;
}

/** Specification handed to a peer client on stdin. */
export interface ClientSpec extends CredFiles {
  readonly addr: string;
  readonly sni?: string;
  readonly expect?: string;
  /** Go only: "1.2" offers TLS 1.2 and nothing newer. */
  readonly maxTls?: "1.2";
  readonly timeoutMs?: number;
  readonly cases: readonly ClientCase[];
}

/** Runs the Go client to completion; results by case name (plus "summary"). */
export async function runGoClient(spec: ClientSpec): Promise<Record<string, CaseResult>> {
  return runClient(await goPeer(), ["client"], spec);
}

/** Runs the Python h2 client to completion; results by case name (plus "summary"). */
export function runPythonClient(spec: ClientSpec): Promise<Record<string, CaseResult>> {
  return runClient(PYTHON, [`${HERE}py/hbone_client.py`], spec);
}

async function runClient(
  cmd: string,
  args: string[],
  spec: ClientSpec,
): Promise<Record<string, CaseResult>> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    // Killed if it hangs; the output below then says how far it got.
    signal: AbortSignal.timeout(40_000),
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(spec)));
  await w.close();
  const out = await child.output();
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout);
  const results: Record<string, CaseResult> = {};
  for (const line of stdout.split("\n").filter(Boolean)) {
    const r = JSON.parse(line) as CaseResult;
    results[r.name] = r;
  }
  if (!out.success || !results.summary) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited with ${out.code} (signal ${out.signal}):\n` +
        `${stdout}\n${dec.decode(out.stderr)}`,
    );
  }
  return results;
}

/** A line the Go server printed: `listening`, `conn`, `connect` or `closed`. */
export interface ServerEvent {
  event: string;
  addr?: string;
  n?: number;
  method?: string;
  proto?: string;
  authority?: string;
  peer?: string[];
  status?: number;
  error?: string;
  headers?: Record<string, string>;
  up?: number;
  down?: number;
}

/** A running Go HBONE server. */
export interface GoServer {
  /** The bound `ip:port`. */
  readonly addr: string;
  readonly ip: string;
  readonly port: number;
  /** Everything it printed so far, in order. */
  readonly events: ServerEvent[];
  /** Its stderr so far (for failure messages). */
  stderr(): string;
  /** Stops it and waits for it to exit. */
  close(): Promise<void>;
}

/**
 * Starts the Go HBONE server on `listen` (a loopback `ip:port`, port 0 for
 * any) with `creds` as its certificate; resolves once it is listening.
 */
export async function startGoServer(
  listen: string,
  creds: CredFiles,
  opts: { trustDomain?: string } = {},
): Promise<GoServer> {
  const args = [
    "server",
    "-listen",
    listen,
    "-cert",
    creds.cert,
    "-key",
    creds.key,
    "-ca",
    creds.ca,
  ];
  if (opts.trustDomain) args.push("-trust-domain", opts.trustDomain);
  const child = new Deno.Command(await goPeer(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const events: ServerEvent[] = [];
  let err = "";
  let onEvent = () => {};
  const stdoutDone = readLines(child.stdout, (line) => {
    events.push(JSON.parse(line));
    onEvent();
  });
  const stderrDone = readLines(child.stderr, (line) => err += line + "\n");
  const status = child.status;
  let exited = false;
  status.then(() => exited = true);
  const stop = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch { /* exited meanwhile */ }
    }
    await status;
    await Promise.all([stdoutDone, stderrDone]);
  };
  try {
    const listening = await new Promise<ServerEvent>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no 'listening' line within 10 s")), 10_000);
      onEvent = () => {
        const l = events.find((e) => e.event === "listening");
        if (l) {
          clearTimeout(timer);
          resolve(l);
        }
      };
      status.then((s) => {
        clearTimeout(timer);
        reject(new Error(`exited with ${s.code} before listening`));
      });
    });
    onEvent = () => {};
    const addr = listening.addr!;
    const i = addr.lastIndexOf(":");
    return {
      addr,
      ip: addr.slice(0, i),
      port: Number(addr.slice(i + 1)),
      events,
      stderr: () => err,
      close: stop,
    };
  } catch (e) {
    await stop();
    throw new Error(`Go HBONE server on ${listen}: ${(e as Error).message}\n${err}`);
  }
}

async function readLines(stream: ReadableStream<Uint8Array>, fn: (line: string) => void) {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line) fn(line);
    }
  }
  if (buf) fn(buf);
}
