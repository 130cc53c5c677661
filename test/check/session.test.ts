import { describe, expect, test } from "bun:test";
import { checkSession } from "../../src/check/session.ts";
import { AssertionError } from "../../src/core/assert.ts";
import { get, ok } from "./builders.ts";

describe("eventually consistent reads within one session", () => {
  test("are accepted while the applied index never goes backwards", () => {
    expect(checkSession([{ appliedIndex: 3 }, { appliedIndex: 3 }, { appliedIndex: 7 }, { appliedIndex: 12 }])).toEqual({ ok: true, reads: 4 });
    expect(checkSession([])).toEqual({ ok: true, reads: 0 });
  });

  test("are refused when a later read comes from an older applied index, naming both reads", () => {
    const verdict = checkSession([{ appliedIndex: 3 }, { appliedIndex: 9 }, { appliedIndex: 9 }, { appliedIndex: 8 }]);
    expect(verdict).toMatchObject({ ok: false, reason: "wentBackwards", earlier: 2, later: 3 });
    if (verdict.ok === false) expect(verdict.explanation).toContain("applied index 8, older than index 9");
  });

  test("are refused when two reads at the same applied index disagree on a key", () => {
    const verdict = checkSession([
      { appliedIndex: 5, tx: get("x", "y"), result: ok([1n, null]) },
      { appliedIndex: 5, tx: get("y"), result: ok([null]) },
      { appliedIndex: 5, tx: get("x"), result: ok([2n]) },
    ]);
    expect(verdict).toMatchObject({ ok: false, reason: "disagreed", earlier: 0, later: 2 });
  });

  test("may see different values at different applied indexes", () => {
    const verdict = checkSession([
      { appliedIndex: 5, tx: get("x"), result: ok([1n]) },
      { appliedIndex: 6, tx: get("x"), result: ok([2n]) },
    ]);
    expect(verdict.ok).toBe(true);
  });

  test("an applied index that is not a log index is a caller's bug", () => {
    expect(() => checkSession([{ appliedIndex: -1 }])).toThrow(AssertionError);
    expect(() => checkSession([{ appliedIndex: 1.5 }])).toThrow(AssertionError);
  });
});
