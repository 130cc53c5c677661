// fast-check generators for values and transactions, shared by the core, wire and sim tests.
import fc from "fast-check";
import type { Condition, Transaction, Write } from "../../src/core/transaction.ts";
import type { Value } from "../../src/core/value.ts";

// Few keys and small integers, so that transactions collide on keys and values often.
export const smallKey = fc.oneof(
  { arbitrary: fc.constantFrom("a", "b", "c"), weight: 4 },
  { arbitrary: fc.constantFrom("d", "é", "\u{1F600}", "\uE000", "k/1"), weight: 1 },
);

const bigInteger = fc.oneof(
  { arbitrary: fc.bigInt({ min: -3n, max: 3n }), weight: 6 },
  { arbitrary: fc.bigInt({ min: -(1n << 300n), max: 1n << 300n }), weight: 1 },
  { arbitrary: fc.constantFrom((1n << 256n) - 1n, -((1n << 256n) - 1n), 1n << 255n), weight: 1 },
);

export const value: fc.Arbitrary<Value> = fc.oneof(
  fc.uint8Array({ maxLength: 8 }),
  bigInteger,
  fc.boolean(),
);

export const condition: fc.Arbitrary<Condition> = fc.oneof(
  smallKey.map((key) => ({ key, test: "exists" as const })),
  smallKey.map((key) => ({ key, test: "notExists" as const })),
  fc.record({ key: smallKey, test: fc.constantFrom("equals" as const, "notEquals" as const), value }),
  fc.record({ key: smallKey, test: fc.constantFrom("lt" as const, "le" as const, "gt" as const, "ge" as const), value: fc.bigInt({ min: -4n, max: 4n }) }),
);

export const write: fc.Arbitrary<Write> = fc.oneof(
  fc.record({ key: smallKey, op: fc.constant("put" as const), value }),
  smallKey.map((key) => ({ key, op: "delete" as const })),
  fc.record({ key: smallKey, op: fc.constant("increment" as const), by: bigInteger }),
);

export const transaction: fc.Arbitrary<Transaction> = fc
  .record({
    reads: fc.array(smallKey, { maxLength: 4 }),
    conditions: fc.array(condition, { maxLength: 3 }),
    writes: fc.uniqueArray(write, { maxLength: 4, selector: (w) => w.key }),
    scan: fc.option(fc.record({ start: fc.constantFrom("", "b", "d"), limit: fc.integer({ min: 1, max: 4 }) }), { nil: undefined }),
  })
  .map(({ scan, ...rest }) => (scan === undefined ? rest : { ...rest, scan }));
