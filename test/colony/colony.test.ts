// A tiny colony (24 nodes: 2 rows x 4 racks x 3, 4 power domains; 50 cells of seven) through
// the evaluation's world: real replicas, discovery, and the real control plane (service.ts's
// ControlPlane). What must hold: with topology-aware placement a rack loss leaves every client
// whose rack survived able to commit, before and after repair; the control plane repairs
// the cells that lost members and follows clients that moved; random placement under a
// power domain loss loses exactly the clients the majority rule says it loses; and a run is
// a function of its seed.

import { describe, expect, test } from "bun:test";
import { runColony } from "../../bench/colony/run.ts";
import { eventOf } from "../../bench/colony/scenarios.ts";
import { buildCluster } from "../../src/control/placement/cluster.ts";
import { generateTopology } from "../../src/control/topology/generate.ts";

const topology = (() => {
  const generated = generateTopology({ rows: 2, racksPerRow: 4, nodesPerRack: 3, powerDomains: 4, colors: 1, seed: 1 });
  if (generated instanceof Error) throw generated;
  return generated;
})();
const cluster = buildCluster(topology);
// Shorter than the evaluation's timeline, same shape: moves at 10 s, the failure at 20 s.
const timeline = { failAtMs: 20_000, repairedAfterMs: 30_000, movingFraction: 0.06 };

describe("the colony world", () => {
  test("aware placement: every client whose rack survived commits through a rack loss, and the control plane repairs and follows moved clients", async () => {
    const event = eventOf(cluster, "rack loss", 1);
    const run = await runColony({ seed: 7, topology, cluster, cells: 50, placement: "aware", event, ...timeline });
    expect(run.cellsBreakingRules).toBe(0);
    expect(run.before.clients).toBe(50);
    expect(run.before.committed).toBe(50);
    expect(run.during.clients).toBeGreaterThan(0);
    expect(run.during.clients).toBeLessThan(50);
    expect(run.during.committed).toBe(run.during.clients);
    expect(run.repaired.committed).toBe(run.repaired.clients);
    // Cells on the lost rack got their members replaced: one add and one remove per lost replica.
    expect(run.control.adds).toBeGreaterThan(0);
    expect(run.control.removes).toBe(run.control.adds);
    expect(run.moves.clients).toBeGreaterThan(0);
    expect(run.moves.cellsInNewRow).toBe(run.moves.clients);
    // Clients whose cells moved found them again through discovery's forwarding pointers.
    expect(run.world.leaves).toBeGreaterThan(0);
  }, 60_000);

  test("random placement: a power domain loss costs exactly the clients whose cell lost its majority", async () => {
    const event = eventOf(cluster, "power domain loss", 0);
    const run = await runColony({ seed: 7, topology, cluster, cells: 50, placement: "random", event, ...timeline });
    expect(run.during.predicted).toBeLessThan(1);
    expect(run.during.fraction).toBe(run.during.predicted);
    expect(run.during.committedAgainstRule).toBe(0);
    expect(run.during.failedWithinRule).toBe(0);
  }, 60_000);

  test("a run is a function of its seed", async () => {
    const event = eventOf(cluster, "half row cut off", 0);
    const once = await runColony({ seed: 11, topology, cluster, cells: 30, placement: "aware", event, ...timeline });
    const again = await runColony({ seed: 11, topology, cluster, cells: 30, placement: "aware", event, ...timeline });
    const other = await runColony({ seed: 12, topology, cluster, cells: 30, placement: "aware", event, ...timeline });
    const strip = (r: typeof once) => JSON.stringify({ ...r, wallSeconds: 0 });
    expect(strip(again)).toBe(strip(once));
    expect(strip(other)).not.toBe(strip(once));
  }, 60_000);
});
