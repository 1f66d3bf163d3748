/**
 * `ambit ca`: create a CA, issue certificates offline, issue node
 * credentials, and serve signing requests on port 15012.
 *
 * @module
 */
import { parseDuration } from "../config/formats.ts";
import { ConfigStore } from "../config/store.ts";
import { CaDirError, initCaDir, loadCaDir } from "../identity/ca_dir.ts";
import { CaServer } from "../identity/ca_server.ts";
import { exportPrivateKeyPem, generateKeyPair, issueLeaf, toPem } from "../identity/certs.ts";
import { nodeId, parseSpiffeId, SpiffeIdError } from "../identity/spiffe.ts";
import { untilStopSignal } from "./signals.ts";
import { adminAddress } from "./identity_opts.ts";
import { serveAdmin } from "../admin/admin.ts";
import { caFamilies } from "../identity/metrics.ts";
import { renderPrometheus } from "../telemetry/prometheus.ts";
import {
  type Command,
  type Context,
  EXIT_OK,
  parseHostPort,
  requireOption,
  UsageError,
} from "./command.ts";

function duration(ctx: Context, name: string, fallback: string): number {
  const text = (ctx.options[name] as string | undefined) ?? fallback;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) {
    throw new UsageError(`--${name} "${text}" is not a duration (e.g. 24h, 90m)`);
  }
  return ms;
}

async function loadCa(dir: string) {
  try {
    return await loadCaDir(dir);
  } catch (e) {
    if (e instanceof CaDirError) throw new UsageError(e.message);
    throw e;
  }
}

/** Writes cert.pem, key.pem (0600) and bundle.pem into `out`, refusing to overwrite. */
async function writeCredential(
  out: string,
  cert: string,
  key: string,
  bundle: string,
): Promise<void> {
  await Deno.mkdir(out, { recursive: true, mode: 0o700 });
  for (const f of ["cert.pem", "key.pem", "bundle.pem"]) {
    try {
      await Deno.lstat(`${out}/${f}`);
      throw new UsageError(
        `${out}/${f} already exists; refusing to overwrite (choose another --out)`,
      );
    } catch (e) {
      if (e instanceof UsageError) throw e;
    }
  }
  await Deno.writeTextFile(`${out}/key.pem`, key, { mode: 0o600, createNew: true });
  await Deno.chmod(`${out}/key.pem`, 0o600);
  await Deno.writeTextFile(`${out}/cert.pem`, cert, { createNew: true });
  await Deno.writeTextFile(`${out}/bundle.pem`, bundle, { createNew: true });
}

const initCommand: Command = {
  name: "init",
  summary: "Create a root CA (ECDSA P-256), optionally with a signing intermediate",
  description: `
Writes Istio's plug-in CA layout: root-cert.pem, ca-cert.pem, ca-key.pem (0600),
cert-chain.pem, and root-key.pem (0600). Refuses to overwrite an existing CA.
With --intermediate the root only signs the intermediate; move root-key.pem
offline afterwards.`,
  options: {
    "trust-domain": {
      type: "string",
      arg: "TD",
      description: "SPIFFE trust domain, e.g. example.org",
    },
    out: { type: "string", short: "o", arg: "DIR", description: "directory to create the CA in" },
    intermediate: { type: "boolean", description: "sign with an intermediate, not the root" },
    "root-ttl": {
      type: "string",
      arg: "DURATION",
      description: "root lifetime",
      default: "87600h",
    },
  },
  examples: ["ambit ca init --trust-domain example.org --out /etc/ambit/ca"],
  async run(ctx) {
    const td = requireOption(ctx, "trust-domain");
    const out = requireOption(ctx, "out");
    if (!/^[a-z0-9._-]{1,255}$/.test(td)) {
      throw new UsageError(`"${td}" is not a valid trust domain`);
    }
    try {
      const ca = await initCaDir(out, {
        trustDomain: td,
        intermediate: ctx.options.intermediate === true,
        rootTtlMs: duration(ctx, "root-ttl", "87600h"),
      });
      ctx.out(
        `created CA for trust domain ${td} in ${out} (root expires ${
          ca.roots[0].notAfter.toISOString()
        })`,
      );
    } catch (e) {
      if (e instanceof CaDirError) throw new UsageError(e.message);
      throw e;
    }
    return EXIT_OK;
  },
};

const issueCommand: Command = {
  name: "issue",
  summary: "Issue a workload certificate offline (operators, tests, single-host labs)",
  description: `
Generates a key and a certificate for --id signed by the CA in --ca, and writes
cert.pem (leaf, then chain), key.pem (0600) and bundle.pem (roots) into --out.`,
  options: {
    ca: { type: "string", arg: "DIR", description: "CA directory (from ambit ca init)" },
    id: {
      type: "string",
      arg: "SPIFFE_ID",
      description: "spiffe://<td>/ns/<namespace>/sa/<service-account>",
    },
    out: {
      type: "string",
      short: "o",
      arg: "DIR",
      description: "where to write cert.pem, key.pem, bundle.pem",
    },
    ttl: { type: "string", arg: "DURATION", description: "lifetime", default: "24h" },
  },
  examples: ["ambit ca issue --ca ./ca --id spiffe://example.org/ns/shop/sa/web --out ./web"],
  async run(ctx) {
    const caDir = requireOption(ctx, "ca");
    const id = requireOption(ctx, "id");
    const out = requireOption(ctx, "out");
    const ttlMs = duration(ctx, "ttl", "24h");
    let spiffe;
    try {
      spiffe = parseSpiffeId(id);
    } catch (e) {
      if (e instanceof SpiffeIdError) throw new UsageError(e.message);
      throw e;
    }
    if (spiffe.kind !== "workload") {
      throw new UsageError(`--id must be a workload identity; for nodes use: ambit ca issue-node`);
    }
    const ca = await loadCa(caDir);
    if (spiffe.trustDomain !== ca.trustDomain) {
      throw new UsageError(
        `--id is in trust domain "${spiffe.trustDomain}" but the CA is for "${ca.trustDomain}"`,
      );
    }
    const keys = await generateKeyPair();
    const leaf = await issueLeaf({
      id,
      publicKey: keys.publicKey,
      signer: ca.signer,
      now: new Date(),
      ttlMs,
    });
    await writeCredential(
      out,
      toPem([leaf, ...ca.chain]),
      await exportPrivateKeyPem(keys.privateKey),
      toPem(ca.roots),
    );
    ctx.out(
      `issued ${id} (serial ${leaf.serialNumber}, expires ${leaf.notAfter.toISOString()}) into ${out}`,
    );
    return EXIT_OK;
  },
};

const issueNodeCommand: Command = {
  name: "issue-node",
  summary: "Issue a node credential (how a host authenticates to the CA service)",
  usage: "<node>",
  positionals: [1, 1],
  description: `
Writes a credential for the Node named <node>: identity
spiffe://<td>/ambit/node/<node> (never a workload identity), client
authentication only. Copy --out to that host (e.g. /etc/ambit/node) and start
its ztunnel with --credential pointing there. The CA service signs workload
certificates for a node only for workloads the config places on that node.`,
  options: {
    ca: { type: "string", arg: "DIR", description: "CA directory" },
    out: {
      type: "string",
      short: "o",
      arg: "DIR",
      description: "where to write cert.pem, key.pem, bundle.pem",
    },
    ttl: { type: "string", arg: "DURATION", description: "lifetime", default: "8760h" },
  },
  examples: ["ambit ca issue-node node-a --ca /etc/ambit/ca --out ./node-a-credential"],
  async run(ctx) {
    const node = ctx.args[0];
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(node)) {
      throw new UsageError(`"${node}" is not a valid node name`);
    }
    const caDir = requireOption(ctx, "ca");
    const out = requireOption(ctx, "out");
    const ttlMs = duration(ctx, "ttl", "8760h");
    const ca = await loadCa(caDir);
    const id = nodeId(ca.trustDomain, node);
    const keys = await generateKeyPair();
    const leaf = await issueLeaf({
      id,
      publicKey: keys.publicKey,
      signer: ca.signer,
      now: new Date(),
      ttlMs,
      usage: "node",
    });
    await writeCredential(
      out,
      toPem([leaf, ...ca.chain]),
      await exportPrivateKeyPem(keys.privateKey),
      toPem(ca.roots),
    );
    ctx.out(`issued node credential ${id} (expires ${leaf.notAfter.toISOString()}) into ${out}`);
    return EXIT_OK;
  },
};

const serveCommand: Command = {
  name: "serve",
  summary: "Serve certificate signing requests from nodes (mTLS, port 15012)",
  description: `
Signs a node's CSR for spiffe://<td>/ns/<ns>/sa/<sa> only when the current
config places an enrolled workload (or a waypoint) with that namespace and
service account on the requesting node. Follows config reloads. Refusals are
logged as security events.`,
  options: {
    config: {
      type: "string",
      short: "c",
      arg: "PATH",
      description: "mesh config file or directory",
    },
    ca: { type: "string", arg: "DIR", description: "CA directory" },
    listen: {
      type: "string",
      arg: "HOST:PORT",
      description: "listen address",
      default: "0.0.0.0:15012",
    },
    admin: {
      type: "string",
      arg: "HOST:PORT",
      description: "admin API with /stats/prometheus, loopback only; 'off' disables",
      default: "127.0.0.1:15014",
    },
  },
  examples: ["ambit ca serve --config /etc/ambit/mesh --ca /etc/ambit/ca"],
  async run(ctx) {
    const path = requireOption(ctx, "config");
    const ca = await loadCa(requireOption(ctx, "ca"));
    const listen = parseHostPort(ctx.options.listen as string, "listen");
    const logger = ctx.logger.child({ role: "ca" });
    const store = await ConfigStore.open(path, { logger, sighup: true });
    if (store.current.mesh.trustDomain !== ca.trustDomain) {
      await store.close();
      throw new UsageError(
        `the CA is for trust domain "${ca.trustDomain}" but the mesh config says "${store.current.mesh.trustDomain}"`,
      );
    }
    const server = await CaServer.start({
      ca,
      snapshot: () => store.current,
      hostname: listen.hostname,
      port: listen.port,
      logger,
    });
    logger.info("CA service listening", {
      address: `${server.address.hostname}:${server.address.port}`,
      trustDomain: ca.trustDomain,
    });
    const adminAt = adminAddress(ctx);
    const admin = adminAt
      ? serveAdmin({
        metrics: () => renderPrometheus(caFamilies(server.stats)),
        ready: () => ({ ready: true, pending: [] }),
        owner: { role: "ca", name: ca.trustDomain },
      }, {
        ...adminAt,
        logger,
      })
      : undefined;
    await untilStopSignal(logger);
    await admin?.close();
    await server.close();
    await store.close();
    return EXIT_OK;
  },
};

/** `ambit ca`. */
export const caCommand: Command = {
  name: "ca",
  summary: "The built-in certificate authority: init, issue, issue-node, serve",
  subcommands: [initCommand, issueCommand, issueNodeCommand, serveCommand],
};
