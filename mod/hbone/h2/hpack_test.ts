import { assertEquals, assertOk } from "../../../tests/_util/asserts.ts";
import {
  encodeHeaderBlock,
  type HeaderField,
  HpackDecoder,
  HpackError,
  readInt,
  writeInt,
} from "./hpack.ts";
import {
  HUFFMAN_CODES,
  huffmanDecode,
  huffmanEncode,
  HuffmanError,
  huffmanLength,
} from "./huffman.ts";

const hex = (s: string) =>
  new Uint8Array(s.replace(/\s+/g, "").match(/../g)!.map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("HPACK integers: the RFC 7541 C.1 examples both ways, and limits", () => {
  const table: [value: number, prefix: number, wire: string][] = [
    [10, 5, "0a"], // C.1.1
    [1337, 5, "1f9a0a"], // C.1.2
    [42, 8, "2a"], // C.1.3
    [31, 5, "1f00"], // exactly the prefix maximum
    [127, 7, "7f00"],
    [0, 4, "00"],
  ];
  for (const [value, prefix, wire] of table) {
    const out: number[] = [];
    writeInt(out, value, prefix, 0);
    assertEquals(toHex(new Uint8Array(out)), wire, `encode ${value}/${prefix}`);
    assertEquals(readInt({ b: hex(wire), o: 0 }, prefix), value, `decode ${wire}`);
  }
  for (const bad of ["1f", "1f9a", "1fffffffffff0f"]) {
    let err: unknown;
    try {
      readInt({ b: hex(bad), o: 0 }, 5);
    } catch (e) {
      err = e;
    }
    assertOk(err instanceof HpackError, `${bad}: ${err}`);
  }
});

Deno.test("HPACK Huffman: the RFC 7541 Appendix C strings, every octet, and bad padding", () => {
  const table: [string, string][] = [
    ["www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"],
    ["no-cache", "a8eb 1064 9cbf"],
    ["custom-key", "25a8 49e9 5ba9 7d7f"],
    ["custom-value", "25a8 49e9 5bb8 e8b4 bf"],
    ["302", "6402"],
    ["private", "aec3 771a 4b"],
    ["Mon, 21 Oct 2013 20:13:21 GMT", "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"],
    ["https://www.example.com", "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"],
    ["gzip", "9bd9 ab"],
  ];
  for (const [text, wire] of table) {
    assertEquals(huffmanDecode(hex(wire)), text);
    const out = new Uint8Array(huffmanLength(text));
    assertEquals(huffmanEncode(text, out, 0), out.length);
    assertEquals(toHex(out), wire.replace(/\s+/g, ""), text);
  }
  const all = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
  const out = new Uint8Array(huffmanLength(all));
  huffmanEncode(all, out, 0);
  assertEquals(huffmanDecode(out), all, "every octet round-trips");
  const bad: [string, string][] = [
    ["ff ff ff ff", "EOS"], // the first 30 ones are EOS
    ["f8 ff", "longer than 7 bits"], // '&' (11111000), then 8 bits of padding
    ["00", "padding is not all ones"], // '0' (00000), then 000
  ];
  for (const [wire, why] of bad) {
    let err: unknown;
    try {
      huffmanDecode(hex(wire));
    } catch (e) {
      err = e;
    }
    assertOk(err instanceof HuffmanError && err.message.includes(why), `${wire}: ${err}`);
  }
  assertEquals(huffmanDecode(hex("1f")), "a", "a code then three one bits of padding");
});

Deno.test("the Huffman table is the canonical, complete code RFC 7541 Appendix B describes", () => {
  assertEquals(HUFFMAN_CODES.length, 257);
  const order = [...HUFFMAN_CODES.keys()].sort((a, b) =>
    HUFFMAN_CODES[a][1] - HUFFMAN_CODES[b][1] || a - b
  );
  let code = 0;
  let prev = HUFFMAN_CODES[order[0]][1];
  let kraft = 0;
  for (const [i, sym] of order.entries()) {
    const bits = HUFFMAN_CODES[sym][1];
    if (i > 0) code = (code + 1) * 2 ** (bits - prev);
    prev = bits;
    kraft += 2 ** -bits;
    assertEquals(HUFFMAN_CODES[sym][0], code, `symbol ${sym}`);
  }
  assertEquals(kraft, 1);
  assertEquals(HUFFMAN_CODES[256], [0x3fffffff, 30], "EOS");
});

/** One block of an Appendix C sequence: wire, the decoded list, the table after it. */
type Step = [wire: string, headers: HeaderField[], table: HeaderField[], size: number];

const REQ1: HeaderField[] = [
  [":method", "GET"],
  [":scheme", "http"],
  [":path", "/"],
  [":authority", "www.example.com"],
];
const REQ2: HeaderField[] = [...REQ1, ["cache-control", "no-cache"]];
const REQ3: HeaderField[] = [
  [":method", "GET"],
  [":scheme", "https"],
  [":path", "/index.html"],
  [":authority", "www.example.com"],
  ["custom-key", "custom-value"],
];
const T1: HeaderField[] = [[":authority", "www.example.com"]];
const T2: HeaderField[] = [["cache-control", "no-cache"], ...T1];
const T3: HeaderField[] = [["custom-key", "custom-value"], ...T2];

const DATE1 = "Mon, 21 Oct 2013 20:13:21 GMT";
const DATE2 = "Mon, 21 Oct 2013 20:13:22 GMT";
const LOC = "https://www.example.com";
const COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RES1: HeaderField[] = [
  [":status", "302"],
  ["cache-control", "private"],
  ["date", DATE1],
  ["location", LOC],
];
const RES2: HeaderField[] = [[":status", "307"], ...RES1.slice(1)];
const RES3: HeaderField[] = [
  [":status", "200"],
  ["cache-control", "private"],
  ["date", DATE2],
  ["location", LOC],
  ["content-encoding", "gzip"],
  ["set-cookie", COOKIE],
];
const RT1: HeaderField[] = [
  ["location", LOC],
  ["date", DATE1],
  ["cache-control", "private"],
  [":status", "302"],
];
const RT2: HeaderField[] = [[":status", "307"], ...RT1.slice(0, 3)];
const RT3: HeaderField[] = [["set-cookie", COOKIE], ["content-encoding", "gzip"], [
  "date",
  DATE2,
]];

const SEQUENCES: [name: string, tableSize: number, steps: Step[]][] = [
  ["C.3 requests without Huffman", 4096, [
    ["8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", REQ1, T1, 57],
    ["8286 84be 5808 6e6f 2d63 6163 6865", REQ2, T2, 110],
    [
      "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
      REQ3,
      T3,
      164,
    ],
  ]],
  ["C.4 requests with Huffman", 4096, [
    ["8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", REQ1, T1, 57],
    ["8286 84be 5886 a8eb 1064 9cbf", REQ2, T2, 110],
    ["8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", REQ3, T3, 164],
  ]],
  ["C.5 responses without Huffman, 256-octet table", 256, [
    [
      "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133" +
      "2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70" +
      "6c65 2e63 6f6d",
      RES1,
      RT1,
      222,
    ],
    ["4803 3330 37c1 c0bf", RES2, RT2, 222],
    [
      "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d" +
      "54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049" +
      "5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e" +
      "3d31",
      RES3,
      RT3,
      215,
    ],
  ]],
  ["C.6 responses with Huffman, 256-octet table", 256, [
    [
      "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6" +
      "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
      RES1,
      RT1,
      222,
    ],
    ["4883 640e ffc1 c0bf", RES2, RT2, 222],
    [
      "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab" +
      "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f" +
      "9587 3160 65c0 03ed 4ee5 b106 3d50 07",
      RES3,
      RT3,
      215,
    ],
  ]],
];

Deno.test("HpackDecoder decodes the RFC 7541 Appendix C sequences, table and evictions included", () => {
  for (const [name, tableSize, steps] of SEQUENCES) {
    const d = new HpackDecoder(tableSize);
    for (const [i, [wire, headers, table, size]] of steps.entries()) {
      const got = d.decode(hex(wire));
      assertEquals(got, { headers, oversized: false }, `${name} #${i + 1}`);
      assertEquals(d.table, table, `${name} #${i + 1} table`);
      assertEquals(d.tableSize, size, `${name} #${i + 1} size`);
    }
  }
});

Deno.test("HpackDecoder: the C.2 literal forms, size updates and the list size limit", () => {
  const d = new HpackDecoder();
  // C.2.1 with indexing, C.2.2 without, C.2.3 never indexed, C.2.4 indexed.
  assertEquals(
    d.decode(hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")).headers,
    [["custom-key", "custom-header"]],
  );
  assertEquals(d.tableSize, 55);
  assertEquals(d.decode(hex("040c 2f73 616d 706c 652f 7061 7468")).headers, [[
    ":path",
    "/sample/path",
  ]]);
  assertEquals(d.decode(hex("1008 7061 7373 776f 7264 0673 6563 7265 74")).headers, [[
    "password",
    "secret",
  ]]);
  assertEquals(d.decode(hex("82")).headers, [[":method", "GET"]]);
  assertEquals(d.tableSize, 55, "only the first form adds to the table");
  // A size update to 0 empties the table; back up to 4096 is allowed, more is not.
  d.decode(hex("20 3fe1 1f"));
  assertEquals([d.tableSize, d.table.length], [0, 0]);
  // The list limit: the block is still processed (the table stays in step).
  const big = d.decode(
    hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572 be"),
    60,
  );
  assertEquals(big, { headers: [["custom-key", "custom-header"]], oversized: true });
  assertEquals(d.tableSize, 55);
});

Deno.test("HpackDecoder refuses malformed blocks with HpackError", () => {
  const table: [string, string][] = [
    ["80", "index 0"],
    ["c0", "beyond the tables"], // index 64, empty dynamic table
    ["ff", "ends inside an integer"],
    ["0005 6162", "overruns"], // name of 5 octets, 2 present
    ["00", "ends before a string"],
    ["41", "ends before a string"], // :authority, then no value
    ["3fe2 1f", "exceeds the limit"], // size update to 4097
    ["82 20", "after a header field"],
    ["0081 ff", "longer than 7 bits"], // a Huffman name of 8 one bits: only padding
  ];
  for (const [wire, why] of table) {
    let err: unknown;
    try {
      new HpackDecoder().decode(hex(wire));
    } catch (e) {
      err = e;
    }
    assertOk(err instanceof HpackError, `${wire}: ${err}`);
    assertOk(err.message.includes(why), `${wire}: ${err.message}`);
  }
});

Deno.test("encodeHeaderBlock() round-trips through the decoder, using static entries and Huffman", () => {
  const fields: HeaderField[] = [
    [":method", "CONNECT"],
    [":authority", "10.0.0.5:8080"],
    [":status", "200"],
    ["forwarded", 'for="10.0.0.1:5555";host=echo.apps.svc.cluster.local'],
    ["baggage", "k8s.namespace.name=apps,service.name=client"],
    ["x-odd", "\x01\xff"],
    ["empty", ""],
  ];
  const block = encodeHeaderBlock(fields, { tableSizeZero: true });
  assertEquals(block[0], 0x20, "starts with a size update to 0");
  const d = new HpackDecoder();
  assertEquals(d.decode(block).headers, fields);
  assertEquals(d.tableSize, 0, "nothing was added to the peer's table");
  assertEquals(toHex(encodeHeaderBlock([[":status", "200"]])), "88", "fully indexed");
  assertOk(block.length < fields.reduce((n, [a, b]) => n + a.length + b.length, 0));
  let err: unknown;
  try {
    encodeHeaderBlock([["x", "\u2603"]]);
  } catch (e) {
    err = e;
  }
  assertOk(err instanceof TypeError);
});
