/**
 * Runs every check of `ambit check` in order: config, ports, certificates,
 * ca, peers, clock, upgrade. Checks that need what an earlier one could not
 * provide are skipped with the reason.
 *
 * @module
 */
import type { Snapshot } from "../config/snapshot.ts";
import { localView, UnknownNodeError } from "../ztunnel/local_view.ts";
import { HostAddresses } from "../ztunnel/host_addresses.ts";
import { checkCa } from "./ca.ts";
import {
  type CertificateCheck,
  checkCaDir,
  checkCredential,
  noCertificateSource,
} from "./certificates.ts";
import { checkConfig } from "./config.ts";
import { type CheckedRole, type ListenChoices, plannedListeners } from "./listeners.ts";
import { checkPeers, peerTargets } from "./peers.ts";
import { checkPorts } from "./ports.ts";
import type { CheckResult } from "./result.ts";
import { checkUpgrade } from "./upgrade.ts";

/** Which addresses are this host's (for the HBONE listeners on workload addresses). */
const hosts = new HostAddresses();

/** Everything `ambit check` was told. */
export interface CheckOptions {
  readonly configPath: string;
  readonly role: CheckedRole;
  /** Node credential directory (cert.pem, key.pem, bundle.pem). */
  readonly credentialDir?: string;
  /** Lab CA directory (instead of a credential). */
  readonly caDir?: string;
  /** CA service address; default Mesh spec.ca.address. */
  readonly caAddress?: string;
  readonly listen: ListenChoices;
  /** Deadline of each network probe. */
  readonly timeoutMs: number;
  /** Warn when a certificate expires within this long. */
  readonly certWarnMs: number;
  /** The time certificates are judged at (default now). */
  readonly now?: () => Date;
}

/**
 * Runs the checks. Throws {@link UnknownTargetError} when the node or
 * waypoint is not in a config that compiled.
 */
export async function runChecks(o: CheckOptions): Promise<CheckResult[]> {
  const config = await checkConfig(o.configPath, o.role);
  const s = config.snapshot;
  if (!s) {
    const skip = (name: string): CheckResult => ({
      name,
      status: "skip",
      detail: "needs a config that compiles",
    });
    return [
      config.result,
      ...["ports", "certificates", "ca", "peers", "clock"].map(skip),
      await checkUpgrade(),
    ];
  }
  const credentialNode = nodeOf(s, o.role);
  const ports = checkPorts(
    plannedListeners(s, o.role, o.listen, (ip) => hosts.has(ip)),
    {
      me: o.role,
      admin: o.listen.admin === "off"
        ? undefined
        : o.listen.admin === "default"
        ? { hostname: "127.0.0.1", port: 15000 }
        : o.listen.admin,
      timeoutMs: o.timeoutMs,
    },
  );
  const certs = await certificates(s, credentialNode, o);
  const trust = certs.material;
  const [portsResult, caResults, peersResult, upgrade] = await Promise.all([
    ports,
    caAndClock(s, o, certs),
    checkPeers(peerTargets(s, o.role), { timeoutMs: o.timeoutMs, trust }),
    checkUpgrade(),
  ]);
  return [
    config.result,
    portsResult,
    certs.result,
    caResults.ca,
    peersResult,
    caResults.clock,
    upgrade,
  ];
}

/** Raised when the checked node or waypoint is not in the config (a usage error). */
export class UnknownTargetError extends Error {
  override readonly name = "UnknownTargetError";
  readonly code = "ENODE";
}

/** The node whose credential the role uses; throws {@link UnknownTargetError} when it is not in `s`. */
function nodeOf(s: Snapshot, role: CheckedRole): string {
  if (role.role === "ztunnel") {
    try {
      return localView(s, role.node).node.name;
    } catch (e) {
      if (e instanceof UnknownNodeError) throw new UnknownTargetError(e.message);
      throw e;
    }
  }
  const wp = s.waypoints.get(role.name);
  if (!wp) {
    const known = [...s.waypoints.keys()].join(", ") || "none";
    throw new UnknownTargetError(
      `waypoint "${role.name}" is not in the config (waypoints: ${known}); add a Gateway with gatewayClassName istio-waypoint or fix --waypoint`,
    );
  }
  return wp.node;
}

function certificates(s: Snapshot, node: string, o: CheckOptions): Promise<CertificateCheck> {
  const opts = {
    trustDomain: s.mesh.trustDomain,
    node,
    now: o.now?.() ?? new Date(),
    warnWithinMs: o.certWarnMs,
  };
  if (o.caDir) return checkCaDir(o.caDir, opts);
  if (o.credentialDir) return checkCredential(o.credentialDir, opts);
  return Promise.resolve(noCertificateSource(node));
}

async function caAndClock(
  s: Snapshot,
  o: CheckOptions,
  certs: CertificateCheck,
): Promise<{ ca: CheckResult; clock: CheckResult }> {
  if (o.caDir) {
    return {
      ca: { name: "ca", status: "skip", detail: "--ca-dir: certificates are minted locally (lab)" },
      clock: { name: "clock", status: "skip", detail: "no CA service to compare with (--ca-dir)" },
    };
  }
  const address = o.caAddress ?? s.mesh.ca.address;
  if (!address) {
    return {
      ca: {
        name: "ca",
        status: "fail",
        detail: "no CA address",
        hint: "set Mesh spec.ca.address in the config or pass --ca-address HOST:PORT",
      },
      clock: { name: "clock", status: "skip", detail: "no CA service to compare with" },
    };
  }
  if (!certs.material?.credential) {
    return {
      ca: {
        name: "ca",
        status: "skip",
        detail: `${address} not probed: the CA needs a readable node credential (see certificates)`,
      },
      clock: { name: "clock", status: "skip", detail: "the CA was not probed" },
    };
  }
  return await checkCa({
    address,
    trustDomain: s.mesh.trustDomain,
    trust: certs.material,
    timeoutMs: o.timeoutMs,
  });
}
