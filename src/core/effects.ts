// What a replica asks its driver to do. The driver's contract, as in etcd-raft:
// 1. make every record in `records` durable, in order;
// 2. only then send `messages` (a reply may depend on any record, of this or any cell);
// 3. `applied` and `chosen` are for observers (the simworld's invariant checks, metrics):
//    nothing to do.
// One Effects value is shared by many cells between two flushes, so one fsync covers them all.

import type { Ballot, CellGenesis, CellMessage, LogValue } from "./messages.ts";

export type DurableRecord =
  /** The cell's genesis: written once by the node that creates the replica. */
  | { readonly kind: "genesis"; readonly genesis: CellGenesis }
  /** This node hosts an empty replica of the cell, waiting to be added and taught. */
  | { readonly kind: "joined"; readonly incarnation: string }
  | { readonly kind: "promise"; readonly ballot: Ballot }
  | { readonly kind: "accept"; readonly slot: number; readonly ballot: Ballot; readonly value: LogValue }
  | { readonly kind: "chosen"; readonly slot: number; readonly value: LogValue }
  | { readonly kind: "snapshot"; readonly slot: number; readonly state: Uint8Array };

export interface CellRecord {
  readonly cell: string;
  readonly record: DurableRecord;
}

export interface Outgoing {
  readonly to: string;
  readonly cell: string;
  readonly message: CellMessage;
}

export interface AppliedEntry {
  readonly cell: string;
  readonly slot: number;
  readonly value: LogValue;
  /** Per command of a batch: carried out (false: a retry answered from its session, or refused for its session). */
  readonly executed: readonly boolean[];
}

/** A leader saw its own quorum accept `value` at `ballot`: the value is chosen at that ballot. */
export interface ChosenAtBallot {
  readonly cell: string;
  readonly slot: number;
  readonly ballot: Ballot;
  readonly value: LogValue;
}

export interface Effects {
  readonly records: CellRecord[];
  readonly messages: Outgoing[];
  readonly applied: AppliedEntry[];
  readonly chosen: ChosenAtBallot[];
}

export function createEffects(): Effects {
  return { records: [], messages: [], applied: [], chosen: [] };
}

export function clearEffects(effects: Effects): void {
  effects.records.length = 0;
  effects.messages.length = 0;
  effects.applied.length = 0;
  effects.chosen.length = 0;
}
