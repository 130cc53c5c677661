import { describe, expect, test } from "bun:test";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { CellRecord } from "../../src/core/effects.ts";
import { LogOpenError, MemoryDisk, RecordTooLargeError, openLog, segmentName, storageLimits } from "../../src/storage/mod.ts";
import { acceptRecord, byCell, canonicalRecords, snapshotRecord, withTempDirectory } from "./support.ts";

describe("the node's log", () => {
  test("records appended and synced come back on reopen, per cell and in order", async () => {
    await withTempDirectory(async (directory) => {
      const written: CellRecord[] = [];
      const { log, records, damage } = await openLog(directory);
      expect(records.size).toBe(0);
      expect(damage).toBeNull();
      for (let batch = 0; batch < 20; batch++) {
        const entries = Array.from({ length: 1 + (batch % 5) }, (_, i) => acceptRecord(`cell-${(batch * 7 + i) % 6}`, batch * 10 + i, 50 + batch));
        log.append(entries);
        written.push(...entries);
        await log.sync();
      }
      written.push(snapshotRecord("cell-0", 999, 70_000));
      log.append(written.slice(-1));
      await log.close();

      const reopened = await openLog(directory);
      expect(reopened.damage).toBeNull();
      expect(canonicalRecords(reopened.records)).toBe(canonicalRecords(byCell(written)));
      expect(reopened.stats.records).toBe(written.length);
      await reopened.log.close();
    });
  });

  test("a segment file begins with its header and the log rotates past the segment size", async () => {
    await withTempDirectory(async (directory) => {
      const { log } = await openLog(directory, { segmentBytes: 8192 });
      const written: CellRecord[] = [];
      for (let slot = 1; slot <= 300; slot++) {
        const entry = acceptRecord(`cell-${slot % 3}`, slot);
        log.append([entry]);
        written.push(entry);
        if (slot % 10 === 0) await log.sync();
      }
      expect(log.segments).toBeGreaterThan(3);
      await log.close();
      const names = (await readdir(directory)).sort();
      expect(names[0]).toBe(segmentName(1));
      expect(names.length).toBeGreaterThan(3);
      const first = new Uint8Array(await readFile(join(directory, names[0]!)));
      expect(new TextDecoder().decode(first.subarray(0, 7))).toBe("PHYSLOG");
      expect(first.length).toBeLessThanOrEqual(8192);

      const reopened = await openLog(directory, { segmentBytes: 8192 });
      expect(reopened.damage).toBeNull();
      expect(canonicalRecords(reopened.records)).toBe(canonicalRecords(byCell(written)));
      await reopened.log.close();
    });
  });

  test("concurrent syncs coalesce into fewer rounds and each resolves after its records are durable", async () => {
    const durable: number[] = [];
    let syncing = 0;
    const disk = new MemoryDisk({
      onOperation: (operation) => {
        if (operation === "sync") {
          expect(syncing).toBe(0); // never two syncs at once
          syncing++;
          queueMicrotask(() => syncing--);
        }
      },
    });
    const { log } = await openLog("/log", { disk });
    const roundsBefore = log.syncRounds;
    const promises: Promise<void>[] = [];
    for (let i = 1; i <= 50; i++) {
      log.append([acceptRecord("cell", i)]);
      promises.push(log.sync().then(() => void durable.push(i)));
    }
    await Promise.all(promises);
    expect(durable).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    // The first call starts a round; the other 49 share the next one.
    expect(log.syncRounds - roundsBefore).toBe(2);
    const after = disk.crash("power", { random: () => 0 });
    const reopened = await openLog("/log", { disk: after });
    expect(reopened.records.get("cell")?.length).toBe(50);
  });

  test("a sync with nothing new to cover resolves without a round", async () => {
    const { log } = await openLog("/log", { disk: new MemoryDisk() });
    log.append([acceptRecord("cell", 1)]);
    await log.sync();
    const rounds = log.syncRounds;
    await log.sync();
    expect(log.syncRounds).toBe(rounds);
  });

  test("a record larger than the limit is refused and nothing of its batch is appended", async () => {
    const disk = new MemoryDisk();
    const { log } = await openLog("/log", { disk });
    const huge = snapshotRecord("cell", 1, storageLimits.recordBytesMax);
    expect(() => log.append([acceptRecord("cell", 1), huge])).toThrow(RecordTooLargeError);
    log.append([acceptRecord("cell", 2)]);
    await log.close();
    const reopened = await openLog("/log", { disk });
    expect(reopened.records.get("cell")?.map((record) => (record.kind === "accept" ? record.slot : -1))).toEqual([2]);
  });

  test("a record of the largest size round-trips", async () => {
    const disk = new MemoryDisk();
    const { log } = await openLog("/log", { disk, segmentBytes: storageLimits.segmentBytesMin });
    const big = snapshotRecord("cell", 1, storageLimits.recordBytesMax - 100);
    log.append([acceptRecord("cell", 1), big, acceptRecord("cell", 2)]);
    await log.close();
    const reopened = await openLog("/log", { disk });
    expect(reopened.damage).toBeNull();
    expect(canonicalRecords(reopened.records)).toBe(canonicalRecords(byCell([acceptRecord("cell", 1), big, acceptRecord("cell", 2)])));
  });

  test("a log that closes cleanly leaves no open files", async () => {
    const disk = new MemoryDisk();
    const { log } = await openLog("/log", { disk, segmentBytes: 4096 });
    for (let i = 0; i < 100; i++) log.append([acceptRecord("cell", i)]);
    await log.compact([acceptRecord("cell", 99)]);
    for (let i = 100; i < 200; i++) log.append([acceptRecord("cell", i)]);
    await log.close();
    expect(disk.openFiles).toBe(0);
  });

  test("a directory whose first segment follows a missing one is refused, not rewritten", async () => {
    const disk = new MemoryDisk();
    const { log } = await openLog("/log", { disk, segmentBytes: 4096 });
    for (let i = 0; i < 100; i++) log.append([acceptRecord("cell", i)]);
    await log.close();
    const before = disk.snapshot();
    disk.remove(`/log/${segmentName(1)}`);
    await expect(openLog("/log", { disk })).rejects.toBeInstanceOf(LogOpenError);
    expect(disk.snapshot().size).toBe(before.size - 1);
  });

  test("segment files of another format version are refused", async () => {
    const disk = new MemoryDisk();
    const { log } = await openLog("/log", { disk });
    await log.close();
    const path = `/log/${segmentName(1)}`;
    const bytes = disk.snapshot().get(path)!;
    bytes[8] = 9; // version; the header checksum must still match for this to be a version mismatch
    const { crc32c } = await import("../../src/storage/crc32c.ts");
    new DataView(bytes.buffer).setUint32(36, crc32c(bytes, 0, 0, 36), true);
    disk.replace(path, bytes);
    await expect(openLog("/log", { disk })).rejects.toThrow("format version 9");
  });
});
