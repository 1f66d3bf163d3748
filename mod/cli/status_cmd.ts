/**
 * `ambit status`: what a running node is doing, from its admin API:
 * readiness and what is pending, workloads with identity and certificate
 * state, live connections and outbound listeners. With `--wait-ready` it is
 * the readiness probe of the systemd units (ExecStartPost): it polls until
 * the node, or with `--pid` one given process, says it is ready.
 *
 * @module
 */
import {
  type Command,
  type Context,
  EXIT_FAILURE,
  EXIT_OK,
  outputOption,
  parseHostPort,
  UsageError,
} from "./command.ts";
import { ADMIN_CLIENT_OPTION, readAdmin } from "./admin_client.ts";
import { table } from "./table.ts";
import { parseDuration } from "../config/formats.ts";
import { probeReady } from "../admin/owner.ts";

interface WorkloadsView {
  node: string;
  address: string;
  workloads: {
    key: string;
    identity: string;
    address: string;
    certificate: string;
    services: string[];
  }[];
  connections: { inbound: number; outbound: number };
  outboundListeners: string[];
}

/** How often `--wait-ready` asks. */
const POLL_MS = 200;
/** The longest one `--wait-ready` attempt may take (a process that accepts but does not answer). */
const ATTEMPT_MS = 1000;
/** The shortest: the last attempt before the deadline still gets this long. */
const MIN_ATTEMPT_MS = 100;

/** Raised when `--wait-ready` reaches its deadline; says what was last seen. */
export class NotReadyError extends Error {
  override readonly name = "NotReadyError";
  readonly code = "ENOTREADY";
}

/** What one `GET /ready` attempt saw. */
type Attempt =
  | { ready: true; pid: number }
  | { ready: false; why: string; timedOut?: boolean };

/** `ambit status`. */
export const statusCommand: Command = {
  name: "status",
  summary: "Show a running node: readiness, workloads, certificates, connections",
  description: `
Reads the node's admin API (--admin). Exit status: 0 when the node is ready,
1 when it is not ready or cannot be reached.

With --wait-ready it asks GET /ready every 200 ms, each time on a new
connection, until the node says it is ready (exit 0, one line: which pid and
after how long) or the time is up (exit 1, with what was still pending). With
--pid only an answer from that process counts: during an upgrade two
processes share the admin port and the kernel spreads connections over both.
The systemd units run it as ExecStartPost with --pid $MAINPID.`,
  options: {
    admin: ADMIN_CLIENT_OPTION,
    output: outputOption(),
    "wait-ready": {
      type: "string",
      arg: "DURATION",
      description: "wait until ready, at most DURATION (e.g. 60s); print only the result",
    },
    pid: {
      type: "string",
      arg: "PID",
      description: "with --wait-ready: wait for this process to answer ready",
    },
  },
  examples: [
    "ambit status",
    "ambit status --admin 127.0.1.1:15000 --output json",
    "ambit status --wait-ready 60s --pid 4242",
  ],
  async run(ctx) {
    if (ctx.options["wait-ready"] !== undefined) return await waitReady(ctx);
    if (ctx.options.pid !== undefined) {
      throw new UsageError("--pid needs --wait-ready (e.g. --wait-ready 60s --pid 4242)");
    }
    return await showStatus(ctx);
  },
};

/** The status table (or JSON) of a running node. */
async function showStatus(ctx: Context): Promise<number> {
  const ready = await readAdmin(ctx, "/ready", "status") as
    | { ready: boolean; pending: string[] }
    | undefined;
  if (!ready) return EXIT_FAILURE;
  const view = await readAdmin(ctx, "/workloads", "status") as WorkloadsView | undefined;
  if (!view) return EXIT_FAILURE;
  if (ctx.options.output === "json") {
    ctx.out(JSON.stringify({ ...view, ready: ready.ready, pending: ready.pending }, null, 2));
    return ready.ready ? EXIT_OK : EXIT_FAILURE;
  }
  ctx.out(`node ${view.node} (${view.address}): ${ready.ready ? "ready" : "NOT READY"}`);
  for (const p of ready.pending) ctx.out(`  pending: ${p}`);
  ctx.out(
    `connections: ${view.connections.inbound} inbound, ${view.connections.outbound} outbound; ` +
      `${view.outboundListeners.length} outbound listeners`,
  );
  if (view.workloads.length === 0) {
    ctx.out("no enrolled workloads on this node");
  } else {
    const rows = [["WORKLOAD", "ADDRESS", "IDENTITY", "CERTIFICATE", "SERVICES"]];
    for (const w of view.workloads) {
      rows.push([w.key, w.address, w.identity, w.certificate, w.services.join(",") || "-"]);
    }
    for (const line of table(rows)) ctx.out(line);
  }
  return ready.ready ? EXIT_OK : EXIT_FAILURE;
}

/** `--wait-ready`: polls until ready or the deadline; throws {@link NotReadyError} at the deadline. */
async function waitReady(ctx: Context): Promise<number> {
  const spec = String(ctx.options["wait-ready"]);
  const budget = parseDuration(spec);
  if (budget === undefined) {
    throw new UsageError(`--wait-ready "${spec}" is not a duration (e.g. 60s, 500ms, 2m)`);
  }
  const pid = parsePid(ctx.options.pid as string | undefined);
  const admin = String(ctx.options.admin);
  const at = parseHostPort(admin, "admin");
  const host = at.hostname.includes(":") ? `[${at.hostname}]` : at.hostname;
  const url = `http://${host}:${at.port}/ready`;
  const started = performance.now();
  const deadline = started + budget;
  let last: Attempt | undefined;
  while (true) {
    const attemptStart = performance.now();
    const timeoutMs = Math.max(MIN_ATTEMPT_MS, Math.min(ATTEMPT_MS, deadline - attemptStart));
    const seen = await askReady(at, url, pid, timeoutMs);
    // An attempt cut short by the deadline says less than the one before it.
    if (!(seen.ready === false && seen.timedOut && timeoutMs < ATTEMPT_MS && last)) last = seen;
    if (last.ready) {
      const ms = Math.round(performance.now() - started);
      if (ctx.options.output === "json") {
        ctx.out(JSON.stringify({ ready: true, pid: last.pid, ms }));
      } else ctx.out(`ready: pid ${last.pid} after ${ms} ms`);
      return EXIT_OK;
    }
    ctx.logger.debug("not ready yet", { admin, why: last.why });
    const now = performance.now();
    if (now >= deadline) break;
    const wait = Math.min(POLL_MS - (now - attemptStart), deadline - now);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const whose = pid === undefined ? "the node" : `process ${pid}`;
  throw new NotReadyError(
    `${whose} at --admin ${admin} was not ready within ${spec}: ${last.why}`,
  );
}

/** `--pid`: undefined, or a positive integer; anything else is a usage error. */
function parsePid(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(
      `--pid "${value}" is not a process id (a positive integer, e.g. --pid $MAINPID)`,
    );
  }
  return Number(value);
}

/** One `GET /ready` on a connection of its own ({@link probeReady}), as an {@link Attempt}. */
async function askReady(
  at: { hostname: string; port: number },
  url: string,
  pid: number | undefined,
  timeoutMs: number,
): Promise<Attempt> {
  const r = await probeReady(at, timeoutMs);
  if (r.kind === "error") {
    return {
      ready: false,
      why: `cannot read ${url}: ${r.message} (is the process running?)`,
      timedOut: r.timedOut,
    };
  }
  const body = r.body;
  if (!body) {
    return { ready: false, why: `${url} answered ${r.status}: ${r.text.trim().slice(0, 200)}` };
  }
  if (typeof body.ready !== "boolean" || typeof body.pid !== "number") {
    return { ready: false, why: `${url} answered ${r.status} without ready and pid: ${r.text}` };
  }
  if (pid !== undefined && body.pid !== pid) {
    return { ready: false, why: `only pid ${body.pid} answered (waiting for pid ${pid})` };
  }
  if (body.ready) return { ready: true, pid: body.pid };
  const pending = Array.isArray(body.pending) ? body.pending.map(String) : [];
  return {
    ready: false,
    why: `pid ${body.pid} pending: ${pending.join("; ") || "(nothing listed)"}`,
  };
}
