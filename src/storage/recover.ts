// Opening a log directory: find where the log begins, read every segment of it, and tell a
// torn tail from damage. docs/storage.md says the same for operators.
//
// The rule. A byte of the log is *confirmed* when the log holds proof, written only after an
// fdatasync returned, that the byte was durable by then. Two things are such proof:
//   - a sync confirmation frame "synced through (segment S, offset O)", which the log appends
//     after every sync round that made frames durable: it confirms every byte before O in S and
//     every byte of the segments before S;
//   - a log segment's header: it is written only after its predecessor's last fdatasync
//     returned, so it confirms every byte of every segment before it.
// The proof counts wherever it is found and whether or not it was itself synced: that it is on
// disk at all means it was written, and it was written only after what it names was durable.
//
// Reading finds *faults*: bytes that are not part of a valid frame (a checksum that fails, a
// frame that runs past the end of its file, a garbled segment header, ...). After a fault the
// reader resynchronises on the next frame whose header and payload checksums both hold, with a
// sequence number after the last good frame's, and reads on to the end of the log, collecting
// proof as it goes. Then:
//   - a fault before the furthest confirmed point is DAMAGE: bytes that were durable changed.
//     So is anything wrong with the structure itself (a segment missing from the chain, a
//     segment that does not continue its predecessor, a segment header of another log, no
//     readable IDENTITY beside segments, a finished compaction without its marker): a power
//     failure never produces those, because of the order in which the log writes and syncs;
//   - the first fault at or after it is a TORN TAIL: it and everything after it (valid frames
//     included) were never covered by a completed sync, so nothing in it was acknowledged. It
//     is discarded and the log starts normally.
// With damage, nothing is modified, truncated or removed: recovery returns every record it
// could read (before, between and after the damaged regions, up to a torn tail if there is
// one) and the list of damaged regions, and the caller gets no writable log. A sealed segment
// is never cut on a guess: its successor's header confirms all of it.
//
// The residual case. The last batch synced before a power failure is confirmed only once its
// confirmation frame is on disk, which happens at the next sync, or by itself within
// `confirmationDelayMs` (50 ms by default) when no other sync comes. A media fault in that last
// batch, together with a power failure in the few milliseconds before its confirmation reached
// the disk, is called torn: the damaged batch and what follows it are discarded as if they had
// never been synced. Nothing else is misclassified: without media faults every fault a power
// failure leaves is in unconfirmed bytes (torn), and every flipped bit in confirmed bytes is
// damage. A process that is killed (no power failure) always leaves its confirmations readable:
// the log writes each to the page cache as soon as its round ends.
//
// Where the log begins. A compaction segment supersedes every older segment once its marker
// is durable, so the log begins at the newest compaction segment that is *finished*: its marker
// was read with no unconfirmed fault before it, or proof covers the compaction segment, or the
// old log it supersedes is gone (old segments are removed only after the marker is durable). An
// unfinished compaction held copies only (what was appended during the copy went to the old log
// too, and was synced there): it is discarded, not damage, and the older segments are read.

import { assert } from "../core/assert.ts";
import type { CellRecord, DurableRecord } from "../core/effects.ts";
import type { Disk, FileHandle } from "./disk.ts";
import { LogOpenError, describeError } from "./errors.ts";
import {
  type HeaderResult,
  type LogPoint,
  comparePoints,
  decodeIdentity,
  decodeSegmentHeader,
  encodeIdentity,
  frameSeed,
  newIncarnation,
  parseSegmentName,
  segmentName,
} from "./format.ts";
import { storageLimits } from "./limits.ts";
import { type FaultReason, scanSegment } from "./scan.ts";

/** Bytes that were durable and changed: acknowledged records may be gone. */
export interface Damage {
  /** The segment number, or 0 for the IDENTITY file. */
  readonly segment: number;
  /** Offset in that segment of the first byte that is not part of a valid record. */
  readonly offset: number;
  readonly reason: FaultReason;
  readonly detail: string;
  /** Bytes in the damaged region: from `offset` to where valid frames resume. */
  readonly bytes: number;
}

/** The unsynced end of the log, discarded (or, with damage, reported only). */
export interface TornTail {
  readonly segment: number;
  readonly offset: number;
  /** Bytes from `offset` to the end of the log, later segments included. */
  readonly lostBytes: number;
  readonly reason: FaultReason;
  readonly detail: string;
}

export interface RecoveryStats {
  readonly segmentsRead: number;
  readonly records: number;
  readonly bytesRead: number;
  readonly milliseconds: number;
  /** Sync confirmations read. */
  readonly confirmations: number;
  /** Unfinished compaction segments discarded (copies only: nothing of the log was in them). */
  readonly unfinishedCompactions: number;
  readonly unfinishedCompactionBytes: number;
}

export interface RecoveredSegment {
  readonly number: number;
  readonly file: FileHandle;
  /** Length after recovery: where its frames end (preallocated zeros may follow). */
  readonly bytes: number;
  /** A compaction segment (never extended: see scan.ts). */
  readonly compaction: boolean;
}

export interface Recovery {
  /** Every cell's records, in the order they were written. */
  readonly records: Map<string, DurableRecord[]>;
  readonly damage: Damage[];
  readonly torn: TornTail | null;
  readonly incarnation: string;
  /** Without damage: the segments that remain, oldest first, still open; the log appends to the last. Empty with damage. */
  readonly segments: readonly RecoveredSegment[];
  /** The highest segment number the directory held, removed ones included. */
  readonly highestNumber: number;
  /** Bytes of the compaction the log begins with, through its marker; 0 if none. */
  readonly compactionBytes: number;
  /** The sequence number the next frame takes: above every one seen. */
  readonly nextSequence: number;
  readonly stats: RecoveryStats;
}

export const identityName = "IDENTITY";
const identityTemporaryName = "IDENTITY.tmp";

interface SegmentFile {
  readonly number: number;
  readonly file: FileHandle;
  readonly size: number;
  readonly header: HeaderResult;
}

interface ChainFault {
  readonly segment: number;
  /** Index in the list of live segments. */
  readonly index: number;
  readonly offset: number;
  readonly bytes: number;
  readonly reason: FaultReason;
  readonly detail: string;
  /** Structural: damage whatever proof there is. */
  readonly always: boolean;
  /** Records read after the first fault and before this one. */
  readonly tailIndex: number;
}

interface ChainRead {
  /** Records read before the first fault. */
  readonly records: Map<string, DurableRecord[]>;
  /** Records read after the first fault, in order. */
  readonly tail: CellRecord[];
  readonly faults: ChainFault[];
  /** The furthest point proof confirms; bytes before it were durable. */
  readonly coverage: LogPoint;
  readonly maxSequence: number;
  readonly markerOffset: number | null;
  readonly markerEnd: number | null;
  readonly segmentsRead: number;
  readonly bytesRead: number;
  readonly confirmations: number;
  /** Per segment (as `live` is indexed), where its frames end: its size, or where its preallocated zeros begin. */
  readonly ends: readonly number[];
}

/** The parent directory of a path: "/" for "/log", "." for a bare name. */
export function parentDirectory(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

export async function recover(disk: Disk, directory: string): Promise<Recovery> {
  const started = performance.now();
  await prepareDirectory(disk, directory);
  let names: string[];
  try {
    names = disk.list(directory);
  } catch (error) {
    throw new LogOpenError(`Cannot open log: ${directory}: ${describeError(error)}`, { cause: error });
  }
  const files = openSegments(disk, directory, names);
  try {
    const damage: Damage[] = [];
    const identity = readIdentity(disk, directory, names);
    let incarnation: string;
    const named = files.flatMap((segment) => (segment.header.ok ? [segment.header.header.incarnation] : []));
    if (identity.ok && named.length > 0 && !named.includes(identity.incarnation)) {
      // Every readable segment header names one log, and IDENTITY another: IDENTITY changed.
      damage.push({ segment: 0, offset: 0, reason: "identity", detail: `IDENTITY names log ${identity.incarnation}, the segments ${named[0]!}`, bytes: 0 });
      incarnation = named[0]!;
    } else if (identity.ok) {
      incarnation = identity.incarnation;
    } else if (identity.missing && files.length === 0) {
      // A new log: its identity is durable before any segment exists, so segments without one are damage.
      incarnation = newIncarnation();
      await writeIdentity(disk, directory, { incarnation, temporaryExists: names.includes(identityTemporaryName) });
    } else {
      damage.push({ segment: 0, offset: 0, reason: "identity", detail: identity.detail, bytes: 0 });
      // Read what can be read with the incarnation the segment headers name.
      incarnation = named[0] ?? newIncarnation();
    }

    // A frame never exceeds its file, so small logs need no more buffer than their largest file.
    const largest = files.reduce((bytes, segment) => Math.max(bytes, segment.size), 0);
    const buffer = new Uint8Array(Math.min(storageLimits.readBufferBytes, largest));
    const read = (live: readonly SegmentFile[], base: number) => readChain(disk, { live, base, incarnation, buffer });

    // Choose where the log begins, dropping unfinished compactions from the top.
    const discarded: SegmentFile[] = [];
    let live: SegmentFile[] = files;
    let base = 0;
    let chain: ChainRead | null = null;
    let maxSequence = 0;
    let unfinished = 0;
    for (let attempts = 0; chain === null; attempts++) {
      assert(attempts <= files.length, "each attempt discards a segment");
      const candidate = live.findLastIndex((segment) => segment.header.ok && segment.header.header.kind === "compaction" && segment.header.header.incarnation === incarnation);
      if (candidate === -1) {
        base = 0;
        chain = read(live, 0);
        break;
      }
      const attempt = read(live, candidate);
      maxSequence = Math.max(maxSequence, attempt.maxSequence);
      if (compactionFinished(attempt, live, candidate)) {
        base = candidate;
        chain = attempt;
        break;
      }
      // Unfinished. What follows it without a readable header of its own is the compaction's
      // leftover (a segment begun after its marker was written, before any sync covered it);
      // a segment with a valid header is no part of it and stays in the log.
      unfinished++;
      discarded.push(live[candidate]!);
      const kept = live.slice(0, candidate);
      for (const later of live.slice(candidate + 1)) (later.header.ok ? kept : discarded).push(later);
      live = kept;
    }
    maxSequence = Math.max(maxSequence, chain.maxSequence);

    // A finished compaction whose marker cannot be read: its marker was durable and is gone.
    const baseSegment = live[base];
    const baseIsCompaction = baseSegment?.header.ok === true && baseSegment.header.header.kind === "compaction";
    const faults = [...chain.faults];
    if (baseSegment !== undefined && baseIsCompaction && chain.markerOffset === null) {
      const first = faults.find((fault) => fault.index === base);
      faults.push({
        segment: baseSegment.number,
        index: base,
        offset: first?.offset ?? baseSegment.size,
        bytes: 0,
        reason: "marker",
        detail: "a finished compaction segment without a readable marker",
        always: true,
        tailIndex: first?.tailIndex ?? chain.tail.length,
      });
    }
    faults.sort((a, b) => comparePoints(a, b));
    const covered = (fault: ChainFault) => fault.always || comparePoints(fault, chain.coverage) < 0;
    for (const fault of faults) {
      if (covered(fault)) damage.push({ segment: fault.segment, offset: fault.offset, reason: fault.reason, detail: fault.detail, bytes: fault.bytes });
    }
    const tornFault = faults.find((fault) => !covered(fault)) ?? null;
    let torn: TornTail | null = null;
    if (tornFault !== null) {
      // Preallocated zeros are no lost bytes.
      let lostBytes = chain.ends[tornFault.index]! - tornFault.offset;
      for (let later = tornFault.index + 1; later < live.length; later++) lostBytes += chain.ends[later]!;
      torn = { segment: tornFault.segment, offset: tornFault.offset, lostBytes, reason: tornFault.reason, detail: tornFault.detail };
    }

    // Every record read before the torn tail, in order.
    const records = chain.records;
    const tailEnd = tornFault?.tailIndex ?? chain.tail.length;
    for (let i = 0; i < tailEnd; i++) {
      const { cell, record } = chain.tail[i]!;
      const list = records.get(cell);
      if (list === undefined) records.set(cell, [record]);
      else list.push(record);
    }
    let recordCount = 0;
    for (const list of records.values()) recordCount += list.length;

    const highestNumber = files.reduce((highest, segment) => Math.max(highest, segment.number), 0);
    const unfinishedCompactionBytes = discarded.reduce((sum, segment) => sum + segment.size, 0);
    const stats = (): RecoveryStats => ({
      segmentsRead: chain.segmentsRead,
      records: recordCount,
      bytesRead: chain.bytesRead,
      milliseconds: performance.now() - started,
      confirmations: chain.confirmations,
      unfinishedCompactions: unfinished,
      unfinishedCompactionBytes,
    });
    const compactionBytes = baseIsCompaction ? (chain.markerEnd ?? 0) : 0;
    const nextSequence = maxSequence + 1;

    if (damage.length > 0) {
      // Evidence: touch nothing.
      for (const segment of files) disk.close(segment.file);
      return { records, damage, torn, incarnation, segments: [], highestNumber, compactionBytes, nextSequence, stats: stats() };
    }

    // Cut back: superseded and unfinished segments go, the torn tail goes.
    const removals: SegmentFile[] = [...discarded, ...live.slice(0, base)];
    const kept: RecoveredSegment[] = [];
    const lastIndex = tornFault === null ? live.length - 1 : tornFault.index;
    for (let index = base; index <= lastIndex; index++) {
      const segment = live[index]!;
      // A segment ends where its frames do; its preallocated zeros stay for the log to append into.
      const frames = chain.ends[index]!;
      const end = tornFault !== null && index === tornFault.index ? tornFault.offset : frames;
      if (end < storageLimits.segmentHeaderBytes) {
        removals.push(segment);
      } else {
        if (end < frames) {
          disk.truncate(segment.file, end);
          await disk.sync(segment.file);
        }
        kept.push({ number: segment.number, file: segment.file, bytes: end, compaction: segment.header.ok && segment.header.header.kind === "compaction" });
      }
    }
    removals.push(...live.slice(lastIndex + 1));
    for (const segment of removals) {
      disk.close(segment.file);
      disk.remove(`${directory}/${segmentName(segment.number)}`);
    }
    // A leftover of an IDENTITY write that a crash interrupted after the rename.
    const temporaryLeft = identity.ok && names.includes(identityTemporaryName);
    if (temporaryLeft) disk.remove(`${directory}/${identityTemporaryName}`);
    if (removals.length > 0 || temporaryLeft) await disk.syncDirectory(directory);
    return { records, damage, torn, incarnation, segments: kept, highestNumber, compactionBytes, nextSequence, stats: stats() };
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

/** Creates the directory when missing and makes its name durable in its parent. */
async function prepareDirectory(disk: Disk, directory: string): Promise<void> {
  try {
    const created = disk.makeDirectory(directory);
    // Each created directory's name lives in its parent: sync the parents, outermost first.
    for (const path of created) await disk.syncDirectory(parentDirectory(path));
  } catch (error) {
    throw new LogOpenError(`Cannot open log: ${directory}: ${describeError(error)}`, { cause: error });
  }
}

type IdentityResult = { readonly ok: true; readonly incarnation: string } | { readonly ok: false; readonly missing: boolean; readonly detail: string };

function readIdentity(disk: Disk, directory: string, names: readonly string[]): IdentityResult {
  if (!names.includes(identityName)) return { ok: false, missing: true, detail: `${directory} holds segments but no ${identityName} file` };
  const file = disk.open(`${directory}/${identityName}`);
  try {
    const size = disk.size(file);
    if (size > 1024) return { ok: false, missing: false, detail: `${identityName} is ${size} bytes` };
    const bytes = new Uint8Array(size);
    let got = 0;
    while (got < size) {
      const count = disk.read(file, bytes, { offset: got, length: size - got, position: got });
      if (count === 0) break;
      got += count;
    }
    const decoded = decodeIdentity(bytes.subarray(0, got));
    return decoded.ok ? decoded : { ok: false, missing: false, detail: decoded.detail };
  } finally {
    disk.close(file);
  }
}

/** Writes IDENTITY atomically: a temporary file, synced, renamed, and the directory synced. */
async function writeIdentity(disk: Disk, directory: string, options: { readonly incarnation: string; readonly temporaryExists: boolean }): Promise<void> {
  const temporary = `${directory}/${identityTemporaryName}`;
  if (options.temporaryExists) disk.remove(temporary);
  const file = disk.create(temporary);
  try {
    disk.write(file, encodeIdentity(options.incarnation), 0);
    await disk.sync(file);
  } finally {
    disk.close(file);
  }
  disk.rename(temporary, `${directory}/${identityName}`);
  await disk.syncDirectory(directory);
  // The directory may be new (made by a caller, such as the node's lock, without a sync of its parent).
  await disk.syncDirectory(parentDirectory(directory));
}

/** Opens every segment file of the directory, lowest number first, and reads its header. */
function openSegments(disk: Disk, directory: string, names: readonly string[]): SegmentFile[] {
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
 * Whether a compaction's marker was durable: read with no unconfirmed fault before it, or
 * proof confirms the compaction segment (a confirmation of it, or a later segment's header
 * chained to it: both are written only after a sync that covered the marker), or the log it
 * supersedes is gone. That log's first segment was durable before the compaction began (the
 * first segment of a log, or an earlier finished compaction), and a compaction removes the
 * segments it supersedes only once its marker is durable.
 */
function compactionFinished(read: ChainRead, live: readonly SegmentFile[], candidate: number): boolean {
  const segment = live[candidate]!;
  assert(segment.header.ok && segment.header.header.kind === "compaction", "a compaction segment");
  if (read.coverage.segment >= segment.number) return true;
  if (read.markerOffset !== null) {
    const marker = { segment: segment.number, offset: read.markerOffset };
    const unconfirmedBefore = read.faults.some((fault) => !fault.always && comparePoints(fault, read.coverage) >= 0 && comparePoints(fault, marker) < 0);
    if (!unconfirmedBefore) return true;
  }
  const { retiresFrom } = segment.header.header;
  return !live.some((other) => other.number === retiresFrom && other.header.ok);
}

/** Reads segments from `base` on, checking the chain between them, through every fault to the end. */
function readChain(disk: Disk, options: { readonly live: readonly SegmentFile[]; readonly base: number; readonly incarnation: string; readonly buffer: Uint8Array }): ChainRead {
  const { live, base, incarnation, buffer } = options;
  const records = new Map<string, DurableRecord[]>();
  const tail: CellRecord[] = [];
  const faults: ChainFault[] = [];
  let coverage: LogPoint = { segment: 0, offset: 0 };
  let lastSequence = 0;
  let maxSequence = 0;
  let markerOffset: number | null = null;
  let markerEnd: number | null = null;
  let bytesRead = 0;
  let confirmations = 0;
  let segmentsRead = 0;
  const ends = live.map((segment) => segment.size);
  const prove = (point: LogPoint) => {
    if (comparePoints(point, coverage) > 0) coverage = point;
  };
  const fault = (index: number, found: { offset: number; bytes: number; reason: FaultReason; detail: string; always: boolean; segment?: number }) => {
    faults.push({ segment: found.segment ?? live[index]!.number, index, tailIndex: tail.length, ...found });
  };
  for (let index = base; index < live.length; index++) {
    const segment = live[index]!;
    segmentsRead++;
    const headerBytes = Math.min(segment.size, storageLimits.segmentHeaderBytes);
    let compaction: boolean | null = null;
    if (!segment.header.ok) {
      // A kill between creating a segment and writing its header leaves it short at the end;
      // torn or damage, proof decides. The frames after a garbled header are still read.
      fault(index, { offset: 0, bytes: headerBytes, reason: "header", detail: segment.header.detail, always: false });
    } else if (segment.header.header.incarnation !== incarnation) {
      fault(index, { offset: 0, bytes: headerBytes, reason: "header", detail: `the segment belongs to log ${segment.header.header.incarnation}, this is ${incarnation}`, always: true });
    } else {
      const header = segment.header.header;
      compaction = header.kind === "compaction";
      if (index === base) {
        if (header.kind === "log" && header.previous !== 0) {
          fault(index, { offset: 0, bytes: 0, reason: "chain", detail: `the log begins with ${segmentName(segment.number)}, which follows segment ${header.previous}, and that segment is missing`, always: true });
        }
      } else {
        const before = live[index - 1]!;
        if (header.kind === "compaction") {
          fault(index, { offset: 0, bytes: headerBytes, reason: "chain", detail: "a compaction segment after the beginning of the log", always: true });
        } else if (header.previous > before.number) {
          prove({ segment: segment.number, offset: 0 });
          fault(index - 1, { offset: before.size, bytes: 0, reason: "chain", detail: `segment ${header.previous}, which segment ${segment.number} follows, is missing`, always: true });
        } else if (header.previous < before.number) {
          fault(index, { offset: 0, bytes: headerBytes, reason: "chain", detail: `the segment follows segment ${header.previous}, but the one before it is ${before.number}`, always: true });
        } else {
          prove({ segment: segment.number, offset: 0 });
          if (header.previousBytes !== before.size) {
            fault(index - 1, {
              offset: Math.min(before.size, header.previousBytes),
              bytes: Math.abs(before.size - header.previousBytes),
              reason: "chain",
              detail: `segment ${segment.number} says this one holds ${header.previousBytes} bytes, it holds ${before.size}`,
              always: true,
            });
          }
        }
      }
    }
    const scan = scanSegment(
      disk,
      { number: segment.number, file: segment.file, size: segment.size, seed: frameSeed(incarnation, segment.number), compaction },
      {
        buffer,
        lastSequence,
        onRecord: (entry) => {
          if (faults.length > 0) {
            tail.push(entry);
            return;
          }
          const list = records.get(entry.cell);
          if (list === undefined) records.set(entry.cell, [entry.record]);
          else list.push(entry.record);
        },
        onFault: ({ offset, resume, reason, detail }) => fault(index, { offset, bytes: resume - offset, reason, detail, always: false }),
        onConfirmation: (point) => {
          confirmations++;
          prove(point);
        },
      },
    );
    lastSequence = scan.lastSequence;
    maxSequence = Math.max(maxSequence, scan.maxSequence);
    bytesRead += scan.bytesRead;
    if (scan.zeroTail !== null) ends[index] = scan.zeroTail;
    if (index === base) {
      markerOffset = scan.markerOffset;
      markerEnd = scan.markerEnd;
    }
  }
  return { records, tail, faults, coverage, maxSequence, markerOffset, markerEnd, segmentsRead, bytesRead, confirmations, ends };
}
