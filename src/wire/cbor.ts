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
// And a body may be read shallowly (CborCursor): heads read, the items not asked for skipped
// unbuilt, as the node does for the frames it refuses under overload.
//
// We import the pure-JavaScript entry points of cbor-x on purpose. The package root loads the
// native `cbor-extract` addon when it is installed, and that addon crashed the whole Bun
// process (abort, not an exception) on inputs found by our decoder fuzz test. A node must
// survive any frame, so it never loads native code to parse one.

import { Decoder, setSizeLimits } from "cbor-x/decode";
import { Encoder } from "cbor-x/encode";
import { decodeUtf8 } from "../core/bytes.ts";

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

/**
 * A reader of CBOR heads over untrusted bytes, for shallow reads: it reads the few items a
 * caller asks for and skips the rest without building them. Refusing a request under
 * overload must cost less than the request: a whole decode of each refused body was a third
 * of a flooded leader's time. Definite lengths only (what encodeCbor writes); an indefinite
 * length, a reserved head or a length past the end reads as malformed (-1, false or null)
 * and sets `failed`.
 */
export class CborCursor {
  private at = 0;
  /** The last head read: its major type (0-7) and argument (a value, a length or a count). */
  major = 0;
  argument = 0;
  /** Set for good once anything read was malformed: what was read after it means nothing. */
  failed = false;

  constructor(private readonly bytes: Uint8Array) {}

  /** Whether every byte has been read, and well. */
  get done(): boolean {
    return !this.failed && this.at === this.bytes.length;
  }

  /** Reads the next head (a float's bytes with it): its major type, or -1 when malformed or of indefinite length. */
  head(): number {
    const bytes = this.bytes;
    if (this.failed || this.at >= bytes.length) return this.malformed();
    const first = bytes[this.at++] as number;
    this.major = first >> 5;
    const info = first & 31;
    if (info < 24) {
      this.argument = info;
      return this.major;
    }
    if (info > 27) return this.malformed();
    const size = 1 << (info - 24);
    if (this.at + size > bytes.length) return this.malformed();
    let value = 0;
    for (let i = 0; i < size; i++) value = value * 256 + (bytes[this.at + i] as number);
    this.at += size;
    this.argument = value;
    return this.major;
  }

  /** Skips one whole item, however nested; false when malformed. */
  skip(): boolean {
    return this.skipItems(1);
  }

  /** Skips what the last head read heads (a string's bytes, an array's items, a map's pairs, a tag's item). */
  skipRest(): boolean {
    const items = this.itemsHeaded();
    return items >= 0 && this.skipItems(items);
  }

  /**
   * What the last head read still heads: a string's bytes are stepped over here (0 items
   * left), an array heads its items, a map twice its pairs, a tag one item. -1 when malformed.
   */
  private itemsHeaded(): number {
    switch (this.major) {
      case 2:
      case 3:
        if (this.argument > this.bytes.length - this.at) return this.malformed();
        this.at += this.argument;
        return 0;
      case 4:
        return this.argument;
      case 5:
        return 2 * this.argument;
      case 6:
        return 1;
      default:
        return 0;
    }
  }

  private skipItems(count: number): boolean {
    let pending = count;
    while (pending > 0) {
      // Every item takes a byte at least: more pending than bytes left is malformed.
      if (pending > this.bytes.length - this.at || this.head() < 0) return this.fail();
      const items = this.itemsHeaded();
      if (items < 0) return false;
      pending += items - 1;
    }
    return true;
  }

  /**
   * Reads a number that is a whole, non-negative integer: an unsigned integer item, or a
   * double or single float holding one (the encoder writes integers past 32 bits as doubles,
   * as cbor-x does); null for anything else (then it is skipped).
   */
  unsigned(): number | null {
    const start = this.at;
    const major = this.head();
    if (major < 0) return null;
    if (major === 0) return this.argument;
    if (major === 7) {
      const info = (this.bytes[start] as number) & 31;
      const view = new DataView(this.bytes.buffer, this.bytes.byteOffset + start + 1);
      const value = info === 27 ? view.getFloat64(0) : info === 26 ? view.getFloat32(0) : Number.NaN;
      return Number.isInteger(value) && value >= 0 ? value : null;
    }
    this.skipRest();
    return null;
  }

  /**
   * Reads a text item of at most four ASCII bytes as a number (see `asciiCode`), without making
   * a string: how a shallow read matches map keys. -1 for any other item (then it is skipped).
   */
  shortText(): number {
    const major = this.head();
    if (major < 0) return -1;
    if (major !== 3 || this.argument > 4 || this.argument > this.bytes.length - this.at) {
      this.skipRest();
      return -1;
    }
    let code = 0;
    for (let i = 0; i < this.argument; i++) {
      const byte = this.bytes[this.at + i] as number;
      if (byte >= 0x80) code = -1;
      else if (code >= 0) code = code * 128 + byte;
    }
    this.at += this.argument;
    // The length goes in too, so that "" and "\0" differ.
    return code < 0 ? -1 : code * 8 + this.argument;
  }

  /** Reads a text item; null when the next item is anything else (then it is skipped) or is malformed. */
  text(): string | null {
    const major = this.head();
    if (major < 0) return null;
    if (major !== 3) {
      this.skipRest();
      return null;
    }
    if (this.argument > this.bytes.length - this.at) {
      this.fail();
      return null;
    }
    const text = decodeUtf8(this.bytes.subarray(this.at, this.at + this.argument));
    this.at += this.argument;
    if (text === null) this.fail();
    return text;
  }

  private fail(): false {
    this.failed = true;
    return false;
  }

  private malformed(): -1 {
    this.failed = true;
    return -1;
  }
}

/** What `CborCursor.shortText` reads for `text` (at most four ASCII characters). */
export function asciiCode(text: string): number {
  let code = 0;
  for (let i = 0; i < text.length; i++) code = code * 128 + text.charCodeAt(i);
  return code * 8 + text.length;
}
