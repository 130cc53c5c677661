// The bytes on disk (format version 2). A log directory holds an IDENTITY file and segment
// files named by an increasing number (`00000001.log`, ...). docs/storage.md draws the same.
//
//   IDENTITY: the directory's incarnation, 16 lowercase hex digits and a newline, written once
//   (atomically) when the directory is created. Every segment header repeats it and every
//   frame checksum is seeded with it, so a segment copied in from another log never reads as
//   this one's, and bytes that merely look like a frame (a record value holding an image of
//   one) do not check unless whoever wrote them knew the incarnation.
//
//   segment header (48 bytes, little-endian)
//     0  magic "PHYSLOG\0"
//     8  u16 format version (2)
//    10  u8  kind: 1 = log, 2 = compaction
//    11  u8  zero
//    12  u32 segment number (equals the file name)
//    16  u32 previous segment number, 0 for the first segment of a log
//    20  u64 previous segment's length in bytes, final: a log segment's header is written only
//            after its predecessor's last fdatasync returned (log.ts), so a header on disk proves
//            that every byte of the segments before it was durable
//    28  u32 compaction only: the oldest segment this compaction supersedes, else 0
//    32  8 bytes: the incarnation
//    40  u32 zero
//    44  u32 CRC32C of bytes 0..44
//
//   frame (24 + length bytes)
//     0  u32 payload length, 1..recordBytesMax
//     4  u8  kind: 1 = record (payload is `encodeRecord` bytes), 2 = compaction marker,
//               3 = sync confirmation
//     5  3 bytes zero
//     8  u64 sequence number: increases by one per frame across the whole log (a compaction's
//            frames take numbers from the same counter), and never repeats after recovery
//    16  u32 CRC32C of the payload, seeded with the segment seed
//    20  u32 CRC32C of bytes 0..20, seeded with the segment seed: a frame header that checks
//            has a true length, so damage to one frame's payload never hides the next frame
//    24  payload
//
//   The segment seed is CRC32C(incarnation, u32 segment number): a frame is valid in one
//   segment of one log only.
//
//   A marker's payload is the u64 count of records before it in its segment. A sync
//   confirmation's payload is u32 segment, u32 zero, u64 offset: "every byte of the log
//   before this offset of this segment is durable" (bytes of earlier segments included).
//   The log appends one after every sync round that made frames durable; see log.ts and
//   recover.ts for how recovery uses them.
//
// A compaction segment holds the compacted records, then the records appended while they were
// copied, then the marker, then whatever was appended after.

import { assert } from "../core/assert.ts";
import { crc32c } from "./crc32c.ts";
import { storageLimits } from "./limits.ts";

const magic = new TextEncoder().encode("PHYSLOG\0");

export type SegmentKind = "log" | "compaction";

export interface SegmentHeader {
  readonly number: number;
  readonly kind: SegmentKind;
  /** 0 when this segment begins the log. */
  readonly previous: number;
  readonly previousBytes: number;
  /** For a compaction segment, the oldest segment it supersedes; 0 otherwise. */
  readonly retiresFrom: number;
  /** The log directory's incarnation (16 lowercase hex digits). */
  readonly incarnation: string;
}

export const frameKind = { record: 1, marker: 2, confirmation: 3 } as const;
export type FrameKind = (typeof frameKind)[keyof typeof frameKind];

export const markerPayloadBytes = 8;

export function segmentName(number: number): string {
  assert(Number.isInteger(number) && number >= 1 && number <= storageLimits.segmentNumberMax, `segment number out of range: ${number}`);
  return `${String(number).padStart(8, "0")}.log`;
}

/** The segment number a file name stands for, or null for any other file. */
export function parseSegmentName(name: string): number | null {
  const match = /^(\d{8,10})\.log$/.exec(name);
  if (match === null) return null;
  const number = Number(match[1]);
  if (number < 1 || number > storageLimits.segmentNumberMax || segmentName(number) !== name) return null;
  return number;
}

// ---- the incarnation ---------------------------------------------------------------------

const incarnationPattern = /^[0-9a-f]{16}$/;

export function isIncarnation(text: string): boolean {
  return incarnationPattern.test(text);
}

/** A fresh incarnation: 64 random bits. */
export function newIncarnation(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export function incarnationBytes(incarnation: string): Uint8Array {
  assert(isIncarnation(incarnation), `an incarnation is 16 lowercase hex digits: ${incarnation}`);
  const bytes = new Uint8Array(8);
  for (let i = 0; i < 8; i++) bytes[i] = Number.parseInt(incarnation.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function incarnationText(bytes: Uint8Array, at: number): string {
  let text = "";
  for (let i = 0; i < 8; i++) text += bytes[at + i]!.toString(16).padStart(2, "0");
  return text;
}

export function encodeIdentity(incarnation: string): Uint8Array {
  return new TextEncoder().encode(`${incarnation}\n`);
}

/** The incarnation an IDENTITY file holds, or a one-line reason why it holds none. */
export function decodeIdentity(bytes: Uint8Array): { readonly ok: true; readonly incarnation: string } | { readonly ok: false; readonly detail: string } {
  if (bytes.length !== storageLimits.identityBytes) return { ok: false, detail: `IDENTITY is ${bytes.length} bytes, not ${storageLimits.identityBytes}` };
  const text = new TextDecoder().decode(bytes);
  const incarnation = text.slice(0, 16);
  if (!text.endsWith("\n") || !isIncarnation(incarnation)) return { ok: false, detail: "IDENTITY does not hold 16 lowercase hex digits and a newline" };
  return { ok: true, incarnation };
}

// ---- segment headers ---------------------------------------------------------------------

export function encodeSegmentHeader(header: SegmentHeader): Uint8Array {
  assert(header.previous >= 0 && header.previous < header.number, "a segment follows a lower-numbered one");
  assert(header.kind === "compaction" ? header.retiresFrom >= 1 && header.retiresFrom < header.number : header.retiresFrom === 0, "only a compaction retires segments");
  const bytes = new Uint8Array(storageLimits.segmentHeaderBytes);
  const view = new DataView(bytes.buffer);
  bytes.set(magic, 0);
  view.setUint16(8, storageLimits.formatVersion, true);
  view.setUint8(10, header.kind === "log" ? 1 : 2);
  view.setUint32(12, header.number, true);
  view.setUint32(16, header.previous, true);
  view.setBigUint64(20, BigInt(header.previousBytes), true);
  view.setUint32(28, header.retiresFrom, true);
  bytes.set(incarnationBytes(header.incarnation), 32);
  view.setUint32(44, crc32c(bytes, 0, 0, 44), true);
  return bytes;
}

export type HeaderResult =
  | { readonly ok: true; readonly header: SegmentHeader }
  | { readonly ok: false; readonly reason: "header" | "version"; readonly detail: string };

/** Checks a header read from the file named for `number`. */
export function decodeSegmentHeader(bytes: Uint8Array, number: number): HeaderResult {
  const fault = (detail: string): HeaderResult => ({ ok: false, reason: "header", detail });
  // Another format version is refused, not read as damage, but only when its header checks as
  // that version's: a flipped bit in the version field is damage like any other. Version 1
  // headers were 40 bytes with their checksum at 36.
  const version1Bytes = 40;
  if (bytes.length >= version1Bytes && magic.every((byte, i) => bytes[i] === byte)) {
    const early = new DataView(bytes.buffer, bytes.byteOffset, version1Bytes);
    if (early.getUint16(8, true) === 1 && early.getUint32(36, true) === crc32c(bytes, 0, 0, 36)) {
      return { ok: false, reason: "version", detail: `format version 1, this code reads ${storageLimits.formatVersion}` };
    }
  }
  if (bytes.length < storageLimits.segmentHeaderBytes) return fault(`header is ${bytes.length} bytes, shorter than ${storageLimits.segmentHeaderBytes}`);
  for (let i = 0; i < magic.length; i++) if (bytes[i] !== magic[i]) return fault("bad magic");
  const view = new DataView(bytes.buffer, bytes.byteOffset, storageLimits.segmentHeaderBytes);
  const version = view.getUint16(8, true);
  if (view.getUint32(44, true) !== crc32c(bytes, 0, 0, 44)) return fault("header checksum mismatch");
  if (version !== storageLimits.formatVersion) return { ok: false, reason: "version", detail: `format version ${version}, this code reads ${storageLimits.formatVersion}` };
  const kindByte = view.getUint8(10);
  if (kindByte !== 1 && kindByte !== 2) return fault(`unknown segment kind ${kindByte}`);
  const kind: SegmentKind = kindByte === 1 ? "log" : "compaction";
  if (view.getUint32(12, true) !== number) return fault(`header names segment ${view.getUint32(12, true)}`);
  const previous = view.getUint32(16, true);
  const previousBytes = view.getBigUint64(20, true);
  const retiresFrom = view.getUint32(28, true);
  if (previous >= number || previousBytes > BigInt(Number.MAX_SAFE_INTEGER)) return fault("bad previous segment");
  if (kind === "compaction" ? retiresFrom < 1 || retiresFrom >= number : retiresFrom !== 0) return fault("bad compaction range");
  const incarnation = incarnationText(bytes, 32);
  return { ok: true, header: { number, kind, previous, previousBytes: Number(previousBytes), retiresFrom, incarnation } };
}

// ---- frames -------------------------------------------------------------------------------

/** The checksum seed of every frame in one segment of one log. */
export function frameSeed(incarnation: string, segment: number): number {
  const bytes = new Uint8Array(12);
  bytes.set(incarnationBytes(incarnation), 0);
  new DataView(bytes.buffer).setUint32(8, segment, true);
  return crc32c(bytes);
}

/** The largest frame sequence number: numbers stay exact as JavaScript numbers. */
export const frameSequenceMax = Number.MAX_SAFE_INTEGER;

/** Writes a frame's 24 header bytes into `target` at `at`; the payload goes right after them. */
export function writeFrameHeader(target: Uint8Array, at: number, frame: { readonly kind: FrameKind; readonly sequence: number; readonly payload: Uint8Array; readonly seed: number }): void {
  const { kind, sequence, payload, seed } = frame;
  assert(payload.length >= 1 && payload.length <= storageLimits.recordBytesMax, `frame payload of ${payload.length} bytes`);
  assert(Number.isSafeInteger(sequence) && sequence >= 1, `frame sequence number ${sequence}`);
  // Byte by byte rather than through a DataView: a view per frame was a tenth of a
  // compaction's time (a million cells' copy writes two million frames).
  putU32(target, at, payload.length);
  putU32(target, at + 4, kind); // kind, then three zero bytes
  putU32(target, at + 8, sequence % 2 ** 32);
  putU32(target, at + 12, Math.floor(sequence / 2 ** 32));
  putU32(target, at + 16, crc32c(payload, seed));
  putU32(target, at + 20, crc32c(target, seed, at, at + 20));
}

/** `value` (an unsigned 32-bit integer) little-endian at `bytes[at...at + 4]`. */
function putU32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value & 0xff;
  bytes[at + 1] = (value >>> 8) & 0xff;
  bytes[at + 2] = (value >>> 16) & 0xff;
  bytes[at + 3] = value >>> 24;
}

/** The sequence number in the frame header at `bytes[at...]`. */
export function frameSequence(view: DataView, at: number): number {
  return view.getUint32(at + 8, true) + view.getUint32(at + 12, true) * 2 ** 32;
}

export function encodeMarkerPayload(records: number): Uint8Array {
  assert(Number.isSafeInteger(records) && records >= 0, "a record count");
  const bytes = new Uint8Array(markerPayloadBytes);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(records), true);
  return bytes;
}

export function decodeMarkerPayload(bytes: Uint8Array): number | null {
  if (bytes.length !== markerPayloadBytes) return null;
  const count = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getBigUint64(0, true);
  return count > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(count);
}

/** A point in the log: an offset in a segment. Points compare by segment, then offset. */
export interface LogPoint {
  readonly segment: number;
  readonly offset: number;
}

export function comparePoints(a: LogPoint, b: LogPoint): number {
  return a.segment !== b.segment ? a.segment - b.segment : a.offset - b.offset;
}

export function encodeConfirmationPayload(point: LogPoint): Uint8Array {
  assert(point.segment >= 1 && Number.isSafeInteger(point.offset) && point.offset >= storageLimits.segmentHeaderBytes, "a confirmation names a point after a segment header");
  const bytes = new Uint8Array(storageLimits.confirmationPayloadBytes);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, point.segment, true);
  view.setBigUint64(8, BigInt(point.offset), true);
  return bytes;
}

export function decodeConfirmationPayload(bytes: Uint8Array): LogPoint | null {
  if (bytes.length !== storageLimits.confirmationPayloadBytes) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const segment = view.getUint32(0, true);
  const offset = view.getBigUint64(8, true);
  if (segment < 1 || view.getUint32(4, true) !== 0 || offset < BigInt(storageLimits.segmentHeaderBytes) || offset > BigInt(Number.MAX_SAFE_INTEGER)) return null;
  return { segment, offset: Number(offset) };
}
