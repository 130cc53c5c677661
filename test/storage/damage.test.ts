// Recovery from logs that a crash tore, and from logs whose durable bytes changed. The rule
// under test (src/storage/recover.ts): bytes no completed sync covered are a torn tail, cut off
// quietly; anything wrong in bytes the log had proof were durable is damage, reported with
// every record that can still be read, and nothing is modified.

import { describe, expect, test } from "bun:test";
import { copyFile, mkdir, readFile, readdir, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MemoryDisk, moveLogAside, openLog, segmentName, storageLimits } from "../../src/storage/mod.ts";
import { encodeRecord } from "../../src/wire/records.ts";
import { TestRandom, acceptRecord, byCell, canonicalRecords, frameLayout, framesEnd, openIntact, segmentPath, withTempDirectory, writtenLog } from "./support.ts";

/** Bytes of a sync confirmation frame: recovery appends one after what it read. */
const confirmationFrameBytes = storageLimits.frameHeaderBytes + storageLimits.confirmationPayloadBytes;

describe("a torn tail", () => {
  test("a tail torn at every byte of the last record is torn, not damage: only that record is lost, and appends continue after it", async () => {
    await withTempDirectory(async (directory) => {
      const original = join(directory, "original");
      const { log } = await openIntact(original);
      const entries = Array.from({ length: 5 }, (_, i) => acceptRecord(`cell-${i % 2}`, i + 1, 60));
      log.append(entries.slice(0, 4));
      await log.sync();
      // The sync's confirmation is in the file already: the torn part begins after it. The
      // file is longer than its frames (preallocated zeros follow them).
      const lastStart = framesEnd(await readFile(join(original, segmentName(1))));
      log.append(entries.slice(4));
      await log.close();
      const fullSize = framesEnd(await readFile(join(original, segmentName(1))));
      expect(fullSize - lastStart).toBeGreaterThan(100);
      const image = await readFile(join(original, segmentName(1)));
      // After the last record come the confirmations of the close.
      const lastEnd = lastStart + storageLimits.frameHeaderBytes + encodeRecord(entries[4]!).length;
      expect(lastEnd).toBeLessThan(fullSize);

      const torn = join(directory, "torn");
      for (let cut = lastStart; cut < fullSize; cut++) {
        await rm(torn, { recursive: true, force: true });
        await mkdir(torn);
        await copyFile(join(original, segmentName(1)), join(torn, segmentName(1)));
        await copyFile(join(original, "IDENTITY"), join(torn, "IDENTITY"));
        await truncate(join(torn, segmentName(1)), cut);
        const opened = await openIntact(torn);
        expect(opened.damage).toEqual([]);
        const kept = cut < lastEnd ? 4 : 5;
        const keptBytes = cut < lastEnd ? lastStart : lastEnd;
        expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries.slice(0, kept))));
        if (cut === keptBytes) expect(opened.torn).toBeNull();
        else expect(opened.torn).toMatchObject({ segment: 1, offset: keptBytes, lostBytes: cut - keptBytes });
        // The torn bytes are gone, and a confirmation of what was read follows what is left
        // (then the zeros of the space the reopened log preallocated).
        const after = await readFile(join(torn, segmentName(1)));
        expect(framesEnd(after)).toBe(keptBytes + confirmationFrameBytes);
        expect(after.subarray(keptBytes + confirmationFrameBytes).every((byte) => byte === 0)).toBe(true);
        expect(after.subarray(0, keptBytes)).toEqual(image.subarray(0, keptBytes));
        const extra = acceptRecord("cell-9", 100);
        opened.log.append([extra]);
        await opened.log.close();
        const again = await openIntact(torn);
        expect(again.torn).toBeNull();
        expect(canonicalRecords(again.records)).toBe(canonicalRecords(byCell([...entries.slice(0, kept), extra])));
        await again.log.close();
      }
    });
  });

  test("a zero-filled tail, as a file system leaves after a power failure (or preallocation), is the segment's end, not damage (issue 10)", async () => {
    await withTempDirectory(async (directory) => {
      const { log } = await openIntact(directory);
      const entries = [acceptRecord("a", 1), acceptRecord("b", 2)];
      log.append(entries);
      await log.close();
      const path = join(directory, segmentName(1));
      const end = framesEnd(await readFile(path));
      // Cut the preallocated space, then zeros of another length in its place.
      await truncate(path, end);
      await truncate(path, end + 4096 + 13);
      const opened = await openIntact(directory);
      expect(opened.damage).toEqual([]);
      expect(opened.torn).toBeNull();
      expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries)));
      expect((await readdir(directory)).sort()).toEqual([segmentName(1), "IDENTITY"]);
      // Appends go where the frames end, into the zeros.
      const after = await readFile(path);
      expect(framesEnd(after)).toBe(end + confirmationFrameBytes);
      const extra = acceptRecord("c", 3);
      opened.log.append([extra]);
      await opened.log.close();
      const again = await openIntact(directory);
      expect(again.torn).toBeNull();
      expect(canonicalRecords(again.records)).toBe(canonicalRecords(byCell([...entries, extra])));
      await again.log.close();
    });
  });

  test("zeros at the end of a sealed segment are damage: its successor's header says where it ends", async () => {
    const { disk } = await writtenLog(30, { segmentBytes: 4096 });
    const image = disk.snapshot().get(segmentPath(1))!;
    expect(image.length).toBe(framesEnd(image));
    const crashed = disk.crash("process");
    crashed.replace(segmentPath(1), new Uint8Array([...image, ...new Uint8Array(600)]));
    const opened = await openLog("/log", { disk: crashed });
    expect(opened.log).toBeNull();
    expect(opened.damage).toMatchObject([{ segment: 1, offset: image.length, reason: "chain", bytes: 600 }]);
  });

  test("unsynced tails that are garbled, half-written, or hold old frames are torn, not damage (issue 10)", async () => {
    const { disk, entries } = await writtenLog(20);
    // The segment's frames, without the preallocated space after them.
    const whole = disk.snapshot().get(segmentPath(1))!;
    const image = whole.slice(0, framesEnd(whole));
    const frames = frameLayout(image);
    const random = new TestRandom(99);
    const noise = (length: number) => Uint8Array.from({ length }, () => random.int(256));
    const someFrame = frames[5]!;
    const tails: [string, Uint8Array][] = [
      ["noise", noise(3000)],
      ["a frame header and half its payload", image.slice(someFrame.offset, someFrame.offset + storageLimits.frameHeaderBytes + Math.floor(someFrame.length / 2))],
      ["a copy of an old frame", image.slice(someFrame.offset, someFrame.end)],
      ["zeros, then a copy of old frames", new Uint8Array([...new Uint8Array(700), ...image.slice(frames[3]!.offset, frames[9]!.end)])],
      ["a few bytes", noise(7)],
    ];
    for (const [name, tail] of tails) {
      const crashed = disk.crash("process");
      crashed.replace(segmentPath(1), new Uint8Array([...image, ...tail]));
      const opened = await openLog("/log", { disk: crashed });
      expect({ name, damage: opened.damage }).toEqual({ name, damage: [] });
      // Zeros that end the file may be counted as preallocated space, not lost bytes.
      let kept = tail.length;
      while (kept > 0 && tail[kept - 1] === 0) kept--;
      expect(opened.torn).toMatchObject({ segment: 1, offset: image.length });
      expect(opened.torn!.lostBytes).toBeGreaterThanOrEqual(kept);
      expect(opened.torn!.lostBytes).toBeLessThanOrEqual(tail.length);
      expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries)));
      await opened.log?.close();
    }
  });

  test("an empty segment at the end, left by a kill right after it was created, is a torn tail of no bytes and is removed", async () => {
    const { disk, entries } = await writtenLog(30, { segmentBytes: 4096 });
    const files = [...disk.snapshot().keys()].sort();
    const next = files.filter((path) => path.endsWith(".log")).length + 1;
    disk.create(segmentPath(next));
    const opened = await openIntact("/log", { disk });
    expect(opened.damage).toEqual([]);
    expect(opened.torn).toMatchObject({ segment: next, offset: 0, lostBytes: 0 });
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries)));
    expect([...disk.snapshot().keys()].sort()).toEqual(files);
    await opened.log.close();

    disk.create(segmentPath(next + 1));
    disk.replace(segmentPath(next + 1), new Uint8Array(12));
    const again = await openIntact("/log", { disk });
    expect(again.torn).toMatchObject({ segment: next + 1, offset: 0, reason: "header", lostBytes: 12 });
    await again.log.close();
  });
});

describe("damage", () => {
  test("a flipped bit anywhere in a synced record is damage, never torn: the record is named, every other record comes back, and no file changes", async () => {
    const { disk, entries, places } = await writtenLog(12);
    const image = disk.snapshot().get(segmentPath(1))!;
    const victim = 6;
    const { offset: start, end } = places[victim]!;
    for (let at = start; at < end; at++) {
      const damaged = disk.crash("process");
      const bytes = image.slice();
      bytes[at]! ^= 1 << (at % 8);
      damaged.replace(segmentPath(1), bytes);
      const before = damaged.snapshot();
      const opened = await openLog("/log", { disk: damaged });
      expect(opened.log).toBeNull();
      expect(opened.torn).toBeNull();
      expect(opened.damage).toHaveLength(1);
      expect(opened.damage[0]).toMatchObject({ segment: 1, offset: start });
      expect(["checksum", "length", "frameHeader"]).toContain(opened.damage[0]!.reason);
      expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries.filter((_, i) => i !== victim))));
      expect(damaged.snapshot()).toEqual(before);
    }
  });

  test("a flipped bit in the length of a synced record near the end of a segment is damage, not a torn tail (issue 10)", async () => {
    // Regression: a length that grew past the end of the file read as a frame the crash cut short.
    const { disk, entries, places } = await writtenLog(10);
    const image = disk.snapshot().get(segmentPath(1))!;
    for (const victim of [7, 8, 9]) {
      for (const bit of [12, 16, 20, 21]) {
        const damaged = disk.crash("process");
        const bytes = image.slice();
        const at = places[victim]!.offset;
        new DataView(bytes.buffer).setUint32(at, new DataView(bytes.buffer).getUint32(at, true) ^ (1 << bit), true);
        damaged.replace(segmentPath(1), bytes);
        const opened = await openLog("/log", { disk: damaged });
        expect(opened.torn).toBeNull();
        expect(opened.damage).toMatchObject([{ segment: 1, offset: at }]);
        expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries.filter((_, i) => i !== victim))));
        expect(damaged.snapshot()).toEqual(disk.crash("process").snapshot().set(segmentPath(1), bytes));
      }
    }
  });

  test("damage in a sealed segment truncates nothing and loses no later segment (issue 10)", async () => {
    // Regression: recovery used to cut the damaged segment and delete every segment after it.
    const { disk, entries, places } = await writtenLog(200, { segmentBytes: 4096 });
    const inThree = places.map((place, i) => ({ ...place, i })).filter((place) => place.segment === 3);
    const last = places.at(-1)!.segment;
    expect(last).toBeGreaterThan(4);
    const victim = inThree.at(-2)!;
    const bytes = disk.snapshot().get(segmentPath(3))!;
    // The length's high bits: the frame now runs past the end of its segment.
    bytes[victim.offset + 2]! ^= 0x20;
    disk.replace(segmentPath(3), bytes);
    const before = disk.snapshot();
    const opened = await openLog("/log", { disk });
    expect(opened.log).toBeNull();
    expect(opened.torn).toBeNull();
    expect(opened.damage).toMatchObject([{ segment: 3, offset: victim.offset }]);
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries.filter((_, i) => i !== victim.i))));
    expect(disk.snapshot()).toEqual(before);
  });

  test("a segment whose predecessor lost its tail at a frame boundary is damage: the header after it says how long it was", async () => {
    const { disk, entries, places } = await writtenLog(120, { segmentBytes: 4096 });
    const lastOfTwo = places.findLastIndex((place) => place.segment === 2);
    const bytes = disk.snapshot().get(segmentPath(2))!;
    const cut = places[lastOfTwo]!.offset;
    disk.replace(segmentPath(2), bytes.subarray(0, cut));
    const opened = await openLog("/log", { disk });
    expect(opened.torn).toBeNull();
    expect(opened.damage).toMatchObject([{ segment: 2, offset: cut, reason: "chain" }]);
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries.filter((_, i) => i !== lastOfTwo))));
  });

  test("a garbled segment header is damage, and the frames after it are still read", async () => {
    const { disk, entries } = await writtenLog(120, { segmentBytes: 4096 });
    const bytes = disk.snapshot().get(segmentPath(2))!;
    bytes[13]! ^= 0xff;
    disk.replace(segmentPath(2), bytes);
    const opened = await openLog("/log", { disk });
    expect(opened.damage).toMatchObject([{ segment: 2, offset: 0, reason: "header" }]);
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries)));
  });

  test("damage in two places is reported twice, with the records between them", async () => {
    const { disk, entries, places } = await writtenLog(150, { segmentBytes: 4096 });
    const victims = [10, 90];
    for (const victim of victims) {
      const { segment, offset } = places[victim]!;
      const bytes = disk.snapshot().get(segmentPath(segment))!;
      bytes[offset + storageLimits.frameHeaderBytes + 5]! ^= 0x01;
      disk.replace(segmentPath(segment), bytes);
    }
    const opened = await openLog("/log", { disk });
    expect(opened.damage.map((damage) => [damage.segment, damage.offset, damage.reason])).toEqual(victims.map((victim) => [places[victim]!.segment, places[victim]!.offset, "checksum"]));
    expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries.filter((_, i) => !victims.includes(i)))));
  });
});

describe("the directory's identity", () => {
  test("a new directory gets an IDENTITY of 16 hex digits, which every open returns", async () => {
    await withTempDirectory(async (root) => {
      const directory = join(root, "a", "b");
      const first = await openIntact(directory);
      expect(first.incarnation).toMatch(/^[0-9a-f]{16}$/);
      expect(await readFile(join(directory, "IDENTITY"), "utf8")).toBe(`${first.incarnation}\n`);
      first.log.append([acceptRecord("cell", 1)]);
      await first.log.close();
      const second = await openIntact(directory);
      expect(second.incarnation).toBe(first.incarnation);
      await second.log.close();
      const other = await openIntact(join(root, "c"));
      expect(other.incarnation).not.toBe(first.incarnation);
      await other.log.close();
    });
  });

  test("segments without a readable IDENTITY are damage, and still read", async () => {
    await withTempDirectory(async (directory) => {
      const { log } = await openIntact(directory);
      const entries = [acceptRecord("a", 1), acceptRecord("b", 2)];
      log.append(entries);
      await log.close();
      for (const identity of [null, "not an identity\n", "0123456789ABCDEF\n"]) {
        if (identity === null) await rm(join(directory, "IDENTITY"));
        else await writeFile(join(directory, "IDENTITY"), identity);
        const opened = await openLog(directory);
        expect(opened.log).toBeNull();
        expect(opened.damage).toMatchObject([{ segment: 0, reason: "identity" }]);
        expect(canonicalRecords(opened.records)).toBe(canonicalRecords(byCell(entries)));
      }
    });
  });

  test("a segment copied in from another log is damage", async () => {
    await withTempDirectory(async (root) => {
      const one = join(root, "one");
      const two = join(root, "two");
      for (const directory of [one, two]) {
        const { log } = await openIntact(directory, { segmentBytes: 4096 });
        for (let slot = 1; slot <= 60; slot++) log.append([acceptRecord("cell", slot)]);
        await log.close();
      }
      await copyFile(join(two, segmentName(2)), join(one, segmentName(2)));
      const opened = await openLog(one, { segmentBytes: 4096 });
      expect(opened.damage[0]).toMatchObject({ segment: 2, offset: 0, reason: "header" });
      expect(opened.damage[0]!.detail).toContain("belongs to log");
    });
  });
});

describe("the directory's durability (issue 10)", () => {
  test("a new log directory, and every directory made for it, is synced into its parent", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/data/node-1/log", { disk });
    log.append([acceptRecord("cell", 1)]);
    await log.sync();
    // A power failure that keeps no name change its directory did not sync.
    const after = disk.crash("power", { nameChangeSurvives: () => false, unsyncedBytesSurvive: false });
    const opened = await openIntact("/data/node-1/log", { disk: after });
    expect(opened.records.get("cell")).toHaveLength(1);
  });

  test("a directory made by someone else before the log is synced into its parent when the log begins", async () => {
    const disk = new MemoryDisk();
    disk.makeDirectory("/data");
    await disk.syncDirectory("/");
    disk.makeDirectory("/data/log"); // as the node's lock does, without a sync
    const { log } = await openIntact("/data/log", { disk });
    log.append([acceptRecord("cell", 1)]);
    await log.sync();
    const after = disk.crash("power", { nameChangeSurvives: () => false, unsyncedBytesSurvive: false });
    expect((await openIntact("/data/log", { disk: after })).records.get("cell")).toHaveLength(1);
  });
});

describe("moving a damaged log aside", () => {
  test("renames the directory to <directory>.damaged-<UTC time>, unique, and a fresh log can begin in its place", async () => {
    await withTempDirectory(async (root) => {
      const directory = join(root, "node");
      const now = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678));
      const first = await openIntact(directory);
      first.log.append([acceptRecord("cell", 1)]);
      await first.log.close();
      const aside = await moveLogAside(directory, { now });
      expect(aside).toBe(`${directory}.damaged-20260102T030405.678Z`);
      expect((await readdir(aside)).sort()).toEqual([segmentName(1), "IDENTITY"]);
      expect((await readdir(root)).sort()).toEqual(["node.damaged-20260102T030405.678Z"]);

      const fresh = await openIntact(directory);
      expect(fresh.records.size).toBe(0);
      expect(fresh.incarnation).not.toBe(first.incarnation);
      await fresh.log.close();
      expect(await moveLogAside(directory, { now })).toBe(`${directory}.damaged-20260102T030405.678Z-2`);
      await expect(moveLogAside(join(root, "missing"))).rejects.toThrow("Cannot move the damaged log");
    });
  });

  test("makes the rename durable: it survives a power failure at once", async () => {
    const synced: string[] = [];
    const disk = new MemoryDisk({ onOperation: (operation, path) => void (operation === "syncDirectory" && synced.push(path)) });
    const { log } = await openIntact("/data/log", { disk });
    log.append([acceptRecord("cell", 1)]);
    await log.close();
    synced.length = 0;
    const aside = await moveLogAside("/data/log", { disk, now: new Date(0) });
    expect(synced).toEqual(["/data"]);
    const after = disk.crash("power", { nameChangeSurvives: () => false, unsyncedBytesSurvive: false });
    expect(after.directoryNames()).toEqual(["/data", aside]);
    expect((await openIntact(aside, { disk: after })).records.get("cell")).toHaveLength(1);
  });
});

describe("the confirmation of the last sync", () => {
  test("is synced by itself shortly after the last sync, so that damage to the last batch is damage after a power failure too", async () => {
    const disk = new MemoryDisk();
    const { log } = await openIntact("/log", { disk, confirmationDelayMs: 1 });
    const entries = Array.from({ length: 5 }, (_, i) => acceptRecord("cell", i + 1));
    log.append(entries);
    await log.sync();
    const rounds = log.syncRounds;
    // Wait for the log's own round; the test's timeout bounds the wait.
    while (log.syncRounds === rounds) await new Promise((resolve) => setTimeout(resolve, 2));
    const after = disk.crash("power", { unsyncedBytesSurvive: false });
    const image = after.snapshot().get(segmentPath(1))!;
    const last = frameLayout(image).filter((frame) => frame.kind === 1).at(-1)!;
    image[last.offset + storageLimits.frameHeaderBytes + 2]! ^= 0x10;
    after.replace(segmentPath(1), image);
    const opened = await openLog("/log", { disk: after });
    expect(opened.torn).toBeNull();
    expect(opened.damage).toMatchObject([{ segment: 1, offset: last.offset, reason: "checksum" }]);
    await log.close();
  });
});
