// Choosing nodes for a cell: the core of placement, repair and move. It extends a set of
// fixed members by `need` nodes of one color, trying rule levels in a fixed order (see
// `levels`) and returning the first level at which the rules hold.
//
// At each level a greedy pass takes, one node at a time, the best usable node by
// (row rank, replicas already in its rack, replicas already in its power domain, fill,
// a per-cell hash of its group). The candidates are only the front node of each group in
// range, so a step costs one look per group of the row (tens), not one per node (thousands).
// The greedy pass can paint itself into a corner (power caps used up by an unlucky choice
// of racks); then an exact max-flow check decides whether the level is feasible at all,
// and a careful pass keeps only choices after which the rest still fits.

import { assert } from "../../core/assert.ts";
import { controlLimits } from "../limits.ts";
import { bucketRange, type Cluster, colorRange } from "./cluster.ts";
import { FlowGraph } from "./flow.ts";
import type { LoadState } from "./load.ts";
import { spreadCap } from "./rules.ts";

export interface Level {
  /** May nodes come from rows other than the target row? */
  readonly spill: boolean;
  /** Is the rack cap enforced? */
  readonly racks: boolean;
  /** Is the power domain cap enforced? */
  readonly power: boolean;
}

/**
 * The documented fallback order: all rules; then power domains relaxed; then racks too
 * (still inside the row); then the same three again with other rows allowed. Color,
 * distinct nodes and capacity are never relaxed. Relaxed rules still steer the choice:
 * replicas are spread over as many racks and domains as the candidates allow.
 */
export const levels: readonly Level[] = [
  { spill: false, racks: true, power: true },
  { spill: false, racks: true, power: false },
  { spill: false, racks: false, power: false },
  { spill: true, racks: true, power: true },
  { spill: true, racks: true, power: false },
  { spill: true, racks: false, power: false },
];

/** The last level that keeps every replica in the target row. */
export const lastInRowLevel = 2;

export interface SelectionRequest {
  /** The cell's size once complete: the caps follow from it. */
  readonly size: number;
  readonly color: number;
  readonly targetRow: number;
  /** Rows preferred after the target row when replicas must leave it (the other clients' rows). */
  readonly nearRows: ArrayLike<number>;
  /** Members that stay; they count toward the caps and are never chosen again. */
  readonly fixed: ArrayLike<number>;
  /** Nodes that must not be chosen (failed nodes, members being replaced). */
  readonly exclude: ArrayLike<number>;
  readonly need: number;
  /** Breaks ties between equally full nodes, so that cells get different mixes of nodes. */
  readonly salt: number;
  /** The highest level to try: `lastInRowLevel` keeps the cell in its row. */
  readonly levelMax: number;
}

/** Murmur3's finalizer: a bijection on 32-bit integers with good avalanche. */
function mix(value: number): number {
  let h = value | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The private methods take positional arguments rather than an options object: they run
 * several times per replica placed, millions of times per run, and must not allocate.
 */
export class Selector {
  private readonly cluster: Cluster;
  private readonly loads: LoadState;
  /** taken[node] === epoch: fixed, excluded or chosen in the current attempt. */
  private readonly taken: Int32Array;
  private epoch = 0;
  private readonly rackUsed: Int32Array;
  private readonly powerUsed: Int32Array;
  private readonly rowRank: Int8Array;
  private readonly rackLocal: Int32Array;
  private readonly powerLocal: Int32Array;
  private readonly chosen = new Int32Array(controlLimits.cellSizeMax);
  private chosenCount = 0;

  constructor(cluster: Cluster, loads: LoadState) {
    this.cluster = cluster;
    this.loads = loads;
    this.taken = new Int32Array(cluster.nodeCount);
    this.rackUsed = new Int32Array(cluster.rackCount);
    this.powerUsed = new Int32Array(cluster.powerCount);
    this.rowRank = new Int8Array(cluster.rowCount).fill(2);
    this.rackLocal = new Int32Array(cluster.rackCount).fill(-1);
    this.powerLocal = new Int32Array(cluster.powerCount).fill(-1);
  }

  /**
   * Writes `need` nodes to out[offset ..] and returns the level used, or -1 when even the
   * last allowed level cannot find them. Loads are not changed: the caller commits.
   */
  select(request: SelectionRequest, out: Int32Array, offset: number): number {
    const { size, need, fixed } = request;
    assert(size >= 1 && size <= controlLimits.cellSizeMax, "cell size within limits");
    assert(need >= 0 && need + fixed.length <= size, "a cell never grows past its size");
    assert(request.levelMax >= 0 && request.levelMax < levels.length, "a known level");
    const cluster = this.cluster;
    for (let i = 0; i < request.nearRows.length; i++) this.rowRank[request.nearRows[i]!] = 1;
    this.rowRank[request.targetRow] = 0;
    let result = -1;
    for (let level = 0; level <= request.levelMax && result < 0; level++) {
      const rules = levels[level]!;
      const [start, end] = rules.spill ? colorRange(cluster, request.color) : bucketRange(cluster, request.color, request.targetRow);
      const cap = spreadCap(size);
      const rackCap = rules.racks ? cap : controlLimits.cellSizeMax;
      const powerCap = rules.power ? cap : controlLimits.cellSizeMax;
      this.begin(request);
      let done = this.greedy(start, end, need, rackCap, powerCap, request.salt);
      if (!done) {
        this.end(request);
        this.begin(request);
        done = this.feasible(start, end, need, rackCap, powerCap) && this.careful(start, end, need, rackCap, powerCap, request.salt);
      }
      if (done) {
        assert(this.chosenCount === need, "a finished selection has every node it needs");
        for (let i = 0; i < need; i++) out[offset + i] = this.chosen[i]!;
        result = level;
      }
      this.end(request);
    }
    for (let i = 0; i < request.nearRows.length; i++) this.rowRank[request.nearRows[i]!] = 2;
    this.rowRank[request.targetRow] = 2;
    return result;
  }

  private begin(request: SelectionRequest): void {
    this.epoch++;
    this.chosenCount = 0;
    for (let i = 0; i < request.exclude.length; i++) this.taken[request.exclude[i]!] = this.epoch;
    for (let i = 0; i < request.fixed.length; i++) {
      const node = request.fixed[i]!;
      this.taken[node] = this.epoch;
      this.rackUsed[this.cluster.nodeRack[node]!]!++;
      this.powerUsed[this.cluster.nodePower[node]!]!++;
    }
  }

  private end(request: SelectionRequest): void {
    for (let i = 0; i < request.fixed.length; i++) {
      const node = request.fixed[i]!;
      this.rackUsed[this.cluster.nodeRack[node]!] = 0;
      this.powerUsed[this.cluster.nodePower[node]!] = 0;
    }
    for (let i = 0; i < this.chosenCount; i++) {
      const node = this.chosen[i]!;
      this.rackUsed[this.cluster.nodeRack[node]!] = 0;
      this.powerUsed[this.cluster.nodePower[node]!] = 0;
    }
    this.chosenCount = 0;
  }

  private take(node: number): void {
    this.taken[node] = this.epoch;
    this.rackUsed[this.cluster.nodeRack[node]!]!++;
    this.powerUsed[this.cluster.nodePower[node]!]!++;
    this.chosen[this.chosenCount++] = node;
  }

  private untake(): void {
    const node = this.chosen[--this.chosenCount]!;
    this.taken[node] = 0;
    this.rackUsed[this.cluster.nodeRack[node]!]!--;
    this.powerUsed[this.cluster.nodePower[node]!]!--;
  }

  /** The least-full node of group g that is neither taken nor full, or -1. */
  private front(g: number): number {
    const order = this.loads.order;
    const load = this.loads.load;
    const capacity = this.cluster.nodeCapacity;
    const end = this.cluster.groupStart[g + 1]!;
    for (let i = this.cluster.groupStart[g]!; i < end; i++) {
      const node = order[i]!;
      if (this.taken[node] !== this.epoch && load[node]! < capacity[node]!) return node;
    }
    return -1;
  }

  /** Negative when candidate (a in group ga) should be chosen before (b in group gb). */
  private compare(a: number, ga: number, b: number, gb: number, salt: number): number {
    const c = this.cluster;
    const keyA = (this.rowRank[c.groupRow[ga]!]! * 64 + this.rackUsed[c.groupRack[ga]!]!) * 64 + this.powerUsed[c.groupPower[ga]!]!;
    const keyB = (this.rowRank[c.groupRow[gb]!]! * 64 + this.rackUsed[c.groupRack[gb]!]!) * 64 + this.powerUsed[c.groupPower[gb]!]!;
    if (keyA !== keyB) return keyA - keyB;
    const fill = this.loads.compareFill(a, b);
    if (fill !== 0) return fill;
    return mix(ga ^ salt) - mix(gb ^ salt);
  }

  private greedy(start: number, end: number, need: number, rackCap: number, powerCap: number, salt: number): boolean {
    // The hot loop of placement: everything it reads is hoisted into locals, and the
    // comparison is inlined. It must agree with `compare`.
    const c = this.cluster;
    const groupRack = c.groupRack;
    const groupPower = c.groupPower;
    const groupRow = c.groupRow;
    const groupStart = c.groupStart;
    const capacity = c.nodeCapacity;
    const order = this.loads.order;
    const load = this.loads.load;
    const taken = this.taken;
    const epoch = this.epoch;
    const rackUsed = this.rackUsed;
    const powerUsed = this.powerUsed;
    const rowRank = this.rowRank;
    for (let step = 0; step < need; step++) {
      let best = -1;
      let bestGroup = -1;
      let bestKey = 0;
      /** mix(bestGroup ^ salt), computed only when a tie needs it. */
      let bestHash = -1;
      for (let g = start; g < end; g++) {
        const rackCount = rackUsed[groupRack[g]!]!;
        const powerCount = powerUsed[groupPower[g]!]!;
        if (rackCount >= rackCap || powerCount >= powerCap) continue;
        const key = (rowRank[groupRow[g]!]! * 64 + rackCount) * 64 + powerCount;
        if (best >= 0 && key > bestKey) continue;
        let node = -1;
        const stop = groupStart[g + 1]!;
        for (let i = groupStart[g]!; i < stop; i++) {
          const candidate = order[i]!;
          if (taken[candidate] !== epoch && load[candidate]! < capacity[candidate]!) {
            node = candidate;
            break;
          }
        }
        if (node < 0) continue;
        let hash = -1;
        if (best >= 0 && key === bestKey) {
          const fill = load[node]! * capacity[best]! - load[best]! * capacity[node]!;
          if (fill > 0) continue;
          if (fill === 0) {
            if (bestHash < 0) bestHash = mix(bestGroup ^ salt);
            hash = mix(g ^ salt);
            if (hash > bestHash) continue;
          }
        }
        best = node;
        bestGroup = g;
        bestKey = key;
        bestHash = hash;
      }
      if (best < 0) return false;
      this.take(best);
    }
    return true;
  }

  /** Like greedy, but a choice is kept only if the remaining replicas still fit the caps. */
  private careful(start: number, end: number, need: number, rackCap: number, powerCap: number, salt: number): boolean {
    const c = this.cluster;
    for (let step = 0; step < need; step++) {
      const candidates: [number, number][] = [];
      for (let g = start; g < end; g++) {
        if (this.rackUsed[c.groupRack[g]!]! >= rackCap || this.powerUsed[c.groupPower[g]!]! >= powerCap) continue;
        const node = this.front(g);
        if (node >= 0) candidates.push([node, g]);
      }
      candidates.sort((x, y) => this.compare(x[0], x[1], y[0], y[1], salt));
      let kept = false;
      for (const [node] of candidates) {
        this.take(node);
        if (this.feasible(start, end, need - step - 1, rackCap, powerCap)) {
          kept = true;
          break;
        }
        this.untake();
      }
      if (!kept) return false;
    }
    return true;
  }

  /**
   * Can `need` more usable nodes from groups [start, end) be taken without any rack going
   * over rackCap or any power domain over powerCap? Exact: a max flow from racks to power
   * domains, with one edge per group carrying its usable nodes.
   */
  private feasible(start: number, end: number, need: number, rackCap: number, powerCap: number): boolean {
    if (need === 0) return true;
    const c = this.cluster;
    const racks: number[] = [];
    const powers: number[] = [];
    const edges: [number, number, number][] = [];
    for (let g = start; g < end; g++) {
      const rack = c.groupRack[g]!;
      const power = c.groupPower[g]!;
      if (this.rackUsed[rack]! >= rackCap || this.powerUsed[power]! >= powerCap) continue;
      let usable = 0;
      for (let i = c.groupStart[g]!; i < c.groupStart[g + 1]!; i++) {
        const node = this.loads.order[i]!;
        if (this.taken[node] !== this.epoch && this.loads.hasRoom(node)) usable++;
      }
      if (usable === 0) continue;
      if (this.rackLocal[rack] === -1) {
        this.rackLocal[rack] = racks.length;
        racks.push(rack);
      }
      if (this.powerLocal[power] === -1) {
        this.powerLocal[power] = powers.length;
        powers.push(power);
      }
      edges.push([this.rackLocal[rack]!, this.powerLocal[power]!, usable]);
    }
    // Vertices: 0 source, 1 sink, then racks, then power domains.
    const graph = new FlowGraph(2 + racks.length + powers.length);
    racks.forEach((rack, i) => graph.addEdge(0, 2 + i, rackCap - this.rackUsed[rack]!));
    powers.forEach((power, i) => graph.addEdge(2 + racks.length + i, 1, powerCap - this.powerUsed[power]!));
    for (const [rack, power, usable] of edges) graph.addEdge(2 + rack, 2 + racks.length + power, usable);
    for (const rack of racks) this.rackLocal[rack] = -1;
    for (const power of powers) this.powerLocal[power] = -1;
    return graph.maxFlow(0, 1, need) >= need;
  }
}
