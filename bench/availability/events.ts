// Failure events of the evaluation. An event says which nodes are down, which racks'
// clients are down with them, and how the network is cut (a side per rack: two racks can
// talk exactly when they are on the same side). It also lists the nodes and racks it
// touches, so that only the cells with a replica or a client there need a look.

import type { Cluster } from "../../src/control/placement/cluster.ts";

export interface FailureEvent {
  /**
   * "loss": touchedNodes are exactly the down nodes, and nothing is cut. "cut": nothing is
   * down, and the touched racks (side 1) are cut off from the rest (side 0). "general":
   * anything else. The kind only selects a faster counting path; the rule is the same.
   */
  readonly kind: "loss" | "cut" | "general";
  readonly scenario: string;
  readonly label: string;
  /** 1 for a node that is down, or null when no node is down. */
  readonly nodeDown: Uint8Array | null;
  /** 1 for a rack whose clients are down too (they drop out of P(volume | instance)). */
  readonly rackDown: Uint8Array | null;
  /** The side of the partition each rack is on, or null when the network is whole. */
  readonly rackSide: Int32Array | null;
  /** Nodes whose state changed; null means every cell must be looked at. */
  readonly touchedNodes: Int32Array | null;
  /** Racks whose clients' view changed; null means every cell must be looked at. */
  readonly touchedRacks: Int32Array | null;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  readonly events: (cluster: Cluster) => Iterable<FailureEvent>;
}

function nodesWhere(cluster: Cluster, test: (node: number) => boolean): Int32Array {
  const nodes: number[] = [];
  for (let n = 0; n < cluster.nodeCount; n++) if (test(n)) nodes.push(n);
  return Int32Array.from(nodes);
}

function racksWhere(cluster: Cluster, test: (rack: number) => boolean): Int32Array {
  const racks: number[] = [];
  for (let r = 0; r < cluster.rackCount; r++) if (test(r)) racks.push(r);
  return Int32Array.from(racks);
}

function flags(length: number, indexes: Int32Array): Uint8Array {
  const result = new Uint8Array(length);
  for (const i of indexes) result[i] = 1;
  return result;
}

/** Everything in the chosen racks loses power or network: nodes and clients are down. */
function lossOf(cluster: Cluster, scenario: string, label: string, racks: Int32Array, nodes: Int32Array): FailureEvent {
  return {
    kind: "loss",
    scenario,
    label,
    nodeDown: flags(cluster.nodeCount, nodes),
    rackDown: flags(cluster.rackCount, racks),
    rackSide: null,
    touchedNodes: nodes,
    touchedRacks: racks,
  };
}

/** The chosen racks are cut off from the rest (and from each other when `alone`); all stay up. */
function cutOf(cluster: Cluster, scenario: string, label: string, racks: Int32Array): FailureEvent {
  const rackSide = new Int32Array(cluster.rackCount);
  for (const r of racks) rackSide[r] = 1;
  const inCut = flags(cluster.rackCount, racks);
  return {
    kind: "cut",
    scenario,
    label,
    nodeDown: null,
    rackDown: null,
    rackSide,
    touchedNodes: nodesWhere(cluster, (n) => inCut[cluster.nodeRack[n]!] === 1),
    touchedRacks: racks,
  };
}

function* each<T>(count: number, make: (i: number) => T): Iterable<T> {
  for (let i = 0; i < count; i++) yield make(i);
}

function racksOfRow(cluster: Cluster, row: number): number[] {
  const racks: number[] = [];
  for (let r = 0; r < cluster.rackCount; r++) if (cluster.rackRow[r] === row) racks.push(r);
  return racks;
}

export const correlatedScenarios: readonly Scenario[] = [
  {
    name: "rack loss",
    description: "one rack loses power or its top-of-rack switch: its nodes and its clients are down (every rack in turn)",
    events: (c) =>
      each(c.rackCount, (r) => lossOf(c, "rack loss", c.rackNames[r]!, Int32Array.of(r), nodesWhere(c, (n) => c.nodeRack[n] === r))),
  },
  {
    name: "row loss",
    description: "one row goes down: its nodes and clients are down (every row in turn)",
    events: (c) =>
      each(c.rowCount, (row) =>
        lossOf(c, "row loss", c.rowNames[row]!, racksWhere(c, (r) => c.rackRow[r] === row), nodesWhere(c, (n) => c.nodeRow[n] === row)),
      ),
  },
  {
    name: "power domain loss",
    description: "one power domain fails: every node on it, and clients in racks it feeds, are down (every domain in turn)",
    events: (c) =>
      each(c.powerCount, (p) =>
        lossOf(c, "power domain loss", c.powerNames[p]!, racksWhere(c, (r) => c.rackPower[r] === p), nodesWhere(c, (n) => c.nodePower[n] === p)),
      ),
  },
  {
    name: "bad deployment",
    description: "a bad release reaches one color and is stopped there: every node of that color crashes; clients stay up (every color in turn)",
    events: (c) =>
      each(c.colorCount, (color) => {
        const nodes = nodesWhere(c, (n) => c.nodeColor[n] === color);
        return { ...lossOf(c, "bad deployment", c.colorNames[color]!, new Int32Array(0), nodes), rackDown: null };
      }),
  },
  {
    name: "rack cut off",
    description: "one rack's uplinks fail: the rack is up but talks only to itself (every rack in turn)",
    events: (c) => each(c.rackCount, (r) => cutOf(c, "rack cut off", c.rackNames[r]!, Int32Array.of(r))),
  },
  {
    name: "half row cut off",
    description: "half of one row's racks are cut off from everything else, including the other half of the row (every row in turn)",
    events: (c) =>
      each(c.rowCount, (row) => {
        const racks = racksOfRow(c, row);
        return cutOf(c, "half row cut off", c.rowNames[row]!, Int32Array.from(racks.slice(0, Math.floor(racks.length / 2))));
      }),
  },
  {
    name: "row cut off",
    description: "one row is cut off from the rest of the datacenter; it still works inside (every row in turn)",
    events: (c) => each(c.rowCount, (row) => cutOf(c, "row cut off", c.rowNames[row]!, racksWhere(c, (r) => c.rackRow[r] === row))),
  },
  {
    name: "rows apart",
    description: "the spine fails: every row is cut off from every other row; each still works inside",
    events: (c) => [
      {
        kind: "general",
        scenario: "rows apart",
        label: "all rows",
        nodeDown: null,
        rackDown: null,
        rackSide: Int32Array.from(c.rackRow),
        touchedNodes: null,
        touchedRacks: null,
      },
    ],
  },
];

/** Every node fails independently with probability `fraction`; clients stay up. */
export function independentFailure(cluster: Cluster, fraction: number, random: () => number): FailureEvent {
  const nodeDown = new Uint8Array(cluster.nodeCount);
  for (let n = 0; n < cluster.nodeCount; n++) nodeDown[n] = random() < fraction ? 1 : 0;
  return {
    kind: "general",
    scenario: "independent",
    label: `${fraction}`,
    nodeDown,
    rackDown: null,
    rackSide: null,
    touchedNodes: null,
    touchedRacks: null,
  };
}
