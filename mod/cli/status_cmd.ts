/**
 * `ambit status`: what a running node is doing, from its admin API:
 * readiness and what is pending, workloads with identity and certificate
 * state, live connections and outbound listeners.
 *
 * @module
 */
import { type Command, EXIT_FAILURE, EXIT_OK, outputOption } from "./command.ts";
import { ADMIN_CLIENT_OPTION, readAdmin } from "./admin_client.ts";
import { table } from "./table.ts";

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

/** `ambit status`. */
export const statusCommand: Command = {
  name: "status",
  summary: "Show a running node: readiness, workloads, certificates, connections",
  description: `
Reads the node's admin API (--admin). Exit status: 0 when the node is ready,
1 when it is not ready or cannot be reached.`,
  options: {
    admin: ADMIN_CLIENT_OPTION,
    output: outputOption(),
  },
  examples: ["ambit status", "ambit status --admin 127.0.1.1:15000 --output json"],
  async run(ctx) {
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
  },
};
