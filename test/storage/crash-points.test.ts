// Crash points under power loss: a deterministic workload (a new directory, appends, awaited
// and unawaited syncs, segment rotations, compactions with appends during them, a close) is
// run again and again, crashing before its n-th disk operation, for every n. At each point the
// disk is taken as a process crash would leave it and as several power failures would: unsynced
// bytes lost, kept as a prefix with a torn sector, or kept sector by sector in any order
// (zeros, noise or new bytes), and name changes kept or lost. Some recoveries are themselves
// crashed part-way and recovered again.
//
// No media fault is injected, so every log is intact: none may be reported as damaged, and
// none may lose a record that a resolved sync or compaction covered. What comes back must be
// exactly the state after some prefix of what was written. The counts are printed.
//
// CRASH_POINT_SEEDS=N runs N workloads instead of 3.

import { describe, expect, test } from "bun:test";
import type { CellRecord, DurableRecord } from "../../src/core/effects.ts";
import { MemoryDisk, type NodeLog, type PowerLoss, openLog } from "../../src/storage/mod.ts";
import { TestRandom, acceptRecord, canonicalRecords, snapshotRecord } from "./support.ts";

type Event = { readonly kind: "append"; readonly entry: CellRecord } | { readonly kind: "compact"; readonly entries: readonly CellRecord[] };

const directory = "/data/log";
const logOptions = { segmentBytes: 4096, compactionChunkBytes: 300, compactBytesMin: 0, confirmationDelayMs: 10_000 };

function stateAfter(history: readonly Event[], count: number): Map<string, DurableRecord[]> {
  const state = new Map<string, DurableRecord[]>();
  for (const event of history.slice(0, count)) {
    if (event.kind === "compact") {
      state.clear();
      for (const { cell, record } of event.entries) state.set(cell, [...(state.get(cell) ?? []), record]);
    } else {
      state.set(event.entry.cell, [...(state.get(event.entry.cell) ?? []), event.entry.record]);
    }
  }
  return state;
}

/** Whether `recovered` is the state after some prefix of `history` no shorter than `durable`. */
function isDurablePrefix(history: readonly Event[], durable: number, recovered: Map<string, readonly DurableRecord[]>): boolean {
  const want = canonicalRecords(recovered);
  for (let count = durable; count <= history.length; count++) if (canonicalRecords(stateAfter(history, count)) === want) return true;
  return false;
}

/** What a crash at one point must recover: a prefix of the history, or of the history without the compaction in flight. */
interface Expectation {
  readonly history: readonly Event[];
  readonly durable: number;
  /** Index of a compaction event that had not resolved, or -1. */
  readonly unfinished: number;
}

function acceptable(expectation: Expectation, recovered: Map<string, readonly DurableRecord[]>): boolean {
  const { history, durable, unfinished } = expectation;
  if (isDurablePrefix(history, durable, recovered)) return true;
  if (unfinished === -1) return false;
  // The old log: everything before the compaction, then what was appended during and after it.
  const old = [...history.slice(0, unfinished), ...history.slice(unfinished + 1)];
  return isDurablePrefix(old, durable > unfinished ? durable - 1 : durable, recovered);
}

/**
 * The workload. Calls `atOperation` before every disk operation with what a crash there must
 * recover. Deterministic for a seed: the same operations in the same order on every run.
 */
async function workload(seed: number, atOperation: (disk: MemoryDisk, expectation: () => Expectation) => void): Promise<number> {
  const random = new TestRandom(seed);
  const history: Event[] = [];
  let durable = 0;
  let unfinished = -1;
  let armed = true;
  const expectation = (): Expectation => ({ history: [...history], durable, unfinished });
  let operations = 0;
  const disk: MemoryDisk = new MemoryDisk({
    onOperation: () => {
      if (!armed) return;
      operations++;
      atOperation(disk, expectation);
    },
  });
  const opened = await openLog(directory, { disk, ...logOptions });
  if (opened.log === null) throw new Error("a new log is damaged");
  const log: NodeLog = opened.log;
  const cells = Array.from({ length: 5 }, (_, i) => `cell-${i}`);
  let slot = 0;
  const covered = (count: number) => () => {
    durable = Math.max(durable, count);
  };
  let compaction: Promise<void> | null = null;
  for (let step = 0; step < 36; step++) {
    const batch = Array.from({ length: 1 + random.int(6) }, () => {
      const cell = random.pick(cells);
      slot++;
      return random.int(10) === 0 ? snapshotRecord(cell, slot, 500 + random.int(2500)) : acceptRecord(cell, slot, 20 + random.int(200));
    });
    // Into the history first: appending may already write (and a crash point fire) before it returns.
    for (const entry of batch) history.push({ kind: "append", entry });
    log.append(batch);
    const roll = random.int(10);
    if (roll < 5) {
      await log.sync();
      covered(history.length)();
    } else if (roll < 8) {
      void log.sync().then(covered(history.length));
      await new Promise((resolve) => setImmediate(resolve));
    }
    if ((step === 10 || step === 24) && compaction === null) {
      const state = stateAfter(history, history.length);
      const entries: CellRecord[] = [];
      for (const [cell, records] of state) {
        entries.push(snapshotRecord(cell, ++slot, 100 + random.int(300)));
        for (const record of records.slice(-2)) entries.push({ cell, record });
      }
      history.push({ kind: "compact", entries });
      const at = history.length;
      unfinished = at - 1;
      compaction = log.compact(entries).then(() => {
        covered(at)();
        unfinished = -1;
      });
    }
    if ((step === 16 || step === 30) && compaction !== null) {
      await compaction;
      compaction = null;
    }
  }
  if (compaction !== null) await compaction;
  await log.close();
  covered(history.length)();
  armed = false;
  return operations;
}

interface Counts {
  crashPoints: number;
  crashes: number;
  torn: number;
  unfinishedCompactions: number;
  nested: number;
  reportedDamaged: number;
  lostSynced: number;
  failures: string[];
}

/** Recovers one crashed disk and checks it; optionally crashes that recovery part-way first. */
async function check(crashed: MemoryDisk, expectation: Expectation, counts: Counts, context: string): Promise<void> {
  counts.crashes++;
  const opened = await openLog(directory, { disk: crashed, ...logOptions });
  if (opened.damage.length > 0 || opened.log === null) {
    counts.reportedDamaged++;
    if (counts.failures.length < 5) counts.failures.push(`${context}: reported damage ${JSON.stringify(opened.damage)}`);
    return;
  }
  if (opened.torn !== null) counts.torn++;
  counts.unfinishedCompactions += opened.stats.unfinishedCompactions;
  if (!acceptable(expectation, opened.records)) {
    counts.lostSynced++;
    if (counts.failures.length < 5) counts.failures.push(`${context}: recovered ${canonicalRecords(opened.records)}, no prefix from ${expectation.durable} of ${expectation.history.length}`);
    return;
  }
  // Whatever survived, the log goes on: append, close, reopen intact.
  opened.log.append([acceptRecord("cell-after", 1)]);
  await opened.log.close();
  const again = await openLog(directory, { disk: crashed, ...logOptions });
  if (again.damage.length > 0 || again.torn !== null || again.records.get("cell-after")?.length !== 1) {
    counts.reportedDamaged++;
    if (counts.failures.length < 5) counts.failures.push(`${context}: after a clean close, damage ${JSON.stringify(again.damage)} torn ${JSON.stringify(again.torn)}`);
  }
  await again.log?.close();
}

/** Crashes the recovery of `crashed` before its `at`-th operation, then recovers what that left. */
async function checkNested(crashed: MemoryDisk, expectation: Expectation, counts: Counts, options: { readonly at: number; readonly random: TestRandom; readonly context: string }): Promise<void> {
  let count = 0;
  let second: MemoryDisk | null = null;
  const source = crashed.crash("process", {
    onOperation: () => {
      count++;
      if (count === options.at && second === null) second = source.crash("power", { random: () => options.random.next() });
    },
  });
  const first = await openLog(directory, { disk: source, ...logOptions });
  await first.log?.close();
  if (second === null) return;
  counts.nested++;
  await check(second, expectation, counts, `${options.context}, recovery crashed before its operation ${options.at}`);
}

const powerLosses: readonly (PowerLoss & { readonly name: string })[] = [
  { name: "unsynced bytes lost", unsyncedBytesSurvive: false },
  { name: "prefix", unsyncedBytesModel: "prefix" },
  { name: "sectors", unsyncedBytesModel: "sectors" },
  { name: "sectors, no name changes", unsyncedBytesModel: "sectors", nameChangeSurvives: () => false },
  { name: "sectors, every name change", unsyncedBytesModel: "sectors", nameChangeSurvives: () => true },
];

async function runSeed(seed: number, counts: Counts): Promise<void> {
  const total = await workload(seed, () => undefined);
  const random = new TestRandom(seed * 7919);
  for (let point = 1; point <= total; point++) {
    const crashes: { disk: MemoryDisk; expectation: Expectation; name: string }[] = [];
    await workload(seed, (disk, expectation) => {
      if (disk.operations !== point) return;
      const now = expectation();
      crashes.push({ disk: disk.crash("process"), expectation: now, name: "process" });
      for (const loss of powerLosses) crashes.push({ disk: disk.crash("power", { ...loss, random: () => random.next() }), expectation: now, name: loss.name });
    });
    expect(crashes.length).toBe(1 + powerLosses.length);
    counts.crashPoints++;
    for (const [i, crash] of crashes.entries()) {
      const context = `seed ${seed}, crash before operation ${point} (${crash.name})`;
      if (i === 3 && point % 3 === 0) await checkNested(crash.disk, crash.expectation, counts, { at: 1 + random.int(40), random, context });
      await check(crash.disk, crash.expectation, counts, context);
    }
  }
}

describe("crash points under power loss", () => {
  test("no crash, of the process or of the power, at any point, reads as damage or loses a synced record", async () => {
    const counts: Counts = { crashPoints: 0, crashes: 0, torn: 0, unfinishedCompactions: 0, nested: 0, reportedDamaged: 0, lostSynced: 0, failures: [] };
    const seeds = Number(process.env.CRASH_POINT_SEEDS ?? 3);
    for (let seed = 1; seed <= seeds; seed++) await runSeed(seed, counts);
    const { failures, ...figures } = counts;
    console.log(`crash points: ${JSON.stringify(figures)}`);
    expect(failures).toEqual([]);
    expect(counts.reportedDamaged).toBe(0);
    expect(counts.lostSynced).toBe(0);
    // The run must have exercised what it claims to.
    expect(counts.crashPoints).toBeGreaterThan(200 * seeds);
    expect(counts.torn).toBeGreaterThan(counts.crashPoints);
    expect(counts.unfinishedCompactions).toBeGreaterThan(50 * seeds);
    expect(counts.nested).toBeGreaterThan(20 * seeds);
  }, 120_000 + Number(process.env.CRASH_POINT_SEEDS ?? 0) * 60_000);
});
