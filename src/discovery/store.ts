// The compact representation behind every replica of the discovery cache. A million entries
// held as JavaScript objects cost about 1.1 KB each (bench/results/discovery.json), so the
// store keeps them in typed arrays instead:
//
//   Names       cell names as UTF-8 in one byte arena, found through an open-addressing hash
//               table, each with its 64-bit hash and a place in a per-leaf list (the digest
//               tree's leaves are ranges of that hash)
//   Identities  node identities interned once, with their hashes; members are 16-bit indices
//   Records     entries in struct-of-arrays form, hash-consed: equal entries share one record
//
// A replica (cache.ts) is then one 32-bit record index per name. Several replicas may share
// one store: the simulation runs a thousand replicas of a hundred thousand cells in one
// process this way, and a node holds one. Everything is reference counted, so a name, an
// identity or a record disappears when no replica holds it.

import { assert } from "../core/assert.ts";
import { type CellEntry, compareMembers, hashEntryParts, incarnationWords } from "./entry.ts";
import { murmur32, seedHigh, seedLow, stringHash64, utf8Encode } from "./hash.ts";
import { discoveryLimits } from "./limits.ts";

const decoder = new TextDecoder();
const none = -1;

function grownInt32(array: Int32Array, size: number, fill: number): Int32Array<ArrayBuffer> {
  const next = new Int32Array(size).fill(fill);
  next.set(array);
  return next;
}

function grown<T extends Uint8Array | Uint16Array | Uint32Array | Float64Array>(array: T, size: number): T {
  const next = new (array.constructor as new (n: number) => T)(size);
  next.set(array);
  return next;
}

function bytesEqualAt(arena: Uint8Array, offset: number, bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (arena[offset + i] !== bytes[i]) return false;
  return true;
}

/** Cell names, interned in a byte arena and listed per digest-tree leaf. */
export class Names {
  readonly leafBits: number;
  private arena = new Uint8Array(1 << 16);
  private arenaUsed = 0;
  private arenaGarbage = 0;
  private offset = new Int32Array(1024);
  private length = new Uint16Array(1024);
  private hashHigh = new Uint32Array(1024);
  private hashLow = new Uint32Array(1024);
  private refs = new Uint32Array(1024);
  private next = new Int32Array(1024).fill(none);
  private prev = new Int32Array(1024).fill(none);
  private readonly leafHead: Int32Array;
  private table = new Int32Array(2048).fill(none);
  private free: number[] = [];
  private used = 0;
  private live = 0;

  constructor(leafBits: number) {
    assert(Number.isInteger(leafBits) && leafBits >= discoveryLimits.leafBitsMin && leafBits <= discoveryLimits.leafBitsMax, "names: leaf bits out of range");
    this.leafBits = leafBits;
    this.leafHead = new Int32Array(1 << leafBits).fill(none);
  }

  /** How many indices exist (live or free): replicas size their slot arrays by this. */
  get capacity(): number {
    return this.used;
  }

  get size(): number {
    return this.live;
  }

  /** The index of a name, or -1 when no replica holds it. Does not take a reference. */
  find(name: string): number {
    const bytes = utf8Encode(name);
    return this.findBytes(bytes, murmur32Pair(bytes));
  }

  private findBytes(bytes: Uint8Array, hash: readonly [number, number]): number {
    const mask = this.table.length - 1;
    for (let slot = hash[1] & mask; ; slot = (slot + 1) & mask) {
      const index = this.table[slot] as number;
      if (index === none) return none;
      if (this.hashLow[index] === hash[1] && this.hashHigh[index] === hash[0] && this.length[index] === bytes.length && bytesEqualAt(this.arena, this.offset[index] as number, bytes)) return index;
    }
  }

  /** The index of a name, creating it if needed, with one more reference taken. */
  acquire(name: string): number {
    const bytes = utf8Encode(name);
    const hash = murmur32Pair(bytes);
    let index = this.findBytes(bytes, hash);
    if (index === none) index = this.insert(bytes, hash);
    this.refs[index] = (this.refs[index] as number) + 1;
    return index;
  }

  retain(index: number): void {
    assert((this.refs[index] as number) > 0, "names: retain of a dead name");
    this.refs[index] = (this.refs[index] as number) + 1;
  }

  release(index: number): void {
    const refs = this.refs[index] as number;
    assert(refs > 0, "names: release of a dead name");
    this.refs[index] = refs - 1;
    if (refs === 1) this.remove(index);
  }

  name(index: number): string {
    const start = this.offset[index] as number;
    return decoder.decode(this.arena.subarray(start, start + (this.length[index] as number)));
  }

  hash(index: number): readonly [number, number] {
    return [this.hashHigh[index] as number, this.hashLow[index] as number];
  }

  /** The 32-bit hash that places a name in the tree: its high word. */
  placeHash(index: number): number {
    return this.hashHigh[index] as number;
  }

  leafOf(index: number): number {
    return (this.hashHigh[index] as number) >>> (32 - this.leafBits);
  }

  /** The first name of a leaf, then `nextInLeaf` until -1. */
  firstInLeaf(leaf: number): number {
    return this.leafHead[leaf] as number;
  }

  nextInLeaf(index: number): number {
    return this.next[index] as number;
  }

  isLive(index: number): boolean {
    return index >= 0 && index < this.used && this.offset[index] !== none;
  }

  private insert(bytes: Uint8Array, hash: readonly [number, number]): number {
    let index = this.free.pop();
    if (index === undefined) {
      index = this.used++;
      if (index >= this.offset.length) this.grow(this.offset.length * 2);
    }
    if (this.arenaUsed + bytes.length > this.arena.length) this.makeRoom(bytes.length);
    this.arena.set(bytes, this.arenaUsed);
    this.offset[index] = this.arenaUsed;
    this.arenaUsed += bytes.length;
    this.length[index] = bytes.length;
    this.hashHigh[index] = hash[0];
    this.hashLow[index] = hash[1];
    this.refs[index] = 0;
    const leaf = hash[0] >>> (32 - this.leafBits);
    const head = this.leafHead[leaf] as number;
    this.next[index] = head;
    this.prev[index] = none;
    if (head !== none) this.prev[head] = index;
    this.leafHead[leaf] = index;
    this.live++;
    if (this.live * 2 > this.table.length) this.rehash(this.table.length * 2);
    else this.place(index);
    return index;
  }

  private place(index: number): void {
    const mask = this.table.length - 1;
    let slot = (this.hashLow[index] as number) & mask;
    while (this.table[slot] !== none) slot = (slot + 1) & mask;
    this.table[slot] = index;
  }

  private rehash(size: number): void {
    this.table = new Int32Array(size).fill(none);
    // Every name with bytes is live, including one inserted a moment ago whose caller has
    // not taken its reference yet.
    for (let index = 0; index < this.used; index++) if (this.offset[index] !== none) this.place(index);
  }

  private remove(index: number): void {
    // Backward-shift deletion keeps linear probing correct without tombstones.
    const mask = this.table.length - 1;
    let slot = (this.hashLow[index] as number) & mask;
    while (this.table[slot] !== index) slot = (slot + 1) & mask;
    let hole = slot;
    for (let probe = (hole + 1) & mask; this.table[probe] !== none; probe = (probe + 1) & mask) {
      const other = this.table[probe] as number;
      const home = (this.hashLow[other] as number) & mask;
      // `other` may move into the hole when the hole lies on its probe path from `home`.
      const distanceHole = (hole - home) & mask;
      const distanceProbe = (probe - home) & mask;
      if (distanceHole < distanceProbe) {
        this.table[hole] = other;
        hole = probe;
      }
    }
    this.table[hole] = none;
    const leaf = (this.hashHigh[index] as number) >>> (32 - this.leafBits);
    const before = this.prev[index] as number;
    const after = this.next[index] as number;
    if (before === none) this.leafHead[leaf] = after;
    else this.next[before] = after;
    if (after !== none) this.prev[after] = before;
    this.arenaGarbage += this.length[index] as number;
    this.offset[index] = none;
    this.length[index] = 0;
    this.free.push(index);
    this.live--;
  }

  private makeRoom(bytes: number): void {
    if (this.arenaGarbage * 2 > this.arenaUsed) this.compactArena();
    if (this.arenaUsed + bytes <= this.arena.length) return;
    let size = this.arena.length * 2;
    while (size < this.arenaUsed + bytes) size *= 2;
    this.arena = grown(this.arena, size);
  }

  private compactArena(): void {
    const next = new Uint8Array(this.arena.length);
    let used = 0;
    for (let index = 0; index < this.used; index++) {
      const start = this.offset[index] as number;
      if (start === none) continue;
      const len = this.length[index] as number;
      next.set(this.arena.subarray(start, start + len), used);
      this.offset[index] = used;
      used += len;
    }
    this.arena = next;
    this.arenaUsed = used;
    this.arenaGarbage = 0;
  }

  private grow(size: number): void {
    this.offset = grownInt32(this.offset, size, none);
    this.length = grown(this.length, size);
    this.hashHigh = grown(this.hashHigh, size);
    this.hashLow = grown(this.hashLow, size);
    this.refs = grown(this.refs, size);
    this.next = grownInt32(this.next, size, none);
    this.prev = grownInt32(this.prev, size, none);
  }

  /** Heap bytes of the typed arrays, for the memory figures. */
  bytes(): number {
    return this.arena.byteLength + this.offset.byteLength + this.length.byteLength + this.hashHigh.byteLength * 2 + this.refs.byteLength + this.next.byteLength * 2 + this.leafHead.byteLength + this.table.byteLength + this.free.length * 8;
  }
}

function murmur32Pair(bytes: Uint8Array): readonly [number, number] {
  return [murmur32(bytes, seedHigh), murmur32(bytes, seedLow)];
}

/** The hash of a cell name, as the protocol defines it (the same as Names stores). */
export function nameHash(name: string): readonly [number, number] {
  return stringHash64(name);
}

/** Node identities, interned once each. Index 0xffff means "none" (no leader). */
export class Identities {
  static readonly none = 0xffff;
  private text: (string | null)[] = [];
  private readonly index = new Map<string, number>();
  private hashHigh = new Uint32Array(256);
  private hashLow = new Uint32Array(256);
  private refs = new Uint32Array(256);
  private free: number[] = [];

  get size(): number {
    return this.index.size;
  }

  find(identity: string): number {
    return this.index.get(identity) ?? none;
  }

  /** The identity's index with one more reference, or -1 when the table is full. */
  acquire(identity: string): number {
    let at = this.index.get(identity);
    if (at === undefined) {
      at = this.free.pop();
      if (at === undefined) {
        if (this.text.length >= discoveryLimits.identitiesMax) return none;
        at = this.text.length;
        this.text.push(null);
        if (at >= this.refs.length) {
          this.refs = grown(this.refs, this.refs.length * 2);
          this.hashHigh = grown(this.hashHigh, this.hashHigh.length * 2);
          this.hashLow = grown(this.hashLow, this.hashLow.length * 2);
        }
      }
      const [high, low] = stringHash64(identity);
      this.text[at] = identity;
      this.hashHigh[at] = high;
      this.hashLow[at] = low;
      this.refs[at] = 0;
      this.index.set(identity, at);
    }
    this.refs[at] = (this.refs[at] as number) + 1;
    return at;
  }

  retain(at: number): void {
    assert((this.refs[at] as number) > 0, "identities: retain of a dead identity");
    this.refs[at] = (this.refs[at] as number) + 1;
  }

  release(at: number): void {
    const refs = this.refs[at] as number;
    assert(refs > 0, "identities: release of a dead identity");
    this.refs[at] = refs - 1;
    if (refs > 1) return;
    this.index.delete(this.text[at] as string);
    this.text[at] = null;
    this.free.push(at);
  }

  textOf(at: number): string {
    const text = this.text[at];
    assert(text !== null && text !== undefined, "identities: unknown index");
    return text;
  }

  hash(at: number): readonly [number, number] {
    return [this.hashHigh[at] as number, this.hashLow[at] as number];
  }
}

/** Why the store could not hold an entry; the entry is dropped and counted. */
export type StoreRefusal = "identitiesFull";

/**
 * Entries as hash-consed records. A record holds one entry of one name; equal entries (the
 * same name and fields) share a record, whichever replica or message they came from.
 */
export class EntryStore {
  readonly names: Names;
  readonly identities = new Identities();
  private capacityRecords = 1024;
  private name = new Int32Array(1024);
  private incHigh = new Uint32Array(1024);
  private incLow = new Uint32Array(1024);
  private epoch = new Uint32Array(1024);
  private version = new Float64Array(1024);
  private ballot = new Float64Array(1024);
  private leader = new Uint16Array(1024);
  private refreshed = new Float64Array(1024);
  private memberCount = new Uint8Array(1024);
  private members = new Uint16Array(1024 * discoveryLimits.membersMax);
  private hashHigh = new Uint32Array(1024);
  private hashLow = new Uint32Array(1024);
  private refs = new Uint32Array(1024);
  private table = new Int32Array(2048).fill(none);
  private free: number[] = [];
  private used = 0;
  private live = 0;

  constructor(options: { readonly leafBits?: number } = {}) {
    this.names = new Names(options.leafBits ?? discoveryLimits.leafBitsDefault);
  }

  get records(): number {
    return this.live;
  }

  /**
   * The record of `entry` for the name at `nameIndex`, with one more reference: an existing
   * equal record or a new one. The entry must be canonical (members sorted).
   */
  acquire(entry: CellEntry, nameIndex: number): number | StoreRefusal {
    const memberIndices: number[] = [];
    for (const member of entry.members) {
      const at = this.identities.acquire(member);
      if (at === none) {
        for (const taken of memberIndices) this.identities.release(taken);
        return "identitiesFull";
      }
      memberIndices.push(at);
    }
    let leaderIndex: number = Identities.none;
    if (entry.leader !== null) {
      const at = this.identities.acquire(entry.leader);
      if (at === none) {
        for (const taken of memberIndices) this.identities.release(taken);
        return "identitiesFull";
      }
      leaderIndex = at;
    }
    const [incHigh, incLow] = incarnationWords(entry.incarnation);
    const hash = hashEntryParts({
      name: this.names.hash(nameIndex),
      incarnation: [incHigh, incLow],
      epoch: entry.epoch,
      version: entry.version,
      ballot: entry.ballot,
      leader: leaderIndex === Identities.none ? null : this.identities.hash(leaderIndex),
      refreshedMs: entry.refreshedMs,
      members: memberIndices.map((at) => this.identities.hash(at)),
    });
    const mask = this.table.length - 1;
    for (let slot = hash[1] & mask; ; slot = (slot + 1) & mask) {
      const record = this.table[slot] as number;
      if (record === none) break;
      if (this.hashLow[record] === hash[1] && this.hashHigh[record] === hash[0] && this.sameAs(record, nameIndex, entry, leaderIndex, memberIndices)) {
        // The existing record already holds these identities: give back what we took.
        for (const taken of memberIndices) this.identities.release(taken);
        if (leaderIndex !== Identities.none) this.identities.release(leaderIndex);
        this.refs[record] = (this.refs[record] as number) + 1;
        return record;
      }
    }
    let record = this.free.pop();
    if (record === undefined) {
      record = this.used++;
      if (record >= this.capacityRecords) this.grow(this.capacityRecords * 2);
    }
    this.names.retain(nameIndex);
    this.name[record] = nameIndex;
    this.incHigh[record] = incHigh;
    this.incLow[record] = incLow;
    this.epoch[record] = entry.epoch;
    this.version[record] = entry.version;
    this.ballot[record] = entry.ballot;
    this.leader[record] = leaderIndex;
    this.refreshed[record] = entry.refreshedMs;
    this.memberCount[record] = memberIndices.length;
    const base = record * discoveryLimits.membersMax;
    for (let i = 0; i < memberIndices.length; i++) this.members[base + i] = memberIndices[i] as number;
    this.hashHigh[record] = hash[0];
    this.hashLow[record] = hash[1];
    this.refs[record] = 1;
    this.live++;
    if (this.live * 2 > this.table.length) this.rehash(this.table.length * 2);
    else this.place(record);
    return record;
  }

  retain(record: number): void {
    assert((this.refs[record] as number) > 0, "store: retain of a dead record");
    this.refs[record] = (this.refs[record] as number) + 1;
  }

  release(record: number): void {
    const refs = this.refs[record] as number;
    assert(refs > 0, "store: release of a dead record");
    this.refs[record] = refs - 1;
    if (refs > 1) return;
    this.unplace(record);
    const base = record * discoveryLimits.membersMax;
    for (let i = 0; i < (this.memberCount[record] as number); i++) this.identities.release(this.members[base + i] as number);
    if (this.leader[record] !== Identities.none) this.identities.release(this.leader[record] as number);
    this.names.release(this.name[record] as number);
    this.free.push(record);
    this.live--;
  }

  private sameAs(record: number, nameIndex: number, entry: CellEntry, leaderIndex: number, memberIndices: readonly number[]): boolean {
    if (this.name[record] !== nameIndex || this.epoch[record] !== entry.epoch || this.version[record] !== entry.version) return false;
    if (this.ballot[record] !== entry.ballot || this.leader[record] !== leaderIndex || this.refreshed[record] !== entry.refreshedMs) return false;
    const [incHigh, incLow] = incarnationWords(entry.incarnation);
    if (this.incHigh[record] !== incHigh || this.incLow[record] !== incLow) return false;
    if (this.memberCount[record] !== memberIndices.length) return false;
    const base = record * discoveryLimits.membersMax;
    for (let i = 0; i < memberIndices.length; i++) if (this.members[base + i] !== memberIndices[i]) return false;
    return true;
  }

  private place(record: number): void {
    const mask = this.table.length - 1;
    let slot = (this.hashLow[record] as number) & mask;
    while (this.table[slot] !== none) slot = (slot + 1) & mask;
    this.table[slot] = record;
  }

  private unplace(record: number): void {
    const mask = this.table.length - 1;
    let slot = (this.hashLow[record] as number) & mask;
    while (this.table[slot] !== record) slot = (slot + 1) & mask;
    let hole = slot;
    for (let probe = (hole + 1) & mask; this.table[probe] !== none; probe = (probe + 1) & mask) {
      const other = this.table[probe] as number;
      const home = (this.hashLow[other] as number) & mask;
      if (((hole - home) & mask) < ((probe - home) & mask)) {
        this.table[hole] = other;
        hole = probe;
      }
    }
    this.table[hole] = none;
  }

  private rehash(size: number): void {
    this.table = new Int32Array(size).fill(none);
    for (let record = 0; record < this.used; record++) if ((this.refs[record] as number) > 0) this.place(record);
  }

  private grow(size: number): void {
    this.capacityRecords = size;
    this.name = grownInt32(this.name, size, none);
    this.incHigh = grown(this.incHigh, size);
    this.incLow = grown(this.incLow, size);
    this.epoch = grown(this.epoch, size);
    this.version = grown(this.version, size);
    this.ballot = grown(this.ballot, size);
    this.leader = grown(this.leader, size);
    this.refreshed = grown(this.refreshed, size);
    this.memberCount = grown(this.memberCount, size);
    this.members = grown(this.members, size * discoveryLimits.membersMax);
    this.hashHigh = grown(this.hashHigh, size);
    this.hashLow = grown(this.hashLow, size);
    this.refs = grown(this.refs, size);
  }

  // ---- reading records -----------------------------------------------------------------

  nameOf(record: number): number {
    return this.name[record] as number;
  }

  hashHighOf(record: number): number {
    return this.hashHigh[record] as number;
  }

  hashLowOf(record: number): number {
    return this.hashLow[record] as number;
  }

  versionOf(record: number): number {
    return this.version[record] as number;
  }

  ballotOf(record: number): number {
    return this.ballot[record] as number;
  }

  refreshedOf(record: number): number {
    return this.refreshed[record] as number;
  }

  /** The record as a plain entry (allocates; for answers, audits and messages). */
  entry(record: number): CellEntry {
    const base = record * discoveryLimits.membersMax;
    const members: string[] = [];
    for (let i = 0; i < (this.memberCount[record] as number); i++) members.push(this.identities.textOf(this.members[base + i] as number));
    const leader = this.leader[record] as number;
    return {
      cell: this.names.name(this.name[record] as number),
      incarnation: hex8(this.incHigh[record] as number) + hex8(this.incLow[record] as number),
      epoch: this.epoch[record] as number,
      version: this.version[record] as number,
      ballot: this.ballot[record] as number,
      leader: leader === Identities.none ? null : this.identities.textOf(leader),
      refreshedMs: this.refreshed[record] as number,
      members,
    };
  }

  /** The entry order (entry.ts) between a record and an entry of the same name, without interning. */
  compareTo(record: number, entry: CellEntry): number {
    const [incHigh, incLow] = incarnationWords(entry.incarnation);
    const high = this.incHigh[record] as number;
    if (high !== incHigh) return high - incHigh;
    const low = this.incLow[record] as number;
    if (low !== incLow) return low - incLow;
    if (this.epoch[record] !== entry.epoch) return (this.epoch[record] as number) - entry.epoch;
    if (this.version[record] !== entry.version) return (this.version[record] as number) - entry.version;
    if (this.ballot[record] !== entry.ballot) return (this.ballot[record] as number) - entry.ballot;
    const leader = this.leader[record] as number;
    const leaderText = leader === Identities.none ? null : this.identities.textOf(leader);
    if (leaderText !== entry.leader) {
      if (leaderText === null) return -1;
      if (entry.leader === null) return 1;
      return leaderText < entry.leader ? -1 : 1;
    }
    if (this.refreshed[record] !== entry.refreshedMs) return (this.refreshed[record] as number) - entry.refreshedMs;
    const base = record * discoveryLimits.membersMax;
    const members: string[] = [];
    for (let i = 0; i < (this.memberCount[record] as number); i++) members.push(this.identities.textOf(this.members[base + i] as number));
    return compareMembers(members, entry.members);
  }

  /** The entry order between two records of the same name. */
  compareRecords(a: number, b: number): number {
    if (a === b) return 0;
    return this.compareTo(a, this.entry(b));
  }

  /** Heap bytes of the typed arrays and tables, for the memory figures. */
  bytes(): number {
    const perRecord = 4 + 4 + 4 + 4 + 8 + 8 + 2 + 8 + 1 + 2 * discoveryLimits.membersMax + 4 + 4 + 4;
    return this.capacityRecords * perRecord + this.table.byteLength + this.names.bytes();
  }
}

function hex8(word: number): string {
  return word.toString(16).padStart(8, "0");
}
