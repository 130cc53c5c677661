import { describe, expect, test } from "bun:test";
import { readdir } from "node:fs/promises";
import type { CellRecord } from "../../src/core/effects.ts";
import { type CrashMode, MemoryDisk, segmentName } from "../../src/storage/mod.ts";
import { TestRandom, acceptRecord, byCell, canonicalRecords, openIntact, snapshotRecord, withTempDirectory } from "./support.ts";

/** The records a node would pass to compact: per cell, a snapshot and the last record. */
function compacted(entries: readonly CellRecord[]): CellRecord[] {
  const out: CellRecord[] = [];
  for (const [cell, records] of byCell(entries)) {
    out.push(snapshotRecord(cell, 1000, 64), { cell, record: records.at(-1)! });
  }
  return out;
}

/**
 * A memory disk whose next call of `method` waits until `release()`, and which refuses two
 * calls of it on one file (or path) at once.
 */
function holding(memory: MemoryDisk, method: "sync" | "removeLater") {
  const inFlight = new Set<unknown>();
  let hold = false;
  let release = () => {};
  let calls = 0;
  const disk = new Proxy(memory, {
    get(target, property) {
      if (property === method) {
        return async (argument: never) => {
          if (inFlight.has(argument)) throw new Error(`two calls of ${method} on one file at once`);
          inFlight.add(argument);
          calls++;
          try {
            if (hold) {
              hold = false;
              await new Promise<void>((resolve) => (release = resolve));
            }
            await (target[method] as (argument: never) => Promise<void>)(argument);
          } finally {
            inFlight.delete(argument);
          }
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { disk, holdNext: () => void (hold = true), release: () => release(), calls: () => calls };
}

describe("compaction", () => {
  test("after a compaction, reopening yields the compacted records and later appends, and older segments are gone", async () => {
    await withTempDirectory(async (directory) => {
      const { log } = await openIntact(directory, { segmentBytes: 4096 });
      const before = Array.from({ length: 300 }, (_, i) => acceptRecord(`cell-${i % 5}`, i + 1));
      log.append(before);
      await log.sync();
      const segmentsBefore = (await readdir(directory)).filter((name) => name.endsWith(".log")).sort();
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

      const names = (await readdir(directory)).filter((name) => name.endsWith(".log"));
      expect(names).toHaveLength(1);
      expect(segmentsBefore).not.toContain(names[0]);
      const reopened = await openIntact(directory, { segmentBytes: 4096 });
      expect(reopened.damage).toEqual([]);
      expect(canonicalRecords(reopened.records)).toBe(canonicalRecords(byCell([...snapshot, ...after])));
      await reopened.log.close();
    });
  });

  test("a cell left out of a compaction is gone after it", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk });
    log.append([acceptRecord("kept", 1), acceptRecord("dropped", 2)]);
    await log.compact([acceptRecord("kept", 1)]);
    await log.close();
    const reopened = await openIntact("/log", { disk });
    expect([...reopened.records.keys()]).toEqual(["kept"]);
  });

  test("appends during a compaction are acknowledged before its copy is done, and follow it after", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk, compactionChunkBytes: 256 });
    const old = Array.from({ length: 50 }, (_, i) => acceptRecord(`cell-${i % 5}`, i + 1));
    log.append(old);
    await log.sync();
    const snapshot = compacted(old);
    const compaction = log.compact(snapshot);
    const during = [acceptRecord("cell-1", 100), acceptRecord("cell-7", 101)];
    log.append(during);
    await log.sync();
    expect(log.compacting).toBe(true);
    await compaction;
    const after = [acceptRecord("cell-2", 102)];
    log.append(after);
    await log.close();
    const reopened = await openIntact("/log", { disk });
    expect(reopened.damage).toEqual([]);
    expect(canonicalRecords(reopened.records)).toBe(canonicalRecords(byCell([...snapshot, ...during, ...after])));
    expect(reopened.log.segments).toBe(1);
  });

  test("a compaction finishes its copy at once when the records appended during it outgrow their bound", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk, compactionChunkBytes: 128, compactionAppendedBytesMax: 1000 });
    const old = Array.from({ length: 50 }, (_, i) => acceptRecord(`cell-${i % 5}`, i + 1));
    log.append(old);
    const snapshot = compacted(old);
    const compaction = log.compact(snapshot);
    const during = Array.from({ length: 8 }, (_, i) => acceptRecord("cell-9", 200 + i, 150));
    log.append(during.slice(0, 4));
    expect(log.currentSegment).toBe(1); // still copying
    log.append(during.slice(4));
    expect(log.currentSegment).toBe(2); // switched to the compaction segment
    await compaction;
    await log.close();
    const reopened = await openIntact("/log", { disk });
    expect(canonicalRecords(reopened.records)).toBe(canonicalRecords(byCell([...snapshot, ...during])));
  });

  test("shouldCompact waits for the minimum size and then for twice the last compaction", async () => {
    const { log } = await openIntact("/log", { disk: new MemoryDisk(), compactBytesMin: 20_000, segmentBytes: 8192 });
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

  test("a crash before any disk operation of a compaction, with appends and syncs during it, recovers the old log or the new one, whole", async () => {
    const old = Array.from({ length: 120 }, (_, i) => acceptRecord(`cell-${i % 7}`, i + 1, 60));
    const snapshot = compacted(old);
    const later = [acceptRecord("cell-3", 500), acceptRecord("cell-8", 501)];
    // What may come back: the old log or the compaction, each followed by a prefix of `later`.
    const states = (base: readonly CellRecord[], acknowledged: number) =>
      [0, 1, 2].filter((count) => count >= acknowledged).map((count) => canonicalRecords(byCell([...base, ...later.slice(0, count)])));
    const random = new TestRandom(7);

    // Runs one compaction, crashing before its operation number `crashAt` (none if null);
    // with `syncBytes`, the copy is synced after every chunk (each sync a crash point too).
    const run = async (crashAt: number | null, syncBytes?: number) => {
      let armed = false;
      let count = 0;
      let acknowledged = 0;
      let compactionDone = false;
      const crashes: { disk: MemoryDisk; acknowledged: number; compactionDone: boolean }[] = [];
      let disk: MemoryDisk;
      const onOperation = () => {
        if (!armed) return;
        count++;
        if (count !== crashAt) return;
        for (const mode of ["process", "power", "power", "power"] as CrashMode[]) crashes.push({ disk: disk.crash(mode, { random: () => random.next() }), acknowledged, compactionDone });
      };
      disk = new MemoryDisk({ onOperation });
      const { log } = await openIntact("/log", { disk, segmentBytes: 4096, compactionChunkBytes: 600, ...(syncBytes === undefined ? {} : { compactionSyncBytes: syncBytes }) });
      log.append(old);
      await log.sync();
      armed = true;
      const compaction = log.compact(snapshot).then(() => void (compactionDone = true));
      log.append(later.slice(0, 1));
      await log.sync(); // covered by the old log while the copy runs
      acknowledged = 1;
      expect(log.compacting).toBe(true);
      await new Promise((resolve) => setImmediate(resolve));
      log.append(later.slice(1));
      await compaction;
      await log.sync();
      acknowledged = 2;
      armed = false;
      return { count, crashes };
    };

    for (const syncBytes of [undefined, 600]) {
      const { count } = await run(null, syncBytes);
      expect(count).toBeGreaterThan(20);
      const outcomes = { old: 0, new: 0 };
      for (let crashAt = 1; crashAt <= count + 1; crashAt++) {
        const { crashes } = await run(crashAt, syncBytes);
        expect(crashes.length).toBe(crashAt <= count ? 4 : 0);
        for (const crash of crashes) {
          const opened = await openIntact("/log", { disk: crash.disk, segmentBytes: 4096 });
          const state = canonicalRecords(opened.records);
          if (!crash.compactionDone && states(old, crash.acknowledged).includes(state)) outcomes.old++;
          else if (states(snapshot, crash.acknowledged).includes(state)) outcomes.new++;
          else throw new Error(`crash before operation ${crashAt}: recovered neither the old nor the new log: ${state}, damage ${JSON.stringify(opened.damage)}`);
          // Whatever survived, the log is usable: append, close, reopen.
          opened.log.append([acceptRecord("cell-x", 1)]);
          await opened.log.close();
          const again = await openIntact("/log", { disk: crash.disk });
          expect(again.damage).toEqual([]);
          expect(again.records.get("cell-x")).toHaveLength(1);
          await again.log.close();
        }
      }
      expect(outcomes.old).toBeGreaterThan(0);
      expect(outcomes.new).toBeGreaterThan(0);
    }
  });

  test("an unfinished compaction is ignored even when a power failure lost the name of the segment before it", async () => {
    // Regression: recovery once required every superseded segment to be on disk before it
    // ignored an unfinished compaction, and otherwise read the compaction's partial records.
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk, segmentBytes: 4096 });
    const synced = Array.from({ length: 60 }, (_, i) => acceptRecord(`cell-${i % 3}`, i + 1, 60));
    log.append(synced);
    await log.sync();
    // A new segment whose name no directory sync covers yet, then a compaction that never syncs.
    const rotated = log.currentSegment + 1;
    log.append(Array.from({ length: 25 }, (_, i) => acceptRecord(`cell-${i % 3}`, 100 + i, 60)));
    expect(log.currentSegment).toBe(rotated);
    void log.compact(compacted(synced)).catch(() => undefined);
    const compaction = log.currentSegment;
    // Half-written: the compaction's name and part of its records reached the disk, the rotated segment's name did not.
    const crashed = disk.crash("power", { nameChangeSurvives: (path) => path !== `/log/${segmentName(rotated)}`, unsyncedBytesSurvive: false });
    const partial = crashed.snapshot().get(`/log/${segmentName(compaction)}`)!;
    const written = disk.snapshot().get(`/log/${segmentName(compaction)}`)!;
    crashed.replace(`/log/${segmentName(compaction)}`, written.subarray(0, Math.floor(written.length / 2)));
    expect(partial.length).toBe(0);
    const opened = await openIntact("/log", { disk: crashed });
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(synced)));
    // Copies only: discarded, and no damage.
    expect(opened.damage).toEqual([]);
    expect(opened.stats.unfinishedCompactions).toBe(1);
    const names = [...crashed.snapshot().keys()];
    expect(names).not.toContain(`/log/${segmentName(compaction)}`);
    expect(names).toContain(`/log/${segmentName(rotated - 1)}`);
  });

  test("a compaction syncs its copy as it goes, and a durable copy without its marker is still ignored", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk, compactionChunkBytes: 256, compactionSyncBytes: 512 });
    const synced = Array.from({ length: 200 }, (_, i) => acceptRecord(`cell-${i % 40}`, i + 1, 60));
    log.append(synced);
    await log.sync();
    const compaction = log.compact(compacted(synced));
    const segment = log.currentSegment + 1;
    for (let turn = 0; turn < 6; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(log.compacting).toBe(true);
    // Power fails mid-copy: what the copy's own syncs made durable survives, nothing else
    // (the segment's name is kept, as if its directory had been synced).
    const crashed = disk.crash("power", { unsyncedBytesSurvive: false, nameChangeSurvives: () => true });
    const durable = crashed.snapshot().get(`/log/${segmentName(segment)}`);
    expect(durable?.length ?? 0).toBeGreaterThan(512);
    expect(durable?.length ?? 0).toBeLessThan(disk.snapshot().get(`/log/${segmentName(segment)}`)?.length ?? 0);
    const opened = await openIntact("/log", { disk: crashed });
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(synced)));
    expect(opened.damage).toEqual([]);
    expect(opened.stats.unfinishedCompactions).toBe(1);
    await compaction;
    await log.close();
  });

  test("a copy switched to while its own sync is under way is not synced again until that sync is done", async () => {
    const memory = new MemoryDisk();
    const held = holding(memory, "sync");
    const disk = held.disk;
    const { log } = await openIntact("/log", { disk, compactionChunkBytes: 128, compactionSyncBytes: 128, compactionAppendedBytesMax: 1000 });
    const old = Array.from({ length: 50 }, (_, i) => acceptRecord(`cell-${i % 5}`, i + 1));
    log.append(old);
    await log.sync();
    held.holdNext();
    const compaction = log.compact(compacted(old));
    // The first chunk is copied and its sync held; appends outgrow their bound and switch to the copy.
    const during = Array.from({ length: 8 }, (_, i) => acceptRecord("cell-9", 200 + i, 150));
    log.append(during);
    expect(log.currentSegment).toBe(2);
    const synced = log.sync();
    for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
    held.release();
    await synced;
    await compaction;
    await log.close();
    const reopened = await openIntact("/log", { disk: memory });
    expect(canonicalRecords(reopened.records)).toBe(canonicalRecords(byCell([...compacted(old), ...during])));
  });

  test("appends are synced while the compaction's old segments are still being removed", async () => {
    const memory = new MemoryDisk();
    const held = holding(memory, "removeLater");
    const { log } = await openIntact("/log", { disk: held.disk, segmentBytes: 4096 });
    const old = Array.from({ length: 120 }, (_, i) => acceptRecord(`cell-${i % 7}`, i + 1, 60));
    log.append(old);
    await log.sync();
    expect(log.segments).toBeGreaterThan(2);
    held.holdNext();
    let done = false;
    const compaction = log.compact(compacted(old)).then(() => void (done = true));
    for (let turn = 0; held.calls() === 0 && turn < 1_000; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(held.calls()).toBe(1);
    // The first old segment's removal is under way and held: the log serves meanwhile.
    const during = [acceptRecord("cell-2", 900), acceptRecord("cell-9", 901)];
    log.append(during);
    await log.sync();
    expect(done).toBe(false);
    held.release();
    await compaction;
    expect(log.segments).toBe(1);
    await log.close();
    const reopened = await openIntact("/log", { disk: memory, segmentBytes: 4096 });
    expect(canonicalRecords(reopened.records)).toBe(canonicalRecords(byCell([...compacted(old), ...during])));
    await reopened.log.close();
  });
});
