// Issue 12's last piece of evidence, in the colony world (real replicas, real discovery nodes
// gossiping, the real ClientDiscovery): a client whose cache is poisoned (it names nodes that
// never hosted the cell) and a client whose cache is arbitrarily old (the cell has since moved
// off every node it names, which then stopped) still get answers that are linearizable, and
// make progress. Each client runs one operation at a time, so its history is linearizable
// exactly when every read returns the increments committed before it.

import { describe, expect, test } from "bun:test";
import { ClientRouter, ColonyWorld } from "../../bench/colony/world.ts";
import type { CommandResult } from "../../src/core/messages.ts";
import type { Transaction } from "../../src/core/transaction.ts";
import { cluster, increment, settle, topology, where } from "./support.ts";

const read: Transaction = { reads: ["n"], conditions: [], writes: [] };

function world(seed: number): ColonyWorld {
  return new ColonyWorld({ seed, topology, cluster, control: { color: "blue", size: 7, graceMs: 1_000, passMs: 500, stepsPerPassMax: 8, followClients: false } });
}

/** Runs `op` to its end in simulated time; the result, or null past the bound. */
async function run(w: ColonyWorld, caller: ReturnType<ColonyWorld["addClient"]>, cell: string, tx: Transaction): Promise<CommandResult | null> {
  return (await settle<CommandResult | null>(w, (done) => caller.call(cell, { kind: "tx", tx }, 20_000, done), 25_000, 50)) ?? null;
}

/** Alternates increments and reads; every read must see exactly the increments committed before it. */
async function linearizableCounter(w: ColonyWorld, caller: ReturnType<ColonyWorld["addClient"]>, cell: string, rounds: number, start: bigint): Promise<{ committed: bigint; problems: string[] }> {
  const problems: string[] = [];
  let committed = start;
  for (let i = 0; i < rounds; i++) {
    const inc = await run(w, caller, cell, increment);
    if (inc?.status === "committed") committed++;
    else problems.push(`increment ${i}: ${JSON.stringify(inc?.status ?? "no answer")}`);
    const got = await run(w, caller, cell, read);
    if (got?.status !== "committed") problems.push(`read ${i}: ${JSON.stringify(got?.status ?? "no answer")}`);
    else if (got.reads[0] !== committed) problems.push(`read ${i} saw ${String(got.reads[0])}, ${committed} were committed`);
  }
  return { committed, problems };
}

describe("stale and poisoned client caches, with real cells", () => {
  test("a cache that names nodes that never hosted the cell costs time, never a wrong answer", async () => {
    const w = world(5);
    const cellNodes = [0, 3, 6, 9, 12, 15, 18];
    w.createCell("vol", "0000000000000001", cellNodes, { instance: where, primary: where, replica: where });
    await w.runUntil(3_000);
    const poisoned = w.addClient("poisoned", 1);
    const wrong = [1, 2, 4, 5, 7, 8, 10].map((i) => topology.nodes[i]?.id as string);
    (poisoned.router as ClientRouter).discovery.hosting("vol", wrong, w.now());
    const { committed, problems } = await linearizableCounter(w, poisoned, "vol", 5, 0n);
    expect(problems).toEqual([]);
    expect(committed).toBe(5n);
    expect(w.stats.notHosted).toBeGreaterThan(0); // it did go to the wrong nodes first
  }, 60_000);

  test("a cache from before the cell moved off every node it names (now stopped) still finds it", async () => {
    const w = world(6);
    const first = [0, 3, 6, 9, 12, 15, 18];
    w.createCell("vol", "0000000000000001", first, { instance: where, primary: where, replica: where });
    await w.runUntil(3_000);
    const old = w.addClient("old", 1);
    const warm = await linearizableCounter(w, old, "vol", 2, 0n);
    expect(warm.problems).toEqual([]);
    // Every member dies in turn, and the control plane replaces each (grace 1 s) while the old
    // client sleeps: its cache still names the first seven, all stopped by the end.
    w.control.start();
    for (const n of first) {
      w.crash(n);
      const gone = (w.nodes[n] as { identity: string }).identity;
      const until = w.now() + 30_000;
      while (w.now() < until && w.control.membersOf("vol").includes(gone)) await w.runUntil(w.now() + 250);
      expect(w.control.membersOf("vol")).not.toContain(gone);
    }
    const members = w.control.membersOf("vol").map((m) => m.split("~")[0]);
    expect(members.length).toBe(7);
    expect(members.some((m) => first.some((i) => topology.nodes[i]?.id === m))).toBe(false);
    await w.runUntil(w.now() + 3_000);
    const { committed, problems } = await linearizableCounter(w, old, "vol", 4, warm.committed);
    expect(problems).toEqual([]);
    expect(committed).toBe(6n);
  }, 60_000);
});
