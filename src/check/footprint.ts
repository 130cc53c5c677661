// Which operations can interfere with each other, judged from their transactions alone.
//
// Two transactions are independent when neither writes a key the other reads, tests,
// writes or scans. Independent transactions commute in every state: applied in either
// order they give the same results and the same final state, because apply looks at no
// other key. The one exception is the cell's byte limit (`cellFull`), which couples every
// pair of writers; when the history could come near it, all writers count as dependent.

import { type KvStore, entryBytes } from "../core/kv.ts";
import type { Transaction } from "../core/transaction.ts";
import { compareKeys, utf8Bytes } from "../core/value.ts";
import { limits } from "../limits.ts";

interface Footprint {
  readonly writes: readonly string[];
  /** Keys read, tested or written. */
  readonly touches: ReadonlySet<string>;
  readonly scanStart: string | null;
  readonly scanEnd: string | null;
}

const integerEntryBytesMax = limits.integerBitsMax / 8 + 1;

export class Interference {
  private readonly footprints: readonly Footprint[];
  /** True when all writes together could fill the cell, so any two writers may interfere. */
  readonly writersCoupled: boolean;
  /** Answers so far, 0 for not yet asked, 1 independent, 2 dependent; kept below 16 MB. */
  private readonly known: Uint8Array | null;

  constructor(txs: readonly Transaction[], initial: KvStore) {
    this.footprints = txs.map(footprint);
    let bytesMax = initial.bytes;
    for (const tx of txs) {
      for (const write of tx.writes) {
        if (write.op === "put") bytesMax += entryBytes(write.key, write.value);
        else if (write.op === "increment") bytesMax += utf8Bytes(write.key) + integerEntryBytesMax + limits.entryOverheadBytes;
      }
    }
    this.writersCoupled = bytesMax > limits.cellBytesMax;
    this.known = txs.length <= 4096 ? new Uint8Array(txs.length * txs.length) : null;
  }

  /** True unless operations `a` and `b` commute in every state. */
  dependent(a: number, b: number): boolean {
    if (this.known === null) return this.compute(a, b);
    const slot = a * this.footprints.length + b;
    let answer = this.known[slot]!;
    if (answer === 0) {
      answer = this.compute(a, b) ? 2 : 1;
      this.known[slot] = answer;
    }
    return answer === 2;
  }

  private compute(a: number, b: number): boolean {
    const x = this.footprints[a]!;
    const y = this.footprints[b]!;
    if (this.writersCoupled && x.writes.length > 0 && y.writes.length > 0) return true;
    return writesInto(x, y) || writesInto(y, x);
  }
}

function footprint(tx: Transaction): Footprint {
  const touches = new Set<string>(tx.reads);
  for (const condition of tx.conditions) touches.add(condition.key);
  for (const write of tx.writes) touches.add(write.key);
  return {
    writes: tx.writes.map((w) => w.key),
    touches,
    scanStart: tx.scan === undefined ? null : tx.scan.start,
    scanEnd: tx.scan?.end ?? null,
  };
}

function writesInto(writer: Footprint, other: Footprint): boolean {
  for (const key of writer.writes) {
    if (other.touches.has(key)) return true;
    if (
      other.scanStart !== null &&
      compareKeys(key, other.scanStart) >= 0 &&
      (other.scanEnd === null || compareKeys(key, other.scanEnd) < 0)
    ) return true;
  }
  return false;
}
