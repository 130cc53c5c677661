// The canonical encoding of a cell's key-value state: entries in key order, each value with
// a type tag, integers as sign and minimal magnitude. Two replicas with the same state have
// byte-identical encodings and so the same digest.

import { sha256 } from "@noble/hashes/sha2.js";
import { limits } from "../limits.ts";
import { ByteReader, ByteWriter, decodeUtf8 } from "./bytes.ts";
import { KvStore } from "./kv.ts";
import { checkKey } from "./transaction.ts";
import { type Value, compareKeys, integerFromMagnitude, integerInRange, integerMagnitude, utf8 } from "./value.ts";

const magic = 0x504b5631; // "PKV1"

const tagBytes = 0;
const tagInteger = 1;
const tagFalse = 2;
const tagTrue = 3;

export function writeValue(out: ByteWriter, value: Value): void {
  if (typeof value === "boolean") {
    out.u8(value ? tagTrue : tagFalse);
  } else if (typeof value === "bigint") {
    out.u8(tagInteger).u8(value < 0n ? 1 : 0).bytes16(integerMagnitude(value));
  } else {
    out.u8(tagBytes).bytes32(value);
  }
}

export function readValue(input: ByteReader): Value | null {
  const tag = input.u8("value tag");
  if (tag === tagTrue) return true;
  if (tag === tagFalse) return false;
  if (tag === tagBytes) return input.bytes32(limits.valueBytesMax, "value").slice();
  if (tag === tagInteger) {
    const sign = input.u8("integer sign");
    const magnitude = input.bytes16(limits.valueBytesMax, "integer");
    if (sign > 1 || (magnitude.length > 0 && magnitude[0] === 0) || (sign === 1 && magnitude.length === 0)) {
      input.fail("integer is not canonical");
      return null;
    }
    const value = integerFromMagnitude(sign === 1, magnitude);
    if (!integerInRange(value)) {
      input.fail("integer out of range");
      return null;
    }
    return value;
  }
  input.fail(`unknown value tag ${tag}`);
  return null;
}

export function writeKv(out: ByteWriter, store: KvStore): void {
  out.u32(magic).u32(store.size);
  for (const [key, value] of store.ordered()) {
    out.bytes16(utf8(key));
    writeValue(out, value);
  }
}

/** Reads a canonical encoding, checking order, limits and canonical form. */
export function readKv(input: ByteReader): KvStore | null {
  if (input.u32("magic") !== magic) {
    input.fail("not a key-value snapshot");
    return null;
  }
  const count = input.u32("entry count");
  const maxEntries = Math.floor(limits.cellBytesMax / limits.entryOverheadBytes);
  if (count > maxEntries) {
    input.fail(`snapshot claims ${count} entries`);
    return null;
  }
  const store = new KvStore();
  let previous: string | null = null;
  for (let i = 0; i < count && input.error === null; i++) {
    const key = decodeUtf8(input.bytes16(limits.keyBytesMax, "key"));
    const value = readValue(input);
    if (input.error !== null) break;
    if (key === null || checkKey(key) !== null) {
      input.fail(`entry ${i}: invalid key`);
      break;
    }
    if (previous !== null && compareKeys(previous, key) >= 0) {
      input.fail(`entry ${i}: keys out of order`);
      break;
    }
    if (value === null) break;
    store.restoreEntry(key, value);
    previous = key;
    if (store.bytes > limits.cellBytesMax) {
      input.fail("snapshot exceeds the cell size limit");
      break;
    }
  }
  return input.error === null ? store : null;
}

export function encodeKv(store: KvStore): Uint8Array {
  const out = new ByteWriter(64 + store.bytes);
  writeKv(out, store);
  return out.finish();
}

export type DecodeResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };

export function decodeKv(bytes: Uint8Array): DecodeResult<KvStore> {
  const input = new ByteReader(bytes);
  const store = readKv(input);
  if (store === null || input.error !== null) return { ok: false, reason: input.error ?? "invalid snapshot" };
  if (input.remaining !== 0) return { ok: false, reason: `${input.remaining} trailing bytes` };
  return { ok: true, value: store };
}

export function digest(bytes: Uint8Array): Uint8Array {
  return sha256(bytes);
}

export function kvDigest(store: KvStore): Uint8Array {
  return digest(encodeKv(store));
}
