/**
 * Loopback address blocks for tests. ztunnels bind their node addresses and
 * apps their workload addresses, and test files run in parallel processes,
 * so each test claims a whole 127.N.0.0/16 of its own.
 *
 * @module
 */

const BLOCKS_DIR = "/tmp/ambit-test-address-blocks";
const claimed: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const d of claimed) {
    try {
      Deno.removeSync(d, { recursive: true });
    } catch { /* gone */ }
  }
});

/** Whether the process that claimed a block is gone. */
function staleClaim(dir: string): boolean {
  try {
    const pid = Number(Deno.readTextFileSync(`${dir}/pid`));
    return pid > 0 && pid !== Deno.pid && !existsSync(`/proc/${pid}`);
  } catch {
    // No pid file yet: a claim being written, or left half-written long ago.
    try {
      return Date.now() - (Deno.statSync(dir).mtime?.getTime() ?? 0) > 60_000;
    } catch {
      return false;
    }
  }
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * A fresh 127.N.0.0/16 block for one test: `addr(node, host)` gives
 * 127.N.node.host. Blocks are claimed with an atomic mkdir under
 * /tmp, so test files running in parallel processes never share one.
 */
export function addressBlock(): (node: number, host: number) => string {
  Deno.mkdirSync(BLOCKS_DIR, { recursive: true });
  const start = Math.floor(Math.random() * 190);
  for (let i = 0; i < 190; i++) {
    const n = 60 + (start + i) % 190;
    const dir = `${BLOCKS_DIR}/${n}`;
    try {
      Deno.mkdirSync(dir);
    } catch {
      if (!staleClaim(dir)) continue;
      Deno.writeTextFileSync(`${dir}/pid`, String(Deno.pid));
      claimed.push(dir);
      return (node, host) => `127.${n}.${node}.${host}`;
    }
    Deno.writeTextFileSync(`${dir}/pid`, String(Deno.pid));
    claimed.push(dir);
    return (node, host) => `127.${n}.${node}.${host}`;
  }
  throw new Error(`no free 127.N.0.0/16 test block under ${BLOCKS_DIR}; remove stale entries`);
}
