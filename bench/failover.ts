// `npm run bench:failover`: a large-scale failure. Seven node processes host every cell (each
// node N cells; the cells' geneses are written into the logs before the nodes start, as
// `create` would have), and each cell is written once, which elects its first leader. Then
// the node that leads the most cells is killed (SIGKILL), and at once one write goes to each
// cell it led, all together, from 16 clients that already hold sessions with those cells.
// Per cell: the time from the kill to that write's commit. Sizes: CELLS=1000,10000,50000 by
// default (add 100000 where memory allows: about 6 KB of resident memory per used cell per
// node). Writes bench/results/failover.json.

import { mkdir, writeFile } from "node:fs/promises";
import { cpus, freemem } from "node:os";
import { join } from "node:path";
import type { PhysaliaClient } from "../src/client/client.ts";
import { utf8 } from "../src/core/value.ts";
import { Colony, latencySummary, loadAverage, round, rssBytes } from "./colony.ts";

const sizes = (process.env.CELLS ?? "1000,10000,50000").split(",").map(Number);
const clientCount = 16;
/** Writes in flight at once while the cells are first written (each elects a leader). */
const firstPassInFlight = 256;

async function eachLimited<T>(items: readonly T[], limit: number, body: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      await body(items[index] as T, index);
    }
  }));
}

async function failoverAt(cellsPerNode: number) {
  const cells = Array.from({ length: cellsPerNode }, (_, i) => `volume-${i}`);
  const prepared = performance.now();
  const colony = await Colony.start({ cells });
  const startMs = Math.max(...colony.processes.map((p) => p.startedMs));
  try {
    const clients: PhysaliaClient[] = await Promise.all(Array.from({ length: clientCount }, (_, i) => colony.client(`writer-${i}`, 60_000)));
    const clientOf = (i: number) => clients[i % clientCount] as PhysaliaClient;
    const put = (i: number, value: string) => clientOf(i).transact(cells[i] as string, { reads: [], conditions: [], writes: [{ key: "state", op: "put", value: utf8(value) }] });
    const firstStarted = performance.now();
    let firstErrors = 0;
    await eachLimited(cells, firstPassInFlight, async (_, i) => {
      const result = await put(i, "first").catch(() => null);
      if (result?.status !== "committed") firstErrors++;
    });
    const firstPassSeconds = (performance.now() - firstStarted) / 1000;
    console.log(`${cellsPerNode} cells: written once in ${round(firstPassSeconds, 1)} s (${firstErrors} errors)`);
    const statuses = await Promise.all(Array.from({ length: colony.nodes }, (_, i) => colony.status(i)));
    const leaders = statuses.map((s) => Number(s?.leaders ?? 0));
    const victim = leaders.indexOf(Math.max(...leaders));
    const rssBeforeKill = Array.from({ length: colony.nodes }, (_, i) => rssBytes(colony.pid(i)));
    // Which cells the victim leads, asked of the victim itself.
    const led: number[] = [];
    await eachLimited(cells, 32, async (cell, i) => {
      const status = await colony.status(victim, cell);
      if (status?.role === "leader") led.push(i);
    });
    const times: number[] = [];
    let errors = 0;
    const errorKinds = new Map<string, number>();
    const survivors = Array.from({ length: colony.nodes }, (_, i) => i).filter((i) => i !== victim);
    const metricsBefore = await Promise.all(survivors.map((i) => colony.metrics(i)));
    const killedAt = performance.now();
    colony.kill(victim, "SIGKILL");
    await Promise.all(led.map(async (i) => {
      const result = await put(i, "after").catch((error: unknown) => {
        const kind = error instanceof Error ? `${error.name}: ${error.message.replace(/volume-\d+/g, "CELL").replace(/\d+/g, "N").slice(0, 90)}` : String(error);
        errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
        return null;
      });
      if (result?.status === "committed") times.push(performance.now() - killedAt);
      else errors++;
    }));
    const allBackMs = performance.now() - killedAt;
    // What the surviving nodes dropped and answered meanwhile, summed.
    const nodeCounters: Record<string, number> = {};
    const metricsAfter = await Promise.all(survivors.map((i) => colony.metrics(i)));
    for (let k = 0; k < survivors.length; k++) {
      for (const [name, value] of metricsAfter[k]!) {
        if (!/dropped|replies|syncs_total|frames_(sent|received)/.test(name)) continue;
        nodeCounters[name] = (nodeCounters[name] ?? 0) + value - (metricsBefore[k]!.get(name) ?? 0);
      }
    }
    for (const client of clients) client.close();
    const result = {
      cellsPerNode,
      nodes: colony.nodes,
      prepareAndStartSeconds: round((performance.now() - prepared) / 1000 - firstPassSeconds - allBackMs / 1000, 1),
      nodeStartMs: round(startMs, 0),
      firstWriteSeconds: round(firstPassSeconds, 1),
      firstWriteErrors: firstErrors,
      leadersPerNode: leaders,
      killed: `n${victim + 1}`,
      cellsLedByKilled: led.length,
      backMs: latencySummary(times),
      allBackMs: round(allBackMs, 0),
      errors,
      errorKinds: Object.fromEntries(errorKinds),
      survivorsCounters: nodeCounters,
      rssBytesPerNodeBeforeKill: Math.round(rssBeforeKill.reduce((a, b) => a + b, 0) / rssBeforeKill.length),
      loadAverage: loadAverage(),
    };
    console.log(`  killed ${result.killed}, which led ${led.length}: back p50/p99/max ${result.backMs.p50}/${result.backMs.p99}/${result.backMs.max} ms, ${errors} errors`);
    return result;
  } finally {
    await colony.stop();
  }
}

async function main(): Promise<void> {
  const points = [];
  for (const size of sizes) {
    // About 6 KB per used cell per node, 7 nodes, and room to spare.
    const needBytes = size * 7 * 8_000 + 2e9;
    if (needBytes > freemem()) {
      console.log(`${size} cells: skipped, it needs about ${round(needBytes / 1e9, 1)} GB and ${round(freemem() / 1e9, 1)} GB are free`);
      points.push({ cellsPerNode: size, skipped: `needs about ${round(needBytes / 1e9, 1)} GB of memory` });
      continue;
    }
    points.push(await failoverAt(size));
  }
  const results = {
    when: new Date().toISOString(),
    machine: { cores: cpus().length, model: cpus()[0]?.model ?? "unknown", bun: Bun.version, memoryGB: round(freemem() / 1e9, 1) },
    setup: {
      nodes: 7, replicasPerCell: 7, clients: clientCount,
      note: "every node hosts every cell; each cell written once (electing its leader); then SIGKILL of the node leading the most cells and one write to each cell it led, all at once; back = kill to commit",
    },
    points,
  };
  await mkdir(join(import.meta.dir, "results"), { recursive: true });
  await writeFile(join(import.meta.dir, "results/failover.json"), `${JSON.stringify(results, null, 2)}\n`);
  console.log("wrote bench/results/failover.json");
}

await main();
