// The topology as integer-indexed typed arrays, built once, so that placing a million cells
// never touches a string. Nodes are grouped by (color, row, rack, power domain): all nodes
// of one group are interchangeable for every placement rule, and differ only in load.
// Groups are stored in (color, row, rack, power) order, so the groups of one color in one
// row (a "bucket") are a contiguous range, and so are all the groups of one color.

import { assert } from "../../core/assert.ts";
import type { Topology } from "../topology/types.ts";

export interface Cluster {
  readonly topology: Topology;
  readonly nodeCount: number;
  readonly rowCount: number;
  readonly rackCount: number;
  readonly powerCount: number;
  readonly colorCount: number;

  readonly nodeIds: readonly string[];
  readonly nodeIndex: ReadonlyMap<string, number>;
  readonly nodeRow: Int32Array;
  readonly nodeRack: Int32Array;
  readonly nodePower: Int32Array;
  readonly nodeColor: Int32Array;
  readonly nodeCapacity: Int32Array;
  readonly nodeGroup: Int32Array;

  readonly rowNames: readonly string[];
  readonly rackNames: readonly string[];
  readonly powerNames: readonly string[];
  readonly colorNames: readonly string[];
  readonly rowIndex: ReadonlyMap<string, number>;
  readonly rackIndex: ReadonlyMap<string, number>;
  readonly powerIndex: ReadonlyMap<string, number>;
  readonly colorIndex: ReadonlyMap<string, number>;
  /** The row of every rack, including racks that only clients occupy. */
  readonly rackRow: Int32Array;
  /** The power domain most of a rack's nodes hang off, or -1 for a rack without nodes. */
  readonly rackPower: Int32Array;

  readonly groupCount: number;
  readonly groupRow: Int32Array;
  readonly groupRack: Int32Array;
  readonly groupPower: Int32Array;
  readonly groupColor: Int32Array;
  /** Group g's nodes are groupNodes[groupStart[g] .. groupStart[g + 1]). */
  readonly groupStart: Int32Array;
  readonly groupNodes: Int32Array;
  /** Bucket b = color * rowCount + row holds groups bucketStart[b] .. bucketStart[b + 1]. */
  readonly bucketStart: Int32Array;
}

function indexNames(names: Iterable<string>): { names: string[]; index: Map<string, number> } {
  const index = new Map<string, number>();
  for (const name of names) if (!index.has(name)) index.set(name, index.size);
  return { names: [...index.keys()], index };
}

function lookup(map: ReadonlyMap<string, number>, name: string): number {
  const value = map.get(name);
  assert(value !== undefined, `unknown name "${name}" in a validated topology`);
  return value;
}

export function buildCluster(topology: Topology): Cluster {
  const nodes = topology.nodes;
  const nodeCount = nodes.length;
  const rows = indexNames(nodes.map((n) => n.row));
  const racks = indexNames([...nodes.map((n) => n.rack), ...topology.clients.map((c) => c.rack)]);
  const powers = indexNames(topology.powerDomains);
  const colors = indexNames(topology.colors);
  const nodeIndex = new Map<string, number>();
  const nodeRow = new Int32Array(nodeCount);
  const nodeRack = new Int32Array(nodeCount);
  const nodePower = new Int32Array(nodeCount);
  const nodeColor = new Int32Array(nodeCount);
  const nodeCapacity = new Int32Array(nodeCount);
  nodes.forEach((node, i) => {
    nodeIndex.set(node.id, i);
    nodeRow[i] = lookup(rows.index, node.row);
    nodeRack[i] = lookup(racks.index, node.rack);
    nodePower[i] = lookup(powers.index, node.power);
    nodeColor[i] = lookup(colors.index, node.color);
    nodeCapacity[i] = node.capacity;
  });
  assert(nodeIndex.size === nodeCount, "node ids are unique in a validated topology");

  const rackRow = new Int32Array(racks.names.length).fill(-1);
  for (const node of nodes) rackRow[lookup(racks.index, node.rack)] = lookup(rows.index, node.row);
  for (const client of topology.clients) rackRow[lookup(racks.index, client.rack)] = lookup(rows.index, client.row);
  const rackPower = majorityPower(racks.names.length, powers.names.length, nodeRack, nodePower);

  // Sort nodes by (color, row, rack, power, index) and cut them into groups.
  const order = Array.from({ length: nodeCount }, (_, i) => i);
  order.sort(
    (a, b) =>
      nodeColor[a]! - nodeColor[b]! || nodeRow[a]! - nodeRow[b]! || nodeRack[a]! - nodeRack[b]! || nodePower[a]! - nodePower[b]! || a - b,
  );
  const groupNodes = Int32Array.from(order);
  const starts: number[] = [];
  const nodeGroup = new Int32Array(nodeCount);
  for (let i = 0; i < nodeCount; i++) {
    const node = groupNodes[i]!;
    const previous = i === 0 ? -1 : groupNodes[i - 1]!;
    const fresh =
      previous < 0 ||
      nodeColor[previous] !== nodeColor[node] ||
      nodeRow[previous] !== nodeRow[node] ||
      nodeRack[previous] !== nodeRack[node] ||
      nodePower[previous] !== nodePower[node];
    if (fresh) starts.push(i);
    nodeGroup[node] = starts.length - 1;
  }
  const groupCount = starts.length;
  starts.push(nodeCount);
  const groupStart = Int32Array.from(starts);
  const groupRow = new Int32Array(groupCount);
  const groupRack = new Int32Array(groupCount);
  const groupPower = new Int32Array(groupCount);
  const groupColor = new Int32Array(groupCount);
  for (let g = 0; g < groupCount; g++) {
    const node = groupNodes[groupStart[g]!]!;
    groupRow[g] = nodeRow[node]!;
    groupRack[g] = nodeRack[node]!;
    groupPower[g] = nodePower[node]!;
    groupColor[g] = nodeColor[node]!;
  }

  const rowCount = rows.names.length;
  const bucketCount = colors.names.length * rowCount;
  const bucketStart = new Int32Array(bucketCount + 1);
  let g = 0;
  for (let b = 0; b < bucketCount; b++) {
    bucketStart[b] = g;
    while (g < groupCount && groupColor[g]! * rowCount + groupRow[g]! === b) g++;
  }
  bucketStart[bucketCount] = groupCount;
  assert(g === groupCount, "every group belongs to one bucket");

  return {
    topology,
    nodeCount,
    rowCount,
    rackCount: racks.names.length,
    powerCount: powers.names.length,
    colorCount: colors.names.length,
    nodeIds: nodes.map((n) => n.id),
    nodeIndex,
    nodeRow,
    nodeRack,
    nodePower,
    nodeColor,
    nodeCapacity,
    nodeGroup,
    rowNames: rows.names,
    rackNames: racks.names,
    powerNames: powers.names,
    colorNames: colors.names,
    rowIndex: rows.index,
    rackIndex: racks.index,
    powerIndex: powers.index,
    colorIndex: colors.index,
    rackRow,
    rackPower,
    groupCount,
    groupRow,
    groupRack,
    groupPower,
    groupColor,
    groupStart,
    groupNodes,
    bucketStart,
  };
}

function majorityPower(rackCount: number, powerCount: number, nodeRack: Int32Array, nodePower: Int32Array): Int32Array {
  const counts = new Int32Array(rackCount * powerCount);
  for (let i = 0; i < nodeRack.length; i++) counts[nodeRack[i]! * powerCount + nodePower[i]!]!++;
  const result = new Int32Array(rackCount).fill(-1);
  for (let r = 0; r < rackCount; r++) {
    let best = 0;
    for (let p = 0; p < powerCount; p++) {
      const count = counts[r * powerCount + p]!;
      if (count > best) {
        best = count;
        result[r] = p;
      }
    }
  }
  return result;
}

/** Groups of one color in one row. */
export function bucketRange(cluster: Cluster, color: number, row: number): [number, number] {
  const b = color * cluster.rowCount + row;
  return [cluster.bucketStart[b]!, cluster.bucketStart[b + 1]!];
}

/** Groups of one color in every row. */
export function colorRange(cluster: Cluster, color: number): [number, number] {
  return [cluster.bucketStart[color * cluster.rowCount]!, cluster.bucketStart[(color + 1) * cluster.rowCount]!];
}
