/**
 * `wrk` for the waypoint benchmark's maximum request rate: run as a child the
 * benchmark stops on error or signal (its output to a log file), and its
 * report parsed (Requests/sec, the `--latency` percentiles, socket errors,
 * non-2xx answers).
 *
 * @module
 */
import { Proc } from "./_bench_proc.ts";
import type { HostPort } from "./_bench_waypoint_paths.ts";

/** What one `wrk` run measured. */
export interface WrkResult {
  requestsPerSecond: number;
  requests: number;
  seconds: number;
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** Answers other than 2xx and 3xx. */
  non2xx: number;
  /** connect + read + write + timeout errors. */
  socketErrors: number;
  socketErrorDetail?: string;
  error?: string;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

/** Milliseconds from wrk's `123.45us`, `1.20ms`, `2.00s`; NaN when it is not one. */
export function wrkDurationMs(s: string): number {
  const m = s.trim().match(/^(\d+(?:\.\d+)?)(us|ms|s|m)$/);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
}

/** Parses the report of `wrk --latency`. */
export function parseWrk(text: string): WrkResult {
  const num = (re: RegExp) => {
    const m = text.match(re);
    return m ? Number(m[1]) : NaN;
  };
  const pctMs = (p: number) => {
    const m = text.match(new RegExp(`^\\s*${p}%\\s+(\\S+)`, "m"));
    return m ? Math.round(wrkDurationMs(m[1]) * 1000) / 1000 : NaN;
  };
  const done = text.match(/^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),/m);
  const sock = text.match(
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/,
  );
  const socketErrors = sock ? sock.slice(1).reduce((a, x) => a + Number(x), 0) : 0;
  const r: WrkResult = {
    requestsPerSecond: num(/^Requests\/sec:\s+([\d.]+)/m),
    requests: done ? Number(done[1]) : NaN,
    seconds: done ? wrkDurationMs(done[2] + done[3]) / 1000 : NaN,
    p50Ms: pctMs(50),
    p75Ms: pctMs(75),
    p90Ms: pctMs(90),
    p99Ms: pctMs(99),
    non2xx: num(/Non-2xx or 3xx responses:\s+(\d+)/) || 0,
    socketErrors,
  };
  if (sock && socketErrors > 0) r.socketErrorDetail = sock[0];
  if (!Number.isFinite(r.requestsPerSecond)) r.error = `no Requests/sec in wrk's output:\n${text}`;
  return r;
}

/** Runs `wrk -t THREADS -c CONNS -d SECONDS --latency http://to/PATH`; its output goes to `log`. */
export async function runWrk(
  to: HostPort,
  opts: { path: string; threads: number; connections: number; seconds: number; log: string },
): Promise<WrkResult> {
  await Deno.writeTextFile(opts.log, "");
  const p = await Proc.start("wrk", [
    "wrk",
    "-t",
    String(opts.threads),
    "-c",
    String(opts.connections),
    "-d",
    `${opts.seconds}s`,
    "--timeout",
    "5s",
    "--latency",
    `http://${to.hostname}:${to.port}${opts.path}`,
  ], opts.log);
  const deadline = Date.now() + (opts.seconds + 30) * 1000;
  while (!p.exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const timedOut = !p.exited;
  const code = await p.stop();
  const text = await Deno.readTextFile(opts.log);
  if (timedOut) return { ...parseWrk(text), error: `wrk did not finish in time:\n${text}` };
  if (code !== 0) return { ...parseWrk(text), error: `wrk exited with ${code}:\n${text}` };
  return parseWrk(text);
}
