// The checker on histories of realistic size. Timings are in bench.ts and in the comment at
// the top of src/check/linearizable.ts; these tests pin the verdicts and the work done, which
// are deterministic.
import { describe, expect, test } from "bun:test";
import { checkCell } from "../../src/check/linearizable.ts";
import type { Operation } from "../../src/check/operation.ts";
import { utf8 } from "../../src/core/value.ts";
import { simulateHistory } from "./simulate.ts";

function history(seed: number, timeoutRate: number): readonly Operation[] {
  const { recorder, cell } = simulateHistory({ seed, clients: 5, opsPerClient: 200, keys: 6, timeoutRate, durationTicksMax: 10 });
  return recorder.history(cell);
}

/** Makes the first read at or after position 500 return a value nobody wrote. */
function tamper(ops: readonly Operation[]): { readonly ops: Operation[]; readonly id: number } {
  const i = ops.findIndex((op, j) => j >= 500 && op.outcome === "completed" && op.result.status === "committed" && op.result.reads.length > 0);
  const op = ops[i]!;
  if (op.outcome !== "completed" || op.result.status !== "committed") throw new Error("no read to tamper with");
  const changed: Operation = { ...op, result: { ...op.result, reads: [utf8("never written"), ...op.result.reads.slice(1)] } };
  return { ops: ops.map((o, j) => (j === i ? changed : o)), id: op.id };
}

describe("the checker at scale", () => {
  test("judges histories with 0%, 3% and 10% of operations timed out linearizable, well within the budget", () => {
    for (const timeoutRate of [0, 0.03, 0.1]) {
      const ops = history(1, timeoutRate);
      expect(ops.length).toBe(1000);
      const verdict = checkCell(ops[0]!.cell, ops);
      expect(verdict.ok).toBe(true);
      expect(verdict.statesExplored).toBeLessThan(50_000);
    }
  });

  test("finds a read tampered with in the middle, and names it", () => {
    for (const [seed, timeoutRate] of [[1, 0], [4, 0.03]] as const) {
      const { ops, id } = tamper(history(seed, timeoutRate));
      const verdict = checkCell(ops[0]!.cell, ops);
      if (verdict.ok !== false) throw new Error(`expected a violation, got ${String(verdict.ok)}`);
      expect(verdict.offending.map((op) => op.id)).toContain(id);
      expect(verdict.explanation).toContain(`"never written"`);
    }
  });

  test("when the budget runs out it says unknown and names what a narrower search could not place", () => {
    // Ten increments that never answered, then a read no subset of them explains.
    const cell = "counters";
    const pending: Operation[] = Array.from({ length: 10 }, (_, k) => ({
      id: k, cell, client: `late-${k}`, invokedAt: 0, outcome: "unknown", gaveUpAt: 10,
      tx: { reads: [], conditions: [], writes: [{ key: "counter", op: "increment", by: 1n }] },
    }));
    const read: Operation = {
      id: 10, cell, client: "reader", invokedAt: 20, respondedAt: 21, outcome: "completed",
      tx: { reads: ["counter"], conditions: [], writes: [] },
      result: { status: "committed", reads: [100n], increments: [] },
    };
    const all = [...pending, read];
    const undecided = checkCell(cell, all, { statesMax: 400 });
    expect(undecided.ok).toBe("unknown");
    if (undecided.ok === "unknown") {
      expect(undecided.suspects.map((op) => op.id)).toEqual([10]);
      expect(undecided.explanation).toContain(`#10 client "reader"`);
    }
    // With the default budget the complete search proves it: 2^10 subsets, collapsed by count.
    const verdict = checkCell(cell, all);
    expect(verdict.ok).toBe(false);
    if (verdict.ok === false) expect(verdict.offending.map((op) => op.id)).toEqual([10]);
  });
});
