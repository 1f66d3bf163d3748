/**
 * Live proxied connections, so a reload can re-check them: a connection the
 * new policy denies, or whose workload left, is closed.
 *
 * @module
 */

/** One live connection. */
export interface TrackedConnection {
  readonly direction: "inbound" | "outbound";
  /** The local workload (`namespace/name`). */
  readonly workload: string;
  readonly started: number;
  /** Re-checks the connection against the current config; a string says why it must close. */
  recheck(): string | undefined;
  /** Closes both sides. */
  close(reason: string): void;
}

/** The set of live connections. */
export class ConnectionRegistry {
  #live = new Set<TrackedConnection>();

  /** Adds `c`; returns the function that removes it. */
  add(c: TrackedConnection): () => void {
    this.#live.add(c);
    return () => this.#live.delete(c);
  }

  /** Number of live connections. */
  get size(): number {
    return this.#live.size;
  }

  /** The oldest live connections, described for logs. */
  describe(max = 5): string[] {
    return [...this.#live].sort((a, b) => a.started - b.started).slice(0, max).map((c) =>
      `${c.direction} ${c.workload} for ${Math.round((Date.now() - c.started) / 1000)} s`
    );
  }

  /** Live connections by direction. */
  count(direction: "inbound" | "outbound"): number {
    let n = 0;
    for (const c of this.#live) if (c.direction === direction) n++;
    return n;
  }

  /** Re-checks every connection; closes those that fail. Returns how many closed. */
  recheck(): { checked: number; closed: { workload: string; reason: string }[] } {
    const closed: { workload: string; reason: string }[] = [];
    let checked = 0;
    for (const c of [...this.#live]) {
      checked++;
      const reason = c.recheck();
      if (reason !== undefined) {
        closed.push({ workload: c.workload, reason });
        this.#live.delete(c);
        c.close(reason);
      }
    }
    return { checked, closed };
  }

  /** Closes everything. */
  closeAll(reason: string): void {
    for (const c of [...this.#live]) c.close(reason);
    this.#live.clear();
  }
}
