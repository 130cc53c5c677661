// `npm run bench:overload`: one cell under offered load from half to ten times its closed-loop
// peak, and the isolation of quiet cells from a flooded one. A 7-node colony; the peak is
// measured first (bench/loadgen.ts, 64 clients); then bench/flood.ts offers 0.5x to 10x that
// rate, open loop, each request once with a 1 s deadline. Per point: goodput, the p99 of the
// commits, and what the cell answered instead (`overloaded`, timeouts). Then isolation: seven
// quiet cells, one closed-loop client each, alone and then while the flood offers 10x peak to
// an eighth cell on the same nodes; with the flood generator's own CPU and the nodes'. Then
// the same with quiet clients that are quiet (one put per QUIET_INTERVAL_MS, default 100 ms,
// each): seven closed-loop clients alone keep this machine's two cores busy. Writes
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
/** The paced isolation run's quiet clients: one put per this many ms at most (QUIET_INTERVAL_MS). */
const quietIntervalMs = Number(process.env.QUIET_INTERVAL_MS ?? 100);

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
    // The flooded cell's leader, looked up again before each flood: under overload it has moved.
    let leader = "n1";
    const flood = async (perSecond: number, tag: string): Promise<FloodConfig> => {
      const index = await colony.leaderOf("flooded");
      if (index >= 0) leader = `n${index + 1}`;
      return { topology: colony.topologyPath, keys: colony.controlKeysPath, cell: "flooded", leader, perSecond, seconds, name: tag };
    };

    const points = [];
    for (const multiple of multiples) {
      const cpuBefore = colony.cpu();
      const config = await flood(Math.max(10, Math.round(multiple * peak)), `flood${multiple}`);
      const result = await runGenerator<FloodResult>("bench/flood.ts", config);
      const cpuAfter = colony.cpu();
      const nodesCpuMs = cpuAfter.reduce((sum, x, i) => sum + x - cpuBefore[i]!, 0);
      const point = { multipleOfPeak: multiple, floodedLeader: config.leader, ...result, nodesCpuMsPerSecond: round(nodesCpuMs / (seconds + 1.1), 0), loadAverage: loadAverage() };
      delete (point as { pid?: number }).pid;
      points.push(point);
      console.log(`${multiple}x (${result.offeredPerSecond}/s): goodput ${result.goodputPerSecond}/s, p99 ${result.committedLatencyMs.p99} ms, ${JSON.stringify(result.outcomes)}`);
    }

    // Isolation: the quiet cells alone, then beside the flood at 10x peak; first closed loop
    // (as the issue measured it: on two cores that alone keeps the machine busy), then paced.
    const quiet = cells.slice(1);
    const strip = <T extends { pid?: number }>(r: T) => {
      const { pid: _pid, ...rest } = r;
      return rest;
    };
    // The nodes' CPU over a generator's whole run (its start-up and sessions included), per second of it.
    const nodesCpuSince = (before: readonly number[], startedMs: number) => round(colony.cpu().reduce((sum, x, i) => sum + x - before[i]!, 0) / ((performance.now() - startedMs) / 1000), 0);
    const isolationRun = async (intervalMs: number | undefined, tag: string) => {
      const config = (name: string): LoadConfig => ({ ...closed(quietCells, quiet, name), ...(intervalMs === undefined ? {} : { intervalMs }) });
      let cpu = colony.cpu();
      let startedMs = performance.now();
      const alone = await runGenerator<LoadResult>("bench/loadgen.ts", config(`${tag}-alone`));
      const aloneNodesCpu = nodesCpuSince(cpu, startedMs);
      const floodConfig = await flood(Math.round(10 * peak), `${tag}-flood`);
      const floodRun = runGenerator<FloodResult>("bench/flood.ts", { ...floodConfig, seconds: seconds + 2 });
      // The quiet clients start once the flood has its sessions and is sending.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      cpu = colony.cpu();
      startedMs = performance.now();
      const beside = await runGenerator<LoadResult>("bench/loadgen.ts", config(`${tag}-beside`));
      const besideNodesCpu = nodesCpuSince(cpu, startedMs);
      const flooding = await floodRun;
      const run = {
        floodedLeader: floodConfig.leader,
        quietCells,
        clientsPerQuietCell: 1,
        ...(intervalMs === undefined ? { pacing: "closed loop" } : { pacing: `one put per ${intervalMs} ms per client at most` }),
        alone: { ...strip(alone), nodesCpuMsPerSecond: aloneNodesCpu, generatorCpuMsPerSecond: round(alone.generatorCpuMs / alone.seconds, 0) },
        besideFlood: { ...strip(beside), nodesCpuMsPerSecond: besideNodesCpu, generatorCpuMsPerSecond: round(beside.generatorCpuMs / beside.seconds, 0) },
        flood: strip(flooding),
        quietThroughputRatio: round(beside.perSecond / Math.max(1, alone.perSecond), 2),
        quietP99Ratio: round(beside.latencyMs.p99 / Math.max(0.001, alone.latencyMs.p99), 2),
      };
      console.log(`isolation (${run.pacing}): quiet cells alone ${alone.perSecond}/s p99 ${alone.latencyMs.p99} ms, nodes ${aloneNodesCpu} ms CPU/s; beside a 10x flood ${beside.perSecond}/s p99 ${beside.latencyMs.p99} ms, nodes ${besideNodesCpu} ms CPU/s; flood generator ${flooding.generatorCpuMsPerSecond} ms CPU/s`);
      return run;
    };
    const quietLeaders = await Promise.all(quiet.map(async (cell) => `n${(await colony.leaderOf(cell)) + 1}`));
    console.log(`leaders of the quiet cells: ${quietLeaders.join(", ")}`);
    const isolation = { quietLeaders, ...(await isolationRun(undefined, "quiet")) };
    const isolationPaced = await isolationRun(quietIntervalMs, "paced");

    const results = {
      when: new Date().toISOString(),
      machine: { cores: cpus().length, model: cpus()[0]?.model ?? "unknown", bun: Bun.version, loadAverageAtEnd: loadAverage() },
      setup: { nodes: 7, secondsPerPoint: seconds, requestDeadlineMs: 1_000, sessions: 64, note: "open loop, one request per put, no retries; nodes and generators share this 2-core machine" },
      closedLoopPeak: strip(peakRun),
      points,
      isolation,
      isolationPaced,
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
