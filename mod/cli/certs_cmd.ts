/**
 * `ambit certs`: the identities a running node holds, read from its admin API.
 *
 * @module
 */
import type { CertStatus } from "../identity/cert_manager.ts";
import { type Command, EXIT_FAILURE, EXIT_OK, outputOption } from "./command.ts";
import { ADMIN_CLIENT_OPTION, readAdmin } from "./admin_client.ts";
import { table } from "./table.ts";

/** `ambit certs`. */
export const certsCommand: Command = {
  name: "certs",
  summary: "Show the certificates a running node holds (identity, state, serial, expiry)",
  options: {
    admin: ADMIN_CLIENT_OPTION,
    output: outputOption(),
  },
  examples: ["ambit certs", "ambit certs --admin 127.0.1.1:15000 --output json"],
  async run(ctx) {
    const body = await readAdmin(ctx, "/certs", "certs") as {
      node: string;
      identities: CertStatus[];
      trustBundle: { subject: string; notAfter: string }[];
    } | undefined;
    if (!body) return EXIT_FAILURE;
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
    for (const line of table(rows)) ctx.out(line);
    for (const r of body.trustBundle) ctx.out(`trust root: ${r.subject} (expires ${r.notAfter})`);
    return EXIT_OK;
  },
};
