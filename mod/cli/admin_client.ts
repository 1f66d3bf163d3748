/**
 * Reading a running node's admin API from the CLI (`ambit status`,
 * `ambit certs`, `ambit config dump` without --config).
 *
 * @module
 */
import { type Context, type OptionSpec, parseHostPort } from "./command.ts";

/** `--admin HOST:PORT` of the commands that read a running node. */
export const ADMIN_CLIENT_OPTION: OptionSpec = {
  type: "string",
  arg: "HOST:PORT",
  description: "the node's admin API",
  default: "127.0.0.1:15000",
};

/**
 * GETs `path` from the admin API named by `--admin`; prints a message that
 * says what to check and returns undefined when the node cannot be read.
 */
export async function readAdmin(
  ctx: Context,
  path: string,
  what: string,
): Promise<unknown | undefined> {
  parseHostPort(String(ctx.options.admin), "admin");
  const url = `http://${ctx.options.admin}${path}`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${res.status} ${text.trim()}`);
    return JSON.parse(text);
  } catch (e) {
    ctx.out(
      `ambit ${what}: cannot read ${url}: ${(e as Error).message} ` +
        `(is the node running, with --admin ${ctx.options.admin}?)`,
    );
    return undefined;
  }
}
