// Values are typed but dynamic: byte arrays, arbitrary-precision integers and booleans.
// No floats anywhere, so every replica on every platform computes the same results.
// They are plain JavaScript values, discriminated by `typeof`, so an idle cell costs no
// wrapper objects.

import { limits } from "../limits.ts";

export type Value = Uint8Array | bigint | boolean;

export type ValueType = "bytes" | "int" | "bool";

const integerBound = 1n << BigInt(limits.integerBitsMax);

export function valueType(value: Value): ValueType {
  if (typeof value === "bigint") return "int";
  if (typeof value === "boolean") return "bool";
  return "bytes";
}

/** True for a value of one of the three types, whatever its size. */
export function isValue(value: unknown): value is Value {
  return typeof value === "bigint" || typeof value === "boolean" || value instanceof Uint8Array;
}

/** True when the integer's magnitude fits `limits.integerBitsMax` bits. */
export function integerInRange(value: bigint): boolean {
  return value < integerBound && value > -integerBound;
}

/** Bytes that a value is charged for, against value and cell limits. */
export function valueBytes(value: Value): number {
  if (typeof value === "boolean") return 1;
  if (typeof value === "bigint") return integerMagnitude(value).length + 1;
  return value.length;
}

/** The big-endian magnitude of an integer, minimal (zero is empty). */
export function integerMagnitude(value: bigint): Uint8Array {
  let magnitude = value < 0n ? -value : value;
  if (magnitude === 0n) return new Uint8Array(0);
  let hex = magnitude.toString(16);
  if (hex.length % 2 === 1) hex = "0" + hex;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  magnitude = 0n;
  return out;
}

export function integerFromMagnitude(negative: boolean, magnitude: Uint8Array): bigint {
  let result = 0n;
  for (const byte of magnitude) result = (result << 8n) | BigInt(byte);
  return negative ? -result : result;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Equality of type and content: `1n` never equals `true` or the bytes `[1]`. */
export function valuesEqual(a: Value, b: Value): boolean {
  if (typeof a === "bigint") return typeof b === "bigint" && a === b;
  if (typeof a === "boolean") return typeof b === "boolean" && a === b;
  return b instanceof Uint8Array && bytesEqual(a, b);
}

const utf8Encoder = new TextEncoder();

export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

export function utf8Bytes(text: string): number {
  // Counting avoids allocating: this runs for every key of every transaction.
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** True when the string has no lone surrogate, so it has one UTF-8 encoding. */
export function isWellFormed(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    } else if (code >= 0xdc00 && code <= 0xdfff) return false;
  }
  return true;
}

/**
 * Orders keys by Unicode code point, which is the order of their UTF-8 bytes. JavaScript's
 * `<` compares UTF-16 code units, which puts U+E000..U+FFFF after astral characters.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codeUnitRank(x) - codeUnitRank(y);
  }
  return a.length - b.length;
}

function codeUnitRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}
