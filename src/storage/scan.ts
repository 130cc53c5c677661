// Reading one segment back: frame by frame, each checked (length bounds, header checksum,
// sequence number, payload checksum, kind, `decodeRecord`) before it is believed, through a
// fixed read buffer so that a segment of any size is read in bounded memory.
//
// A frame that fails a check does not end the scan. When its header checks, its length is
// true and the scan goes on right after it. When its header does not check, its length cannot
// be trusted, and the scan resynchronises: it searches forward, byte by byte, for the next
// place where a frame header and its payload both check and the sequence number follows the
// last good frame's. What lies between is reported as one fault. Recovery (recover.ts)
// decides afterwards, from what it found after each fault, whether the fault is damage or a
// torn tail; the scanner only reports.

import { assert } from "../core/assert.ts";
import type { CellRecord } from "../core/effects.ts";
import { decodeRecord } from "../wire/records.ts";
import type { Disk, FileHandle } from "./disk.ts";
import { type LogPoint, comparePoints, decodeConfirmationPayload, decodeMarkerPayload, frameKind, frameSequence } from "./format.ts";
import { crc32c } from "./crc32c.ts";
import { storageLimits } from "./limits.ts";

/** Why recovery stopped believing some bytes of the log. */
export type FaultReason =
  /** A frame length of zero or above `recordBytesMax` (zeroed or garbage bytes). */
  | "length"
  /** A frame header that fails its checksum: its length, kind or sequence number cannot be trusted. */
  | "frameHeader"
  /** A frame whose header checks but whose payload does not. */
  | "checksum"
  /** The file ends inside a frame, or inside what would be a frame header. */
  | "truncated"
  /** A frame whose sequence number does not follow the frame before it (an old or misplaced block). */
  | "sequence"
  /** A frame kind this version does not know. */
  | "kind"
  /** A frame whose checksums hold but whose payload does not decode (a record, or a confirmation). */
  | "decode"
  /** A compaction marker out of place, repeated, or with the wrong record count; or missing from a finished compaction. */
  | "marker"
  /** A segment header that is short, garbled, of another log, or names another segment. */
  | "header"
  /** A segment that does not continue its predecessor exactly where that one ends, or a missing segment. */
  | "chain"
  /** The directory holds segments but no readable IDENTITY. */
  | "identity";

export interface ScanFault {
  /** Offset of the first byte that is not part of a valid frame. */
  readonly offset: number;
  /** Offset where valid frames resume (the next frame that checks), or the file's size. */
  readonly resume: number;
  readonly reason: FaultReason;
  readonly detail: string;
}

export interface ScanResult {
  readonly records: number;
  /** The sequence number of the last frame whose header checked (the next must exceed it). */
  readonly lastSequence: number;
  /** The highest sequence number of any frame header that checked. */
  readonly maxSequence: number;
  /** Offset just past the compaction marker, when this segment has a valid one. */
  readonly markerEnd: number | null;
  /** Offset of that marker. */
  readonly markerOffset: number | null;
  readonly bytesRead: number;
  /**
   * Where the segment's preallocated space begins: the offset of a frame boundary from which
   * every byte to the end of the file is zero (log segments only, see `ScanTarget`); null
   * when the frames (or faults) run to the end.
   */
  readonly zeroTail: number | null;
}

export interface ScanTarget {
  readonly number: number;
  readonly file: FileHandle;
  readonly size: number;
  readonly seed: number;
  /** Whether the segment is a compaction segment; null when its header is unreadable. */
  readonly compaction: boolean | null;
}

// Preallocated space. The log extends a log segment's file ahead of its writes (log.ts,
// `reserve`), so that an fdatasync need not make a new file length durable with every round;
// the zeros after the last frame are that space, not a fault. A frame never begins with a
// zero length, so zeros from a frame boundary to the end of the file hold no frame: the scan
// ends there and says where (`zeroTail`). A sealed segment is cut to its frames before its
// successor's header is written, so recovery holds zeros at the end of any segment but the
// last to the chain's length check (damage). Compaction segments are not extended.

export interface ScanCallbacks {
  readonly buffer: Uint8Array;
  /** The sequence number of the last good frame before this segment (0 at the beginning of the log). */
  readonly lastSequence: number;
  readonly onRecord: (entry: CellRecord) => void;
  readonly onFault: (fault: ScanFault) => void;
  /** A sync confirmation, found at `offset`: it proves every byte before `point` was durable. */
  readonly onConfirmation: (point: LogPoint, offset: number) => void;
}

/** Reads every frame of a segment after its header, in order, reporting records, confirmations and faults. */
export function scanSegment(disk: Disk, segment: ScanTarget, callbacks: ScanCallbacks): ScanResult {
  const { buffer, onRecord, onFault, onConfirmation } = callbacks;
  const { size, seed } = segment;
  const headerBytes = storageLimits.frameHeaderBytes;
  const lengthMax = storageLimits.recordBytesMax;
  assert(buffer.length >= Math.min(size, headerBytes + lengthMax), "the read buffer holds the largest frame this file can hold");
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.length);
  // The buffer holds file bytes [bufferStart, bufferEnd).
  let bufferStart = 0;
  let bufferEnd = 0;
  let bytesRead = 0;
  // Makes file bytes [position, position + count) available in the buffer; false if the file ends first.
  const have = (position: number, count: number): boolean => {
    if (position + count > size) return false;
    if (position >= bufferStart && position + count <= bufferEnd) return true;
    const want = Math.min(buffer.length, size - position);
    let got = 0;
    for (let reads = 0; got < want; reads++) {
      assert(reads < 1_000_000, "a read loop ends");
      const read = disk.read(segment.file, buffer, { offset: got, length: want - got, position: position + got });
      if (read === 0) break; // The file shrank under us: what is missing reads as the end.
      got += read;
    }
    bytesRead += got;
    bufferStart = position;
    bufferEnd = position + got;
    return got >= count;
  };

  let lastSequence = callbacks.lastSequence;
  let maxSequence = lastSequence;
  let records = 0;
  let faults = 0;
  let markerEnd: number | null = null;
  let markerOffset: number | null = null;
  const fault = (offset: number, resume: number, reason: FaultReason, detail: string) => {
    faults++;
    onFault({ offset, resume, reason, detail });
  };

  /** The offset of the first byte at or after `from` that is not zero, or the file's size. */
  const firstNonzero = (from: number): number => {
    for (let p = from; p < size; ) {
      const count = Math.min(buffer.length, size - p);
      if (!have(p, count)) return p;
      const start = p - bufferStart;
      for (let i = start; i < start + count; i++) if (buffer[i] !== 0) return bufferStart + i;
      p += count;
    }
    return size;
  };
  /** Where the zeros that end the file begin, if they begin at or after `from`; null if the file ends in a nonzero byte. */
  const trailingZeros = (from: number): number | null => {
    for (let p = size; p > from; ) {
      const count = Math.min(buffer.length, p - from);
      const start = p - count;
      if (!have(start, count)) return null;
      const base = start - bufferStart;
      for (let i = base + count - 1; i >= base; i--) if (buffer[i] !== 0) return bufferStart + i + 1 < size ? bufferStart + i + 1 : null;
      p = start;
    }
    return from < size ? from : null;
  };
  // Bytes [zerosFrom, zerosTo) are known to be zero: a run of zeros is searched once.
  let zerosFrom = 0;
  let zerosTo = 0;
  let zeroTail: number | null = null;

  /** The next offset at or after `from` where a frame checks in full and follows the last good one; null if none. */
  const resynchronise = (from: number): number | null => {
    for (let p = from; p + headerBytes <= size; p++) {
      if (!have(p, headerBytes)) return null;
      let at = p - bufferStart;
      const length = view.getUint32(at, true);
      if (length === 0) {
        // No frame begins inside a run of zeros: a frame's first four bytes (its length) are
        // not all zero. Skip to just before the run's end.
        if (p < zerosFrom || p >= zerosTo) {
          zerosFrom = p;
          zerosTo = firstNonzero(p);
        }
        if (zerosTo >= size) {
          // Nothing follows but zeros: after the fault, the preallocated space.
          if (segment.compaction !== true) zeroTail = zerosFrom;
          return null;
        }
        p = Math.max(p, zerosTo - 4);
        continue;
      }
      if (length > lengthMax || p + headerBytes + length > size) continue;
      if (view.getUint32(at + 20, true) !== crc32c(buffer, seed, at, at + 20)) continue;
      if (frameSequence(view, at) <= lastSequence) continue;
      if (!have(p, headerBytes + length)) continue;
      at = p - bufferStart;
      if (view.getUint32(at + 16, true) !== crc32c(buffer, seed, at + headerBytes, at + headerBytes + length)) continue;
      return p;
    }
    return null;
  };

  let position: number = storageLimits.segmentHeaderBytes;
  for (let frames = 0; position < size; frames++) {
    assert(frames <= size, "each frame advances the scan");
    // Zeros from here to the end: the segment's preallocated space (see above).
    if (segment.compaction !== true && have(position, 1) && buffer[position - bufferStart] === 0 && firstNonzero(position) === size) {
      zeroTail = position;
      break;
    }
    if (size - position < headerBytes) {
      fault(position, size, "truncated", `${size - position} bytes at the end, shorter than a frame header`);
      break;
    }
    have(position, headerBytes);
    let at = position - bufferStart;
    const length = view.getUint32(at, true);
    const lengthValid = length >= 1 && length <= lengthMax;
    if (!lengthValid || view.getUint32(at + 20, true) !== crc32c(buffer, seed, at, at + 20)) {
      const resume = resynchronise(position + 1);
      // Nothing valid follows: the zeros that end the file (too few for a frame header, which
      // the search stops short of) are the segment's preallocated space, not lost bytes.
      if (resume === null && zeroTail === null && segment.compaction !== true) zeroTail = trailingZeros(position + 1);
      fault(position, resume ?? zeroTail ?? size, lengthValid ? "frameHeader" : "length", lengthValid ? "a frame header fails its checksum" : `frame length ${length}`);
      if (resume === null) break;
      position = resume;
      continue;
    }
    const sequence = frameSequence(view, at);
    const kind = buffer[at + 4];
    const end = position + headerBytes + length;
    maxSequence = Math.max(maxSequence, sequence);
    if (end > size) {
      fault(position, size, "truncated", `a frame of ${length} bytes runs past the end of the file`);
      break;
    }
    if (sequence <= lastSequence) {
      fault(position, end, "sequence", `frame ${sequence} follows frame ${lastSequence}`);
      position = end;
      continue;
    }
    lastSequence = sequence;
    have(position, headerBytes + length);
    at = position - bufferStart;
    if (view.getUint32(at + 16, true) !== crc32c(buffer, seed, at + headerBytes, at + headerBytes + length)) {
      fault(position, end, "checksum", `frame ${sequence} of ${length} bytes fails its payload checksum`);
      position = end;
      continue;
    }
    const payload = buffer.subarray(at + headerBytes, at + headerBytes + length);
    if (kind === frameKind.record) {
      // Copy: the decoder hands out views of its input (snapshot state), and the buffer is reused.
      const decoded = decodeRecord(payload.slice());
      if (decoded.ok) {
        onRecord(decoded.entry);
        records++;
      } else {
        fault(position, end, "decode", decoded.detail);
      }
    } else if (kind === frameKind.confirmation) {
      const point = decodeConfirmationPayload(payload);
      if (point === null) fault(position, end, "decode", "a sync confirmation that does not decode");
      else if (comparePoints(point, { segment: segment.number, offset: position }) > 0) fault(position, end, "decode", `a sync confirmation of segment ${point.segment} offset ${point.offset}, after itself`);
      else onConfirmation(point, position);
    } else if (kind === frameKind.marker) {
      const count = decodeMarkerPayload(payload);
      if (segment.compaction === false) fault(position, end, "marker", "a compaction marker in a log segment");
      else if (markerEnd !== null) fault(position, end, "marker", "a second compaction marker");
      else if (count === null) fault(position, end, "marker", "a compaction marker that does not decode");
      else {
        // Records lost to a fault before the marker explain a short count; only an intact segment must match it.
        if (faults === 0 && count !== records) fault(position, end, "marker", `the marker counts ${count} records, the segment holds ${records}`);
        markerOffset = position;
        markerEnd = end;
      }
    } else {
      fault(position, end, "kind", `unknown frame kind ${String(kind)}`);
    }
    position = end;
  }
  return { records, lastSequence, maxSequence, markerEnd, markerOffset, bytesRead, zeroTail };
}
