// The scenarios the discovery simulation runs: a small one for `bun test` (seconds), and the
// full-size one behind `npm run bench:discovery`. Both go through the same phases:
//
//   steady     membership churn and leader changes with 1% message loss
//   partition  a fifth of the nodes cut off for a while, churn going on on both sides
//   crashes    a few nodes crash (losing their cache) and restart empty
//   poison     wrong entries of every kind injected into a few nodes
//   quiet      no churn: what the cache costs at rest (refreshes only)
//   settle     (added by the simulation) no faults, so that the last changes converge
//
// Entries that only expiry can remove (futureVersion, phantom) heal a lifetime after their
// stamp; the small scenario uses a short lifetime so that the test sees them go, and the
// full one uses a production-like lifetime, where they are reported as not yet healed.

import type { ColonySimOptions, PhaseSpec, PoisonKind } from "./colony.ts";

const allPoison: readonly PoisonKind[] = ["wrongMembers", "higherEpochStale", "nonMemberLeader", "futureVersion", "phantom", "staleBackup"];

function phases(options: { churnPerSecond: number; leaderChangesPerSecond: number; crashes: number; poisonNodes: number; poisonCells: number; phaseMs: number; poisonMs: number; quietMs: number }): PhaseSpec[] {
  const { churnPerSecond, leaderChangesPerSecond, phaseMs } = options;
  return [
    { name: "steady", durationMs: phaseMs, churnPerSecond, leaderChangesPerSecond, lossRate: 0.01 },
    { name: "partition", durationMs: phaseMs + 20_000, churnPerSecond, leaderChangesPerSecond, lossRate: 0.01, partition: { fraction: 0.2, atMs: 5_000, durationMs: 20_000 } },
    { name: "crashes", durationMs: phaseMs + 20_000, churnPerSecond, leaderChangesPerSecond, lossRate: 0.01, crashes: { count: options.crashes, atMs: 2_000, downMs: 15_000 } },
    {
      name: "poison", durationMs: options.poisonMs, churnPerSecond: churnPerSecond / 4, leaderChangesPerSecond: leaderChangesPerSecond / 4, lossRate: 0.01,
      poison: { atMs: 1_000, nodes: options.poisonNodes, cellsPerKind: options.poisonCells, kinds: allPoison },
    },
    { name: "quiet", durationMs: options.quietMs, churnPerSecond: 0, leaderChangesPerSecond: 0, lossRate: 0.01 },
  ];
}

/** 50 nodes and 2,000 cells, with a two-minute entry lifetime: runs in a few seconds. */
export function smallScenario(seed: number): ColonySimOptions {
  return {
    seed, nodes: 50, cells: 2_000, leafBits: 8, auditsPerRound: 8,
    entryLifetimeMs: 120_000, refreshIntervalMs: 40_000, clockSkewMs: 5_000,
    phases: phases({ churnPerSecond: 4, leaderChangesPerSecond: 1, crashes: 3, poisonNodes: 3, poisonCells: 5, phaseMs: 15_000, poisonMs: 140_000, quietMs: 10_000 }),
    settleMs: 20_000,
  };
}

/**
 * 1,000 nodes and 100,000 cells of seven replicas (700 replicas a node), production timing
 * (1 s rounds, 4 h refresh, 24 h lifetime), 20 membership changes and 5 leader changes a
 * second over the colony.
 */
export function fullScenario(seed: number, options: { readonly nodes?: number; readonly cells?: number } = {}): ColonySimOptions {
  return {
    seed, nodes: options.nodes ?? 1_000, cells: options.cells ?? 100_000, leafBits: 14, auditsPerRound: 16,
    phases: phases({ churnPerSecond: 20, leaderChangesPerSecond: 5, crashes: 10, poisonNodes: 10, poisonCells: 20, phaseMs: 40_000, poisonMs: 90_000, quietMs: 60_000 }),
    settleMs: 30_000,
  };
}
