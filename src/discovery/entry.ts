// One discovery entry: where a cell lives. And the total order that makes every replica of
// the cache converge whatever the order in which updates reach it: of two entries for the
// same cell name, a replica keeps the greater, comparing field by field
//
//   incarnation  the cell's incarnation, fixed at creation; a re-created cell must get a
//                greater one (as a 64-bit unsigned integer), so its entries win
//   epoch        corrections: a member that proves the stored entry wrong re-issues its own
//                with epoch + 1 (see cache.ts); 0 for almost every entry
//   version      the slot at which the cell applied its latest membership change
//   ballot       the round of the leader's ballot, then
//   leader       its identity (null first): together the leader's ballot, so at one version
//                the newer leader's hint wins
//   refreshedMs  when a member last stamped the entry (it expires a lifetime later)
//   members      the sorted list of identities, compared element by element, then by length
//
// Two entries are equal only when every field is, so "keep the greater" is a join on a
// total order: commutative, associative and idempotent, and replicas converge to the
// greatest entry any of them has seen.

import { assert } from "../core/assert.ts";
import { compareIncarnations } from "./ids.ts";
import { Hash64 } from "./hash.ts";

export interface CellEntry {
  readonly cell: string;
  /** 16 lowercase hex digits. */
  readonly incarnation: string;
  readonly epoch: number;
  readonly version: number;
  readonly ballot: number;
  readonly leader: string | null;
  readonly refreshedMs: number;
  /** Identities, sorted and distinct; 1 to discoveryLimits.membersMax of them. */
  readonly members: readonly string[];
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function compareMembers(a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compareStrings(a[i] as string, b[i] as string);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/** Negative, zero or positive as `a` orders before, equal to or after `b` (same cell). */
export function compareEntries(a: CellEntry, b: CellEntry): number {
  const inc = compareIncarnations(a.incarnation, b.incarnation);
  if (inc !== 0) return inc;
  if (a.epoch !== b.epoch) return a.epoch - b.epoch;
  if (a.version !== b.version) return a.version - b.version;
  if (a.ballot !== b.ballot) return a.ballot - b.ballot;
  if (a.leader !== b.leader) {
    if (a.leader === null) return -1;
    if (b.leader === null) return 1;
    return compareStrings(a.leader, b.leader);
  }
  if (a.refreshedMs !== b.refreshedMs) return a.refreshedMs - b.refreshedMs;
  return compareMembers(a.members, b.members);
}

/** The greater of two entries for one cell: the merge every replica applies. */
export function mergeEntries(a: CellEntry, b: CellEntry): CellEntry {
  assert(a.cell === b.cell, "merge: entries of different cells");
  return compareEntries(a, b) >= 0 ? a : b;
}

/** A copy with the members sorted, which is the form every entry is stored and hashed in. */
export function canonicalEntry(entry: CellEntry): CellEntry {
  const members = [...entry.members].sort(compareStrings);
  return { ...entry, members };
}

/** The incarnation's two 32-bit words. */
export function incarnationWords(incarnation: string): readonly [number, number] {
  return [Number.parseInt(incarnation.slice(0, 8), 16), Number.parseInt(incarnation.slice(8, 16), 16)];
}

/** The pieces an entry's hash is made of; the store computes them from its interned fields. */
export interface EntryHashParts {
  readonly name: readonly [number, number];
  readonly incarnation: readonly [number, number];
  readonly epoch: number;
  readonly version: number;
  readonly ballot: number;
  readonly leader: readonly [number, number] | null;
  readonly refreshedMs: number;
  readonly members: ReadonlyArray<readonly [number, number]>;
}

/** The entry's 64-bit digest, `[high, low]`: part of the protocol, so the field order is fixed. */
export function hashEntryParts(parts: EntryHashParts): readonly [number, number] {
  const h = new Hash64();
  h.pair(parts.name[0], parts.name[1]).pair(parts.incarnation[0], parts.incarnation[1]);
  h.integer(parts.epoch).integer(parts.version).integer(parts.ballot);
  if (parts.leader === null) h.word(0);
  else h.word(1).pair(parts.leader[0], parts.leader[1]);
  h.integer(parts.refreshedMs).word(parts.members.length);
  for (const member of parts.members) h.pair(member[0], member[1]);
  return h.finish();
}
