// Counting, for one failure event, the clients whose cell still has a reachable majority.
// A client counts only while its instance is up (the paper's P(volume available | instance
// available)); its cell is available when a majority of the cell's replicas are up and on
// the client's side of any partition (then they can also reach each other).

import type { Cluster } from "../../src/control/placement/cluster.ts";
import { majority } from "../../src/control/placement/rules.ts";
import type { FailureEvent } from "./events.ts";
import type { Workload } from "./workload.ts";

export interface Outcome {
  /** Clients whose instance is up. */
  readonly alive: number;
  /** Of those, clients whose cell has no reachable majority: the event's blast radius. */
  readonly lost: number;
}

export interface Evaluator {
  evaluate(event: FailureEvent): Outcome;
}

function clientsDown(workload: Workload, event: FailureEvent): number {
  if (event.rackDown === null) return 0;
  let down = 0;
  for (let r = 0; r < event.rackDown.length; r++) if (event.rackDown[r]) down += workload.clientsPerRack[r]!;
  return down;
}

/** Builds a compressed index: for each key, the cells that mention it. */
function invert(keys: Int32Array, keyCount: number, stride: number): { start: Int32Array; cells: Int32Array } {
  const start = new Int32Array(keyCount + 1);
  for (let i = 0; i < keys.length; i++) start[keys[i]! + 1]!++;
  for (let k = 0; k < keyCount; k++) start[k + 1]! += start[k]!;
  const fill = start.slice(0, keyCount);
  const cells = new Int32Array(keys.length);
  for (let i = 0; i < keys.length; i++) cells[fill[keys[i]!]!++] = Math.floor(i / stride);
  return { start, cells };
}

export interface Cells {
  readonly workload: Workload;
  /** One cell per client, `size` replicas each, in members[cell * size ..]. */
  readonly members: Int32Array;
  readonly size: number;
}

/** Many cells: one per client. */
export class CellEvaluator implements Evaluator {
  private readonly workload: Workload;
  private readonly members: Int32Array;
  private readonly size: number;
  private readonly byNode: { start: Int32Array; cells: Int32Array };
  private readonly byRack: { start: Int32Array; cells: Int32Array };
  private readonly seen: Int32Array;
  /** (epoch << 4) | count per cell: one random access per visit on the fast paths. */
  private readonly tally: Int32Array;
  private readonly tallied: Int32Array;
  private epoch = 0;

  constructor(
    private readonly cluster: Cluster,
    cells: Cells,
  ) {
    const { workload, members, size } = cells;
    this.workload = workload;
    this.members = members;
    this.size = size;
    this.byNode = invert(members, cluster.nodeCount, size);
    this.byRack = invert(workload.instanceRack, cluster.rackCount, 1);
    this.seen = new Int32Array(workload.cells);
    this.tally = new Int32Array(workload.cells);
    this.tallied = new Int32Array(workload.cells);
  }

  /** Counts, per cell, its members among `nodes`; returns how many cells have any. */
  private count(nodes: Int32Array, epoch: number): number {
    const tally = this.tally;
    const tallied = this.tallied;
    const start = this.byNode.start;
    const cells = this.byNode.cells;
    const stamp = epoch << 4;
    let distinct = 0;
    for (let k = 0; k < nodes.length; k++) {
      const node = nodes[k]!;
      const end = start[node + 1]!;
      for (let i = start[node]!; i < end; i++) {
        const cell = cells[i]!;
        const value = tally[cell]!;
        if (value >> 4 === epoch) tally[cell] = value + 1;
        else {
          tally[cell] = stamp + 1;
          tallied[distinct++] = cell;
        }
      }
    }
    return distinct;
  }

  /** Loss events: a cell is lost when its down members leave less than a majority. */
  private lostToLoss(event: FailureEvent, epoch: number): number {
    const distinct = this.count(event.touchedNodes!, epoch);
    const rackDown = event.rackDown;
    const instanceRack = this.workload.instanceRack;
    const canLose = this.size - majority(this.size);
    let lost = 0;
    for (let i = 0; i < distinct; i++) {
      const cell = this.tallied[i]!;
      if (rackDown !== null && rackDown[instanceRack[cell]!]) continue;
      if ((this.tally[cell]! & 15) > canLose) lost++;
    }
    return lost;
  }

  /** Cut events: a client sees only its side; counts are of members inside the cut. */
  private lostToCut(event: FailureEvent, epoch: number): number {
    const distinct = this.count(event.touchedNodes!, epoch);
    const side = event.rackSide!;
    const instanceRack = this.workload.instanceRack;
    const needed = majority(this.size);
    let lost = 0;
    for (let i = 0; i < distinct; i++) {
      const cell = this.tallied[i]!;
      const inside = this.tally[cell]! & 15;
      if ((side[instanceRack[cell]!] === 1 ? inside : this.size - inside) < needed) lost++;
    }
    // Clients inside the cut whose cells have no member there see nothing at all.
    const start = this.byRack.start;
    const cells = this.byRack.cells;
    const racks = event.touchedRacks!;
    for (let k = 0; k < racks.length; k++) {
      const rack = racks[k]!;
      for (let i = start[rack]!; i < start[rack + 1]!; i++) if (this.tally[cells[i]!]! >> 4 !== epoch) lost++;
    }
    return lost;
  }

  /** Is the cell unavailable to its client, who is up? -1 when the client is down. */
  private lostCell(cell: number, event: FailureEvent): number {
    const rack = this.workload.instanceRack[cell]!;
    if (event.rackDown !== null && event.rackDown[rack]) return -1;
    const side = event.rackSide === null ? 0 : event.rackSide[rack]!;
    const nodeRack = this.cluster.nodeRack;
    let reachable = 0;
    const base = cell * this.size;
    for (let j = 0; j < this.size; j++) {
      const node = this.members[base + j]!;
      if (event.nodeDown !== null && event.nodeDown[node]) continue;
      if (event.rackSide !== null && event.rackSide[nodeRack[node]!] !== side) continue;
      reachable++;
    }
    return reachable >= majority(this.size) ? 0 : 1;
  }

  /**
   * Lost clients among the cells that `keys` (nodes or racks) point at, each cell counted
   * once per epoch. The same rule as lostCell, inlined with everything in locals: this is
   * the hot loop of correlated events.
   */
  private lostAmong(index: { start: Int32Array; cells: Int32Array }, keys: Int32Array, epoch: number, event: FailureEvent): number {
    const { nodeDown, rackDown, rackSide } = event;
    const members = this.members;
    const size = this.size;
    const needed = majority(size);
    const seen = this.seen;
    const instanceRack = this.workload.instanceRack;
    const nodeRack = this.cluster.nodeRack;
    const start = index.start;
    const cells = index.cells;
    let lost = 0;
    for (let k = 0; k < keys.length; k++) {
      const key = keys[k]!;
      const end = start[key + 1]!;
      for (let i = start[key]!; i < end; i++) {
        const cell = cells[i]!;
        if (seen[cell] === epoch) continue;
        seen[cell] = epoch;
        const rack = instanceRack[cell]!;
        if (rackDown !== null && rackDown[rack]) continue;
        const side = rackSide === null ? 0 : rackSide[rack]!;
        let up = 0;
        for (let j = 0, base = cell * size; j < size; j++) {
          const node = members[base + j]!;
          if (nodeDown !== null && nodeDown[node]) continue;
          if (rackSide !== null && rackSide[nodeRack[node]!] !== side) continue;
          up++;
        }
        if (up < needed) lost++;
      }
    }
    return lost;
  }

  /** The hot loop of independent failures: only nodes are down, every client is up. */
  private lostToDownNodes(nodeDown: Uint8Array): number {
    const members = this.members;
    const size = this.size;
    const needed = majority(size);
    const cells = this.workload.cells;
    let lost = 0;
    for (let cell = 0, base = 0; cell < cells; cell++, base += size) {
      let up = 0;
      for (let j = 0; j < size; j++) up += nodeDown[members[base + j]!]! ^ 1;
      if (up < needed) lost++;
    }
    return lost;
  }

  evaluate(event: FailureEvent): Outcome {
    const alive = this.workload.cells - clientsDown(this.workload, event);
    let lost = 0;
    if (event.touchedNodes === null || event.touchedRacks === null) {
      if (event.nodeDown !== null && event.rackDown === null && event.rackSide === null) return { alive, lost: this.lostToDownNodes(event.nodeDown) };
      for (let cell = 0; cell < this.workload.cells; cell++) if (this.lostCell(cell, event) === 1) lost++;
      return { alive, lost };
    }
    const epoch = ++this.epoch;
    if (event.kind === "loss") return { alive, lost: this.lostToLoss(event, epoch) };
    if (event.kind === "cut") return { alive, lost: this.lostToCut(event, epoch) };
    lost += this.lostAmong(this.byNode, event.touchedNodes, epoch, event);
    lost += this.lostAmong(this.byRack, event.touchedRacks, epoch, event);
    return { alive, lost };
  }

  /** The same answer by looking at every cell: the incremental path is checked against it. */
  evaluateAll(event: FailureEvent): Outcome {
    return this.evaluate({ ...event, touchedNodes: null, touchedRacks: null });
  }

  /** The same answer by the general per-cell rule alone: the fast paths are checked against it. */
  evaluateGeneral(event: FailureEvent): Outcome {
    const alive = this.workload.cells - clientsDown(this.workload, event);
    let lost = 0;
    for (let cell = 0; cell < this.workload.cells; cell++) if (this.lostCell(cell, event) === 1) lost++;
    return { alive, lost };
  }
}

/** One consensus group of `members` serving every client. */
export class MonolithEvaluator implements Evaluator {
  private readonly workload: Workload;
  private readonly members: Int32Array;

  constructor(
    private readonly cluster: Cluster,
    group: { readonly workload: Workload; readonly members: Int32Array },
  ) {
    this.workload = group.workload;
    this.members = group.members;
  }

  evaluate(event: FailureEvent): Outcome {
    const alive = this.workload.cells - clientsDown(this.workload, event);
    let lost = 0;
    for (let rack = 0; rack < this.cluster.rackCount; rack++) {
      const clients = this.workload.clientsPerRack[rack]!;
      if (clients === 0 || (event.rackDown !== null && event.rackDown[rack])) continue;
      const side = event.rackSide === null ? 0 : event.rackSide[rack]!;
      let reachable = 0;
      for (const node of this.members) {
        if (event.nodeDown !== null && event.nodeDown[node]) continue;
        if (event.rackSide !== null && event.rackSide[this.cluster.nodeRack[node]!] !== side) continue;
        reachable++;
      }
      if (reachable < majority(this.members.length)) lost += clients;
    }
    return { alive, lost };
  }
}
