// The placement service of the control plane: it owns a model of per-node load and answers
// "where does this new cell go", "what replaces this failed node" and "how does this cell
// follow its clients", committing each answer's load changes as it gives it.
//
// Two faces: one in the names of the topology file (place, repair, move) and one over
// integer indexes (placeIndexes) for callers that place millions of cells.

import { assert } from "../../core/assert.ts";
import { controlLimits } from "../limits.ts";
import type { Topology } from "../topology/types.ts";
import { bucketRange, buildCluster, type Cluster } from "./cluster.ts";
import { LoadState } from "./load.ts";
import { brokenRules, cellShape, type Constraint, spreadCap } from "./rules.ts";
import { lastInRowLevel, levels, Selector } from "./select.ts";
import {
  type CellClients,
  type CellPlacement,
  type MovePlan,
  type MoveRequest,
  type MoveStep,
  type PlaceRequest,
  PlacementError,
  type Repair,
  type RepairRequest,
} from "./types.ts";

export interface PlacerOptions {
  /** Cell replicas each node already hosts, by node id; missing nodes host none. */
  readonly load?: ReadonlyMap<string, number>;
}

/** A cell request over indexes: rows are cluster row indexes. */
export interface IndexedCellRequest {
  readonly size: number;
  readonly color: number;
  readonly instanceRow: number;
  readonly primaryRow: number;
  readonly replicaRow: number;
  readonly salt: number;
}

/**
 * The row a cell is placed in: the storage servers' row when they share one (the volume
 * is only usable where both the instance and its storage can reach it), else the instance's.
 */
export function targetRow(instanceRow: number, primaryRow: number, replicaRow: number): number {
  return primaryRow === replicaRow ? primaryRow : instanceRow;
}

const levelAll = levels.length - 1;

interface OneNodeChoice {
  readonly fixed: readonly number[];
  readonly exclude: readonly number[];
  readonly row: number;
  readonly rows: readonly [number, number, number];
  readonly salt: number;
  readonly levelMax: number;
}
const noNodes = new Int32Array(0);

export class Placer {
  readonly cluster: Cluster;
  readonly loads: LoadState;
  private readonly selector: Selector;
  private readonly nearRows = new Int32Array(2);
  private readonly scratch = new Int32Array(controlLimits.cellSizeMax);
  private saltCounter = 0;

  constructor(topology: Topology | Cluster, options: PlacerOptions = {}) {
    this.cluster = "nodeIndex" in topology ? topology : buildCluster(topology);
    const initial = new Int32Array(this.cluster.nodeCount);
    for (const [id, load] of options.load ?? []) {
      const index = this.cluster.nodeIndex.get(id);
      assert(index !== undefined, `load given for unknown node "${id}"`);
      assert(Number.isInteger(load) && load >= 0, "loads are non-negative integers");
      initial[index] = load;
    }
    this.loads = new LoadState(this.cluster, initial);
    this.selector = new Selector(this.cluster, this.loads);
  }

  /** Cell replicas hosted by a node. */
  loadOf(nodeId: string): number {
    const index = this.cluster.nodeIndex.get(nodeId);
    return index === undefined ? 0 : this.loads.load[index]!;
  }

  /** The color whose nodes in `row` are least full, or -1 if the row has no nodes. */
  leastLoadedColor(row: number): number {
    let best = -1;
    let bestLoad = 0;
    let bestCapacity = 1;
    for (let c = 0; c < this.cluster.colorCount; c++) {
      const b = c * this.cluster.rowCount + row;
      const capacity = this.loads.bucketCapacity[b]!;
      if (capacity === 0) continue;
      const load = this.loads.bucketLoad[b]!;
      if (best < 0 || load * bestCapacity < bestLoad * capacity) {
        best = c;
        bestLoad = load;
        bestCapacity = capacity;
      }
    }
    return best;
  }

  /**
   * Places one cell and commits its load. Writes `size` node indexes to out[offset ..] and
   * returns the rule level used (0: every rule held; see `levels`), or -1 when the color
   * has too few usable nodes.
   */
  placeIndexes(request: IndexedCellRequest, out: Int32Array, offset: number): number {
    const row = targetRow(request.instanceRow, request.primaryRow, request.replicaRow);
    const near = this.nearRows;
    near[0] = request.instanceRow === row ? request.primaryRow : request.instanceRow;
    near[1] = request.replicaRow === row ? near[0]! : request.replicaRow;
    const level = this.selector.select(
      {
        size: request.size,
        color: request.color,
        targetRow: row,
        nearRows: near,
        fixed: noNodes,
        exclude: noNodes,
        need: request.size,
        salt: request.salt,
        levelMax: levelAll,
      },
      out,
      offset,
    );
    if (level >= 0) for (let i = 0; i < request.size; i++) this.loads.increment(out[offset + i]!);
    return level;
  }

  /** Forgets a cell's load, as when the cell is deleted. */
  releaseIndexes(nodes: ArrayLike<number>): void {
    for (let i = 0; i < nodes.length; i++) this.loads.decrement(nodes[i]!);
  }

  place(request: PlaceRequest): CellPlacement | PlacementError {
    const what = "Cannot place cell";
    const size = request.size ?? controlLimits.cellSizeDefault;
    if (!Number.isInteger(size) || size < 1 || size > controlLimits.cellSizeMax) {
      return new PlacementError(`${what}: size must be an integer from 1 to ${controlLimits.cellSizeMax}`);
    }
    const color = this.colorOf(what, request.color);
    if (color instanceof PlacementError) return color;
    const rows = this.rowsOf(what, request.clients);
    if (rows instanceof PlacementError) return rows;
    const out = new Int32Array(size);
    const level = this.placeIndexes(
      { size, color, instanceRow: rows[0], primaryRow: rows[1], replicaRow: rows[2], salt: request.salt ?? this.nextSalt() },
      out,
      0,
    );
    if (level < 0) return new PlacementError(`${what}: ${this.shortage(color, size)}`);
    return this.describe(Array.from(out), color, targetRow(...rows), size);
  }

  repair(request: RepairRequest): Repair | PlacementError {
    const what = "Cannot repair cell";
    const cell = this.existingCell(what, request);
    if (cell instanceof PlacementError) return cell;
    const { color, rows, members } = cell;
    const failed = this.cluster.nodeIndex.get(request.failed);
    const slot = failed === undefined ? -1 : members.indexOf(failed);
    if (failed === undefined || slot < 0) return new PlacementError(`${what}: node "${request.failed}" is not a member of the cell`);
    const down: number[] = [];
    for (const id of request.down ?? []) {
      const index = this.cluster.nodeIndex.get(id);
      if (index === undefined) return new PlacementError(`${what}: down node "${id}" is not in the topology`);
      down.push(index);
    }
    const row = targetRow(...rows);
    const fixed = members.filter((node) => node !== failed);
    const level = this.selectOne(members, { fixed, exclude: [...members, ...down], row, rows, salt: request.salt ?? this.nextSalt(), levelMax: levelAll });
    if (level < 0) return new PlacementError(`${what}: ${this.shortage(color, members.length)}`);
    const added = this.scratch[0]!;
    this.unload(failed);
    this.loads.increment(added);
    const nodes = [...members];
    nodes[slot] = added;
    const placement = this.describe(nodes, color, row, nodes.length);
    return { ...placement, removed: request.failed, added: this.cluster.nodeIds[added]! };
  }

  /**
   * The single-node replacements that bring a cell into its clients' row, committed one by
   * one: first every member outside the row is replaced by the best node inside it, then
   * members that crowd one rack or power domain are replaced while that strictly helps.
   * Every intermediate membership has the cell's size and distinct nodes of its color.
   */
  move(request: MoveRequest): MovePlan | PlacementError {
    const what = "Cannot move cell";
    const cell = this.existingCell(what, request);
    if (cell instanceof PlacementError) return cell;
    const { color, rows, members } = cell;
    const row = targetRow(...rows);
    const salt = request.salt ?? this.nextSalt();
    const steps: MoveStep[] = [];
    const cap = spreadCap(members.length);
    for (let round = 0; round < 2 * members.length; round++) {
      let victim = members.find((node) => this.cluster.nodeRow[node] !== row);
      let levelMax = lastInRowLevel;
      if (victim === undefined) {
        victim = this.crowded(members, cap);
        levelMax = 0;
      }
      if (victim === undefined) break;
      const fixed = members.filter((node) => node !== victim);
      if (this.selectOne(members, { fixed, exclude: members, row, rows, salt: salt + round, levelMax }) < 0) break;
      const added = this.scratch[0]!;
      this.unload(victim);
      this.loads.increment(added);
      members[members.indexOf(victim)] = added;
      steps.push({ remove: this.cluster.nodeIds[victim]!, add: this.cluster.nodeIds[added]! });
    }
    return { ...this.describe(members, color, row, members.length), steps };
  }

  /**
   * One replica fewer on a node. The load model is the placer's view, not the truth: a cell
   * placed before this placer existed may not be counted on its nodes, so an empty node
   * stays at zero instead of going negative.
   */
  private unload(node: number): void {
    if (this.loads.load[node]! > 0) this.loads.decrement(node);
  }

  /** A member in a rack or power domain holding more than `cap` of the cell, if any. */
  private crowded(members: readonly number[], cap: number): number | undefined {
    const c = this.cluster;
    const over = (key: (node: number) => number): number | undefined => {
      const counts = new Map<number, number>();
      for (const node of members) counts.set(key(node), (counts.get(key(node)) ?? 0) + 1);
      return members.findLast((node) => counts.get(key(node))! > cap);
    };
    return over((node) => c.nodeRack[node]!) ?? over((node) => c.nodePower[node]!);
  }

  /** Chooses one node for a cell of `members` (into scratch[0]); returns the level or -1. */
  private selectOne(members: readonly number[], choice: OneNodeChoice): number {
    const { row, rows } = choice;
    return this.selector.select(
      {
        size: members.length,
        color: this.cluster.nodeColor[members[0]!]!,
        targetRow: row,
        nearRows: rows.filter((r) => r !== row),
        fixed: choice.fixed,
        exclude: choice.exclude,
        need: 1,
        salt: choice.salt,
        levelMax: choice.levelMax,
      },
      this.scratch,
      0,
    );
  }

  private nextSalt(): number {
    this.saltCounter = (this.saltCounter + 1) >>> 0;
    return this.saltCounter;
  }

  /** The color, client rows and member indexes of an existing cell, checked. */
  private existingCell(what: string, request: { readonly color: string; readonly clients: CellClients; readonly nodes: readonly string[] }): { color: number; rows: [number, number, number]; members: number[] } | PlacementError {
    const color = this.colorOf(what, request.color);
    if (color instanceof PlacementError) return color;
    const rows = this.rowsOf(what, request.clients);
    if (rows instanceof PlacementError) return rows;
    const members = this.membersOf(what, request.nodes, color);
    if (members instanceof PlacementError) return members;
    return { color, rows, members };
  }

  private colorOf(what: string, name: string): number | PlacementError {
    const color = this.cluster.colorIndex.get(name);
    return color === undefined ? new PlacementError(`${what}: color "${name}" is not in the topology`) : color;
  }

  private rowsOf(what: string, clients: CellClients): [number, number, number] | PlacementError {
    const rows: number[] = [];
    for (const [role, client] of [
      ["instance", clients.instance],
      ["primary", clients.primary],
      ["replica", clients.replica],
    ] as const) {
      const row = this.cluster.rowIndex.get(client.row);
      if (row === undefined) return new PlacementError(`${what}: the ${role}'s row "${client.row}" has no nodes`);
      rows.push(row);
    }
    return [rows[0]!, rows[1]!, rows[2]!];
  }

  private membersOf(what: string, ids: readonly string[], color: number): number[] | PlacementError {
    if (ids.length < 1 || ids.length > controlLimits.cellSizeMax) {
      return new PlacementError(`${what}: a cell has from 1 to ${controlLimits.cellSizeMax} nodes`);
    }
    const members: number[] = [];
    for (const id of ids) {
      const index = this.cluster.nodeIndex.get(id);
      if (index === undefined) return new PlacementError(`${what}: node "${id}" is not in the topology`);
      if (members.includes(index)) return new PlacementError(`${what}: node "${id}" is listed twice`);
      if (this.cluster.nodeColor[index] !== color) {
        return new PlacementError(`${what}: node "${id}" is ${this.cluster.colorNames[this.cluster.nodeColor[index]!]}, not ${this.cluster.colorNames[color]}`);
      }
      members.push(index);
    }
    return members;
  }

  private shortage(color: number, size: number): string {
    let usable = 0;
    for (let i = 0; i < this.cluster.nodeCount; i++) {
      if (this.cluster.nodeColor[i] === color && this.loads.hasRoom(i)) usable++;
    }
    return `color "${this.cluster.colorNames[color]}" has ${usable} nodes with room for another replica; the cell needs ${size}`;
  }

  private describe(nodes: readonly number[], color: number, row: number, size: number): CellPlacement {
    const relaxed = brokenRules(cellShape(this.cluster, nodes, row));
    const colorName = this.cluster.colorNames[color]!;
    const rowName = this.cluster.rowNames[row]!;
    const cap = spreadCap(size);
    const reasons = relaxed.map((rule: Constraint): string => {
      switch (rule) {
        case "power":
          return `no choice of ${colorName} nodes near row "${rowName}" keeps at most ${cap} of ${size} replicas in each power domain`;
        case "racks":
          return `no choice of ${colorName} nodes near row "${rowName}" keeps at most ${cap} of ${size} replicas in each rack`;
        case "row":
          return `row "${rowName}" has fewer than ${size} ${colorName} nodes with room for a replica (it has ${this.nodesInRow(color, row)} ${colorName} nodes)`;
      }
    });
    return { nodes: nodes.map((n) => this.cluster.nodeIds[n]!), color: colorName, row: rowName, relaxed, reasons };
  }

  private nodesInRow(color: number, row: number): number {
    const [start, end] = bucketRange(this.cluster, color, row);
    return this.cluster.groupStart[end]! - this.cluster.groupStart[start]!;
  }
}
