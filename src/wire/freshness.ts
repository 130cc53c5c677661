// Freshness under the MAC: every frame carries its sender's epoch (chosen when the sender
// starts, higher after a restart) and a counter that grows by one per frame. A receiver's
// ReplayGuard remembers, per sender, the latest epoch and a sliding window of the counters
// seen in it, and refuses a frame it has seen, one from an older epoch, or one too old for
// the window. Frames reordered within the window are accepted.
//
// What it covers: a captured frame re-sent to the same receiver while that receiver runs
// and remembers the sender. What it does not: a receiver that restarted (its memory is
// gone, so frames captured before can be replayed once each); a client evicted from the
// bounded table (its old frames are accepted once again); a frame sent to another receiver
// (the receiver id is under the MAC, so it cannot be redirected, but each receiver guards
// only itself). Safety never depends on it: Paxos tolerates duplicates, and the cell's
// sessions answer a retried command without applying it twice.

export interface Stamp {
  readonly epoch: number;
  readonly counter: number;
}

let lastEpoch = 0;

/**
 * A new sender's epoch: wall-clock milliseconds, and above every epoch this process chose
 * before, so two senders started in the same millisecond still differ. A sender restarted
 * on a clock set back by more than its downtime would have its frames refused until its
 * receivers restart (see docs/security.md).
 */
export function freshEpoch(): number {
  lastEpoch = Math.max(Date.now(), lastEpoch + 1);
  return lastEpoch;
}

/** Hands out the stamps of one sender's frames. */
export class Stamper {
  private counter = 0;

  constructor(readonly epoch: number) {}

  next(): Stamp {
    return { epoch: this.epoch, counter: ++this.counter };
  }
}

export type ReplayVerdict = "fresh" | "duplicate" | "tooOld" | "staleEpoch";

interface Window {
  epoch: number;
  top: number;
  readonly seen: Uint32Array;
}

export interface ReplayGuardOptions {
  /** Counters remembered per sender: reordering within this many frames is accepted. */
  readonly windowFrames?: number;
  /** Unpinned senders (clients) remembered at once; the least recently heard is forgotten first. */
  readonly unpinnedMax?: number;
}

export const replayWindowFramesDefault = 1024;
export const replayUnpinnedMaxDefault = 10_000;

export class ReplayGuard {
  private readonly pinned = new Map<string, Window>();
  private readonly unpinned = new Map<string, Window>();
  private readonly windowFrames: number;
  private readonly unpinnedMax: number;

  constructor(options: ReplayGuardOptions = {}) {
    this.windowFrames = options.windowFrames ?? replayWindowFramesDefault;
    this.unpinnedMax = options.unpinnedMax ?? replayUnpinnedMaxDefault;
    if (!Number.isInteger(this.windowFrames) || this.windowFrames < 32 || this.windowFrames % 32 !== 0) {
      throw new RangeError(`a replay window is a positive multiple of 32 frames, not ${this.windowFrames}`);
    }
    if (!Number.isInteger(this.unpinnedMax) || this.unpinnedMax < 1) throw new RangeError("the replay guard must remember at least one client");
  }

  /**
   * Checks one authenticated frame's stamp and, when fresh, remembers it. `pinned` senders
   * (the topology's nodes, a bounded set) are never forgotten; others live in a bounded LRU.
   */
  admit(sender: string, stamp: Stamp, pinned: boolean): ReplayVerdict {
    const table = pinned ? this.pinned : this.unpinned;
    let window = table.get(sender);
    if (window === undefined) {
      window = { epoch: stamp.epoch, top: stamp.counter, seen: new Uint32Array(this.windowFrames / 32) };
      this.mark(window, stamp.counter);
      table.set(sender, window);
      if (!pinned && table.size > this.unpinnedMax) table.delete(table.keys().next().value as string);
      return "fresh";
    }
    if (!pinned) {
      // Most recently heard last, so eviction takes the client silent the longest.
      table.delete(sender);
      table.set(sender, window);
    }
    if (stamp.epoch < window.epoch) return "staleEpoch";
    if (stamp.epoch > window.epoch) {
      window.epoch = stamp.epoch;
      window.top = stamp.counter;
      window.seen.fill(0);
      this.mark(window, stamp.counter);
      return "fresh";
    }
    const counter = stamp.counter;
    if (counter > window.top) {
      if (counter - window.top >= this.windowFrames) window.seen.fill(0);
      else for (let c = window.top + 1; c < counter; c++) this.clear(window, c);
      window.top = counter;
      this.mark(window, counter);
      return "fresh";
    }
    if (window.top - counter >= this.windowFrames) return "tooOld";
    if (this.isMarked(window, counter)) return "duplicate";
    this.mark(window, counter);
    return "fresh";
  }

  /** Senders remembered: pinned and unpinned. */
  get size(): { readonly pinned: number; readonly unpinned: number } {
    return { pinned: this.pinned.size, unpinned: this.unpinned.size };
  }

  private mark(window: Window, counter: number): void {
    const bit = counter % this.windowFrames;
    window.seen[bit >>> 5] = (window.seen[bit >>> 5] as number) | (1 << (bit & 31));
  }

  private clear(window: Window, counter: number): void {
    const bit = counter % this.windowFrames;
    window.seen[bit >>> 5] = (window.seen[bit >>> 5] as number) & ~(1 << (bit & 31));
  }

  private isMarked(window: Window, counter: number): boolean {
    const bit = counter % this.windowFrames;
    return ((window.seen[bit >>> 5] as number) & (1 << (bit & 31))) !== 0;
  }
}
