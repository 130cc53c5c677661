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

/** Many cells: one per client, `size` replicas each, in members[cell * size ..]. */
export class CellEvaluator implements Evaluator {
  private readonly byNode: { start: Int32Array; cells: Int32Array };
  private readonly byRack: { start: Int32Array; cells: Int32Array };
  private readonly seen: Int32Array;
  private epoch = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly workload: Workload,
    private readonly members: Int32Array,
    private readonly size: number,
  ) {
    this.byNode = invert(members, cluster.nodeCount, size);
    this.byRack = invert(workload.instanceRack, cluster.rackCount, 1);
    this.seen = new Int32Array(workload.cells);
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

  evaluate(event: FailureEvent): Outcome {
    const alive = this.workload.cells - clientsDown(this.workload, event);
    let lost = 0;
    if (event.touchedNodes === null || event.touchedRacks === null) {
      for (let cell = 0; cell < this.workload.cells; cell++) if (this.lostCell(cell, event) === 1) lost++;
      return { alive, lost };
    }
    const epoch = ++this.epoch;
    const visit = (index: { start: Int32Array; cells: Int32Array }, keys: Int32Array): void => {
      for (const key of keys) {
        for (let i = index.start[key]!; i < index.start[key + 1]!; i++) {
          const cell = index.cells[i]!;
          if (this.seen[cell] === epoch) continue;
          this.seen[cell] = epoch;
          if (this.lostCell(cell, event) === 1) lost++;
        }
      }
    };
    visit(this.byNode, event.touchedNodes);
    visit(this.byRack, event.touchedRacks);
    return { alive, lost };
  }

  /** The same answer by looking at every cell: the incremental path is checked against it. */
  evaluateAll(event: FailureEvent): Outcome {
    return this.evaluate({ ...event, touchedNodes: null, touchedRacks: null });
  }
}

/** One consensus group of `members` serving every client. */
export class MonolithEvaluator implements Evaluator {
  constructor(
    private readonly cluster: Cluster,
    private readonly workload: Workload,
    private readonly members: Int32Array,
  ) {}

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
