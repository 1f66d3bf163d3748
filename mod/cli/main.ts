/**
 * The `ambit` command tree.
 *
 * @module
 */
import { type Command, EXIT_OK, outputOption, runCli } from "./command.ts";
import { configCommand, validateCommand } from "./config_cmds.ts";
import { waypointCommand, ztunnelCommand } from "./role_cmds.ts";
import { caCommand } from "./ca_cmds.ts";
import { certsCommand } from "./certs_cmd.ts";
import { statusCommand } from "./status_cmd.ts";
import { checkCommand } from "./check_cmd.ts";
import { labCommand } from "./lab_cmds.ts";
import { VERSION } from "../version.ts";

const versionCommand: Command = {
  name: "version",
  summary: "Print ambit's version and the runtime's",
  options: {
    output: outputOption(),
  },
  run(ctx) {
    const v = {
      ambit: VERSION,
      deno: Deno.version.deno,
      v8: Deno.version.v8,
      typescript: Deno.version.typescript,
    };
    ctx.out(
      ctx.options.output === "json"
        ? JSON.stringify(v)
        : `ambit ${v.ambit} (deno ${v.deno}, v8 ${v.v8}, typescript ${v.typescript})`,
    );
    return EXIT_OK;
  },
};

/** The root command. */
export const rootCommand: Command = {
  name: "ambit",
  summary:
    "A service mesh for hosts without Kubernetes: Istio's ambient design (ztunnel + waypoint)",
  description: `
One binary, two roles: 'ztunnel' on every host (identity, mTLS via HBONE on
port 15008, L4 policy, TCP telemetry) and optional 'waypoint' proxies (L7).
Config is Kubernetes/Istio/Gateway API YAML in files, hot-reloaded.
Exit status: 0 ok, 1 runtime failure, 2 usage or config error.`,
  subcommands: [
    ztunnelCommand,
    waypointCommand,
    caCommand,
    statusCommand,
    checkCommand,
    certsCommand,
    validateCommand,
    configCommand,
    labCommand,
    versionCommand,
  ],
  examples: [
    "ambit lab",
    "ambit validate config/lab",
    "ambit ztunnel --config config/lab --node node-a",
  ],
};

/** Runs the CLI with `args`; returns the exit code. */
export function main(args: readonly string[]): Promise<number> {
  return runCli(rootCommand, args);
}
