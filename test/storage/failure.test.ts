import { describe, expect, test } from "bun:test";
import { type Disk, type DiskOperation, MemoryDisk, StorageFailed, nodeDisk, storageLimits } from "../../src/storage/mod.ts";
import { acceptRecord, openIntact, snapshotRecord, withTempDirectory } from "./support.ts";

/** A memory disk whose operations of one kind fail once `armed` is set. */
function failingDisk(failing: DiskOperation) {
  const state = { armed: false, attempts: 0 };
  const disk = new MemoryDisk({
    onOperation: (operation) => {
      if (operation !== failing || !state.armed) return;
      state.attempts++;
      throw new Error(`EIO: injected ${operation} failure`);
    },
  });
  return { disk, state };
}

describe("a failing disk", () => {
  test("a failed fsync rejects every waiting and later sync and append with StorageFailed, and is never retried", async () => {
    const { disk, state } = failingDisk("sync");
    const { log } = await openIntact("/log", { disk });
    log.append([acceptRecord("cell", 1)]);
    await log.sync();

    state.armed = true;
    log.append([acceptRecord("cell", 2)]);
    const first = log.sync();
    log.append([acceptRecord("cell", 3)]);
    const second = log.sync(); // waits for the next round, which never comes
    const [firstResult, secondResult] = await Promise.allSettled([first, second]);
    for (const result of [firstResult, secondResult]) {
      expect(result?.status).toBe("rejected");
      if (result?.status === "rejected") expect(result.reason).toBeInstanceOf(StorageFailed);
    }
    await expect(first).rejects.toThrow("Cannot sync log in /log: EIO: injected sync failure");
    expect(log.failed).toBeInstanceOf(StorageFailed);

    expect(() => log.append([acceptRecord("cell", 4)])).toThrow(StorageFailed);
    await expect(log.sync()).rejects.toBeInstanceOf(StorageFailed);
    await expect(log.compact([])).rejects.toBeInstanceOf(StorageFailed);
    expect(log.shouldCompact()).toBe(false);
    await log.close();
    expect(state.attempts).toBe(1);
    expect(disk.openFiles).toBe(0);
  });

  test("a failed write makes the sync or the append that wrote fail with StorageFailed, and the log stays failed", async () => {
    const buffered = failingDisk("write");
    const { log } = await openIntact("/log", { disk: buffered.disk });
    buffered.state.armed = true;
    // Small appends are buffered: the write, and its failure, come with the sync.
    log.append([acceptRecord("cell", 1)]);
    await expect(log.sync()).rejects.toBeInstanceOf(StorageFailed);
    expect(() => log.append([acceptRecord("cell", 2)])).toThrow(StorageFailed);
    expect(buffered.state.attempts).toBe(1);

    // A record larger than the write buffer is written at once, and fails at once.
    const direct = failingDisk("write");
    const { log: other } = await openIntact("/log", { disk: direct.disk });
    direct.state.armed = true;
    expect(() => other.append([snapshotRecord("cell", 1, storageLimits.pendingBytesMax + 1)])).toThrow(StorageFailed);
    await expect(other.sync()).rejects.toBeInstanceOf(StorageFailed);
    expect(direct.state.attempts).toBe(1);
  });

  test("a directory fsync that fails while a segment is begun is fatal too", async () => {
    const { disk, state } = failingDisk("syncDirectory");
    const { log } = await openIntact("/log", { disk, segmentBytes: 4096 });
    state.armed = true;
    for (let slot = 1; slot <= 60; slot++) log.append([acceptRecord("cell", slot)]);
    await expect(log.sync()).rejects.toBeInstanceOf(StorageFailed);
    expect(state.attempts).toBe(1);
  });

  test("a compaction whose records cannot be encoded fails the log instead of leaving a segment without its marker", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk });
    log.append([acceptRecord("cell", 1)]);
    await log.sync();
    function* entries() {
      yield acceptRecord("cell", 1);
      throw new Error("a replica broke while listing its records");
    }
    await expect(log.compact(entries())).rejects.toBeInstanceOf(StorageFailed);
    expect(() => log.append([acceptRecord("cell", 2)])).toThrow(StorageFailed);
    await log.close();
    expect(disk.openFiles).toBe(0);
    const reopened = await openIntact("/log", { disk });
    expect(reopened.records.get("cell")).toHaveLength(1);
  });

  test("the real disk can be wrapped to fail its fsync, and the log then fails", async () => {
    await withTempDirectory(async (directory) => {
      let failing = false;
      let fsyncs = 0;
      const real = nodeDisk();
      const disk: Disk = {
        ...real,
        sync: (file) => {
          if (!failing) return real.sync(file);
          fsyncs++;
          return Promise.reject(Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" }));
        },
      };
      const { log } = await openIntact(directory, { disk });
      log.append([acceptRecord("cell", 1)]);
      await log.sync();
      failing = true;
      log.append([acceptRecord("cell", 2)]);
      const error = await log.sync().catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(StorageFailed);
      expect((error as StorageFailed).name).toBe("StorageFailed");
      expect(((error as StorageFailed).cause as { code?: string }).code).toBe("EIO");
      await log.close();
      expect(fsyncs).toBe(1);
      const reopened = await openIntact(directory);
      expect(reopened.records.get("cell")!.length).toBeGreaterThanOrEqual(1);
      await reopened.log.close();
    });
  });
});
