// Reading one segment back: frame by frame, each checked (length bounds, checksum, kind,
// `decodeRecord`) before it is believed, through a fixed read buffer so that a segment of any
// size is read in bounded memory. Stops at the first frame that fails a check.

import { assert } from "../core/assert.ts";
import type { CellRecord } from "../core/effects.ts";
import { decodeRecord } from "../wire/records.ts";
import type { Disk, FileHandle } from "./disk.ts";
import { decodeMarkerPayload, frameChecksum, frameKind, frameSeed } from "./format.ts";
import { storageLimits } from "./limits.ts";

/** Why recovery stopped believing the bytes of a segment. */
export type DamageReason =
  /** The file ends inside a frame: the classic tail of a write cut short by a crash. */
  | "torn"
  /** A frame length of zero or above `recordBytesMax` (zeroed or garbage bytes). */
  | "length"
  | "checksum"
  /** A frame kind this version does not know. */
  | "kind"
  /** A frame whose checksum holds but whose payload `decodeRecord` refuses. */
  | "decode"
  /** A compaction marker out of place, repeated, or with the wrong record count. */
  | "marker"
  /** A segment header that is short, garbled or names another segment. */
  | "header"
  /** A segment that does not continue its predecessor exactly where that one ends. */
  | "chain";

export interface ScanFault {
  readonly offset: number;
  readonly reason: DamageReason;
  readonly detail: string;
}

export interface ScanResult {
  /** Offset just past the last good frame. */
  readonly end: number;
  readonly fault: ScanFault | null;
  readonly records: number;
  /** Offset just past the compaction marker, when this segment has a valid one. */
  readonly markerEnd: number | null;
}

export interface ScanTarget {
  readonly number: number;
  readonly file: FileHandle;
  readonly size: number;
  readonly compaction: boolean;
}

/** Reads every frame of a segment after its header, handing each record to `onRecord` in order. */
export function scanSegment(disk: Disk, segment: ScanTarget, options: { buffer: Uint8Array; onRecord: (entry: CellRecord) => void }): ScanResult {
  const { buffer, onRecord } = options;
  const { size } = segment;
  const headerBytes = storageLimits.frameHeaderBytes;
  assert(buffer.length >= Math.min(size, headerBytes + storageLimits.recordBytesMax), "the read buffer holds the largest frame this file can hold");
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.length);
  const seed = frameSeed(segment.number);
  // The buffer holds file bytes [bufferStart, bufferEnd).
  let bufferStart = 0;
  let bufferEnd = 0;
  // Makes file bytes [position, position + count) available in the buffer; false if the file ends first.
  const have = (position: number, count: number): boolean => {
    if (position + count > size) return false;
    if (position >= bufferStart && position + count <= bufferEnd) return true;
    const want = Math.min(buffer.length, size - position);
    let got = 0;
    for (let reads = 0; got < want; reads++) {
      assert(reads < 1_000_000, "a read loop ends");
      const read = disk.read(segment.file, buffer, { offset: got, length: want - got, position: position + got });
      if (read === 0) break; // The file shrank under us; treat what is missing as torn.
      got += read;
    }
    bufferStart = position;
    bufferEnd = position + got;
    return got >= count;
  };

  let position = storageLimits.segmentHeaderBytes;
  let records = 0;
  let markerEnd: number | null = null;
  const stop = (reason: DamageReason, detail: string): ScanResult => ({ end: position, fault: { offset: position, reason, detail }, records, markerEnd });
  for (let frames = 0; position < size; frames++) {
    assert(frames <= size / headerBytes, "each frame advances the scan");
    if (!have(position, headerBytes)) return stop("torn", `${size - position} bytes at the end, shorter than a frame header`);
    const length = view.getUint32(position - bufferStart, true);
    if (length === 0 || length > storageLimits.recordBytesMax) return stop("length", `frame length ${length}`);
    if (!have(position, headerBytes + length)) return stop("torn", `a frame of ${length} bytes runs past the end of the file`);
    const at = position - bufferStart;
    const stored = view.getUint32(at + 4, true);
    const kind = buffer[at + 8];
    if (frameChecksum(buffer, at, buffer, at + headerBytes, at + headerBytes + length, seed) !== stored) return stop("checksum", `frame of ${length} bytes fails its checksum`);
    const payload = buffer.subarray(at + headerBytes, at + headerBytes + length);
    if (kind === frameKind.record) {
      // Copy: the decoder hands out views of its input (snapshot state), and the buffer is reused.
      const decoded = decodeRecord(payload.slice());
      if (!decoded.ok) return stop("decode", decoded.detail);
      onRecord(decoded.entry);
      records++;
    } else if (kind === frameKind.marker) {
      if (!segment.compaction) return stop("marker", "a compaction marker in a log segment");
      if (markerEnd !== null) return stop("marker", "a second compaction marker");
      const count = decodeMarkerPayload(payload);
      if (count !== records) return stop("marker", `the marker counts ${String(count)} records, the segment holds ${records}`);
      markerEnd = position + headerBytes + length;
    } else {
      return stop("kind", `unknown frame kind ${String(kind)}`);
    }
    position += headerBytes + length;
  }
  return { end: position, fault: null, records, markerEnd };
}
