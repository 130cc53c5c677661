// `npm run eval:colony`: the whole colony in the simworld (world.ts), one seed, for
// topology-aware and random placement, under the correlated failures of the Monte Carlo
// (bench/availability): a rack, a row, a power domain lost; half a row, and a whole row, cut
// off. Each event is its own run from the same seed (the same cells, clients and moves),
// so placements and events differ only in what they are. Writes bench/results/colony.json
// and bench/results/colony.svg, and prints a table beside the Monte Carlo's figures.
//
// Environment: SEED (default 20200225), CELLS (3000), ROWS x RACKS x NODES (8 x 8 x 3),
// EVENTS per scenario (1; every rack, row or domain would be 64 + 8 + 4 + 8 + 8 runs).

import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildCluster } from "../../src/control/placement/cluster.ts";
import { generateTopology } from "../../src/control/topology/generate.ts";
import { deriveSeed, Rng } from "../../src/random.ts";
import { barChart } from "../availability/svg.ts";
import { type Placement, type RunResult, runColony } from "./run.ts";
import { pickEvents, scenarioNames } from "./scenarios.ts";

const results = join(import.meta.dir, "..", "results");

function integer(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    console.error(`${name} must be an integer from ${min} to ${max}, not ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return value;
}

const seed = integer("SEED", 20200225, 0, 0xffff_ffff);
const cells = integer("CELLS", 3_000, 1, 100_000);
const rows = integer("ROWS", 8, 1, 64);
const racks = integer("RACKS", 8, 3, 64);
const nodesPerRack = integer("NODES", 3, 1, 64);
const eventsPerScenario = integer("EVENTS", 1, 1, 64);

/** The Monte Carlo's P(volume | instance) per scenario for 7-replica cells, from its own results file. */
function monteCarlo(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    const data = JSON.parse(readFileSync(join(results, "availability.json"), "utf8")) as { correlated?: { deployment: string; scenario: string; availabilityMean: number }[] };
    for (const row of data.correlated ?? []) if (row.deployment === "aware 7" || row.deployment === "random 7") out.set(`${row.deployment.split(" ")[0]}|${row.scenario}`, row.availabilityMean);
  } catch {
    console.error("bench/results/availability.json is missing or unreadable: run `npm run eval:availability` for the Monte Carlo column");
  }
  return out;
}

const pct = (x: number) => `${(100 * x).toFixed(x > 0.9999 && x < 1 ? 4 : 2)}%`;

async function main(): Promise<void> {
  const topology = generateTopology({ rows, racksPerRow: racks, nodesPerRack, powerDomains: 4, colors: 1, seed, capacity: 100_000, name: "colony" });
  if (topology instanceof Error) {
    console.error(topology.message);
    process.exit(2);
  }
  const cluster = buildCluster(topology);
  const started = performance.now();
  const runs: RunResult[] = [];
  const pickRng = new Rng(deriveSeed(seed, 20));
  const events = scenarioNames.flatMap((scenario) => pickEvents(cluster, scenario, eventsPerScenario, pickRng));
  console.log(`colony: ${cluster.nodeCount} nodes (${rows} rows x ${racks} racks x ${nodesPerRack}), ${cells} cells of 7, seed ${seed}, ${events.length} events x 2 placements`);
  for (const event of events) {
    for (const placement of ["aware", "random"] as const) {
      const run = await runColony({ seed, topology, cluster, cells, placement, event });
      runs.push(run);
      console.log(
        `${run.scenario} ${run.label} ${placement}: before ${pct(run.before.fraction)}, during ${pct(run.during.fraction)} (rule ${pct(run.during.predicted)}), ` +
          `after repair ${pct(run.repaired.fraction)} (rule ${pct(run.repaired.predicted)}); ${run.control.adds} adds, ${run.control.removes} removes; ` +
          `moved ${run.moves.cellsInNewRow}/${run.moves.clients}; ${run.world.events} events in ${run.wallSeconds} s`,
      );
    }
  }
  const mc = monteCarlo();
  const summary = scenarioNames.flatMap((scenario) =>
    (["aware", "random"] as Placement[]).map((placement) => {
      const mine = runs.filter((r) => r.scenario === scenario && r.placement === placement);
      const mean = (f: (r: RunResult) => number) => mine.reduce((s, r) => s + f(r), 0) / Math.max(1, mine.length);
      const worst = (f: (r: RunResult) => number) => Math.min(...mine.map(f));
      return {
        scenario, placement, events: mine.length,
        during: mean((r) => r.during.fraction), duringWorst: worst((r) => r.during.fraction), duringRule: mean((r) => r.during.predicted),
        repaired: mean((r) => r.repaired.fraction), repairedWorst: worst((r) => r.repaired.fraction), repairedRule: mean((r) => r.repaired.predicted),
        monteCarlo: mc.get(`${placement}|${scenario}`) ?? null,
      };
    }),
  );
  console.log("\nscenario | placement | during (worst) | rule | after repair (worst) | Monte Carlo (large.json)");
  for (const s of summary) {
    console.log(`${s.scenario} | ${s.placement} | ${pct(s.during)} (${pct(s.duringWorst)}) | ${pct(s.duringRule)} | ${pct(s.repaired)} (${pct(s.repairedWorst)}) | ${s.monteCarlo === null ? "-" : pct(s.monteCarlo)}`);
  }
  const wallSeconds = Math.round((performance.now() - started) / 100) / 10;
  await mkdir(results, { recursive: true });
  const document = {
    evaluation: "the whole colony in the simworld: real cells, discovery and control plane, under correlated failures",
    runtime: `bun ${Bun.version}`, seed, wallSeconds,
    colony: { nodes: cluster.nodeCount, rows, racksPerRow: racks, nodesPerRack, powerDomains: 4, cells, cellSize: 7, sameRowFraction: 0.95, movingFraction: 0.02 },
    measure: "share of clients whose own rack is up that commit one write to their cell within 3 s (opening a session included), 2 s into the failure and again 45 s in (after the 10 s grace and repair)",
    summary, runs,
  };
  await writeFile(join(results, "colony.json"), `${JSON.stringify(document, null, 2)}\n`);
  await writeFile(join(results, "colony.svg"), plot(summary));
  console.log(`\nwrote bench/results/colony.json and bench/results/colony.svg (${wallSeconds} s)`);
}

function plot(summary: readonly { scenario: string; placement: Placement; during: number; duringWorst: number; monteCarlo: number | null }[]): string {
  const lost = (x: number) => 100 * (1 - x);
  const pick = (placement: Placement, f: (s: (typeof summary)[number]) => number) => scenarioNames.map((name) => f(summary.find((s) => s.scenario === name && s.placement === placement) as (typeof summary)[number]));
  const series = [
    { label: "aware, colony", color: "#1f77b4", values: pick("aware", (s) => lost(s.during)), extremes: pick("aware", (s) => lost(s.duringWorst)) },
    { label: "aware, Monte Carlo", color: "#aec7e8", values: pick("aware", (s) => lost(s.monteCarlo ?? 1)) },
    { label: "random, colony", color: "#d62728", values: pick("random", (s) => lost(s.during)), extremes: pick("random", (s) => lost(s.duringWorst)) },
    { label: "random, Monte Carlo", color: "#ff9896", values: pick("random", (s) => lost(s.monteCarlo ?? 1)) },
  ];
  const top = Math.max(1, ...series.flatMap((s) => [...s.values, ...(s.extremes ?? [])]));
  const step = top <= 5 ? 1 : top <= 20 ? 5 : top <= 50 ? 10 : 20;
  const yMax = Math.ceil(top / step) * step;
  return barChart({
    title: "Clients that cannot commit to their cell during a correlated failure",
    subtitle: "7-replica cells; colony: real replicas, discovery and control plane, 2 s into the failure (whisker: worst event); Monte Carlo: large.json",
    yLabel: "clients whose rack is up, %",
    categories: [...scenarioNames],
    series,
    yMax,
    yTicks: Array.from({ length: yMax / step + 1 }, (_, i) => i * step),
    yFormat: (y) => `${y}%`,
    valueFormat: (y) => (y === 0 ? "0" : y < 0.1 ? y.toFixed(3) : y.toFixed(1)),
    extremeName: "worst",
  });
}

await main();
