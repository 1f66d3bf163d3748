/**
 * Run with exactly ambit's flags (not --allow-all): connects to itself and
 * prints the uid socketOwner() finds for the client socket, as JSON.
 *
 * @module
 */
import { socketOwner } from "../../mod/ztunnel/sockets.ts";

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
const server = await listener.accept();
const peer = server.remoteAddr as Deno.NetAddr;
const uid = await socketOwner(
  { ip: peer.hostname, port: peer.port },
  { ip: "127.0.0.1", port: listener.addr.port },
);
console.log(JSON.stringify({ uid, expected: Deno.uid() }));
client.close();
server.close();
listener.close();
