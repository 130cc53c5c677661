// Helpers for the storage tests: records of known shape and size, a canonical form to compare
// them by, temporary directories that are removed afterwards, and a seeded random source.

import { sha256 } from "@noble/hashes/sha2.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CellRecord, DurableRecord } from "../../src/core/effects.ts";
import { type LogOptions, MemoryDisk, type NodeLog, type OpenedLog, openLog, storageLimits } from "../../src/storage/mod.ts";
import { encodeRecord } from "../../src/wire/records.ts";

/** An accept record carrying one put of `valueBytes` bytes: about `valueBytes + 90` encoded. */
export function acceptRecord(cell: string, slot: number, valueBytes = 100): CellRecord {
  const value = new Uint8Array(valueBytes);
  for (let i = 0; i < valueBytes; i++) value[i] = (slot * 31 + i) & 0xff;
  return {
    cell,
    record: {
      kind: "accept",
      slot,
      ballot: { round: 1 + (slot % 7), node: "node-a" },
      value: { kind: "batch", commands: [{ session: 64, seq: slot, acked: slot, op: { kind: "tx", tx: { reads: [], conditions: [], writes: [{ key: `key-${slot}`, op: "put", value }] } } }], stamp: { ballot: { round: 3, node: "node-0042" }, time: slot } },
    },
  };
}

/** A snapshot record whose state is `stateBytes` bytes derived from `seed`. */
export function snapshotRecord(cell: string, slot: number, stateBytes: number, seed = slot): CellRecord {
  const state = new Uint8Array(stateBytes);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < stateBytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    state[i] = x & 0xff;
  }
  return { cell, record: { kind: "snapshot", slot, state } };
}

/** A record's identity: its encoding, as hex. */
export function recordKey(entry: CellRecord): string {
  return Buffer.from(encodeRecord(entry)).toString("hex");
}

/**
 * Per cell (sorted), how many records and a digest of their encodings in order: equal exactly
 * when the records are, and short enough to read in a failed assertion.
 */
export function canonicalRecords(records: Map<string, readonly DurableRecord[]>): string {
  const cells = [...records.keys()].sort();
  return cells
    .map((cell) => {
      const list = records.get(cell)!;
      const digest = sha256(new TextEncoder().encode(list.map((record) => recordKey({ cell, record })).join(",")));
      return `${cell}:${list.length}:${Buffer.from(digest.subarray(0, 8)).toString("hex")}`;
    })
    .join(" ");
}

/** Groups records by cell, keeping their order. */
export function byCell(entries: Iterable<CellRecord>): Map<string, DurableRecord[]> {
  const map = new Map<string, DurableRecord[]>();
  for (const { cell, record } of entries) {
    const list = map.get(cell);
    if (list === undefined) map.set(cell, [record]);
    else list.push(record);
  }
  return map;
}

/** Runs `body` with a fresh directory under the system's temporary directory, then removes it. */
export async function withTempDirectory<T>(body: (directory: string) => Promise<T>): Promise<T> {
  const directory = await mkdtemp(join(tmpdir(), "physalia-storage-"));
  try {
    return await body(directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** A small seeded generator (xorshift32) for tests that must replay. */
export class TestRandom {
  private state: number;

  constructor(seed: number) {
    this.state = (seed >>> 0) || 0x9e3779b9;
  }

  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 2 ** 32;
  }

  int(below: number): number {
    return Math.floor(this.next() * below);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** An opened log that must be intact (no damage): its writable log, and what it read. */
export interface IntactLog extends OpenedLog {
  readonly log: NodeLog;
}

/** Opens a log that must have no damage, failing the test with the damage otherwise. */
export async function openIntact(directory: string, options: LogOptions = {}): Promise<IntactLog> {
  const opened = await openLog(directory, options);
  if (opened.log === null) throw new Error(`the log in ${directory} is damaged: ${JSON.stringify(opened.damage)}`);
  return { ...opened, log: opened.log };
}

/** One frame of a segment image, as laid out on disk (read without checking it). */
export interface FrameLayout {
  readonly offset: number;
  readonly length: number;
  readonly kind: number;
  readonly end: number;
}

/** The frames of an intact segment image, in order. */
export function frameLayout(image: Uint8Array): FrameLayout[] {
  const view = new DataView(image.buffer, image.byteOffset, image.length);
  const frames: FrameLayout[] = [];
  for (let at: number = storageLimits.segmentHeaderBytes; at + storageLimits.frameHeaderBytes <= image.length; ) {
    const length = view.getUint32(at, true);
    const end = at + storageLimits.frameHeaderBytes + length;
    if (length === 0 || end > image.length) break;
    frames.push({ offset: at, length, kind: image[at + 4]!, end });
    at = end;
  }
  return frames;
}

/**
 * Where a segment image's frames end: the log extends a segment's file ahead of its writes
 * (log.ts, `reserve`), and the zeros after the last frame are that preallocated space.
 */
export function framesEnd(image: Uint8Array): number {
  const frames = frameLayout(image);
  return frames.length === 0 ? Math.min(image.length, storageLimits.segmentHeaderBytes) : frames[frames.length - 1]!.end;
}

export const confirmationFrameKind = 3;

/** Where a record's frame lies: its segment, its offset, and the offset just past it. */
export interface RecordPlace {
  readonly segment: number;
  readonly offset: number;
  readonly end: number;
}

export const logPath = "/log";
export const segmentPath = (number: number): string => `${logPath}/${String(number).padStart(8, "0")}.log`;

/**
 * Writes `count` records into a fresh log on a memory disk, each appended and synced on its
 * own, and closes it; returns the disk, the records, and where each record's frame lies.
 */
export async function writtenLog(count: number, options: { readonly segmentBytes?: number; readonly preallocateBytes?: number; readonly valueBytes?: (slot: number) => number } = {}) {
  const disk = new MemoryDisk();
  const { log } = await openIntact(logPath, {
    disk,
    ...(options.segmentBytes === undefined ? {} : { segmentBytes: options.segmentBytes }),
    ...(options.preallocateBytes === undefined ? {} : { preallocateBytes: options.preallocateBytes }),
  });
  const entries: CellRecord[] = [];
  for (let slot = 1; slot <= count; slot++) {
    const entry = acceptRecord(`cell-${slot % 4}`, slot, options.valueBytes?.(slot) ?? 40 + (slot % 13));
    log.append([entry]);
    await log.sync();
    entries.push(entry);
  }
  await log.close();
  const places: RecordPlace[] = [];
  const segments = [...disk.snapshot()].filter(([path]) => path.endsWith(".log")).sort(([a], [b]) => (a < b ? -1 : 1));
  for (const [path, image] of segments) {
    const segment = Number(path.slice(path.lastIndexOf("/") + 1, -4));
    for (const frame of frameLayout(image)) if (frame.kind === 1) places.push({ segment, offset: frame.offset, end: frame.end });
  }
  if (places.length !== count) throw new Error(`found ${places.length} record frames, wrote ${count}`);
  return { disk, entries, places };
}
