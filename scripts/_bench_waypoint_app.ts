/**
 * The app of the waypoint benchmark (scripts/bench_waypoint.ts): an HTTP/1.1
 * server (`Deno.serve`, keep-alive) answering `GET /1k` with exactly 1024
 * bytes (`content-length: 1024`, `content-type: application/octet-stream`)
 * and anything else with 404. Prints `ready` once it listens and exits when
 * its stdin closes, so it never outlives the benchmark.
 *
 *   deno run --allow-net scripts/_bench_waypoint_app.ts --listen IP:PORT
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The body of `GET /1k`. */
export const BODY_1K: Uint8Array<ArrayBuffer> = new Uint8Array(1024).fill(0x6b);

/** Answers `GET /1k` with {@link BODY_1K}, anything else with 404. */
export function handle(req: Request): Response {
  const path = new URL(req.url).pathname;
  if (req.method === "GET" && path === "/1k") {
    return new Response(BODY_1K, { headers: { "content-type": "application/octet-stream" } });
  }
  return new Response("not found\n", { status: 404 });
}

function listenAddress(s: string | undefined): { hostname: string; port: number } {
  const m = s?.match(/^(127\.\d+\.\d+\.\d+):(\d+)$/);
  if (!m) throw new RangeError(`--listen "${s}" is not a loopback IPv4 address:port`);
  return { hostname: m[1], port: Number(m[2]) };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { listen: { type: "string" } } });
  const { hostname, port } = listenAddress(values.listen);
  Deno.serve({ hostname, port, onListen: () => console.log("ready") }, handle);
  // Ends when the benchmark closes our stdin (or goes away); kept-alive clients are not waited for.
  await Deno.stdin.readable.getReader().read().catch(() => {});
  Deno.exit(0);
}
