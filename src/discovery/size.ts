// The exact size of a plain value in the project's CBOR encoding (src/wire/cbor.ts: maps as
// objects with the shortest header, plain byte strings), computed without encoding it. The gossip protocol
// budgets bytes per session with it, and the simulation counts bytes per node with it; a
// test checks it against the real encoder.

import { assert } from "../core/assert.ts";
import { utf8Bytes } from "../core/value.ts";

function headBytes(length: number): number {
  if (length < 24) return 1;
  if (length < 0x100) return 2;
  if (length < 0x1_0000) return 3;
  if (length <= 0xffff_ffff) return 5;
  return 9;
}

function numberBytes(value: number): number {
  // cbor-x writes integers that fit 32 bits as integers and everything else as a float64.
  if (Number.isInteger(value) && Math.abs(value) <= 0xffff_ffff) {
    return headBytes(value >= 0 ? value : -1 - value);
  }
  return 9;
}

export function cborBytes(value: unknown): number {
  switch (typeof value) {
    case "number":
      return numberBytes(value);
    case "string": {
      const bytes = utf8Bytes(value);
      return headBytes(bytes) + bytes;
    }
    case "boolean":
    case "undefined":
      return 1;
    case "object": {
      if (value === null) return 1;
      if (value instanceof Uint8Array) return headBytes(value.length) + value.length;
      if (Array.isArray(value)) {
        let total = headBytes(value.length);
        for (const item of value) total += cborBytes(item);
        return total;
      }
      // Objects are maps with the shortest count header (our encoder, src/wire/cbor.ts).
      const keys = Object.keys(value);
      assert(keys.length <= 0xffff, "cborBytes: object too large");
      let total = headBytes(keys.length);
      for (const key of keys) total += cborBytes(key) + cborBytes((value as Record<string, unknown>)[key]);
      return total;
    }
    default:
      assert(false, `cborBytes: cannot size a ${typeof value}`);
  }
}
