// One replica of a color's discovery cache: cell name -> entry, kept as one record index per
// name over a (possibly shared) EntryStore, with a digest tree over the key space for
// anti-entropy. Two ways in:
//
//  - merge: an entry from a peer. The replica keeps the greater entry (entry.ts), refuses
//    entries that have expired or are stamped too far in the future, and that is all.
//  - push: a member's own view of a cell it hosts (the node calls it on change and for the
//    batched refresh). A member knows its log through its applied slot, so it can prove some
//    stored entries wrong and correct them; see `push` for the exact rule.
//
// Entries expire `entryLifetimeMs` after their stamp: a cell that no member refreshes (it was
// destroyed, or the entry was made up) leaves the cache by itself. Expiry is swept a bounded
// number of names per round; nothing here holds a timer.

import { assert } from "../core/assert.ts";
import { type CellEntry, canonicalEntry } from "./entry.ts";
import { compareIncarnations, isCellName, isIdentity, isIncarnation } from "./ids.ts";
import { discoveryLimits } from "./limits.ts";
import type { EntryStore, StoreRefusal } from "./store.ts";

/** What one member knows about a cell it hosts. */
export interface CellReport {
  readonly cell: string;
  readonly incarnation: string;
  /** The slot at which the member's latest membership change was applied. */
  readonly version: number;
  /** The member has applied every slot up to this one (at least `version`). */
  readonly appliedSlot: number;
  /** The membership in force from `version` on. */
  readonly members: readonly string[];
  /** The leader this member knows of (itself when it leads), or null. */
  readonly leader: string | null;
  /** The round of that leader's ballot, 0 when unknown. */
  readonly ballot: number;
  readonly role: "leader" | "follower";
}

export type MergeOutcome = "stored" | "older" | "equal" | "expired" | "future" | StoreRefusal;

/**
 * What a push did: `stored` newer information; `corrected` an entry the member proved wrong
 * (a new entry with epoch + 1); `restamped` an unchanged entry that was due for a refresh;
 * `current` nothing to do; `newerKnown` the replica holds an entry this member cannot judge
 * (a later membership than it has applied, a later ballot, or a newer cell incarnation).
 */
export type PushOutcome = "stored" | "corrected" | "restamped" | "current" | "newerKnown" | StoreRefusal;

export interface CacheOptions {
  readonly entryLifetimeMs?: number;
  readonly refreshIntervalMs?: number;
  readonly clockSkewMs?: number;
  /** Called after a name's record changes (-1 for none); the simulation measures convergence with it. */
  readonly onChange?: (nameIndex: number, before: number, after: number) => void;
}

const none = -1;

export class DiscoveryCache {
  readonly store: EntryStore;
  readonly entryLifetimeMs: number;
  readonly refreshIntervalMs: number;
  readonly clockSkewMs: number;
  readonly depths: readonly number[];
  private readonly onChange: ((nameIndex: number, before: number, after: number) => void) | undefined;
  private slots = new Int32Array(0);
  /**
   * Per name, a number no other change of any name had: written whenever the name's record
   * changes (see `stampOf`). A caller that remembers it knows the entry is unchanged while
   * the stamp is.
   */
  private stamps = new Float64Array(0);
  private changeCount = 0;
  private readonly levels: Uint32Array[];
  private readonly depthIndices: Int8Array;
  /** Entries under each subtree of the first depth: a node far behind asks for whole subtrees. */
  private readonly firstCounts: Uint32Array;
  private rootHigh = 0;
  private rootLow = 0;
  private entries = 0;
  private sweepCursor = 0;

  constructor(store: EntryStore, options: CacheOptions = {}) {
    this.store = store;
    this.entryLifetimeMs = options.entryLifetimeMs ?? discoveryLimits.entryLifetimeMsDefault;
    this.refreshIntervalMs = options.refreshIntervalMs ?? discoveryLimits.refreshIntervalMsDefault;
    this.clockSkewMs = options.clockSkewMs ?? discoveryLimits.clockSkewMsMax;
    assert(this.refreshIntervalMs * 2 + this.clockSkewMs < this.entryLifetimeMs, "cache: entries must be refreshed before they expire");
    this.onChange = options.onChange;
    const depths: number[] = [];
    const leafBits = store.names.leafBits;
    for (let depth = discoveryLimits.treeStepBits; depth < leafBits; depth += discoveryLimits.treeStepBits) depths.push(depth);
    depths.push(leafBits);
    this.depths = depths;
    this.depthIndices = new Int8Array(discoveryLimits.leafBitsMax + 1).fill(-1);
    depths.forEach((depth, i) => {
      this.depthIndices[depth] = i;
    });
    this.levels = depths.map((depth) => new Uint32Array(2 << depth));
    this.firstCounts = new Uint32Array(1 << (depths[0] as number));
  }

  get size(): number {
    return this.entries;
  }

  get leafBits(): number {
    return this.store.names.leafBits;
  }

  /** The record a name holds here, or -1. */
  recordAt(nameIndex: number): number {
    return nameIndex < this.slots.length ? (this.slots[nameIndex] as number) : none;
  }

  /**
   * The change stamp of `cell`'s entry: equal to an earlier answer exactly while no change has
   * reached that name's entry since (stored, replaced, swept or removed); -1 for a name the
   * store does not hold. Costs one name lookup; the batched refresh of idle cells skips a
   * push whose outcome cannot differ from the last (node/discovery.ts).
   */
  stampOf(cell: string): number {
    const index = this.store.names.find(cell);
    return index === none || index >= this.stamps.length ? -1 : (this.stamps[index] as number);
  }

  /**
   * Until when (ms, on the pushes' clock) a push by a member in `role` would find `cell`'s
   * present entry fresh and not re-stamp it (see `push`); -1 when there is no entry.
   */
  freshUntilMs(cell: string, role: CellReport["role"]): number {
    const index = this.store.names.find(cell);
    const record = index === none ? none : this.recordAt(index);
    if (record === none) return -1;
    return this.store.refreshedOf(record) + this.refreshDueMs(role);
  }

  /** How old an entry may grow before a member in `role` re-stamps it: a follower waits twice as long, so the leader does it while it lives. */
  private refreshDueMs(role: CellReport["role"]): number {
    return role === "leader" ? this.refreshIntervalMs : this.refreshIntervalMs * 2;
  }

  get(cell: string): CellEntry | null {
    const index = this.store.names.find(cell);
    if (index === none) return null;
    const record = this.recordAt(index);
    return record === none ? null : this.store.entry(record);
  }

  /**
   * Takes `entry` if it is greater than what this replica holds and is neither expired nor
   * from the future. The entry must be valid: entries from the wire are checked by decodeEntry.
   */
  merge(raw: CellEntry, nowMs: number): MergeOutcome {
    if (raw.refreshedMs + this.entryLifetimeMs <= nowMs) return "expired";
    if (raw.refreshedMs > nowMs + this.clockSkewMs) return "future";
    const entry = canonicalEntry(raw);
    const existing = this.store.names.find(entry.cell);
    const held = existing === none ? none : this.recordAt(existing);
    if (held !== none) {
      const order = this.store.compareTo(held, entry);
      if (order > 0) return "older";
      if (order === 0) return "equal";
    }
    return this.put(entry);
  }

  private put(entry: CellEntry): "stored" | StoreRefusal {
    const names = this.store.names;
    const nameIndex = names.acquire(entry.cell);
    const record = this.store.acquire(entry, nameIndex);
    // The record holds the name now (or an equal record already did).
    names.release(nameIndex);
    if (typeof record === "string") return record;
    this.set(nameIndex, record);
    return "stored";
  }

  /**
   * A member's view of a cell it hosts. With E the stored entry and T the member's view:
   *  - no E, or E of an older cell incarnation: store T.
   *  - E of a newer incarnation, or E.version beyond the member's applied slot: newerKnown
   *    (the member may be the one that is behind).
   *  - E.version between T.version (exclusive) and the applied slot: E names a membership
   *    change the member's log does not have there, so E is wrong: store T with E.epoch + 1.
   *  - E.version = T.version with other members, or with a leader who is not a member: wrong
   *    too, corrected the same way.
   *  - E.version below T.version, or the same membership under an older ballot: T is newer,
   *    store it with E's epoch.
   *  - the same membership under the same or a later ballot: E is right; re-stamp it once it
   *    is older than the refresh interval (twice that for a follower, so the leader does it
   *    while it lives).
   */
  push(report: CellReport, clockMs: number): PushOutcome {
    // Stamps are whole milliseconds on the wire.
    const nowMs = Math.floor(clockMs);
    assertReport(report);
    assert(report.version <= report.appliedSlot, "push: version beyond the applied slot");
    assert(report.leader === null || report.members.includes(report.leader), "push: the leader must be a member");
    const view = canonicalEntry({
      cell: report.cell,
      incarnation: report.incarnation,
      epoch: 0,
      version: report.version,
      ballot: report.ballot,
      leader: report.leader,
      refreshedMs: nowMs,
      members: report.members,
    });
    const existing = this.store.names.find(report.cell);
    const held = existing === none ? none : this.recordAt(existing);
    if (held === none) return this.put(view);
    const stored = this.store.entry(held);
    const incarnationOrder = compareIncarnations(stored.incarnation, view.incarnation);
    if (incarnationOrder > 0) return "newerKnown";
    if (incarnationOrder < 0) return this.put(view);
    if (stored.version > report.appliedSlot) return "newerKnown";
    const corrected = (): PushOutcome => {
      const outcome = this.put({ ...view, epoch: stored.epoch + 1 });
      return outcome === "stored" ? "corrected" : outcome;
    };
    if (stored.version > view.version) return corrected();
    if (stored.version < view.version) return this.put({ ...view, epoch: stored.epoch });
    if (!sameMembers(stored.members, view.members)) return corrected();
    if (stored.leader !== null && !view.members.includes(stored.leader)) return corrected();
    if (compareBallots(stored, view) < 0) return this.put({ ...view, epoch: stored.epoch });
    if (nowMs - stored.refreshedMs < this.refreshDueMs(report.role)) return "current";
    const outcome = this.put({ ...stored, refreshedMs: nowMs });
    return outcome === "stored" ? "restamped" : outcome;
  }

  /** Drops up to `countMax` names' expired entries, continuing where the last sweep stopped. */
  sweep(nowMs: number, countMax: number = discoveryLimits.sweepsPerRoundDefault): number {
    let removed = 0;
    const capacity = this.slots.length;
    if (capacity === 0) return 0;
    for (let i = 0; i < Math.min(countMax, capacity); i++) {
      const index = this.sweepCursor;
      this.sweepCursor = (this.sweepCursor + 1) % capacity;
      const record = this.slots[index] as number;
      if (record !== none && this.store.refreshedOf(record) + this.entryLifetimeMs <= nowMs) {
        this.set(index, none);
        removed++;
      }
    }
    return removed;
  }

  /**
   * Makes this replica a copy of `other`, which shares its store: how a simulation starts a
   * thousand converged replicas without merging every entry into each.
   */
  copyFrom(other: DiscoveryCache): void {
    assert(other.store === this.store, "cache: copies need a shared store");
    assert(this.entries === 0, "cache: copy into an empty replica only");
    this.slots = other.slots.slice();
    this.stamps = new Float64Array(this.slots.length);
    // Every name changed (each stamp is new, so none equals one this replica gave before).
    for (let index = 0; index < this.slots.length; index++) {
      this.stamps[index] = ++this.changeCount;
      if (this.slots[index] !== none) this.store.retain(this.slots[index] as number);
    }
    this.levels.forEach((level, i) => level.set(other.levels[i] as Uint32Array));
    this.firstCounts.set(other.firstCounts);
    this.rootHigh = other.rootHigh;
    this.rootLow = other.rootLow;
    this.entries = other.entries;
  }

  /** Drops every entry (a crashed node's memory), telling the observer about each. */
  clear(): void {
    for (let index = 0; index < this.slots.length; index++) if (this.slots[index] !== none) this.set(index, none);
  }

  /** Removes a name's entry (used when a cell is known to be gone). */
  remove(cell: string): boolean {
    const index = this.store.names.find(cell);
    if (index === none || this.recordAt(index) === none) return false;
    this.set(index, none);
    return true;
  }

  private set(nameIndex: number, record: number): void {
    if (nameIndex >= this.slots.length) {
      const size = Math.max(this.store.names.capacity, nameIndex + 1, this.slots.length * 2);
      const grown = new Int32Array(size).fill(none);
      grown.set(this.slots);
      this.slots = grown;
      const stamps = new Float64Array(size);
      stamps.set(this.stamps);
      this.stamps = stamps;
    }
    const before = this.slots[nameIndex] as number;
    if (before === record) {
      if (record !== none) this.store.release(record);
      return;
    }
    let deltaHigh = 0;
    let deltaLow = 0;
    if (before !== none) {
      deltaHigh ^= this.store.hashHighOf(before);
      deltaLow ^= this.store.hashLowOf(before);
    }
    if (record !== none) {
      deltaHigh ^= this.store.hashHighOf(record);
      deltaLow ^= this.store.hashLowOf(record);
    }
    const place = this.store.names.placeHash(nameIndex);
    for (let i = 0; i < this.depths.length; i++) {
      const level = this.levels[i] as Uint32Array;
      const at = (place >>> (32 - (this.depths[i] as number))) << 1;
      level[at] = ((level[at] as number) ^ deltaHigh) >>> 0;
      level[at + 1] = ((level[at + 1] as number) ^ deltaLow) >>> 0;
    }
    this.rootHigh = (this.rootHigh ^ deltaHigh) >>> 0;
    this.rootLow = (this.rootLow ^ deltaLow) >>> 0;
    this.slots[nameIndex] = record;
    this.stamps[nameIndex] = ++this.changeCount;
    const first = place >>> (32 - (this.depths[0] as number));
    if (before === none) {
      this.entries++;
      this.firstCounts[first] = (this.firstCounts[first] as number) + 1;
    }
    if (record === none) {
      this.entries--;
      this.firstCounts[first] = (this.firstCounts[first] as number) - 1;
    }
    // Notify before the old record is released, so the observer can still read it.
    if (this.onChange !== undefined) this.onChange(nameIndex, before, record);
    if (before !== none) this.store.release(before);
  }

  // ---- the digest tree -------------------------------------------------------------------

  root(): readonly [number, number] {
    return [this.rootHigh, this.rootLow];
  }

  /** The digest of subtree `node` at `depth` (one of `depths`). */
  digest(depth: number, node: number): readonly [number, number] {
    const level = this.levels[this.depthIndex(depth)] as Uint32Array;
    return [level[node * 2] as number, level[node * 2 + 1] as number];
  }

  depthIndex(depth: number): number {
    const i = this.depthIndices[depth] ?? -1;
    assert(i >= 0, `cache: ${depth} is not a tree depth`);
    return i;
  }

  /** The depth before `depth` in a descent: 0 (the root) for the first. */
  parentDepth(depth: number): number {
    const i = this.depthIndex(depth);
    return i === 0 ? 0 : (this.depths[i - 1] as number);
  }

  /** The depth after `depth` in a descent, or null at the leaves. */
  nextDepth(depth: number): number | null {
    const i = this.depths.indexOf(depth);
    return i < 0 || i === this.depths.length - 1 ? null : (this.depths[i + 1] as number);
  }

  /** Calls `visit(nameIndex, record)` for this replica's entries in one leaf. */
  forEachInLeaf(leaf: number, visit: (nameIndex: number, record: number) => void): void {
    const names = this.store.names;
    for (let index = names.firstInLeaf(leaf); index !== none; index = names.nextInLeaf(index)) {
      const record = this.recordAt(index);
      if (record !== none) visit(index, record);
    }
  }

  /** How many entries this replica holds under subtree `node` of the first depth. */
  firstCount(node: number): number {
    return this.firstCounts[node] as number;
  }

  /**
   * Calls `visit` for every entry under subtree `node` at `depth`, from leaf `startLeaf` of the
   * subtree on, wrapping around; stops when it returns false.
   */
  forEachInSubtree(depth: number, node: number, visit: (nameIndex: number, record: number) => boolean, startLeaf = 0): void {
    const span = this.leafBits - depth;
    const leaves = 1 << span;
    const first = node << span;
    const names = this.store.names;
    for (let i = 0; i < leaves; i++) {
      const leaf = first + ((startLeaf + i) % leaves);
      for (let index = names.firstInLeaf(leaf); index !== none; index = names.nextInLeaf(index)) {
        const record = this.recordAt(index);
        if (record !== none && !visit(index, record)) return;
      }
    }
  }

  /** Heap bytes this replica adds to its store: its slots and its digest tree. */
  bytes(): number {
    return this.slots.byteLength + this.levels.reduce((sum, level) => sum + level.byteLength, 0);
  }
}

/**
 * A report comes from the node's own replicas, so a bad one is a bug there, and it must not
 * reach the cache: every peer would refuse the messages that carried it.
 */
export function assertReport(report: CellReport): void {
  assert(isCellName(report.cell), "report: the cell name is not 1 to 256 bytes of well-formed UTF-8");
  assert(isIncarnation(report.incarnation), "report: the incarnation is not 16 lowercase hex digits");
  assert(report.members.length >= 1 && report.members.length <= discoveryLimits.membersMax, "report: member count out of range");
  assert(report.members.every(isIdentity) && new Set(report.members).size === report.members.length, "report: members must be distinct identities");
  assert(report.leader === null || isIdentity(report.leader), "report: the leader is not an identity");
  for (const n of [report.version, report.appliedSlot, report.ballot]) assert(Number.isSafeInteger(n) && n >= 0, "report: slots and ballots are non-negative integers");
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((member, i) => member === b[i]);
}

function compareBallots(a: CellEntry, b: CellEntry): number {
  if (a.ballot !== b.ballot) return a.ballot - b.ballot;
  if (a.leader === b.leader) return 0;
  if (a.leader === null) return -1;
  if (b.leader === null) return 1;
  return a.leader < b.leader ? -1 : 1;
}
