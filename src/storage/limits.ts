// Every bound of the node's log lives here, next to the relations between them, which are
// checked once when this module loads. Names carry their unit last.

import { limits } from "../limits.ts";

export const storageLimits = {
  /**
   * The only on-disk format version this code reads and writes. Version 2 added the frame
   * header checksum, frame sequence numbers, sync confirmations and the directory's identity.
   */
  formatVersion: 2,
  /** Bytes of a segment header: magic, version, kind, numbers, previous length, incarnation, checksum. */
  segmentHeaderBytes: 48,
  /** Bytes before each frame's payload: length, kind, sequence number, payload checksum, header checksum. */
  frameHeaderBytes: 24,
  /** Bytes of a sync confirmation's payload: the segment and the offset it confirms. */
  confirmationPayloadBytes: 16,
  /**
   * How long a sync confirmation may wait in the page cache for the next sync before the log
   * syncs it by itself. Until it is durable, a power failure can take it, and with it the proof
   * that the batch before it was synced (see recover.ts, the residual case).
   */
  confirmationDelayMsDefault: 50,
  /** Largest confirmation delay a caller may ask for. */
  confirmationDelayMsMax: 10_000,
  /** Bytes of the IDENTITY file: 16 lowercase hex digits and a newline. */
  identityBytes: 17,
  /**
   * The largest record payload (an `encodeRecord` result). The largest record is a snapshot,
   * whose state fits one message; the rest is the CBOR envelope around it (cell id, slot).
   */
  recordBytesMax: limits.messageBytesMax + 1024,
  /** Records in one `append` call: a batch is one turn of the node's loop, not a whole log. */
  appendRecordsMax: 1_000_000,
  /** A segment is closed and a new one begun once it holds this many bytes. */
  segmentBytesDefault: 64 * 1024 * 1024,
  /** Smallest segment size a caller may ask for (tests use small segments to rotate often). */
  segmentBytesMin: 4096,
  /** Largest segment size a caller may ask for; a compaction segment may grow past it. */
  segmentBytesMax: 1024 * 1024 * 1024,
  /** Appended bytes held in memory before they are written out, even without a sync. */
  pendingBytesMax: 1024 * 1024,
  /** Bytes read from disk at a time during recovery. Holds at least one whole frame. */
  readBufferBytes: 8 * 1024 * 1024,
  /**
   * How far a log segment's file is extended past a write that reaches its end (log.ts,
   * `reserve`); 0 turns it off. Recovery reads zero tails either way (docs/storage.md tells
   * why it was off for a day).
   */
  preallocateBytes: 1024 * 1024,
  /** Segment files in one log directory; more means compaction has not kept up (or a bug). */
  segmentsMax: 100_000,
  /** Callers waiting on `sync` at once; the node has a few, one per turn of its loop. */
  syncWaitersMax: 1_000_000,
  /** Segment numbers are 32-bit on disk. */
  segmentNumberMax: 0xffff_ffff,
  /** Bytes a compaction copies per turn of the event loop, so that the node keeps serving. */
  compactionChunkBytes: 256 * 1024,
  /**
   * Bytes of a compaction's copy between its syncs. The copy is made durable as it goes, so
   * that the sync at the switch, which the first appends after it wait behind, is short: one
   * sync of a million cells' copy (470 MB) at the end held a live cell's write for 416 ms.
   */
  compactionSyncBytesDefault: 8 * 1024 * 1024,
  /** Bytes of records appended during a compaction held for its segment; past this, it finishes at once. */
  compactionAppendedBytesMax: 64 * 1024 * 1024,
  /** `shouldCompact` waits until the log holds at least this many bytes... */
  compactBytesMinDefault: 64 * 1024 * 1024,
  /** ...and this many times the size of the last compaction. */
  compactRatioDefault: 2,
} as const;

function check(condition: boolean, relation: string): void {
  if (!condition) throw new Error(`Invalid storage limits: ${relation}`);
}

check(limits.cellBytesMax * 2 <= limits.messageBytesMax, "a snapshot of a full cell fits a message");
check(limits.messageBytesMax + limits.keyBytesMax + 64 <= storageLimits.recordBytesMax, "a snapshot record of a full cell fits a frame");
check(storageLimits.recordBytesMax < 2 ** 32, "a frame length fits 32 bits");
check(storageLimits.frameHeaderBytes + storageLimits.recordBytesMax <= storageLimits.readBufferBytes, "the recovery buffer holds the largest frame");
check(storageLimits.segmentHeaderBytes + storageLimits.frameHeaderBytes < storageLimits.segmentBytesMin, "the smallest segment holds a frame");
check(storageLimits.segmentBytesMin <= storageLimits.segmentBytesDefault, "the default segment size is allowed");
check(storageLimits.segmentBytesDefault <= storageLimits.segmentBytesMax, "the default segment size is allowed");
check(storageLimits.segmentBytesMax < Number.MAX_SAFE_INTEGER / 1024, "byte counts stay exact");
check(storageLimits.pendingBytesMax < storageLimits.segmentBytesDefault, "the write buffer is smaller than a segment");
check(storageLimits.compactionChunkBytes >= storageLimits.frameHeaderBytes + 1, "a compaction chunk holds a frame");
check(storageLimits.confirmationDelayMsDefault <= storageLimits.confirmationDelayMsMax, "the default confirmation delay is allowed");
check(storageLimits.compactRatioDefault > 1, "compaction must shrink the log before it triggers again");
