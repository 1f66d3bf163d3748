import { assertEquals } from "../../tests/_util/asserts.ts";
import { formatAuthority, parseAuthority } from "./authority.ts";
import {
  decodeProxyHeader,
  encodeProxyV2,
  proxyHeaderForPeer,
  ProxyProtocolError,
} from "./proxy_protocol.ts";

Deno.test("parseAuthority() accepts IP literals with ports and refuses everything else", () => {
  const table: [string | undefined, string | undefined][] = [
    ["10.0.0.5:8080", "10.0.0.5:8080"],
    ["[::1]:80", "[::1]:80"],
    ["[2001:db8:0:0::1]:443", "[2001:db8::1]:443"],
    [undefined, undefined],
    ["", undefined],
    ["10.0.0.5", undefined],
    ["10.0.0.5:0", undefined],
    ["10.0.0.5:65536", undefined],
    ["10.0.0.256:80", undefined],
    ["010.0.0.5:80", undefined],
    ["host.example:80", undefined],
    ["::1:80", undefined],
    ["[::1]80", undefined],
    ["[10.0.0.1]:80", undefined],
    ["10.0.0.5:+80", undefined],
    [`${"1".repeat(70)}:80`, undefined],
  ];
  for (const [input, want] of table) {
    const r = parseAuthority(input);
    assertEquals(r.ok ? formatAuthority(r.target) : undefined, want, String(input));
  }
});

Deno.test("PROXY v2 round-trips v4 and v6 with the SPIFFE TLV; every prefix is incomplete", () => {
  for (
    const [src, dst] of [
      [{ ip: "10.0.0.1", port: 1234 }, { ip: "10.0.0.2", port: 80 }],
      [{ ip: "2001:db8::1", port: 1 }, { ip: "::1", port: 65535 }],
    ]
  ) {
    const bytes = proxyHeaderForPeer(src, dst, "spiffe://td/ns/a/sa/b");
    const r = decodeProxyHeader(new Uint8Array([...bytes, 1, 2, 3]));
    if (r === "incomplete") throw new Error("incomplete");
    assertEquals(r.consumed, bytes.length);
    assertEquals([r.header.source, r.header.destination, r.header.spiffeId], [
      src,
      dst,
      "spiffe://td/ns/a/sa/b",
    ]);
    for (let i = 0; i < bytes.length; i++) {
      assertEquals(decodeProxyHeader(bytes.subarray(0, i)), "incomplete", `prefix ${i}`);
    }
  }
  // The spec's example layout: signature, 0x21, 0x11, length 12, addresses, ports.
  const v4 = encodeProxyV2({
    source: { ip: "1.2.3.4", port: 5 },
    destination: { ip: "6.7.8.9", port: 10 },
  });
  assertEquals([...v4.subarray(12)], [0x21, 0x11, 0, 12, 1, 2, 3, 4, 6, 7, 8, 9, 0, 5, 0, 10]);
});

Deno.test("PROXY decoder reads v1 and refuses malformed headers with a clear error", () => {
  const v1 = new TextEncoder().encode("PROXY TCP4 1.2.3.4 5.6.7.8 1000 80\r\nrest");
  const r = decodeProxyHeader(v1);
  if (r === "incomplete") throw new Error("incomplete");
  assertEquals(r.header.destination, { ip: "5.6.7.8", port: 80 });
  const bad: [string, Uint8Array][] = [
    ["not proxy", new TextEncoder().encode("GET / HTTP/1.1\r\n")],
    ["v1 bad family", new TextEncoder().encode("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n")],
    ["v1 bad port", new TextEncoder().encode("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n")],
    ["v1 too long", new TextEncoder().encode("PROXY " + "x".repeat(120))],
    [
      "v2 bad signature",
      new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0b]),
    ],
  ];
  for (const [name, bytes] of bad) {
    let err: unknown;
    try {
      decodeProxyHeader(bytes);
    } catch (e) {
      err = e;
    }
    assertEquals(err instanceof ProxyProtocolError, true, name);
  }
  const huge = encodeProxyV2({
    source: { ip: "1.2.3.4", port: 5 },
    destination: { ip: "6.7.8.9", port: 10 },
    tlvs: [{ type: 0xe0, value: new Uint8Array(5000) }],
  });
  let err: unknown;
  try {
    decodeProxyHeader(huge);
  } catch (e) {
    err = e;
  }
  assertEquals(String(err).includes("exceeds 4096"), true);
});
