import { describe, expect, test } from "bun:test";
import { HistoryRecorder } from "../../src/check/recorder.ts";
import { AssertionError } from "../../src/core/assert.ts";
import { get, ok, put } from "./builders.ts";

describe("the history recorder", () => {
  test("records completed, timed-out and pending operations per cell, in invocation order", () => {
    const recorder = new HistoryRecorder();
    const a = recorder.invoke("v1", "alice", put("x", 1n), 0);
    const b = recorder.invoke("v2", "bob", get("x"), 1);
    const c = recorder.invoke("v1", "carol", get("x"), 2);
    const d = recorder.invoke("v1", "dave", get("y"), 3);
    recorder.complete(a, ok(), 4);
    recorder.timeout(c, 9);
    recorder.complete(b, ok([null]), 5);

    expect(recorder.cells()).toEqual(["v1", "v2"]);
    expect(recorder.size).toBe(4);
    expect(recorder.history("v1")).toEqual([
      { id: a, cell: "v1", client: "alice", tx: put("x", 1n), invokedAt: 0, outcome: "completed", result: ok(), respondedAt: 4 },
      { id: c, cell: "v1", client: "carol", tx: get("x"), invokedAt: 2, outcome: "unknown", gaveUpAt: 9 },
      { id: d, cell: "v1", client: "dave", tx: get("y"), invokedAt: 3, outcome: "unknown", gaveUpAt: null },
    ]);
    expect(recorder.history("v2").map((op) => op.id)).toEqual([b]);
    expect(recorder.history("nowhere")).toEqual([]);
  });

  test("a late reply after a timeout makes the outcome known", () => {
    const recorder = new HistoryRecorder();
    const id = recorder.invoke("v1", "alice", put("x", 1n), 0);
    recorder.timeout(id, 5);
    recorder.complete(id, ok(), 7);
    expect(recorder.history("v1")[0]).toMatchObject({ outcome: "completed", respondedAt: 7 });
  });

  test("an operation that certainly had no effect is left out", () => {
    const recorder = new HistoryRecorder();
    const id = recorder.invoke("v1", "alice", put("x", 1n), 0);
    recorder.fail(id, 1);
    expect(recorder.history("v1")).toEqual([]);
    expect(recorder.cells()).toEqual(["v1"]);
  });

  test("misuse is a bug and fails loudly: unknown ids, double completion, time running backwards", () => {
    const recorder = new HistoryRecorder();
    const id = recorder.invoke("v1", "alice", put("x", 1n), 10);
    expect(() => recorder.complete(id + 1, ok(), 11)).toThrow(AssertionError);
    expect(() => recorder.complete(id, ok(), 9)).toThrow(AssertionError);
    expect(() => recorder.invoke("v1", "alice", put("x", 1n), Number.NaN)).toThrow(AssertionError);
    recorder.complete(id, ok(), 11);
    expect(() => recorder.complete(id, ok(), 12)).toThrow(AssertionError);
    expect(() => recorder.timeout(id, 12)).toThrow(AssertionError);
    expect(() => recorder.fail(id, 12)).toThrow(AssertionError);
  });
});
