// CBOR for the whole project: frame bodies and log records. Decoding is cbor-x, configured
// once: plain byte strings (no typed-array tags), maps as objects (cbor-x renames
// "__proto__"), 64-bit integers as bigint. Encoding is our own, for the few types our
// messages are made of (objects with string keys, arrays, strings, numbers, bigints, byte
// strings, booleans, null), because cbor-x's general encoder was the largest item of a
// leader's profile at 64 clients (bench/results/profile.json, docs/performance.md). For each
// type it writes what cbor-x writes, so cbor-x decodes both alike (test/wire/cbor.test.ts
// checks that on random trees); maps get the shortest header where cbor-x always writes a
// 16-bit one. A value holding any other type (a Map, a Date) is handed to cbor-x whole.
//
// A subtree may be given already encoded (EncodedCbor): its bytes are copied as they are.
// The schema uses that to encode a log value once, however many accepts and records carry it.
//
// We import the pure-JavaScript entry points of cbor-x on purpose. The package root loads the
// native `cbor-extract` addon when it is installed, and that addon crashed the whole Bun
// process (abort, not an exception) on inputs found by our decoder fuzz test. A node must
// survive any frame, so it never loads native code to parse one.

import { Decoder, setSizeLimits } from "cbor-x/decode";
import { Encoder } from "cbor-x/encode";

// Bound what one body can make the decoder allocate.
setSizeLimits({ maxArraySize: 65_536, maxMapSize: 4_096, maxObjectSize: 4_096 });

const options = {
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: "bigint",
  tagUint8Array: false,
  pack: false,
} as const;

const generalEncoder = new Encoder(options);
const decoder = new Decoder(options);

/** One CBOR item, already encoded: written into an enclosing encoding byte for byte. */
export class EncodedCbor {
  constructor(readonly bytes: Uint8Array) {}
}

/** A type this encoder leaves to cbor-x. */
class Unsupported extends Error {}

const twoTo32 = 0x1_0000_0000;
const twoTo64 = 1n << 64n;
const textEncoder = new TextEncoder();

/** The writer of one encoding. Its buffer is kept between encodings and grows as needed. */
class Writer {
  bytes = new Uint8Array(4096);
  view = new DataView(this.bytes.buffer);
  at = 0;
  busy = false;

  private room(extra: number): void {
    const need = this.at + extra;
    if (need <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < need) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.bytes.subarray(0, this.at));
    this.bytes = bigger;
    this.view = new DataView(bigger.buffer);
  }

  /** A head: major type and argument, the argument in its shortest form. */
  head(major: number, argument: number): void {
    this.room(9);
    const type = major << 5;
    if (argument < 24) this.bytes[this.at++] = type | argument;
    else if (argument < 0x100) {
      this.bytes[this.at++] = type | 24;
      this.bytes[this.at++] = argument;
    } else if (argument < 0x1_0000) {
      this.bytes[this.at++] = type | 25;
      this.view.setUint16(this.at, argument);
      this.at += 2;
    } else if (argument < twoTo32) {
      this.bytes[this.at++] = type | 26;
      this.view.setUint32(this.at, argument);
      this.at += 4;
    } else {
      this.bytes[this.at++] = type | 27;
      this.view.setUint32(this.at, Math.floor(argument / twoTo32));
      this.view.setUint32(this.at + 4, argument >>> 0);
      this.at += 8;
    }
  }

  raw(bytes: Uint8Array): void {
    this.room(bytes.length);
    this.bytes.set(bytes, this.at);
    this.at += bytes.length;
  }

  number(value: number): void {
    // As cbor-x: integers of 32 bits or less as integers, anything else as a double.
    if (value >>> 0 === value) this.head(0, value);
    else if (value >> 0 === value || (value < 0 && value >= -twoTo32 && Math.floor(value) === value)) this.head(1, -1 - value);
    else {
      this.room(9);
      this.bytes[this.at++] = 0xfb;
      this.view.setFloat64(this.at, value);
      this.at += 8;
    }
  }

  bigint(value: bigint): void {
    // As cbor-x: eight bytes whenever 64 bits hold it, a bignum tag beyond.
    if (value >= 0n && value < twoTo64) {
      this.room(9);
      this.bytes[this.at++] = 0x1b;
      this.view.setBigUint64(this.at, value);
      this.at += 8;
      return;
    }
    if (value < 0n && value > -twoTo64) {
      this.room(9);
      this.bytes[this.at++] = 0x3b;
      this.view.setBigUint64(this.at, -value - 1n);
      this.at += 8;
      return;
    }
    let magnitude = value >= 0n ? value : -1n - value;
    this.room(1);
    this.bytes[this.at++] = value >= 0n ? 0xc2 : 0xc3;
    const digits: number[] = [];
    while (magnitude > 0n) {
      digits.push(Number(magnitude & 0xffn));
      magnitude >>= 8n;
    }
    this.head(2, digits.length);
    this.room(digits.length);
    for (let i = digits.length - 1; i >= 0; i--) this.bytes[this.at++] = digits[i] as number;
  }

  string(value: string): void {
    const length = value.length;
    // Most strings here are short and ASCII: write them byte by byte after a head we can
    // predict, and start again through the UTF-8 encoder at the first other character.
    if (length < 0x100) {
      const start = this.at;
      this.head(3, length);
      this.room(length);
      const bytes = this.bytes;
      let at = this.at;
      let ascii = true;
      for (let i = 0; i < length; i++) {
        const code = value.charCodeAt(i);
        if (code >= 0x80) {
          ascii = false;
          break;
        }
        bytes[at++] = code;
      }
      if (ascii) {
        this.at = at;
        return;
      }
      this.at = start;
    }
    const utf8 = textEncoder.encode(value);
    this.head(3, utf8.length);
    this.raw(utf8);
  }

  value(value: unknown): void {
    switch (typeof value) {
      case "string":
        this.string(value);
        return;
      case "number":
        this.number(value);
        return;
      case "boolean":
        this.room(1);
        this.bytes[this.at++] = value ? 0xf5 : 0xf4;
        return;
      case "bigint":
        this.bigint(value);
        return;
      case "undefined":
        this.room(1);
        this.bytes[this.at++] = 0xf7;
        return;
      case "object":
        break;
      default:
        throw new Unsupported();
    }
    if (value === null) {
      this.room(1);
      this.bytes[this.at++] = 0xf6;
      return;
    }
    if (Array.isArray(value)) {
      this.head(4, value.length);
      for (let i = 0; i < value.length; i++) this.value(value[i]);
      return;
    }
    if (value instanceof Uint8Array) {
      this.head(2, value.length);
      this.raw(value);
      return;
    }
    if (value instanceof EncodedCbor) {
      this.raw(value.bytes);
      return;
    }
    const prototype = Object.getPrototypeOf(value);
    if (prototype !== Object.prototype && prototype !== null) throw new Unsupported();
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record);
    this.head(5, keys.length);
    for (const key of keys) {
      this.string(key);
      this.value(record[key]);
    }
  }
}

const shared = new Writer();

/** The CBOR encoding of a value, in bytes the caller owns. */
export function encodeCbor(value: unknown): Uint8Array {
  // An encoding never starts another, but if one ever did it gets a writer of its own.
  const writer = shared.busy ? new Writer() : shared;
  writer.busy = true;
  writer.at = 0;
  try {
    writer.value(value);
    return writer.bytes.slice(0, writer.at);
  } catch (error) {
    if (!(error instanceof Unsupported)) throw error;
    // cbor-x may hand back a view of its shared buffer: copy so callers own the bytes.
    return new Uint8Array(generalEncoder.encode(withoutEncoded(value)));
  } finally {
    writer.busy = false;
  }
}

/** The value with every already encoded item decoded again, for cbor-x, which knows nothing of them. */
function withoutEncoded(value: unknown): unknown {
  if (value instanceof EncodedCbor) return decoder.decode(value.bytes);
  if (Array.isArray(value)) return value.map(withoutEncoded);
  if (typeof value === "object" && value !== null && (Object.getPrototypeOf(value) === Object.prototype || Object.getPrototypeOf(value) === null)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, withoutEncoded(item)]));
  }
  return value;
}

export type CborResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly detail: string };

export function decodeCbor(bytes: Uint8Array): CborResult {
  try {
    return { ok: true, value: decoder.decode(bytes) };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : String(error) };
  }
}
