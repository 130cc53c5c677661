// The availability evaluation (`npm run eval:availability`): a Monte Carlo simulation over
// topology/large.json with one cell per client, comparing topology-aware placement, random
// placement and a monolith under independent and correlated failures. Writes
// bench/results/availability.json, availability.md and the SVG figures.
//
// Flags: --cells N (default 1,000,000), --trials N (independent-failure draws per point,
// default 20), --seed N, --topology PATH, --out DIR.

import { mkdir, writeFile } from "node:fs/promises";
import { assert } from "../../src/core/assert.ts";
import { buildCluster } from "../../src/control/placement/cluster.ts";
import { Placer } from "../../src/control/placement/placer.ts";
import { placeRandom } from "../../src/control/placement/random.ts";
import { brokenRules, cellShape } from "../../src/control/placement/rules.ts";
import { deriveSeed, Rng } from "../../src/random.ts";
import { loadTopology } from "../../src/control/topology/load.ts";
import { TopologyError } from "../../src/control/topology/types.ts";
import { checkClaims } from "./claims.ts";
import { CellEvaluator, MonolithEvaluator } from "./evaluate.ts";
import { correlatedScenarios } from "./events.ts";
import { monolithCompact, monolithSize, monolithSpread } from "./monolith.ts";
import { availabilityPlot, blastRadiusPlot, unavailabilityPlot } from "./plots.ts";
import { analyticTable, claimsList, independentTable, scenarioTables } from "./report.ts";
import { type Deployment, type IndependentResult, runCorrelated, runIndependent, runMonolithIndependent, type ScenarioResult } from "./run.ts";
import { syntheticWorkload } from "./workload.ts";

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  assert(Number.isInteger(value) && value >= 0, `--${name} takes a non-negative integer`);
  return value;
}

function textFlag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : (process.argv[i + 1] ?? fallback);
}

const cells = flag("cells", 1_000_000);
const trials = flag("trials", 20);
const monolithTrials = flag("monolith-trials", 200_000);
const seed = flag("seed", 20_200_225);
const topologyPath = textFlag("topology", "topology/large.json");
const outDir = textFlag("out", "bench/results");
const sizes = [3, 5, 7, 9];
const fractions = [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6];
const sameRowFraction = 0.95;

const started = performance.now();
const log = (message: string): void => {
  process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1)}s] ${message}\n`);
};

const topology = await loadTopology(topologyPath);
if (topology instanceof TopologyError) throw topology;
const cluster = buildCluster(topology);
const workload = syntheticWorkload(cluster, new Rng(seed), { cells, sameRowFraction });
const scenarioEvents = correlatedScenarios.map((s) => ({ name: s.name, description: s.description, events: [...s.events(cluster)] }));
log(`${cluster.nodeCount} nodes, ${cells} cells, ${scenarioEvents.reduce((n, s) => n + s.events.length, 0)} correlated events`);

const independent: IndependentResult[] = [];
const scenarios: ScenarioResult[] = [];
const deployments: (Deployment & { placeSeconds?: number; cellsBreaking?: Record<string, number> })[] = [];
const runOptions = { seed, fractions, trials, clients: cells };

function evaluateCells(deployment: Deployment, members: Int32Array): void {
  const evaluator = new CellEvaluator(cluster, { workload, members, size: deployment.size });
  independent.push(...runIndependent(cluster, evaluator, deployment, runOptions));
  scenarios.push(...runCorrelated(evaluator, deployment, scenarioEvents, cells));
}

for (const size of sizes) {
  // Topology-aware: every cell through the placer, in the clients' row, least-loaded color.
  const aware: Deployment = { placement: "aware", size, label: `aware ${size}` };
  const placer = new Placer(cluster);
  const members = new Int32Array(cells * size);
  const colors = new Int32Array(cells);
  const placeStart = performance.now();
  for (let i = 0; i < cells; i++) {
    const color = placer.leastLoadedColor(workload.instanceRow[i]!);
    colors[i] = color;
    const level = placer.placeIndexes(
      { size, color, instanceRow: workload.instanceRow[i]!, primaryRow: workload.primaryRow[i]!, replicaRow: workload.replicaRow[i]!, salt: i },
      members,
      i * size,
    );
    assert(level >= 0, "the large topology has room for every cell");
  }
  const placeSeconds = (performance.now() - placeStart) / 1000;
  const breaking: Record<string, number> = { row: 0, racks: 0, power: 0 };
  for (let i = 0; i < cells; i++) {
    const row = workload.primaryRow[i] === workload.replicaRow[i] ? workload.primaryRow[i]! : workload.instanceRow[i]!;
    for (const rule of brokenRules(cellShape(cluster, members.subarray(i * size, (i + 1) * size), row))) breaking[rule]!++;
  }
  deployments.push({ ...aware, placeSeconds, cellsBreaking: breaking });
  log(`placed ${cells} cells of ${size} in ${placeSeconds.toFixed(1)}s; breaking rules: ${JSON.stringify(breaking)}`);
  evaluateCells(aware, members);
  log(`evaluated ${aware.label}`);

  // Random: the same cells and colors, on uniformly random distinct nodes of the color.
  const random: Deployment = { placement: "random", size, label: `random ${size}` };
  const rng = new Rng(deriveSeed(seed, 3, size));
  for (let i = 0; i < cells; i++) placeRandom(cluster, { rng, size, color: colors[i]!, out: members, offset: i * size });
  deployments.push(random);
  evaluateCells(random, members);
  log(`evaluated ${random.label}`);
}

for (const [placement, members] of [
  ["monolith spread", monolithSpread(cluster, 0)],
  ["monolith compact", monolithCompact(cluster, 0)],
] as const) {
  const deployment: Deployment = { placement, size: monolithSize, label: placement };
  deployments.push(deployment);
  const evaluator = new MonolithEvaluator(cluster, { workload, members });
  independent.push(...runMonolithIndependent(deployment, { ...runOptions, trials: monolithTrials }));
  scenarios.push(...runCorrelated(evaluator, deployment, scenarioEvents, cells));
  log(`evaluated ${placement}: ${[...members].map((n) => `${cluster.nodeIds[n]}@${cluster.rackNames[cluster.nodeRack[n]!]}`).join(" ")}`);
}

// The simulation must agree with the closed form where the closed form applies. This is a
// check for bugs, not a statistical test: all cells share one draw of failed nodes per trial,
// so the simulated mean wanders with the drawn fraction (its standard deviation is about
// 0.5% of the nodes at a 50% rate on 10,000 nodes).
for (const r of independent) {
  const tolerance = 0.02;
  assert(Math.abs(r.availabilityMean - r.analytic) < tolerance, `${r.deployment} at ${r.fraction}: simulated ${r.availabilityMean} vs binomial ${r.analytic}`);
}

const claims = checkClaims(independent, scenarios, sizes);
const runtimeSeconds = (performance.now() - started) / 1000;
const scenarioNames = correlatedScenarios.map((s) => s.name);
const columns = [...sizes.map((s) => `aware ${s}`), ...sizes.map((s) => `random ${s}`), "monolith spread", "monolith compact"];
const tables = scenarioTables(scenarios, columns);

const results = {
  evaluation: "availability of Physalia-style cells vs random placement vs a monolith",
  runtime: `bun ${Bun.version}`,
  runtimeSeconds: Number(runtimeSeconds.toFixed(1)),
  seed,
  topology: { path: topologyPath, nodes: cluster.nodeCount, rows: cluster.rowCount, racks: cluster.rackCount, powerDomains: cluster.powerCount, colors: cluster.colorCount },
  workload: { cells, clientsPerCell: "one instance, whose view is measured; primary and replica storage servers set the cell's row", sameRowFraction },
  independentTrials: trials,
  monolithTrials,
  fractions,
  scenarios: scenarioEvents.map((s) => ({ name: s.name, description: s.description, events: s.events.length })),
  deployments,
  claims,
  independent,
  correlated: scenarios,
};

await mkdir(outDir, { recursive: true });
await writeFile(`${outDir}/availability.json`, `${JSON.stringify(results, null, 1)}\n`);
await writeFile(`${outDir}/availability-independent.svg`, availabilityPlot(independent, sizes, cells, trials));
await writeFile(`${outDir}/unavailability-independent.svg`, unavailabilityPlot(independent, sizes));
await writeFile(`${outDir}/blast-radius.svg`, blastRadiusPlot(scenarios, scenarioNames, cells));
const markdown = [
  `# Availability evaluation results`,
  ``,
  `${cells.toLocaleString("en-US")} cells on ${cluster.nodeCount.toLocaleString("en-US")} nodes (${topologyPath}), seed ${seed}, ${runtimeSeconds.toFixed(0)} s on bun ${Bun.version}.`,
  ``,
  `## Independent node failures: P(volume available | instance available)`,
  ``,
  independentTable(independent, [...sizes.map((s) => `aware ${s}`), "random 7", "monolith spread"]),
  ``,
  `## Simulated against the binomial closed form (topology-aware cells)`,
  ``,
  analyticTable(independent, sizes),
  ``,
  `## Correlated failures: P(volume available | instance available), mean over events (worst event)`,
  ``,
  tables.availability,
  ``,
  `## Blast radius: share of all clients that lose their cell per event, mean (worst event)`,
  ``,
  tables.blast,
  ``,
  `## The paper's claims`,
  ``,
  claimsList(claims),
  ``,
].join("\n");
await writeFile(`${outDir}/availability.md`, markdown);
console.log(markdown);
log(`done in ${runtimeSeconds.toFixed(1)}s`);
