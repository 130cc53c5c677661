// A simulated node: a clock that may be offset and drift, a disk on which a crash loses
// whatever was not yet synced, and the replicas it hosts.

import type { CellRecord, DurableRecord } from "../core/effects.ts";
import type { AppliedEntry, ChosenAtBallot, Outgoing } from "../core/effects.ts";
import type { Mutation } from "../core/mutations.ts";
import { type Genesis, Replica, type ReplicaEnv } from "../core/replica.ts";

/** How every replica of a run is built, besides its cell and genesis. */
export interface ReplicaSettings {
  readonly tailEntriesMax: number;
  readonly mutations: readonly Mutation[];
}

export interface HeldMessage {
  readonly message: Outgoing;
  /** The number of disk records that must be durable before this message may leave. */
  readonly requires: number;
}

export class SimDisk {
  readonly records: CellRecord[] = [];
  synced = 0;
  syncing = false;

  append(record: CellRecord): void {
    this.records.push(record);
  }

  /** A crash: unsynced records are gone (a torn last record is detected and dropped the same way). */
  crash(): number {
    const lost = this.records.length - this.synced;
    this.records.length = this.synced;
    this.syncing = false;
    return lost;
  }

  recordsOf(cell: string): DurableRecord[] {
    const out: DurableRecord[] = [];
    for (const r of this.records) if (r.cell === cell) out.push(r.record);
    return out;
  }
}

export class SimNode {
  up = true;
  /** Bumped by every crash, so events scheduled before it are recognised as stale. */
  epoch = 0;
  readonly disk = new SimDisk();
  readonly replicas = new Map<string, Replica>();
  /** Cells this node hosts: their genesis, or null for a replica that joined later. */
  readonly hosted = new Map<string, Genesis | null>();
  readonly outbox: HeldMessage[] = [];
  /** Entries applied in memory whose records are not durable yet. */
  readonly appliedPending: { readonly entry: AppliedEntry; readonly requires: number }[] = [];
  /** Values this node's leaders saw chosen, whose own votes are not durable yet. */
  readonly chosenPending: { readonly chosen: ChosenAtBallot; readonly requires: number }[] = [];
  /** Votes this node made durable, by "cell#slot": every ballot it voted at (a later vote does not undo an earlier one). */
  readonly durableVotes = new Map<string, Set<string>>();
  /** When each replica's next tick is scheduled (global time), to avoid duplicates. */
  readonly tickAt = new Map<string, number>();

  /** The data directory's incarnation: a wipe gives the node a new one, and so a new identity. */
  private incarnation: string;

  constructor(
    readonly id: string,
    readonly clockOffsetMs: number,
    readonly clockDrift: number,
    private readonly settings: ReplicaSettings,
    incarnation: string,
  ) {
    this.incarnation = incarnation;
  }

  /** What its replicas vote as: `id~incarnation`. */
  get identity(): string {
    return `${this.id}~${this.incarnation}`;
  }

  localTime(globalMs: number): number {
    return this.clockOffsetMs + globalMs * (1 + this.clockDrift);
  }

  globalTime(localMs: number): number {
    return (localMs - this.clockOffsetMs) / (1 + this.clockDrift);
  }

  host(cell: string, genesis: Genesis | null, env: ReplicaEnv): Replica {
    this.hosted.set(cell, genesis);
    const base = { cell, self: this.identity, env, tailEntriesMax: this.settings.tailEntriesMax, mutations: this.settings.mutations };
    const options = genesis === null ? base : { ...base, genesis };
    const replica = Replica.recover(options, this.disk.recordsOf(cell));
    this.replicas.set(cell, replica);
    return replica;
  }

  /**
   * Rewrites the disk as every replica's minimal records, as the node's log compaction does.
   * Only a fully synced disk is compacted, so the swap is as atomic as the real one (whose
   * crash safety at every step the storage tests show).
   */
  compact(): boolean {
    const disk = this.disk;
    if (!this.up || disk.syncing || disk.synced !== disk.records.length) return false;
    const records: CellRecord[] = [];
    for (const [cell, replica] of this.replicas) for (const record of replica.compactedRecords()) records.push({ cell, record });
    disk.records.length = 0;
    disk.records.push(...records);
    disk.synced = records.length;
    return true;
  }

  crash(): number {
    this.up = false;
    this.epoch++;
    this.replicas.clear();
    this.outbox.length = 0;
    this.appliedPending.length = 0;
    this.chosenPending.length = 0;
    this.tickAt.clear();
    return this.disk.crash();
  }

  /** The disk is lost (replaced): nothing of it survives, and the node comes back as a stranger. */
  wipe(incarnation: string): void {
    if (this.up) this.crash();
    this.disk.records.length = 0;
    this.disk.synced = 0;
    this.hosted.clear();
    this.durableVotes.clear();
    this.incarnation = incarnation;
  }

  restart(env: ReplicaEnv): void {
    this.up = true;
    for (const [cell, genesis] of this.hosted) this.host(cell, genesis, env);
  }
}
