// Builders and arbitraries shared by the discovery tests.

import fc from "fast-check";
import type { CellEntry } from "../../src/discovery/entry.ts";
import type { CellReport } from "../../src/discovery/cache.ts";

export const hex16 = (n: number): string => n.toString(16).padStart(16, "0");

export function identity(node: number, incarnation = node + 1): string {
  return `n${node}~${hex16(incarnation)}`;
}

export function members(first: number, count = 7): string[] {
  return Array.from({ length: count }, (_, i) => identity(first + i));
}

export const nowMs = 1_700_000_000_000;

export function entry(fields: Partial<CellEntry> = {}): CellEntry {
  const list = fields.members ?? members(0);
  return {
    cell: "vol-1", incarnation: hex16(1), epoch: 0, version: 10, ballot: 2, leader: list[0] ?? null,
    refreshedMs: nowMs, ...fields, members: [...list].sort(),
  };
}

export function report(fields: Partial<CellReport> = {}): CellReport {
  const list = fields.members ?? members(0);
  return {
    cell: "vol-1", incarnation: hex16(1), version: 10, appliedSlot: 20, leader: list[0] ?? null, ballot: 2, role: "leader",
    ...fields, members: list,
  };
}

const identityArb = fc.tuple(fc.integer({ min: 0, max: 11 }), fc.integer({ min: 1, max: 3 })).map(([n, inc]) => identity(n, inc));

/** Entries of one cell whose fields collide often, so that every tie-breaker is exercised. */
export const entryArb: fc.Arbitrary<CellEntry> = fc
  .record({
    incarnation: fc.integer({ min: 1, max: 2 }).map(hex16),
    epoch: fc.integer({ min: 0, max: 2 }),
    version: fc.integer({ min: 0, max: 3 }),
    ballot: fc.integer({ min: 0, max: 2 }),
    leader: fc.option(identityArb, { nil: null }),
    refreshedMs: fc.integer({ min: 0, max: 2 }).map((k) => nowMs + k),
    members: fc.uniqueArray(identityArb, { minLength: 1, maxLength: 9 }),
  })
  .map((fields) => ({ cell: "vol-1", ...fields, members: [...fields.members].sort() }));
