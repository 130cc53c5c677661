import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ReplayGuard, Stamper, freshEpoch } from "../../src/wire/freshness.ts";

describe("the replay guard", () => {
  test("a frame seen once is refused the second time; reordering within the window is accepted", () => {
    const guard = new ReplayGuard({ windowFrames: 64 });
    const at = (counter: number, epoch = 5) => guard.admit("n1", { epoch, counter }, true);
    expect(at(10)).toBe("fresh");
    expect(at(10)).toBe("duplicate");
    expect(at(12)).toBe("fresh");
    expect(at(11)).toBe("fresh"); // Late, but within the window.
    expect(at(11)).toBe("duplicate");
    expect(at(100)).toBe("fresh");
    expect(at(12)).toBe("tooOld"); // 88 frames back, beyond a window of 64.
    expect(at(37)).toBe("fresh"); // 63 back: inside, and never seen.
    expect(at(36)).toBe("tooOld");
  });

  test("a restarted sender's higher epoch starts afresh; an older epoch is refused", () => {
    const guard = new ReplayGuard();
    expect(guard.admit("c1", { epoch: 5, counter: 900 }, false)).toBe("fresh");
    expect(guard.admit("c1", { epoch: 6, counter: 1 }, false)).toBe("fresh");
    expect(guard.admit("c1", { epoch: 6, counter: 1 }, false)).toBe("duplicate");
    expect(guard.admit("c1", { epoch: 5, counter: 901 }, false)).toBe("staleEpoch");
    expect(guard.admit("c1", { epoch: 6, counter: 2 }, false)).toBe("fresh");
  });

  test("clients live in a bounded LRU, and an evicted client's old frame is accepted again (documented)", () => {
    const guard = new ReplayGuard({ unpinnedMax: 3 });
    for (const c of ["a", "b", "c"]) guard.admit(c, { epoch: 1, counter: 1 }, false);
    guard.admit("a", { epoch: 1, counter: 2 }, false); // a is now the most recently heard.
    guard.admit("d", { epoch: 1, counter: 1 }, false); // evicts b, the least recently heard.
    expect(guard.size).toEqual({ pinned: 0, unpinned: 3 });
    expect(guard.admit("a", { epoch: 1, counter: 2 }, false)).toBe("duplicate");
    expect(guard.admit("b", { epoch: 1, counter: 1 }, false)).toBe("fresh");
  });

  test("nodes are pinned: no number of clients evicts them", () => {
    const guard = new ReplayGuard({ unpinnedMax: 2 });
    guard.admit("n1", { epoch: 1, counter: 1 }, true);
    for (let i = 0; i < 100; i++) guard.admit(`c${i}`, { epoch: 1, counter: 1 }, false);
    expect(guard.size).toEqual({ pinned: 1, unpinned: 2 });
    expect(guard.admit("n1", { epoch: 1, counter: 1 }, true)).toBe("duplicate");
  });

  test("against a model: nothing seen is accepted twice, and everything unseen within the window of the latest epoch is accepted", () => {
    const windowFrames = 64;
    // Counters walk forward in small steps with jumps back (reordering, replays), so that the
    // window wraps around many times; now and then a sender restarts with a higher epoch.
    const step = fc.record({ sender: fc.constantFrom("a", "b"), restart: fc.integer({ min: 0, max: 40 }), back: fc.boolean(), delta: fc.integer({ min: 0, max: 90 }) });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 400 }), fc.boolean(), (steps, oldEpochs) => {
        const guard = new ReplayGuard({ windowFrames });
        const model = new Map<string, { epoch: number; top: number; seen: Set<number> }>();
        const position = new Map<string, { epoch: number; counter: number }>();
        const events = steps.map(({ sender, restart, back, delta }) => {
          const at = position.get(sender) ?? { epoch: 1, counter: 0 };
          const epoch = restart === 0 ? at.epoch + 1 : oldEpochs && restart === 1 ? Math.max(1, at.epoch - 1) : at.epoch;
          const counter = Math.max(0, back ? at.counter - delta : at.counter + (delta > 75 ? delta : Math.ceil(delta / 3)));
          position.set(sender, { epoch: Math.max(epoch, at.epoch), counter: back ? at.counter : counter });
          return { sender, epoch, counter };
        });
        for (const { sender, epoch, counter } of events) {
          const verdict = guard.admit(sender, { epoch, counter }, true);
          const state = model.get(sender);
          let expected: string;
          if (state === undefined || epoch > state.epoch) {
            model.set(sender, { epoch, top: counter, seen: new Set([counter]) });
            expected = "fresh";
          } else if (epoch < state.epoch) expected = "staleEpoch";
          else if (state.seen.has(counter) && state.top - counter < windowFrames) expected = "duplicate";
          else if (state.top - counter >= windowFrames) expected = "tooOld";
          else {
            state.seen.add(counter);
            state.top = Math.max(state.top, counter);
            expected = "fresh";
          }
          expect(verdict).toBe(expected as never);
        }
      }),
      { numRuns: 500 },
    );
  });

  test("bad bounds are refused", () => {
    expect(() => new ReplayGuard({ windowFrames: 48 })).toThrow(RangeError);
    expect(() => new ReplayGuard({ unpinnedMax: 0 })).toThrow(RangeError);
  });
});

describe("stamps", () => {
  test("a stamper counts up from 1 under one epoch; epochs in one process always grow", () => {
    const stamper = new Stamper(7);
    expect([stamper.next(), stamper.next()]).toEqual([{ epoch: 7, counter: 1 }, { epoch: 7, counter: 2 }]);
    const epochs = Array.from({ length: 50 }, () => freshEpoch());
    for (let i = 1; i < epochs.length; i++) expect(epochs[i] as number).toBeGreaterThan(epochs[i - 1] as number);
    expect(epochs[0] as number).toBeGreaterThanOrEqual(Date.now() - 60_000);
  });
});
