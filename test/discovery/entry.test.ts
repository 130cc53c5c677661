import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { DiscoveryCache } from "../../src/discovery/cache.ts";
import { type CellEntry, compareEntries, mergeEntries } from "../../src/discovery/entry.ts";
import { EntryStore } from "../../src/discovery/store.ts";
import { entry, entryArb, identity, nowMs } from "./support.ts";

const sign = (x: number): number => (x > 0 ? 1 : x < 0 ? -1 : 0);
const sameEntry = (a: CellEntry, b: CellEntry): boolean => JSON.stringify(a) === JSON.stringify(b);

describe("the entry order", () => {
  test("is a total order: antisymmetric, transitive, and zero only for identical entries", () => {
    fc.assert(
      fc.property(entryArb, entryArb, entryArb, (a, b, c) => {
        expect(sign(compareEntries(a, b))).toBe(-sign(compareEntries(b, a)));
        expect(compareEntries(a, b) === 0).toBe(sameEntry(a, b));
        if (compareEntries(a, b) <= 0 && compareEntries(b, c) <= 0) expect(compareEntries(a, c)).toBeLessThanOrEqual(0);
      }),
      { numRuns: 2_000 },
    );
  });

  test("puts each field before the next: incarnation, epoch, version, ballot, leader, stamp, members", () => {
    const base = entry();
    const later = [
      { ...base, incarnation: "0000000000000002", epoch: 0, version: 0 },
      { ...base, epoch: 1, version: 0, ballot: 0 },
      { ...base, version: 11, ballot: 0, leader: null },
      { ...base, ballot: 3, leader: null, refreshedMs: 0 },
      { ...base, leader: identity(99), refreshedMs: 0 },
      { ...base, refreshedMs: nowMs + 1, members: [identity(0)] },
    ];
    for (const newer of later) expect(compareEntries(newer, base)).toBeGreaterThan(0);
    expect(compareEntries({ ...base, members: [...base.members, identity(50)].sort() }, base)).not.toBe(0);
  });

  test("merging is commutative, associative and idempotent", () => {
    fc.assert(
      fc.property(entryArb, entryArb, entryArb, (a, b, c) => {
        expect(mergeEntries(a, b)).toEqual(mergeEntries(b, a));
        expect(mergeEntries(mergeEntries(a, b), c)).toEqual(mergeEntries(a, mergeEntries(b, c)));
        expect(mergeEntries(a, a)).toEqual(a);
      }),
      { numRuns: 1_000 },
    );
  });

  test("replicas that see the same updates in any order hold the same, greatest entry", () => {
    fc.assert(
      fc.property(fc.array(entryArb, { minLength: 1, maxLength: 12 }), fc.integer({ min: 0, max: 2 ** 31 }), (updates, seed) => {
        const store = new EntryStore({ leafBits: 4 });
        const replicas = [new DiscoveryCache(store), new DiscoveryCache(store), new DiscoveryCache(store)];
        replicas.forEach((replica, r) => {
          // Each replica gets its own shuffle of the updates.
          const order = updates.map((u, i) => ({ u, key: (i * 2654435761 + seed * (r + 1)) % 1_000_003 })).sort((x, y) => x.key - y.key);
          for (const { u } of order) replica.merge(u, nowMs);
        });
        const greatest = updates.reduce(mergeEntries);
        for (const replica of replicas) {
          expect(replica.get("vol-1")).toEqual(greatest);
          expect(replica.root()).toEqual(replicas[0]!.root());
        }
      }),
      { numRuns: 300 },
    );
  });
});
