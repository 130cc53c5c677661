// The key-value state machine of one cell. Apply is total: every input, valid or not,
// against every state, yields a typed result, and either all of a transaction's writes
// happen or none do. Nothing here throws on input; only a broken invariant (a bug) does.

import { limits } from "../limits.ts";
import { assert } from "./assert.ts";
import {
  type Rejection,
  type ScanRange,
  type Transaction,
  checkTransaction,
  isRejection,
  reject,
} from "./transaction.ts";
import { type Value, compareKeys, integerInRange, utf8Bytes, valueBytes, valuesEqual } from "./value.ts";

export interface ScanPage {
  readonly entries: readonly (readonly [string, Value])[];
  /** Where the next page starts, or null when the range is exhausted. */
  readonly next: string | null;
}

export interface Committed {
  readonly status: "committed";
  /** One entry per `tx.reads`, in order: the value before this transaction, or null. */
  readonly reads: readonly (Value | null)[];
  readonly scan?: ScanPage;
  /** The new value of every incremented key, in write order. */
  readonly increments: readonly (readonly [string, bigint])[];
}

export interface ConditionFailed {
  readonly status: "conditionFailed";
  readonly reads: readonly (Value | null)[];
  readonly scan?: ScanPage;
  /** Index into `tx.conditions` of the first condition that did not hold. */
  readonly condition: number;
  readonly key: string;
  readonly actual: Value | null;
}

export type TxResult = Committed | ConditionFailed | Rejection;

export function entryBytes(key: string, value: Value): number {
  return utf8Bytes(key) + valueBytes(value) + limits.entryOverheadBytes;
}

export class KvStore {
  private readonly entries = new Map<string, Value>();
  /** Keys in order, built lazily for scans and encoding; dropped when the key set changes. */
  private sorted: string[] | null = null;
  private bytesUsed = 0;

  get size(): number {
    return this.entries.size;
  }

  /** Bytes charged against `limits.cellBytesMax`. */
  get bytes(): number {
    return this.bytesUsed;
  }

  get(key: string): Value | undefined {
    return this.entries.get(key);
  }

  /** Entries in key order. */
  *ordered(): IterableIterator<readonly [string, Value]> {
    for (const key of this.sortedKeys()) yield [key, this.entries.get(key) as Value];
  }

  clone(): KvStore {
    const copy = new KvStore();
    for (const [key, value] of this.entries) copy.entries.set(key, value);
    copy.bytesUsed = this.bytesUsed;
    copy.sorted = this.sorted;
    return copy;
  }

  /** Applies one transaction. Total and deterministic; see the module comment. */
  apply(input: Transaction | unknown): TxResult {
    const tx = checkTransaction(input);
    if (isRejection(tx)) return tx;

    const reads = tx.reads.map((key) => this.entries.get(key) ?? null);
    const scan = tx.scan === undefined ? undefined : this.scanPage(tx.scan);
    const withScan = <T extends object>(result: T): T => (scan === undefined ? result : { ...result, scan });

    for (let i = 0; i < tx.conditions.length; i++) {
      const condition = tx.conditions[i]!;
      const actual = this.entries.get(condition.key) ?? null;
      if (!conditionHolds(condition.test, actual, "value" in condition ? condition.value : null)) {
        return withScan({ status: "conditionFailed", reads, condition: i, key: condition.key, actual } as const);
      }
    }

    // Compute every new value before changing anything, so a rejection leaves no trace.
    const changes: [string, Value | null][] = [];
    const increments: [string, bigint][] = [];
    let bytes = this.bytesUsed;
    for (const write of tx.writes) {
      const before = this.entries.get(write.key);
      let after: Value | null;
      if (write.op === "put") {
        after = write.value;
      } else if (write.op === "delete") {
        after = null;
      } else {
        const base = before === undefined ? 0n : before;
        if (typeof base !== "bigint") {
          return reject("wrongType", `cannot increment ${JSON.stringify(write.key)}: it holds ${typeof base === "boolean" ? "a boolean" : "bytes"}`);
        }
        const sum = base + write.by;
        if (!integerInRange(sum)) {
          return reject("valueTooLarge", `incrementing ${JSON.stringify(write.key)} exceeds ${limits.integerBitsMax} bits`);
        }
        after = sum;
        increments.push([write.key, sum]);
      }
      if (before !== undefined) bytes -= entryBytes(write.key, before);
      if (after !== null) bytes += entryBytes(write.key, after);
      changes.push([write.key, after]);
    }
    if (bytes > limits.cellBytesMax && bytes > this.bytesUsed) {
      return reject("cellFull", `cell would hold ${bytes} bytes, over ${limits.cellBytesMax}`);
    }

    for (const [key, after] of changes) {
      const had = this.entries.has(key);
      if (after === null) {
        if (had) {
          this.entries.delete(key);
          this.sorted = null;
        }
      } else {
        this.entries.set(key, after);
        if (!had) this.sorted = null;
      }
    }
    this.bytesUsed = bytes;
    const committed: Committed = { status: "committed", reads, increments };
    return withScan(committed);
  }

  private sortedKeys(): string[] {
    if (this.sorted === null) this.sorted = [...this.entries.keys()].sort(compareKeys);
    return this.sorted;
  }

  private scanPage(range: ScanRange): ScanPage {
    const keys = this.sortedKeys();
    // First index whose key is >= start.
    let lo = 0;
    let hi = keys.length;
    if (range.start !== "") {
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (compareKeys(keys[mid]!, range.start) < 0) lo = mid + 1;
        else hi = mid;
      }
    }
    const entries: [string, Value][] = [];
    let pageBytes = 0;
    for (let i = lo; i < keys.length; i++) {
      const key = keys[i]!;
      if (range.end !== undefined && compareKeys(key, range.end) >= 0) break;
      const value = this.entries.get(key) as Value;
      const size = entryBytes(key, value);
      if (entries.length === range.limit || pageBytes + size > limits.scanPageBytesMax) {
        return { entries, next: key };
      }
      entries.push([key, value]);
      pageBytes += size;
    }
    return { entries, next: null };
  }

  /** Recomputes the byte count from the entries; a check for tests and recovery. */
  recount(): number {
    let bytes = 0;
    for (const [key, value] of this.entries) bytes += entryBytes(key, value);
    return bytes;
  }

  /** Inserts an entry while decoding a snapshot; the caller checks order and limits. */
  restoreEntry(key: string, value: Value): void {
    assert(!this.entries.has(key), "restoreEntry: duplicate key");
    this.entries.set(key, value);
    this.bytesUsed += entryBytes(key, value);
    this.sorted = null;
  }
}

function conditionHolds(test: string, actual: Value | null, expected: Value | null): boolean {
  switch (test) {
    case "exists":
      return actual !== null;
    case "notExists":
      return actual === null;
    case "equals":
      return actual !== null && valuesEqual(actual, expected as Value);
    case "notEquals":
      return actual === null || !valuesEqual(actual, expected as Value);
    default: {
      // Integer comparisons hold only for a present integer.
      if (typeof actual !== "bigint" || typeof expected !== "bigint") return false;
      if (test === "lt") return actual < expected;
      if (test === "le") return actual <= expected;
      if (test === "gt") return actual > expected;
      assert(test === "ge", `unknown condition test ${test}`);
      return actual >= expected;
    }
  }
}
