/**
 * The ztunnel's listener and telemetry flags: where metrics, readiness,
 * DNS and the explicit proxies listen, the access log and the drain time.
 *
 * @module
 */
import { parseDuration } from "../config/formats.ts";
import { type Context, type OptionSpec, parseHostPort, UsageError } from "./command.ts";

/** Flags of `ambit ztunnel` beyond config, node and identity. */
export const ZTUNNEL_LISTEN_OPTIONS: Readonly<Record<string, OptionSpec>> = {
  metrics: {
    type: "string",
    arg: "HOST:PORT",
    description:
      "Prometheus /metrics and /stats/prometheus; 'off' disables (default <node address>:15020)",
  },
  readiness: {
    type: "string",
    arg: "HOST:PORT",
    description: "readiness GET /healthz/ready; 'off' disables (default <node address>:15021)",
  },
  dns: {
    type: "string",
    arg: "HOST:PORT",
    description: "DNS proxy, UDP and TCP; 'off' disables",
    default: "127.0.0.1:15053",
  },
  socks5: {
    type: "string",
    arg: "HOST:PORT",
    description: "SOCKS5 proxy for apps that honour ALL_PROXY; 'off' disables",
    default: "127.0.0.1:15080",
  },
  "http-proxy": {
    type: "string",
    arg: "HOST:PORT",
    description:
      "HTTP proxy (CONNECT and http:// requests) for HTTPS_PROXY/HTTP_PROXY; 'off' disables",
    default: "127.0.0.1:15081",
  },
  "access-log": {
    type: "string",
    arg: "stderr|off|PATH",
    description: "one line per connection: with the logs (stderr), off, or appended to a file",
    default: "stderr",
  },
  drain: {
    type: "string",
    arg: "DURATION",
    description: "on SIGTERM or POST /quitquitquit, how long live connections may finish",
    default: "5s",
  },
};

/** A listen address flag: undefined when "off", `HOST:PORT` parsed, else `fallback`. */
export function listenFlag(
  ctx: Context,
  flag: string,
  fallback?: { hostname: string; port: number },
): { hostname: string; port: number } | undefined {
  const v = ctx.options[flag] as string | undefined;
  if (v === "off") return undefined;
  if (v === undefined || v === "") return fallback;
  return parseHostPort(v, flag);
}

/** `--drain` in milliseconds. */
export function drainMs(ctx: Context): number {
  const v = String(ctx.options.drain ?? "5s");
  const ms = parseDuration(v);
  if (ms === undefined) {
    throw new UsageError(`--drain "${v}" is not a duration (e.g. 5s, 500ms, 1m)`);
  }
  return ms;
}
