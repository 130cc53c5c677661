// A small seeded PRNG (xoshiro128**, seeded through splitmix32) so that the topology
// generator, random placement, the Monte Carlo evaluation and the simworld replay exactly
// from a seed.
// Nothing in src/control or src/sim touches Math.random.

import { assert } from "./core/assert.ts";

export const seedMax = 0xffff_ffff;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    assert(Number.isInteger(seed) && seed >= 0 && seed <= seedMax, `seed must be an integer from 0 to ${seedMax}`);
    // splitmix32 spreads one 32-bit seed over the 128-bit state; it never yields all zeros
    // for four consecutive outputs, which xoshiro requires.
    let state = seed | 0;
    const next = (): number => {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) | 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    assert((this.s0 | this.s1 | this.s2 | this.s3) !== 0, "xoshiro state must not be all zero");
  }

  /** A uniformly distributed integer in [0, 2^32). */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniformly distributed float in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const high = this.nextUint32() >>> 5;
    const low = this.nextUint32() >>> 6;
    return (high * 67_108_864 + low) / 9_007_199_254_740_992;
  }

  /** A uniformly distributed integer in [0, bound), without modulo bias. */
  nextInt(bound: number): number {
    assert(Number.isInteger(bound) && bound >= 1 && bound <= 2 ** 32, "bound must be an integer from 1 to 2^32");
    const limit = 2 ** 32 - (2 ** 32 % bound);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % bound;
    }
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.nextFloat() < p;
  }

  /** A new generator whose stream is independent of this one's for practical purposes. */
  fork(): Rng {
    return new Rng(this.nextUint32());
  }
}

/** Murmur3's 32-bit finalizer: spreads nearby integers far apart. */
function mix32(value: number): number {
  let h = value | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A seed for one sub-stream (say, one trial of one experiment), far from its neighbours'. */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = mix32(seed);
  for (const part of parts) h = mix32(h ^ mix32(part + 0x9e3779b9));
  return h;
}
