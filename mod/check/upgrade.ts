/**
 * The upgrade check: with `net.ipv4.tcp_migrate_req=1` (Linux 5.14+), when
 * the old ambit closes its SO_REUSEPORT listeners during an upgrade, the
 * connections still queued on them move to the new process instead of being
 * reset. {@link evaluateMigrateReq} is pure.
 *
 * @module
 */
import type { CheckResult } from "./result.ts";
import { readProcText } from "./_proc.ts";

/** The sysctl's file. */
export const MIGRATE_REQ_PATH = "/proc/sys/net/ipv4/tcp_migrate_req";

const RISK = "a zero-downtime upgrade may reset connections queued on the old listener " +
  "at the moment it closes";

/**
 * The result for the file's content: `undefined` when it does not exist
 * (not Linux, or a kernel before 5.14).
 */
export function evaluateMigrateReq(content: string | undefined, os: string): CheckResult {
  if (os !== "linux") {
    return { name: "upgrade", status: "skip", detail: `not Linux (${os})` };
  }
  if (content === undefined) {
    return {
      name: "upgrade",
      status: "warn",
      detail: `this kernel has no net.ipv4.tcp_migrate_req (before Linux 5.14): ${RISK}`,
      hint:
        "Linux 5.14 or later can move them to the new process (sysctl net.ipv4.tcp_migrate_req=1)",
    };
  }
  const v = content.trim();
  if (v === "1") {
    return {
      name: "upgrade",
      status: "ok",
      detail: "net.ipv4.tcp_migrate_req=1: queued connections move to the new process on upgrade",
    };
  }
  return {
    name: "upgrade",
    status: "warn",
    detail: `net.ipv4.tcp_migrate_req=${v}: ${RISK}`,
    hint: "sysctl -w net.ipv4.tcp_migrate_req=1 (and add it to /etc/sysctl.d/ to keep it)",
  };
}

/** Reads the sysctl and evaluates it. */
export async function checkUpgrade(): Promise<CheckResult> {
  const content = await readProcText(MIGRATE_REQ_PATH);
  return evaluateMigrateReq(content, Deno.build.os);
}
