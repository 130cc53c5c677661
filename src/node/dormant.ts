// Dormant cells: the records of idle cells, packed into large shared buffers.
//
// Most cells of a large node are idle, and what recovery leaves of an idle cell is a promise
// and a snapshot. Kept as objects (two records, a ballot, a byte array each) they cost about
// 1.8 KB of resident memory a cell; packed here they cost their encoded bytes (about 470 for
// a used cell) and one number in the node's map. A cell's records are written once, when it
// is recovered, and read once, when its first message wakes it; the space of a woken cell is
// not reused (the next compaction and restart leave it behind).
//
// Layout of one entry: u32 count, then per record u32 length and its bytes (records.ts, with
// an empty cell name: the node's map holds the name). A handle is slab * 2^21 + offset.

import { assert } from "../core/assert.ts";
import { CellState, type SnapshotSummary } from "../core/cellstate.ts";
import type { DurableRecord } from "../core/effects.ts";
import { decodeRecord, encodeRecord, encodeRecordsNamed } from "../wire/records.ts";

/** Bytes of one slab: many cells share one allocation. */
const slabBytes = 1 << 20;
const handleSlabFactor = 1 << 21;
/** Entries larger than this stay out of the arena (the caller keeps the replica built). */
export const dormantEntryBytesMax = slabBytes >> 2;

export class DormantArena {
  private readonly slabs: Uint8Array[] = [];
  private used = slabBytes;
  /** Bytes taken in slabs, woken cells' included. */
  bytes = 0;

  /** Packs a cell's records; null when they are too large to share a slab. */
  put(records: readonly DurableRecord[]): number | null {
    const payloads = records.map((record) => encodeRecord({ cell: "", record }));
    const size = 4 + payloads.reduce((sum, p) => sum + 4 + p.length, 0);
    if (size > dormantEntryBytesMax) return null;
    if (this.used + size > slabBytes) {
      this.slabs.push(new Uint8Array(slabBytes));
      this.used = 0;
    }
    const index = this.slabs.length - 1;
    const slab = this.slabs[index] as Uint8Array;
    const view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength);
    const start = this.used;
    let at = start;
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

  /** The encoded records of an entry, as views into its slab. */
  private payloads(handle: number): Uint8Array[] {
    const slab = this.slabs[Math.floor(handle / handleSlabFactor)];
    assert(slab !== undefined, "a dormant handle names a slab");
    const view = new DataView(slab.buffer, slab.byteOffset, slab.byteLength);
    let at = handle % handleSlabFactor;
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
