// Dormant cells: the records of idle cells, packed into large shared buffers.
//
// Most cells of a large node are idle, and what recovery leaves of an idle cell is a promise
// and a snapshot. Kept as objects (two records, a ballot, a byte array each) they cost about
// 1.8 KB of resident memory a cell; packed here they cost their encoded bytes (about 470 for
// a used cell) and one number in the node's map. A cell's records are written once, when it
// is recovered, and read once, when its first message wakes it; the space of a woken cell is
// not reused (the next compaction and restart leave it behind).
//
// Layout of one entry: the audit memo (two f64, see `auditMemoHolds`), u32 count, then per
// record u32 length and its bytes (records.ts, with an empty cell name: the node's map holds
// the name). A handle is slab * 2^21 + offset.

import { assert } from "../core/assert.ts";
import { CellState, type SnapshotSummary } from "../core/cellstate.ts";
import type { DurableRecord } from "../core/effects.ts";
import { decodeRecord, encodeRecord, encodeRecordsNamed } from "../wire/records.ts";

/** Bytes of one slab: many cells share one allocation. */
const slabBytes = 1 << 20;
const handleSlabFactor = 1 << 21;
/** Entries larger than this stay out of the arena (the caller keeps the replica built). */
export const dormantEntryBytesMax = slabBytes >> 2;
/** The audit memo at the head of an entry: the cache's change stamp, and until when it holds. */
const memoBytes = 16;

export class DormantArena {
  private readonly slabs: Uint8Array[] = [];
  /** One view per slab, made once. */
  private readonly views: DataView[] = [];
  private used = slabBytes;
  /** Bytes taken in slabs, woken cells' included. */
  bytes = 0;

  /** Packs a cell's records; null when they are too large to share a slab. */
  put(records: readonly DurableRecord[]): number | null {
    const payloads = records.map((record) => encodeRecord({ cell: "", record }));
    const size = memoBytes + 4 + payloads.reduce((sum, p) => sum + 4 + p.length, 0);
    if (size > dormantEntryBytesMax) return null;
    if (this.used + size > slabBytes) {
      const fresh = new Uint8Array(slabBytes);
      this.slabs.push(fresh);
      this.views.push(new DataView(fresh.buffer, fresh.byteOffset, fresh.byteLength));
      this.used = 0;
    }
    const index = this.slabs.length - 1;
    const slab = this.slabs[index] as Uint8Array;
    const view = this.views[index] as DataView;
    const start = this.used;
    view.setFloat64(start, Number.NaN);
    view.setFloat64(start + 8, 0);
    let at = start + memoBytes;
    view.setUint32(at, payloads.length);
    at += 4;
    for (const payload of payloads) {
      view.setUint32(at, payload.length);
      slab.set(payload, at + 4);
      at += 4 + payload.length;
    }
    this.used = at;
    this.bytes += size;
    return index * handleSlabFactor + start;
  }

  /** The records a handle packed, decoded again (fresh objects: a snapshot's bytes are copied out). */
  get(handle: number): DurableRecord[] {
    return this.payloads(handle).map((payload) => decode(payload.slice()));
  }

  /** The records a handle packed, encoded for the log under `cell` (see encodeRecordsNamed): none is decoded. */
  encoded(handle: number, cell: string): Uint8Array[] {
    return encodeRecordsNamed(cell, this.payloads(handle));
  }

  /**
   * What discovery needs of a dormant cell, from its last record's header alone: a dormant
   * cell's records are a genesis, or a snapshot after an optional promise, and a replica
   * recovered from them leads nothing and knows no leader.
   */
  summary(handle: number): SnapshotSummary {
    const last = this.payloads(handle).pop();
    assert(last !== undefined, "a dormant entry holds a record");
    const record = decode(last);
    if (record.kind === "genesis") return CellState.genesisSummary(record.genesis.members, record.genesis);
    assert(record.kind === "snapshot", `a dormant cell ends with a snapshot, not a ${record.kind}`);
    const summary = CellState.summary(record.state);
    assert(typeof summary !== "string", `a dormant snapshot reads: ${String(summary)}`);
    return summary;
  }

  /**
   * Whether discovery's audit may skip this cell at `nowMs`: its last push changed nothing,
   * the cache's entry for it still has the change stamp it had then (`DiscoveryCache.stampOf`),
   * and the entry is not yet due for a refresh. A dormant cell's report cannot change (its
   * records do not), so the same push would again change nothing. A fresh entry has no memo.
   */
  auditMemoHolds(handle: number, stamp: number, nowMs: number): boolean {
    const view = this.viewOf(handle);
    const at = handle % handleSlabFactor;
    return view.getFloat64(at) === stamp && nowMs < view.getFloat64(at + 8);
  }

  /** Remembers that a push of this cell changed nothing, at `stamp`, and holds until `untilMs`. */
  setAuditMemo(handle: number, stamp: number, untilMs: number): void {
    const view = this.viewOf(handle);
    const at = handle % handleSlabFactor;
    view.setFloat64(at, stamp);
    view.setFloat64(at + 8, untilMs);
  }

  private viewOf(handle: number): DataView {
    const view = this.views[Math.floor(handle / handleSlabFactor)];
    assert(view !== undefined, "a dormant handle names a slab");
    return view;
  }

  /** The encoded records of an entry, as views into its slab. */
  private payloads(handle: number): Uint8Array[] {
    const view = this.viewOf(handle);
    const slab = this.slabs[Math.floor(handle / handleSlabFactor)] as Uint8Array;
    let at = (handle % handleSlabFactor) + memoBytes;
    const count = view.getUint32(at);
    at += 4;
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const length = view.getUint32(at);
      out.push(slab.subarray(at + 4, at + 4 + length));
      at += 4 + length;
    }
    return out;
  }
}

function decode(payload: Uint8Array): DurableRecord {
  const decoded = decodeRecord(payload);
  assert(decoded.ok, `a dormant record decodes: ${decoded.ok ? "" : decoded.detail}`);
  return decoded.entry.record;
}
