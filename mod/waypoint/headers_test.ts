import { assertEquals, assertOk } from "../../tests/_util/asserts.ts";
import {
  endToEnd,
  formatTraceparent,
  type HeaderList,
  traceContext,
  upstreamRequestHeaders,
} from "./headers.ts";

Deno.test("endToEnd() drops hop-by-hop, connection-listed and pseudo headers; keeps te: trailers", () => {
  const cases: [string, HeaderList, HeaderList][] = [
    ["nothing to drop", [["host", "a"], ["accept", "*/*"]], [["host", "a"], ["accept", "*/*"]]],
    [
      "hop-by-hop",
      [
        ["connection", "keep-alive"],
        ["keep-alive", "5"],
        ["transfer-encoding", "chunked"],
        [
          "upgrade",
          "h2c",
        ],
        ["proxy-authorization", "x"],
        ["trailer", "a"],
        ["http2-settings", "x"],
        ["x", "1"],
      ],
      [["x", "1"]],
    ],
    [
      "names the connection header lists, any case, several headers",
      [["connection", "X-Secret, close"], ["connection", " foo "], ["x-secret", "1"], [
        "foo",
        "2",
      ], ["bar", "3"]],
      [["bar", "3"]],
    ],
    ["pseudo headers", [[":authority", "a"], [":path", "/"], ["a", "1"]], [["a", "1"]]],
    ["te: trailers kept (gRPC)", [["te", " Trailers "]], [["te", " Trailers "]]],
    ["other te dropped", [["te", "gzip"]], []],
    ["order and duplicates kept", [["a", "1"], ["b", "2"], ["a", "3"]], [["a", "1"], ["b", "2"], [
      "a",
      "3",
    ]]],
  ];
  for (const [name, input, want] of cases) assertEquals(endToEnd(input), want, name);
});

Deno.test("upstreamRequestHeaders() sets XFF, proto, request id, XFCC and traceparent; replaces the client's", () => {
  const trace = { traceId: "a".repeat(32), spanId: "b".repeat(16), sampled: true };
  const f = {
    clientIp: "10.0.0.1",
    sourceIdentity: "spiffe://td/ns/a/sa/caller",
    waypointIdentity: "spiffe://td/ns/a/sa/waypoint",
    trace,
    requestId: "rid",
  };
  const tail = (xff: string): HeaderList => [
    ["x-forwarded-for", xff],
    ["x-forwarded-proto", "http"],
    ["x-request-id", "rid"],
    [
      "x-forwarded-client-cert",
      "By=spiffe://td/ns/a/sa/waypoint;URI=spiffe://td/ns/a/sa/caller",
    ],
    ["traceparent", `00-${"a".repeat(32)}-${"b".repeat(16)}-01`],
  ];
  const cases: [string, HeaderList, HeaderList][] = [
    ["a plain request", [["host", "svc"]], [["host", "svc"], ...tail("10.0.0.1")]],
    [
      "the client's XFF is appended to (first one kept), its XFCC, request id, proto and traceparent replaced",
      [
        ["x-forwarded-for", "1.1.1.1"],
        ["x-forwarded-for", "2.2.2.2"],
        [
          "x-forwarded-client-cert",
          "By=forged",
        ],
        ["x-request-id", "theirs"],
        ["x-forwarded-proto", "https"],
        [
          "traceparent",
          "00-x",
        ],
        ["accept", "*/*"],
      ],
      [["accept", "*/*"], ...tail("1.1.1.1, 10.0.0.1")],
    ],
    ["hop-by-hop dropped", [["connection", "close"], ["host", "svc"]], [
      ["host", "svc"],
      ...tail("10.0.0.1"),
    ]],
  ];
  for (const [name, input, want] of cases) {
    assertEquals(upstreamRequestHeaders(input, f), want, name);
  }
  const noSource = upstreamRequestHeaders([], { ...f, sourceIdentity: undefined });
  assertEquals(
    noSource.find(([k]) => k === "x-forwarded-client-cert"),
    ["x-forwarded-client-cert", "By=spiffe://td/ns/a/sa/waypoint"],
  );
});

Deno.test("traceContext() continues a valid traceparent and starts a trace otherwise, with fresh hex span ids", () => {
  const parent = `00-${"1".repeat(32)}-${"2".repeat(16)}-01`;
  const t = traceContext(parent);
  assertEquals([t.traceId, t.parentId, t.sampled], ["1".repeat(32), "2".repeat(16), true]);
  assertEquals(traceContext(`00-${"1".repeat(32)}-${"2".repeat(16)}-00`, true).sampled, false);
  for (
    const bad of [
      undefined,
      "",
      "01-" + "1".repeat(32) + "-" + "2".repeat(16) + "-01",
      `00-${"0".repeat(32)}-${"2".repeat(16)}-01`,
      `00-${"1".repeat(32)}-${"0".repeat(16)}-01`,
      `00-${"G".repeat(32)}-${"2".repeat(16)}-01`,
    ]
  ) {
    const n = traceContext(bad, true);
    assertEquals([n.parentId, n.sampled], [undefined, true], String(bad));
    assertOk(/^[0-9a-f]{32}$/.test(n.traceId) && !/^0+$/.test(n.traceId), n.traceId);
  }
  const ids = new Set<string>();
  for (let i = 0; i < 5000; i++) {
    const s = traceContext(parent).spanId;
    assertOk(/^[0-9a-f]{16}$/.test(s), s);
    ids.add(s);
  }
  assertEquals(ids.size, 5000, "span ids do not repeat (random bytes refilled past 4 KiB)");
  assertEquals(formatTraceparent(t), `00-${"1".repeat(32)}-${t.spanId}-01`);
});
