// The simulation's randomness: the project's seeded generator (src/random.ts) with the few
// conveniences the simworld uses. One seed replays a whole run on every machine.

import { Rng as SeededRng } from "../random.ts";

export class Rng extends SeededRng {
  /** A 32-bit unsigned integer. */
  u32(): number {
    return this.nextUint32();
  }

  /** A number in [0, 1). */
  next(): number {
    return this.nextFloat();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return this.nextInt(n);
  }

  /** An integer in [min, max]. */
  between(min: number, max: number): number {
    return min + this.nextInt(max - min + 1);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[this.nextInt(items.length)] as T;
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }

  /** An independent generator, so adding draws in one part of a run does not shift another. */
  override fork(): Rng {
    return new Rng(this.nextUint32());
  }
}
