import { describe, expect, test } from "bun:test";
import { type BugKind, type SimOptions, defaultSimOptions, faultKinds, runSimulation } from "../../src/sim/mod.ts";
import { parseFaults } from "../../src/sim/options.ts";
import { EventQueue } from "../../src/sim/queue.ts";
import { Rng } from "../../src/sim/rng.ts";

const allFaults = (seed: number): SimOptions => ({ ...defaultSimOptions, seed, faults: new Set(faultKinds) });

describe("the simworld", () => {
  test("300 seeds with every fault kind keep agreement, convergence, liveness and linearizability", () => {
    const failures: string[] = [];
    let operations = 0;
    let unknown = 0;
    let crashes = 0;
    let corrupted = 0;
    const sessions = { refused: 0, expired: 0, lateCopies: 0, compactions: 0, wipes: 0 };
    for (let seed = 1; seed <= 300; seed++) {
      const report = runSimulation(allFaults(seed));
      sessions.refused += report.stats.sessionsRefused;
      sessions.expired += report.stats.sessionsExpired;
      sessions.lateCopies += report.stats.lateCopies;
      sessions.compactions += report.stats.compactions;
      sessions.wipes += report.stats.wipes;
      operations += report.stats.operations;
      unknown += report.stats.unknownOutcomes;
      crashes += report.stats.crashes;
      corrupted += report.stats.framesCorrupted;
      if (!report.ok) failures.push(`seed ${seed}: ${report.failures[0]} (replay: physalia sim --seed ${seed})`);
    }
    expect(failures).toEqual([]);
    // The faults really happened and the histories were not trivial.
    expect(operations).toBeGreaterThan(300 * 100);
    expect(unknown).toBeGreaterThan(100);
    expect(crashes).toBeGreaterThan(300 * 3);
    expect(corrupted).toBeGreaterThan(300);
    // Session tables filled up (limits.sessionsPerCellMax), sessions expired while copies of
    // their commands were still about, and logs were compacted.
    expect(sessions.refused).toBeGreaterThan(100);
    expect(sessions.expired).toBeGreaterThan(100);
    expect(sessions.lateCopies).toBeGreaterThan(300);
    expect(sessions.compactions).toBeGreaterThan(300);
    // Disks were replaced, and their nodes came back as strangers that had to be added again.
    expect(sessions.wipes).toBeGreaterThan(100);
  }, 600_000);

  test.each([
    [105695, "all faults: a late addMember of a wiped identity made a phantom member, and a second member was wiped (fault model, fixed)", {}],
    [104398, "all faults: the only member holding the cell's state was wiped while the other two were added and never taught (fault model, fixed)", {}],
    [714365, "nine nodes, membership faults: an empty restarted replica's learn deadline stayed in the past and it ticked for ever (core, fixed)", { nodes: 9, faults: parseFaults("membership,crash,partition,loss,reorder,delay,duplicate") }],
  ] as const)("seed %d, found by a soak, stays clean: %s", (seed, _why, extra) => {
    const report = runSimulation({ ...allFaults(seed), ...extra });
    expect(report.failures).toEqual([]);
    expect(report.stats.events).toBeLessThan(1_000_000);
  }, 120_000);

  test("a seed replays exactly", () => {
    const a = runSimulation(allFaults(4242));
    const b = runSimulation(allFaults(4242));
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    const c = runSimulation(allFaults(4243));
    expect(JSON.stringify(c.stats)).not.toBe(JSON.stringify(a.stats));
  });

  const caughtWithin = (bug: BugKind, seeds: number) => {
    for (let seed = 1; seed <= seeds; seed++) {
      const report = runSimulation({ ...allFaults(seed), members: 3, nodes: 3, bug });
      if (!report.ok) return { seed, failure: report.failures[0] ?? "" };
    }
    return null;
  };

  test.each([
    ["forgetPromises", "a replica that skips persisting its promise", /agreement|divergence|linearizability|proposed into/],
    ["forgetAccepts", "a replica that skips persisting its votes", /agreement|divergence|linearizability|proposed into|before it was durable/],
    ["sendBeforeSync", "a driver that sends before its records are durable", /agreement|divergence|linearizability|proposed into|before it was durable/],
    ["reuseIdentity", "a node whose disk was wiped coming back as its former identity", /agreement|divergence|linearizability|proposed into|exactly once|before it was durable/],
    ["emptyAck", "an acceptor that acknowledges a slot it holds only as chosen", /without holding a vote/],
    ["earlyOwnVote", "a leader that counts its own vote before it is durable", /before it was durable/],
    ["lruSessions", "a session table that forgets its least recently used session", /exactly once|linearizability/],
  ] as const)("%s: %s is caught within a few hundred seeds", (bug, _what, failure) => {
    const caught = caughtWithin(bug, 300);
    expect(caught).not.toBeNull();
    expect(caught?.failure).toMatch(failure);
  }, 300_000);

  test("with no faults every operation commits and nothing is left unknown", () => {
    const report = runSimulation({ ...defaultSimOptions, seed: 9, faults: new Set() });
    expect(report.ok).toBe(true);
    expect(report.stats.unknownOutcomes).toBe(0);
    expect(report.stats.framesDropped).toBe(0);
    expect(report.stats.operations).toBeGreaterThan(100);
  });
});

describe("the simworld's machinery", () => {
  test("the PRNG is a pure function of its seed", () => {
    const a = new Rng(1);
    const b = new Rng(1);
    const xs = Array.from({ length: 100 }, () => a.u32());
    expect(Array.from({ length: 100 }, () => b.u32())).toEqual(xs);
    expect(new Set(xs).size).toBe(100);
    const c = new Rng(2);
    expect(c.u32()).not.toBe(xs[0]);
    for (let i = 0; i < 1000; i++) {
      const x = a.next();
      expect(x >= 0 && x < 1).toBe(true);
    }
  });

  test("events run in time order, ties in scheduling order", () => {
    const queue = new EventQueue<string>();
    const rng = new Rng(5);
    const pushed: [number, string][] = [];
    for (let i = 0; i < 200; i++) {
      const at = rng.int(20);
      pushed.push([at, `e${i}`]);
      queue.push(at, `e${i}`);
    }
    const popped: string[] = [];
    for (let item = queue.pop(); item !== undefined; item = queue.pop()) popped.push(item.event);
    const expected = pushed.map((p, i) => ({ at: p[0], i, e: p[1] })).sort((x, y) => x.at - y.at || x.i - y.i).map((x) => x.e);
    expect(popped).toEqual(expected);
  });
});
