import { describe, expect, test } from "bun:test";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { CellRecord } from "../../src/core/effects.ts";
import { LogOpenError, MemoryDisk, RecordTooLargeError, nodeDisk, openLog, segmentName, storageLimits } from "../../src/storage/mod.ts";
import { acceptRecord, byCell, canonicalRecords, frameLayout, openIntact, snapshotRecord, withTempDirectory } from "./support.ts";

describe("the node's log", () => {
  test("records appended and synced come back on reopen, per cell and in order", async () => {
    await withTempDirectory(async (directory) => {
      const written: CellRecord[] = [];
      const { log, records, damage, torn } = await openIntact(directory);
      expect(records.size).toBe(0);
      expect(damage).toEqual([]);
      expect(torn).toBeNull();
      for (let batch = 0; batch < 20; batch++) {
        const entries = Array.from({ length: 1 + (batch % 5) }, (_, i) => acceptRecord(`cell-${(batch * 7 + i) % 6}`, batch * 10 + i, 50 + batch));
        log.append(entries);
        written.push(...entries);
        await log.sync();
      }
      written.push(snapshotRecord("cell-0", 999, 70_000));
      log.append(written.slice(-1));
      await log.close();

      const reopened = await openIntact(directory);
      expect(reopened.damage).toEqual([]);
      expect(canonicalRecords(reopened.records)).toBe(canonicalRecords(byCell(written)));
      expect(reopened.stats.records).toBe(written.length);
      await reopened.log.close();
    });
  });

  test("a segment file begins with its header and the log rotates past the segment size", async () => {
    await withTempDirectory(async (directory) => {
      const { log } = await openIntact(directory, { segmentBytes: 8192 });
      const written: CellRecord[] = [];
      for (let slot = 1; slot <= 300; slot++) {
        const entry = acceptRecord(`cell-${slot % 3}`, slot);
        log.append([entry]);
        written.push(entry);
        if (slot % 10 === 0) await log.sync();
      }
      expect(log.segments).toBeGreaterThan(3);
      await log.close();
      const names = (await readdir(directory)).filter((name) => name.endsWith(".log")).sort();
      expect(names[0]).toBe(segmentName(1));
      expect(names.length).toBeGreaterThan(3);
      const first = new Uint8Array(await readFile(join(directory, names[0]!)));
      expect(new TextDecoder().decode(first.subarray(0, 7))).toBe("PHYSLOG");
      expect(first.length).toBeLessThanOrEqual(8192);

      const reopened = await openIntact(directory, { segmentBytes: 8192 });
      expect(reopened.damage).toEqual([]);
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
    const { log } = await openIntact("/log", { disk });
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
    const reopened = await openIntact("/log", { disk: after });
    expect(reopened.records.get("cell")?.length).toBe(50);
  });

  test("a sync with nothing new to cover resolves without a round", async () => {
    const { log } = await openIntact("/log", { disk: new MemoryDisk() });
    log.append([acceptRecord("cell", 1)]);
    await log.sync();
    const rounds = log.syncRounds;
    await log.sync();
    expect(log.syncRounds).toBe(rounds);
  });

  test("a record larger than the limit is refused and nothing of its batch is appended", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk });
    const huge = snapshotRecord("cell", 1, storageLimits.recordBytesMax);
    expect(() => log.append([acceptRecord("cell", 1), huge])).toThrow(RecordTooLargeError);
    log.append([acceptRecord("cell", 2)]);
    await log.close();
    const reopened = await openIntact("/log", { disk });
    expect(reopened.records.get("cell")?.map((record) => (record.kind === "accept" ? record.slot : -1))).toEqual([2]);
  });

  test("a record of the largest size round-trips", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk, segmentBytes: storageLimits.segmentBytesMin });
    const big = snapshotRecord("cell", 1, storageLimits.recordBytesMax - 100);
    log.append([acceptRecord("cell", 1), big, acceptRecord("cell", 2)]);
    await log.close();
    const reopened = await openIntact("/log", { disk });
    expect(reopened.damage).toEqual([]);
    expect(canonicalRecords(reopened.records)).toBe(canonicalRecords(byCell([acceptRecord("cell", 1), big, acceptRecord("cell", 2)])));
  });

  test("a log that closes cleanly leaves no open files", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk, segmentBytes: 4096 });
    for (let i = 0; i < 100; i++) log.append([acceptRecord("cell", i)]);
    await log.compact([acceptRecord("cell", 99)]);
    for (let i = 100; i < 200; i++) log.append([acceptRecord("cell", i)]);
    await log.close();
    expect(disk.openFiles).toBe(0);
  });

  test("a directory whose first segment is missing is damage: reported, read, and not rewritten", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk, segmentBytes: 4096 });
    const written = Array.from({ length: 100 }, (_, i) => acceptRecord("cell", i));
    for (const entry of written) log.append([entry]);
    await log.close();
    const firstBytes = disk.snapshot().get(`/log/${segmentName(1)}`)!;
    disk.remove(`/log/${segmentName(1)}`);
    const before = disk.snapshot();
    const opened = await openLog("/log", { disk });
    expect(opened.log).toBeNull();
    expect(opened.damage).toMatchObject([{ segment: 2, offset: 0, reason: "chain" }]);
    // The records of the segments that are left all come back.
    const inFirst = frameLayout(firstBytes).filter((frame) => frame.kind === 1).length;
    expect(inFirst).toBeGreaterThan(0);
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(written.slice(inFirst))));
    expect(disk.snapshot()).toEqual(before);
  });

  test("segment files of another format version are refused, but a flipped version bit is damage", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk });
    log.append([acceptRecord("cell", 1)]);
    await log.close();
    const path = `/log/${segmentName(1)}`;
    const intact = disk.snapshot().get(path)!;
    const { crc32c } = await import("../../src/storage/crc32c.ts");

    const future = intact.slice();
    future[8] = 9; // the version, with a header checksum that holds: a log of another version
    new DataView(future.buffer).setUint32(44, crc32c(future, 0, 0, 44), true);
    disk.replace(path, future);
    await expect(openLog("/log", { disk })).rejects.toThrow("format version 9");

    // A version 1 header (40 bytes, its checksum at 36), as the previous format wrote it.
    const old = intact.slice(0, 40);
    old.set([1, 0], 8);
    new DataView(old.buffer).setUint32(36, crc32c(old, 0, 0, 36), true);
    disk.replace(path, old);
    await expect(openLog("/log", { disk })).rejects.toBeInstanceOf(LogOpenError);
    await expect(openLog("/log", { disk })).rejects.toThrow("format version 1");

    const flipped = intact.slice();
    flipped[8]! ^= 0x04;
    disk.replace(path, flipped);
    const opened = await openLog("/log", { disk });
    expect(opened.damage).toMatchObject([{ segment: 1, offset: 0, reason: "header" }]);
    expect(opened.records.get("cell")).toHaveLength(1);
  });
});

describe("what the log tells the disk of each sync", () => {
  /** A memory disk that records the hint of every sync of a segment file. */
  function hintingDisk() {
    const disk = new MemoryDisk();
    const hints: (number | undefined)[] = [];
    const sync = disk.sync.bind(disk);
    disk.sync = (file, hint) => {
      hints.push(hint?.bytes);
      return sync(file, hint);
    };
    return { disk, hints };
  }

  test("a group commit's sync carries the bytes written since the segment's last sync, and a rollover's the whole new segment", async () => {
    const { disk, hints } = hintingDisk();
    const { log } = await openIntact("/log", { disk, segmentBytes: 8192 });
    hints.length = 0;
    log.append([acceptRecord("cell", 1)]);
    await log.sync();
    const one = hints.at(-1) as number;
    expect(one).toBeGreaterThan(100);
    log.append([acceptRecord("cell", 2), acceptRecord("cell", 3)]);
    await log.sync();
    // Two records (and the last round's confirmation, which rides with them) were written since.
    expect(hints.at(-1) as number).toBeGreaterThan(one);
    expect(hints.at(-1) as number).toBeLessThan(3 * one + 64);
    // Past a segment's end the log rolls over: the closed segment's sync carries its tail, the
    // new one's its header and frames; never more than the segment holds.
    hints.length = 0;
    for (let slot = 4; slot < 80; slot++) log.append([acceptRecord("cell", slot)]);
    await log.sync();
    expect(hints.length).toBeGreaterThan(1);
    for (const bytes of hints) expect(bytes as number).toBeLessThanOrEqual(8192);
    await log.close();
  });

  test("a compaction's copy is synced without a hint (on the thread pool, however small)", async () => {
    const { disk, hints } = hintingDisk();
    const { log } = await openIntact("/log", { disk, compactionSyncBytes: 1024, compactionChunkBytes: 1024 });
    for (let slot = 1; slot < 40; slot++) log.append([acceptRecord(`cell-${slot}`, slot)]);
    await log.sync();
    hints.length = 0;
    await log.compact(Array.from({ length: 40 }, (_, i) => acceptRecord(`cell-${i}`, i + 1)));
    expect(hints).toContain(undefined);
    await log.close();
  });
});

describe("the real disk's inline syncs", () => {
  test("a second small sync in one turn of the event loop resumes its caller only in the next turn; the first resumes at once", async () => {
    await withTempDirectory(async (directory) => {
      const disk = nodeDisk();
      const file = disk.create(`${directory}/f`);
      const order: string[] = [];
      // Start from a fresh turn.
      await new Promise<void>((resolve) => setImmediate(resolve));
      disk.write(file, new Uint8Array(100).fill(1), 0);
      setImmediate(() => order.push("next turn"));
      await disk.sync(file, { bytes: 100 });
      order.push("first sync");
      disk.write(file, new Uint8Array(100).fill(2), 100);
      await disk.sync(file, { bytes: 100 });
      order.push("second sync");
      expect(order).toEqual(["first sync", "next turn", "second sync"]);
      // A large one goes through the thread pool: its completion comes back through the event
      // loop, never within the microtasks of the turn that asked for it (whichever phase that
      // turn is in, so nothing here races with the pool's speed).
      await new Promise<void>((resolve) => setImmediate(resolve));
      await new Promise<void>((resolve) => setImmediate(resolve));
      disk.write(file, new Uint8Array(200 * 1024).fill(3), 200);
      let pooledDone = false;
      const pooled = disk.sync(file, { bytes: 200 * 1024 }).then(() => { pooledDone = true; });
      for (let i = 0; i < 10; i++) await Promise.resolve();
      expect(pooledDone).toBe(false);
      await pooled;
      expect(pooledDone).toBe(true);
      // ...whereas the first small sync of a turn has resumed by then.
      disk.write(file, new Uint8Array(100).fill(4), 200 + 200 * 1024);
      let inlineDone = false;
      const inline = disk.sync(file, { bytes: 100 }).then(() => { inlineDone = true; });
      for (let i = 0; i < 10; i++) await Promise.resolve();
      expect(inlineDone).toBe(true);
      await inline;
      disk.close(file);
    });
  });
});
