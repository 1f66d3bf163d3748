/**
 * `ambit validate` and `ambit config dump`: the config pipeline from the
 * command line.
 *
 * @module
 */
import { stringify } from "yaml";
import { compilePath } from "../config/compile.ts";
import { dumpSnapshot } from "../config/dump.ts";
import { ConfigError, formatIssue } from "../config/load.ts";
import {
  type Command,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  outputOption,
  UsageError,
} from "./command.ts";
import { readAdmin } from "./admin_client.ts";

/** `ambit validate <path>`. */
export const validateCommand: Command = {
  name: "validate",
  summary: "Check a mesh config (a file or a directory of YAML) and report every problem",
  usage: "<path>",
  positionals: [1, 1],
  description: `
Parses every YAML document, checks each resource against its schema, applies
defaults, checks references between resources, and compiles the snapshot a
node would run. Every problem is reported at once as
  file:line field.path: message (hint)
Exit status: 0 valid (warnings allowed unless --strict), 2 invalid.`,
  options: {
    output: outputOption(),
    strict: { type: "boolean", description: "treat warnings as errors" },
  },
  examples: ["ambit validate config/lab", "ambit validate --output json mesh.yaml"],
  async run(ctx) {
    const path = ctx.args[0];
    const result = await compilePath(path);
    const errors = result.issues.filter((i) => i.severity === "error");
    const warnings = result.issues.filter((i) => i.severity === "warning");
    const failed = errors.length > 0 || (ctx.options.strict === true && warnings.length > 0);
    if (ctx.options.output === "json") {
      ctx.out(JSON.stringify({ valid: !failed, issues: result.issues }, null, 2));
    } else {
      for (const i of result.issues) ctx.out(formatIssue(i));
      const count = result.snapshot?.resources.length;
      ctx.out(
        `${path}: ${failed ? "invalid" : "valid"}` +
          (count !== undefined ? `, ${count} resources` : "") +
          `, ${errors.length} error${errors.length === 1 ? "" : "s"}, ` +
          `${warnings.length} warning${warnings.length === 1 ? "" : "s"}`,
      );
    }
    return failed ? EXIT_USAGE : EXIT_OK;
  },
};

/** `ambit config dump`. */
export const configCommand: Command = {
  name: "config",
  summary: "Inspect the compiled mesh config",
  subcommands: [{
    name: "dump",
    summary: "Print the compiled snapshot (what a node runs), from config files or a running node",
    description: `
With --config, compiles the files and prints the snapshot (for one node with
--node). Without --config, asks the running node's admin API (--admin) for
its effective config: the snapshot it runs, its certificates (no keys) and
the last reload error.`,
    options: {
      config: {
        type: "string",
        short: "c",
        arg: "PATH",
        description: "mesh config file or directory",
      },
      node: { type: "string", arg: "NAME", description: "only what this node needs" },
      admin: {
        type: "string",
        arg: "HOST:PORT",
        description: "a running node's admin API, read when --config is not given",
        default: "127.0.0.1:15000",
      },
      output: outputOption(["yaml", "json"]),
    },
    examples: [
      "ambit config dump --config config/lab --node node-a",
      "ambit config dump --admin 127.0.1.1:15000 --output json",
    ],
    async run(ctx) {
      const path = ctx.options.config as string | undefined;
      const print = (plain: unknown) =>
        ctx.out(
          ctx.options.output === "json"
            ? JSON.stringify(plain, null, 2)
            : stringify(plain).trimEnd(),
        );
      if (path === undefined) {
        const body = await readAdmin(ctx, "/config_dump", "config dump");
        if (body === undefined) return EXIT_FAILURE;
        const node = ctx.options.node as string | undefined;
        const running = (body as { node?: { name?: string } }).node?.name;
        if (node !== undefined && running !== node) {
          throw new UsageError(
            `the node at --admin ${ctx.options.admin} is "${running}", not "${node}"`,
          );
        }
        print(body);
        return EXIT_OK;
      }
      const result = await compilePath(path);
      if (!result.snapshot) throw new ConfigError(result.issues);
      const node = ctx.options.node as string | undefined;
      if (node !== undefined && !result.snapshot.nodes.has(node)) {
        throw new UsageError(
          `node "${node}" is not in the config (nodes: ${
            [...result.snapshot.nodes.keys()].join(", ") || "none"
          })`,
        );
      }
      const data = dumpSnapshot(result.snapshot, { node });
      print(JSON.parse(JSON.stringify(data)));
      return EXIT_OK;
    },
  }],
};
