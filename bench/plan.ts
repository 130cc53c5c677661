// `npm run bench:plan`: what one pass of the control plane (src/control/service.ts) costs in
// CPU beside its view, at 10,000 and 100,000 cells on 1,000 nodes: the registry's cells as a
// view hands them over, their clients, the placer's load and the walk that finds the cells
// needing a change. Two colonies per size: every node alive (a quiet pass: nothing to do),
// and one node dead past the grace (its cells are urgent: a view built for each, eight
// changes started a pass). Over 100 passes, so that the rechecks of quiet cells (each planned
// again every 40 to 80 passes) are in the mean. The view and the client answer from memory:
// the figure is the control plane's own; the view's cost is bench:gossipview's. Writes
// bench/results/plan.json.

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PhysaliaClient } from "../src/client/client.ts";
import { type ColonyView, ControlPlane, type KnownCell, type NodeHealth, clientsKey } from "../src/control/service.ts";
import { parseTopology } from "../src/control/topology/parse.ts";
import { utf8 } from "../src/core/value.ts";
import { round } from "./colony.ts";

const nodeCount = 1_000;
const passes = Number(process.env.PASSES ?? 100);
const sizes = (process.env.CELLS ?? "10000,100000").split(",").map(Number);

const nodes = Array.from({ length: nodeCount }, (_, i) => ({ id: `n${i}`, address: `127.0.0.1:${10_000 + i}`, row: `r${i % 8}`, rack: `k${i % 40}`, power: `p${i % 4}`, color: "blue", capacity: 100_000 }));
const topology = parseTopology(JSON.stringify({ version: 1, powerDomains: ["p0", "p1", "p2", "p3"], colors: ["blue"], nodes, clients: [] }));
if (topology instanceof Error) throw topology;
const identity = (i: number) => `n${i % nodeCount}~0000000000000001`;

async function measure(cellCount: number, deadNode: boolean) {
  // Each cell on seven nodes of one row (41 apart: the same row, other racks), its client in that row.
  const cells: KnownCell[] = Array.from({ length: cellCount }, (_, c) => ({ cell: `v${c}`, incarnation: "0123456789abcdef", members: Array.from({ length: 7 }, (_, m) => identity(c + m * 8 * 5)) }));
  const health = new Map<string, NodeHealth>(nodes.map((n, i) => [n.id, { health: "alive", downForMs: 0, identity: identity(i) }]));
  if (deadNode) health.set("n0", { health: "dead", downForMs: 60_000, identity: identity(0) });
  const view: ColonyView = { cells: async () => cells, health: async () => health };
  let started = 0;
  const client = {
    async lease() {
      return { status: "lease", granted: true, held: true, holder: "bench", validUntil: Number.MAX_SAFE_INTEGER, validForMs: 3_000 };
    },
    async transact(cell: string, tx: { reads: readonly string[] }) {
      const row = { row: `r${Number(cell.slice(1)) % 8}` };
      return { status: "committed", reads: tx.reads.map((k) => (k === clientsKey ? utf8(JSON.stringify({ instance: row, primary: row, replica: row })) : undefined)), scan: { entries: [], next: null } };
    },
    // Changes never finish: every pass plans with eight under way, like a long repair.
    join: () => {
      started++;
      return new Promise<string>(() => {});
    },
  };
  const plane = new ControlPlane({ id: "bench", topology: topology as never, color: "blue", client: client as unknown as PhysaliaClient, view, stepsInFlightMax: 1_000_000 });
  for (let i = 0; i < 3; i++) await plane.pass();
  const cpu = process.cpuUsage();
  const planMs: number[] = [];
  for (let i = 0; i < passes; i++) planMs.push((await plane.pass()).timings?.planMs ?? 0);
  const used = process.cpuUsage(cpu);
  return { cells: cellCount, nodeDead: deadNode, cpuMsPerPass: round((used.user + used.system) / 1000 / passes, 2), planMsPerPass: round(planMs.reduce((a, b) => a + b, 0) / passes, 2), changesStarted: started };
}

const results = [];
for (const cells of sizes) {
  for (const dead of [false, true]) {
    const result = await measure(cells, dead);
    results.push(result);
    console.log(`${cells} cells, ${dead ? "one node dead" : "all alive"}: ${result.cpuMsPerPass} ms CPU a pass, planning ${result.planMsPerPass} ms; ${result.changesStarted} changes started`);
  }
}
const out = join(import.meta.dir, "results", "plan.json");
await mkdir(join(import.meta.dir, "results"), { recursive: true });
await writeFile(out, `${JSON.stringify({ when: new Date().toISOString(), bench: "one control-plane pass beside its view, 1,000 nodes, view and client answering from memory", runtime: `bun ${Bun.version}`, passes, results }, null, 1)}\n`);
console.log(`wrote ${out}`);
