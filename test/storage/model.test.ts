// Model-based test, after sled: random appends, syncs (awaited or not), compactions and
// crashes (the process, or the power) against a plain history of what was appended. After
// every reopen, what the log gives back must be exactly the state after some prefix of that
// history that includes everything a resolved sync or compaction covered, and a crash, of the
// process or of the power, must never read as damage: it only ever leaves a torn tail.

import { describe, expect, test } from "bun:test";
import type { CellRecord, DurableRecord } from "../../src/core/effects.ts";
import { MemoryDisk, type NodeLog } from "../../src/storage/mod.ts";
import { TestRandom, acceptRecord, canonicalRecords, openIntact, snapshotRecord } from "./support.ts";

type Event = { readonly kind: "append"; readonly entry: CellRecord } | { readonly kind: "compact"; readonly entries: readonly CellRecord[] };

function apply(state: Map<string, CellRecord[]>, event: Event): void {
  if (event.kind === "compact") {
    state.clear();
    for (const entry of event.entries) state.set(entry.cell, [...(state.get(entry.cell) ?? []), entry]);
  } else {
    state.set(event.entry.cell, [...(state.get(event.entry.cell) ?? []), event.entry]);
  }
}

function stateAfter(history: readonly Event[], count: number): Map<string, CellRecord[]> {
  const state = new Map<string, CellRecord[]>();
  for (const event of history.slice(0, count)) apply(state, event);
  return state;
}

function canonical(state: Map<string, readonly CellRecord[]>): string {
  return canonicalRecords(records(state));
}

function records(state: Map<string, readonly CellRecord[]>): Map<string, DurableRecord[]> {
  return new Map([...state].map(([cell, entries]) => [cell, entries.map((entry) => entry.record)]));
}

/**
 * The history without its last compaction, while that compaction has not resolved: the old log
 * then holds the records appended during the compaction too, right after the old ones. Also
 * returns where `durable` falls in it.
 */
function withoutUnfinishedCompaction(history: readonly Event[], durable: number): { history: Event[]; durable: number } | null {
  const last = history.findLastIndex((event) => event.kind === "compact");
  if (last === -1) return null;
  return { history: [...history.slice(0, last), ...history.slice(last + 1)], durable: durable > last ? durable - 1 : durable };
}

/** The prefix length p in [from, to] whose state equals `recovered`, or -1. */
function matchingPrefix(history: readonly Event[], recovered: Map<string, readonly DurableRecord[]>, from: number, to: number): number {
  const want = canonicalRecords(recovered);
  const state = stateAfter(history, from);
  for (let count = from; count <= to; count++) {
    if (canonical(state) === want) return count;
    const event = history[count];
    if (event !== undefined) apply(state, event);
  }
  return -1;
}

async function runModel(seed: number): Promise<{ crashes: number; torn: number; compactions: number; unfinished: number }> {
  const random = new TestRandom(seed);
  const cells = Array.from({ length: 2 + random.int(10) }, (_, i) => `cell-${i}`);
  const options = { segmentBytes: 4096 + random.int(16_384), compactionChunkBytes: 64 + random.int(2048) };
  let disk = new MemoryDisk();
  let log: NodeLog = (await openIntact("/log", { disk, ...options })).log;
  let history: Event[] = [];
  let durable = 0;
  let epoch = 0;
  let slot = 0;
  let compacting: Promise<void> | null = null;
  /** A compaction was called and has not resolved: the old log may come back, with what was appended since. */
  let compactionUnfinished = false;
  const stats = { crashes: 0, torn: 0, compactions: 0, unfinished: 0 };
  const covered = (count: number, at: number) => () => {
    if (at === epoch) durable = Math.max(durable, count);
  };

  for (let step = 0; step < 150; step++) {
    const roll = random.int(100);
    if (roll < 45) {
      const batch = Array.from({ length: 1 + random.int(12) }, () => {
        const cell = random.pick(cells);
        slot++;
        return random.int(20) === 0 ? snapshotRecord(cell, slot, 1 + random.int(6000)) : acceptRecord(cell, slot, random.int(300));
      });
      log.append(batch);
      for (const entry of batch) history.push({ kind: "append", entry });
    } else if (roll < 60) {
      await log.sync();
      covered(history.length, epoch)();
    } else if (roll < 72) {
      log.sync().then(covered(history.length, epoch), () => undefined);
    } else if (roll < 76 && !log.compacting) {
      // What a node would pass: per cell, a snapshot and the records after it (here: the last two).
      const state = stateAfter(history, history.length);
      const entries: CellRecord[] = [];
      for (const [cell, list] of state) {
        if (random.int(8) === 0) continue; // a replica the node no longer hosts
        entries.push(snapshotRecord(cell, ++slot, random.int(200)));
        entries.push(...list.slice(-2));
      }
      history.push({ kind: "compact", entries });
      stats.compactions++;
      const done = covered(history.length, epoch);
      const at = epoch;
      compactionUnfinished = true;
      compacting = log.compact(entries).then(() => {
        done();
        if (at === epoch) compactionUnfinished = false;
      }, () => undefined);
      if (random.int(2) === 0) await compacting;
    } else if (roll < 84) {
      // Let time pass: a compaction copies its next chunk.
      await new Promise((resolve) => setImmediate(resolve));
    } else if (roll < 94) {
      // Crash: drop the log without closing it, maybe in the middle of a sync or a compaction.
      if (random.int(3) === 0) await Promise.resolve();
      const mode = random.int(2) === 0 ? "process" : "power";
      disk = disk.crash(mode, { random: () => random.next() });
      epoch++;
      compacting = null;
      // openIntact fails the test on any damage: a crash leaves none.
      const opened = await openIntact("/log", { disk, ...options });
      stats.crashes++;
      if (opened.torn !== null) stats.torn++;
      let prefix = matchingPrefix(history, opened.records, durable, history.length);
      if (prefix === -1 && compactionUnfinished) {
        const old = withoutUnfinishedCompaction(history, durable);
        if (old !== null) prefix = matchingPrefix(old.history, opened.records, old.durable, old.history.length);
        if (prefix !== -1) {
          history = old!.history;
          stats.unfinished++;
        }
      }
      compactionUnfinished = false;
      if (prefix === -1) throw new Error(`seed ${seed} step ${step}: recovered state is no prefix of the history from ${durable} to ${history.length}`);
      history = history.slice(0, prefix);
      durable = prefix; // Recovery syncs what it read.
      log = opened.log;
    } else {
      if (compacting !== null) await compacting;
      await log.close();
      const opened = await openIntact("/log", { disk, ...options });
      expect(opened.damage).toEqual([]);
      expect(canonicalRecords(opened.records)).toBe(canonicalRecords(records(stateAfter(history, history.length))));
      durable = history.length;
      log = opened.log;
      expect(log.segments).toBeGreaterThanOrEqual(1);
    }
  }
  if (compacting !== null) await compacting;
  await log.close();
  return stats;
}

describe("the log against a model", () => {
  test("random appends, syncs, compactions and crashes never lose a synced record or invent one", async () => {
    const totals = { crashes: 0, torn: 0, compactions: 0, unfinished: 0 };
    for (let seed = 1; seed <= Number(process.env.MODEL_SEEDS ?? 60); seed++) {
      const stats = await runModel(seed);
      totals.crashes += stats.crashes;
      totals.torn += stats.torn;
      totals.compactions += stats.compactions;
      totals.unfinished += stats.unfinished;
    }
    // The runs must have exercised what they claim to.
    expect(totals.crashes).toBeGreaterThan(300);
    expect(totals.torn).toBeGreaterThan(20);
    expect(totals.compactions).toBeGreaterThan(100);
    expect(totals.unfinished).toBeGreaterThan(10);
  }, 30_000 + Number(process.env.MODEL_SEEDS ?? 0) * 200);
});
