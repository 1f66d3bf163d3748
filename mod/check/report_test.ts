import { assertEquals } from "../../tests/_util/asserts.ts";
import { issueItem } from "./config.ts";
import { jsonReport, textReport } from "./report.ts";
import type { CheckResult } from "./result.ts";

const results: CheckResult[] = [
  { name: "config", status: "ok", detail: "2 files, 7 resources, node node-a (10.0.0.10)" },
  {
    name: "ports",
    status: "fail",
    detail: "1 of 2 addresses cannot be bound",
    hint: "see the hint of each address",
    items: [
      { status: "ok", subject: "10.0.0.10:15008/tcp HBONE", detail: "free" },
      {
        status: "fail",
        subject: "127.0.0.1:15053/udp DNS proxy",
        detail: "port in use by pid 9 dnsmasq",
        hint: "stop it, or pass --dns HOST:PORT (or --dns off)",
      },
    ],
  },
  {
    name: "peers",
    status: "ok",
    detail: "1 peer answers HBONE, rtt 0.40 ms",
    items: [{ status: "ok", subject: "node node-b 10.0.0.11:15008", detail: "rtt 0.40 ms" }],
  },
  {
    name: "upgrade",
    status: "warn",
    detail: "net.ipv4.tcp_migrate_req=0",
    hint: "sysctl -w net.ipv4.tcp_migrate_req=1",
  },
];

Deno.test("textReport() prints a line per check, problems under it, then the summary", () => {
  assertEquals(textReport(results), [
    "ok    config        2 files, 7 resources, node node-a (10.0.0.10)",
    "fail  ports         1 of 2 addresses cannot be bound",
    "      fail  127.0.0.1:15053/udp DNS proxy: port in use by pid 9 dnsmasq",
    "            hint: stop it, or pass --dns HOST:PORT (or --dns off)",
    "ok    peers         1 peer answers HBONE, rtt 0.40 ms",
    "      ok    node node-b 10.0.0.11:15008: rtt 0.40 ms",
    "warn  upgrade       net.ipv4.tcp_migrate_req=0",
    "      hint: sysctl -w net.ipv4.tcp_migrate_req=1",
    "2 ok, 1 warning, 1 failed, 0 skipped: fix the failures above before starting",
  ]);
});

Deno.test("textReport() says a hint shared by several items once", () => {
  const hint = "fine for an upgrade";
  const lines = textReport([{
    name: "ports",
    status: "warn",
    detail: "all 2 addresses held",
    items: [
      { status: "warn", subject: "a", detail: "held", hint },
      { status: "warn", subject: "b", detail: "held", hint },
    ],
  }]);
  assertEquals(lines.slice(1, 4), [
    "      warn  a: held",
    "      warn  b: held",
    `      hint: ${hint}`,
  ]);
});

Deno.test("jsonReport() carries the verdict, the counts and every result", () => {
  const r = jsonReport(results, { role: "ztunnel", name: "node-a" });
  assertEquals(r.ok, false);
  assertEquals(r.exitCode, 1);
  assertEquals(r.summary, { ok: 2, warn: 1, fail: 1, skip: 0 });
  assertEquals(r.checks.length, 4);
});

Deno.test("issueItem() keeps a config issue's file:line, field path and hint", () => {
  assertEquals(
    issueItem({
      file: "mesh/nodes.yaml",
      line: 7,
      path: "spec.address",
      message: '"10.0.0" is not an IP address',
      hint: "e.g. 10.0.0.5",
      severity: "error",
    }),
    {
      status: "fail",
      subject: "mesh/nodes.yaml:7",
      detail: 'spec.address: "10.0.0" is not an IP address',
      hint: "e.g. 10.0.0.5",
    },
  );
});
