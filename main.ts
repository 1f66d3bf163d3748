/**
 * `ambit` command-line entry point. Everything lives in `mod/`; this file only
 * runs the CLI and exits with its status.
 *
 * @module
 */
import { main } from "./mod/cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
