// The correlated failures the colony evaluation injects, in the same terms as the Monte Carlo
// (bench/availability/events.ts): which nodes go down, which racks' clients go down with
// them, and how the network is cut (a side per rack; two racks talk exactly when they are on
// the same side, and the control plane sits on side 0, with the spine).

import type { Cluster } from "../../src/control/placement/cluster.ts";
import type { Rng } from "../../src/random.ts";

export type ScenarioName = "rack loss" | "row loss" | "power domain loss" | "half row cut off" | "row cut off";

export const scenarioNames: readonly ScenarioName[] = ["rack loss", "row loss", "power domain loss", "half row cut off", "row cut off"];

export interface ColonyEvent {
  readonly scenario: ScenarioName;
  /** The rack, row or power domain it strikes. */
  readonly label: string;
  /** Node indexes (of the cluster) that crash. */
  readonly nodesDown: readonly number[];
  /** Racks whose clients are down with them: they are not asked to write, as in the Monte Carlo. */
  readonly racksDown: readonly number[];
  /** The side of every rack, or null when the network stays whole. */
  readonly rackSide: Int32Array | null;
}

function racksOfRow(cluster: Cluster, row: number): number[] {
  const racks: number[] = [];
  for (let r = 0; r < cluster.rackCount; r++) if (cluster.rackRow[r] === row) racks.push(r);
  return racks;
}

function nodesWhere(cluster: Cluster, test: (node: number) => boolean): number[] {
  const nodes: number[] = [];
  for (let n = 0; n < cluster.nodeCount; n++) if (test(n)) nodes.push(n);
  return nodes;
}

function cut(cluster: Cluster, racks: readonly number[]): Int32Array {
  const side = new Int32Array(cluster.rackCount);
  for (const r of racks) side[r] = 1;
  return side;
}

/** One event of `scenario` striking the `which`-th rack, row or power domain. */
export function eventOf(cluster: Cluster, scenario: ScenarioName, which: number): ColonyEvent {
  switch (scenario) {
    case "rack loss":
      return { scenario, label: cluster.rackNames[which] ?? "", nodesDown: nodesWhere(cluster, (n) => cluster.nodeRack[n] === which), racksDown: [which], rackSide: null };
    case "row loss":
      return { scenario, label: cluster.rowNames[which] ?? "", nodesDown: nodesWhere(cluster, (n) => cluster.nodeRow[n] === which), racksDown: racksOfRow(cluster, which), rackSide: null };
    case "power domain loss": {
      const racks: number[] = [];
      for (let r = 0; r < cluster.rackCount; r++) if (cluster.rackPower[r] === which) racks.push(r);
      return { scenario, label: cluster.powerNames[which] ?? "", nodesDown: nodesWhere(cluster, (n) => cluster.nodePower[n] === which), racksDown: racks, rackSide: null };
    }
    case "half row cut off": {
      const racks = racksOfRow(cluster, which);
      return { scenario, label: cluster.rowNames[which] ?? "", nodesDown: [], racksDown: [], rackSide: cut(cluster, racks.slice(0, Math.floor(racks.length / 2))) };
    }
    case "row cut off":
      return { scenario, label: cluster.rowNames[which] ?? "", nodesDown: [], racksDown: [], rackSide: cut(cluster, racksOfRow(cluster, which)) };
  }
}

/** How many things of the kind a scenario strikes there are (racks, rows or power domains). */
export function eventCount(cluster: Cluster, scenario: ScenarioName): number {
  if (scenario === "rack loss") return cluster.rackCount;
  if (scenario === "power domain loss") return cluster.powerCount;
  return cluster.rowCount;
}

/** `count` distinct events of a scenario, chosen from the seed (all of them when there are fewer). */
export function pickEvents(cluster: Cluster, scenario: ScenarioName, count: number, rng: Rng): ColonyEvent[] {
  const all = Array.from({ length: eventCount(cluster, scenario) }, (_, i) => i);
  for (let i = all.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    [all[i], all[j]] = [all[j] as number, all[i] as number];
  }
  return all.slice(0, Math.min(count, all.length)).sort((a, b) => a - b).map((which) => eventOf(cluster, scenario, which));
}
