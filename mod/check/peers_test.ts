import { assertEquals, assertIncludes } from "../../tests/_util/asserts.ts";
import { snapshotOf } from "./listeners_test.ts";
import { diagnosePeer, type PeerProbe, type PeerTarget, peerTargets } from "./peers.ts";
import { CLOCK_HINT } from "./validity.ts";

Deno.test("peerTargets() lists the other nodes and the waypoints with their identities", () => {
  const s = snapshotOf();
  assertEquals(peerTargets(s, { role: "ztunnel", node: "node-a" }), [
    {
      label: "node node-b",
      host: "10.0.0.11",
      port: 15008,
      expected: ["spiffe://ambit.test/ns/apps/sa/echo"],
    },
    {
      label: "waypoint apps/waypoint",
      host: "10.0.0.12",
      port: 15008,
      expected: ["spiffe://ambit.test/ns/apps/sa/waypoint"],
    },
  ]);
  assertEquals(
    peerTargets(s, { role: "waypoint", name: "apps/waypoint" }).map((t) => t.label),
    ["node node-a", "node node-b"],
  );
});

const now = new Date("2026-06-01T00:00:00Z");
const peer: PeerTarget = {
  label: "node node-b",
  host: "10.0.0.11",
  port: 15008,
  expected: ["spiffe://td/ns/a/sa/echo"],
};
const empty: PeerTarget = { ...peer, label: "node node-c", expected: [] };
const done = (over: Partial<Extract<PeerProbe, { stage: "done" }>> = {}): PeerProbe => ({
  stage: "done",
  tcpMs: 0.4,
  tlsMs: 3,
  alpn: "h2",
  verified: true,
  authorized: true,
  peerId: "spiffe://td/ns/a/sa/echo",
  notBefore: new Date("2026-05-31T00:00:00Z"),
  notAfter: new Date("2026-06-02T00:00:00Z"),
  ...over,
});

Deno.test("diagnosePeer() tells reachable from refused, and why", () => {
  const cases: [string, PeerTarget, PeerProbe, string, string, string][] = [
    ["all good", peer, done(), "ok", "rtt 0.40 ms, TLS 3.00 ms, spiffe://td/ns/a/sa/echo", ""],
    [
      "refused",
      peer,
      { stage: "tcp", error: "connect ECONNREFUSED 10.0.0.11:15008" },
      "fail",
      "unreachable: connect ECONNREFUSED",
      "is ambit running on 10.0.0.11? does the firewall allow TCP 15008",
    ],
    [
      "TLS times out",
      peer,
      { stage: "tls", tcpMs: 0.3, error: "TLS handshake did not finish", code: "ETIMEDOUT" },
      "fail",
      "TCP connects (rtt 0.30 ms) but the TLS handshake failed",
      "something other than ambit",
    ],
    [
      "no workloads there, no certificate",
      empty,
      { stage: "tls", tcpMs: 0.3, error: "handshake failure" },
      "ok",
      "no enrolled workloads there",
      "",
    ],
    [
      "not HBONE",
      peer,
      done({ alpn: undefined }),
      "fail",
      "ALPN none, expected h2",
      "another service",
    ],
    [
      "expired",
      peer,
      done({ authorized: false, notAfter: new Date("2026-05-31T12:00:00Z") }),
      "fail",
      "expired 2026-05-31T12:00:00Z",
      "cannot renew",
    ],
    [
      "not yet valid",
      peer,
      done({ authorized: false, notBefore: new Date("2026-06-01T00:05:00Z") }),
      "fail",
      "not valid until",
      CLOCK_HINT,
    ],
    [
      "another CA",
      peer,
      done({ authorized: false }),
      "fail",
      "does not chain to the trust bundle",
      "another CA",
    ],
    [
      "unexpected identity",
      peer,
      done({ peerId: "spiffe://td/ns/a/sa/other" }),
      "warn",
      "presents spiffe://td/ns/a/sa/other, not spiffe://td/ns/a/sa/echo",
      "same config",
    ],
    [
      "unverified",
      peer,
      done({ verified: false, authorized: false }),
      "ok",
      "identity not verified",
      "",
    ],
  ];
  for (const [name, t, p, status, detail, hint] of cases) {
    const item = diagnosePeer(t, p, now);
    assertEquals(item.status, status, name);
    assertIncludes(item.detail, detail, name);
    if (hint) assertIncludes(item.hint ?? "", hint, name);
    assertEquals(item.subject, `${t.label} 10.0.0.11:15008`);
  }
});
