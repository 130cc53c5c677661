import { describe, expect, test } from "bun:test";
import { checkCell, checkHistory } from "../../src/check/linearizable.ts";
import type { Verdict } from "../../src/check/verdict.ts";
import { KvStore } from "../../src/core/kv.ts";
import { CellHistory, del, failed, get, inc, ok, put, putIf, scan, scanned, text } from "./builders.ts";

function check(h: CellHistory, statesMax?: number): Verdict {
  return checkCell(h.cell, h.history(), statesMax === undefined ? {} : { statesMax });
}

function expectLinearizable(verdict: Verdict): readonly number[] {
  if (verdict.ok !== true) throw new Error(`expected a linearizable history, got:\n${"explanation" in verdict ? verdict.explanation : ""}`);
  return verdict.linearization;
}

function expectViolation(verdict: Verdict) {
  if (verdict.ok !== false) throw new Error(`expected a violation, got ok: ${String(verdict.ok)}`);
  return verdict;
}

const ids = (ops: readonly { readonly id: number }[]): number[] => ops.map((op) => op.id);

describe("linearizable histories", () => {
  test("two concurrent writes may take effect in either order", () => {
    for (const [seen, first] of [[1n, 1], [2n, 0]] as const) {
      const h = new CellHistory();
      const a = h.op("a", put("x", 1n), 0, 10, ok());
      const b = h.op("b", put("x", 2n), 1, 9, ok());
      const r = h.op("c", get("x"), 20, 21, ok([seen]));
      const order = expectLinearizable(check(h));
      expect(order).toEqual([[a, b][first]!, [a, b][1 - first]!, r]);
    }
  });

  test("a read concurrent with a write may see the old or the new value", () => {
    for (const seen of [null, text("new")]) {
      const h = new CellHistory();
      h.op("a", put("x", text("old")), 0, 1, ok());
      h.op("a", put("x", text("new")), 2, 10, ok());
      h.op("b", get("x"), 3, 4, ok([seen ?? text("old")]));
      expectLinearizable(check(h));
    }
  });

  test("values compare by content: a read returns equal bytes in a different array", () => {
    const h = new CellHistory();
    h.op("a", put("x", text("v")), 0, 1, ok());
    h.op("b", get("x"), 2, 3, ok([new Uint8Array([0x76])]));
    expectLinearizable(check(h));
  });

  test("a conditional write fails because a concurrent conditional write got there first", () => {
    const h = new CellHistory();
    const a = h.op("a", putIf({ key: "x", test: "notExists" }, "x", text("a")), 0, 10, ok());
    const b = h.op("b", putIf({ key: "x", test: "notExists" }, "x", text("b")), 0, 10, failed(0, "x", text("a")));
    const r = h.op("c", get("x"), 11, 12, ok([text("a")]));
    expect(expectLinearizable(check(h))).toEqual([a, b, r]);
  });

  test("a timed-out write that took effect explains a later read", () => {
    const h = new CellHistory();
    const w = h.lost("a", put("x", 1n), 0, 5);
    const r = h.op("b", get("x"), 10, 11, ok([1n]));
    expect(expectLinearizable(check(h))).toEqual([w, r]);
  });

  test("a timed-out write that never took effect is left out", () => {
    const h = new CellHistory();
    h.lost("a", put("x", 1n), 0, 5);
    const r = h.op("b", get("x"), 10, 11, ok([null]));
    expect(expectLinearizable(check(h))).toEqual([r]);
  });

  test("a timed-out write may take effect long after the client gave up", () => {
    const h = new CellHistory();
    const w = h.lost("a", put("x", 1n), 0, 5);
    const r1 = h.op("b", get("x"), 10, 11, ok([null]));
    const r2 = h.op("b", get("x"), 50, 51, ok([1n]));
    expect(expectLinearizable(check(h))).toEqual([r1, w, r2]);
  });

  test("a reply that arrives after the client gave up still counts", () => {
    const h = new CellHistory();
    const id = h.recorder.invoke(h.cell, "a", inc("n"), 0);
    h.recorder.timeout(id, 5);
    h.recorder.complete(id, ok([], [["n", 1n]]), 8);
    const r = h.op("b", get("n"), 9, 10, ok([1n]));
    expect(expectLinearizable(check(h))).toEqual([id, r]);
  });

  test("concurrent increments each see a distinct count", () => {
    const h = new CellHistory();
    const a = h.op("a", inc("n"), 0, 10, ok([], [["n", 2n]]));
    const b = h.op("b", inc("n"), 0, 10, ok([], [["n", 3n]]));
    const c = h.op("c", inc("n"), 0, 10, ok([], [["n", 1n]]));
    expect(expectLinearizable(check(h))).toEqual([c, a, b]);
  });

  test("a scan sees a concurrent insert or not, and pages by key order", () => {
    for (const withC of [false, true]) {
      const h = new CellHistory();
      h.op("a", put("a", 1n), 0, 1, ok());
      h.op("a", put("b", 2n), 2, 3, ok());
      h.op("a", put("c", 3n), 4, 10, ok());
      h.op("b", del("a"), 4, 10, ok());
      const page: [string, bigint][] = withC ? [["b", 2n], ["c", 3n]] : [["a", 1n], ["b", 2n]];
      h.op("c", scan("", 2), 5, 6, scanned(page, withC ? null : "c"));
      expectLinearizable(check(h));
    }
  });

  test("rejections are checked against the state machine: stateless and stateful", () => {
    const h = new CellHistory();
    h.op("a", put("", 1n), 0, 1, { status: "rejected", reason: "keyInvalid", detail: "worded differently" });
    h.op("a", put("x", text("bytes")), 2, 3, ok());
    h.op("b", inc("x"), 4, 5, { status: "rejected", reason: "wrongType", detail: "" });
    expectLinearizable(check(h));
  });

  test("a history may start from a given state", () => {
    const initial = new KvStore();
    initial.apply(put("x", 7n));
    const h = new CellHistory();
    h.op("a", get("x"), 0, 1, ok([7n]));
    expect(checkCell(h.cell, h.history(), { initial }).ok).toBe(true);
    expect(checkCell(h.cell, h.history()).ok).toBe(false);
  });
});

describe("histories that are not linearizable", () => {
  test("a stale read: a read after an acknowledged write returns the old value", () => {
    const h = new CellHistory();
    const w = h.op("a", put("x", 1n), 0, 1, ok());
    const r = h.op("b", get("x"), 2, 3, ok([null]));
    const v = expectViolation(check(h));
    expect(v.reason).toBe("noLinearization");
    expect(ids(v.offending)).toEqual([r]);
    expect(ids(v.context)).toEqual([w]);
    expect(v.expected).toEqual([ok([1n])]);
  });

  test("a lost write: an acknowledged write vanishes while nobody else writes", () => {
    const h = new CellHistory();
    const w = h.op("a", put("x", text("v")), 0, 1, ok());
    h.op("b", get("x"), 2, 3, ok([text("v")]));
    const r2 = h.op("b", get("x"), 4, 5, ok([null]));
    const v = expectViolation(check(h));
    expect(ids(v.offending)).toEqual([r2]);
    expect(ids(v.context)).toEqual([w]);
  });

  test("a value written by an unacknowledged write is read and later vanishes", () => {
    const h = new CellHistory();
    const w = h.lost("a", put("x", 1n), 0, 20);
    const r1 = h.op("b", get("x"), 1, 2, ok([1n]));
    const r2 = h.op("b", get("x"), 3, 4, ok([null]));
    const v = expectViolation(check(h));
    expect(ids(v.offending)).toEqual([r2]);
    expect(ids(v.context)).toEqual([w]);
    expect(v.prefix).toEqual([w, r1]);
  });

  test("a read of a value nobody wrote is refused", () => {
    const h = new CellHistory();
    h.lost("a", put("x", 1n), 0, 20);
    const r = h.op("b", get("x"), 1, 2, ok([2n]));
    expect(ids(expectViolation(check(h)).offending)).toEqual([r]);
  });

  test("concurrent increments whose results no order explains", () => {
    const h = new CellHistory();
    const a = h.op("a", inc("n"), 0, 10, ok([], [["n", 1n]]));
    const b = h.op("b", inc("n"), 0, 10, ok([], [["n", 1n]]));
    const v = expectViolation(check(h));
    expect(ids(v.offending)).toEqual([a, b]);
    expect(v.expected).toEqual([ok([], [["n", 2n]]), ok([], [["n", 2n]])]);
  });

  test("values compare by type: the integer 1 is not the boolean true nor the byte 1", () => {
    for (const wrong of [true, new Uint8Array([1])]) {
      const h = new CellHistory();
      h.op("a", put("x", 1n), 0, 1, ok());
      const r = h.op("b", get("x"), 2, 3, ok([wrong]));
      expect(ids(expectViolation(check(h)).offending)).toEqual([r]);
    }
  });

  test("a condition reported as failed on a value the key did not hold", () => {
    const h = new CellHistory();
    h.op("a", put("x", 1n), 0, 1, ok());
    const c = h.op("b", putIf({ key: "x", test: "equals", value: 1n }, "y", 1n), 2, 3, failed(0, "x", 2n));
    expect(ids(expectViolation(check(h)).offending)).toEqual([c]);
  });

  test("an invalid transaction recorded as committed cannot have any explanation", () => {
    const h = new CellHistory();
    h.op("a", put("x", 1n), 0, 1, ok());
    const bad = h.op("a", put("", 1n), 2, 3, ok());
    const v = expectViolation(check(h));
    expect(v.reason).toBe("impossibleResult");
    expect(ids(v.offending)).toEqual([bad]);
    expect(v.expected[0]?.status).toBe("rejected");
  });

  test("the explanation names the offending operation with its client, times, transaction and result", () => {
    const h = new CellHistory();
    h.op("writer", put("x", 1n), 0, 1, ok());
    const r = h.op("reader", get("x"), 2, 3, ok([null]));
    const v = expectViolation(check(h));
    expect(v.explanation).toContain(`#${r} client "reader" [2, 3] {"read":["x"]} -> {"status":"committed","reads":{"x":null}}`);
    expect(v.explanation).toContain(`where the state machine answers {"status":"committed","reads":{"x":{"int":"1"}}}`);
    expect(v.explanation).toContain(`#0 client "writer" [0, 1] {"write":[{"put":"x","value":{"int":"1"}}]} -> {"status":"committed"}`);
  });
});

describe("the checker's bounds and scope", () => {
  test("it answers unknown, not wrong, when the state budget runs out", () => {
    const h = new CellHistory();
    for (let i = 0; i < 8; i++) h.op(`c${i}`, inc("n"), 0, 100, ok([], [["n", BigInt(i + 1)]]));
    const verdict = check(h, 3);
    expect(verdict.ok).toBe("unknown");
    if (verdict.ok === "unknown") {
      expect(verdict.statesExplored).toBe(3);
      expect(verdict.explanation).toContain("gave up after computing 3 states");
    }
    expect(check(h).ok).toBe(true);
  });

  test("cells are checked independently: the same key in another cell does not count", () => {
    const x = new CellHistory("volume-1");
    const y = new CellHistory("volume-2");
    x.op("a", put("k", 1n), 0, 1, ok());
    y.op("b", get("k"), 2, 3, ok([null]));
    expect(checkCell(y.cell, y.history()).ok).toBe(true);

    const both = new CellHistory("volume-1");
    both.op("a", put("k", 1n), 0, 1, ok());
    const stale = both.recorder.invoke("volume-2", "b", get("k"), 2);
    both.recorder.complete(stale, ok([1n]), 3);
    const verdicts = checkHistory(both.recorder);
    expect(verdicts.map((v) => [v.cell, v.ok])).toEqual([["volume-1", true], ["volume-2", false]]);
  });
});
