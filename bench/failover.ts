// `npm run bench:failover`: a large-scale failure. Seven node processes host every cell (each
// node N cells; the cells' geneses are written into the logs before the nodes start, as
// `create` would have), and each cell is written once, which elects its first leader. Then
// the node that leads the most cells is killed (SIGKILL), and at once one write goes to each
// cell it led, all together, from 16 clients that already hold sessions with those cells.
// Per cell: the time from the kill to that write's commit. Sizes: CELLS=1000,10000,50000 by
// default, or `--cells 10000` (a list, like CELLS; add 100000 where memory allows: about 6 KB
// of resident memory per used cell per node). Writes bench/results/failover.json, or the file
// `--out FILE` names (a quick single-size run need not replace the recorded one). With
// `--profile`, every node runs under Bun's sampling profiler and the result adds where the
// survivors' JavaScript time went from the kill until every cell was back (bench/profile.ts's
// categories, over the last samples of each profile: the colony stops right after).

import { readFileSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, freemem, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { PhysaliaClient } from "../src/client/client.ts";
import { utf8 } from "../src/core/value.ts";
import { Colony, latencySummary, loadAverage, round, rssBytes } from "./colony.ts";
import { summarize } from "./profile.ts";

/** The value after `--name` on the command line, if any. */
function flag(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? undefined : process.argv[at + 1];
}

const sizesText = flag("cells") ?? process.env.CELLS ?? "1000,10000,50000";
const sizes = sizesText.split(",").map(Number);
if (sizes.some((n) => !Number.isInteger(n) || n < 1)) {
  console.error(`bench:failover: --cells takes a comma-separated list of positive integers, not ${JSON.stringify(sizesText)}`);
  process.exit(2);
}
const outPath = flag("out") ?? join(import.meta.dir, "results/failover.json");
const profiling = process.argv.includes("--profile");
/** The moments after the kill at which the bench reports how many cells are back. */
const backWithinMs = [250, 500, 1_000, 2_000, 5_000, 10_000, 30_000];
const clientCount = 16;
/** Writes in flight at once while the cells are first written (each elects a leader). */
const firstPassInFlight = 256;

interface TimedProfile {
  readonly nodes: Parameters<typeof summarize>[0][number]["nodes"];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** The samples of a profile's last `windowMs` (its time deltas are in microseconds). */
function lastSamples(profile: TimedProfile, windowMs: number): { nodes: TimedProfile["nodes"]; samples: number[] } {
  let elapsedUs = 0;
  let first = profile.samples.length;
  while (first > 0 && elapsedUs < windowMs * 1000) elapsedUs += profile.timeDeltas[--first] ?? 0;
  return { nodes: profile.nodes, samples: profile.samples.slice(first) };
}

/** Datagrams the kernel dropped for a full receive buffer, machine-wide (other work counts too). */
function udpReceiveBufferErrors(): number {
  try {
    const lines = readFileSync("/proc/net/snmp", "utf8").split("\n").filter((l) => l.startsWith("Udp:"));
    const names = (lines[0] ?? "").split(/\s+/);
    const values = (lines[1] ?? "").split(/\s+/);
    return Number(values[names.indexOf("RcvbufErrors")] ?? 0);
  } catch {
    return 0;
  }
}

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
  const profileDir = join(tmpdir(), `physalia-failover-profiles-${process.pid}`);
  if (profiling) await rm(profileDir, { recursive: true, force: true });
  const colony = await Colony.start({ cells, ...(profiling ? { runtimeFlags: (i: number) => ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=n${i + 1}.cpuprofile`] } : {}) });
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
    const loadAverageBefore = loadAverage();
    const cpuBefore = colony.cpu();
    const udpBefore = udpReceiveBufferErrors();
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
    const cpuAfter = colony.cpu();
    const udpDropped = udpReceiveBufferErrors() - udpBefore;
    // What the surviving nodes dropped and answered meanwhile, summed.
    const nodeCounters: Record<string, number> = {};
    const metricsAfter = await Promise.all(survivors.map((i) => colony.metrics(i)));
    for (let k = 0; k < survivors.length; k++) {
      for (const [name, value] of metricsAfter[k]!) {
        if (!/dropped|replies|syncs_total|records_written|frames_(sent|received)|elections|leader_changes|teach|peer_messages/.test(name)) continue;
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
      backWithin: Object.fromEntries(backWithinMs.map((ms) => [`${ms}ms`, times.filter((t) => t <= ms).length])),
      allBackMs: round(allBackMs, 0),
      errors,
      errorKinds: Object.fromEntries(errorKinds),
      survivorsCpuMs: survivors.map((i) => round((cpuAfter[i] ?? 0) - (cpuBefore[i] ?? 0), 0)),
      udpReceiveBufferErrorsOnTheMachine: udpDropped,
      survivorsCounters: nodeCounters,
      rssBytesPerNodeBeforeKill: Math.round(rssBeforeKill.reduce((a, b) => a + b, 0) / rssBeforeKill.length),
      loadAverageBefore,
      loadAverage: loadAverage(),
    };
    console.log(`  killed ${result.killed}, which led ${led.length}: back p50/p99/max ${result.backMs.p50}/${result.backMs.p99}/${result.backMs.max} ms, ${errors} errors`);
    if (!profiling) return result;
    // The profiles are written when the nodes stop; the window is the failover and the few
    // hundred milliseconds of reading metrics after it.
    const windowMs = performance.now() - killedAt;
    await colony.stop();
    const profiles = await Promise.all(survivors.map(async (i) => lastSamples(JSON.parse(await readFile(join(profileDir, `n${i + 1}.cpuprofile`), "utf8")) as TimedProfile, windowMs)));
    await rm(profileDir, { recursive: true, force: true });
    return { ...result, survivorsProfile: { windowMs: round(windowMs, 0), ...summarize(profiles) } };
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
  await mkdir(dirname(outPath), { recursive: true });
  await writeFile(outPath, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${outPath}`);
}

await main();
