/**
 * `ambit check`: pre-flight diagnostics for a node role before it starts
 * (or while an older one runs): config, ports, certificates, CA, peers,
 * clock and the upgrade sysctl, each with what to do when it is not ok.
 *
 * @module
 */
import { isLoopbackIp, parseDuration } from "../config/formats.ts";
import type { CheckedRole, ListenChoice, ListenChoices } from "../check/listeners.ts";
import {
  type Command,
  type Context,
  type OptionSpec,
  outputOption,
  parseHostPort,
  requireOption,
  UsageError,
} from "./command.ts";
import { IDENTITY_OPTIONS } from "./identity_opts.ts";
import { listenFlag, ZTUNNEL_LISTEN_OPTIONS } from "./node_opts.ts";

const ztunnelOnly = (spec: OptionSpec): OptionSpec => ({
  ...spec,
  description: `${spec.description} (ztunnel only)`,
});

/** `ambit check`. */
export const checkCommand: Command = {
  name: "check",
  summary: "Pre-flight diagnostics for a node: config, ports, certificates, CA, peers, clock",
  description: `
Checks what a ztunnel (--node) or a waypoint (--waypoint) needs before it
starts, with the same flags it would run with:
  config        the files compile (errors as file:line); the node/waypoint is in them
  ports         every address it binds is on this host and free (or held by a
                running ambit of the same node: fine for an upgrade)
  certificates  the credential parses, its key matches, it chains to bundle.pem,
                it is this node's identity, it is valid and not near expiry
  ca            the CA service answers mutual TLS with the credential
  peers         every other node and waypoint answers HBONE on its address
  clock         this host's clock against the CA's
  upgrade       net.ipv4.tcp_migrate_req, for zero-downtime upgrades
Exit status: 0 nothing failed (warnings allowed), 1 a check failed, 2 usage.`,
  options: {
    config: {
      type: "string",
      short: "c",
      arg: "PATH",
      description: "mesh config file or directory",
    },
    node: {
      type: "string",
      short: "n",
      arg: "NAME",
      description: "check the ztunnel of this Node",
    },
    waypoint: {
      type: "string",
      arg: "NS/NAME",
      description: "check this waypoint (Gateway of class istio-waypoint) instead",
    },
    ...IDENTITY_OPTIONS,
    metrics: ZTUNNEL_LISTEN_OPTIONS.metrics,
    readiness: ZTUNNEL_LISTEN_OPTIONS.readiness,
    dns: ztunnelOnly(ZTUNNEL_LISTEN_OPTIONS.dns),
    socks5: ztunnelOnly(ZTUNNEL_LISTEN_OPTIONS.socks5),
    "http-proxy": ztunnelOnly(ZTUNNEL_LISTEN_OPTIONS["http-proxy"]),
    timeout: {
      type: "string",
      arg: "DURATION",
      description: "deadline of each network probe (connect and TLS handshake)",
      default: "2s",
    },
    "cert-warn": {
      type: "string",
      arg: "DURATION",
      description: "warn when a certificate expires within this long",
      default: "168h",
    },
    output: outputOption(),
  },
  examples: [
    "ambit check --config /etc/ambit/mesh --node node-a --credential /etc/ambit/node",
    "ambit check --config /etc/ambit/mesh --waypoint shop/waypoint --credential /etc/ambit/node",
    "ambit check --config config/lab --node node-a --ca-dir ./lab-ca --output json",
  ],
  async run(ctx) {
    const configPath = requireOption(ctx, "config");
    const role = checkedRole(ctx);
    const credentialDir = ctx.options.credential as string | undefined;
    const caDir = ctx.options["ca-dir"] as string | undefined;
    if (credentialDir && caDir) {
      throw new UsageError("give either --credential or --ca-dir, not both");
    }
    const caAddress = ctx.options["ca-address"] as string | undefined;
    if (caAddress !== undefined) parseHostPort(caAddress, "ca-address");
    const listen = listenChoices(ctx);
    const timeoutMs = positiveDuration(ctx, "timeout");
    const certWarnMs = positiveDuration(ctx, "cert-warn");
    // Loaded only by this command: the node roles do not carry the checks in memory.
    const [check, report, result] = await Promise.all([
      import("../check/run.ts"),
      import("../check/report.ts"),
      import("../check/result.ts"),
    ]);
    let results;
    try {
      results = await check.runChecks({
        configPath,
        role,
        credentialDir,
        caDir,
        caAddress,
        listen,
        timeoutMs,
        certWarnMs,
      });
    } catch (e) {
      if (e instanceof check.UnknownTargetError) throw new UsageError(e.message);
      throw e;
    }
    if (ctx.options.output === "json") {
      const name = role.role === "ztunnel" ? role.node : role.name;
      ctx.out(JSON.stringify(report.jsonReport(results, { role: role.role, name }), null, 2));
    } else {
      for (const line of report.textReport(results)) ctx.out(line);
    }
    return result.exitCodeFor(results);
  },
};

function checkedRole(ctx: Context): CheckedRole {
  const node = ctx.options.node as string | undefined;
  const waypoint = ctx.options.waypoint as string | undefined;
  if (node !== undefined && waypoint !== undefined) {
    throw new UsageError("give either --node or --waypoint, not both");
  }
  if (waypoint !== undefined) {
    if (!/^[^/]+\/[^/]+$/.test(waypoint)) {
      throw new UsageError(`--waypoint must be namespace/name, got "${waypoint}"`);
    }
    return { role: "waypoint", name: waypoint };
  }
  if (node === undefined || node === "") {
    throw new UsageError("missing --node NAME (or --waypoint NS/NAME)");
  }
  return { role: "ztunnel", node };
}

const DEFAULT = { hostname: "", port: -1 };

function listenChoices(ctx: Context): ListenChoices {
  const choice = (flag: string): ListenChoice => {
    const at = listenFlag(ctx, flag, DEFAULT);
    return at === undefined ? "off" : at === DEFAULT ? "default" : at;
  };
  const admin = choice("admin");
  if (
    typeof admin === "object" && !isLoopbackIp(admin.hostname) && admin.hostname !== "localhost"
  ) {
    throw new UsageError(
      `--admin ${admin.hostname} is not a loopback address; the admin API is local only`,
    );
  }
  return {
    admin,
    metrics: choice("metrics"),
    readiness: choice("readiness"),
    dns: choice("dns"),
    socks5: choice("socks5"),
    httpProxy: choice("http-proxy"),
  };
}

function positiveDuration(ctx: Context, flag: string): number {
  const v = String(ctx.options[flag]);
  const ms = parseDuration(v);
  if (ms === undefined || ms <= 0) {
    throw new UsageError(`--${flag} "${v}" is not a duration (e.g. 2s, 500ms, 168h)`);
  }
  return ms;
}
