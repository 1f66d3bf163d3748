/**
 * The node's certificate manager: holds a certificate per local identity in
 * memory, fetches ahead of time ({@link CertManager.sync}) and on demand
 * ({@link CertManager.get}, concurrent callers share one CSR), renews at
 * half-life, retries with jittered exponential backoff while keeping a
 * still-valid certificate, and forgets identities that left the node.
 * Private keys are generated here and never leave the process.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { type Clock, systemClock, type TimerId } from "../util/clock.ts";
import { settleWithin } from "../util/settle.ts";
import { CaRefusedError, type CertificateSource } from "./ca_client.ts";
import {
  createCsr,
  exportPrivateKeyPem,
  generateKeyPair,
  spiffeIdOf,
  toPem,
  x509,
} from "./certs.ts";

/** A workload certificate ready for TLS. */
export interface WorkloadCert {
  readonly id: string;
  /** Leaf then chain, PEM (node:tls `cert`). */
  readonly certPem: string;
  /** PKCS#8 PEM (node:tls `key`). */
  readonly keyPem: string;
  readonly leaf: x509.X509Certificate;
  readonly serial: string;
  readonly notBefore: number;
  readonly notAfter: number;
}

/** What `/certs` and metrics show per identity. */
export interface CertStatus {
  readonly id: string;
  readonly state: "valid" | "fetching" | "failing" | "expired" | "missing";
  readonly serial?: string;
  readonly notBefore?: string;
  readonly notAfter?: string;
  /** When the next renewal or retry is due. */
  readonly nextAttempt?: string;
  readonly failures: number;
  readonly lastError?: string;
}

/** Options for {@link CertManager}. */
export interface CertManagerOptions {
  readonly source: CertificateSource;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** First retry delay (default 500 ms, as Istio). */
  readonly initialBackoffMs?: number;
  /** Longest retry delay (default 150 s, as Istio). */
  readonly maxBackoffMs?: number;
  /** Random source for jitter (default Math.random). */
  readonly random?: () => number;
  /** Initial trust bundle (e.g. from the node credential), PEM. */
  readonly bundlePem?: string;
}

interface Entry {
  cert?: WorkloadCert;
  inflight?: Promise<WorkloadCert>;
  timer?: TimerId;
  nextAttempt?: number;
  failures: number;
  lastError?: string;
}

/** Counters for metrics. */
export interface CertManagerStats {
  fetches: number;
  failures: number;
}

/** Keeps the certificates of a node's identities current. */
export class CertManager {
  readonly #o: CertManagerOptions;
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry>();
  #roots: x509.X509Certificate[] = [];
  #closed = false;
  readonly #bundleListeners = new Set<() => void>();
  readonly stats: CertManagerStats = { fetches: 0, failures: 0 };

  constructor(options: CertManagerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    if (options.bundlePem) {
      this.#roots = [
        ...options.bundlePem.matchAll(
          /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
        ),
      ]
        .map((m) => new x509.X509Certificate(m[0]));
    }
  }

  /** The trust bundle (every root accepted; several during a rotation). */
  get roots(): readonly x509.X509Certificate[] {
    return this.#roots;
  }

  /** The trust bundle as PEM. */
  get rootsPem(): string {
    return toPem(this.#roots);
  }

  /** Calls `fn` when the trust bundle changes; returns an unsubscribe function. */
  onBundleChange(fn: () => void): () => void {
    this.#bundleListeners.add(fn);
    return () => this.#bundleListeners.delete(fn);
  }

  /** Makes the tracked set exactly `ids`: fetches new ones now, forgets the rest. */
  sync(ids: Iterable<string>): void {
    const want = new Set(ids);
    for (const [id, e] of this.#entries) {
      if (want.has(id)) continue;
      if (e.timer !== undefined) this.#clock.clearTimeout(e.timer);
      this.#entries.delete(id);
      this.#o.logger?.info("certificate forgotten: identity left the node", { identity: id });
    }
    for (const id of want) {
      if (!this.#entries.has(id)) {
        this.#entries.set(id, { failures: 0 });
        this.#fetch(id).catch(() => {}); // failures are retried by the schedule
      }
    }
  }

  /** The valid certificate for `id` right now, if any. */
  peek(id: string): WorkloadCert | undefined {
    const c = this.#entries.get(id)?.cert;
    const now = this.#clock.now();
    return c && now >= c.notBefore && now < c.notAfter ? c : undefined;
  }

  /**
   * The certificate for `id`: the valid one, or the result of the fetch in
   * flight, or a new fetch. Concurrent callers share one CSR.
   */
  get(id: string): Promise<WorkloadCert> {
    const valid = this.peek(id);
    if (valid) return Promise.resolve(valid);
    let e = this.#entries.get(id);
    if (!e) {
      e = { failures: 0 };
      this.#entries.set(id, e);
    }
    return e.inflight ?? this.#fetch(id);
  }

  /** Resolves when no fetch is in flight (tests use it with a fake clock). */
  async idle(timeoutMs?: number): Promise<void> {
    const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const inflight = [...this.#entries.values()].map((e) => e.inflight).filter(Boolean);
      if (inflight.length === 0) return;
      if (deadline === Infinity) {
        await Promise.allSettled(inflight);
        continue;
      }
      await settleWithin(inflight, deadline - Date.now());
    }
  }

  /** Status of every tracked identity. */
  list(): CertStatus[] {
    const now = this.#clock.now();
    return [...this.#entries].sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, e]) => {
      const c = e.cert;
      const state = e.inflight && !c
        ? "fetching"
        : c && now < c.notAfter
        ? (e.failures > 0 ? "failing" : "valid")
        : c
        ? "expired"
        : e.failures > 0
        ? "failing"
        : "missing";
      return {
        id,
        state,
        serial: c?.serial,
        notBefore: c ? new Date(c.notBefore).toISOString() : undefined,
        notAfter: c ? new Date(c.notAfter).toISOString() : undefined,
        nextAttempt: e.nextAttempt ? new Date(e.nextAttempt).toISOString() : undefined,
        failures: e.failures,
        lastError: e.lastError,
      };
    });
  }

  #fetch(id: string): Promise<WorkloadCert> {
    const e = this.#entries.get(id)!;
    if (e.timer !== undefined) this.#clock.clearTimeout(e.timer);
    e.timer = undefined;
    e.nextAttempt = undefined;
    const p = this.#fetchOnce(id).then(
      (cert) => {
        if (this.#entries.get(id) !== e || this.#closed) return cert; // forgotten meanwhile
        e.cert = cert;
        e.failures = 0;
        e.lastError = undefined;
        // Renew at half-life.
        this.#schedule(
          id,
          e,
          cert.notBefore + (cert.notAfter - cert.notBefore) / 2 - this.#clock.now(),
        );
        return cert;
      },
      (err: Error) => {
        this.stats.failures++;
        if (this.#entries.get(id) === e && !this.#closed) {
          e.failures++;
          e.lastError = err.message;
          const delay = this.#backoff(e.failures);
          this.#schedule(id, e, delay);
          const still = e.cert && this.#clock.now() < e.cert.notAfter;
          this.#o.logger?.[err instanceof CaRefusedError ? "warn" : "info"](
            still
              ? "certificate renewal failed; keeping the valid certificate"
              : "certificate fetch failed",
            { identity: id, attempt: e.failures, retryInMs: Math.round(delay), error: err.message },
          );
        }
        throw err;
      },
    ).finally(() => {
      if (e.inflight === p) e.inflight = undefined;
    });
    e.inflight = p;
    return p;
  }

  #schedule(id: string, e: Entry, delayMs: number): void {
    const delay = Math.max(0, delayMs);
    e.nextAttempt = this.#clock.now() + delay;
    e.timer = this.#clock.setTimeout(() => {
      e.timer = undefined;
      if (this.#entries.get(id) === e && !this.#closed) this.#fetch(id).catch(() => {});
    }, delay);
  }

  /** Exponential from the initial delay, capped, with ±50% jitter. */
  #backoff(failures: number): number {
    const base = Math.min(
      this.#o.maxBackoffMs ?? 150_000,
      (this.#o.initialBackoffMs ?? 500) * 2 ** (failures - 1),
    );
    return base * (0.5 + (this.#o.random ?? Math.random)());
  }

  async #fetchOnce(id: string): Promise<WorkloadCert> {
    this.stats.fetches++;
    const keys = await generateKeyPair();
    const signed = await this.#o.source.sign(await createCsr(id, keys));
    const leaf = signed.chain[0];
    if (!leaf) throw new Error("CA returned an empty chain");
    if (spiffeIdOf(leaf) !== id) {
      throw new Error(`CA returned a certificate for ${spiffeIdOf(leaf)}, not ${id}`);
    }
    const ours = new Uint8Array(await crypto.subtle.exportKey("spki", keys.publicKey));
    const theirs = new Uint8Array(leaf.publicKey.rawData);
    if (ours.length !== theirs.length || ours.some((b, i) => b !== theirs[i])) {
      throw new Error("CA returned a certificate for a different key");
    }
    if (signed.roots.length > 0) this.#setRoots(signed.roots);
    this.#o.logger?.info("certificate issued", {
      identity: id,
      serial: leaf.serialNumber,
      notAfter: leaf.notAfter.toISOString(),
    });
    return {
      id,
      certPem: toPem(signed.chain),
      keyPem: await exportPrivateKeyPem(keys.privateKey),
      leaf,
      serial: leaf.serialNumber,
      notBefore: leaf.notBefore.getTime(),
      notAfter: leaf.notAfter.getTime(),
    };
  }

  #setRoots(roots: readonly x509.X509Certificate[]): void {
    const same = roots.length === this.#roots.length &&
      roots.every((r, i) => r.equal(this.#roots[i]));
    if (same) return;
    this.#roots = [...roots];
    this.#o.logger?.info("trust bundle updated", { roots: roots.length });
    for (const fn of this.#bundleListeners) fn();
  }

  /** Stops all timers. */
  close(): void {
    this.#closed = true;
    for (const e of this.#entries.values()) {
      if (e.timer !== undefined) this.#clock.clearTimeout(e.timer);
    }
  }
}
