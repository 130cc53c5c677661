// Measures placement of one million 7-replica cells on topology/large.json and writes
// bench/results/placement.json. Run with `npm run bench:placement`.

import { mkdir, writeFile } from "node:fs/promises";
import { Placer } from "../src/control/placement/placer.ts";
import { brokenRules, cellShape } from "../src/control/placement/rules.ts";
import { Rng } from "../src/random.ts";
import { loadTopology } from "../src/control/topology/load.ts";
import { TopologyError } from "../src/control/topology/types.ts";
import { syntheticWorkload } from "./availability/workload.ts";

const cells = 1_000_000;
const size = 7;
const seed = 20_200_225;

const topology = await loadTopology("topology/large.json");
if (topology instanceof TopologyError) throw topology;
const setupStart = performance.now();
const placer = new Placer(topology);
const setupMs = performance.now() - setupStart;
const cluster = placer.cluster;
const workload = syntheticWorkload(cluster, new Rng(seed), { cells, sameRowFraction: 0.95 });
const members = new Int32Array(cells * size);
const levels = new Array<number>(7).fill(0);

const start = performance.now();
for (let i = 0; i < cells; i++) {
  const color = placer.leastLoadedColor(workload.instanceRow[i]!);
  const level = placer.placeIndexes(
    { size, color, instanceRow: workload.instanceRow[i]!, primaryRow: workload.primaryRow[i]!, replicaRow: workload.replicaRow[i]!, salt: i },
    members,
    i * size,
  );
  levels[level + 1]!++;
}
const placeMs = performance.now() - start;

// Check every cell after the clock stops: distinct nodes, one color, and which rules it breaks.
const broken = { row: 0, racks: 0, power: 0 };
let distinct = 0;
for (let i = 0; i < cells; i++) {
  const nodes = members.subarray(i * size, (i + 1) * size);
  const row = workload.primaryRow[i] === workload.replicaRow[i] ? workload.primaryRow[i]! : workload.instanceRow[i]!;
  const shape = cellShape(cluster, nodes, row);
  if (shape.distinct && shape.oneColor) distinct++;
  for (const rule of brokenRules(shape)) broken[rule]++;
}
let loadMax = 0;
let loadMin = Number.MAX_SAFE_INTEGER;
for (const load of placer.loads.load) {
  loadMax = Math.max(loadMax, load);
  loadMin = Math.min(loadMin, load);
}
const loadMean = (cells * size) / cluster.nodeCount;

const result = {
  benchmark: "place one million cells on topology/large.json",
  runtime: `bun ${Bun.version}`,
  nodes: cluster.nodeCount,
  rows: cluster.rowCount,
  racks: cluster.rackCount,
  cells,
  cellSize: size,
  seed,
  setupMs: Math.round(setupMs),
  placeMs: Math.round(placeMs),
  cellsPerSecond: Math.round(cells / (placeMs / 1000)),
  microsecondsPerCell: Number(((placeMs * 1000) / cells).toFixed(2)),
  cellsFailed: levels[0],
  cellsByRuleLevel: Object.fromEntries(levels.slice(1).map((count, level) => [`level${level}`, count])),
  cellsWithDistinctNodesOfOneColor: distinct,
  cellsBreaking: broken,
  loadPerNode: { min: loadMin, mean: loadMean, max: loadMax, maxOverMean: Number((loadMax / loadMean).toFixed(4)) },
};
await mkdir("bench/results", { recursive: true });
await writeFile("bench/results/placement.json", `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result, null, 2));
