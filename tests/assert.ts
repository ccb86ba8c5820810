/**
 * Assertions for tests, over `node:assert/strict`, with the std-like names the tests read well with.
 * @module
 */
import assert from "node:assert/strict";

export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  assert.deepStrictEqual(actual, expected, msg);
}

export function assert_(cond: unknown, msg?: string): asserts cond {
  assert.ok(cond, msg);
}
export { assert_ as assert };

export function assertMatch(actual: string, re: RegExp, msg?: string): void {
  assert.match(actual, re, msg);
}

export function assertStringIncludes(actual: string, part: string, msg?: string): void {
  assert.ok(
    actual.includes(part),
    msg ?? `expected ${JSON.stringify(actual)} to include ${JSON.stringify(part)}`,
  );
}

// deno-lint-ignore no-explicit-any
type Ctor<E> = new (...args: any[]) => E;

/** Asserts that `fn` throws an instance of `type` and returns it. */
export function assertThrows<E extends Error>(fn: () => unknown, type: Ctor<E>, includes?: string): E {
  try {
    fn();
  } catch (e) {
    assert.ok(
      e instanceof type,
      `expected ${type.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : e}`,
    );
    if (includes !== undefined) assertStringIncludes(e.message, includes);
    return e;
  }
  throw new assert.AssertionError({ message: `expected ${type.name} to be thrown` });
}
