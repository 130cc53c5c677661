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

function countDistinct(values: readonly number[]): { distinct: number; max: number } {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let max = 0;
  for (const count of counts.values()) max = Math.max(max, count);
  return { distinct: counts.size, max };
}

export function cellShape(cluster: Cluster, nodes: ArrayLike<number>, row: number): CellShape {
  const list = Array.from(nodes);
  const racks = countDistinct(list.map((n) => cluster.nodeRack[n]!));
  const powers = countDistinct(list.map((n) => cluster.nodePower[n]!));
  const colors = new Set(list.map((n) => cluster.nodeColor[n]!));
  return {
    size: list.length,
    distinct: new Set(list).size === list.length,
    oneColor: colors.size <= 1,
    inRow: list.filter((n) => cluster.nodeRow[n] === row).length,
    racks: racks.distinct,
    rackMax: racks.max,
    powers: powers.distinct,
    powerMax: powers.max,
  };
}

/** The rules a cell of this shape breaks, in relaxation order. Color and distinctness are never relaxed. */
export function brokenRules(shape: CellShape): Constraint[] {
  const cap = spreadCap(shape.size);
  const broken: Constraint[] = [];
  if (shape.powerMax > cap) broken.push("power");
  if (shape.rackMax > cap) broken.push("racks");
  if (shape.inRow < shape.size) broken.push("row");
  return broken;
}
