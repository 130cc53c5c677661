// Decides whether one cell's history is linearizable against the cell's own state machine:
// whether some order of its operations, consistent with real time (an operation that
// responded before another was invoked comes first), gives every completed operation
// exactly the result it recorded when applied to a KvStore one by one.
//
// Cells never coordinate, so each is checked on its own. Within a cell the history is not
// split further by key (P-compositionality): one transaction may read, test and write
// several keys and scan a range, and a write can be refused as `cellFull` because of bytes
// held under other keys, so keys are not independent objects.
//
// The search (search.ts) is widened in levels, see `levels` below. How big a history it
// handles, measured with `bun test/check/bench.ts` (Bun 1.4 on a 2-core x86-64 server,
// medians of 7 seeds, quiet and then heavily loaded; clients issue transactions back to
// back, each concurrent with up to 4-9 others, over 6 keys; half of the timed-out ones take
// effect, up to 20 operation lengths later):
//   5 clients x 200 operations, no timeouts     30-140 ms    ~3,000 states
//   5 x 200, 3% timed out                       35-110 ms    ~3,600 states
//   5 x 200, 10% timed out                      35-130 ms    ~7,000 states
//   10 x 100, 3% timed out                      90-280 ms    ~34,000 states
//   5 x 1000, 3% timed out                      0.5-1 s      ~86,000 states
// ("states" counts every application of an operation to the model.) The default budget of
// 1,000,000 states takes about 8 s and 150 MB when spent. What spends it: a history that is
// not linearizable while many timed-out writes on the same keys are still pending, because
// proving that no subset of them, in no order, explains a result is exponential in their
// number; the verdict is then "unknown", naming the operations the narrower levels could
// not place.

import { assert } from "../core/assert.ts";
import { KvStore, type TxResult } from "../core/kv.ts";
import { type Transaction, checkTransaction, isRejection, transactionKeys } from "../core/transaction.ts";
import { compareKeys } from "../core/value.ts";
import { explainImpossible, explainUndecided, explainViolation } from "./explain.ts";
import { type ModelState, modelState, stepModel } from "./model.ts";
import type { Operation } from "./operation.ts";
import type { HistoryRecorder } from "./recorder.ts";
import { resultsEqual } from "./results.ts";
import { type SearchOperation, type SearchOptions, type SearchOutcome, search } from "./search.ts";
import type { Linearizable, NotLinearizable, Verdict } from "./verdict.ts";

/** The default bound on states computed per cell: at most about 8 s and 150 MB. */
export const checkStatesMaxDefault = 1_000_000;

export interface CheckOptions {
  /** The cell's state before the history; empty by default. It is not modified. */
  readonly initial?: KvStore;
  /** Give up with `ok: "unknown"` after computing this many states (default `checkStatesMaxDefault`). */
  readonly statesMax?: number;
}

export interface CheckHistoryOptions {
  readonly initial?: (cell: string) => KvStore;
  readonly statesMax?: number;
}

/** Checks every cell of a recorder, each on its own, in the order the cells were first used. */
export function checkHistory(recorder: HistoryRecorder, options: CheckHistoryOptions = {}): Verdict[] {
  return recorder.cells().map((cell) => {
    const initial = options.initial?.(cell);
    const cellOptions: CheckOptions = {
      ...(initial === undefined ? {} : { initial }),
      ...(options.statesMax === undefined ? {} : { statesMax: options.statesMax }),
    };
    return checkCell(cell, recorder.history(cell), cellOptions);
  });
}

/** Checks one cell's history. Every operation must belong to `cell`. */
export function checkCell(cell: string, operations: readonly Operation[], options: CheckOptions = {}): Verdict {
  const statesMax = options.statesMax ?? checkStatesMaxDefault;
  assert(Number.isSafeInteger(statesMax) && statesMax > 0, `statesMax ${statesMax} is not a positive integer`);
  const initial = modelState(options.initial ?? new KvStore());

  // Operations the state machine answers the same way in every state (invalid transactions)
  // are checked here once; with operations of unknown outcome that write nothing they
  // cannot change the state, so the search leaves them out.
  const sources: Operation[] = [];
  const searched: SearchOperation[] = [];
  const ids = new Set<number>();
  for (const op of operations) {
    assert(op.cell === cell, `operation ${op.id} belongs to cell ${JSON.stringify(op.cell)}, not ${JSON.stringify(cell)}`);
    assert(!ids.has(op.id), `operation ${op.id} appears twice`);
    ids.add(op.id);
    assert(Number.isFinite(op.invokedAt), `operation ${op.id}: invocation time is not finite`);
    if (op.outcome === "completed") {
      assert(Number.isFinite(op.respondedAt) && op.respondedAt >= op.invokedAt, `operation ${op.id}: responded before it was invoked`);
    }
    const tx = checkTransaction(op.tx);
    if (isRejection(tx)) {
      if (op.outcome === "completed" && !resultsEqual(op.result, tx)) {
        return impossible(cell, op, tx);
      }
      continue;
    }
    if (op.outcome === "unknown" && tx.writes.length === 0) continue;
    sources.push(op);
    searched.push({
      tx,
      result: op.outcome === "completed" ? op.result : null,
      invokedAt: op.invokedAt,
      respondedAt: op.outcome === "completed" ? op.respondedAt : Infinity,
    });
  }

  const { outcome, suspects } = searchInLevels(searched, initial, statesMax);
  switch (outcome.kind) {
    case "linearizable": {
      const verdict: Linearizable = {
        ok: true,
        cell,
        operations: operations.length,
        linearization: outcome.order.map((i) => sources[i]!.id),
        statesExplored: outcome.statesExplored,
      };
      return verdict;
    }
    case "budgetExceeded": {
      const completed = searched.filter((op) => op.result !== null).length;
      const suspected = suspects.map((i) => sources[i]!).sort(compareOperations);
      return {
        ok: "unknown",
        cell,
        reason: "budgetExceeded",
        operations: operations.length,
        suspects: suspected,
        statesExplored: outcome.statesExplored,
        explanation: explainUndecided({
          cell,
          operations: operations.length,
          statesMax,
          completedLinearizedMax: outcome.completedLinearizedMax,
          completed,
          suspects: suspected,
        }),
      };
    }
    case "notLinearizable": {
      const blocked = [...outcome.frontier].sort((a, b) => compareOperations(sources[a.op]!, sources[b.op]!));
      const offending = blocked.map((b) => sources[b.op]!);
      const expected = blocked.map((b) => b.expected);
      const context = lastWriters(
        outcome.prefix,
        blocked.map((b) => b.op),
        { searched, initial: options.initial ?? new KvStore() },
      ).map((i) => sources[i]!);
      const verdict: NotLinearizable = {
        ok: false,
        cell,
        reason: "noLinearization",
        offending,
        expected,
        context,
        prefix: outcome.prefix.map((i) => sources[i]!.id),
        explanation: explainViolation({
          cell,
          offending,
          expected,
          context,
          prefixLength: outcome.prefix.length,
          operations: operations.length,
        }),
        statesExplored: outcome.statesExplored,
      };
      return verdict;
    }
  }
}

/**
 * How the search widens. Most histories have a linearization in which every completed
 * operation needs at most one timed-out write just before it, and the first levels find it
 * at little cost; a bounded level that fails having cut nothing short is proof too. Every
 * level but the last may spend a quarter of the budget; the last, complete one gets the rest.
 */
const levels: readonly Pick<SearchOptions, "unknownsBefore" | "unknownsPerRunMax">[] = [
  { unknownsBefore: "misfits", unknownsPerRunMax: 1 },
  { unknownsBefore: "all", unknownsPerRunMax: 1 },
  { unknownsBefore: "all", unknownsPerRunMax: 2 },
  { unknownsBefore: "all", unknownsPerRunMax: Infinity },
];

interface LevelsOutcome {
  readonly outcome: SearchOutcome;
  /** When the budget ran out: the operations a narrower level could not place. */
  readonly suspects: readonly number[];
}

function searchInLevels(ops: readonly SearchOperation[], initial: ModelState, statesMax: number): LevelsOutcome {
  // Without unknown outcomes the levels are all the same search.
  const plan = ops.some((op) => op.result === null) ? levels : levels.slice(-1);
  let spent = 0;
  let deepest = 0;
  let suspects: readonly number[] = [];
  for (let i = 0; i < plan.length; i++) {
    const last = i === plan.length - 1;
    const share = last ? statesMax - spent : Math.min(statesMax - spent, Math.ceil(statesMax / 4));
    if (share <= 0) break;
    const result = search(ops, { initial, statesMax: share, ...plan[i]! });
    spent += result.statesExplored;
    if (result.kind === "linearizable" || (result.kind === "notLinearizable" && result.exhaustive)) {
      return { outcome: { ...result, statesExplored: spent }, suspects: [] };
    }
    if (result.kind === "notLinearizable") {
      suspects = result.frontier.map((b) => b.op);
      deepest = Math.max(deepest, result.prefix.filter((op) => ops[op]!.result !== null).length);
    } else {
      deepest = Math.max(deepest, result.completedLinearizedMax);
    }
  }
  // The last level is exhaustive: reaching here means the budget ran out.
  return { outcome: { kind: "budgetExceeded", statesExplored: spent, completedLinearizedMax: deepest }, suspects };
}

function impossible(cell: string, op: Operation, expected: TxResult): NotLinearizable {
  return {
    ok: false,
    cell,
    reason: "impossibleResult",
    offending: [op],
    expected: [expected],
    context: [],
    prefix: [],
    explanation: explainImpossible(cell, op, expected),
    statesExplored: 0,
  };
}

function compareOperations(a: Operation, b: Operation): number {
  return a.invokedAt - b.invokedAt || a.id - b.id;
}

/**
 * Replays the partial linearization and returns, in its order, the last operation to commit
 * a write to each key the blocked operations name or scan; the blocked ones excluded.
 */
function lastWriters(
  prefix: readonly number[],
  blocked: readonly number[],
  replay: { readonly searched: readonly SearchOperation[]; readonly initial: KvStore },
): number[] {
  const writers = new Map<string, number>();
  let state = modelState(replay.initial);
  for (const i of prefix) {
    const tx = replay.searched[i]!.tx;
    const step = stepModel(state, tx);
    if (step.result.status === "committed") for (const write of tx.writes) writers.set(write.key, i);
    state = step.next;
  }
  const wanted = new Set<number>();
  for (const i of blocked) {
    const tx = replay.searched[i]!.tx;
    for (const key of transactionKeys(tx)) {
      const writer = writers.get(key);
      if (writer !== undefined) wanted.add(writer);
    }
    if (tx.scan !== undefined) {
      for (const [key, writer] of writers) if (inScan(tx, key)) wanted.add(writer);
    }
  }
  for (const i of blocked) wanted.delete(i);
  return prefix.filter((i) => wanted.has(i));
}

function inScan(tx: Transaction, key: string): boolean {
  const scan = tx.scan;
  if (scan === undefined) return false;
  return compareKeys(key, scan.start) >= 0 && (scan.end === undefined || compareKeys(key, scan.end) < 0);
}
