// A flipped bit anywhere in bytes the log had proof were durable is damage, never a torn tail:
// recovery reports it, returns every record but the one whose frame holds the bit, touches no
// file, and loses no later segment. Every byte of a small log, and sampled bytes of a large one
// (every bit of some frames' lengths and of sealed segments' headers among them). The one
// place a flip is torn is the log's last confirmation, which nothing after it confirms; it
// holds no record, so nothing is lost (see the residual case in src/storage/recover.ts).
//
// BITFLIP_SAMPLES=N samples N positions of the large log instead of 300.

import { describe, expect, test } from "bun:test";
import type { CellRecord, DurableRecord } from "../../src/core/effects.ts";
import { type MemoryDisk, openLog } from "../../src/storage/mod.ts";
import { type RecordPlace, TestRandom, confirmationFrameKind, frameLayout, framesEnd, logPath, writtenLog } from "./support.ts";

/**
 * Per cell, the slots of its records in order: enough to tell which records came back (the
 * checksums vouch for their contents; the damage tests compare contents in full), and cheap.
 */
function slots(records: Map<string, readonly DurableRecord[]>): string {
  return [...records.keys()]
    .sort()
    .map((cell) => `${cell}:${records.get(cell)!.map((record) => (record.kind === "accept" ? record.slot : -1)).join(",")}`)
    .join(" ");
}

function slotsOf(entries: readonly CellRecord[]): string {
  const map = new Map<string, DurableRecord[]>();
  for (const { cell, record } of entries) map.set(cell, [...(map.get(cell) ?? []), record]);
  return slots(map);
}

interface Trial {
  readonly path: string;
  readonly at: number;
  readonly bit: number;
}

type Log = Awaited<ReturnType<typeof writtenLog>>;

/** Flips one bit and opens the log; checks the outcome against what the position holds. */
async function flip(log: Log, trial: Trial, finalConfirmation: { readonly path: string; readonly offset: number; readonly end: number }): Promise<"damage" | "torn"> {
  const { disk, entries, places } = log;
  const damaged: MemoryDisk = disk.crash("process");
  const bytes = damaged.snapshot().get(trial.path)!;
  bytes[trial.at]! ^= 1 << trial.bit;
  damaged.replace(trial.path, bytes);
  const before = damaged.snapshot();
  const opened = await openLog(logPath, { disk: damaged });
  const where = `${trial.path} byte ${trial.at} bit ${trial.bit}`;
  const inFinal = trial.path === finalConfirmation.path && trial.at >= finalConfirmation.offset && trial.at < finalConfirmation.end;
  if (inFinal) {
    // Unconfirmed: torn, and it held no record.
    expect({ where, damage: opened.damage }).toEqual({ where, damage: [] });
    // Lost: the confirmation's bytes up to the preallocated zeros (its own last bytes may be zero).
    expect(opened.torn).toMatchObject({ offset: finalConfirmation.offset });
    expect(opened.torn!.lostBytes).toBeGreaterThan(0);
    expect(opened.torn!.lostBytes).toBeLessThanOrEqual(finalConfirmation.end - finalConfirmation.offset);
    expect(slots(opened.records)).toBe(slotsOf(entries));
    await opened.log?.close();
    return "torn";
  }
  expect({ where, torn: opened.torn, damaged: opened.damage.length > 0, writable: opened.log !== null }).toEqual({ where, torn: null, damaged: true, writable: false });
  const segment = trial.path.endsWith(".log") ? Number(trial.path.slice(trial.path.lastIndexOf("/") + 1, -4)) : 0;
  const hit = places.findIndex((place: RecordPlace) => place.segment === segment && trial.at >= place.offset && trial.at < place.end);
  expect({ where, records: slots(opened.records) }).toEqual({ where, records: slotsOf(entries.filter((_, i) => i !== hit)) });
  expect(damaged.snapshot()).toEqual(before);
  return "damage";
}

function finalConfirmationOf(log: Log) {
  const segments = [...log.disk.snapshot()].filter(([path]) => path.endsWith(".log")).sort(([a], [b]) => (a < b ? -1 : 1));
  const [path, image] = segments.at(-1)!;
  const last = frameLayout(image).at(-1)!;
  expect(last.kind).toBe(confirmationFrameKind);
  return { path, offset: last.offset, end: last.end };
}

describe("a flipped bit in confirmed bytes", () => {
  test("at every byte of a small log (segment headers, frames, confirmations, IDENTITY) is damage, never torn", async () => {
    // A small preallocation: every trial copies the whole log, zeros included.
    const log = await writtenLog(55, { segmentBytes: 4096, preallocateBytes: 2048 });
    const files = [...log.disk.snapshot()].sort(([a], [b]) => (a < b ? -1 : 1));
    expect(files.filter(([path]) => path.endsWith(".log")).length).toBeGreaterThanOrEqual(3);
    const final = finalConfirmationOf(log);
    const outcomes = { damage: 0, torn: 0 };
    for (const [path, image] of files) {
      // Every byte of the frames; the last segment's preallocated zeros after them are below.
      const end = path.endsWith(".log") ? framesEnd(image) : image.length;
      for (let at = 0; at < end; at++) outcomes[await flip(log, { path, at, bit: (at * 5) % 8 }, final)]++;
    }
    expect(outcomes.torn).toBe(final.end - final.offset);
    expect(outcomes.damage).toBeGreaterThan(8_000);
    // A flip in the preallocated zeros: no proof covers them, so it is torn, and nothing is lost.
    const [lastPath, lastImage] = files.filter(([path]) => path.endsWith(".log")).at(-1)!;
    expect(lastImage.length).toBeGreaterThan(framesEnd(lastImage));
    const zerosFrom = framesEnd(lastImage);
    for (const at of [zerosFrom, zerosFrom + 1, Math.floor((zerosFrom + lastImage.length) / 2), lastImage.length - 1]) {
      const damaged: MemoryDisk = log.disk.crash("process");
      const bytes = damaged.snapshot().get(lastPath)!;
      bytes[at]! ^= 0x10;
      damaged.replace(lastPath, bytes);
      const opened = await openLog(logPath, { disk: damaged });
      expect({ at, damage: opened.damage }).toEqual({ at, damage: [] });
      expect(opened.torn).toMatchObject({ offset: framesEnd(lastImage) });
      expect(slots(opened.records)).toBe(slotsOf(log.entries));
      await opened.log?.close();
    }
  }, 120_000);

  test("at sampled bytes of a large log, every bit of some frame lengths and of sealed segment headers among them, is damage, never torn", async () => {
    const log = await writtenLog(1500, { segmentBytes: 32 * 1024, preallocateBytes: 8192, valueBytes: (slot) => 40 + (slot % 97) });
    const segments = [...log.disk.snapshot()].filter(([path]) => path.endsWith(".log")).sort(([a], [b]) => (a < b ? -1 : 1));
    expect(segments.length).toBeGreaterThan(5);
    const final = finalConfirmationOf(log);
    const random = new TestRandom(2026);
    const trials: Trial[] = [];
    const samples = Number(process.env.BITFLIP_SAMPLES ?? 300);
    for (let i = 0; i < samples; i++) {
      const [path, image] = random.pick(segments);
      trials.push({ path, at: random.int(framesEnd(image)), bit: random.int(8) });
    }
    // Every bit of the length of frames near the ends of sealed segments and of the last one.
    for (const [path, image] of [segments[1]!, segments[segments.length - 2]!, segments.at(-1)!]) {
      const frames = frameLayout(image);
      for (const frame of frames.slice(-4, -1)) for (let bit = 0; bit < 32; bit++) trials.push({ path, at: frame.offset + (bit >> 3), bit: bit & 7 });
    }
    // Bits of sealed segments' headers: their number, their predecessor's length, their checksum.
    for (const [path] of segments.slice(1, 4)) for (const at of [12, 20, 21, 24, 32, 44]) trials.push({ path, at, bit: random.int(8) });
    let damage = 0;
    for (const trial of trials) if ((await flip(log, trial, final)) === "damage") damage++;
    expect(damage).toBeGreaterThan(trials.length - 20);
  }, 300_000);
});
