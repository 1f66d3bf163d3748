/**
 * Time as a dependency: production code takes a {@link Clock}; tests pass a
 * {@link FakeClock} and move time forward without sleeping.
 *
 * @module
 */

/** A timer handle. */
export type TimerId = number;

/** Current time and timers. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerId;
  clearTimeout(id: TimerId): void;
}

/** The real clock; its timers do not keep the process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const id = setTimeout(fn, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    Deno.unrefTimer(id as unknown as number);
    return id as unknown as number;
  },
  clearTimeout: (id) => clearTimeout(id),
};

/** A clock that moves only when told to; due timers fire in order. */
export class FakeClock implements Clock {
  #now: number;
  #next = 1;
  #timers = new Map<TimerId, { due: number; fn: () => void }>();

  constructor(start: Date | number = Date.UTC(2026, 0, 1)) {
    this.#now = typeof start === "number" ? start : start.getTime();
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerId {
    const id = this.#next++;
    this.#timers.set(id, { due: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(id: TimerId): void {
    this.#timers.delete(id);
  }

  /** Pending timers' due times, earliest first (for assertions). */
  get pending(): number[] {
    return [...this.#timers.values()].map((t) => t.due).sort((a, b) => a - b);
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due, in order.
   * `settle` runs after each timer so async work it starts can finish (and
   * schedule further timers) before time moves on.
   */
  async advance(
    ms: number,
    settle: () => Promise<unknown> = () => Promise.resolve(),
  ): Promise<void> {
    const target = this.#now + ms;
    while (true) {
      let first: [TimerId, { due: number; fn: () => void }] | undefined;
      for (const e of this.#timers) if (!first || e[1].due < first[1].due) first = e;
      if (!first || first[1].due > target) break;
      this.#timers.delete(first[0]);
      this.#now = Math.max(this.#now, first[1].due);
      first[1].fn();
      await settle();
    }
    this.#now = target;
  }
}
