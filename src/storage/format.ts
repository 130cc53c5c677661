// The bytes on disk. A log directory holds segment files named by an increasing number
// (`00000001.log`, ...). Each segment starts with a header and continues with frames:
//
//   header (40 bytes, little-endian)
//     0  magic "PHYSLOG\0"
//     8  u16 format version (1)
//    10  u8  kind: 1 = log, 2 = compaction
//    11  u8  zero
//    12  u32 segment number (equals the file name)
//    16  u32 previous segment number, 0 for the first segment of a log
//    20  u64 previous segment's length in bytes when this one was begun
//    28  u32 compaction only: the oldest segment this compaction supersedes, else 0
//    32  u32 zero
//    36  u32 CRC32C of bytes 0..36
//
//   frame (9 + length bytes)
//     0  u32 payload length, 1..recordBytesMax
//     4  u32 CRC32C of (bytes 0..4, byte 8, payload), seeded with the segment number
//     8  u8  kind: 1 = record (payload is `encodeRecord` bytes), 2 = compaction marker
//     9  payload; a marker's payload is the u64 count of records before it in its segment
//
// A compaction segment holds the compacted records, then the records appended while they were
// copied, then the marker, then whatever was appended after.
//
// The previous segment's length chains the segments: recovery accepts a segment only if its
// predecessor ends, intact, exactly where this header says it did, so a crash that loses the
// unsynced tail of one segment can never leave a later segment's records behind a hole.
// Seeding each frame's checksum with its segment number makes a frame valid in one place only.

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
}

export const frameKind = { record: 1, marker: 2 } as const;
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
  view.setUint32(36, crc32c(bytes, 0, 0, 36), true);
  return bytes;
}

export type HeaderResult =
  | { readonly ok: true; readonly header: SegmentHeader }
  | { readonly ok: false; readonly reason: "header" | "version"; readonly detail: string };

/** Checks a header read from the file named for `number`. */
export function decodeSegmentHeader(bytes: Uint8Array, number: number): HeaderResult {
  const fault = (detail: string): HeaderResult => ({ ok: false, reason: "header", detail });
  if (bytes.length < storageLimits.segmentHeaderBytes) return fault(`header is ${bytes.length} bytes, shorter than ${storageLimits.segmentHeaderBytes}`);
  for (let i = 0; i < magic.length; i++) if (bytes[i] !== magic[i]) return fault("bad magic");
  const view = new DataView(bytes.buffer, bytes.byteOffset, storageLimits.segmentHeaderBytes);
  if (view.getUint32(36, true) !== crc32c(bytes, 0, 0, 36)) return fault("header checksum mismatch");
  const version = view.getUint16(8, true);
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
  return { ok: true, header: { number, kind, previous, previousBytes: Number(previousBytes), retiresFrom } };
}

/** The checksum seed of every frame in a segment. */
export function frameSeed(segment: number): number {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, segment, true);
  return crc32c(bytes);
}

/** Writes a frame's 9 header bytes into `target` at `at`; the payload goes right after them. */
export function writeFrameHeader(target: Uint8Array, at: number, kind: FrameKind, payload: Uint8Array, seed: number): void {
  assert(payload.length >= 1 && payload.length <= storageLimits.recordBytesMax, `frame payload of ${payload.length} bytes`);
  const view = new DataView(target.buffer, target.byteOffset + at, storageLimits.frameHeaderBytes);
  view.setUint32(0, payload.length, true);
  view.setUint8(8, kind);
  view.setUint32(4, frameChecksum(target, at, payload, 0, payload.length, seed), true);
}

/** The checksum a frame whose header is at `header[at...]` and payload at `payload[start, end)` must carry. */
export function frameChecksum(header: Uint8Array, at: number, payload: Uint8Array, start: number, end: number, seed: number): number {
  let crc = crc32c(header, seed, at, at + 4);
  crc = crc32c(header, crc, at + 8, at + 9);
  return crc32c(payload, crc, start, end);
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
