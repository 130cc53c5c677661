// Opening a log directory: find where the log begins, replay its segments in order, stop at
// the first damage, and cut the files back to the last good record so that new appends follow
// it. What is read back is always a prefix of what was appended (segments chain; see format.ts).
//
// Where the log begins. A compaction segment supersedes every older segment once its marker
// is on disk, so the log begins at the newest compaction segment that has a valid marker.
// A compaction segment without a marker is an unfinished compaction when the log it was to
// supersede is still there: it held copies only (what was appended during the copy went to
// the old log too, and was synced there), so it is removed, with any segment after it, and
// the older segments are read instead. Otherwise, a compaction segment without a marker is the
// beginning of the log with damage in it (the older segments were already retired): it is
// read up to the damage.

import { assert } from "../core/assert.ts";
import type { CellRecord, DurableRecord } from "../core/effects.ts";
import type { Disk, FileHandle } from "./disk.ts";
import { LogOpenError, describeError } from "./errors.ts";
import { type HeaderResult, decodeSegmentHeader, parseSegmentName, segmentName } from "./format.ts";
import { storageLimits } from "./limits.ts";
import { type DamageReason, scanSegment } from "./scan.ts";

export interface Damage {
  readonly segment: number;
  /** Offset in that segment of the first byte that is not part of a valid record. */
  readonly offset: number;
  readonly reason: DamageReason;
  readonly detail: string;
  /** Bytes discarded: the rest of that segment and every later segment. */
  readonly lostBytes: number;
}

export interface RecoveryStats {
  readonly segmentsRead: number;
  readonly records: number;
  readonly bytesRead: number;
  readonly milliseconds: number;
}

export interface RecoveredSegment {
  readonly number: number;
  readonly file: FileHandle;
  /** Length after recovery: the end of the last good frame. */
  readonly bytes: number;
}

export interface Recovery {
  /** Every cell's records, in the order they were written. */
  readonly records: Map<string, DurableRecord[]>;
  readonly damage: Damage | null;
  /** The segments that remain, oldest first, still open; the log appends to the last. */
  readonly segments: readonly RecoveredSegment[];
  /** The highest segment number the directory held, removed ones included. */
  readonly highestNumber: number;
  /** Bytes of the compaction the log begins with, through its marker; 0 if none. */
  readonly compactionBytes: number;
  readonly stats: RecoveryStats;
}

interface SegmentFile {
  readonly number: number;
  readonly file: FileHandle;
  readonly size: number;
  readonly header: HeaderResult;
}

interface Replay {
  readonly records: Map<string, DurableRecord[]>;
  readonly count: number;
  /** Good length of each segment read, from the base on. */
  readonly ends: number[];
  readonly damage: { readonly index: number; readonly offset: number; readonly reason: DamageReason; readonly detail: string } | null;
  readonly markerEnd: number | null;
  readonly bytesRead: number;
}

export async function recover(disk: Disk, directory: string): Promise<Recovery> {
  const started = performance.now();
  const files = openSegments(disk, directory);
  const highestNumber = files.reduce((highest, segment) => Math.max(highest, segment.number), 0);
  // A frame never exceeds its file, so small logs need no more buffer than their largest file.
  const largest = files.reduce((bytes, segment) => Math.max(bytes, segment.size), 0);
  const buffer = new Uint8Array(Math.min(storageLimits.readBufferBytes, largest));
  try {
    // Choose where the log begins, dropping aborted compactions from the top.
    const discarded: SegmentFile[] = [];
    let abortedDamage: Damage | null = null;
    let live = files;
    let base = 0;
    let replay: Replay | null = null;
    for (let attempts = 0; replay === null; attempts++) {
      assert(attempts <= files.length, "each attempt discards a segment");
      const candidate = live.findLastIndex((segment) => segment.header.ok && segment.header.header.kind === "compaction");
      if (candidate === -1) {
        const first = live[0];
        if (first !== undefined && first.header.ok && first.header.header.previous !== 0) {
          throw new LogOpenError(
            `Cannot open log: ${directory} begins with ${segmentName(first.number)}, which follows segment ${first.header.header.previous}, and that segment is missing`,
          );
        }
        base = 0;
        replay = replayFrom(disk, live, 0, buffer);
        break;
      }
      const attempt = replayFrom(disk, live, candidate, buffer);
      const segment = live[candidate]!;
      if (attempt.markerEnd === null && oldLogPresent(live, segment)) {
        // Unfinished: the old log is intact. Segments after the compaction's can only have been
        // begun after its marker was written, and no sync covered them before the marker was
        // durable, so they go with it. Report bytes that were not valid frames.
        const later = live.slice(candidate + 1);
        const laterBytes = later.reduce((sum, other) => sum + other.size, 0);
        if (abortedDamage === null && attempt.damage !== null && attempt.damage.index === candidate) {
          const { offset, reason, detail } = attempt.damage;
          abortedDamage = { segment: segment.number, offset, reason, detail, lostBytes: segment.size - offset + laterBytes };
        } else if (abortedDamage === null && later.length > 0) {
          abortedDamage = { segment: later[0]!.number, offset: 0, reason: "chain", detail: `the segment follows compaction segment ${segment.number}, which has no marker`, lostBytes: laterBytes };
        }
        discarded.push(segment, ...later);
        live = live.slice(0, candidate);
        continue;
      }
      base = candidate;
      replay = attempt;
    }

    // Cut back: older segments are superseded; the damaged one is truncated; later ones are lost.
    const removals: SegmentFile[] = [...discarded, ...live.slice(0, base)];
    const kept: RecoveredSegment[] = [];
    let damage: Damage | null = null;
    const lastIndex = replay.damage === null ? live.length - 1 : replay.damage.index;
    for (let index = base; index <= lastIndex; index++) {
      const segment = live[index]!;
      const end = replay.damage !== null && index === replay.damage.index ? replay.damage.offset : replay.ends[index - base]!;
      if (end < storageLimits.segmentHeaderBytes) {
        removals.push(segment);
      } else {
        if (end < segment.size) {
          disk.truncate(segment.file, end);
          await disk.sync(segment.file);
        }
        kept.push({ number: segment.number, file: segment.file, bytes: end });
      }
    }
    if (replay.damage !== null) {
      const { index, offset, reason, detail } = replay.damage;
      let lostBytes = live[index]!.size - offset;
      for (const later of live.slice(index + 1)) {
        lostBytes += later.size;
        removals.push(later);
      }
      // An empty file at the end (created, then the process died) held nothing: no damage.
      if (lostBytes > 0) damage = { segment: live[index]!.number, offset, reason, detail, lostBytes };
    }
    damage ??= abortedDamage;
    for (const segment of removals) {
      disk.close(segment.file);
      disk.remove(`${directory}/${segmentName(segment.number)}`);
    }
    if (removals.length > 0) await disk.syncDirectory(directory);

    const baseHeader = live[base]?.header;
    const compactionBytes = baseHeader?.ok === true && baseHeader.header.kind === "compaction" ? (replay.markerEnd ?? 0) : 0;
    const stats: RecoveryStats = {
      segmentsRead: replay.ends.length,
      records: replay.count,
      bytesRead: replay.bytesRead,
      milliseconds: performance.now() - started,
    };
    return { records: replay.records, damage, segments: kept, highestNumber, compactionBytes, stats };
  } catch (error) {
    for (const segment of files) {
      try {
        disk.close(segment.file);
      } catch {
        // Already closed, or the disk is gone: nothing more to release.
      }
    }
    throw error;
  }
}

/** Opens every segment file of the directory, lowest number first, and reads its header. */
function openSegments(disk: Disk, directory: string): SegmentFile[] {
  let names: string[];
  try {
    disk.makeDirectory(directory);
    names = disk.list(directory);
  } catch (error) {
    throw new LogOpenError(`Cannot open log: ${directory}: ${describeError(error)}`, { cause: error });
  }
  const numbers = names.map(parseSegmentName).filter((number): number is number => number !== null);
  if (numbers.length > storageLimits.segmentsMax) {
    throw new LogOpenError(`Cannot open log: ${directory} holds ${numbers.length} segments, more than ${storageLimits.segmentsMax}`);
  }
  numbers.sort((a, b) => a - b);
  const files: SegmentFile[] = [];
  try {
    for (const number of numbers) {
      const file = disk.open(`${directory}/${segmentName(number)}`);
      const size = disk.size(file);
      const headerBytes = new Uint8Array(Math.min(size, storageLimits.segmentHeaderBytes));
      let got = 0;
      while (got < headerBytes.length) {
        const read = disk.read(file, headerBytes, { offset: got, length: headerBytes.length - got, position: got });
        if (read === 0) break;
        got += read;
      }
      const header = decodeSegmentHeader(headerBytes.subarray(0, got), number);
      files.push({ number, file, size, header });
      if (!header.ok && header.reason === "version") {
        throw new LogOpenError(`Cannot open log: ${segmentName(number)} in ${directory} has ${header.detail}`);
      }
    }
  } catch (error) {
    for (const segment of files) disk.close(segment.file);
    if (error instanceof LogOpenError) throw error;
    throw new LogOpenError(`Cannot open log: ${directory}: ${describeError(error)}`, { cause: error });
  }
  return files;
}

/**
 * Whether the log a compaction was to supersede can still be read: its first segment is on
 * disk. That segment's name was durable before the compaction began (it is the first segment
 * of the log, or an earlier compaction that finished), and a compaction removes the segments it
 * supersedes oldest first, only once its marker is durable. Later segments of the old log may
 * be missing after a power failure (created since the directory's last sync); reading the old
 * log then stops at the gap, which loses only records that no sync had covered.
 */
function oldLogPresent(live: readonly SegmentFile[], compaction: SegmentFile): boolean {
  assert(compaction.header.ok && compaction.header.header.kind === "compaction", "a compaction segment");
  const { retiresFrom } = compaction.header.header;
  return live.some((segment) => segment.number === retiresFrom && segment.header.ok);
}

/** Reads segments from `base` on, checking the chain between them, until the first damage. */
function replayFrom(disk: Disk, live: readonly SegmentFile[], base: number, buffer: Uint8Array): Replay {
  const records = new Map<string, DurableRecord[]>();
  const ends: number[] = [];
  let count = 0;
  let bytesRead = 0;
  let markerEnd: number | null = null;
  const onRecord = ({ cell, record }: CellRecord) => {
    const list = records.get(cell);
    if (list === undefined) records.set(cell, [record]);
    else list.push(record);
    count++;
  };
  const result = (damage: Replay["damage"]): Replay => ({ records, count, ends, damage, markerEnd, bytesRead });
  for (let index = base; index < live.length; index++) {
    const segment = live[index]!;
    if (!segment.header.ok) {
      // A kill between creating a segment and writing its header leaves it short at the end.
      const torn = index === live.length - 1 && segment.size < storageLimits.segmentHeaderBytes;
      return result({ index, offset: 0, reason: torn ? "torn" : "header", detail: segment.header.detail });
    }
    const header = segment.header.header;
    if (index > base) {
      const before = live[index - 1]!;
      const beforeEnd = ends[index - 1 - base]!;
      if (header.kind === "compaction") return result({ index, offset: 0, reason: "chain", detail: "a compaction segment after the beginning of the log" });
      if (header.previous !== before.number) {
        return result({ index, offset: 0, reason: "chain", detail: `the segment follows segment ${header.previous}, but the one before it is ${before.number}` });
      }
      if (header.previousBytes > beforeEnd) {
        // The predecessor lost its tail cleanly (at a frame boundary): what followed it is lost too.
        return result({
          index: index - 1,
          offset: beforeEnd,
          reason: "chain",
          detail: `segment ${segment.number} expects this one to hold ${header.previousBytes} bytes, it holds ${beforeEnd}`,
        });
      }
      if (header.previousBytes < beforeEnd) {
        return result({ index, offset: 0, reason: "chain", detail: `the segment expects its predecessor to hold ${header.previousBytes} bytes, it holds ${beforeEnd}` });
      }
    }
    const scan = scanSegment(disk, { number: segment.number, file: segment.file, size: segment.size, compaction: header.kind === "compaction" }, { buffer, onRecord });
    ends.push(scan.end);
    bytesRead += scan.end;
    if (index === base) markerEnd = scan.markerEnd;
    if (scan.fault !== null) return result({ index, ...scan.fault });
  }
  return result(null);
}
