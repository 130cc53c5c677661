import { describe, expect, test } from "bun:test";
import { PeerTable } from "../../src/discovery/peers.ts";
import { ForwardingPointers } from "../../src/discovery/pointers.ts";
import { Rng } from "../../src/random.ts";
import { entry, identity } from "./support.ts";

const seeds = Array.from({ length: 8 }, (_, i) => ({ nodeId: `n${i}`, address: `10.0.0.${i + 1}:7101` }));

function table(node = 0, generation = 100): PeerTable {
  return new PeerTable({ identity: identity(node), address: `10.0.0.${node + 1}:7101`, generation, seeds, suspectTimeoutMs: 6_000 });
}

describe("the peer table", () => {
  test("starts from the topology's seeds and learns identities, addresses and generations by merging", () => {
    const t = table();
    expect(t.get("n3")?.record).toEqual({ identity: "n3", address: "10.0.0.4:7101", generation: 0, heartbeat: 0, status: "alive" });
    expect(t.merge({ identity: identity(3), address: "10.9.9.9:7000", generation: 50, heartbeat: 0, status: "alive" }, 0)).toBe("stored");
    expect(t.get("n3")?.record.address).toBe("10.9.9.9:7000");
    expect(t.merge({ identity: identity(3), address: "10.0.0.4:7101", generation: 49, heartbeat: 9, status: "alive" }, 0)).toBe("older");
    expect(t.merge({ identity: "n77~0000000000000001", address: "10.0.0.4:7101", generation: 1, heartbeat: 0, status: "alive" }, 0)).toBe("unknownNode");
  });

  test("a suspicion nobody refutes becomes a death after the timeout, and a restart outranks both", () => {
    const t = table();
    t.merge({ identity: identity(2), address: "10.0.0.3:7101", generation: 50, heartbeat: 0, status: "alive" }, 0);
    expect(t.suspect("n2", 1_000)).toBe(true);
    expect(t.suspect("n2", 1_500)).toBe(false);
    expect(t.tick(6_999)).toBe(0);
    expect(t.get("n2")?.record.status).toBe("suspected");
    expect(t.tick(7_000)).toBe(1);
    expect(t.get("n2")?.record.status).toBe("dead");
    expect(t.merge({ identity: identity(2), address: "10.0.0.3:7101", generation: 51, heartbeat: 0, status: "alive" }, 8_000)).toBe("stored");
    expect(t.get("n2")?.record.status).toBe("alive");
  });

  test("a node told it is suspected or dead refutes by raising its heartbeat, and its refutation wins", () => {
    const me = table(0, 100);
    const other = table(1, 200);
    other.merge(me.self(), 0);
    other.suspect("n0", 0);
    const rumor = other.get("n0")?.record;
    expect(rumor?.status).toBe("suspected");
    expect(me.merge(rumor!, 0)).toBe("refuted");
    expect(me.self()).toMatchObject({ status: "alive", heartbeat: 1 });
    expect(other.merge(me.self(), 0)).toBe("stored");
    expect(other.get("n0")?.record.status).toBe("alive");
    // A record claiming a later life of this very node is somebody else's problem, not refuted.
    expect(me.merge({ ...me.self(), generation: 101 }, 0)).toBe("selfConflict");
  });

  test("rumors are sent a bounded number of times each, rotating through the queue", () => {
    const t = table();
    for (let i = 1; i < 8; i++) t.merge({ identity: identity(i), address: `10.0.0.${i + 1}:7101`, generation: 10, heartbeat: 0, status: "alive" }, 0);
    const sends = new Map<string, number>();
    for (let round = 0; round < 100; round++) for (const r of t.takeRumors(3)) sends.set(r.identity, (sends.get(r.identity) ?? 0) + 1);
    // 3 * log2(9 nodes) rounded up, for each of the seven peers and this node.
    expect([...sends.values()]).toEqual(new Array(8).fill(10));
    expect(t.rumorCount).toBe(0);
  });

  test("records learnt by anti-entropy are not rumored again", () => {
    const t = table();
    t.takeRumors(100);
    while (t.rumorCount > 0) t.takeRumors(100);
    t.merge({ identity: identity(4), address: "10.0.0.5:7101", generation: 10, heartbeat: 0, status: "alive" }, 0, { spread: false });
    expect(t.rumorCount).toBe(0);
  });

  test("bucket digests tell two tables apart exactly where their records differ", () => {
    const a = table(0);
    const b = table(0);
    expect(a.differingBuckets(b.bucketDigests())).toEqual([]);
    b.merge({ identity: identity(5), address: "10.0.0.6:7101", generation: 10, heartbeat: 0, status: "alive" }, 0);
    const differing = a.differingBuckets(b.bucketDigests());
    expect(differing.length).toBe(1);
    const records = b.recordsIn(differing);
    expect(records.some((r) => r.identity === identity(5))).toBe(true);
    for (const r of records) a.merge(r, 0);
    expect(a.digest()).toEqual(b.digest());
  });

  test("picks live peers, and a dead one about one round in eight", () => {
    const t = table();
    for (let i = 1; i < 4; i++) {
      t.suspect(`n${i}`, 0);
    }
    t.tick(10_000);
    const rng = new Rng(5);
    let dead = 0;
    for (let i = 0; i < 8_000; i++) if (["n1", "n2", "n3"].includes(t.pick(rng) as string)) dead++;
    expect(dead).toBeGreaterThan(800);
    expect(dead).toBeLessThan(1_200);
  });
});

describe("forwarding pointers", () => {
  test("answer for their lifetime and not after", () => {
    const p = new ForwardingPointers({ lifetimeMs: 1_000, countMax: 10 });
    p.add(entry(), 5_000);
    expect(p.get("vol-1", 5_999)?.entry.members).toEqual(entry().members);
    expect(p.get("vol-1", 6_000)).toBeNull();
    expect(p.sweep(6_000)).toBe(1);
    expect(p.size).toBe(0);
  });

  test("are bounded in number: a full table forgets its oldest", () => {
    const p = new ForwardingPointers({ lifetimeMs: 1_000_000, countMax: 3 });
    for (let i = 0; i < 5; i++) p.add(entry({ cell: `vol-${i}` }), i);
    expect(p.size).toBe(3);
    expect(p.evicted).toBe(2);
    expect(p.get("vol-1", 10)).toBeNull();
    expect(p.get("vol-4", 10)).not.toBeNull();
  });

  test("sweep costs only the pointers it removes, oldest first", () => {
    const p = new ForwardingPointers({ lifetimeMs: 100, countMax: 100 });
    for (let i = 0; i < 10; i++) p.add(entry({ cell: `vol-${i}` }), i * 10);
    expect(p.sweep(150)).toBe(6);
    expect(p.get("vol-6", 150)).not.toBeNull();
  });
});
