import { describe, expect, test } from "bun:test";
import { Admission } from "../../src/node/admission.ts";

describe("admission", () => {
  test("takes waiting frames round-robin by sender, each sender's in order", () => {
    const admission = new Admission<string>({ budgetMs: 100 });
    for (const item of ["a1", "a2", "a3", "a4"]) expect(admission.offer("a", item, 0)).toBe("admitted");
    for (const item of ["b1", "b2"]) expect(admission.offer("b", item, 0)).toBe("admitted");
    expect(admission.offer("c", "c1", 0)).toBe("admitted");
    const order: string[] = [];
    for (let next = admission.take(); next !== undefined; next = admission.take()) order.push(next.item);
    expect(order).toEqual(["a1", "b1", "c1", "a2", "b2", "a3", "a4"]);
    expect(admission.size).toBe(0);
    expect(admission.senders).toBe(0);
  });

  test("admits what it can step within its budget; past it a sender over its share is refused, and past twice it everyone", () => {
    // 1 ms at the starting estimate of 0.05 ms a frame: 20 frames.
    const admission = new Admission<number>({ budgetMs: 1, shareMin: 2 });
    expect(admission.capacity).toBe(20);
    for (let i = 0; i < 20; i++) expect(admission.offer("flood", i, 0)).toBe("admitted");
    // The flood holds the whole queue: it is over its share; a quiet sender is not, up to
    // its share of the budget (half of it, with two senders).
    expect(admission.offer("flood", 20, 0)).toBe("overShare");
    for (let i = 0; i < 10; i++) expect(admission.offer("quiet", i, 0)).toBe("admitted");
    expect(admission.offer("quiet", 10, 0)).toBe("overShare");
    // Newcomers are admitted until the queue holds twice the budget, then nobody is.
    for (let i = 0; i < 10; i++) expect(admission.offer(`other-${i}`, i, 0)).toBe("admitted");
    expect(admission.size).toBe(40);
    expect(admission.offer("newcomer", 0, 0)).toBe("overBudget");
  });

  test("measures its pace over a backlog, and admits less when stepping is slow", () => {
    const admission = new Admission<number>({ budgetMs: 40 });
    expect(admission.capacity).toBe(800);
    for (let i = 0; i < 100; i++) admission.offer(`c${i % 3}`, i, 0);
    // 100 frames stepped in 100 ms: 1 ms each, so the estimate moves toward 1 ms.
    for (let i = 0; i < 100; i++) admission.take();
    admission.observe(100);
    expect(admission.frameCostMs).toBeGreaterThan(0.2);
    expect(admission.capacity).toBeLessThan(200);
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 20; i++) expect(admission.offer("c", i, 1000 * round)).toBe("admitted");
      for (let i = 0; i < 20; i++) admission.take();
      admission.observe(1000 * round + 20);
    }
    expect(admission.frameCostMs).toBeCloseTo(1, 1);
    expect(admission.capacity).toBe(40);
    // A backlog that waited out a pause of the process (a minute for 20 frames) is not the
    // node's pace: one sample moves the estimate by at most a quarter of the way to 5 ms.
    for (let i = 0; i < 20; i++) admission.offer("c", i, 100_000);
    for (let i = 0; i < 20; i++) admission.take();
    admission.observe(160_000);
    expect(admission.frameCostMs).toBeLessThan(2.1);
    expect(admission.capacity).toBeGreaterThan(19);
  });

  test("refuses bad options", () => {
    expect(() => new Admission({ budgetMs: 0 })).toThrow(RangeError);
    expect(() => new Admission({ shareMin: 0 })).toThrow(RangeError);
    expect(() => new Admission({ framesMax: 2, shareMin: 4 })).toThrow(RangeError);
  });
});
