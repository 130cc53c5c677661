// The matchers the portable tests rely on, checked both ways: under `bun test` this checks
// bun's own expect, under `deno test` the shim (bun-test-shim.ts) that stands in for it.
// Each case must pass when it should and throw when it should not.

import { describe, expect, test } from "bun:test";

const fails = (check: () => void) => expect(check).toThrow();

describe("expect", () => {
  test("toBe and toEqual tell values apart", () => {
    expect(1).toBe(1);
    fails(() => expect(1).toBe(2));
    fails(() => expect({ a: 1 }).toBe({ a: 1 }));
    expect({ a: 1, b: [1n, new Uint8Array([1, 2])] }).toEqual({ a: 1, b: [1n, new Uint8Array([1, 2])] });
    fails(() => expect({ a: 1, b: [1n] }).toEqual({ a: 1, b: [2n] }));
    fails(() => expect(new Uint8Array([1, 2])).toEqual(new Uint8Array([1, 3])));
    expect(new Map([["k", { v: 1 }]])).toEqual(new Map([["k", { v: 1 }]]));
    fails(() => expect(new Map([["k", 1]])).toEqual(new Map([["k", 2]])));
    expect({ a: 1, gone: undefined } as Record<string, unknown>).toEqual({ a: 1 });
    fails(() => expect([1, 2]).toEqual([1, 2, 3]));
  });

  test("toMatchObject compares only the expected keys", () => {
    expect({ status: "committed", reads: { k: 1 }, extra: true }).toMatchObject({ status: "committed", reads: { k: 1 } });
    fails(() => expect({ status: "rejected" }).toMatchObject({ status: "committed" }));
    fails(() => expect({}).toMatchObject({ missing: undefined, other: 1 }));
  });

  test("comparisons, containment, length, null, instances", () => {
    expect(3).toBeGreaterThan(2);
    fails(() => expect(2).toBeGreaterThan(2));
    expect(2).toBeGreaterThanOrEqual(2);
    expect(1).toBeLessThan(2);
    fails(() => expect(2).toBeLessThanOrEqual(1));
    expect("a frame dropped").toContain("dropped");
    fails(() => expect("a frame").toContain("dropped"));
    expect([1, 2]).toContain(2);
    expect([1, 2]).not.toContain(3);
    fails(() => expect([1, 2]).not.toContain(2));
    expect([1, 2, 3]).toHaveLength(3);
    fails(() => expect([1]).toHaveLength(2));
    expect(null).toBeNull();
    fails(() => expect(0).toBeNull());
    expect(undefined).toBeUndefined();
    expect(new RangeError("x")).toBeInstanceOf(Error);
    fails(() => expect(new Error("x")).toBeInstanceOf(RangeError));
    expect(1).not.toBe(2);
    fails(() => expect(1).not.toBe(1));
  });

  test("toThrow matches messages and classes", () => {
    const boom = () => {
      throw new RangeError("out of range: 7");
    };
    expect(boom).toThrow();
    expect(boom).toThrow("out of range");
    expect(boom).toThrow(/range: \d/);
    expect(boom).toThrow(RangeError);
    fails(() => expect(boom).toThrow(TypeError));
    fails(() => expect(boom).toThrow("something else"));
    fails(() => expect(() => 1).toThrow());
  });

  test("rejects looks at the rejection", async () => {
    await expect(Promise.reject(new RangeError("no"))).rejects.toBeInstanceOf(RangeError);
    await expect(Promise.reject(new RangeError("no"))).rejects.toThrow("no");
    let threw = false;
    try {
      await expect(Promise.resolve(1)).rejects.toThrow();
    } catch {
      threw = true;
    }
    expect(threw).toBe(true);
  });
});

test.each([
  [1, 2, 3],
  [2, 3, 5],
])("test.each passes each row's values: %d + %d = %d", (a, b, sum) => {
  expect(a + b).toBe(sum);
});
