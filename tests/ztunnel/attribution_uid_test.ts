/**
 * Source attribution by socket owner on a real host: two workloads share one
 * address and are told apart by the OS user that owns the connecting socket
 * (/proc/net/tcp). Clients run as other users through setpriv, so this needs
 * root (CI has it).
 */
import { assertEquals, assertIncludes } from "../_util/asserts.ts";
import { startSampleApp } from "../../mod/lab/apps.ts";
import { addressBlock, testMesh } from "./_mesh.ts";
import { AMBIT_RUN_FLAGS } from "../../mod/permissions.ts";

const isRoot = Deno.uid() === 0;
const hasSetpriv = (() => {
  try {
    return Deno.statSync("/usr/bin/setpriv").isFile;
  } catch {
    return false;
  }
})();

function config(a: (n: number, h: number) => string) {
  return `
apiVersion: ambit.io/v1alpha1
kind: Mesh
metadata: { name: mesh }
spec: { trustDomain: ambit.test }
---
apiVersion: ambit.io/v1alpha1
kind: Node
metadata: { name: node-a }
spec: { address: ${a(1, 1)} }
---
apiVersion: ambit.io/v1alpha1
kind: Node
metadata: { name: node-b }
spec: { address: ${a(2, 1)}, outbound: { vips: false } }
---
apiVersion: v1
kind: Namespace
metadata: { name: apps, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: web, namespace: apps }
spec: { node: node-a, address: ${a(1, 10)}, serviceAccount: web, user: nobody }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: batch, namespace: apps }
spec: { node: node-a, address: ${a(1, 10)}, serviceAccount: batch, user: 4242 }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: echo, namespace: apps }
spec:
  node: node-b
  address: ${a(2, 10)}
  serviceAccount: echo
  proxyProtocol: true
  labels: { app: echo }
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: apps }
spec:
  clusterIP: ${a(3, 1)}
  selector: { app: echo }
  ports: [{ port: 80, targetPort: 8080 }]
`;
}

/** Connects from `from` to ip:port as `uid` (a real process), returns the reply. */
async function askAs(uid: number, from: string, ip: string, port: number): Promise<string> {
  const script = `
import socket, sys
s = socket.socket()
s.settimeout(10)
s.bind((sys.argv[1], 0))
try:
    s.connect((sys.argv[2], int(sys.argv[3])))
    s.sendall(b"hello")
    s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        d = s.recv(4096)
        if not d: break
        out += d
    sys.stdout.write(out.decode())
except OSError as e:
    sys.stdout.write("error: " + str(e))
`;
  const out = await new Deno.Command("/usr/bin/setpriv", {
    args: [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      "/usr/bin/python3",
      "-c",
      script,
      from,
      ip,
      String(port),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test({
  name: "outbound connections from one address are attributed by the socket's owning user",
  ignore: !isRoot || !hasSetpriv,
  async fn() {
    const a = addressBlock();
    const mesh = await testMesh(config(a));
    const app = await startSampleApp("echo", a(2, 10), 8080, { proxyProtocol: true });
    try {
      await mesh.ztunnel("node-a");
      await mesh.ztunnel("node-b");
      // nobody (uid 65534, by name from /etc/passwd) runs web; uid 4242 runs batch.
      assertEquals(
        await askAs(65534, a(1, 10), a(3, 1), 80),
        "echo: hello (from spiffe://ambit.test/ns/apps/sa/web)",
      );
      assertEquals(
        await askAs(4242, a(1, 10), a(3, 1), 80),
        "echo: hello (from spiffe://ambit.test/ns/apps/sa/batch)",
      );
      // Any other user gets nothing: it may not borrow either identity.
      const stranger = await askAs(4343, a(1, 10), a(3, 1), 80);
      // Refused: closed or reset, whichever the client sees first; never an answer.
      assertEquals(stranger === "" || stranger.startsWith("error:"), true, stranger);
      const refusal = mesh.logs.find((l) =>
        l.msg === "outbound connection refused: not attributed to a workload"
      );
      assertEquals(refusal?.uid, 4343);
      assertIncludes(
        String(refusal?.reason),
        "uid 4343 runs none of apps/web (user nobody), apps/batch (user 4242)",
      );
    } finally {
      app.close();
      await mesh.close();
    }
  },
});

Deno.test("socket owners are found under ambit's own flags, not only --allow-all (Deno refuses /proc without it)", async () => {
  const probe = new URL("./_socket_owner_probe.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...AMBIT_RUN_FLAGS, probe],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assertEquals(out.code, 0, dec.decode(out.stderr));
  const r = JSON.parse(dec.decode(out.stdout));
  assertEquals(r.uid, r.expected);
});
