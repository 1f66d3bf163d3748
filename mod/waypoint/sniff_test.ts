import { assertEquals } from "../../tests/_util/asserts.ts";
import { classify } from "./sniff.ts";

Deno.test("classify() tells HTTP/1, the HTTP/2 preface and other bytes apart", () => {
  const table: [string, string | undefined][] = [
    ["", undefined],
    ["G", undefined],
    ["GET", undefined],
    ["GET ", "h1"],
    ["POST /x HTTP/1.1\r\n", "h1"],
    ["OPTIONS * HTTP/1.1", "h1"],
    ["PRI", undefined],
    ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "h2"],
    ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", "h2"],
    ["PRI * HTTP/1.1\r\n", "h1"],
    ["\x16\x03\x01", "tcp"],
    ["get / HTTP/1.1", "tcp"],
    ["SSH-2.0-OpenSSH", "tcp"],
    ["hello", "tcp"],
  ];
  for (const [prefix, want] of table) assertEquals(classify(prefix), want, JSON.stringify(prefix));
});
