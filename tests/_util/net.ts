/** Network helpers for tests. */

/** A TCP port that was free a moment ago on `hostname`. */
export function freePort(hostname = "127.0.0.1"): number {
  const l = Deno.listen({ hostname, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A TCP relay between a listen address and a target that can stop moving bytes. */
export interface FreezableProxy {
  /** Stops forwarding in both directions; sockets stay open (a half-open path). */
  freeze(): void;
  /** Open client connections. */
  readonly connections: number;
  close(): void;
}

/**
 * Listens on `listen` and relays each connection to `target` until frozen:
 * then bytes are dropped silently while both TCP connections stay up, as on
 * a link that died without a FIN or RST.
 */
export async function freezableProxy(
  listen: { ip: string; port: number },
  target: { ip: string; port: number },
): Promise<FreezableProxy> {
  const net = await import("node:net");
  let frozen = false;
  const sockets = new Set<import("node:net").Socket>();
  const srv = net.createServer((client) => {
    const upstream = net.connect({ host: target.ip, port: target.port });
    for (const [from, to] of [[client, upstream], [upstream, client]]) {
      sockets.add(from);
      from.on("error", () => {});
      from.on("data", (d: Uint8Array) => {
        if (!frozen) to.write(d);
      });
      from.on("close", () => {
        sockets.delete(from);
        if (!frozen) to.destroy();
      });
    }
  });
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(listen.port, listen.ip, () => resolve());
  });
  return {
    freeze() {
      frozen = true;
    },
    get connections() {
      return Math.ceil(sockets.size / 2);
    },
    close() {
      srv.close();
      for (const s of sockets) s.destroy();
    },
  };
}
