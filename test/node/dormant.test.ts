import { describe, expect, test } from "bun:test";
import type { DurableRecord } from "../../src/core/effects.ts";
import { DormantArena, dormantEntryBytesMax } from "../../src/node/dormant.ts";

const promise = (round: number): DurableRecord => ({ kind: "promise", ballot: { round, node: `n${round % 7}~0123456789abcdef` } });
const snapshot = (slot: number, bytes: number): DurableRecord => ({ kind: "snapshot", slot, state: new Uint8Array(bytes).map((_, i) => (i * slot) % 256) });

describe("the dormant arena", () => {
  test("gives back each cell's records as they were put, across many slabs", () => {
    const arena = new DormantArena();
    const handles: number[] = [];
    const cells: DurableRecord[][] = [];
    for (let i = 0; i < 5_000; i++) {
      const records = i % 3 === 0 ? [snapshot(i, 300 + (i % 200))] : [promise(i), snapshot(i, 300 + (i % 500))];
      cells.push(records);
      const handle = arena.put(records);
      expect(handle).not.toBeNull();
      handles.push(handle as number);
    }
    expect(new Set(handles).size).toBe(handles.length);
    // More than one slab of a megabyte was used.
    expect(arena.bytes).toBeGreaterThan(2 * 1024 * 1024);
    for (const [i, handle] of handles.entries()) expect(arena.get(handle)).toEqual(cells[i] as DurableRecord[]);
  });

  test("refuses an entry too large to share a slab, so the node builds that replica instead", () => {
    const arena = new DormantArena();
    expect(arena.put([snapshot(1, dormantEntryBytesMax)])).toBeNull();
    const small = arena.put([snapshot(2, 100)]);
    expect(small).not.toBeNull();
    expect(arena.get(small as number)).toEqual([snapshot(2, 100)]);
  });

  test("keeps a genesis record as it was", () => {
    const arena = new DormantArena();
    const genesis: DurableRecord = { kind: "genesis", genesis: { members: ["n1~0123456789abcdef", "n2~0123456789abcdef", "n3~0123456789abcdef"], incarnation: "0123456789abcdef", alpha: 3, sessionTtlMs: 60_000, sessionsMax: 128 } };
    const handle = arena.put([genesis]) as number;
    expect(arena.get(handle)).toEqual([genesis]);
  });
});
