import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { checkCell } from "../../src/check/linearizable.ts";
import type { Operation } from "../../src/check/operation.ts";
import { HistoryRecorder } from "../../src/check/recorder.ts";
import { resultsEqual } from "../../src/check/results.ts";
import { KvStore } from "../../src/core/kv.ts";
import { type Transaction, checkTransaction, isRejection } from "../../src/core/transaction.ts";
import { transaction } from "../support/arbitraries.ts";
import { mutations } from "./mutate.ts";
import { bruteForceLinearizable, summary } from "./oracle.ts";

type Fate = "completed" | "timedOutApplied" | "timedOutLost";

interface Planned {
  readonly tx: Transaction;
  /** How long before and after its moment of effect the call was open. */
  readonly lead: number;
  readonly lag: number;
  readonly fate: Fate;
}

/** Which operation's recorded result to change, and how (indices wrap around). */
type Tampering = readonly [operation: number, mutation: number] | null;

const planned = (overlap: number): fc.Arbitrary<Planned> =>
  fc.record({
    tx: transaction,
    lead: fc.nat(overlap),
    lag: fc.nat(overlap),
    fate: fc.constantFrom<Fate>("completed", "completed", "completed", "timedOutApplied", "timedOutLost"),
  });

/**
 * Runs the transactions one after another against a KvStore, operation i taking effect at
 * time 10 i inside its interval [10 i - lead, 10 i + lag], and records what clients saw.
 */
function record(plan: readonly Planned[], tampering: Tampering): Operation[] {
  const store = new KvStore();
  const recorder = new HistoryRecorder();
  plan.forEach((p, i) => {
    const id = recorder.invoke("cell", `client-${i % 3}`, p.tx, 10 * i - p.lead);
    if (p.fate === "timedOutLost") return recorder.timeout(id, 10 * i + p.lag);
    let result = store.apply(p.tx);
    if (tampering !== null && tampering[0] % plan.length === i) {
      const options = mutations(result);
      result = options[tampering[1] % options.length]!;
    }
    if (p.fate === "completed") recorder.complete(id, result, 10 * i + p.lag);
    else recorder.timeout(id, 10 * i + p.lag);
  });
  return recorder.history("cell");
}

describe("the linearizability checker on generated histories", () => {
  test("judges every history of a sequentially applied store linearizable, with a witness that replays", () => {
    fc.assert(
      fc.property(fc.array(planned(25), { minLength: 1, maxLength: 25 }), (plan) => {
        const history = record(plan, null);
        const verdict = checkCell("cell", history);
        if (verdict.ok !== true) throw new Error("explanation" in verdict ? verdict.explanation : "not ok");

        // The witness explains every completed result, respects real time, and holds every
        // completed operation that the state machine does not reject outright exactly once.
        const byId = new Map(history.map((op) => [op.id, op]));
        const store = new KvStore();
        const order = verdict.linearization.map((id) => byId.get(id)!);
        order.forEach((op, i) => {
          const result = store.apply(op.tx);
          if (op.outcome === "completed") expect(summary(result)).toBe(summary(op.result));
          for (const later of order.slice(i + 1)) {
            if (later.outcome === "completed") expect(later.respondedAt >= op.invokedAt).toBe(true);
          }
        });
        const mustAppear = history.filter((op) => op.outcome === "completed" && !isRejection(checkTransaction(op.tx)));
        expect(order.filter((op) => op.outcome === "completed").map((op) => op.id).sort((a, b) => a - b))
          .toEqual(mustAppear.map((op) => op.id));
      }),
      { numRuns: 250, seed: 20 },
    );
  });

  test("detects any change to one recorded result of a sequential history, and names that operation", () => {
    const sequential = fc.array(
      fc.record({ tx: transaction, mutate: fc.nat() }),
      { minLength: 1, maxLength: 20 },
    ).chain((ops) => fc.tuple(fc.constant(ops), fc.nat(ops.length - 1)));
    fc.assert(
      fc.property(sequential, ([ops, target]) => {
        const store = new KvStore();
        const recorder = new HistoryRecorder();
        let mutated = -1;
        ops.forEach(({ tx, mutate }, i) => {
          const id = recorder.invoke("cell", "client", tx, 10 * i);
          let result = store.apply(tx);
          if (i === target) {
            const options = mutations(result);
            const changed = options[mutate % options.length]!;
            expect(resultsEqual(changed, result)).toBe(false);
            result = changed;
            mutated = id;
          }
          recorder.complete(id, result, 10 * i + 5);
        });
        const verdict = checkCell("cell", recorder.history("cell"));
        expect(verdict.ok).toBe(false);
        if (verdict.ok === false) {
          expect(verdict.offending.map((op) => op.id)).toEqual([mutated]);
          expect(verdict.explanation).toContain(`#${mutated} client "client"`);
        }
      }),
      { numRuns: 300, seed: 20 },
    );
  });

  test("agrees with a brute-force search on small concurrent histories, some of them tampered with", () => {
    let refused = 0;
    const tampering = fc.option(fc.tuple(fc.nat(), fc.nat()), { nil: null, freq: 2 });
    fc.assert(
      fc.property(fc.array(planned(40), { minLength: 1, maxLength: 6 }), tampering, (plan, tamper) => {
        const history = record(plan, tamper);
        const verdict = checkCell("cell", history);
        const expected = bruteForceLinearizable(history);
        expect(verdict.ok).toBe(expected);
        if (!expected) refused++;
        if (verdict.ok === false) {
          // Whatever it names is a completed operation whose recorded result is not what
          // the state machine answered where the search tried it.
          expect(verdict.offending.length).toBeGreaterThan(0);
          verdict.offending.forEach((op, i) => {
            if (op.outcome !== "completed") throw new Error(`offending operation ${op.id} has no result`);
            expect(resultsEqual(op.result, verdict.expected[i]!)).toBe(false);
          });
        }
      }),
      { numRuns: 1000, seed: 20 },
    );
    // The generator must produce violations often enough for this test to mean something.
    expect(refused).toBeGreaterThan(100);
  }, 20_000);
});
