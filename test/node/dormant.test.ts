import { describe, expect, test } from "bun:test";
import { CellState } from "../../src/core/cellstate.ts";
import type { DurableRecord } from "../../src/core/effects.ts";
import type { Operation } from "../../src/core/messages.ts";
import { Replica } from "../../src/core/replica.ts";
import { utf8 } from "../../src/core/value.ts";
import { discoveryLimits } from "../../src/discovery/limits.ts";
import { NodeDiscovery } from "../../src/node/discovery.ts";
import { DormantArena, dormantEntryBytesMax } from "../../src/node/dormant.ts";
import { Cluster } from "../support/cluster.ts";

const put = (key: string, value: string): Operation => ({ kind: "tx", tx: { reads: [], conditions: [], writes: [{ key, op: "put", value: utf8(value) }] } });

/** What discovery reads of a replica built from `records`, the long way. */
function builtSummary(records: readonly DurableRecord[]) {
  const state = Replica.recover({ cell: "v", self: "A", env: { isAlive: () => false, jitter: () => 0.5 } }, records).cellState as CellState;
  return { applied: state.applied, incarnation: state.incarnation, members: state.latestMembers(), membershipSlot: state.latestMembershipSlot() };
}

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

  test("summarizes a cell from its snapshot's header as the built replica would, through membership changes", () => {
    const cell = new Cluster("v", ["A", "B", "C"], { alpha: 3 });
    cell.join("N");
    for (const client of ["c1", "admin"]) cell.openSession("A", client);
    const arena = new DormantArena();
    const seen: number[] = [];
    const check = () => {
      const records = cell.replica("A").compactedRecords();
      const handle = arena.put(records) as number;
      expect(arena.summary(handle)).toEqual(builtSummary(records));
      seen.push(arena.summary(handle).membershipSlot);
    };
    cell.request("A", "c1", 1, put("k", "one"));
    cell.settle();
    check();
    // A change applied but not yet in effect: the latest membership already names N.
    cell.request("A", "admin", 1, { kind: "config", change: { kind: "addMember", node: "N" } });
    cell.settle();
    check();
    expect(arena.summary(arena.put(cell.replica("A").compactedRecords()) as number).members).toContain("N");
    for (let i = 0; i < 4; i++) cell.request("A", "c1", 2 + i, put("k", `v${i}`));
    cell.settle();
    check();
    expect(seen[0]).toBe(0);
    expect(seen[1]).toBeGreaterThan(0);
  });

  test("summarizes a genesis-only cell as the replica its genesis builds", () => {
    const arena = new DormantArena();
    const genesis: DurableRecord = { kind: "genesis", genesis: { members: ["n1~0123456789abcdef", "n2~0123456789abcdef"], incarnation: "0123456789abcdef", alpha: 5, sessionTtlMs: 60_000, sessionsMax: 128 } };
    expect(arena.summary(arena.put([genesis]) as number)).toEqual(builtSummary([genesis]));
  });

  test("a summary refuses what is not a snapshot's header", () => {
    expect(CellState.summary(new Uint8Array([1, 2, 3]))).toBeTypeOf("string");
    const state = CellState.genesis(["A", "B", "C"]).encode();
    expect(CellState.summary(state.subarray(0, 20))).toBeTypeOf("string");
    expect(CellState.summary(state)).toEqual({ applied: 0, incarnation: "0000000000000000", members: ["A", "B", "C"], membershipSlot: 0 });
  });
});

describe("discovery's audit of dormant cells", () => {
  const ids = ["n1", "n2", "n3", "n4", "n5"].map((n, i) => `${n}~${(0xabc0 + i).toString(16).padStart(16, "0")}`);
  const hourMs = 60 * 60 * 1000;

  /** A node's discovery over `count` dormant cells, with the round's audit visiting all of them. */
  function auditedNode(count: number) {
    const arena = new DormantArena();
    const state = CellState.genesis(ids, { incarnation: "00000000000000aa" }).encode();
    const handles = new Map<string, number>();
    for (let i = 0; i < count; i++) handles.set(`idle-${i}`, arena.put([{ kind: "promise", ballot: { round: 2, node: ids[1] as string } }, { kind: "snapshot", slot: 4, state }]) as number);
    const clock = { nowMs: 1_700_000_000_000 };
    const discovery = new NodeDiscovery({
      identity: ids[0] as string, address: "127.0.0.1:1", peers: new Map(), wallClock: () => clock.nowMs, random: () => 0.5,
      replicaOf: () => undefined, dormantOf: (cell) => handles.get(cell), arena, toPeer: () => {}, toClient: () => {},
    });
    for (const cell of handles.keys()) discovery.host(cell);
    const round = () => {
      clock.nowMs += discoveryLimits.gossipRoundMsDefault;
      discovery.tick();
    };
    return { discovery, clock, round, cache: discovery.discovery.cache };
  }

  test("skips a cell whose push would change nothing, and pushes again once its entry changed or is due", () => {
    const count = discoveryLimits.auditsPerRoundDefault;
    const { discovery, clock, round, cache } = auditedNode(count);
    round();
    expect(discovery.stats.pushes).toBe(count);
    expect(cache.size).toBe(count);
    const stored = cache.get("idle-7");
    expect(stored?.members).toEqual([...ids].sort());
    // Nothing changed: the second pass pushes nothing.
    round();
    expect(discovery.stats.auditsSkipped).toBe(count);
    expect(discovery.stats.pushes).toBe(count);

    // A wrong entry arrives by gossip (another membership, a later epoch): the next audit of
    // that cell is not skipped, and it corrects the entry.
    const wrong = { ...(stored as NonNullable<typeof stored>), epoch: 5, members: [ids[0] as string, ids[1] as string, "n9~00000000000000ff"].sort() };
    expect(cache.merge(wrong, clock.nowMs)).toBe("stored");
    // Gone, as a sweep of an expired entry or a removal leaves it: stored again.
    expect(cache.remove("idle-8")).toBe(true);
    round();
    expect(discovery.stats.pushes).toBe(count + 2);
    expect(discovery.stats.auditsSkipped).toBe(2 * count - 2);
    expect(cache.get("idle-7")?.members).toEqual([...ids].sort());
    expect(cache.get("idle-7")?.epoch).toBe(6);
    expect(cache.get("idle-8")?.members).toEqual([...ids].sort());
    round();
    expect(discovery.stats.pushes).toBe(count + 2);

    // A follower re-stamps an entry older than twice the refresh interval: due, so not skipped.
    const before = cache.get("idle-3")?.refreshedMs as number;
    clock.nowMs += 2 * discoveryLimits.refreshIntervalMsDefault - 2 * discoveryLimits.gossipRoundMsDefault;
    round();
    expect(discovery.stats.pushes).toBe(2 * count + 2);
    expect(cache.get("idle-3")?.refreshedMs).toBeGreaterThan(before + hourMs);
    round();
    expect(discovery.stats.pushes).toBe(2 * count + 2);
  });
});
