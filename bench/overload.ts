// `npm run bench:overload`: one cell under offered load from half to ten times its closed-loop
// peak, and the isolation of quiet cells from a flooded one. A 7-node colony; the peak is
// measured first (bench/loadgen.ts, 64 clients); then bench/flood.ts offers 0.5x to 10x that
// rate, open loop, each request once with a 1 s deadline. Per point: goodput, the p99 of the
// commits, and what the cell answered instead (`overloaded`, timeouts). Then isolation: seven
// quiet cells, one closed-loop client each, alone and then while the flood offers 10x peak to
// an eighth cell on the same nodes; with the flood generator's own CPU. Writes
// bench/results/overload.json and bench/results/overload.svg.

import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { lineChart } from "./availability/svg.ts";
import { Colony, loadAverage, round, runGenerator } from "./colony.ts";
import type { FloodConfig, FloodResult } from "./flood.ts";
import type { LoadConfig, LoadResult } from "./loadgen.ts";

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const multiples = (process.env.MULTIPLES ?? "0.5,1,2,4,6,8,10").split(",").map(Number);
const quietCells = 7;

async function main(): Promise<void> {
  const colony = await Colony.start({});
  try {
    const admin = await colony.client("admin");
    const cells = ["flooded", ...Array.from({ length: quietCells }, (_, i) => `quiet-${i}`)];
    for (const cell of cells) {
      await admin.create(cell);
      await admin.transact(cell, { reads: [], conditions: [], writes: [{ key: "warm", op: "put", value: true }] });
    }
    await admin.end();
    const closed = (clients: number, cellList: readonly string[], tag: string): LoadConfig => ({ system: "physalia", topology: colony.topologyPath, keys: colony.controlKeysPath, cells: cellList, clients, seconds, name: tag });
    const peakRun = await runGenerator<LoadResult>("bench/loadgen.ts", closed(64, ["flooded"], "peak"));
    const peak = peakRun.perSecond;
    console.log(`closed-loop peak on one cell: ${peak}/s (p99 ${peakRun.latencyMs.p99} ms)`);
    const leaderIndex = await colony.leaderOf("flooded");
    const leader = `n${leaderIndex + 1}`;
    const flood = (perSecond: number, tag: string): FloodConfig => ({ topology: colony.topologyPath, keys: colony.controlKeysPath, cell: "flooded", leader, perSecond, seconds, name: tag });

    const points = [];
    for (const multiple of multiples) {
      const cpuBefore = colony.cpu();
      const result = await runGenerator<FloodResult>("bench/flood.ts", flood(Math.max(10, Math.round(multiple * peak)), `flood${multiple}`));
      const cpuAfter = colony.cpu();
      const nodesCpuMs = cpuAfter.reduce((sum, x, i) => sum + x - cpuBefore[i]!, 0);
      const point = { multipleOfPeak: multiple, ...result, nodesCpuMsPerSecond: round(nodesCpuMs / (seconds + 1.1), 0), loadAverage: loadAverage() };
      delete (point as { pid?: number }).pid;
      points.push(point);
      console.log(`${multiple}x (${result.offeredPerSecond}/s): goodput ${result.goodputPerSecond}/s, p99 ${result.committedLatencyMs.p99} ms, ${JSON.stringify(result.outcomes)}`);
    }

    // Isolation: the quiet cells alone, then beside the flood at 10x peak.
    const quiet = cells.slice(1);
    const alone = await runGenerator<LoadResult>("bench/loadgen.ts", closed(quietCells, quiet, "quiet-alone"));
    const floodRun = runGenerator<FloodResult>("bench/flood.ts", { ...flood(Math.round(10 * peak), "isolation"), seconds: seconds + 2 });
    // The quiet clients start once the flood has its sessions and is sending.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const beside = await runGenerator<LoadResult>("bench/loadgen.ts", closed(quietCells, quiet, "quiet-beside"));
    const flooding = await floodRun;
    const strip = <T extends { pid?: number }>(r: T) => {
      const { pid: _pid, ...rest } = r;
      return rest;
    };
    const isolation = {
      quietCells,
      clientsPerQuietCell: 1,
      alone: strip(alone),
      besideFlood: strip(beside),
      flood: strip(flooding),
      quietThroughputRatio: round(beside.perSecond / Math.max(1, alone.perSecond), 2),
      quietP99Ratio: round(beside.latencyMs.p99 / Math.max(0.001, alone.latencyMs.p99), 2),
    };
    console.log(`isolation: quiet cells alone ${alone.perSecond}/s p99 ${alone.latencyMs.p99} ms; beside a 10x flood ${beside.perSecond}/s p99 ${beside.latencyMs.p99} ms; flood generator ${flooding.generatorCpuMsPerSecond} ms CPU/s`);

    const results = {
      when: new Date().toISOString(),
      machine: { cores: cpus().length, model: cpus()[0]?.model ?? "unknown", bun: Bun.version, loadAverageAtEnd: loadAverage() },
      setup: { nodes: 7, secondsPerPoint: seconds, requestDeadlineMs: 1_000, sessions: 64, note: "open loop, one request per put, no retries; nodes and generators share this 2-core machine" },
      closedLoopPeak: strip(peakRun),
      points,
      isolation,
    };
    await mkdir(join(import.meta.dir, "results"), { recursive: true });
    await writeFile(join(import.meta.dir, "results/overload.json"), `${JSON.stringify(results, null, 2)}\n`);
    await writeFile(join(import.meta.dir, "results/overload.svg"), plot(peak, points));
    console.log("wrote bench/results/overload.json and bench/results/overload.svg");
  } finally {
    await colony.stop();
  }
}

function niceCeiling(x: number): number {
  const step = 10 ** Math.floor(Math.log10(Math.max(1, x)));
  return Math.ceil(x / step) * step;
}

function plot(peak: number, points: readonly (FloodResult & { multipleOfPeak: number })[]): string {
  const maxRate = niceCeiling(Math.max(...points.map((p) => Math.max(p.offeredPerSecond, p.goodputPerSecond))));
  const maxP99 = niceCeiling(Math.max(1, ...points.map((p) => p.committedLatencyMs.p99)));
  const scale = maxRate / maxP99;
  const ticks = (max: number) => Array.from({ length: 6 }, (_, i) => (max * i) / 5);
  return lineChart({
    title: "One cell under open-loop load",
    subtitle: `7 nodes on 2 shared cores; closed-loop peak ${Math.round(peak)}/s; 1 s deadline, no retries. p99 drawn on the rate axis: ${maxP99} ms at the top`,
    xLabel: "offered puts per second",
    yLabel: "puts per second (p99 of commits, scaled)",
    x: [0, maxRate],
    y: [0, maxRate],
    xTicks: ticks(maxRate),
    yTicks: ticks(maxRate),
    xFormat: (x) => `${Math.round(x)}`,
    yFormat: (y) => `${Math.round(y)}`,
    legend: "top-left",
    series: [
      { label: "offered", color: "#999999", dash: "4 4", points: [[0, 0], [maxRate, maxRate]] },
      { label: "goodput (committed/s)", color: "#1f77b4", markers: true, points: points.map((p) => [p.offeredPerSecond, p.goodputPerSecond] as const) },
      { label: `p99 of commits (ms x ${round(scale, 1)})`, color: "#d62728", markers: true, points: points.map((p) => [p.offeredPerSecond, p.committedLatencyMs.p99 * scale] as const) },
    ],
    markers: [{ x: peak, label: "closed-loop peak" }],
  });
}

await main();
