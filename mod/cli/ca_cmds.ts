/**
 * `ambit ca`: the built-in certificate authority.
 *
 * @module
 */
import type { Command } from "./command.ts";

/** `ambit ca`. */
export const caCommand: Command = {
  name: "ca",
  summary: "The built-in certificate authority: init, issue, serve",
  subcommands: [],
};
