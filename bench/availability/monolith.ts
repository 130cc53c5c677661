// The monolith the paper compares against: one seven-node consensus group that every client
// uses. "Spread" puts its nodes in seven rows far apart (and in different racks and power
// domains), "compact" puts them in one row as Physalia would place one cell. Its nodes share
// one color: a monolith is one deployment unit, so a release reaches all of it.

import { assert } from "../../src/core/assert.ts";
import type { Cluster } from "../../src/control/placement/cluster.ts";
import { Placer } from "../../src/control/placement/placer.ts";
import { brokenRules, cellShape } from "../../src/control/placement/rules.ts";

export const monolithSize = 7;

export function monolithSpread(cluster: Cluster, color: number): Int32Array {
  const members: number[] = [];
  const usedRacks = new Set<number>();
  for (let i = 0; i < monolithSize; i++) {
    const row = Math.floor(((i + 0.5) * cluster.rowCount) / monolithSize);
    const power = i % cluster.powerCount;
    let choice = -1;
    for (let n = 0; n < cluster.nodeCount && choice < 0; n++) {
      if (cluster.nodeColor[n] === color && cluster.nodeRow[n] === row && cluster.nodePower[n] === power && !usedRacks.has(cluster.nodeRack[n]!)) choice = n;
    }
    assert(choice >= 0, "the large topology has a node of every color and domain in every row");
    members.push(choice);
    usedRacks.add(cluster.nodeRack[choice]!);
  }
  return Int32Array.from(members);
}

export function monolithCompact(cluster: Cluster, color: number): Int32Array {
  const row = Math.floor(cluster.rowCount / 2);
  const members = new Int32Array(monolithSize);
  const placer = new Placer(cluster);
  const level = placer.placeIndexes({ size: monolithSize, color, instanceRow: row, primaryRow: row, replicaRow: row, salt: 0 }, members, 0);
  assert(level === 0 && brokenRules(cellShape(cluster, members, row)).length === 0, "the compact monolith keeps every rule in its row");
  return members;
}
