// Measures the node's log on this machine's disk and writes bench/results/storage.json.
// Run with `npm run bench:storage`. What it measures:
// - group commit: append B accept-sized records (~200 bytes), then one sync, for B = 1, 16,
//   256: records/s, syncs/s, sync latency p50/p99;
// - many callers: C concurrent writers that each append one record and await sync, as cells
//   of a busy node do, to show syncs coalescing into rounds;
// - fsync through the thread pool (the default) against `fdatasyncSync` on the event loop;
// - the frame checksum (CRC32C) against SHA-256; recovery and compaction speed.

import * as fs from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 } from "@noble/hashes/sha2.js";
import type { CellRecord } from "../src/core/effects.ts";
import { type Disk, type NodeLog, type OpenedLog, crc32c, nodeDisk, openLog } from "../src/storage/mod.ts";
import { encodeRecord } from "../src/wire/records.ts";

const secondsPerCase = Number(process.env.BENCH_SECONDS ?? 2);

/** An accept record of one put, about 200 bytes encoded: what a replica logs per write. */
function acceptRecord(cell: string, slot: number): CellRecord {
  const value = new Uint8Array(96).fill(slot & 0xff);
  return {
    cell,
    record: {
      kind: "accept",
      slot,
      ballot: { round: 3, node: "node-0042" },
      value: { kind: "batch", commands: [{ session: 64, seq: slot, acked: slot, op: { kind: "tx", tx: { reads: [], conditions: [], writes: [{ key: `volume/${slot % 1000}`, op: "put", value }] } } }], stamp: { ballot: { round: 3, node: "node-0042" }, time: slot } },
    },
  };
}

const recordBytes = encodeRecord(acceptRecord("vol-0000001", 1)).length;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (value: number, digits = 0) => Number(value.toFixed(digits));

/** The writable log of a fresh or intact directory; damage here is a bug in the benchmark's setup. */
function writable(opened: OpenedLog): NodeLog {
  if (opened.log === null) throw new Error(`the benchmark's log is damaged: ${JSON.stringify(opened.damage)}`);
  return opened.log;
}

async function withDirectory<T>(body: (directory: string) => Promise<T>): Promise<T> {
  const directory = await mkdtemp(join(tmpdir(), "physalia-bench-storage-"));
  try {
    return await body(directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** fdatasync on the calling thread: blocks the event loop for the whole fsync. */
function blockingDisk(): Disk {
  const disk = nodeDisk();
  return {
    ...disk,
    sync: (file) => {
      fs.fdatasyncSync(file);
      return Promise.resolve();
    },
  };
}

async function groupCommit(batch: number, disk: Disk) {
  return withDirectory(async (directory) => {
    const log = writable(await openLog(directory, { disk }));
    const cells = Array.from({ length: 1024 }, (_, i) => `vol-${String(i).padStart(7, "0")}`);
    const latencies: number[] = [];
    let slot = 0;
    const started = performance.now();
    const deadline = started + secondsPerCase * 1000;
    while (performance.now() < deadline) {
      const records = Array.from({ length: batch }, () => {
        slot++;
        return acceptRecord(cells[slot % cells.length]!, slot);
      });
      log.append(records);
      const before = performance.now();
      await log.sync();
      latencies.push(performance.now() - before);
    }
    const seconds = (performance.now() - started) / 1000;
    const bytes = log.bytes;
    await log.close();
    latencies.sort((a, b) => a - b);
    return {
      recordsPerSync: batch,
      records: slot,
      recordsPerSecond: round(slot / seconds),
      syncsPerSecond: round(latencies.length / seconds),
      megabytesPerSecond: round(bytes / seconds / 1e6, 2),
      syncLatencyMicroseconds: { p50: round(percentile(latencies, 50) * 1000), p99: round(percentile(latencies, 99) * 1000), max: round(latencies.at(-1)! * 1000) },
    };
  });
}

/** `callers` writers, each appending one record and awaiting sync, round after round. */
async function concurrentCallers(callers: number, disk: Disk) {
  return withDirectory(async (directory) => {
    const log = writable(await openLog(directory, { disk }));
    const latencies: number[] = [];
    let slot = 0;
    const roundsBefore = log.syncRounds;
    const started = performance.now();
    const deadline = started + secondsPerCase * 1000;
    const writer = async (id: number) => {
      while (performance.now() < deadline) {
        slot++;
        log.append([acceptRecord(`vol-${id}`, slot)]);
        const before = performance.now();
        await log.sync();
        latencies.push(performance.now() - before);
      }
    };
    await Promise.all(Array.from({ length: callers }, (_, id) => writer(id)));
    const seconds = (performance.now() - started) / 1000;
    const rounds = log.syncRounds - roundsBefore;
    await log.close();
    latencies.sort((a, b) => a - b);
    return {
      callers,
      recordsPerSecond: round(slot / seconds),
      fsyncRoundsPerSecond: round(rounds / seconds),
      callersPerRound: round(latencies.length / rounds, 1),
      syncLatencyMicroseconds: { p50: round(percentile(latencies, 50) * 1000), p99: round(percentile(latencies, 99) * 1000) },
    };
  });
}

function checksums() {
  const record = encodeRecord(acceptRecord("vol-0000001", 1));
  const block = new Uint8Array(1 << 20).map((_, i) => (i * 131) & 0xff);
  const time = (work: () => void, times: number) => {
    for (let i = 0; i < Math.min(times, 1000); i++) work();
    const started = performance.now();
    for (let i = 0; i < times; i++) work();
    return (performance.now() - started) / times;
  };
  const crcRecordMs = time(() => crc32c(record), 200_000);
  const shaRecordMs = time(() => sha256(record), 20_000);
  const crcBlockMs = time(() => crc32c(block), 100);
  const shaBlockMs = time(() => sha256(block), 10);
  return {
    recordBytes: record.length,
    crc32c: { nanosecondsPerRecord: round(crcRecordMs * 1e6), megabytesPerSecond: round(1.048576 / (crcBlockMs / 1000)) },
    sha256: { nanosecondsPerRecord: round(shaRecordMs * 1e6), megabytesPerSecond: round(1.048576 / (shaBlockMs / 1000)) },
  };
}

async function recoveryAndCompaction(cellCount: number, recordsPerCell: number) {
  return withDirectory(async (directory) => {
    const log = writable(await openLog(directory));
    let slot = 0;
    const cells = Array.from({ length: cellCount }, (_, i) => `vol-${String(i).padStart(7, "0")}`);
    for (let r = 0; r < recordsPerCell; r++) {
      const batch: CellRecord[] = [];
      for (const cell of cells) batch.push(acceptRecord(cell, ++slot));
      for (let i = 0; i < batch.length; i += 4096) log.append(batch.slice(i, i + 4096));
    }
    await log.sync();
    const bytesBefore = log.bytes;
    await log.close();

    let started = performance.now();
    const opened = await openLog(directory);
    const recoverSeconds = (performance.now() - started) / 1000;
    if (opened.stats.records !== slot) throw new Error(`recovered ${opened.stats.records} of ${slot} records`);

    const compacting = writable(opened);
    // What a node passes: per cell, a promise, a small snapshot, and its last accept.
    const entries: CellRecord[] = [];
    for (const [cell, records] of opened.records) {
      entries.push({ cell, record: { kind: "promise", ballot: { round: 3, node: "node-0042" } } });
      entries.push({ cell, record: { kind: "snapshot", slot: 10, state: new Uint8Array(120).fill(7) } });
      entries.push({ cell, record: records.at(-1)! });
    }
    // The longest the event loop went without a turn while the compaction ran: the node stalls that long.
    let stallMs = 0;
    let ticking = true;
    let lastTick = performance.now();
    const tick = () => {
      if (!ticking) return;
      const now = performance.now();
      stallMs = Math.max(stallMs, now - lastTick);
      lastTick = now;
      setImmediate(tick);
    };
    started = performance.now();
    lastTick = started;
    setImmediate(tick);
    await compacting.compact(entries);
    const compactSeconds = (performance.now() - started) / 1000;
    ticking = false;
    const bytesAfter = compacting.bytes;
    await compacting.close();

    started = performance.now();
    const again = await openLog(directory);
    const recoverCompactedSeconds = (performance.now() - started) / 1000;
    await writable(again).close();
    return {
      cells: cellCount,
      records: slot,
      logBytes: bytesBefore,
      recoverSeconds: round(recoverSeconds, 3),
      recoveredRecordsPerSecond: round(slot / recoverSeconds),
      compactedRecords: entries.length,
      compactedBytes: bytesAfter,
      compactSeconds: round(compactSeconds, 3),
      compactLongestStallMilliseconds: round(stallMs, 1),
      recoverCompactedSeconds: round(recoverCompactedSeconds, 3),
    };
  });
}

const groupCommits = [];
for (const batch of [1, 16, 256]) {
  const result = await groupCommit(batch, nodeDisk());
  console.log(`batch ${String(batch).padStart(3)}: ${result.recordsPerSecond} records/s, ${result.syncsPerSecond} syncs/s, sync p50 ${result.syncLatencyMicroseconds.p50} µs p99 ${result.syncLatencyMicroseconds.p99} µs`);
  groupCommits.push(result);
}
const blocking = await groupCommit(16, blockingDisk());
console.log(`batch  16 with fdatasyncSync: ${blocking.recordsPerSecond} records/s, sync p50 ${blocking.syncLatencyMicroseconds.p50} µs p99 ${blocking.syncLatencyMicroseconds.p99} µs`);
const concurrent = [];
for (const [callers, blocking] of [[64, false], [1024, false], [64, true]] as const) {
  const result = { ...(await concurrentCallers(callers, blocking ? blockingDisk() : nodeDisk())), fsync: blocking ? "fdatasyncSync" : "fdatasync on the thread pool" };
  console.log(
    `${callers} concurrent callers (${result.fsync}): ${result.recordsPerSecond} records/s in ${result.fsyncRoundsPerSecond} fsync rounds/s (${result.callersPerRound} callers per round), p50 ${result.syncLatencyMicroseconds.p50} µs p99 ${result.syncLatencyMicroseconds.p99} µs`,
  );
  concurrent.push(result);
}
const checksum = checksums();
console.log(`crc32c ${checksum.crc32c.nanosecondsPerRecord} ns/record ${checksum.crc32c.megabytesPerSecond} MB/s; sha256 ${checksum.sha256.nanosecondsPerRecord} ns/record ${checksum.sha256.megabytesPerSecond} MB/s`);
const recovery = await recoveryAndCompaction(100_000, 3);
console.log(
  `recovery of ${recovery.records} records (${(recovery.logBytes / 1e6).toFixed(1)} MB): ${recovery.recoverSeconds} s (${recovery.recoveredRecordsPerSecond} records/s); compaction of ${recovery.cells} cells to ${(recovery.compactedBytes / 1e6).toFixed(1)} MB: ${recovery.compactSeconds} s, longest stall ${recovery.compactLongestStallMilliseconds} ms; recovery after it ${recovery.recoverCompactedSeconds} s`,
);

const result = {
  benchmark: "the node's log: group commit, checksums, recovery and compaction",
  runtime: `bun ${Bun.version}`,
  cpu: `${cpus().length} x ${cpus()[0]?.model ?? "unknown"}`,
  directory: tmpdir(),
  secondsPerCase,
  recordBytes,
  groupCommit: groupCommits,
  groupCommitWithFdatasyncSync: blocking,
  concurrentCallers: concurrent,
  checksum,
  recoveryAndCompaction: recovery,
};
await mkdir("bench/results", { recursive: true });
await writeFile("bench/results/storage.json", `${JSON.stringify(result, null, 2)}\n`);
console.log("wrote bench/results/storage.json");
