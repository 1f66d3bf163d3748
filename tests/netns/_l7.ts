/**
 * HTTP app and client for the waypoint steps of the multi-host bed, run in
 * a host's namespace with `ip netns exec`.
 *
 * ```text
 * deno run --allow-net _l7.ts serve NAME IP PORT
 *     HTTP/1.1 app: answers "NAME METHOD PATH"; NAME decides the behaviour:
 *     "*-flaky" answers 503 to every other request, "*-slow" waits 2 s,
 *     "*-bad" always answers 503. Prints {"event":"listening"} when up.
 * deno run --allow-net _l7.ts client JSON
 *     runs the requests in JSON ([{ip, port, path, method?, headers?, repeat?}])
 *     over kept-alive connections, prints one JSON line: per request spec,
 *     the statuses, the bodies' first words counted, the last headers, ms.
 * ```
 *
 * @module
 */
import http from "node:http";

/** One request of the client, repeated `repeat` times. */
export interface L7Request {
  readonly ip: string;
  readonly port: number;
  readonly path: string;
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly repeat?: number;
}

/** What the client prints per request spec. */
export interface L7Result {
  readonly statuses: number[];
  /** First word of each body, counted. */
  readonly bodies: Record<string, number>;
  readonly lastBody: string;
  readonly lastHeaders: Record<string, string | string[] | undefined>;
  /** Milliseconds of the last request. */
  readonly lastMs: number;
  readonly errors: string[];
}

function serve(name: string, ip: string, port: number): void {
  let n = 0;
  const srv = http.createServer((req, res): void => {
    n++;
    console.log(JSON.stringify({ event: "hit", name, path: req.url }));
    if (name.endsWith("-bad")) return void res.writeHead(503).end("bad");
    if (name.endsWith("-flaky") && n % 2 === 1) return void res.writeHead(503).end("flaky");
    if (name.endsWith("-slow")) {
      const t = setTimeout(() => res.end(`${name} slow`), 2000);
      res.on("close", () => clearTimeout(t));
      return;
    }
    res.setHeader("x-saw-xfcc", String(req.headers["x-forwarded-client-cert"] ?? ""));
    res.setHeader("x-saw-traceparent", String(req.headers.traceparent ?? ""));
    res.end(`${name} ${req.method} ${req.url}`);
  });
  srv.listen(
    port,
    ip,
    () => console.log(JSON.stringify({ event: "listening", name, address: `${ip}:${port}` })),
  );
}

async function client(specs: L7Request[]): Promise<L7Result[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const one = (s: L7Request) =>
    new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>(
      (resolve, reject) => {
        const req = http.request(
          {
            host: s.ip,
            port: s.port,
            path: s.path,
            method: s.method ?? "GET",
            headers: s.headers,
            agent,
          },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (d: string) => body += d);
            res.on(
              "end",
              () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      },
    );
  const out: L7Result[] = [];
  for (const s of specs) {
    const r: L7Result = {
      statuses: [],
      bodies: {},
      lastBody: "",
      lastHeaders: {},
      lastMs: 0,
      errors: [],
    };
    for (let i = 0; i < (s.repeat ?? 1); i++) {
      const t0 = performance.now();
      try {
        const x = await one(s);
        r.statuses.push(x.status);
        const w = x.body.split(" ")[0];
        r.bodies[w] = (r.bodies[w] ?? 0) + 1;
        (r as { lastBody: string }).lastBody = x.body.trim();
        (r as { lastHeaders: unknown }).lastHeaders = x.headers;
      } catch (e) {
        r.errors.push((e as Error).message);
      }
      (r as { lastMs: number }).lastMs = performance.now() - t0;
    }
    out.push(r);
  }
  agent.destroy();
  return out;
}

if (import.meta.main) {
  const [mode, ...args] = Deno.args;
  if (mode === "serve") serve(args[0], args[1], Number(args[2]));
  else if (mode === "client") console.log(JSON.stringify(await client(JSON.parse(args[0]))));
  else {
    console.error("usage: _l7.ts serve NAME IP PORT | client JSON");
    Deno.exit(2);
  }
}
