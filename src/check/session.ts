// Eventually consistent reads are served from any replica's applied state. Within one
// client session they must be monotonic: a later read never comes from an older applied
// index than an earlier one. And the state at an applied index is the same on every replica,
// so two reads at the same index must agree on every key they both read.

import { assert } from "../core/assert.ts";
import type { TxResult } from "../core/kv.ts";
import type { Transaction } from "../core/transaction.ts";
import type { Value } from "../core/value.ts";
import { describeResult, describeTransaction } from "./explain.ts";
import { optionalValuesEqual } from "./results.ts";

export interface SessionRead {
  /** The log index the answering replica had applied when it answered. */
  readonly appliedIndex: number;
  /** With `result`, lets reads at the same index be compared key by key. */
  readonly tx?: Transaction;
  readonly result?: TxResult;
}

export type SessionVerdict =
  | { readonly ok: true; readonly reads: number }
  | {
    readonly ok: false;
    /** "wentBackwards": applied index decreased; "disagreed": same index, different values. */
    readonly reason: "wentBackwards" | "disagreed";
    /** Positions in the sequence of the earlier read and the later read that contradict it. */
    readonly earlier: number;
    readonly later: number;
    readonly explanation: string;
  };

/** Checks one session's reads, in the order the session received them. */
export function checkSession(reads: readonly SessionRead[]): SessionVerdict {
  let highest = -1;
  let highestAt = -1;
  /** Values seen at the current highest index: key -> [value, position]. */
  let seen = new Map<string, readonly [Value | null, number]>();
  for (let position = 0; position < reads.length; position++) {
    const read = reads[position]!;
    assert(Number.isSafeInteger(read.appliedIndex) && read.appliedIndex >= 0, `read ${position}: applied index ${read.appliedIndex} is not a log index`);
    if (read.appliedIndex < highest) {
      return {
        ok: false,
        reason: "wentBackwards",
        earlier: highestAt,
        later: position,
        explanation: `Session read ${position} was answered at applied index ${read.appliedIndex}, ` +
          `older than index ${highest} which answered read ${highestAt}.`,
      };
    }
    if (read.appliedIndex > highest) {
      highest = read.appliedIndex;
      seen = new Map();
    }
    highestAt = position;
    if (read.tx === undefined || read.result === undefined || read.result.status === "rejected") continue;
    const { tx, result } = read;
    for (let i = 0; i < tx.reads.length; i++) {
      const key = tx.reads[i]!;
      const value = result.reads[i] ?? null;
      const before = seen.get(key);
      if (before === undefined) {
        seen.set(key, [value, position]);
      } else if (!optionalValuesEqual(before[0], value)) {
        return {
          ok: false,
          reason: "disagreed",
          earlier: before[1],
          later: position,
          explanation: `Session reads ${before[1]} and ${position} were both answered at applied index ${read.appliedIndex} ` +
            `but disagree on ${JSON.stringify(key)}: read ${position} is ${describeTransaction(tx)} -> ${describeResult(tx, result)}.`,
        };
      }
    }
  }
  return { ok: true, reads: reads.length };
}
