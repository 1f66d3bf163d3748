/**
 * `ambit lab`: the embedded demo.
 *
 * @module
 */
import type { Command } from "./command.ts";

/** `ambit lab`. */
export const labCommand: Command = {
  name: "lab",
  summary: "Run the embedded demo lab on loopback (no root needed)",
  subcommands: [],
};
