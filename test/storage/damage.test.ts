import { describe, expect, test } from "bun:test";
import { copyFile, mkdir, readdir, rm, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import type { CellRecord } from "../../src/core/effects.ts";
import { MemoryDisk, openLog, segmentName, storageLimits } from "../../src/storage/mod.ts";
import { encodeRecord } from "../../src/wire/records.ts";
import { acceptRecord, byCell, canonicalRecords, withTempDirectory } from "./support.ts";

const segmentPath = (number: number) => `/log/${segmentName(number)}`;

/** Writes `count` records into a fresh log on a memory disk; returns the disk and each record's file offset. */
async function writtenLog(count: number, options: { segmentBytes?: number } = {}) {
  const disk = new MemoryDisk();
  const { log } = await openLog("/log", { disk, ...options });
  const entries: CellRecord[] = [];
  const places: { segment: number; offset: number }[] = [];
  for (let slot = 1; slot <= count; slot++) {
    const entry = acceptRecord(`cell-${slot % 4}`, slot, 40 + (slot % 13));
    const segmentsBefore = log.currentSegment;
    log.append([entry]);
    await log.sync();
    const segment = log.currentSegment;
    const size = disk.snapshot().get(segmentPath(segment))!.length;
    const frame = storageLimits.frameHeaderBytes + encodeRecord(entry).length;
    places.push({ segment, offset: size - frame });
    expect(segment >= segmentsBefore).toBe(true);
    entries.push(entry);
  }
  await log.close();
  return { disk, entries, places };
}

describe("recovery from a damaged log", () => {
  test("a tail torn at every byte of the last record loses only that record, and appends continue after it", async () => {
    await withTempDirectory(async (directory) => {
      const original = join(directory, "original");
      const { log } = await openLog(original);
      const entries = Array.from({ length: 5 }, (_, i) => acceptRecord(`cell-${i % 2}`, i + 1, 60));
      log.append(entries.slice(0, 4));
      await log.sync();
      const lastStart = (await stat(join(original, segmentName(1)))).size;
      log.append(entries.slice(4));
      await log.close();
      const fullSize = (await stat(join(original, segmentName(1)))).size;
      expect(fullSize - lastStart).toBeGreaterThan(100);

      const torn = join(directory, "torn");
      for (let cut = lastStart; cut < fullSize; cut++) {
        await rm(torn, { recursive: true, force: true });
        await mkdir(torn);
        await copyFile(join(original, segmentName(1)), join(torn, segmentName(1)));
        await truncate(join(torn, segmentName(1)), cut);
        const opened = await openLog(torn);
        expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries.slice(0, 4))));
        if (cut === lastStart) {
          expect(opened.damage).toBeNull();
        } else {
          expect(opened.damage).toMatchObject({ segment: 1, offset: lastStart, reason: "torn", lostBytes: cut - lastStart });
        }
        expect((await stat(join(torn, segmentName(1)))).size).toBe(lastStart);
        const extra = acceptRecord("cell-9", 100);
        opened.log.append([extra]);
        await opened.log.close();
        const again = await openLog(torn);
        expect(again.damage).toBeNull();
        expect(canonicalRecords(again.records)).toBe(canonicalRecords(byCell([...entries.slice(0, 4), extra])));
        await again.log.close();
      }
    });
  });

  test("a flipped bit anywhere in a record is detected and every later record is reported lost", async () => {
    const { disk, entries, places } = await writtenLog(12);
    const image = disk.snapshot().get(segmentPath(1))!;
    const victim = 6;
    const start = places[victim]!.offset;
    const end = places[victim + 1]!.offset;
    for (let at = start; at < end; at++) {
      const damaged = disk.crash("process");
      const bytes = image.slice();
      bytes[at]! ^= 1 << (at % 8);
      damaged.replace(segmentPath(1), bytes);
      const opened = await openLog("/log", { disk: damaged });
      expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries.slice(0, victim))));
      expect(opened.damage?.segment).toBe(1);
      expect(opened.damage?.offset).toBe(start);
      expect(["checksum", "length", "torn"]).toContain(opened.damage!.reason);
      expect(opened.damage?.lostBytes).toBe(image.length - start);
    }
  });

  test("damage in an early segment discards every later segment", async () => {
    const { disk, entries, places } = await writtenLog(200, { segmentBytes: 4096 });
    const victim = places.findIndex((place) => place.segment === 3);
    expect(victim).toBeGreaterThan(0);
    const last = places.at(-1)!.segment;
    expect(last).toBeGreaterThan(4);
    const bytes = disk.snapshot().get(segmentPath(3))!;
    bytes[places[victim + 2]!.offset + storageLimits.frameHeaderBytes + 3]! ^= 0x40;
    disk.replace(segmentPath(3), bytes);
    const opened = await openLog("/log", { disk });
    expect(opened.damage).toMatchObject({ segment: 3, offset: places[victim + 2]!.offset, reason: "checksum" });
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries.slice(0, victim + 2))));
    expect([...disk.snapshot().keys()].sort()).toEqual([1, 2, 3].map(segmentPath));
    // Appends after recovery chain to the truncated segment, and a reopen finds no damage.
    const extra = acceptRecord("cell-x", 1);
    opened.log.append([extra]);
    await opened.log.close();
    const again = await openLog("/log", { disk });
    expect(again.damage).toBeNull();
    expect(canonicalRecords(again.records)).toBe(canonicalRecords(byCell([...entries.slice(0, victim + 2), extra])));
  });

  test("a segment whose predecessor lost its tail at a frame boundary is discarded with it", async () => {
    const { disk, entries, places } = await writtenLog(120, { segmentBytes: 4096 });
    const lastOfTwo = places.findLastIndex((place) => place.segment === 2);
    const bytes = disk.snapshot().get(segmentPath(2))!;
    disk.replace(segmentPath(2), bytes.subarray(0, places[lastOfTwo]!.offset));
    const opened = await openLog("/log", { disk });
    expect(opened.damage).toMatchObject({ segment: 2, offset: places[lastOfTwo]!.offset, reason: "chain" });
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries.slice(0, lastOfTwo))));
  });

  test("a garbled segment header loses that segment and the ones after it", async () => {
    const { disk, entries, places } = await writtenLog(120, { segmentBytes: 4096 });
    const bytes = disk.snapshot().get(segmentPath(2))!;
    bytes[13]! ^= 0xff;
    disk.replace(segmentPath(2), bytes);
    const opened = await openLog("/log", { disk });
    expect(opened.damage).toMatchObject({ segment: 2, offset: 0, reason: "header" });
    const firstOfTwo = places.findIndex((place) => place.segment === 2);
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries.slice(0, firstOfTwo))));
  });

  test("an empty segment at the end, left by a kill right after it was created, is removed without reporting damage", async () => {
    const { disk, entries } = await writtenLog(30, { segmentBytes: 4096 });
    const files = [...disk.snapshot().keys()].sort();
    const next = files.length + 1;
    disk.create(segmentPath(next));
    const opened = await openLog("/log", { disk });
    expect(opened.damage).toBeNull();
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries)));
    expect([...disk.snapshot().keys()].sort()).toEqual(files);

    disk.create(segmentPath(next + 1));
    disk.replace(segmentPath(next + 1), new Uint8Array(12));
    const again = await openLog("/log", { disk });
    expect(again.damage).toMatchObject({ segment: next + 1, offset: 0, reason: "torn", lostBytes: 12 });
  });

  test("a zero-filled tail, as a file system leaves after a crash, is reported and cut off", async () => {
    await withTempDirectory(async (directory) => {
      const { log } = await openLog(directory);
      const entries = [acceptRecord("a", 1), acceptRecord("b", 2)];
      log.append(entries);
      await log.close();
      const path = join(directory, segmentName(1));
      const size = (await stat(path)).size;
      await truncate(path, size + 4096);
      const opened = await openLog(directory);
      expect(opened.damage).toMatchObject({ segment: 1, offset: size, reason: "length", lostBytes: 4096 });
      expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries)));
      expect(await readdir(directory)).toEqual([segmentName(1)]);
      await opened.log.close();
    });
  });
});
