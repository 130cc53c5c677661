// The hashes of the discovery protocol. Digests are compared across nodes, so these functions
// are part of the protocol: MurmurHash3 (x86, 32-bit) over UTF-8 bytes for names, and two
// independently seeded lanes of the same mixing for 64-bit digests. Set digests are the XOR
// of their members' hashes, so one changed entry updates a digest in O(1).

const c1 = 0xcc9e2d51;
const c2 = 0x1b873593;

function rotl32(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** Murmur3's finalizer: every input bit affects every output bit. */
export function fmix32(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** One 32-bit word folded into a running murmur3 state. */
function round32(h: number, word: number): number {
  let k = Math.imul(word, c1);
  k = rotl32(k, 15);
  k = Math.imul(k, c2);
  let x = h ^ k;
  x = rotl32(x, 13);
  return (Math.imul(x, 5) + 0xe6546b64) | 0;
}

/** MurmurHash3 x86_32 of `bytes` with `seed`. */
export function murmur32(bytes: Uint8Array, seed: number): number {
  let h = seed | 0;
  const blocks = bytes.length >>> 2;
  for (let i = 0; i < blocks; i++) {
    const j = i << 2;
    const word = (bytes[j] as number) | ((bytes[j + 1] as number) << 8) | ((bytes[j + 2] as number) << 16) | ((bytes[j + 3] as number) << 24);
    h = round32(h, word);
  }
  let tail = 0;
  const rest = bytes.length & 3;
  const base = blocks << 2;
  if (rest === 3) tail ^= (bytes[base + 2] as number) << 16;
  if (rest >= 2) tail ^= (bytes[base + 1] as number) << 8;
  if (rest >= 1) {
    tail ^= bytes[base] as number;
    let k = Math.imul(tail, c1);
    k = rotl32(k, 15);
    k = Math.imul(k, c2);
    h ^= k;
  }
  return fmix32(h ^ bytes.length);
}

export const seedLow = 0x5f3759df;
export const seedHigh = 0x2545f491;

/**
 * A 64-bit hash built from 32-bit words, as two lanes with different seeds. The discovery
 * protocol hashes entries and peer records by feeding their fields in a fixed order.
 */
export class Hash64 {
  private high: number;
  private low: number;
  private words = 0;

  constructor() {
    this.high = seedHigh;
    this.low = seedLow;
  }

  word(value: number): this {
    this.low = round32(this.low, value | 0);
    this.high = round32(this.high, (value ^ 0x9e3779b9) | 0);
    this.words++;
    return this;
  }

  /** A non-negative integer below 2^53, as its high and low 32-bit words. */
  integer(value: number): this {
    return this.word(Math.floor(value / 0x1_0000_0000)).word(value >>> 0);
  }

  pair(high: number, low: number): this {
    return this.word(high).word(low);
  }

  /** The finished hash: `[high, low]`, each an unsigned 32-bit integer. */
  finish(): readonly [number, number] {
    const low = fmix32(this.low ^ this.words);
    const high = fmix32(this.high ^ this.words ^ low);
    return [high, low];
  }
}

const encoder = new TextEncoder();

export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

/** The 64-bit hash of a string's UTF-8 bytes, as `[high, low]`. */
export function stringHash64(text: string): readonly [number, number] {
  const bytes = encoder.encode(text);
  return [murmur32(bytes, seedHigh), murmur32(bytes, seedLow)];
}
