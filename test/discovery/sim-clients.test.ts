import { describe, expect, test } from "bun:test";
import { openGraceMs } from "../../src/discovery/sim/clients.ts";
import { ColonySim, type ColonySimOptions } from "../../src/discovery/sim/colony.ts";

// Clients of the discovery simulation: real ClientDiscovery instances looking cells up
// through the simulated network. Eight nodes, so that a client cut off from the network asks
// every one of them in vain within a few seconds (the case that once left clients stuck).
function scenario(seed: number): ColonySimOptions {
  return {
    seed, nodes: 8, cells: 200, leafBits: 4, auditsPerRound: 8, lossRate: 0.02,
    entryLifetimeMs: 120_000, refreshIntervalMs: 40_000, clockSkewMs: 5_000,
    clients: { count: 20, lookupEveryMs: 400 },
    phases: [
      { name: "steady", durationMs: 10_000, churnPerSecond: 2, leaderChangesPerSecond: 1 },
      { name: "clients cut off", durationMs: 20_000, churnPerSecond: 2, leaderChangesPerSecond: 1, clientsCutOff: { atMs: 2_000, durationMs: 8_000 } },
    ],
    settleMs: openGraceMs + 10_000,
  };
}

describe("clients in the discovery simulation", () => {
  for (const seed of [1, 2, 3]) {
    test(`seed ${seed}: every client finds every cell it wants once the network lets it, however long it was cut off`, () => {
      const report = new ColonySim(scenario(seed)).run();
      const clients = report.clients!;
      // The fault happened: whole rounds of lookups timed out.
      expect(clients.lookupsTimedOut).toBeGreaterThan(20 * 8);
      expect(clients.wants).toBeGreaterThan(500);
      // Nobody gave up: no want is left open at the end...
      expect(clients.stuck).toBe(0);
      // ...and the longest find is the cut-off plus a back-off, not the rest of the run.
      expect(clients.findSeconds.max).toBeGreaterThan(6);
      expect(clients.findSeconds.max).toBeLessThan(8 + 6);
      // Outside the cut-off, a lookup or two.
      expect(clients.findSeconds.p50).toBeLessThan(0.5);
    });
  }

  test("on links slower than the lookup timeout every answer comes late, and clients still find their cells", () => {
    const base = scenario(4);
    const report = new ColonySim({ ...base, clients: { count: 20, lookupEveryMs: 400, extraLatencyMs: 200 }, phases: base.phases.slice(0, 1), settleMs: openGraceMs + 5_000 }).run();
    const clients = report.clients!;
    expect(clients.lookupsTimedOut).toBeGreaterThan(clients.lookupsSent * 0.9);
    expect(clients.found).toBeGreaterThan(200);
    expect(clients.stuck).toBe(0);
    expect(clients.findSeconds.p50).toBeLessThan(1);
  });
});
