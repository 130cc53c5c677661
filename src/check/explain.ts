// Human-readable accounts of verdicts. Transactions and results print in the JSON form the
// CLI uses (src/client/json.ts), so they can be pasted back into `physalia ctl`.

import type { TxResult } from "../core/kv.ts";
import type { Transaction } from "../core/transaction.ts";
import { resultToJson, transactionToJson } from "../client/json.ts";
import type { Operation } from "./operation.ts";

/** Lines listed per group before the rest is summarised. */
const listedOperationsMax = 12;

/** `#7 client "b" [12, 15] {"read":["x"]} -> {"status":"committed","reads":{"x":null}}` */
export function describeOperation(op: Operation): string {
  const who = `#${op.id} client ${JSON.stringify(op.client)}`;
  const tx = describeTransaction(op.tx);
  if (op.outcome === "completed") {
    return `${who} [${op.invokedAt}, ${op.respondedAt}] ${tx} -> ${describeResult(op.tx, op.result)}`;
  }
  const gaveUp = op.gaveUpAt === null ? "still pending" : `gave up at ${op.gaveUpAt}`;
  return `${who} [${op.invokedAt}, ?) ${tx} -> outcome unknown (${gaveUp})`;
}

export function describeTransaction(tx: Transaction): string {
  return safeJson(() => transactionToJson(tx));
}

export function describeResult(tx: Transaction, result: TxResult): string {
  return safeJson(() => resultToJson(tx, result));
}

export interface ViolationAccount {
  readonly cell: string;
  readonly offending: readonly Operation[];
  readonly expected: readonly TxResult[];
  readonly context: readonly Operation[];
  readonly prefixLength: number;
  readonly operations: number;
}

export function explainViolation(account: ViolationAccount): string {
  const lines = [
    `Cell ${JSON.stringify(account.cell)} is not linearizable. Of its ${account.operations} operations, the longest ` +
      `partial linearizations hold ${account.prefixLength}, and after them none of these can go next:`,
  ];
  account.offending.slice(0, listedOperationsMax).forEach((op, i) => {
    lines.push(`  ${describeOperation(op)}`);
    const expected = account.expected[i];
    if (expected !== undefined) lines.push(`      where the state machine answers ${describeResult(op.tx, expected)}`);
  });
  more(lines, account.offending.length);
  if (account.context.length > 0) {
    lines.push("The last writes of the keys they touch, in the first of those partial linearizations:");
    for (const op of account.context.slice(0, listedOperationsMax)) lines.push(`  ${describeOperation(op)}`);
    more(lines, account.context.length);
  } else {
    lines.push("No operation before them wrote the keys they touch.");
  }
  return lines.join("\n");
}

export function explainImpossible(cell: string, op: Operation, expected: TxResult): string {
  return [
    `Cell ${JSON.stringify(cell)} is not linearizable: the state machine answers this transaction the same way in every state, and not as recorded:`,
    `  ${describeOperation(op)}`,
    `      where the state machine answers ${describeResult(op.tx, expected)}`,
  ].join("\n");
}

export interface UndecidedAccount {
  readonly cell: string;
  readonly operations: number;
  readonly statesMax: number;
  readonly completedLinearizedMax: number;
  readonly completed: number;
  readonly suspects: readonly Operation[];
}

export function explainUndecided(account: UndecidedAccount): string {
  const lines = [
    `Cell ${JSON.stringify(account.cell)}: gave up after computing ${account.statesMax} states on ${account.operations} operations; ` +
      `the longest partial linearization held ${account.completedLinearizedMax} of ${account.completed} completed operations. ` +
      "Raise statesMax, or record fewer concurrent or timed-out writes.",
  ];
  if (account.suspects.length > 0) {
    lines.push("A narrower search could place none of these next (a lead, not a proof):");
    for (const op of account.suspects.slice(0, listedOperationsMax)) lines.push(`  ${describeOperation(op)}`);
    more(lines, account.suspects.length);
  }
  return lines.join("\n");
}

function more(lines: string[], count: number): void {
  if (count > listedOperationsMax) lines.push(`  ... and ${count - listedOperationsMax} more`);
}

/** A transaction from a faulty client may not print; the account must still be written. */
function safeJson(build: () => unknown): string {
  try {
    return JSON.stringify(build(), (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
  } catch (error) {
    return `<unprintable: ${error instanceof Error ? error.message : String(error)}>`;
  }
}
