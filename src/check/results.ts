// Structural equality of transaction results: what a recorded answer must share with the
// state machine's answer for the two to count as the same. Values compare by type and
// content (bytes by content, never by identity). A rejection compares by reason only: its
// detail is prose for people and may be worded differently by another version.

import type { ScanPage, TxResult } from "../core/kv.ts";
import { type Value, valuesEqual } from "../core/value.ts";

export function resultsEqual(a: TxResult, b: TxResult): boolean {
  if (a.status === "rejected") return b.status === "rejected" && a.reason === b.reason;
  if (b.status === "rejected") return false;
  if (!readsEqual(a.reads, b.reads) || !scansEqual(a.scan, b.scan)) return false;
  if (a.status === "committed") {
    return b.status === "committed" && incrementsEqual(a.increments, b.increments);
  }
  return (
    b.status === "conditionFailed" &&
    a.condition === b.condition &&
    a.key === b.key &&
    optionalValuesEqual(a.actual, b.actual)
  );
}

export function optionalValuesEqual(a: Value | null, b: Value | null): boolean {
  if (a === null || b === null) return a === b;
  return valuesEqual(a, b);
}

function readsEqual(a: readonly (Value | null)[], b: readonly (Value | null)[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!optionalValuesEqual(a[i] ?? null, b[i] ?? null)) return false;
  return true;
}

function scansEqual(a: ScanPage | undefined, b: ScanPage | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.next !== b.next || a.entries.length !== b.entries.length) return false;
  for (let i = 0; i < a.entries.length; i++) {
    const [keyA, valueA] = a.entries[i]!;
    const [keyB, valueB] = b.entries[i]!;
    if (keyA !== keyB || !valuesEqual(valueA, valueB)) return false;
  }
  return true;
}

function incrementsEqual(a: readonly (readonly [string, bigint])[], b: readonly (readonly [string, bigint])[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const [keyA, valueA] = a[i]!;
    const [keyB, valueB] = b[i]!;
    if (keyA !== keyB || valueA !== valueB) return false;
  }
  return true;
}
