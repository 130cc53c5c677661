// What the colony-world tests share: a small datacenter (2 rows x 4 racks x 3 nodes, 4 power
// domains), the counter's increment, a cell's clients in the first row, and a wait for a
// callback in simulated time.

import type { ColonyWorld } from "../../bench/colony/world.ts";
import { buildCluster } from "../../src/control/placement/cluster.ts";
import { generateTopology } from "../../src/control/topology/generate.ts";
import type { Transaction } from "../../src/core/transaction.ts";

export const topology = (() => {
  const generated = generateTopology({ rows: 2, racksPerRow: 4, nodesPerRack: 3, powerDomains: 4, colors: 1, seed: 3 });
  if (generated instanceof Error) throw generated;
  return generated;
})();
export const cluster = buildCluster(topology);
export const increment: Transaction = { reads: [], conditions: [], writes: [{ key: "n", op: "increment", by: 1n }] };
export const where = { row: topology.nodes[0]?.row ?? "" };

/** Runs the world until `start`'s callback has been called (its value) or `ms` have passed (undefined), in steps of `stepMs`. */
export async function settle<T>(w: ColonyWorld, start: (done: (value: T) => void) => void, ms: number, stepMs: number): Promise<T | undefined> {
  let out: T | undefined;
  start((value) => {
    out = value;
  });
  const until = w.now() + ms;
  while (out === undefined && w.now() < until) await w.runUntil(w.now() + stepMs);
  return out;
}
