// The node's log: one append-only, segmented log shared by every cell the node hosts.
//
// Group commit. `append` encodes records into frames and buffers them (they reach the file
// when the buffer fills or at the next sync; either way they are not durable yet). `sync`
// makes everything appended so far durable: one fdatasync of the current segment per round,
// plus, when a segment was begun since the last round, an fsync of the directory and the
// final fdatasync of the segments before it. Syncs coalesce: one round is in flight at a time;
// a sync asked for during a round joins the next round, which covers every record appended
// until that round starts. A caller's promise resolves once a round that began after the call
// has finished, so the records it appended before calling are durable.
//
// Proof of durability, for recovery (recover.ts). After every round that made frames durable,
// the log appends a sync confirmation frame naming the point it synced through, and writes it
// to the page cache at once (so a killed process always leaves it readable). It needs no fsync
// of its own: the next round makes it durable, or, when no other sync follows, a round the log
// starts by itself `confirmationDelayMs` later. A segment's header is written only once its
// predecessor's last fdatasync has returned, in the round after the segment was begun, so a
// header on disk proves every earlier segment whole. The directory is synced before that
// header is written, so the new segment's name is durable by then too.
//
// Preallocation (`preallocateBytes`, 1 MiB by default). A log segment's file is extended
// that far past any write that would reach its end (`reserve`), so that a round's fdatasync need not make a new length durable; a segment
// is cut back to its frames before the sync that lets its successor's header be written, so
// only the last segment ends in zeros, which recovery reads as its end (scan.ts). Each sync
// tells the disk how many bytes it carries: the real disk syncs a small round on the calling
// thread (disk.ts).
//
// Failure. Any error from the disk while writing or syncing is fatal (see StorageFailed): the
// log rejects every waiting and later call and never retries.
//
// Compaction. `compact(entries)` copies the given records (every hosted cell's compacted
// records, as of the call) into a new compaction segment, a chunk per turn of the event loop
// so that the node keeps serving meanwhile, and syncs it every few megabytes as it goes, so
// that the sync at the end is short (appends made after the switch wait behind it); a
// durable copy without its marker is still unfinished. Records appended during the copy go
// to the old log as usual (and are synced and acknowledged there) and are also kept in
// memory; when the copy is done the log writes the kept records again, then a marker frame
// that counts every record before it, and from then on appends to the compaction segment.
// Once that segment is durable, every older segment is removed, off the event loop. Recovery
// begins at the newest compaction segment with a marker and ignores an unfinished one
// (recover.ts): a crash at any step leaves either the old log or the new one, whole, each
// holding every record appended before the crash's last sync.

import { AssertionError, assert } from "../core/assert.ts";
import type { CellRecord, DurableRecord } from "../core/effects.ts";
import { type EncodedCellRecord, encodeRecord } from "../wire/records.ts";
import { type Disk, type FileHandle, nodeDisk } from "./disk.ts";
import { LogOpenError, RecordTooLargeError, StorageFailed, describeError } from "./errors.ts";
import {
  type FrameKind,
  type LogPoint,
  comparePoints,
  encodeConfirmationPayload,
  encodeMarkerPayload,
  encodeSegmentHeader,
  frameKind,
  frameSeed,
  frameSequenceMax,
  segmentName,
  writeFrameHeader,
} from "./format.ts";
import { storageLimits } from "./limits.ts";
import { type Damage, type RecoveryStats, type TornTail, parentDirectory, recover } from "./recover.ts";

export interface LogOptions {
  /** The file system; the real one (`nodeDisk()`) when absent. */
  readonly disk?: Disk;
  /** Begin a new segment once the current one holds this many bytes. */
  readonly segmentBytes?: number;
  /** `shouldCompact` stays false below this many bytes on disk. */
  readonly compactBytesMin?: number;
  /** `shouldCompact` stays false until the log holds this many times the last compaction. */
  readonly compactRatio?: number;
  /** Bytes a compaction copies per turn of the event loop (tests make it small). */
  readonly compactionChunkBytes?: number;
  /** Bytes a compaction copies between syncs of its segment (tests make it small). */
  readonly compactionSyncBytes?: number;
  /** How far past a write a log segment's file is extended (`reserve`; tests make it small, 0 turns it off). */
  readonly preallocateBytes?: number;
  /** Bytes appended during a compaction that it holds in memory before it finishes at once. */
  readonly compactionAppendedBytesMax?: number;
  /** How long a sync confirmation waits for the next sync before the log syncs it by itself. */
  readonly confirmationDelayMs?: number;
}

export interface OpenedLog {
  /** The log, to append to; null exactly when `damage` is not empty. */
  readonly log: NodeLog | null;
  /** Every record read, per cell in write order: with damage, those before and after the damaged regions. */
  readonly records: Map<string, DurableRecord[]>;
  /** The unsynced end of the log: discarded, or with damage only reported. Null if there was none. */
  readonly torn: TornTail | null;
  /** Bytes that were durable and changed, in log order; empty when the log is intact. */
  readonly damage: Damage[];
  /** The directory's incarnation: 16 lowercase hex digits, from its IDENTITY file. */
  readonly incarnation: string;
  readonly stats: RecoveryStats;
}

/**
 * Opens (or creates) the log in `directory` and reads back everything it holds. A torn tail is
 * discarded; damage is reported and left as it is, with no writable log (see recover.ts). Throws
 * LogOpenError when the directory cannot be read or holds another format version.
 */
export async function openLog(directory: string, options: LogOptions = {}): Promise<OpenedLog> {
  const disk = options.disk ?? nodeDisk();
  const settings = settingsFrom(options);
  directory = trimSlashes(directory);
  let recovery: Awaited<ReturnType<typeof recover>>;
  try {
    recovery = await recover(disk, directory);
  } catch (error) {
    if (error instanceof LogOpenError) throw error;
    throw new LogOpenError(`Cannot open log: ${directory}: ${describeError(error)}`, { cause: error });
  }
  const { records, torn, damage, incarnation, stats } = recovery;
  if (damage.length > 0) return { log: null, records, torn, damage, incarnation, stats };
  const segments = [...recovery.segments];
  const opened: FileHandle[] = segments.map((segment) => segment.file);
  try {
    // What recovery read may have come from the page cache of a process that crashed before
    // syncing it. Make it durable now: later segments chain to these lengths, and records
    // acknowledged after this open must never sit behind a hole left by a power failure.
    for (const segment of segments) await disk.sync(segment.file);
    let current: ActiveSegment;
    const last = segments.pop();
    if (last === undefined) {
      const number = recovery.highestNumber + 1;
      assert(number <= storageLimits.segmentNumberMax, "segment numbers are not exhausted");
      const file = disk.create(`${directory}/${segmentName(number)}`);
      opened.push(file);
      const header = encodeSegmentHeader({ number, kind: "log", previous: 0, previousBytes: 0, retiresFrom: 0, incarnation });
      disk.write(file, header, 0);
      await disk.sync(file);
      current = { number, file, seed: frameSeed(incarnation, number), written: header.length, bytes: header.length, header: null, syncedTo: header.length, preallocated: true, allocated: header.length };
    } else {
      // Its preallocated zeros (if any) are appended into: what recovery read ends before them.
      current = { number: last.number, file: last.file, seed: frameSeed(incarnation, last.number), written: last.bytes, bytes: last.bytes, header: null, syncedTo: last.bytes, preallocated: !last.compaction, allocated: disk.size(last.file) };
    }
    for (const segment of segments) disk.close(segment.file);
    await disk.syncDirectory(directory);
    const sealed = new Map(segments.map((segment) => [segment.number, segment.bytes]));
    const log = new NodeLog({
      disk,
      directory,
      settings,
      current,
      sealed,
      highestNumber: Math.max(recovery.highestNumber, current.number),
      compactionBytes: recovery.compactionBytes,
      incarnation,
      nextSequence: recovery.nextSequence,
    });
    // What was read is durable now; say so, so that a later fault in it reads as damage.
    if (segments.length > 0 || current.bytes > storageLimits.segmentHeaderBytes) await log.confirmRecovered();
    return { log, records, torn, damage, incarnation, stats };
  } catch (error) {
    for (const file of opened) {
      try {
        disk.close(file);
      } catch {
        // Closed already above, or the disk is gone.
      }
    }
    throw new LogOpenError(`Cannot open log: ${directory}: ${describeError(error)}`, { cause: error });
  }
}

/**
 * Renames a damaged log directory to `<directory>.damaged-<UTC time>` (with a number after it
 * if that name is taken), makes the rename durable, and returns the new path: the node can then
 * start afresh in `directory` and keep the evidence. Throws LogOpenError if it cannot.
 */
export async function moveLogAside(directory: string, options: { readonly disk?: Disk; readonly now?: Date } = {}): Promise<string> {
  const disk = options.disk ?? nodeDisk();
  directory = trimSlashes(directory);
  const stamp = (options.now ?? new Date()).toISOString().replace(/[-:]/g, "");
  try {
    let target = `${directory}.damaged-${stamp}`;
    for (let suffix = 2; disk.exists(target); suffix++) {
      assert(suffix < 1_000_000, "a free name for the damaged log");
      target = `${directory}.damaged-${stamp}-${suffix}`;
    }
    disk.rename(directory, target);
    await disk.syncDirectory(parentDirectory(directory));
    return target;
  } catch (error) {
    throw new LogOpenError(`Cannot move the damaged log ${directory} aside: ${describeError(error)}`, { cause: error });
  }
}

function trimSlashes(directory: string): string {
  let trimmed = directory;
  while (trimmed.length > 1 && trimmed.endsWith("/")) trimmed = trimmed.slice(0, -1);
  return trimmed;
}

interface Settings {
  readonly segmentBytes: number;
  readonly compactBytesMin: number;
  readonly compactRatio: number;
  readonly compactionChunkBytes: number;
  readonly compactionSyncBytes: number;
  readonly compactionAppendedBytesMax: number;
  readonly confirmationDelayMs: number;
  readonly preallocateBytes: number;
}

function settingsFrom(options: LogOptions): Settings {
  const segmentBytes = options.segmentBytes ?? storageLimits.segmentBytesDefault;
  const compactBytesMin = options.compactBytesMin ?? storageLimits.compactBytesMinDefault;
  const compactRatio = options.compactRatio ?? storageLimits.compactRatioDefault;
  if (!Number.isInteger(segmentBytes) || segmentBytes < storageLimits.segmentBytesMin || segmentBytes > storageLimits.segmentBytesMax) {
    throw new LogOpenError(`Cannot open log: segmentBytes must be an integer in [${storageLimits.segmentBytesMin}, ${storageLimits.segmentBytesMax}], got ${segmentBytes}`);
  }
  if (!(compactBytesMin >= 0) || !(compactRatio > 1)) throw new LogOpenError("Cannot open log: compactBytesMin must be >= 0 and compactRatio > 1");
  const compactionChunkBytes = options.compactionChunkBytes ?? storageLimits.compactionChunkBytes;
  if (!Number.isInteger(compactionChunkBytes) || compactionChunkBytes < 1 || compactionChunkBytes > storageLimits.compactionChunkBytes) {
    throw new LogOpenError(`Cannot open log: compactionChunkBytes must be an integer in [1, ${storageLimits.compactionChunkBytes}], got ${compactionChunkBytes}`);
  }
  const compactionSyncBytes = options.compactionSyncBytes ?? storageLimits.compactionSyncBytesDefault;
  if (!Number.isInteger(compactionSyncBytes) || compactionSyncBytes < 1) throw new LogOpenError(`Cannot open log: compactionSyncBytes must be a positive integer, got ${compactionSyncBytes}`);
  const compactionAppendedBytesMax = options.compactionAppendedBytesMax ?? storageLimits.compactionAppendedBytesMax;
  if (!Number.isInteger(compactionAppendedBytesMax) || compactionAppendedBytesMax < 0 || compactionAppendedBytesMax > storageLimits.compactionAppendedBytesMax) {
    throw new LogOpenError(`Cannot open log: compactionAppendedBytesMax must be an integer in [0, ${storageLimits.compactionAppendedBytesMax}], got ${compactionAppendedBytesMax}`);
  }
  const confirmationDelayMs = options.confirmationDelayMs ?? storageLimits.confirmationDelayMsDefault;
  if (!Number.isInteger(confirmationDelayMs) || confirmationDelayMs < 0 || confirmationDelayMs > storageLimits.confirmationDelayMsMax) {
    throw new LogOpenError(`Cannot open log: confirmationDelayMs must be an integer in [0, ${storageLimits.confirmationDelayMsMax}], got ${confirmationDelayMs}`);
  }
  const preallocateBytes = options.preallocateBytes ?? storageLimits.preallocateBytes;
  if (!Number.isInteger(preallocateBytes) || preallocateBytes < 0 || preallocateBytes > storageLimits.segmentBytesMax) {
    throw new LogOpenError(`Cannot open log: preallocateBytes must be an integer in [0, ${storageLimits.segmentBytesMax}], got ${preallocateBytes}`);
  }
  return { segmentBytes, compactBytesMin, compactRatio, compactionChunkBytes, compactionSyncBytes, compactionAppendedBytesMax, confirmationDelayMs, preallocateBytes };
}

interface ActiveSegment {
  readonly number: number;
  readonly file: FileHandle;
  readonly seed: number;
  /** Bytes in the file (a header still to be written counts: its place is kept). */
  written: number;
  /** Bytes in the file plus bytes still in the write buffer. */
  bytes: number;
  /** The segment's header while it waits for its predecessor's last sync; null once written. */
  header: Uint8Array | null;
  /** `written` at the end of the segment's last sync round (what the next sync has to carry is the rest). */
  syncedTo: number;
  /** A log segment, whose file is extended ahead of its writes (see `reserve`); a compaction segment is not. */
  readonly preallocated: boolean;
  /** The file's length as this log last set it (at least `written`). */
  allocated: number;
}

/** A compaction in progress: its segment, what is left to copy, and what was appended meanwhile. */
interface Copy {
  readonly segment: ActiveSegment;
  readonly entries: Iterator<CellRecord | EncodedCellRecord>;
  /** Payloads appended to the old log since the compaction began, to write after the marker. */
  readonly appended: Uint8Array[];
  appendedBytes: number;
  records: number;
  /** Length of the compaction segment through its marker, once written. */
  markerEnd: number;
  /** How much of the copy its syncs so far cover. */
  syncedTo: number;
}

interface Waiter {
  /** The first sync round that covers this caller. */
  readonly round: number;
  readonly resolve: () => void;
  readonly reject: (error: StorageFailed) => void;
}

interface LogParts {
  readonly disk: Disk;
  readonly directory: string;
  readonly settings: Settings;
  readonly current: ActiveSegment;
  readonly sealed: Map<number, number>;
  readonly highestNumber: number;
  readonly compactionBytes: number;
  readonly incarnation: string;
  readonly nextSequence: number;
}

export class NodeLog {
  readonly directory: string;
  private readonly disk: Disk;
  private readonly settings: Settings;
  private current: ActiveSegment;
  /** Live segments before the current one: number to length. Closed, or waiting in `unsynced`. */
  private readonly sealed: Map<number, number>;
  /** Segments closed for appending whose last sync (and close) is still to come. */
  private readonly unsynced: ActiveSegment[] = [];
  private readonly incarnation: string;
  /** The sequence number of the next frame. */
  private nextSequence: number;
  /** The point the last confirmation names, and the point just past that confirmation frame. */
  private confirmed: LogPoint = { segment: 0, offset: 0 };
  private confirmationEnd: LogPoint = { segment: 0, offset: 0 };
  private confirmationTimer: ReturnType<typeof setTimeout> | null = null;
  private directoryDirty = false;
  private highestNumber: number;
  private readonly pending = new Uint8Array(storageLimits.pendingBytesMax);
  private pendingLength = 0;

  private frames = 0;
  private framesDurable = 0;
  /** Frames up to the last one a caller appended (a confirmation is the log's own). */
  private framesWanted = 0;
  private readonly waiters: Waiter[] = [];
  private roundsStarted = 0;
  private flushing = false;
  private failure: StorageFailed | null = null;
  private closed = false;
  private compaction: Promise<void> | null = null;
  /** The compaction being copied, until the log switches to its segment. */
  private copying: Copy | null = null;
  /**
   * A sync of the compaction segment made while its copy runs. The copy may be switched to
   * meanwhile (`finishCopy`), and then the flush waits for it: a file is never synced twice at once.
   */
  private copySync: { readonly file: FileHandle; readonly done: Promise<void> } | null = null;
  private lastCompactionBytes: number;

  /** Records appended since the log was opened. */
  recordsAppended = 0;
  /** Sync rounds completed: each is one fdatasync of the current segment. */
  syncRounds = 0;
  compactions = 0;

  constructor(parts: LogParts) {
    this.disk = parts.disk;
    this.directory = parts.directory;
    this.settings = parts.settings;
    this.current = parts.current;
    this.sealed = parts.sealed;
    this.highestNumber = parts.highestNumber;
    this.lastCompactionBytes = parts.compactionBytes;
    this.incarnation = parts.incarnation;
    this.nextSequence = parts.nextSequence;
    assert(Number.isSafeInteger(this.nextSequence) && this.nextSequence >= 1, "a frame sequence number");
    assert(this.current.bytes >= storageLimits.segmentHeaderBytes, "a segment holds its header");
  }

  // ---- metrics --------------------------------------------------------------------------

  /** Bytes the log occupies on disk, counting appended bytes not yet written out. */
  get bytes(): number {
    let total = this.current.bytes + (this.copying?.segment.bytes ?? 0);
    for (const bytes of this.sealed.values()) total += bytes;
    return total;
  }

  /** Segment files the log occupies. */
  get segments(): number {
    return this.sealed.size + 1 + (this.copying === null ? 0 : 1);
  }

  get currentSegment(): number {
    return this.current.number;
  }

  get compacting(): boolean {
    return this.compaction !== null;
  }

  /** The error that stopped the log, or null while it works. */
  get failed(): StorageFailed | null {
    return this.failure;
  }

  /** True when the log has grown enough past its last compaction that one is worth its cost. */
  shouldCompact(): boolean {
    if (this.failure !== null || this.closed || this.compaction !== null) return false;
    const bytes = this.bytes;
    return bytes >= this.settings.compactBytesMin && bytes >= this.lastCompactionBytes * this.settings.compactRatio;
  }

  // ---- writing --------------------------------------------------------------------------

  /**
   * Appends records, in order, after everything appended before. Not durable until a `sync`
   * called after this returns has resolved. Throws RecordTooLargeError (appending nothing of
   * the batch) or StorageFailed.
   */
  append(records: readonly CellRecord[]): void {
    this.usable("append");
    assert(records.length <= storageLimits.appendRecordsMax, `append of ${records.length} records`);
    const payloads = records.map((entry) => {
      const payload = encodeRecord(entry);
      if (payload.length > storageLimits.recordBytesMax) {
        throw new RecordTooLargeError(`Cannot append record: ${entry.record.kind} of cell ${entry.cell} is ${payload.length} bytes, more than ${storageLimits.recordBytesMax}`);
      }
      return payload;
    });
    try {
      for (const payload of payloads) this.writeFrame(frameKind.record, payload);
      const copy = this.copying;
      if (copy !== null) {
        for (const payload of payloads) copy.appended.push(payload);
        copy.appendedBytes += payloads.reduce((sum, payload) => sum + payload.length, 0);
        // Bound the memory held for the compaction: finish its copy now, in one go.
        if (copy.appendedBytes > this.settings.compactionAppendedBytesMax) this.finishCopy(copy);
      }
    } catch (error) {
      throw this.fail("Cannot append to log", error);
    }
    this.recordsAppended += payloads.length;
  }

  /** Resolves once everything appended before this call is durable; rejects with StorageFailed. */
  sync(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    assert(!this.closed, "sync of a closed log");
    // A confirmation alone waits for its own, later round: the caller's records are durable.
    if (this.framesWanted <= this.framesDurable && this.unsynced.length === 0 && !this.directoryDirty && !this.flushing) return Promise.resolve();
    return this.nextRound();
  }

  /** Resolves once a sync round that begins after this call has finished. */
  private nextRound(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    assert(this.waiters.length < storageLimits.syncWaitersMax, "too many syncs waiting at once");
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ round: this.roundsStarted + 1, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /**
   * Replaces the whole log with `entries` (every hosted cell's `compactedRecords()`) followed by
   * every record appended from this call on. Resolves once the compaction segment is durable and
   * every older segment is removed. `entries` is read over several turns of the event loop, so it
   * must yield the records as they were at this call (an array does). One compaction at a time.
   */
  compact(entries: Iterable<CellRecord | EncodedCellRecord>): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    this.usable("compact");
    assert(this.compaction === null, "one compaction at a time");
    let copy: Copy;
    try {
      copy = this.beginCopy(entries);
    } catch (error) {
      return Promise.reject(this.fail("Cannot compact log", error));
    }
    const compaction = this.runCompaction(copy).finally(() => {
      this.compaction = null;
    });
    this.compaction = compaction;
    return compaction;
  }

  /**
   * Syncs what was appended, and then the confirmation of that sync, so that a cleanly closed
   * log is confirmed to its end; then releases the files. Later calls other than `close` are bugs.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.compaction !== null) await this.compaction.catch(() => undefined);
      if (this.failure === null) await this.sync();
      if (this.failure === null && this.frames > this.framesDurable) await this.nextRound();
    } finally {
      this.closed = true;
      this.cancelConfirmationSync();
      for (const { file } of this.unsynced.splice(0)) this.closeQuietly(file);
      this.closeQuietly(this.current.file);
    }
  }

  /** Confirms, durably, everything recovery read: it was synced at open. For openLog only. */
  async confirmRecovered(): Promise<void> {
    this.confirm({ segment: this.current.number, offset: this.current.bytes });
    if (this.frames > this.framesDurable) await this.nextRound();
  }

  // ---- internals ------------------------------------------------------------------------

  private usable(operation: string): void {
    if (this.failure !== null) throw this.failure;
    assert(!this.closed, `${operation} on a closed log`);
  }

  /** Creates the compaction segment. It takes the next number: no segment is begun until the copy is done. */
  private beginCopy(entries: Iterable<CellRecord | EncodedCellRecord>): Copy {
    const number = this.highestNumber + 1;
    assert(number <= storageLimits.segmentNumberMax, "segment numbers are not exhausted");
    let retiresFrom = this.current.number;
    for (const sealed of this.sealed.keys()) retiresFrom = Math.min(retiresFrom, sealed);
    const file = this.disk.create(`${this.directory}/${segmentName(number)}`);
    this.highestNumber = number;
    this.directoryDirty = true;
    // For a compaction segment, the previous length is informational: recovery never chains to it.
    const header = encodeSegmentHeader({ number, kind: "compaction", previous: this.current.number, previousBytes: this.current.bytes, retiresFrom, incarnation: this.incarnation });
    this.disk.write(file, header, 0);
    const copy: Copy = {
      segment: { number, file, seed: frameSeed(this.incarnation, number), written: header.length, bytes: header.length, header: null, syncedTo: header.length, preallocated: false, allocated: header.length },
      entries: entries[Symbol.iterator](),
      appended: [],
      appendedBytes: 0,
      records: 0,
      markerEnd: 0,
      syncedTo: 0,
    };
    this.copying = copy;
    return copy;
  }

  private async runCompaction(copy: Copy): Promise<void> {
    try {
      for (let chunks = 0; this.copying === copy; chunks++) {
        assert(chunks < Number.MAX_SAFE_INTEGER, "chunks are counted");
        if (this.copyChunk(copy, this.settings.compactionChunkBytes)) {
          this.switchTo(copy);
          break;
        }
        if (copy.segment.written - copy.syncedTo >= this.settings.compactionSyncBytes) {
          copy.syncedTo = copy.segment.written;
          const done = this.disk.sync(copy.segment.file);
          this.copySync = { file: copy.segment.file, done };
          try {
            await done;
          } finally {
            this.copySync = null;
          }
        } else {
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        if (this.failure !== null) throw this.failure;
      }
    } catch (error) {
      // A compaction segment without its marker must never be switched to: stop here, and
      // leave the segment for recovery to discard.
      if (this.copying === copy) {
        this.copying = null;
        this.closeQuietly(copy.segment.file);
      }
      throw this.fail("Cannot compact log", error);
    }
    await this.sync();
    // Every segment before the compaction's is superseded now. Oldest first: recovery reads an
    // unfinished compaction's old log from its first segment. Each off the event loop (removing
    // large segments takes the kernel tens of milliseconds each), one after the other.
    const retired = [...this.sealed.keys()].filter((number) => number < copy.segment.number).sort((a, b) => a - b);
    try {
      for (const number of retired) {
        assert(!this.unsynced.some((segment) => segment.number === number), `retired segment ${number} was synced and closed`);
        await this.disk.removeLater(`${this.directory}/${segmentName(number)}`);
        this.sealed.delete(number);
        if (this.failure !== null) throw this.failure;
      }
    } catch (error) {
      throw this.fail("Cannot remove compacted segments", error);
    }
    this.directoryDirty = true;
    await this.sync();
    this.lastCompactionBytes = copy.markerEnd;
    this.compactions++;
  }

  /** Copies entries into the compaction segment until `budgetBytes` are written; true when all are. */
  private copyChunk(copy: Copy, budgetBytes: number): boolean {
    const payloads: Uint8Array[] = [];
    let bytes = 0;
    let done = false;
    while (bytes < budgetBytes) {
      const next = copy.entries.next();
      if (next.done === true) {
        done = true;
        break;
      }
      const entry = next.value;
      const payload = "encoded" in entry ? entry.encoded : encodeRecord(entry);
      if (payload.length > storageLimits.recordBytesMax) throw new RecordTooLargeError(`Cannot compact record: ${"record" in entry ? entry.record.kind : "a record"} of cell ${entry.cell} is ${payload.length} bytes`);
      payloads.push(payload);
      bytes += storageLimits.frameHeaderBytes + payload.length;
    }
    this.writeFrames(copy.segment, frameKind.record, payloads);
    copy.records += payloads.length;
    return done;
  }

  /** Copies whatever is left at once (when the records appended meanwhile grow too large). */
  private finishCopy(copy: Copy): void {
    for (let chunks = 0; !this.copyChunk(copy, storageLimits.compactionChunkBytes); chunks++) assert(chunks < Number.MAX_SAFE_INTEGER, "chunks are counted");
    this.switchTo(copy);
  }

  /**
   * Writes the records appended meanwhile, then the marker, and makes the compaction segment
   * current. The marker comes last: those records were acknowledged from the old log, so a
   * compaction segment must not count as finished unless it holds them too.
   */
  private switchTo(copy: Copy): void {
    assert(this.copying === copy, "switch to the compaction being copied");
    for (let start = 0; start < copy.appended.length; ) {
      let end = start;
      for (let bytes = 0; end < copy.appended.length && bytes < storageLimits.compactionChunkBytes; end++) bytes += copy.appended[end]!.length;
      this.writeFrames(copy.segment, frameKind.record, copy.appended.slice(start, end));
      start = end;
    }
    this.writeFrames(copy.segment, frameKind.marker, [encodeMarkerPayload(copy.records + copy.appended.length)]);
    copy.markerEnd = copy.segment.bytes;
    this.writePending();
    const before = this.current;
    this.unsynced.push(before);
    this.sealed.set(before.number, before.bytes);
    this.current = copy.segment;
    this.copying = null;
    this.directoryDirty = true;
  }

  /** Writes frames straight to a segment that is not the current one's write buffer. */
  private writeFrames(segment: ActiveSegment, kind: FrameKind, payloads: readonly Uint8Array[]): void {
    if (payloads.length === 0) return;
    const headerBytes = storageLimits.frameHeaderBytes;
    const total = payloads.reduce((sum, payload) => sum + headerBytes + payload.length, 0);
    const frames = new Uint8Array(total);
    let at = 0;
    for (const payload of payloads) {
      writeFrameHeader(frames, at, { kind, sequence: this.takeSequence(), payload, seed: segment.seed });
      frames.set(payload, at + headerBytes);
      at += headerBytes + payload.length;
    }
    assert(segment.written === segment.bytes, "a segment written directly has no buffered bytes");
    this.disk.write(segment.file, frames, segment.written);
    segment.written += total;
    segment.bytes += total;
  }

  private writeFrame(kind: FrameKind, payload: Uint8Array): void {
    const headerBytes = storageLimits.frameHeaderBytes;
    const frameBytes = headerBytes + payload.length;
    const full = this.current.bytes > storageLimits.segmentHeaderBytes && this.current.bytes + frameBytes > this.settings.segmentBytes;
    // While a compaction is copied, its segment holds the next number: the old log grows instead.
    if (full && this.copying === null) this.rotate();
    if (this.pendingLength + frameBytes > this.pending.length) this.writePending();
    const current = this.current;
    const sequence = this.takeSequence();
    if (frameBytes > this.pending.length) {
      const header = new Uint8Array(headerBytes);
      writeFrameHeader(header, 0, { kind, sequence, payload, seed: current.seed });
      this.reserve(current, current.written + frameBytes);
      this.disk.write(current.file, header, current.written);
      this.disk.write(current.file, payload, current.written + headerBytes);
      current.written += frameBytes;
    } else {
      writeFrameHeader(this.pending, this.pendingLength, { kind, sequence, payload, seed: current.seed });
      this.pending.set(payload, this.pendingLength + headerBytes);
      this.pendingLength += frameBytes;
    }
    current.bytes += frameBytes;
    this.frames++;
    if (kind !== frameKind.confirmation) this.framesWanted = this.frames;
    assert(current.bytes === current.written + this.pendingLength, "the segment length adds up");
  }

  private writePending(): void {
    if (this.pendingLength === 0) return;
    const current = this.current;
    this.reserve(current, current.written + this.pendingLength);
    this.disk.write(current.file, this.pending.subarray(0, this.pendingLength), current.written);
    current.written += this.pendingLength;
    this.pendingLength = 0;
  }

  /**
   * Extends a log segment's file `preallocateBytes` (1 MiB by default; 0 turns it off) past
   * `end` when a write would reach past its length. An fdatasync of frames written into space the file already has need not make
   * a new length durable, which on this machine's ext4 is 67 us of wall time and 23 us of
   * CPU a sync (`npm run bench:sync`); the length itself becomes durable with the next sync
   * round. Recovery reads the zeros after the last frame as the segment's end (scan.ts).
   */
  private reserve(segment: ActiveSegment, end: number): void {
    if (!segment.preallocated || end <= segment.allocated || this.settings.preallocateBytes === 0) return;
    const length = end + this.settings.preallocateBytes;
    this.disk.truncate(segment.file, length);
    segment.allocated = length;
  }

  private takeSequence(): number {
    const sequence = this.nextSequence;
    assert(sequence < frameSequenceMax, "frame sequence numbers are not exhausted");
    this.nextSequence = sequence + 1;
    return sequence;
  }

  /**
   * Closes the current segment for appending and begins the next one. The new segment's
   * header waits for the sync round that makes its predecessor durable (see `flush`); its
   * frames may reach the file before it, after the place kept for it.
   */
  private rotate(): void {
    this.writePending();
    const before = this.current;
    const number = this.highestNumber + 1;
    assert(number <= storageLimits.segmentNumberMax, "segment numbers are not exhausted");
    assert(this.sealed.size + 1 < storageLimits.segmentsMax, "compaction keeps the number of segments bounded");
    const file = this.disk.create(`${this.directory}/${segmentName(number)}`);
    this.highestNumber = number;
    this.unsynced.push(before);
    this.sealed.set(before.number, before.bytes);
    const header = encodeSegmentHeader({ number, kind: "log", previous: before.number, previousBytes: before.bytes, retiresFrom: 0, incarnation: this.incarnation });
    this.current = { number, file, seed: frameSeed(this.incarnation, number), written: header.length, bytes: header.length, header, syncedTo: 0, preallocated: true, allocated: 0 };
    this.directoryDirty = true;
  }

  /** Writes a segment's header if it still waits; its predecessor must be durable in full. */
  private writeHeader(segment: ActiveSegment): void {
    if (segment.header === null) return;
    this.disk.write(segment.file, segment.header, 0);
    segment.header = null;
  }

  /**
   * Appends a confirmation that every byte before `point` is durable, and writes it to the
   * page cache at once. Skipped when nothing but the last confirmation was synced since it.
   */
  private confirm(point: LogPoint): void {
    if (comparePoints(point, this.confirmed) <= 0 || comparePoints(point, this.confirmationEnd) === 0) return;
    if (point.offset < storageLimits.segmentHeaderBytes) return;
    this.writeFrame(frameKind.confirmation, encodeConfirmationPayload(point));
    this.writePending();
    this.confirmed = point;
    this.confirmationEnd = { segment: this.current.number, offset: this.current.bytes };
  }

  /** Syncs the last confirmation by itself if no other sync has come within the delay. */
  private scheduleConfirmationSync(): void {
    if (this.confirmationTimer !== null || this.closed) return;
    const timer = setTimeout(() => {
      this.confirmationTimer = null;
      if (this.failure !== null || this.closed || this.frames === this.framesDurable) return;
      // A failure here is the log's failure: it is recorded, and the next caller gets it.
      this.nextRound().catch(() => undefined);
    }, this.settings.confirmationDelayMs);
    // The timer must not keep a process alive that is otherwise done.
    (timer as { unref?: () => void }).unref?.();
    this.confirmationTimer = timer;
  }

  private cancelConfirmationSync(): void {
    if (this.confirmationTimer === null) return;
    clearTimeout(this.confirmationTimer);
    this.confirmationTimer = null;
  }

  /** Runs sync rounds until no caller waits. Only one runs at a time. */
  private async flush(): Promise<void> {
    assert(!this.flushing, "one flush at a time");
    this.flushing = true;
    try {
      for (let rounds = 0; this.failure === null && this.waiters.length > 0; rounds++) {
        assert(rounds < Number.MAX_SAFE_INTEGER, "rounds are counted");
        const round = ++this.roundsStarted;
        const frames = this.frames;
        this.writePending();
        const finished = this.unsynced.splice(0);
        const segment = this.current;
        const through: LogPoint = { segment: segment.number, offset: segment.written };
        const directory = this.directoryDirty;
        this.directoryDirty = false;
        // Names first: the segments begun since the last round (and any removed) become durable
        // before a header that follows them can reach the disk.
        if (directory) await this.disk.syncDirectory(this.directory);
        // Segments closed since the last round get their last sync, oldest first, each after
        // the header that its predecessor's sync allows.
        for (const closed of finished) {
          this.writeHeader(closed);
          // Cut to its frames before the sync that lets its successor's header be written:
          // recovery holds zeros at the end of any segment but the last to be damage.
          if (closed.allocated > closed.written) this.disk.truncate(closed.file, closed.written);
          await this.syncFile(closed);
          this.disk.close(closed.file);
        }
        this.writeHeader(segment);
        await this.syncFile(segment);
        this.framesDurable = Math.max(this.framesDurable, frames);
        this.syncRounds++;
        let done = 0;
        while (done < this.waiters.length && this.waiters[done]!.round <= round) done++;
        for (const waiter of this.waiters.splice(0, done)) waiter.resolve();
        if (this.failure === null && !this.closed) {
          this.confirm(through);
          if (this.waiters.length === 0 && this.frames > this.framesDurable) this.scheduleConfirmationSync();
        }
      }
    } catch (error) {
      this.fail("Cannot sync log", error);
    } finally {
      this.flushing = false;
    }
  }

  /** Syncs a segment, after the compaction's own sync of it if one is under way. */
  private async syncFile(segment: ActiveSegment): Promise<void> {
    const { file } = segment;
    // Its failure fails the compaction, and so the log; this sync then reports its own.
    if (this.copySync !== null && this.copySync.file === file) await this.copySync.done.catch(() => undefined);
    // What this sync carries: the bytes written since the segment's last one (the disk may
    // sync a few kilobytes on the calling thread, see Disk.sync).
    const through = segment.written;
    await this.disk.sync(file, { bytes: through - segment.syncedTo });
    segment.syncedTo = Math.max(segment.syncedTo, through);
  }

  /** Enters the failed state (once), rejecting every waiting caller; returns the error to throw. */
  private fail(context: string, cause: unknown): StorageFailed {
    if (cause instanceof StorageFailed) return cause;
    if (this.failure === null) {
      const detail = cause instanceof AssertionError ? `bug: ${cause.message}` : describeError(cause);
      this.failure = new StorageFailed(`${context} in ${this.directory}: ${detail}`, { cause });
      this.cancelConfirmationSync();
      for (const waiter of this.waiters.splice(0)) waiter.reject(this.failure);
    }
    return this.failure;
  }

  private closeQuietly(file: FileHandle): void {
    try {
      this.disk.close(file);
    } catch {
      // Closing after a failure: the node is about to exit, and the descriptor goes with it.
    }
  }
}
