import { assertEquals, assertOk, assertRejects } from "../../tests/_util/asserts.ts";
import { FakeClock } from "../util/clock.ts";
import { initCaDir, loadCaDir } from "./ca_dir.ts";
import { CaUnavailableError, type CertificateSource, LocalCa, type Signed } from "./ca_client.ts";
import { CertManager } from "./cert_manager.ts";

const ID = "spiffe://ambit.test/ns/shop/sa/web";
const HOUR = 3600e3;

/** A CA that can be switched off, counting the CSRs it sees. */
class FlakyCa implements CertificateSource {
  up = true;
  csrs = 0;
  constructor(readonly inner: CertificateSource) {}
  async sign(csr: string): Promise<Signed> {
    this.csrs++;
    await new Promise((r) => setTimeout(r, 5)); // a real round trip's worth of asynchrony
    if (!this.up) throw new CaUnavailableError("CA down (test)");
    return this.inner.sign(csr);
  }
}

async function setup(maxBackoffMs?: number) {
  const dir = await Deno.makeTempDir();
  await initCaDir(dir, { trustDomain: "ambit.test" });
  const clock = new FakeClock(Date.now());
  const ca = new FlakyCa(new LocalCa(await loadCaDir(dir), 24 * HOUR, () => new Date(clock.now())));
  const mgr = new CertManager({ source: ca, clock, random: () => 0.5, maxBackoffMs });
  const cleanup = async () => {
    mgr.close();
    await Deno.remove(dir, { recursive: true });
  };
  return { clock, ca, mgr, cleanup };
}

Deno.test("CertManager: concurrent first requests for one identity share one CSR", async () => {
  const { ca, mgr, cleanup } = await setup();
  try {
    const certs = await Promise.all(Array.from({ length: 20 }, () => mgr.get(ID)));
    assertEquals(ca.csrs, 1);
    assertOk(certs.every((c) => c === certs[0]));
    assertEquals(mgr.list()[0].state, "valid");
  } finally {
    await cleanup();
  }
});

Deno.test("CertManager: renews at half-life (fake clock, no sleeping)", async () => {
  const { clock, ca, mgr, cleanup } = await setup();
  try {
    mgr.sync([ID]);
    await mgr.idle();
    const first = mgr.peek(ID)!;
    const halfLife = first.notBefore + (first.notAfter - first.notBefore) / 2;
    assertEquals(clock.pending, [halfLife]);
    await clock.advance(halfLife - clock.now() - 1000, () => mgr.idle());
    assertEquals(ca.csrs, 1, "not renewed before half-life");
    await clock.advance(1000, () => mgr.idle());
    assertEquals(ca.csrs, 2, "renewed at half-life");
    const second = mgr.peek(ID)!;
    assertOk(second.serial !== first.serial);
    assertOk(second.notAfter > first.notAfter);
  } finally {
    await cleanup();
  }
});

Deno.test("CertManager: with the CA down it keeps the valid certificate and retries with backoff", async () => {
  const { clock, ca, mgr, cleanup } = await setup();
  try {
    mgr.sync([ID]);
    await mgr.idle();
    const first = mgr.peek(ID)!;
    ca.up = false;
    const halfLife = first.notBefore + (first.notAfter - first.notBefore) / 2;
    await clock.advance(halfLife - clock.now(), () => mgr.idle());
    assertEquals(ca.csrs, 2);
    assertEquals(mgr.peek(ID)?.serial, first.serial, "still serving the valid certificate");
    const status = mgr.list()[0];
    assertEquals([status.state, status.failures], ["failing", 1]);
    // Backoff doubles: 500 ms, 1 s, 2 s, ... (jitter fixed at 1.0 here).
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const due = clock.pending[0] - clock.now();
      delays.push(Math.round(due));
      await clock.advance(due, () => mgr.idle());
    }
    assertEquals(delays, [500, 1000, 2000, 4000, 8000]);
    assertEquals(mgr.peek(ID)?.serial, first.serial);
    ca.up = true;
    await clock.advance(clock.pending[0] - clock.now(), () => mgr.idle());
    assertOk(mgr.peek(ID)!.serial !== first.serial, "renewed once the CA is back");
    assertEquals(mgr.list()[0].failures, 0);
  } finally {
    await cleanup();
  }
});

Deno.test("CertManager: backoff is capped at 150 s", async () => {
  const { clock, ca, mgr, cleanup } = await setup();
  try {
    ca.up = false;
    mgr.sync([ID]);
    await mgr.idle();
    let last = 0;
    for (let i = 0; i < 14; i++) {
      last = clock.pending[0] - clock.now();
      await clock.advance(last, () => mgr.idle());
    }
    assertEquals(Math.round(last), 150_000);
    assertEquals(mgr.peek(ID), undefined);
    await assertRejects(() => mgr.get(ID), CaUnavailableError, "CA down");
  } finally {
    await cleanup();
  }
});

Deno.test("CertManager: forgets identities that left the node", async () => {
  const { clock, mgr, cleanup } = await setup();
  try {
    const other = "spiffe://ambit.test/ns/shop/sa/db";
    mgr.sync([ID, other]);
    await mgr.idle();
    assertEquals(clock.pending.length, 2);
    mgr.sync([other]);
    assertEquals(mgr.peek(ID), undefined);
    assertEquals(mgr.list().map((s) => s.id), [other]);
    assertEquals(clock.pending.length, 1, "its renewal timer is gone");
  } finally {
    await cleanup();
  }
});

Deno.test("CertManager: an expired certificate is not served", async () => {
  const { clock, ca, mgr, cleanup } = await setup(4 * HOUR);
  try {
    mgr.sync([ID]);
    await mgr.idle();
    ca.up = false;
    await clock.advance(25 * HOUR, () => mgr.idle());
    assertEquals(mgr.peek(ID), undefined);
    assertEquals(mgr.list()[0].state, "expired");
  } finally {
    await cleanup();
  }
});
