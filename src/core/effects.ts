// What a replica asks its driver to do. The driver's contract, as in etcd-raft:
// 1. make every record in `records` durable, in order;
// 2. send each message of `messages` marked `afterSync` only once every record appended
//    before it is durable (a promise or an acknowledgement stands for a record); send the
//    others at once: they depend on no record of this node (an accept, a commit, a teach,
//    an answer to a client about a chosen slot), so the node's fsync and its peers' run side
//    by side, and a leader's reply does not wait for its own log;
// 3. a message addressed to the replica itself (a leader's acknowledgement of its own vote,
//    always `afterSync`) goes back to it, through `step`, once durable: that is when its vote
//    counts;
// 4. `applied` and `chosen` are for observers (the simworld's invariant checks, metrics):
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
  /** Whether it must wait until every record appended so far is durable. */
  readonly afterSync: boolean;
}

/** The messages that stand for a record of their sender's and so leave only once it is durable. */
export function needsSync(message: CellMessage): boolean {
  return message.kind === "promise" || message.kind === "accepted";
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
  /** The acknowledgements that made the quorum: each must stand for a durable vote. */
  readonly voters: readonly string[];
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
