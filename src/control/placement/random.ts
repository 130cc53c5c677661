// The baseline the evaluation compares against: replicas on uniformly random distinct nodes
// of the cell's color, blind to rows, racks, power domains and load.

import { assert } from "../../core/assert.ts";
import type { Rng } from "../../random.ts";
import { type Cluster, colorRange } from "./cluster.ts";

export interface RandomCellRequest {
  readonly rng: Rng;
  readonly size: number;
  readonly color: number;
  /** The cell's nodes are written to out[offset .. offset + size). */
  readonly out: Int32Array;
  readonly offset: number;
}

export function placeRandom(cluster: Cluster, request: RandomCellRequest): void {
  const { rng, out, offset } = request;
  const [startGroup, endGroup] = colorRange(cluster, request.color);
  const start = cluster.groupStart[startGroup]!;
  const count = cluster.groupStart[endGroup]! - start;
  assert(count >= request.size, "the color has enough nodes for a random cell");
  for (let i = 0; i < request.size; i++) {
    let node: number;
    let fresh: boolean;
    do {
      node = cluster.groupNodes[start + rng.nextInt(count)]!;
      fresh = true;
      for (let j = 0; j < i; j++) if (out[offset + j] === node) fresh = false;
    } while (!fresh);
    out[offset + i] = node;
  }
}
