// Synthetic clients for the evaluation and the placement benchmark: one EBS-like volume per
// cell, with an instance on a uniformly random rack and its primary and replica storage
// servers in the instance's row most of the time (as EBS places them), elsewhere otherwise.

import type { Cluster } from "../../src/control/placement/cluster.ts";
import type { Rng } from "../../src/random.ts";

export interface Workload {
  readonly cells: number;
  readonly instanceRack: Int32Array;
  readonly instanceRow: Int32Array;
  readonly primaryRow: Int32Array;
  readonly replicaRow: Int32Array;
  /** How many instances sit in each rack. */
  readonly clientsPerRack: Int32Array;
}

export interface WorkloadOptions {
  readonly cells: number;
  /** Probability that a storage server is in its instance's row. */
  readonly sameRowFraction: number;
}

export function syntheticWorkload(cluster: Cluster, rng: Rng, options: WorkloadOptions): Workload {
  const racksWithNodes: number[] = [];
  const hasNodes = new Uint8Array(cluster.rackCount);
  for (let n = 0; n < cluster.nodeCount; n++) hasNodes[cluster.nodeRack[n]!] = 1;
  for (let r = 0; r < cluster.rackCount; r++) if (hasNodes[r]) racksWithNodes.push(r);
  const { cells } = options;
  const instanceRack = new Int32Array(cells);
  const instanceRow = new Int32Array(cells);
  const primaryRow = new Int32Array(cells);
  const replicaRow = new Int32Array(cells);
  const clientsPerRack = new Int32Array(cluster.rackCount);
  const storageRow = (row: number): number => (rng.chance(options.sameRowFraction) ? row : rng.nextInt(cluster.rowCount));
  for (let i = 0; i < cells; i++) {
    const rack = racksWithNodes[rng.nextInt(racksWithNodes.length)]!;
    const row = cluster.rackRow[rack]!;
    instanceRack[i] = rack;
    instanceRow[i] = row;
    primaryRow[i] = storageRow(row);
    replicaRow[i] = storageRow(row);
    clientsPerRack[rack]!++;
  }
  return { cells, instanceRack, instanceRow, primaryRow, replicaRow, clientsPerRack };
}
