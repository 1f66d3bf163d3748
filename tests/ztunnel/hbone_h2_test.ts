/**
 * The HBONE server's HTTP/2 layer (mod/hbone/h2) over real TLS: streams a
 * refusal frees at once, the concurrent stream cap, and protocol errors
 * answered with GOAWAY, driven by node:http2 and by raw frames.
 */
import http2 from "node:http2";
import tls from "node:tls";
import { assertEquals, assertEventually, assertOk } from "../_util/asserts.ts";
import { ErrorCode } from "../../mod/hbone/h2/errors.ts";
import {
  decodeGoaway,
  encodeFrame,
  encodeRstStream,
  encodeSettings,
  Flags,
  FrameType,
  PREFACE,
} from "../../mod/hbone/h2/frames.ts";
import { encodeHeaderBlock } from "../../mod/hbone/h2/hpack.ts";
import { RawPeer } from "../../mod/hbone/h2/_test_peer.ts";
import { addressBlock, type TestMesh, testMesh, twoNodeConfig } from "./_mesh.ts";
import { echoServer } from "./_apps.ts";

const CLIENT = "spiffe://ambit.test/ns/apps/sa/client";

/** A verified TLS connection to node-b's HBONE port, as the client workload. */
async function dialB(mesh: TestMesh, ip: string): Promise<tls.TLSSocket> {
  const c = await mesh.issue(CLIENT);
  const socket = tls.connect({
    host: ip,
    port: 15008,
    cert: c.certPem,
    key: c.keyPem,
    ca: c.caPem,
    ALPNProtocols: ["h2"],
    checkServerIdentity: () => undefined,
  });
  socket.on("error", () => {});
  await new Promise((r) => socket.once("secureConnect", r));
  return socket;
}

Deno.test("HBONE server: a refused request frees its stream at once, even if the client never ends it", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const app = await echoServer(a(2, 10), 8080);
  try {
    const zb = await mesh.ztunnel("node-b");
    const socket = await dialB(mesh, a(2, 1));
    const session = http2.connect(`https://${a(2, 1)}:15008`, { createConnection: () => socket });
    session.on("error", () => {});
    // Port 8081 is declared by nobody: 503. The client sends nothing more.
    const st = session.request({ ":method": "CONNECT", ":authority": `${a(2, 10)}:8081` }, {
      endStream: false,
    });
    st.on("error", () => {});
    let body = "";
    st.setEncoding("utf8");
    st.on("data", (d: string) => body += d);
    const closed = new Promise((r) => st.once("close", r));
    const status = await new Promise((r) => st.once("response", (h) => r(h[":status"])));
    await closed;
    assertEquals(status, 503);
    assertOk(body.includes("no workload at"), body);
    assertEquals(st.rstCode, http2.constants.NGHTTP2_NO_ERROR, "a clean RST_STREAM(NO_ERROR)");
    await assertEventually(() => zb.hboneServer!.openStreams === 0);
    assertEquals(zb.hboneServer!.sessions, 1, "the connection stays");
    session.destroy();
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("HBONE server: streams over the 200 concurrent are refused with REFUSED_STREAM, the rest carry on", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  const app = await echoServer(a(2, 10), 8080);
  try {
    const zb = await mesh.ztunnel("node-b");
    // node:http2 queues what the server's SETTINGS forbid: raw frames go past it.
    const peer = new RawPeer(await dialB(mesh, a(2, 1)));
    const block = encodeHeaderBlock([[":method", "CONNECT"], [":authority", `${a(2, 10)}:8080`]]);
    peer.send(PREFACE, encodeSettings([]));
    for (let id = 1; id <= 409; id += 2) {
      peer.send(encodeFrame(FrameType.HEADERS, Flags.END_HEADERS, id, block));
    }
    const answered = () => peer.frames.filter((f) => f.type === FrameType.HEADERS).length;
    const refused = () =>
      peer.frames.filter((f) =>
        f.type === FrameType.RST_STREAM &&
        new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0) ===
          ErrorCode.REFUSED_STREAM
      ).map((f) => f.stream);
    await assertEventually(() => answered() === 200 && refused().length === 5);
    assertEquals(refused(), [401, 403, 405, 407, 409]);
    assertEquals(zb.hboneServer!.openStreams, 200);
    // Reset them all: the tunnels close, and the connection still takes a new one.
    for (let id = 1; id <= 399; id += 2) peer.send(encodeRstStream(id, ErrorCode.CANCEL));
    await assertEventually(() => zb.hboneServer!.openStreams === 0 && zb.registry.size === 0);
    peer.send(encodeFrame(FrameType.HEADERS, Flags.END_HEADERS, 411, block));
    await assertEventually(() => answered() === 201);
    peer.close();
  } finally {
    app.close();
    await mesh.close();
  }
});

Deno.test("HBONE server: a protocol error on an authenticated connection is answered with GOAWAY and a close", async () => {
  const a = addressBlock();
  const mesh = await testMesh(twoNodeConfig(a));
  try {
    const zb = await mesh.ztunnel("node-b");
    const peer = new RawPeer(await dialB(mesh, a(2, 1)));
    peer.send(PREFACE, encodeSettings([]), encodeFrame(FrameType.DATA, 0, 0, new Uint8Array(1)));
    const g = await peer.wait((f) => f.type === FrameType.GOAWAY, "GOAWAY");
    assertEquals(decodeGoaway(0, g.payload).code, ErrorCode.PROTOCOL_ERROR);
    await peer.closed;
    await assertEventually(() => zb.hboneServer!.sessions === 0);
  } finally {
    await mesh.close();
  }
});
