// Forwarding pointers: when a node leaves a cell it keeps, for `lifetimeMs`, the last entry it
// knew, with every member of it. A client that still holds the old membership and reaches
// any of the old members is told where the cell went (`moved`), even when the discovery
// cache cannot be reached. Pointers are bounded twice: each lives `lifetimeMs`, and at most
// `countMax` are kept (a full table forgets its oldest). Insertion order is expiry order, so
// a Map is the whole queue and sweeping costs only the pointers it removes.

import { assert } from "../core/assert.ts";
import type { CellEntry } from "./entry.ts";
import { discoveryLimits } from "./limits.ts";

export interface ForwardingPointer {
  /** What the node knew when it left: the cell's incarnation, membership and version. */
  readonly entry: CellEntry;
  readonly leftMs: number;
  readonly expiresMs: number;
}

export interface PointerOptions {
  readonly lifetimeMs?: number;
  readonly countMax?: number;
}

export class ForwardingPointers {
  readonly lifetimeMs: number;
  readonly countMax: number;
  private readonly pointers = new Map<string, ForwardingPointer>();
  private evictedCount = 0;

  constructor(options: PointerOptions = {}) {
    this.lifetimeMs = options.lifetimeMs ?? discoveryLimits.pointerLifetimeMsDefault;
    this.countMax = options.countMax ?? discoveryLimits.pointersMaxDefault;
    assert(this.lifetimeMs > 0 && this.countMax > 0, "pointers: lifetime and count must be positive");
  }

  get size(): number {
    return this.pointers.size;
  }

  /** Pointers forgotten early because the table was full. */
  get evicted(): number {
    return this.evictedCount;
  }

  /** Records that this node left `entry.cell`, replacing any older pointer for the cell. */
  add(entry: CellEntry, nowMs: number): void {
    this.pointers.delete(entry.cell);
    if (this.pointers.size >= this.countMax) {
      const oldest = this.pointers.keys().next();
      if (oldest.done !== true) {
        this.pointers.delete(oldest.value);
        this.evictedCount++;
      }
    }
    this.pointers.set(entry.cell, { entry, leftMs: nowMs, expiresMs: nowMs + this.lifetimeMs });
  }

  get(cell: string, nowMs: number): ForwardingPointer | null {
    const pointer = this.pointers.get(cell);
    if (pointer === undefined || pointer.expiresMs <= nowMs) return null;
    return pointer;
  }

  /** The node hosts the cell again: its pointer would send clients away. */
  delete(cell: string): boolean {
    return this.pointers.delete(cell);
  }

  /** Removes expired pointers, oldest first; costs only what it removes. */
  sweep(nowMs: number): number {
    let removed = 0;
    for (const [cell, pointer] of this.pointers) {
      if (pointer.expiresMs > nowMs) break;
      this.pointers.delete(cell);
      removed++;
    }
    return removed;
  }
}
