// The model the checker runs: the cell's own state machine (a KvStore) plus a 32-bit hash
// of its contents, kept up to date incrementally so that remembering "have I been in this
// state with these operations linearized before?" costs O(keys written) per step rather
// than O(state). The hash only picks a bucket; equal states are confirmed entry by entry,
// so a collision costs time, never a wrong verdict.

import type { KvStore, TxResult } from "../core/kv.ts";
import type { Transaction } from "../core/transaction.ts";
import { type Value, valuesEqual } from "../core/value.ts";

export interface ModelState {
  readonly store: KvStore;
  /** Sum of `entryHash` over the entries, modulo 2^32. */
  readonly hash: number;
}

export interface ModelStep {
  readonly result: TxResult;
  /** The state after the step: the same object when nothing was written. */
  readonly next: ModelState;
}

export function modelState(store: KvStore): ModelState {
  let hash = 0;
  for (const [key, value] of store.ordered()) hash = (hash + entryHash(key, value)) | 0;
  return { store, hash };
}

/**
 * Applies a transaction that has passed `checkTransaction` without changing `state`.
 * A transaction without writes cannot change a store, so it runs on the shared store and
 * needs no copy; others run on a clone, kept only when they commit.
 */
export function stepModel(state: ModelState, tx: Transaction): ModelStep {
  if (tx.writes.length === 0) return { result: state.store.apply(tx), next: state };
  const store = state.store.clone();
  const result = store.apply(tx);
  if (result.status !== "committed") return { result, next: state };
  let hash = state.hash;
  for (const write of tx.writes) {
    const before = state.store.get(write.key);
    const after = store.get(write.key);
    if (before !== undefined) hash = (hash - entryHash(write.key, before)) | 0;
    if (after !== undefined) hash = (hash + entryHash(write.key, after)) | 0;
  }
  return { result, next: { store, hash } };
}

export function sameState(a: ModelState, b: ModelState): boolean {
  if (a === b || a.store === b.store) return true;
  if (a.hash !== b.hash || a.store.size !== b.store.size || a.store.bytes !== b.store.bytes) return false;
  for (const [key, value] of a.store.ordered()) {
    const other = b.store.get(key);
    if (other === undefined || !valuesEqual(value, other)) return false;
  }
  return true;
}

/** FNV-1a over the key, a type tag and the value's content, finished with murmur3's mixer. */
export function entryHash(key: string, value: Value): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  if (typeof value === "boolean") {
    h = Math.imul(h ^ (value ? 0x10001 : 0x10000), 0x01000193);
  } else if (typeof value === "bigint") {
    h = Math.imul(h ^ 0x10002, 0x01000193);
    const digits = value.toString(36);
    for (let i = 0; i < digits.length; i++) h = Math.imul(h ^ digits.charCodeAt(i), 0x01000193);
  } else {
    h = Math.imul(h ^ 0x10003, 0x01000193);
    for (let i = 0; i < value.length; i++) h = Math.imul(h ^ value[i]!, 0x01000193);
  }
  return mix32(h);
}

export function mix32(input: number): number {
  let h = input;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}
