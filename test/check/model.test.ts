import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Interference } from "../../src/check/footprint.ts";
import { modelState, sameState, stepModel } from "../../src/check/model.ts";
import { KvStore } from "../../src/core/kv.ts";
import { encodeKv } from "../../src/core/snapshot.ts";
import { checkTransaction, isRejection } from "../../src/core/transaction.ts";
import { toHex } from "../../src/core/bytes.ts";
import { transaction } from "../support/arbitraries.ts";
import { summary } from "./oracle.ts";

const valid = transaction.filter((tx) => !isRejection(checkTransaction(tx)));

describe("the checker's model", () => {
  test("keeps its incremental state hash equal to a hash computed from scratch", () => {
    fc.assert(
      fc.property(fc.array(valid, { maxLength: 30 }), (txs) => {
        let state = modelState(new KvStore());
        for (const tx of txs) {
          state = stepModel(state, tx).next;
          expect(state.hash).toBe(modelState(state.store.clone()).hash);
        }
      }),
      { numRuns: 300, seed: 20 },
    );
  });

  test("never modifies the state a step starts from, and compares states by content", () => {
    fc.assert(
      fc.property(fc.array(valid, { maxLength: 15 }), valid, (setup, tx) => {
        let state = modelState(new KvStore());
        for (const t of setup) state = stepModel(state, t).next;
        const before = toHex(encodeKv(state.store));
        const { next } = stepModel(state, tx);
        expect(toHex(encodeKv(state.store))).toBe(before);
        expect(sameState(next, state)).toBe(toHex(encodeKv(next.store)) === before);
        expect(sameState(next, modelState(next.store.clone()))).toBe(true);
      }),
      { numRuns: 300, seed: 20 },
    );
  });

  test("transactions it calls independent commute in every state: same results, same state", () => {
    fc.assert(
      fc.property(fc.array(valid, { maxLength: 15 }), valid, valid, (setup, a, b) => {
        const store = new KvStore();
        for (const t of setup) store.apply(t);
        if (new Interference([a, b], store).dependent(0, 1)) return;
        const ab = store.clone();
        const ba = store.clone();
        const [a1, b1] = [ab.apply(a), ab.apply(b)];
        const [b2, a2] = [ba.apply(b), ba.apply(a)];
        expect(summary(a1)).toBe(summary(a2));
        expect(summary(b1)).toBe(summary(b2));
        expect(toHex(encodeKv(ab))).toBe(toHex(encodeKv(ba)));
      }),
      { numRuns: 1000, seed: 20 },
    );
  });

  test("every writer depends on every other when the history could fill the cell", () => {
    const big = new Uint8Array(4000);
    const txs = Array.from({ length: 300 }, (_, i) => ({ reads: [], conditions: [], writes: [{ key: `k${i}`, op: "put" as const, value: big }] }));
    const interference = new Interference(txs, new KvStore());
    expect(interference.writersCoupled).toBe(true);
    expect(interference.dependent(0, 1)).toBe(true);
    expect(new Interference(txs.slice(0, 2), new KvStore()).dependent(0, 1)).toBe(false);
  });
});
