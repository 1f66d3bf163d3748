/**
 * `ambit lab`: the embedded demo; `lab up` leaves it running, `lab down`
 * stops it.
 *
 * @module
 */
// The lab's modules are loaded only by the lab commands (the node roles do not carry them).
import { defaultLabDir } from "../lab/lab_dir.ts";
import { type Command, EXIT_FAILURE } from "./command.ts";

const dirOption = {
  type: "string",
  arg: "DIR",
  description: "the lab's directory (default $XDG_RUNTIME_DIR/ambit-lab-<uid>, else /tmp/…)",
} as const;

/** `ambit lab up`. */
const labUpCommand: Command = {
  name: "up",
  summary: "Start the lab and leave it running for exploration",
  description: `
Runs the same demo as 'ambit lab', then leaves the two ztunnels, the
waypoint and the sample apps running in the background (a supervisor in its
own session) and prints where to look: admin APIs, metrics, DNS, SOCKS5 and
the log files in DIR/logs. 'ambit lab down' stops everything. Exit status 1
when a lab already runs in DIR or the lab did not come up.`,
  options: {
    dir: dirOption,
    foreground: {
      type: "boolean",
      description: "run the lab in this process until SIGTERM or Ctrl-C (what 'up' starts)",
    },
    "owns-dir": {
      type: "boolean",
      description: "(with --foreground) DIR is removed by 'lab down'",
    },
  },
  examples: ["ambit lab up", "ambit lab up --dir /tmp/lab && ambit status --admin 127.0.1.1:15000"],
  async run(ctx) {
    const dir = ctx.options.dir as string | undefined;
    const { labUp, LabRunningError, superviseLab } = await import("../lab/lab_up.ts");
    try {
      if (ctx.options.foreground) {
        return await superviseLab({
          dir: dir ?? defaultLabDir(),
          ownsDir: ctx.options["owns-dir"] === true,
          out: ctx.out,
        });
      }
      return await labUp({ dir, out: ctx.out });
    } catch (e) {
      if (e instanceof LabRunningError) {
        ctx.out(`ambit lab up: ${e.message}`);
        return EXIT_FAILURE;
      }
      throw e;
    }
  },
};

/** `ambit lab down`. */
const labDownCommand: Command = {
  name: "down",
  summary: "Stop the lab that 'ambit lab up' started",
  description: `
Stops the lab supervisor (which stops the nodes with SIGTERM and closes the
sample apps), checks that every process it started is gone (SIGKILL after a
grace period), and removes the lab directory when 'lab up' created it.
Exit status 1 when a process would not stop; 0 when no lab runs.`,
  options: { dir: dirOption },
  examples: ["ambit lab down", "ambit lab down --dir /tmp/lab"],
  async run(ctx) {
    const { labDown } = await import("../lab/lab_up.ts");
    return await labDown({ dir: ctx.options.dir as string | undefined, out: ctx.out });
  },
};

/** `ambit lab`. */
export const labCommand: Command = {
  name: "lab",
  summary: "Run the embedded demo lab on loopback (no root needed)",
  description: `
Writes the embedded lab config (the same as config/lab) to a temporary
directory, creates a CA, starts two ztunnels and the shop waypoint as real
processes on loopback addresses, sends traffic (identities, a policy deny,
an L7 canary split and an L7 deny, DNS and SOCKS5, metrics), enrolls a
namespace by hot reload, and stops them. 'ambit lab up' leaves it running.`,
  options: {
    dir: {
      type: "string",
      arg: "DIR",
      description: "keep the lab's files in DIR instead of a temporary directory",
    },
  },
  subcommands: [labUpCommand, labDownCommand],
  examples: ["ambit lab", "ambit lab up", "ambit lab down"],
  async run(ctx) {
    const { runLab } = await import("../lab/lab.ts");
    return await runLab({ out: ctx.out, dir: ctx.options.dir as string | undefined });
  },
};
