/**
 * `ambit certs`: the identities a running node holds, read from its admin API.
 *
 * @module
 */
import type { CertStatus } from "../identity/cert_manager.ts";
import { type Command, EXIT_FAILURE, EXIT_OK, outputOption } from "./command.ts";

/** `ambit certs`. */
export const certsCommand: Command = {
  name: "certs",
  summary: "Show the certificates a running node holds (identity, state, serial, expiry)",
  options: {
    admin: {
      type: "string",
      arg: "HOST:PORT",
      description: "the node's admin API",
      default: "127.0.0.1:15000",
    },
    output: outputOption(),
  },
  examples: ["ambit certs", "ambit certs --admin 127.0.1.1:15000 --output json"],
  async run(ctx) {
    const url = `http://${ctx.options.admin}/certs`;
    let body: {
      node: string;
      identities: CertStatus[];
      trustBundle: { subject: string; notAfter: string }[];
    };
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
      body = await res.json();
    } catch (e) {
      ctx.out(
        `ambit certs: cannot read ${url}: ${
          (e as Error).message
        } (is the node running, with --admin ${ctx.options.admin}?)`,
      );
      return EXIT_FAILURE;
    }
    if (ctx.options.output === "json") {
      ctx.out(JSON.stringify(body, null, 2));
      return EXIT_OK;
    }
    ctx.out(`node ${body.node}`);
    const rows = [["IDENTITY", "STATE", "SERIAL", "NOT AFTER", "NEXT ATTEMPT"]];
    for (const c of body.identities) {
      rows.push([
        c.id,
        c.state + (c.failures ? ` (${c.failures} failures)` : ""),
        c.serial ?? "-",
        c.notAfter ?? "-",
        c.nextAttempt ?? "-",
      ]);
    }
    const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows) ctx.out(r.map((c, i) => c.padEnd(w[i])).join("  ").trimEnd());
    for (const r of body.trustBundle) ctx.out(`trust root: ${r.subject} (expires ${r.notAfter})`);
    return EXIT_OK;
  },
};
