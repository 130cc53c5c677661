import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { deriveSeed, Rng } from "../../src/random.ts";

describe("the seeded PRNG", () => {
  test("the same seed replays the same stream, and different seeds differ", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), (seed) => {
        const a = new Rng(seed);
        const b = new Rng(seed);
        const c = new Rng((seed + 1) >>> 0);
        const xs = Array.from({ length: 8 }, () => a.nextUint32());
        expect(Array.from({ length: 8 }, () => b.nextUint32())).toEqual(xs);
        expect(Array.from({ length: 8 }, () => c.nextUint32())).not.toEqual(xs);
      }),
    );
  });

  test("nextInt stays within its bound and nextFloat within [0, 1)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffff_ffff }), fc.integer({ min: 1, max: 2 ** 32 }), (seed, bound) => {
        const rng = new Rng(seed);
        for (let i = 0; i < 20; i++) {
          const x = rng.nextInt(bound);
          expect(Number.isInteger(x) && x >= 0 && x < bound).toBe(true);
          const f = rng.nextFloat();
          expect(f >= 0 && f < 1).toBe(true);
        }
      }),
    );
  });

  test("nextInt over six values is close to uniform over 60,000 draws (chi-square below 25)", () => {
    const rng = new Rng(42);
    const counts = new Array<number>(6).fill(0);
    for (let i = 0; i < 60_000; i++) counts[rng.nextInt(6)]!++;
    const chiSquare = counts.reduce((sum, c) => sum + (c - 10_000) ** 2 / 10_000, 0);
    expect(chiSquare).toBeLessThan(25);
  });

  test("a seed outside 32 bits is a bug in the caller", () => {
    expect(() => new Rng(-1)).toThrow();
    expect(() => new Rng(2 ** 32)).toThrow();
  });
});

describe("derived seeds", () => {
  test("neighbouring sub-streams get seeds that differ in about half their bits", () => {
    let bits = 0;
    let pairs = 0;
    for (let trial = 0; trial < 200; trial++) {
      const a = deriveSeed(7, 1, 3, trial);
      const b = deriveSeed(7, 1, 3, trial + 1);
      bits += ((a ^ b) >>> 0).toString(2).replace(/0/g, "").length;
      pairs++;
      expect(deriveSeed(7, 1, 3, trial)).toBe(a);
    }
    expect(bits / pairs).toBeGreaterThan(14);
    expect(bits / pairs).toBeLessThan(18);
  });
});
