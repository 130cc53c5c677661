// Small builders for hand-written histories: transactions and the results a client records.
import type { Committed, ConditionFailed, TxResult } from "../../src/core/kv.ts";
import type { Condition, Transaction } from "../../src/core/transaction.ts";
import { type Value, utf8 } from "../../src/core/value.ts";
import { HistoryRecorder } from "../../src/check/recorder.ts";
import type { OpId } from "../../src/check/operation.ts";

export const text = (s: string): Uint8Array => utf8(s);

export const get = (...keys: string[]): Transaction => ({ reads: keys, conditions: [], writes: [] });
export const put = (key: string, value: Value): Transaction => ({ reads: [], conditions: [], writes: [{ key, op: "put", value }] });
export const del = (key: string): Transaction => ({ reads: [], conditions: [], writes: [{ key, op: "delete" }] });
export const inc = (key: string, by = 1n): Transaction => ({ reads: [], conditions: [], writes: [{ key, op: "increment", by }] });
export const putIf = (condition: Condition, key: string, value: Value): Transaction => ({
  reads: [],
  conditions: [condition],
  writes: [{ key, op: "put", value }],
});
export const scan = (start: string, limit: number): Transaction => ({ reads: [], conditions: [], writes: [], scan: { start, limit } });

export const ok = (reads: (Value | null)[] = [], increments: [string, bigint][] = []): Committed => ({ status: "committed", reads, increments });
export const scanned = (entries: [string, Value][], next: string | null = null): Committed => ({
  status: "committed",
  reads: [],
  increments: [],
  scan: { entries, next },
});
export const failed = (condition: number, key: string, actual: Value | null): ConditionFailed => ({
  status: "conditionFailed",
  reads: [],
  condition,
  key,
  actual,
});

/** A recorder for one cell with a terse call: `op(client, tx, invokedAt, respondedAt, result)`. */
export class CellHistory {
  readonly recorder = new HistoryRecorder();
  constructor(readonly cell = "cell-1") {}

  /** A completed operation. */
  op(client: string, tx: Transaction, invokedAt: number, respondedAt: number, result: TxResult): OpId {
    const id = this.recorder.invoke(this.cell, client, tx, invokedAt);
    this.recorder.complete(id, result, respondedAt);
    return id;
  }

  /** An operation whose client gave up at `gaveUpAt`. */
  lost(client: string, tx: Transaction, invokedAt: number, gaveUpAt: number): OpId {
    const id = this.recorder.invoke(this.cell, client, tx, invokedAt);
    this.recorder.timeout(id, gaveUpAt);
    return id;
  }

  history() {
    return this.recorder.history(this.cell);
  }
}
