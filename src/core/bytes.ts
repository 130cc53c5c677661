// Small binary writer and reader for canonical encodings (state snapshots, digests, log
// records). The reader never throws on bad input: it latches an error that the caller checks.

import { assert } from "./assert.ts";

export class ByteWriter {
  private buffer: Uint8Array;
  private view: DataView;
  private length = 0;

  constructor(initialBytes = 256) {
    this.buffer = new Uint8Array(initialBytes);
    this.view = new DataView(this.buffer.buffer);
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    let size = this.buffer.length * 2;
    while (size < this.length + bytes) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buffer.subarray(0, this.length));
    this.buffer = grown;
    this.view = new DataView(grown.buffer);
  }

  u8(value: number): this {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xff, "u8 out of range");
    this.reserve(1);
    this.buffer[this.length++] = value;
    return this;
  }

  u16(value: number): this {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xffff, "u16 out of range");
    this.reserve(2);
    this.view.setUint16(this.length, value);
    this.length += 2;
    return this;
  }

  u32(value: number): this {
    assert(Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff, "u32 out of range");
    this.reserve(4);
    this.view.setUint32(this.length, value);
    this.length += 4;
    return this;
  }

  /** An unsigned integer below 2^53, as 8 bytes. */
  u64(value: number): this {
    assert(Number.isSafeInteger(value) && value >= 0, "u64 out of range");
    this.reserve(8);
    this.view.setUint32(this.length, Math.floor(value / 0x1_0000_0000));
    this.view.setUint32(this.length + 4, value >>> 0);
    this.length += 8;
    return this;
  }

  raw(bytes: Uint8Array): this {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
    return this;
  }

  /** Bytes with a u32 length in front. */
  bytes32(bytes: Uint8Array): this {
    return this.u32(bytes.length).raw(bytes);
  }

  /** Bytes with a u16 length in front. */
  bytes16(bytes: Uint8Array): this {
    return this.u16(bytes.length).raw(bytes);
  }

  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

export class ByteReader {
  private offset = 0;
  private failure: string | null = null;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** The first problem met, or null while everything read was in bounds. */
  get error(): string | null {
    return this.failure;
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  get position(): number {
    return this.offset;
  }

  fail(reason: string): void {
    if (this.failure === null) this.failure = reason;
  }

  private take(bytes: number, what: string): number {
    if (this.failure !== null) return -1;
    if (bytes > this.remaining) {
      this.fail(`truncated ${what}`);
      return -1;
    }
    const at = this.offset;
    this.offset += bytes;
    return at;
  }

  u8(what = "u8"): number {
    const at = this.take(1, what);
    return at < 0 ? 0 : (this.bytes[at] as number);
  }

  u16(what = "u16"): number {
    const at = this.take(2, what);
    return at < 0 ? 0 : this.view.getUint16(at);
  }

  u32(what = "u32"): number {
    const at = this.take(4, what);
    return at < 0 ? 0 : this.view.getUint32(at);
  }

  u64(what = "u64"): number {
    const at = this.take(8, what);
    if (at < 0) return 0;
    const high = this.view.getUint32(at);
    if (high > 0x1f_ffff) {
      this.fail(`${what} exceeds 2^53`);
      return 0;
    }
    return high * 0x1_0000_0000 + this.view.getUint32(at + 4);
  }

  raw(length: number, what = "bytes"): Uint8Array {
    const at = this.take(length, what);
    return at < 0 ? new Uint8Array(0) : this.bytes.subarray(at, at + length);
  }

  bytes32(maxBytes: number, what = "bytes"): Uint8Array {
    const length = this.u32(what);
    if (length > maxBytes) {
      this.fail(`${what} of ${length} bytes exceeds ${maxBytes}`);
      return new Uint8Array(0);
    }
    return this.raw(length, what);
  }

  bytes16(maxBytes: number, what = "bytes"): Uint8Array {
    const length = this.u16(what);
    if (length > maxBytes) {
      this.fail(`${what} of ${length} bytes exceeds ${maxBytes}`);
      return new Uint8Array(0);
    }
    return this.raw(length, what);
  }
}

const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** Strict UTF-8 decoding; null for invalid input. */
export function decodeUtf8(bytes: Uint8Array): string | null {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    return null;
  }
}

export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}
