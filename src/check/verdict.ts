// What the linearizability checker concludes about one cell's history.

import type { TxResult } from "../core/kv.ts";
import type { OpId, Operation } from "./operation.ts";

export interface Linearizable {
  readonly ok: true;
  readonly cell: string;
  /** Operations in the history, including those with an unknown outcome. */
  readonly operations: number;
  /**
   * A witness: an order of operations that explains every recorded result. Operations
   * with an unknown outcome that it leaves out need not have taken effect.
   */
  readonly linearization: readonly OpId[];
  readonly statesExplored: number;
}

export interface NotLinearizable {
  readonly ok: false;
  readonly cell: string;
  /**
   * "impossibleResult": no state at all gives this result (the transaction is invalid and
   * the state machine rejects it whatever the state, with a different answer).
   * "noLinearization": every order consistent with real time was tried.
   */
  readonly reason: "impossibleResult" | "noLinearization";
  /**
   * The completed operations that cannot go next after any of the longest partial
   * linearizations the search found, in invocation order: no order of what came before
   * explains their recorded results. With concurrent operations this is the union over
   * those partial linearizations, so an offending operation may appear in `prefix`.
   */
  readonly offending: readonly Operation[];
  /** For each offending operation, in order, what the state machine answered where the search first tried it. */
  readonly expected: readonly TxResult[];
  /**
   * The minimal context: in the first longest partial linearization, the last operations
   * that committed a write to a key the offending operations read, test, write or scan.
   */
  readonly context: readonly Operation[];
  /** The first longest partial linearization, in order; empty for "impossibleResult". */
  readonly prefix: readonly OpId[];
  readonly explanation: string;
  readonly statesExplored: number;
}

/** The search gave up: the history may or may not be linearizable. */
export interface Undecided {
  readonly ok: "unknown";
  readonly cell: string;
  readonly reason: "budgetExceeded";
  readonly operations: number;
  /**
   * Completed operations that a narrower search (fewer timed-out operations tried in front
   * of each) could not place: a lead for a person, not a proof. Often empty.
   */
  readonly suspects: readonly Operation[];
  readonly statesExplored: number;
  readonly explanation: string;
}

export type Verdict = Linearizable | NotLinearizable | Undecided;
