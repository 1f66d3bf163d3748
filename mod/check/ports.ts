/**
 * The ports check: every socket the role would bind is free, or held by a
 * running ambit of the same role and instance (an upgrade in progress).
 * {@link diagnoseBind} is the pure decision; {@link checkPorts} probes.
 *
 * @module
 */
import { type RunningAmbit, runningAmbitAt } from "../admin/owner.ts";
import type { BindOutcome } from "./bind_probe.ts";
import { probeBind } from "./bind_probe.ts";
import {
  type CheckedRole,
  duplicateListeners,
  listenerKey,
  type PlannedListener,
} from "./listeners.ts";
import type { CheckItem, CheckResult } from "./result.ts";
import { worstStatus } from "./result.ts";
import { type SocketHolder, socketHolders } from "./socket_holders.ts";

/** What is known about who holds a port that is in use. */
export interface HolderInfo {
  /** Processes holding the socket (empty when /proc did not tell). */
  readonly holders: readonly SocketHolder[];
  /** The ambit answering on the admin address, if any. */
  readonly ambit?: RunningAmbit;
  /** The role and instance being checked. */
  readonly me: CheckedRole;
}

/** The warn hint for ports an ambit of this role and instance holds. */
export const UPGRADE_HINT =
  "fine for a zero-downtime upgrade: ambit binds with SO_REUSEPORT and the new process shares " +
  "the ports until the old one stops; otherwise stop the running one first";

/** Turns one bind probe into an item: what is wrong and what to do. Pure. */
export function diagnoseBind(l: PlannedListener, outcome: BindOutcome, who: HolderInfo): CheckItem {
  const subject = `${listenerKey(l)} ${l.what}`;
  if (outcome.ok) return { status: "ok", subject, detail: "free" };
  const move = moveHint(l);
  switch (outcome.reason) {
    case "not_local": {
      const hint = l.flag
        ? `pass --${l.flag} with an address of this host, or --${l.flag} off`
        : l.what.startsWith("outbound") && !l.ip.startsWith("127.")
        ? `VIPs outside 127.0.0.0/8 must be on a local interface (ip addr add ${l.ip}/32 dev lo), or ${move}`
        : `assign it to an interface of this host, or ${move}`;
      return l.bestEffort
        ? {
          status: "warn",
          subject,
          detail:
            `address ${l.ip} is not on this host (the role serves these workloads through the node's address)`,
          hint,
        }
        : { status: "fail", subject, detail: `address ${l.ip} is not on this host`, hint };
    }
    case "permission":
      return l.port < 1024
        ? {
          status: "fail",
          subject,
          detail: `permission denied: port ${l.port} is below 1024`,
          hint:
            "run as root or grant CAP_NET_BIND_SERVICE (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE; " +
            `or setcap cap_net_bind_service=+ep on the binary), or ${move}`,
        }
        : {
          status: "fail",
          subject,
          detail: `permission denied: ${outcome.message}`,
          hint: `check the host's security policy (SELinux, AppArmor, seccomp), or ${move}`,
        };
    case "other":
      return { status: "fail", subject, detail: `cannot bind: ${outcome.message}`, hint: move };
    case "in_use":
      return diagnoseInUse(l, subject, who);
  }
}

function diagnoseInUse(l: PlannedListener, subject: string, who: HolderInfo): CheckItem {
  const move = moveHint(l);
  const { ambit, holders } = who;
  const named = (a: RunningAmbit) =>
    `ambit pid ${a.pid}${a.role && a.name ? ` (${a.role} ${a.name})` : ""}`;
  const soft = (item: CheckItem): CheckItem =>
    l.bestEffort && item.status === "fail" ? { ...item, status: "warn" } : item;
  const byAmbit = ambit !== undefined &&
    (holders.length === 0 || holders.every((h) => h.pid === ambit.pid));
  if (ambit && byAmbit) {
    const probably = holders.length === 0 ? "probably " : "";
    if (sameInstance(ambit, who.me)) {
      return {
        status: "warn",
        subject,
        detail: `in use, ${probably}by ${named(ambit)}`,
        hint: UPGRADE_HINT,
      };
    }
    return soft({
      status: "fail",
      subject,
      detail: `in use, ${probably}by ${named(ambit)}, another role or instance`,
      hint: `two roles would share the port: stop it, or ${move}`,
    });
  }
  const by = holders.length > 0
    ? holders.map((h) => `pid ${h.pid}${h.command ? ` ${h.command}` : ""}`).join(", ")
    : "another process";
  return soft({
    status: "fail",
    subject,
    detail: `port in use by ${by}`,
    hint: `stop it, or ${move}`,
  });
}

function sameInstance(a: RunningAmbit, me: CheckedRole): boolean {
  if (a.role === undefined || a.name === undefined) return true; // an older ambit that does not say
  return a.role === me.role && a.name === (me.role === "ztunnel" ? me.node : me.name);
}

function moveHint(l: PlannedListener): string {
  if (l.flag) return `pass --${l.flag} HOST:PORT (or --${l.flag} off)`;
  return `change ${l.configField ?? "the config"}`;
}

/** Options for {@link checkPorts}. */
export interface PortsCheckOptions {
  readonly me: CheckedRole;
  /** The admin address the role would use: who answers there tells who holds its ports. */
  readonly admin?: { hostname: string; port: number };
  /** How long to wait for the admin API's answer (default 1 s). */
  readonly timeoutMs?: number;
}

/** Probes every planned listener; one item per socket. */
export async function checkPorts(
  listeners: readonly PlannedListener[],
  o: PortsCheckOptions,
): Promise<CheckResult> {
  const dups = new Map(duplicateListeners(listeners).map((d) => [d.listener, d.first]));
  const outcomes: (BindOutcome | undefined)[] = [];
  for (const l of listeners) outcomes.push(dups.has(l) ? undefined : await probeBind(l));
  const inUse = listeners.filter((_, i) =>
    outcomes[i]?.ok === false &&
    (outcomes[i] as { reason: string }).reason === "in_use"
  );
  const holders = inUse.length > 0 ? await socketHolders(inUse) : [];
  const ambit = inUse.length > 0 && o.admin
    ? await runningAmbitAt(o.admin, o.timeoutMs ?? 1000)
    : undefined;
  const items = listeners.map((l, i): CheckItem => {
    const first = dups.get(l);
    if (first) {
      return {
        status: "fail",
        subject: `${listenerKey(l)} ${l.what}`,
        detail: `also wanted by ${first.what}`,
        hint: `give them different addresses: ${moveHint(l.flag ? l : first)}`,
      };
    }
    const h = holders[inUse.indexOf(l)] ?? [];
    return diagnoseBind(l, outcomes[i]!, { holders: h, ambit, me: o.me });
  });
  return {
    name: "ports",
    ...summarize(items, ambit),
    items,
  };
}

function summarize(
  items: readonly CheckItem[],
  ambit: RunningAmbit | undefined,
): Pick<CheckResult, "status" | "detail" | "hint"> {
  const status = worstStatus(items.map((i) => i.status));
  const n = items.length;
  const free = items.filter((i) => i.status === "ok").length;
  if (n === 0) return { status: "ok", detail: "nothing to bind" };
  if (status === "ok") return { status, detail: `${n} address${n === 1 ? "" : "es"} free to bind` };
  const failed = items.filter((i) => i.status === "fail").length;
  if (status === "warn") {
    const upgrading = items.filter((i) => i.hint === UPGRADE_HINT).length;
    const heldBy = ambit
      ? `held by ambit pid ${ambit.pid}` +
        (ambit.role && ambit.name ? ` (${ambit.role} ${ambit.name})` : "")
      : "";
    const others = n - free - upgrading;
    const detail = free === 0 && others === 0 && upgrading > 0 ? `all ${n} addresses ${heldBy}` : [
      `${free} of ${n} addresses free`,
      upgrading > 0 ? `${upgrading} ${heldBy}` : "",
      others > 0 ? `${others} with warnings` : "",
    ].filter(Boolean).join(", ");
    return {
      status,
      detail,
      hint: items.find((i) => i.status === "warn")?.hint,
    };
  }
  return {
    status,
    detail: `${failed} of ${n} addresses cannot be bound`,
    hint: "see the hint of each address",
  };
}
