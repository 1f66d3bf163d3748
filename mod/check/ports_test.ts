import { assertEquals, assertIncludes } from "../../tests/_util/asserts.ts";
import type { BindOutcome } from "./bind_probe.ts";
import type { PlannedListener } from "./listeners.ts";
import { diagnoseBind, type HolderInfo, UPGRADE_HINT } from "./ports.ts";

const hbone: PlannedListener = {
  what: "HBONE",
  proto: "tcp",
  ip: "10.0.0.10",
  port: 15008,
  configField: "Node spec.address",
};
const dns: PlannedListener = {
  what: "DNS proxy",
  proto: "udp",
  ip: "127.0.0.1",
  port: 53,
  flag: "dns",
};
const vip: PlannedListener = {
  what: "outbound apps/echo:80",
  proto: "tcp",
  ip: "10.96.0.7",
  port: 80,
  configField: "the Service's VIP",
};
const workloadHbone: PlannedListener = { ...hbone, ip: "10.0.0.20", bestEffort: true };

const inUse: BindOutcome = { ok: false, reason: "in_use", message: "Address already in use" };
const notLocal: BindOutcome = { ok: false, reason: "not_local", message: "Cannot assign" };
const denied: BindOutcome = { ok: false, reason: "permission", message: "Permission denied" };
const me = { role: "ztunnel", node: "node-a" } as const;
const nobody: HolderInfo = { holders: [], me };
const ambitA = { pid: 700, ready: true, role: "ztunnel", name: "node-a" };
const ambitB = { pid: 701, ready: true, role: "ztunnel", name: "node-b" };

Deno.test("diagnoseBind() says what is wrong with a port and what to do", () => {
  const cases: [string, PlannedListener, BindOutcome, HolderInfo, string, string, string][] = [
    ["free", hbone, { ok: true }, nobody, "ok", "free", ""],
    [
      "held by a plain process",
      dns,
      inUse,
      { holders: [{ pid: 812, command: "dnsmasq" }], me },
      "fail",
      "port in use by pid 812 dnsmasq",
      "stop it, or pass --dns HOST:PORT (or --dns off)",
    ],
    [
      "held by someone unknown",
      hbone,
      inUse,
      nobody,
      "fail",
      "port in use by another process",
      "stop it, or change Node spec.address",
    ],
    [
      "held by ambit of this node",
      hbone,
      inUse,
      { holders: [{ pid: 700 }], ambit: ambitA, me },
      "warn",
      "in use, by ambit pid 700 (ztunnel node-a)",
      UPGRADE_HINT,
    ],
    [
      "probably held by ambit of this node",
      hbone,
      inUse,
      { holders: [], ambit: ambitA, me },
      "warn",
      "in use, probably by ambit pid 700",
      UPGRADE_HINT,
    ],
    [
      "held by an ambit that does not say its role",
      hbone,
      inUse,
      { holders: [{ pid: 700 }], ambit: { pid: 700, ready: true }, me },
      "warn",
      "in use, by ambit pid 700",
      UPGRADE_HINT,
    ],
    [
      "held by ambit of another node",
      dns,
      inUse,
      { holders: [{ pid: 701 }], ambit: ambitB, me },
      "fail",
      "ambit pid 701 (ztunnel node-b), another role or instance",
      "two roles would share the port",
    ],
    [
      "ambit answers but another process holds it",
      dns,
      inUse,
      { holders: [{ pid: 9, command: "nginx" }], ambit: ambitA, me },
      "fail",
      "port in use by pid 9 nginx",
      "stop it",
    ],
    [
      "not local",
      hbone,
      notLocal,
      nobody,
      "fail",
      "address 10.0.0.10 is not on this host",
      "assign it",
    ],
    [
      "VIP not local",
      vip,
      notLocal,
      nobody,
      "fail",
      "address 10.96.0.7 is not on this host",
      "VIPs outside 127.0.0.0/8 must be on a local interface (ip addr add 10.96.0.7/32 dev lo)",
    ],
    [
      "a flag's address not local",
      { ...dns, ip: "10.9.9.9" },
      notLocal,
      nobody,
      "fail",
      "not on this host",
      "pass --dns with an address of this host, or --dns off",
    ],
    [
      "best effort, not local",
      workloadHbone,
      notLocal,
      nobody,
      "warn",
      "through the node's address",
      "assign it",
    ],
    ["best effort, in use", workloadHbone, inUse, nobody, "warn", "port in use", "stop it"],
    [
      "port below 1024",
      dns,
      denied,
      nobody,
      "fail",
      "port 53 is below 1024",
      "CAP_NET_BIND_SERVICE",
    ],
    [
      "permission above 1024",
      hbone,
      denied,
      nobody,
      "fail",
      "permission denied: Permission denied",
      "SELinux",
    ],
  ];
  for (const [name, l, outcome, who, status, detail, hint] of cases) {
    const item = diagnoseBind(l, outcome, who);
    assertEquals(item.status, status, name);
    assertIncludes(item.detail, detail, `${name}: ${item.detail}`);
    if (hint) assertIncludes(item.hint ?? "", hint, `${name}: ${item.hint}`);
  }
});

Deno.test("diagnoseBind() names the socket", () => {
  assertEquals(diagnoseBind(dns, { ok: true }, nobody).subject, "127.0.0.1:53/udp DNS proxy");
  assertEquals(
    diagnoseBind({ ...hbone, ip: "fd00::1" }, { ok: true }, nobody).subject,
    "[fd00::1]:15008/tcp HBONE",
  );
});
