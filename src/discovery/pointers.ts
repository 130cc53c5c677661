// Forwarding pointers: when a node leaves a cell it keeps, for `lifetimeMs`, the last entry it
// knew, with every member of it. A client that still holds the old membership and reaches
// any of the old members is told where the cell went (`moved`), even when the discovery
// cache cannot be reached. Pointers are bounded twice: each lives `lifetimeMs`, and at most
// `countMax` are kept (a full table forgets its oldest). Insertion order is expiry order, so
// a Map is the whole queue and sweeping costs only the pointers it removes. The entries are
// records of the node's EntryStore, so a pointer costs a record and a Map slot.

import { assert } from "../core/assert.ts";
import { type CellEntry, canonicalEntry } from "./entry.ts";
import { discoveryLimits } from "./limits.ts";
import { EntryStore } from "./store.ts";

export interface ForwardingPointer {
  /** What the node knew when it left: the cell's incarnation, membership and version. */
  readonly entry: CellEntry;
  readonly leftMs: number;
  readonly expiresMs: number;
}

export interface PointerOptions {
  readonly lifetimeMs?: number;
  readonly countMax?: number;
  /** The store to keep the entries in (the node's cache's); a new one by default. */
  readonly store?: EntryStore;
}

interface Held {
  readonly record: number;
  readonly leftMs: number;
}

export class ForwardingPointers {
  readonly lifetimeMs: number;
  readonly countMax: number;
  readonly store: EntryStore;
  /** Name index -> pointer, oldest first. */
  private readonly pointers = new Map<number, Held>();
  private evictedCount = 0;

  constructor(options: PointerOptions = {}) {
    this.lifetimeMs = options.lifetimeMs ?? discoveryLimits.pointerLifetimeMsDefault;
    this.countMax = options.countMax ?? discoveryLimits.pointersMaxDefault;
    this.store = options.store ?? new EntryStore();
    assert(this.lifetimeMs > 0 && this.countMax > 0, "pointers: lifetime and count must be positive");
  }

  get size(): number {
    return this.pointers.size;
  }

  /** Pointers forgotten early because the table was full. */
  get evicted(): number {
    return this.evictedCount;
  }

  /**
   * Records that this node left `entry.cell`, replacing any older pointer for the cell.
   * Returns false when the store cannot hold the entry (its identity table is full).
   */
  add(entry: CellEntry, nowMs: number): boolean {
    this.delete(entry.cell);
    if (this.pointers.size >= this.countMax) {
      const oldest = this.pointers.keys().next();
      if (oldest.done !== true) {
        this.drop(oldest.value);
        this.evictedCount++;
      }
    }
    const names = this.store.names;
    const nameIndex = names.acquire(entry.cell);
    const record = this.store.acquire(canonicalEntry(entry), nameIndex);
    names.release(nameIndex);
    if (typeof record === "string") return false;
    this.pointers.set(nameIndex, { record, leftMs: nowMs });
    return true;
  }

  get(cell: string, nowMs: number): ForwardingPointer | null {
    const nameIndex = this.store.names.find(cell);
    const held = nameIndex < 0 ? undefined : this.pointers.get(nameIndex);
    if (held === undefined || held.leftMs + this.lifetimeMs <= nowMs) return null;
    return { entry: this.store.entry(held.record), leftMs: held.leftMs, expiresMs: held.leftMs + this.lifetimeMs };
  }

  /** The node hosts the cell again: its pointer would send clients away. */
  delete(cell: string): boolean {
    const nameIndex = this.store.names.find(cell);
    if (nameIndex < 0 || !this.pointers.has(nameIndex)) return false;
    this.drop(nameIndex);
    return true;
  }

  private drop(nameIndex: number): void {
    const held = this.pointers.get(nameIndex) as Held;
    this.pointers.delete(nameIndex);
    // The record holds the name: release it last.
    this.store.release(held.record);
  }

  /** Removes expired pointers, oldest first; costs only what it removes. */
  sweep(nowMs: number): number {
    let removed = 0;
    for (const [nameIndex, held] of this.pointers) {
      if (held.leftMs + this.lifetimeMs > nowMs) break;
      this.drop(nameIndex);
      removed++;
    }
    return removed;
  }
}
