// Per-node load (cell replicas hosted) with each group's nodes kept in order of fill
// (load / capacity, least full first). The least-full usable node of a group is then found
// at the front, and one replica more or less moves a node by a binary search and a short
// shift inside its group, never by a scan of the datacenter.

import { assert } from "../../core/assert.ts";
import type { Cluster } from "./cluster.ts";

export class LoadState {
  readonly load: Int32Array;
  /** groupNodes of the cluster, each group's segment ordered by fill. */
  readonly order: Int32Array;
  /** Where each node sits in `order`. */
  readonly position: Int32Array;
  /** Replicas hosted per (color, row) bucket, to pick the least-loaded color of a row. */
  readonly bucketLoad: Float64Array;
  readonly bucketCapacity: Float64Array;
  private readonly cluster: Cluster;

  constructor(cluster: Cluster, initial?: Int32Array) {
    this.cluster = cluster;
    assert(initial === undefined || initial.length === cluster.nodeCount, "one initial load per node");
    this.load = initial === undefined ? new Int32Array(cluster.nodeCount) : Int32Array.from(initial);
    this.order = Int32Array.from(cluster.groupNodes);
    this.position = new Int32Array(cluster.nodeCount);
    const bucketCount = cluster.colorCount * cluster.rowCount;
    this.bucketLoad = new Float64Array(bucketCount);
    this.bucketCapacity = new Float64Array(bucketCount);
    for (let i = 0; i < cluster.nodeCount; i++) {
      assert(this.load[i]! >= 0, "loads are never negative");
      const b = cluster.nodeColor[i]! * cluster.rowCount + cluster.nodeRow[i]!;
      this.bucketLoad[b]! += this.load[i]!;
      this.bucketCapacity[b]! += cluster.nodeCapacity[i]!;
    }
    for (let g = 0; g < cluster.groupCount; g++) {
      const start = cluster.groupStart[g]!;
      const end = cluster.groupStart[g + 1]!;
      const segment = Array.from(this.order.subarray(start, end));
      segment.sort((a, b) => this.compareFill(a, b) || a - b);
      this.order.set(segment, start);
    }
    for (let i = 0; i < this.order.length; i++) this.position[this.order[i]!] = i;
  }

  /** Negative when node a is less full than node b, zero when equally full. */
  compareFill(a: number, b: number): number {
    const capacity = this.cluster.nodeCapacity;
    return this.load[a]! * capacity[b]! - this.load[b]! * capacity[a]!;
  }

  hasRoom(node: number): boolean {
    return this.load[node]! < this.cluster.nodeCapacity[node]!;
  }

  /** One replica more on `node`: it moves behind every node of its group at most as full. */
  increment(node: number): void {
    const cluster = this.cluster;
    const b = cluster.nodeColor[node]! * cluster.rowCount + cluster.nodeRow[node]!;
    this.load[node]!++;
    this.bucketLoad[b]!++;
    const order = this.order;
    const from = this.position[node]!;
    let low = from + 1;
    let high = cluster.groupStart[cluster.nodeGroup[node]! + 1]!;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.compareFill(order[mid]!, node) <= 0) low = mid + 1;
      else high = mid;
    }
    const to = low - 1;
    for (let i = from; i < to; i++) {
      const moved = order[i + 1]!;
      order[i] = moved;
      this.position[moved] = i;
    }
    order[to] = node;
    this.position[node] = to;
  }

  /** One replica fewer on `node`: it moves ahead of every node of its group that is fuller. */
  decrement(node: number): void {
    const cluster = this.cluster;
    assert(this.load[node]! > 0, "a node without replicas cannot lose one");
    const b = cluster.nodeColor[node]! * cluster.rowCount + cluster.nodeRow[node]!;
    this.load[node]!--;
    this.bucketLoad[b]!--;
    const order = this.order;
    const from = this.position[node]!;
    let low = cluster.groupStart[cluster.nodeGroup[node]!]!;
    let high = from;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.compareFill(order[mid]!, node) <= 0) low = mid + 1;
      else high = mid;
    }
    const to = low;
    for (let i = from; i > to; i--) {
      const moved = order[i - 1]!;
      order[i] = moved;
      this.position[moved] = i;
    }
    order[to] = node;
    this.position[node] = to;
  }
}
