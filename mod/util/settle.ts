/**
 * Waiting for clean-up work with a bound: a stopping process gives sockets
 * time to finish, but never waits on them forever.
 *
 * @module
 */

/**
 * Resolves once every promise settled, or after `ms`, whichever is first
 * (`undefined` entries, for work that was not there, are skipped).
 */
export async function settleWithin(
  promises: (Promise<unknown> | undefined)[],
  ms: number,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.allSettled(promises),
    new Promise((r) => timer = setTimeout(r, ms)),
  ]);
  clearTimeout(timer);
}
