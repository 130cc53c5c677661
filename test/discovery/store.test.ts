import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { discoveryLimits } from "../../src/discovery/limits.ts";
import { isWellFormed } from "../../src/core/value.ts";
import { EntryStore, Identities, Names } from "../../src/discovery/store.ts";
import { entry, hex16, identity, members } from "./support.ts";

describe("the name dictionary", () => {
  test("behaves like a reference-counted Map under random acquires and releases (model-based)", () => {
    const nameArb = fc.oneof(fc.integer({ min: 0, max: 300 }).map((i) => `vol-${i}`), fc.string({ minLength: 1, maxLength: 40 }).filter(isWellFormed));
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), nameArb), { maxLength: 600 }), (ops) => {
        const names = new Names(6);
        const model = new Map<string, { index: number; refs: number }>();
        for (const [acquire, name] of ops) {
          if (acquire) {
            const index = names.acquire(name);
            const known = model.get(name);
            if (known !== undefined) expect(index).toBe(known.index);
            model.set(name, { index, refs: (known?.refs ?? 0) + 1 });
          } else {
            const known = model.get(name);
            if (known === undefined) continue;
            names.release(known.index);
            if (known.refs === 1) model.delete(name);
            else model.set(name, { ...known, refs: known.refs - 1 });
          }
        }
        expect(names.size).toBe(model.size);
        for (const [name, { index }] of model) {
          expect(names.find(name)).toBe(index);
          expect(names.name(index)).toBe(name);
        }
        // Every live name is listed in exactly its own leaf.
        const listed: number[] = [];
        for (let leaf = 0; leaf < 64; leaf++) {
          for (let i = names.firstInLeaf(leaf); i !== -1; i = names.nextInLeaf(i)) {
            expect(names.leafOf(i)).toBe(leaf);
            listed.push(i);
          }
        }
        expect(listed.sort((a, b) => a - b)).toEqual([...model.values()].map((v) => v.index).sort((a, b) => a - b));
      }),
      { numRuns: 200 },
    );
  });

  test("keeps names readable across arena compaction and table growth (20,000 names in, 15,000 out, 20,000 in)", () => {
    const names = new Names(8);
    const indices = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) indices.set(`cell-${i}-${"x".repeat(i % 50)}`, names.acquire(`cell-${i}-${"x".repeat(i % 50)}`));
    let removed = 0;
    for (const [name, index] of indices) {
      if (removed++ >= 15_000) break;
      names.release(index);
      indices.delete(name);
    }
    for (let i = 20_000; i < 40_000; i++) indices.set(`again-${i}`, names.acquire(`again-${i}`));
    expect(names.size).toBe(indices.size);
    for (const [name, index] of indices) {
      expect(names.find(name)).toBe(index);
      expect(names.name(index)).toBe(name);
    }
    expect(names.find("cell-0-")).toBe(-1);
  });
});

describe("the entry store", () => {
  test("shares one record between equal entries and frees it with its last reference", () => {
    const store = new EntryStore({ leafBits: 4 });
    const name = store.names.acquire("vol-1");
    const a = store.acquire(entry(), name);
    const b = store.acquire(entry(), name);
    const c = store.acquire(entry({ version: 11 }), name);
    store.names.release(name);
    expect(a).toBe(b);
    expect(c).not.toBe(a);
    expect(store.records).toBe(2);
    expect(store.entry(a as number)).toEqual(entry());
    store.release(a as number);
    store.release(b as number);
    store.release(c as number);
    expect(store.records).toBe(0);
    expect(store.names.size).toBe(0);
    expect(store.identities.size).toBe(0);
  });

  test("compares a record with an entry exactly as the entry order does", () => {
    const store = new EntryStore({ leafBits: 4 });
    const name = store.names.acquire("vol-1");
    const held = store.acquire(entry(), name) as number;
    expect(store.compareTo(held, entry())).toBe(0);
    expect(store.compareTo(held, entry({ epoch: 1 }))).toBeLessThan(0);
    expect(store.compareTo(held, entry({ version: 9 }))).toBeGreaterThan(0);
    expect(store.compareTo(held, entry({ leader: null }))).toBeGreaterThan(0);
    expect(store.compareTo(held, entry({ members: members(1) }))).toBeLessThan(0);
    expect(store.compareTo(held, entry({ incarnation: hex16(0) }))).toBeGreaterThan(0);
  });

  test("refuses an entry when the identity table is full, and keeps no reference it took", () => {
    const identities = new Identities();
    for (let i = 0; i < discoveryLimits.identitiesMax; i++) expect(identities.acquire(identity(i))).toBe(i);
    expect(identities.acquire("another~0000000000000001")).toBe(-1);
    const store = new EntryStore({ leafBits: 4 });
    for (let i = 0; i < discoveryLimits.identitiesMax - 3; i++) store.identities.acquire(identity(i, 9));
    const name = store.names.acquire("vol-1");
    // Seven new identities, three of which still fit: the whole entry is refused.
    expect(store.acquire(entry({ members: members(100) }), name)).toBe("identitiesFull");
    expect(store.identities.size).toBe(discoveryLimits.identitiesMax - 3);
  });
});
