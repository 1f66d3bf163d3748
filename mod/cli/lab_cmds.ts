/**
 * `ambit lab`: the embedded demo.
 *
 * @module
 */
import { runLab } from "../lab/lab.ts";
import type { Command } from "./command.ts";

/** `ambit lab`. */
export const labCommand: Command = {
  name: "lab",
  summary: "Run the embedded demo lab on loopback (no root needed)",
  description: `
Writes the embedded lab config (the same as config/lab) to a temporary
directory, starts two ztunnels and the shop waypoint as real processes on
loopback addresses, enrolls a namespace by hot reload, and stops them.`,
  options: {
    dir: {
      type: "string",
      arg: "DIR",
      description: "keep the lab's files in DIR instead of a temporary directory",
    },
  },
  run(ctx) {
    return runLab({ out: ctx.out, dir: ctx.options.dir as string | undefined });
  },
};
