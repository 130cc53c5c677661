// One client's call of one transaction on one cell, as the checker sees it: when it was
// invoked, and either the result the client received and when, or nothing at all because
// the client timed out, gave up, or was still waiting when the history was taken.

import type { TxResult } from "../core/kv.ts";
import type { Transaction } from "../core/transaction.ts";

/** Names an operation within one recorder. Ids increase with every invocation. */
export type OpId = number;

interface OperationBase {
  readonly id: OpId;
  readonly cell: string;
  readonly client: string;
  readonly tx: Transaction;
  /** When the client sent it: the transaction cannot have taken effect before this. */
  readonly invokedAt: number;
}

/** The client received `result`: the transaction took effect, or failed, exactly once in [invokedAt, respondedAt]. */
export interface CompletedOperation extends OperationBase {
  readonly outcome: "completed";
  readonly result: TxResult;
  readonly respondedAt: number;
}

/**
 * The client has no answer: the transaction may have taken effect at any time after
 * `invokedAt`, however late, or never. Its response time is in effect +infinity and its
 * result is unconstrained.
 */
export interface UnknownOperation extends OperationBase {
  readonly outcome: "unknown";
  /** When the client gave up, or null if it was still waiting; for people only, it constrains nothing. */
  readonly gaveUpAt: number | null;
}

export type Operation = CompletedOperation | UnknownOperation;
