// `npm run bench:memory`: a million used, idle cells in one node, on the real file log. What it
// costs to hold them (resident bytes per cell), to keep them (CPU while idle), to start with
// them (recovery time, before and after compaction), and whether compacting them stalls the
// writes of a live cell meanwhile.
//
// A used cell is made for real first: a 7-node colony creates a cell, and one client opens a
// session and writes two keys twice. Node n1's log then gives that replica's compacted
// records (promise, snapshot), which are appended for CELLS cells (default 1,000,000) to a
// fresh log with n1's identity, beside the genesis of one live cell of which n1 is the only
// member. Then n1 alone starts on that log (its six peers stay down: the idle cells need
// nobody). The log is larger than the compaction threshold and was never compacted, so the
// node compacts it as soon as it has started: a closed-loop client writes to the live cell
// all the while, and the data directory is watched to tell when the compaction begins and
// ends. Resident memory is compared with the same node holding only the live cell. With
// STEADY=1 it also waits out discovery's first audit pass after the restart (16 minutes at a
// million cells) and measures idle CPU and memory for STEADY_SECONDS (60) after it, when the
// node's cache holds every cell's entry. Writes bench/results/memory.json.

import { copyFileSync, readdirSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, freemem } from "node:os";
import { join } from "node:path";
import { PhysaliaClient } from "../src/client/client.ts";
import type { CellRecord, DurableRecord } from "../src/core/effects.ts";
import { Replica } from "../src/core/replica.ts";
import { utf8 } from "../src/core/value.ts";
import { discoveryLimits } from "../src/discovery/limits.ts";
import { limits } from "../src/limits.ts";
import { openLog, parseSegmentName } from "../src/storage/mod.ts";
import { openUdp } from "../src/transport/udp.ts";
import { Colony, cpuMs, latencySummary, loadAverage, round, rssBytes, sleep } from "./colony.ts";

const cellCount = Number(process.env.CELLS ?? 1_000_000);
const idleSeconds = Number(process.env.IDLE_SECONDS ?? 10);

/** The compacted records of a used cell, as n1 holds them, and n1's identity. */
async function usedCellTemplate(colony: Colony): Promise<{ records: DurableRecord[]; identity: string }> {
  const admin = await colony.client("maker");
  await admin.create("template");
  for (let round = 0; round < 2; round++) {
    await admin.transact("template", { reads: [], conditions: [], writes: [{ key: "volume/primary", op: "put", value: utf8(`server-${round}`) }, { key: "volume/epoch", op: "put", value: BigInt(round) }] });
  }
  // The session stays open (as a used cell's would); the client goes without closing it.
  admin.close();
  await sleep(300);
  await colony.stop({ keepFiles: true });
  const opened = await openLog(colony.dataDir(0));
  if (opened.log === null) throw new Error("n1's log is damaged");
  await opened.log.close();
  const identity = `n1~${opened.incarnation}`;
  const replica = Replica.recover({ cell: "template", self: identity, env: { isAlive: () => false, jitter: () => 0.5 } }, opened.records.get("template") ?? []);
  return { records: replica.compactedRecords(), identity };
}

/** A log with n1's identity holding `count` copies of the used cell and one live cell. */
async function writeBigLog(directory: string, source: string, template: readonly DurableRecord[], identity: string, count: number): Promise<number> {
  await mkdir(directory, { recursive: true });
  copyFileSync(join(source, "IDENTITY"), join(directory, "IDENTITY"));
  const opened = await openLog(directory);
  if (opened.log === null || `n1~${opened.incarnation}` !== identity) throw new Error("the new log does not have n1's identity");
  const log = opened.log;
  log.append([{ cell: "live", record: { kind: "genesis", genesis: { members: [identity], incarnation: "00000000000000aa", alpha: limits.pipelineDepthDefault, sessionTtlMs: limits.sessionTtlMsDefault, sessionsMax: limits.sessionsPerCellMax } } }]);
  const batch = 5_000;
  for (let start = 0; start < count; start += batch) {
    const records: CellRecord[] = [];
    for (let i = start; i < Math.min(count, start + batch); i++) for (const record of template) records.push({ cell: `idle-${i}`, record });
    log.append(records);
    await log.sync();
  }
  const bytes = log.bytes;
  await log.close();
  return bytes;
}

/** The segment numbers in a directory, to see a compaction begin (a new one) and end (the old ones gone). */
function segments(directory: string): number[] {
  return readdirSync(directory).map(parseSegmentName).filter((n): n is number => n !== null);
}

async function main(): Promise<void> {
  const needBytes = cellCount * 9_000 + 2e9;
  if (needBytes > freemem()) {
    console.error(`Cannot run with ${cellCount} cells: it needs about ${round(needBytes / 1e9, 1)} GB and ${round(freemem() / 1e9, 1)} GB are free (set CELLS lower)`);
    process.exitCode = 2;
    return;
  }
  const colony = await Colony.start({});
  const { records: template, identity } = await usedCellTemplate(colony);
  const templateBytes = template.map((r) => r.kind).join("+");
  console.log(`used cell: ${templateBytes}`);
  const bigDir = join(colony.dir, "big");
  const baseDir = join(colony.dir, "base");
  const written = performance.now();
  const logBytes = await writeBigLog(bigDir, colony.dataDir(0), template, identity, cellCount);
  await writeBigLog(baseDir, colony.dataDir(0), template, identity, 0);
  console.log(`wrote ${cellCount} cells (${round(logBytes / 1e6, 0)} MB) in ${round((performance.now() - written) / 1000, 1)} s`);

  const endpoint = colony.endpoints.get("n1");
  if (endpoint === undefined) throw new Error("no n1");
  const writer = async () => new PhysaliaClient({ id: `live-${Date.now() % 100_000}`, nodes: new Map([["n1", endpoint]]), membersPerCell: 1, keys: colony.keys, transport: await openUdp({ host: "127.0.0.1", port: 0 }), deadlineMs: 60_000 });
  const runNode = async (dir: string) => ({ node: await colony.startNode(0, { dataDir: dir }) });
  const stopNode = () => colony.stop({ keepFiles: true });

  // The baseline: n1 with the live cell only.
  const base = await runNode(baseDir);
  await sleep(3_000);
  const baseRss = rssBytes(base.node.child.pid ?? 0);
  await stopNode();

  // The million: start, and write to the live cell through the compaction that follows.
  const first = await runNode(bigDir);
  const pid = first.node.child.pid ?? 0;
  const recoveryMs = first.node.startedMs;
  const rssAfterStart = rssBytes(pid);
  console.log(`recovered ${cellCount} cells in ${round(recoveryMs / 1000, 1)} s, RSS ${round(rssAfterStart / 1e6, 0)} MB`);
  const client = await writer();
  await client.transact("live", { reads: [], conditions: [], writes: [{ key: "w", op: "put", value: true }] });
  const before = segments(bigDir);
  const timeline: { at: number; ms: number }[] = [];
  let compactionStart: number | null = null;
  let compactionEnd: number | null = null;
  const started = performance.now();
  const cpuStart = cpuMs(pid);
  let cpuAtCompactionEnd = 0;
  const watch = setInterval(() => {
    const now = segments(bigDir);
    const at = performance.now() - started;
    if (compactionStart === null && Math.max(...now) > Math.max(...before)) compactionStart = at;
    if (compactionStart !== null && compactionEnd === null && Math.min(...now) > Math.max(...before)) {
      compactionEnd = at;
      cpuAtCompactionEnd = cpuMs(pid);
    }
  }, 50);
  const writeForMs = Number(process.env.WRITE_SECONDS ?? 120) * 1000;
  let n = 0;
  while (performance.now() - started < writeForMs) {
    const t0 = performance.now();
    await client.transact("live", { reads: [], conditions: [], writes: [{ key: "k", op: "put", value: utf8(`v${n++}`) }] });
    timeline.push({ at: t0 - started, ms: performance.now() - t0 });
    // Keep writing a few seconds past the end of the compaction, then stop.
    if (compactionEnd !== null && performance.now() - started > compactionEnd + 5_000) break;
  }
  clearInterval(watch);
  client.close();
  const during = timeline.filter((t) => compactionStart !== null && t.at >= compactionStart && (compactionEnd === null || t.at <= compactionEnd)).map((t) => t.ms);
  const outside = timeline.filter((t) => compactionStart === null || t.at < compactionStart || (compactionEnd !== null && t.at > compactionEnd)).map((t) => t.ms);
  const writesDuring = during.length;
  const compactionCpuMs = compactionEnd === null ? null : cpuAtCompactionEnd - cpuStart;

  // Idle: no writes, nothing to do but heartbeats to six peers that are down.
  await sleep(2_000);
  const idleCpuBefore = cpuMs(pid);
  await sleep(idleSeconds * 1000);
  const idleCpuMs = cpuMs(pid) - idleCpuBefore;
  const rssIdle = rssBytes(pid);
  await stopNode();

  // A restart from the compacted log.
  const second = await runNode(bigDir);
  const recoveryAfterCompactionMs = second.node.startedMs;
  await sleep(idleSeconds * 1000);
  const rssAfterRestart = rssBytes(second.node.child.pid ?? 0);
  // The JavaScript heap in use, by the node's own figure: what the cells hold, without the
  // pages the allocator keeps from recovery's peak (RSS falls toward it as they are returned).
  const heapAfterRestart = (await colony.metrics(0)).get("process_heap_bytes") ?? 0;
  await sleep(2 * idleSeconds * 1000);
  const rssLaterAfterRestart = rssBytes(second.node.child.pid ?? 0);
  // Optionally (STEADY=1), idle again once discovery's audit has been through every cell:
  // the first pass after a start stores each cell's entry in the node's (empty) cache, and
  // later passes skip the cells whose push would change nothing. At a million cells and
  // 1,024 a second that is 16 minutes.
  let steady: { afterMs: number; seconds: number; cpuMsPerSecond: number; rssBytesPerCell: number; auditsSkipped: number | null } | null = null;
  if (process.env.STEADY === "1") {
    const passMs = (cellCount / discoveryLimits.auditsPerRoundDefault) * discoveryLimits.gossipRoundMsDefault;
    // Past the first pass (and 20 s for the start), then a minute: a collection of the full
    // heap now and then takes a few hundred milliseconds, which a short window over-counts or misses.
    const steadySeconds = Number(process.env.STEADY_SECONDS ?? 60);
    const waitMs = passMs + 20_000 - 3 * idleSeconds * 1000;
    console.log(`waiting ${round(waitMs / 60_000, 1)} min for the audit's first pass`);
    await sleep(Math.max(0, waitMs));
    const pid2 = second.node.child.pid ?? 0;
    const before = cpuMs(pid2);
    await sleep(steadySeconds * 1000);
    const cpu = cpuMs(pid2) - before;
    const metrics = await colony.metrics(0);
    const skipped = [...metrics].find(([name]) => name.startsWith("physalia_discovery_audits_skipped"))?.[1] ?? null;
    steady = { afterMs: round(passMs + 20_000, 0), seconds: steadySeconds, cpuMsPerSecond: round(cpu / steadySeconds, 1), rssBytesPerCell: round((rssBytes(pid2) - baseRss) / cellCount, 0), auditsSkipped: skipped };
    console.log(`steady: ${JSON.stringify(steady)}`);
  }
  await stopNode();
  await colony.stop();

  const results = {
    when: new Date().toISOString(),
    machine: { cores: cpus().length, model: cpus()[0]?.model ?? "unknown", bun: Bun.version, loadAverageAtEnd: loadAverage() },
    setup: {
      cells: cellCount, usedCell: `two keys written twice in one session, 7 members; compacted to ${templateBytes}`,
      liveCell: "one member (n1), written by one closed-loop client through the compaction",
      note: "n1 runs alone; its peers are down, which idle cells do not notice",
    },
    log: { bytesBeforeCompaction: logBytes, bytesPerCell: round(logBytes / cellCount, 0) },
    recovery: { firstStartMs: round(recoveryMs, 0), afterCompactionMs: round(recoveryAfterCompactionMs, 0) },
    memory: {
      rssBytesBaseline: baseRss, rssBytesAfterStart: rssAfterStart, rssBytesIdle: rssIdle, rssBytesAfterRestart: rssAfterRestart,
      rssBytesPerCell: round((rssIdle - baseRss) / cellCount, 0), rssBytesPerCellAfterRestart: round((rssAfterRestart - baseRss) / cellCount, 0),
      rssBytesPerCellLaterAfterRestart: round((rssLaterAfterRestart - baseRss) / cellCount, 0), heapBytesAfterRestart: heapAfterRestart,
      heapBytesPerCellAfterRestart: round(heapAfterRestart / cellCount, 0),
    },
    idle: { seconds: idleSeconds, cpuMs: idleCpuMs, cpuMsPerSecond: round(idleCpuMs / idleSeconds, 1), note: "within the audit's first pass after the start: each cell's entry is being stored in the node's cache" },
    idleAfterFirstAuditPass: steady,
    compaction: {
      startedAfterMs: compactionStart === null ? null : round(compactionStart, 0),
      tookMs: compactionStart === null || compactionEnd === null ? null : round(compactionEnd - compactionStart, 0),
      cpuMs: compactionCpuMs,
      writesDuring, writeLatencyDuringMs: latencySummary(during), writeLatencyOutsideMs: latencySummary(outside),
      longestWriteMs: round(Math.max(0, ...timeline.map((t) => t.ms)), 1),
    },
  };
  console.log(JSON.stringify(results, null, 2));
  await mkdir(join(import.meta.dir, "results"), { recursive: true });
  await writeFile(join(import.meta.dir, "results/memory.json"), `${JSON.stringify(results, null, 2)}\n`);
  console.log("wrote bench/results/memory.json");
}

await main();
