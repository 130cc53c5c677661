import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { DiscoveryCache } from "../../src/discovery/cache.ts";
import { EntryStore } from "../../src/discovery/store.ts";
import { entry, entryArb, hex16, identity, members, nowMs, report } from "./support.ts";

const hourMs = 3_600_000;

function cache(): DiscoveryCache {
  return new DiscoveryCache(new EntryStore({ leafBits: 6 }), { entryLifetimeMs: 24 * hourMs, refreshIntervalMs: 4 * hourMs, clockSkewMs: 60_000 });
}

describe("merging entries from peers", () => {
  test("keeps the greater entry and says why it refused the others", () => {
    const c = cache();
    expect(c.merge(entry(), nowMs)).toBe("stored");
    expect(c.merge(entry(), nowMs)).toBe("equal");
    expect(c.merge(entry({ version: 9 }), nowMs)).toBe("older");
    expect(c.merge(entry({ version: 11 }), nowMs)).toBe("stored");
    expect(c.get("vol-1")?.version).toBe(11);
  });

  test("refuses entries past their lifetime and entries stamped beyond the clock skew", () => {
    const c = cache();
    expect(c.merge(entry({ refreshedMs: nowMs - 24 * hourMs }), nowMs)).toBe("expired");
    expect(c.merge(entry({ refreshedMs: nowMs + 60_001 }), nowMs)).toBe("future");
    expect(c.merge(entry({ refreshedMs: nowMs + 60_000 }), nowMs)).toBe("stored");
    expect(c.size).toBe(1);
  });

  test("sweeps expired entries a bounded number of names at a time", () => {
    const c = cache();
    for (let i = 0; i < 10; i++) c.merge(entry({ cell: `vol-${i}`, refreshedMs: nowMs - (i < 4 ? 23 : 1) * hourMs }), nowMs);
    expect(c.sweep(nowMs + hourMs, 5) + c.sweep(nowMs + hourMs, 5)).toBe(4);
    expect(c.size).toBe(6);
    expect(c.get("vol-0")).toBeNull();
    expect(c.get("vol-9")).not.toBeNull();
  });

  test("keeps its digest tree equal to one rebuilt from its entries (any merges, removals and sweeps)", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), entryArb, fc.boolean()), { maxLength: 80 }), (ops) => {
        const store = new EntryStore({ leafBits: 8 });
        const live = new DiscoveryCache(store);
        for (const [cell, e, remove] of ops) {
          if (remove) live.remove(`vol-${cell}`);
          else live.merge({ ...e, cell: `vol-${cell}` }, nowMs);
        }
        const rebuilt = new DiscoveryCache(store);
        for (let cell = 0; cell <= 30; cell++) {
          const held = live.get(`vol-${cell}`);
          if (held !== null) rebuilt.merge(held, nowMs);
        }
        expect(live.root()).toEqual(rebuilt.root());
        for (const depth of live.depths) for (let node = 0; node < 1 << depth; node++) expect(live.digest(depth, node)).toEqual(rebuilt.digest(depth, node));
        expect(live.root()[0] === 0 && live.root()[1] === 0).toBe(live.size === 0);
      }),
      { numRuns: 150 },
    );
  });
});

describe("a member pushing its view", () => {
  test("stores a cell nobody knew, or a newer incarnation, and defers to a newer incarnation", () => {
    const c = cache();
    expect(c.push(report(), nowMs)).toBe("stored");
    expect(c.push(report({ incarnation: hex16(2), version: 1, appliedSlot: 1 }), nowMs)).toBe("stored");
    expect(c.push(report(), nowMs)).toBe("newerKnown");
    expect(c.get("vol-1")?.incarnation).toBe(hex16(2));
  });

  test("defers to an entry beyond its applied slot: the member may be the one that is behind", () => {
    const c = cache();
    c.merge(entry({ version: 25, members: members(3) }), nowMs);
    expect(c.push(report({ version: 10, appliedSlot: 20 }), nowMs)).toBe("newerKnown");
    expect(c.get("vol-1")?.version).toBe(25);
  });

  test("corrects, with epoch + 1, an entry its own log proves wrong", () => {
    const cases = [
      { why: "a membership change at a slot where its log has none", stored: entry({ version: 15, members: members(3), refreshedMs: nowMs + 5 }) },
      { why: "other members at the same version", stored: entry({ members: members(3), refreshedMs: nowMs + 5 }) },
      { why: "a leader who is not a member", stored: entry({ leader: identity(40), ballot: 9 }) },
    ];
    for (const { why, stored } of cases) {
      const c = cache();
      expect(c.merge(stored, nowMs)).toBe("stored");
      expect([why, c.push(report({ version: 10, appliedSlot: 20 }), nowMs)]).toEqual([why, "corrected"]);
      const held = c.get("vol-1");
      expect(held?.epoch).toBe(1);
      expect(held?.members).toEqual([...members(0)].sort());
      expect(held?.version).toBe(10);
    }
  });

  test("replaces an older version, or an older ballot, keeping the epoch it found", () => {
    const c = cache();
    c.merge(entry({ epoch: 3, version: 8, members: members(5) }), nowMs);
    expect(c.push(report({ version: 10 }), nowMs)).toBe("stored");
    expect(c.get("vol-1")?.epoch).toBe(3);
    expect(c.push(report({ version: 10, ballot: 5 }), nowMs + 1)).toBe("stored");
    expect(c.get("vol-1")?.ballot).toBe(5);
  });

  test("leaves a later ballot of a member alone: that leader may be real", () => {
    const c = cache();
    c.merge(entry({ ballot: 7, leader: identity(3) }), nowMs);
    expect(c.push(report({ ballot: 2 }), nowMs + 1)).toBe("current");
    expect(c.get("vol-1")?.leader).toBe(identity(3));
  });

  test("re-stamps after the refresh interval as leader, after twice that as follower", () => {
    const c = cache();
    c.push(report(), nowMs);
    expect(c.push(report(), nowMs + 4 * hourMs - 1)).toBe("current");
    expect(c.push(report({ role: "follower", leader: identity(0) }), nowMs + 4 * hourMs)).toBe("current");
    expect(c.push(report(), nowMs + 4 * hourMs)).toBe("restamped");
    expect(c.get("vol-1")?.refreshedMs).toBe(nowMs + 4 * hourMs);
    expect(c.push(report({ role: "follower" }), nowMs + 12 * hourMs)).toBe("restamped");
  });

  test("a follower re-stamps an entry whose leader it does not know, keeping that leader", () => {
    const c = cache();
    c.merge(entry({ ballot: 7, leader: identity(3) }), nowMs);
    expect(c.push(report({ role: "follower", leader: null, ballot: 0 }), nowMs + 8 * hourMs)).toBe("restamped");
    expect(c.get("vol-1")).toMatchObject({ ballot: 7, leader: identity(3), refreshedMs: nowMs + 8 * hourMs });
  });

  test("a report that could not travel (bad name, slot past the applied one, duplicate member) is a bug in the node", () => {
    expect(() => cache().push(report({ version: 21, appliedSlot: 20 }), nowMs)).toThrow("version beyond the applied slot");
    expect(() => cache().push(report({ cell: "x".repeat(257) }), nowMs)).toThrow("cell name");
    expect(() => cache().push(report({ members: [identity(1), identity(1)], leader: identity(1) }), nowMs)).toThrow("distinct");
    expect(() => cache().push(report({ leader: identity(50) }), nowMs)).toThrow("leader must be a member");
  });
});
