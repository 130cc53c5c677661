// The process that test/storage/crash.test.ts kills. It opens the log in the directory given
// as its first argument, checks what it recovered, and reports it; then appends numbered
// records as fast as it can, syncing as it goes and compacting when the log says so. It
// reports, with synchronous writes to stdout so that nothing is lost when it is killed:
//   "recovered <n> <outcome>"                after opening: records 1..n came back, intact;
//                                            the outcome is "none", "torn" or "damage:<reason>"
//   "invalid <detail>"                       if what came back is not exactly 1..n (then exits 1)
//   "W <n>"                                   before it appends records up to n
//   "A <n>"                                   once a sync covering records up to n resolved
// Record n is a snapshot record of cell `cell-(n % 17)` at slot n whose state is derived from n.

import { writeSync } from "node:fs";
import type { CellRecord } from "../../src/core/effects.ts";
import { openLog } from "../../src/storage/mod.ts";
import { snapshotRecord } from "./support.ts";

const say = (line: string) => void writeSync(1, `${line}\n`);
const expected = (n: number): CellRecord => snapshotRecord(`cell-${n % 17}`, n, 20 + (n % 97), n);
const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((byte, i) => byte === b[i]);

const directory = process.argv[2];
const verifyOnly = process.argv[3] === "--verify-only";
if (directory === undefined) throw new Error("usage: crash-child.ts DIRECTORY [--verify-only]");

const { log, records, damage, torn } = await openLog(directory, { segmentBytes: 128 * 1024, compactBytesMin: 512 * 1024 });

// Check: every record is the one its slot names, each cell's records ascend, and the slots are exactly 1..n.
const all: CellRecord[] = [];
for (const [cell, list] of records) {
  let last = 0;
  for (const record of list) {
    if (record.kind !== "snapshot") throw new Error(`invalid record kind ${record.kind}`);
    const entry = { cell, record };
    const want = expected(record.slot);
    if (record.slot <= last || want.cell !== cell || want.record.kind !== "snapshot" || !sameBytes(record.state, want.record.state)) {
      say(`invalid record ${record.slot} of ${cell} after ${last}`);
      process.exit(1);
    }
    last = record.slot;
    all.push(entry);
  }
}
all.sort((a, b) => (a.record.kind === "snapshot" && b.record.kind === "snapshot" ? a.record.slot - b.record.slot : 0));
for (let i = 0; i < all.length; i++) {
  const entry = all[i]!;
  if (entry.record.kind !== "snapshot" || entry.record.slot !== i + 1) {
    say(`invalid hole: position ${i + 1} holds slot ${entry.record.kind === "snapshot" ? entry.record.slot : -1}`);
    process.exit(1);
  }
}
say(`recovered ${all.length} ${damage.length > 0 ? `damage:${damage[0]!.reason}` : torn !== null ? "torn" : "none"}`);
if (log === null) process.exit(1);
if (verifyOnly) {
  await log.close();
  process.exit(0);
}

let next = all.length + 1;
let random = (next * 2654435761) >>> 0 || 1;
const roll = (below: number) => {
  random ^= random << 13;
  random ^= random >>> 17;
  random ^= random << 5;
  return (random >>> 0) % below;
};
const outstanding: Promise<void>[] = [];
for (;;) {
  const batch = Array.from({ length: 1 + roll(48) }, () => expected(next++));
  say(`W ${next - 1}`);
  log.append(batch);
  all.push(...batch);
  const covered = next - 1;
  outstanding.push(log.sync().then(() => say(`A ${covered}`)));
  if (log.shouldCompact()) {
    // The whole history is the state here: compaction rewrites it, grouped by cell.
    const byCell = new Map<string, CellRecord[]>();
    for (const entry of all) {
      const list = byCell.get(entry.cell);
      if (list === undefined) byCell.set(entry.cell, [entry]);
      else list.push(entry);
    }
    outstanding.push(log.compact([...byCell.values()].flat()));
  }
  if (outstanding.length >= 4) await outstanding.shift();
  else await new Promise((resolve) => setImmediate(resolve));
}
