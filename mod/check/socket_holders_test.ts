import { assertEquals } from "../../tests/_util/asserts.ts";
import { parseProcNetTcp } from "../ztunnel/sockets.ts";
import { parseFdListing } from "./_proc.ts";
import { occupyingInodes } from "./socket_holders.ts";

// 127.0.0.1:15008 LISTEN (inode 111), 0.0.0.0:15020 LISTEN (222),
// 127.0.0.1:15008 -> 127.0.0.1:40000 ESTABLISHED (333).
const TCP =
  `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:3AA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 00000000:3AAC 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0
   2: 0100007F:3AA0 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1
`;
// 127.0.0.1:15053 bound UDP (444).
const UDP =
  `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 0100007F:3ACD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 444 2 0 0
`;

Deno.test("occupyingInodes() finds listeners on the address or a wildcard, not connections", () => {
  const tcp = parseProcNetTcp(TCP, 4);
  const udp = parseProcNetTcp(UDP, 4);
  const cases: [string, number, "tcp" | "udp", number[]][] = [
    ["127.0.0.1", 15008, "tcp", [111]],
    ["127.0.0.2", 15008, "tcp", []],
    ["127.0.1.1", 15020, "tcp", [222]],
    ["127.0.0.1", 15053, "udp", [444]],
    ["127.0.0.1", 15053, "tcp", []],
  ];
  for (const [ip, port, proto, want] of cases) {
    const rows = proto === "tcp" ? tcp : udp;
    assertEquals(occupyingInodes(rows, { ip, port, proto }), want, `${ip}:${port}/${proto}`);
  }
});

Deno.test("parseFdListing() maps socket inodes to the pid whose fd links to them", () => {
  const text = `/proc/1/fd/:
total 0
lrwx------ 1 root root 64 Jan  1 00:00 0 -> /dev/null
lrwx------ 1 root root 64 Jan  1 00:00 3 -> socket:[111]

/proc/42/fd/:
total 0
lrwx------ 1 root root 64 Jan  1 00:00 5 -> socket:[222]
lrwx------ 1 root root 64 Jan  1 00:00 6 -> socket:[111]
lr-x------ 1 root root 64 Jan  1 00:00 7 -> pipe:[999]
`;
  assertEquals([...parseFdListing(text)], [[111, 1], [222, 42]]);
});
