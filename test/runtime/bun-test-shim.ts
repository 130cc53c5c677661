// `bun:test` on Deno: the part of its API that the portable tests use (test, test.each,
// describe, expect and the matchers below), mapped onto Deno.test. deno.json's import map
// points "bun:test" here, so the same test files run under `bun test` and `deno test`.

type TestFn = () => unknown | Promise<unknown>;

interface DenoTestApi {
  test(options: { name: string; fn: TestFn; sanitizeOps: boolean; sanitizeResources: boolean; ignore?: boolean }): void;
}

const deno = (globalThis as unknown as { Deno?: DenoTestApi }).Deno;
if (deno === undefined) throw new Error("bun-test-shim.ts is for Deno; Bun has bun:test");
const denoTest = deno;

interface Scope {
  readonly name: string;
  readonly before: TestFn[];
  readonly after: TestFn[];
}

const scopes: Scope[] = [];

function fullName(name: string): string {
  return [...scopes.map((s) => s.name), name].join(" > ");
}

function register(name: string, fn: TestFn): void {
  // Each test runs the hooks of its enclosing describe blocks, outermost first (after: innermost first).
  const before = scopes.flatMap((s) => s.before);
  const after = scopes.flatMap((s) => s.after).reverse();
  const run = async () => {
    for (const hook of before) await hook();
    try {
      await fn();
    } finally {
      for (const hook of after) await hook();
    }
  };
  // Timers and sockets may outlive a test on purpose (a node stopped later); Bun does not check either.
  denoTest.test({ name: fullName(name), fn: run, sanitizeOps: false, sanitizeResources: false });
}

function innermost(hook: string): Scope {
  const scope = scopes[scopes.length - 1];
  // Hooks outside a describe would leak into other files sharing the process.
  if (scope === undefined) throw new Error(`bun-test-shim.ts: put ${hook} inside a describe block`);
  return scope;
}

export function beforeEach(hook: TestFn): void {
  innermost("beforeEach").before.push(hook);
}

export function afterEach(hook: TestFn): void {
  innermost("afterEach").after.push(hook);
}

function format(name: string, row: readonly unknown[]): string {
  let i = 0;
  return name.replace(/%[sdpij#%]/g, (spec) => (spec === "%%" ? "%" : spec === "%#" ? String(i) : describeValue(row[i++])));
}

function describeValue(value: unknown): string {
  if (typeof value === "string") return value;
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "function") return value.name || "function";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

interface TestApi {
  (name: string, fn: TestFn, timeoutMs?: number): void;
  // As in bun:test, each row's elements are the arguments (typed loosely: a table of mixed rows is common).
  // deno-lint-ignore no-explicit-any
  each<T extends readonly any[]>(rows: readonly T[]): (name: string, fn: (...args: T) => unknown, timeoutMs?: number) => void;
  // deno-lint-ignore no-explicit-any
  each<T>(rows: readonly T[]): (name: string, fn: (...args: any[]) => unknown, timeoutMs?: number) => void;
}

export const test: TestApi = Object.assign((name: string, fn: TestFn, _timeoutMs?: number) => register(name, fn), {
  each(rows: readonly unknown[]) {
    return (name: string, fn: (...args: unknown[]) => unknown) => {
      rows.forEach((row, index) => {
        const args = Array.isArray(row) ? row : [row];
        register(`${format(name, args)} [${index}]`, () => fn(...args));
      });
    };
  },
}) as TestApi;

export const it = test;

export function describe(name: string, body: () => void): void {
  scopes.push({ name, before: [], after: [] });
  try {
    body();
  } finally {
    scopes.pop();
  }
}

// ---- expect --------------------------------------------------------------------------------

class ExpectationError extends Error {
  override name = "ExpectationError";
}

function show(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (value instanceof Uint8Array) return `Uint8Array[${[...value.slice(0, 32)].join(", ")}${value.length > 32 ? ", ..." : ""}]`;
  if (value instanceof Map) return `Map(${show([...value])})`;
  if (value instanceof Set) return `Set(${show([...value])})`;
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  try {
    return JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? [...v] : v)) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Deep equality as bun's toEqual: undefined properties count as missing. `partial` compares only the expected side's keys (toMatchObject). */
function equals(actual: unknown, expected: unknown, partial: boolean): boolean {
  if (Object.is(actual, expected)) return true;
  if (typeof actual !== "object" || typeof expected !== "object" || actual === null || expected === null) return false;
  if (ArrayBuffer.isView(actual) || ArrayBuffer.isView(expected)) {
    if (!ArrayBuffer.isView(actual) || !ArrayBuffer.isView(expected) || actual.constructor !== expected.constructor) return false;
    const a = new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength);
    const b = new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }
  if (actual instanceof Date || expected instanceof Date) return actual instanceof Date && expected instanceof Date && actual.getTime() === expected.getTime();
  if (actual instanceof Map || expected instanceof Map) {
    if (!(actual instanceof Map) || !(expected instanceof Map) || actual.size !== expected.size) return false;
    for (const [key, value] of expected) if (!actual.has(key) || !equals(actual.get(key), value, partial)) return false;
    return true;
  }
  if (actual instanceof Set || expected instanceof Set) {
    if (!(actual instanceof Set) || !(expected instanceof Set) || actual.size !== expected.size) return false;
    for (const value of expected) if (![...actual].some((candidate) => equals(candidate, value, partial))) return false;
    return true;
  }
  if (Array.isArray(actual) !== Array.isArray(expected)) return false;
  if (Array.isArray(actual) && Array.isArray(expected)) {
    if (actual.length !== expected.length) return false;
    return expected.every((value, i) => equals(actual[i], value, partial));
  }
  if (actual instanceof Error && expected instanceof Error && actual.message !== expected.message) return false;
  const a = actual as Record<string, unknown>;
  const b = expected as Record<string, unknown>;
  const keys = new Set(partial ? Object.keys(b) : [...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    if (partial && !(key in a)) return false;
    if (!equals(a[key], b[key], partial)) return false;
  }
  return true;
}

type ThrowExpectation = string | RegExp | Error | (new (...args: never[]) => unknown) | undefined;

function thrownMatches(error: unknown, expected: ThrowExpectation): boolean {
  if (expected === undefined) return true;
  const message = error instanceof Error ? error.message : String(error);
  if (typeof expected === "string") return message.includes(expected);
  if (expected instanceof RegExp) return expected.test(message);
  if (expected instanceof Error) return message === expected.message;
  return error instanceof expected;
}

export interface Matchers {
  readonly not: Matchers;
  readonly rejects: AsyncMatchers;
  readonly resolves: AsyncMatchers;
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toStrictEqual(expected: unknown): void;
  toMatchObject(expected: unknown): void;
  toBeNull(): void;
  toBeUndefined(): void;
  toBeDefined(): void;
  toBeTrue(): void;
  toBeFalse(): void;
  toBeTruthy(): void;
  toBeFalsy(): void;
  toContain(expected: unknown): void;
  toMatch(expected: RegExp | string): void;
  toHaveLength(expected: number): void;
  toBeGreaterThan(expected: number | bigint): void;
  toBeGreaterThanOrEqual(expected: number | bigint): void;
  toBeLessThan(expected: number | bigint): void;
  toBeLessThanOrEqual(expected: number | bigint): void;
  toBeInstanceOf(expected: abstract new (...args: never[]) => unknown): void;
  toThrow(expected?: ThrowExpectation): void;
}

export type AsyncMatchers = { [K in keyof Omit<Matchers, "not" | "rejects" | "resolves">]: (...args: Parameters<Matchers[K]>) => Promise<void> } & { readonly not: AsyncMatchers };

function matchers(actual: unknown, negated: boolean): Matchers {
  const check = (pass: boolean, what: string) => {
    if (pass === negated) throw new ExpectationError(`expected ${show(actual)} ${negated ? "not " : ""}${what}`);
  };
  const compare = (expected: number | bigint, pass: boolean, what: string) => {
    if (typeof actual !== "number" && typeof actual !== "bigint") throw new ExpectationError(`expected a number, got ${show(actual)}`);
    check(pass, `${what} ${show(expected)}`);
  };
  const self: Matchers = {
    get not() {
      return matchers(actual, !negated);
    },
    get rejects() {
      return settled(actual, "rejects", negated);
    },
    get resolves() {
      return settled(actual, "resolves", negated);
    },
    toBe: (expected) => check(Object.is(actual, expected), `to be ${show(expected)}`),
    toEqual: (expected) => check(equals(actual, expected, false), `to equal ${show(expected)}`),
    toStrictEqual: (expected) => check(equals(actual, expected, false), `to equal ${show(expected)}`),
    toMatchObject: (expected) => check(equals(actual, expected, true), `to match ${show(expected)}`),
    toBeNull: () => check(actual === null, "to be null"),
    toBeUndefined: () => check(actual === undefined, "to be undefined"),
    toBeDefined: () => check(actual !== undefined, "to be defined"),
    toBeTrue: () => check(actual === true, "to be true"),
    toBeFalse: () => check(actual === false, "to be false"),
    toBeTruthy: () => check(Boolean(actual), "to be truthy"),
    toBeFalsy: () => check(!actual, "to be falsy"),
    toContain(expected) {
      if (typeof actual === "string") return check(typeof expected === "string" && actual.includes(expected), `to contain ${show(expected)}`);
      if (Array.isArray(actual) || actual instanceof Set) return check([...actual].some((item) => Object.is(item, expected)), `to contain ${show(expected)}`);
      throw new ExpectationError(`toContain needs a string, an array or a set, got ${show(actual)}`);
    },
    toMatch: (expected) => check(typeof actual === "string" && (typeof expected === "string" ? actual.includes(expected) : expected.test(actual)), `to match ${String(expected)}`),
    toHaveLength: (expected) => check((actual as { length?: unknown } | null)?.length === expected, `to have length ${expected}`),
    toBeGreaterThan: (expected) => compare(expected, (actual as number) > expected, "to be greater than"),
    toBeGreaterThanOrEqual: (expected) => compare(expected, (actual as number) >= expected, "to be at least"),
    toBeLessThan: (expected) => compare(expected, (actual as number) < expected, "to be less than"),
    toBeLessThanOrEqual: (expected) => compare(expected, (actual as number) <= expected, "to be at most"),
    toBeInstanceOf: (expected) => check(actual instanceof (expected as new () => unknown), `to be an instance of ${expected.name}`),
    toThrow(expected) {
      if (typeof actual !== "function") throw new ExpectationError("toThrow needs a function");
      let threw = false;
      let error: unknown;
      try {
        (actual as () => unknown)();
      } catch (caught) {
        threw = true;
        error = caught;
      }
      check(threw && thrownMatches(error, expected), `to throw${expected === undefined ? "" : ` ${show(expected instanceof Function ? expected.name : expected)}`}${threw ? ` (threw ${show(error)})` : ""}`);
    },
  };
  return self;
}

function settled(promise: unknown, how: "rejects" | "resolves", negated: boolean): AsyncMatchers {
  const outcome = async (): Promise<unknown> => {
    try {
      const value = await (typeof promise === "function" ? (promise as () => unknown)() : promise);
      if (how === "rejects") throw new ExpectationError(`expected a rejection, got ${show(value)}`);
      return value;
    } catch (error) {
      if (how === "resolves" || error instanceof ExpectationError) throw error;
      return error;
    }
  };
  return new Proxy({} as AsyncMatchers, {
    get(_target, property: string) {
      if (property === "not") return settled(promise, how, !negated);
      return async (...args: unknown[]) => {
        const value = await outcome();
        // After `rejects`, toThrow asks about the rejection reason itself.
        const subject = property === "toThrow" ? () => { throw value; } : value;
        (matchers(subject, negated) as unknown as Record<string, (...a: unknown[]) => void>)[property]?.(...args);
      };
    },
  });
}

export function expect(actual: unknown): Matchers {
  return matchers(actual, false);
}
