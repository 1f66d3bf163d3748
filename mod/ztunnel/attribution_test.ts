import { assertEquals } from "../../tests/_util/asserts.ts";
import { attributeSource, type Candidate } from "./attribution.ts";

const W = (key: string, address: string, user?: string | number, sa = key): Candidate => ({
  key,
  identity: `spiffe://td/ns/n/sa/${sa}`,
  address,
  user,
});
const uids: Record<string, number> = { web: 1001, db: 1002 };
const uidOf = (u: string | number) => typeof u === "number" ? u : uids[u];

Deno.test("attributeSource() picks the workload by address and user, and refuses what it cannot tell apart", () => {
  const table: [string, Candidate[], { sourceIp: string; uid?: number }, string][] = [
    ["none", [], { sourceIp: "127.0.0.1" }, "no enrolled workload"],
    ["only workload", [W("a", "10.0.0.1")], { sourceIp: "127.0.0.1" }, "a by only-workload"],
    [
      "by address",
      [W("a", "127.0.1.10"), W("b", "127.0.1.11")],
      { sourceIp: "127.0.1.11" },
      "b by address",
    ],
    [
      "ambiguous",
      [W("a", "127.0.0.1"), W("b", "127.0.0.1")],
      { sourceIp: "127.0.0.1" },
      "set spec.user",
    ],
    ["by user", [W("a", "127.0.0.1", "web"), W("b", "127.0.0.1", "db")], {
      sourceIp: "127.0.0.1",
      uid: 1002,
    }, "b by user"],
    ["user mismatch", [W("a", "127.0.0.1", "web"), W("b", "127.0.0.1", "db")], {
      sourceIp: "127.0.0.1",
      uid: 0,
    }, "uid 0 runs none"],
    [
      "uid unknown",
      [W("a", "127.0.0.1", "web"), W("b", "127.0.0.1")],
      { sourceIp: "127.0.0.1" },
      "could not be determined",
    ],
    ["address+user", [W("a", "127.0.1.10", 1001), W("b", "127.0.1.11", 1001)], {
      sourceIp: "127.0.1.10",
      uid: 1001,
    }, "a by address+user"],
    ["address spoof", [W("a", "127.0.1.10", "web"), W("b", "127.0.1.11", "db")], {
      sourceIp: "127.0.1.11",
      uid: 1001,
    }, "uid 1001 runs none"],
    ["no user takes no identity", [W("a", "127.0.0.1", "web"), W("b", "127.0.0.1")], {
      sourceIp: "127.0.0.1",
      uid: 5,
    }, "uid 5 runs none"],
    [
      "only workload with user",
      [W("a", "127.0.0.1", "web")],
      { sourceIp: "127.0.0.1", uid: 5 },
      "uid 5 runs none",
    ],
    [
      "shared identity",
      [W("v1", "127.0.0.1", undefined, "r"), W("v2", "127.0.0.1", undefined, "r")],
      { sourceIp: "127.0.0.1" },
      "v1 by shared-identity",
    ],
    [
      "mapped v4",
      [W("a", "127.0.1.10"), W("b", "127.0.1.11")],
      { sourceIp: "::ffff:127.0.1.10" },
      "a by address",
    ],
  ];
  for (const [name, cands, conn, want] of table) {
    const r = attributeSource(cands, conn, uidOf);
    const got = r.ok ? `${r.workload} by ${r.by}` : r.reason;
    assertEquals(got.includes(want), true, `${name}: ${got}`);
  }
});
