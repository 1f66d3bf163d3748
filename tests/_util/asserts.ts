/**
 * Assertions for ambit's tests. JSR's @std/assert is not reachable from this
 * toolchain, so these wrap node:assert with the @std names and add
 * condition-based waiting (never fixed sleeps).
 *
 * @module
 */
import assert from "node:assert/strict";

/** Asserts deep equality (strict). */
export function assertEquals<T>(
  actual: unknown,
  expected: T,
  message?: string,
): asserts actual is T {
  assert.deepStrictEqual(actual, expected, message);
}

/** Asserts `value` is truthy. */
export function assertOk(value: unknown, message?: string): asserts value {
  assert.ok(value, message);
}

/** Asserts `text` contains `part`. */
export function assertIncludes(text: string, part: string, message?: string): void {
  if (!text.includes(part)) {
    throw new assert.AssertionError({
      message: message ?? `expected to find ${JSON.stringify(part)} in:\n${text}`,
    });
  }
}

/** Asserts that `fn` throws (or rejects with) an error of `type` whose message includes `includes`. */
export async function assertRejects(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  type?: new (...args: any[]) => Error,
  includes?: string,
): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    if (type && !(e instanceof type)) {
      throw new assert.AssertionError({ message: `expected ${type.name}, got ${e}` });
    }
    if (includes && !(e as Error).message.includes(includes)) {
      throw new assert.AssertionError({
        message: `expected error message to include ${JSON.stringify(includes)}, got: ${
          (e as Error).message
        }`,
      });
    }
    return e as Error;
  }
  throw new assert.AssertionError({ message: "expected a throw or rejection" });
}

/** Waits until `check` returns truthy (or stops throwing), polling; fails after `timeoutMs`. */
export async function assertEventually<T>(
  check: () => T | Promise<T>,
  options: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  let last: unknown;
  while (true) {
    try {
      const v = await check();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new assert.AssertionError({
        message: `${options.message ?? "condition not met in time"}; last: ${
          last instanceof Error ? last.message : String(last)
        }`,
      });
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 20));
  }
}
