// The placement rules as checks over a finished cell, independent of how it was chosen.
// A cell of n replicas needs a majority of floor(n/2) + 1. It survives the loss of any one
// rack (or power domain) exactly when no rack (or domain) holds more than n - majority of
// its replicas; for odd n that is "no majority in any one", and it forces at least three
// racks (domains) for every n >= 3.

import type { Cluster } from "./cluster.ts";

export type Constraint = "row" | "racks" | "power";

/** The order in which placement gives up its rules when it must: power, then racks, then row. */
export const relaxationOrder: readonly Constraint[] = ["power", "racks", "row"];

export function majority(size: number): number {
  return Math.floor(size / 2) + 1;
}

/** The most replicas of one cell that one rack or one power domain may hold. */
export function spreadCap(size: number): number {
  return size - majority(size);
}

export interface CellShape {
  readonly size: number;
  readonly distinct: boolean;
  readonly oneColor: boolean;
  readonly inRow: number;
  readonly racks: number;
  readonly rackMax: number;
  readonly powers: number;
  readonly powerMax: number;
}

/** Distinct values and the largest multiplicity among `keys[i]` for i < length; cells are small. */
function countDistinct(keys: ArrayLike<number>, length: number): { distinct: number; max: number } {
  let distinct = 0;
  let max = 0;
  for (let i = 0; i < length; i++) {
    let earlier = false;
    for (let j = 0; j < i && !earlier; j++) earlier = keys[j] === keys[i];
    if (earlier) continue;
    distinct++;
    let count = 0;
    for (let j = i; j < length; j++) if (keys[j] === keys[i]) count++;
    max = Math.max(max, count);
  }
  return { distinct, max };
}

export function cellShape(cluster: Cluster, nodes: ArrayLike<number>, row: number): CellShape {
  const size = nodes.length;
  const racks = new Int32Array(size);
  const powers = new Int32Array(size);
  let inRow = 0;
  let oneColor = true;
  for (let i = 0; i < size; i++) {
    const node = nodes[i]!;
    racks[i] = cluster.nodeRack[node]!;
    powers[i] = cluster.nodePower[node]!;
    if (cluster.nodeRow[node] === row) inRow++;
    if (cluster.nodeColor[node] !== cluster.nodeColor[nodes[0]!]) oneColor = false;
  }
  const rackCounts = countDistinct(racks, size);
  const powerCounts = countDistinct(powers, size);
  return {
    size,
    distinct: countDistinct(nodes, size).distinct === size,
    oneColor,
    inRow,
    racks: rackCounts.distinct,
    rackMax: rackCounts.max,
    powers: powerCounts.distinct,
    powerMax: powerCounts.max,
  };
}

/** The rules a cell of this shape breaks, in relaxation order. Color and distinctness are never relaxed. */
export function brokenRules(shape: CellShape): Constraint[] {
  const cap = spreadCap(shape.size);
  const broken: Record<Constraint, boolean> = {
    power: shape.powerMax > cap,
    racks: shape.rackMax > cap,
    row: shape.inRow < shape.size,
  };
  return relaxationOrder.filter((rule) => broken[rule]);
}
