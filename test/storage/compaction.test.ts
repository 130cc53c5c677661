import { describe, expect, test } from "bun:test";
import { readdir } from "node:fs/promises";
import type { CellRecord } from "../../src/core/effects.ts";
import { type CrashMode, type DiskOperation, MemoryDisk, openLog, segmentName } from "../../src/storage/mod.ts";
import { TestRandom, acceptRecord, byCell, canonicalRecords, snapshotRecord, withTempDirectory } from "./support.ts";

/** The records a node would pass to compact: per cell, a snapshot and the last record. */
function compacted(entries: readonly CellRecord[]): CellRecord[] {
  const out: CellRecord[] = [];
  for (const [cell, records] of byCell(entries)) {
    out.push(snapshotRecord(cell, 1000, 64), { cell, record: records.at(-1)! });
  }
  return out;
}

describe("compaction", () => {
  test("after a compaction, reopening yields the compacted records and later appends, and older segments are gone", async () => {
    await withTempDirectory(async (directory) => {
      const { log } = await openLog(directory, { segmentBytes: 4096 });
      const before = Array.from({ length: 300 }, (_, i) => acceptRecord(`cell-${i % 5}`, i + 1));
      log.append(before);
      await log.sync();
      const segmentsBefore = (await readdir(directory)).sort();
      expect(segmentsBefore.length).toBeGreaterThan(5);
      const bytesBefore = log.bytes;

      const snapshot = compacted(before);
      const compaction = log.compact(snapshot);
      const after = [acceptRecord("cell-1", 301), acceptRecord("cell-9", 302)];
      log.append(after); // appended while the compaction syncs: it follows the compaction
      await compaction;
      await log.sync();
      expect(log.segments).toBe(1);
      expect(log.bytes).toBeLessThan(bytesBefore / 5);
      await log.close();

      const names = await readdir(directory);
      expect(names).toHaveLength(1);
      expect(segmentsBefore).not.toContain(names[0]);
      const reopened = await openLog(directory, { segmentBytes: 4096 });
      expect(reopened.damage).toBeNull();
      expect(canonicalRecords(reopened.records)).toBe(canonicalRecords(byCell([...snapshot, ...after])));
      await reopened.log.close();
    });
  });

  test("a cell left out of a compaction is gone after it", async () => {
    const disk = new MemoryDisk();
    const { log } = await openLog("/log", { disk });
    log.append([acceptRecord("kept", 1), acceptRecord("dropped", 2)]);
    await log.compact([acceptRecord("kept", 1)]);
    await log.close();
    const reopened = await openLog("/log", { disk });
    expect([...reopened.records.keys()]).toEqual(["kept"]);
  });

  test("shouldCompact waits for the minimum size and then for twice the last compaction", async () => {
    const { log } = await openLog("/log", { disk: new MemoryDisk(), compactBytesMin: 20_000, segmentBytes: 8192 });
    let slot = 0;
    const grow = (bytes: number) => {
      const target = log.bytes + bytes;
      while (log.bytes < target) log.append([acceptRecord("cell", ++slot, 200)]);
    };
    grow(15_000);
    expect(log.shouldCompact()).toBe(false);
    grow(6_000);
    expect(log.shouldCompact()).toBe(true);
    const compaction = log.compact([snapshotRecord("cell", slot, 25_000)]);
    expect(log.shouldCompact()).toBe(false); // one at a time
    await compaction;
    const compactedBytes = log.bytes;
    expect(compactedBytes).toBeGreaterThan(25_000);
    expect(compactedBytes).toBeLessThan(26_000);
    grow(compactedBytes - 500);
    expect(log.shouldCompact()).toBe(false);
    grow(1000);
    expect(log.shouldCompact()).toBe(true);
  });

  test("a crash before any disk operation of a compaction recovers the old records or the new ones, whole", async () => {
    const old = Array.from({ length: 120 }, (_, i) => acceptRecord(`cell-${i % 7}`, i + 1, 60));
    const snapshot = compacted(old);
    const later = [acceptRecord("cell-3", 500), acceptRecord("cell-8", 501)];
    const oldState = canonicalRecords(byCell(old));
    // Records appended after the compaction began follow it, and are lost from the end first.
    const newStates = [0, 1, 2].map((count) => canonicalRecords(byCell([...snapshot, ...later.slice(0, count)])));
    const random = new TestRandom(7);

    // Count the operations of one compaction, then crash before each of them in turn.
    const operationsOf = async (crashAt: number | null) => {
      let armed = false;
      let count = 0;
      const crashes: MemoryDisk[] = [];
      let disk: MemoryDisk;
      const onOperation = (operation: DiskOperation) => {
        if (!armed) return;
        count++;
        if (count === crashAt) {
          for (const mode of ["process", "power", "power", "power"] as CrashMode[]) crashes.push(disk.crash(mode, { random: () => random.next() }));
        }
        void operation;
      };
      disk = new MemoryDisk({ onOperation });
      const { log } = await openLog("/log", { disk, segmentBytes: 4096 });
      log.append(old);
      await log.sync();
      armed = true;
      const compaction = log.compact(snapshot);
      log.append(later);
      await compaction;
      await log.sync();
      armed = false;
      return { count, crashes };
    };

    const { count } = await operationsOf(null);
    expect(count).toBeGreaterThan(10);
    const outcomes = { old: 0, new: 0 };
    for (let crashAt = 1; crashAt <= count + 1; crashAt++) {
      const { crashes } = await operationsOf(crashAt);
      expect(crashes.length).toBe(crashAt <= count ? 4 : 0);
      for (const crashed of crashes) {
        const opened = await openLog("/log", { disk: crashed, segmentBytes: 4096 });
        const state = canonicalRecords(opened.records);
        if (state === oldState) outcomes.old++;
        else if (newStates.includes(state)) outcomes.new++;
        else throw new Error(`crash before operation ${crashAt}: recovered neither the old nor the new state: ${state}, damage ${JSON.stringify(opened.damage)}`);
        // Whatever survived, the log is usable: append, close, reopen.
        opened.log.append([acceptRecord("cell-x", 1)]);
        await opened.log.close();
        const again = await openLog("/log", { disk: crashed });
        expect(again.damage).toBeNull();
        expect(again.records.get("cell-x")).toHaveLength(1);
        await again.log.close();
      }
    }
    expect(outcomes.old).toBeGreaterThan(0);
    expect(outcomes.new).toBeGreaterThan(0);
  });

  test("an unfinished compaction is ignored even when a power failure lost the name of the segment before it", async () => {
    // Regression: recovery once required every superseded segment to be on disk before it
    // ignored an unfinished compaction, and otherwise read the compaction's partial records.
    const disk = new MemoryDisk();
    const { log } = await openLog("/log", { disk, segmentBytes: 4096 });
    const synced = Array.from({ length: 60 }, (_, i) => acceptRecord(`cell-${i % 3}`, i + 1, 60));
    log.append(synced);
    await log.sync();
    // A new segment whose name no directory sync covers yet, then a compaction that never syncs.
    const rotated = log.currentSegment + 1;
    log.append(Array.from({ length: 40 }, (_, i) => acceptRecord(`cell-${i % 3}`, 100 + i, 60)));
    expect(log.currentSegment).toBe(rotated);
    void log.compact(compacted(synced)).catch(() => undefined);
    const compaction = log.currentSegment;
    // Half-written: the compaction's name and part of its records reached the disk, the rotated segment's name did not.
    const crashed = disk.crash("power", { nameChangeSurvives: (path) => path !== `/log/${segmentName(rotated)}`, unsyncedBytesSurvive: false });
    const partial = crashed.snapshot().get(`/log/${segmentName(compaction)}`)!;
    const written = disk.snapshot().get(`/log/${segmentName(compaction)}`)!;
    crashed.replace(`/log/${segmentName(compaction)}`, written.subarray(0, Math.floor(written.length / 2)));
    expect(partial.length).toBe(0);
    const opened = await openLog("/log", { disk: crashed });
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(synced)));
    expect(opened.damage).toMatchObject({ segment: compaction });
    const names = [...crashed.snapshot().keys()];
    expect(names).not.toContain(`/log/${segmentName(compaction)}`);
    expect(names).toContain(`/log/${segmentName(rotated - 1)}`);
  });
});
