// What the node needs from its log (src/storage provides the file-backed one).

import type { CellRecord } from "../core/effects.ts";

export interface NodeLog {
  /** Adds records after everything appended before; they are not durable yet. */
  append(records: readonly CellRecord[]): void;
  /** Resolves when everything appended so far is durable; rejects (for good) if it cannot be. */
  sync(): Promise<void>;
  close(): Promise<void> | void;
}

/** A log in memory, for tests: durable at sync, with the synced records kept for inspection. */
export class MemoryLog implements NodeLog {
  readonly synced: CellRecord[] = [];
  private readonly buffered: CellRecord[] = [];
  syncs = 0;

  append(records: readonly CellRecord[]): void {
    this.buffered.push(...records);
  }

  async sync(): Promise<void> {
    this.syncs++;
    this.synced.push(...this.buffered.splice(0));
  }

  close(): void {}
}
