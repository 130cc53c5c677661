import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { KvStore, type TxResult } from "../../src/core/kv.ts";
import { decodeKv, encodeKv, kvDigest } from "../../src/core/snapshot.ts";
import type { Transaction } from "../../src/core/transaction.ts";
import { toHex } from "../../src/core/bytes.ts";
import { limits } from "../../src/limits.ts";
import { transaction, value as valueArb } from "../support/arbitraries.ts";

// A reference model written from the documented semantics, independently of src/core/kv.ts:
// a plain Map, values compared through a printable form, keys ordered by UTF-8 bytes.
type ModelValue = Uint8Array | bigint | boolean;
const show = (v: ModelValue | undefined | null): string =>
  v === undefined || v === null ? "none" : typeof v === "bigint" ? `i${v}` : typeof v === "boolean" ? `b${v}` : `x${toHex(v)}`;
const utf8Order = (a: string, b: string): number => Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
const bound = 1n << 256n;

function modelApply(model: Map<string, ModelValue>, tx: Transaction): unknown {
  const reads = tx.reads.map((k) => show(model.get(k)));
  let scan: unknown;
  if (tx.scan) {
    const keys = [...model.keys()].filter((k) => tx.scan!.start === "" || utf8Order(k, tx.scan!.start) >= 0).sort(utf8Order);
    scan = { entries: keys.slice(0, tx.scan.limit).map((k) => [k, show(model.get(k))]), next: keys[tx.scan.limit] ?? null };
  }
  for (let i = 0; i < tx.conditions.length; i++) {
    const c = tx.conditions[i]!;
    const actual = model.get(c.key);
    let holds: boolean;
    if (c.test === "exists") holds = actual !== undefined;
    else if (c.test === "notExists") holds = actual === undefined;
    else if (c.test === "equals") holds = show(actual) === show(c.value);
    else if (c.test === "notEquals") holds = show(actual) !== show(c.value);
    else if (typeof actual !== "bigint") holds = false;
    else holds = { lt: actual < c.value, le: actual <= c.value, gt: actual > c.value, ge: actual >= c.value }[c.test];
    if (!holds) return { status: "conditionFailed", reads, scan, condition: i };
  }
  const next = new Map(model);
  const increments: string[] = [];
  for (const w of tx.writes) {
    if (w.op === "put") next.set(w.key, w.value);
    else if (w.op === "delete") next.delete(w.key);
    else {
      const base = model.get(w.key) ?? 0n;
      if (typeof base !== "bigint") return { status: "rejected", reason: "wrongType" };
      const sum = base + w.by;
      if (sum >= bound || sum <= -bound) return { status: "rejected", reason: "valueTooLarge" };
      next.set(w.key, sum);
      increments.push(`${w.key}=${sum}`);
    }
  }
  model.clear();
  for (const [k, v] of next) model.set(k, v);
  return { status: "committed", reads, scan, increments };
}

function summarize(result: TxResult): unknown {
  if (result.status === "rejected") return { status: "rejected", reason: result.reason };
  const scan = result.scan === undefined ? undefined : { entries: result.scan.entries.map(([k, v]) => [k, show(v)]), next: result.scan.next };
  const reads = result.reads.map(show);
  if (result.status === "conditionFailed") return { status: "conditionFailed", reads, scan, condition: result.condition };
  return { status: "committed", reads, scan, increments: result.increments.map(([k, v]) => `${k}=${v}`) };
}

function modelRejects(tx: Transaction): boolean {
  // Stateless limits the generator can hit: over-large integers in a put or an operand.
  const tooBig = (v: unknown) => typeof v === "bigint" && (v >= bound || v <= -bound);
  return tx.writes.some((w) => (w.op === "put" && tooBig(w.value)) || (w.op === "increment" && tooBig(w.by))) ||
    tx.conditions.some((c) => "value" in c && tooBig(c.value));
}

describe("the key-value state machine", () => {
  test("agrees with the reference model on every result and every state", () => {
    fc.assert(
      fc.property(fc.array(transaction, { maxLength: 30 }), (txs) => {
        const store = new KvStore();
        const model = new Map<string, ModelValue>();
        for (const tx of txs) {
          const result = store.apply(tx);
          if (modelRejects(tx)) {
            expect(result.status).toBe("rejected");
            continue;
          }
          expect(summarize(result)).toEqual(modelApply(model, tx) as object);
          const stored = [...store.ordered()].map(([k, v]) => `${k}:${show(v)}`);
          const modelled = [...model.keys()].sort(utf8Order).map((k) => `${k}:${show(model.get(k))}`);
          expect(stored).toEqual(modelled);
        }
      }),
      { numRuns: 300 },
    );
  });

  test("apply never throws, whatever it is given", () => {
    const junk = fc.oneof(
      fc.anything({ withBigInt: true, withTypedArray: true, withNullPrototype: true }),
      fc.record({ reads: fc.anything(), conditions: fc.anything(), writes: fc.anything() }),
      fc.record({
        reads: fc.array(fc.anything({ withBigInt: true })),
        conditions: fc.array(fc.record({ key: fc.anything(), test: fc.string(), value: fc.anything({ withBigInt: true }) })),
        writes: fc.array(fc.record({ key: fc.string(), op: fc.constantFrom("put", "delete", "increment", "x"), value: fc.anything({ withBigInt: true }), by: fc.anything({ withBigInt: true }) })),
        scan: fc.anything(),
      }),
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(junk, transaction), { maxLength: 10 }), (inputs) => {
        const store = new KvStore();
        for (const input of inputs) {
          const result = store.apply(input);
          expect(["committed", "conditionFailed", "rejected"]).toContain(result.status);
        }
        expect(store.bytes).toBe(store.recount());
      }),
      { numRuns: 500 },
    );
  });

  test("replicas built independently reach the same digest from the same transactions", () => {
    fc.assert(
      fc.property(fc.array(transaction, { maxLength: 25 }), (txs) => {
        const a = new KvStore();
        const b = new KvStore();
        const results = txs.map((tx) => JSON.stringify(summarize(a.apply(tx)), (_, v) => (typeof v === "bigint" ? `${v}n` : v)));
        // The second replica receives structurally equal but separately built transactions.
        const copies = txs.map((tx) => structuredClone(tx));
        const again = copies.map((tx) => JSON.stringify(summarize(b.apply(tx)), (_, v) => (typeof v === "bigint" ? `${v}n` : v)));
        expect(again).toEqual(results);
        expect(toHex(kvDigest(b))).toBe(toHex(kvDigest(a)));
      }),
      { numRuns: 200 },
    );
  });

  test("a transaction that does not commit leaves the state exactly as it was", () => {
    fc.assert(
      fc.property(fc.array(transaction, { maxLength: 20 }), transaction, (setup, tx) => {
        const store = new KvStore();
        for (const t of setup) store.apply(t);
        const before = toHex(kvDigest(store));
        const bytesBefore = store.bytes;
        const result = store.apply(tx);
        if (result.status !== "committed") {
          expect(toHex(kvDigest(store))).toBe(before);
          expect(store.bytes).toBe(bytesBefore);
        }
      }),
      { numRuns: 300 },
    );
  });

  test("the canonical encoding round-trips and keeps the digest", () => {
    fc.assert(
      fc.property(fc.array(transaction, { maxLength: 20 }), (txs) => {
        const store = new KvStore();
        for (const tx of txs) store.apply(tx);
        const decoded = decodeKv(encodeKv(store));
        expect(decoded.ok).toBe(true);
        if (!decoded.ok) return;
        expect(toHex(kvDigest(decoded.value))).toBe(toHex(kvDigest(store)));
        expect(decoded.value.bytes).toBe(store.bytes);
      }),
      { numRuns: 200 },
    );
  });

  test("decoding a damaged snapshot never throws and never yields an invalid store", () => {
    const store = new KvStore();
    store.apply({ reads: [], conditions: [], writes: [
      { key: "a", op: "put", value: 7n }, { key: "b", op: "put", value: new Uint8Array([1, 2, 3]) }, { key: "c", op: "put", value: true },
    ] });
    const good = encodeKv(store);
    fc.assert(
      fc.property(fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        fc.integer({ min: 0, max: good.length - 1 }).map((n) => good.slice(0, n)),
        fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => { const c = good.slice(); c[i]! ^= x; return c; }),
      ), (bytes) => {
        const decoded = decodeKv(bytes);
        if (decoded.ok) {
          expect(decoded.value.bytes).toBe(decoded.value.recount());
          expect(toHex(encodeKv(decoded.value))).toBe(toHex(bytes));
        } else {
          expect(decoded.reason.length).toBeGreaterThan(0);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe("every operation has a written answer", () => {
  const put = (key: string, value: Uint8Array | bigint | boolean): Transaction => ({ reads: [], conditions: [], writes: [{ key, op: "put", value }] });
  const inc = (key: string, by: bigint): Transaction => ({ reads: [key], conditions: [], writes: [{ key, op: "increment", by }] });

  test("increment of a missing key starts from zero", () => {
    const store = new KvStore();
    const result = store.apply(inc("n", 5n));
    expect(result).toEqual({ status: "committed", reads: [null], increments: [["n", 5n]] });
    expect(store.get("n")).toBe(5n);
  });

  test("increment of a boolean or of bytes is rejected as wrongType and changes nothing", () => {
    const store = new KvStore();
    store.apply(put("flag", true));
    store.apply(put("blob", new Uint8Array([1])));
    for (const key of ["flag", "blob"]) {
      const result = store.apply({ reads: [], conditions: [], writes: [{ key: "other", op: "put", value: 1n }, { key, op: "increment", by: 1n }] });
      expect(result.status === "rejected" && result.reason).toBe("wrongType");
      expect(store.get("other")).toBeUndefined();
    }
  });

  test("increment past the integer limit is rejected as valueTooLarge", () => {
    const store = new KvStore();
    const max = (1n << BigInt(limits.integerBitsMax)) - 1n;
    expect(store.apply(put("n", max)).status).toBe("committed");
    const result = store.apply(inc("n", 1n));
    expect(result.status === "rejected" && result.reason).toBe("valueTooLarge");
    expect(store.get("n")).toBe(max);
  });

  test("a put that would overfill the cell is rejected as cellFull, and deletes still work", () => {
    const store = new KvStore();
    const big = new Uint8Array(limits.valueBytesMax);
    let i = 0;
    let last: TxResult | undefined;
    while (i < 1000) {
      last = store.apply(put(`k${i}`, big));
      if (last.status !== "committed") break;
      i++;
    }
    expect(last?.status === "rejected" && last.reason).toBe("cellFull");
    expect(store.bytes).toBeLessThanOrEqual(limits.cellBytesMax);
    expect(store.apply({ reads: [], conditions: [], writes: [{ key: "k0", op: "delete" }] }).status).toBe("committed");
    expect(store.apply(put("k0", new Uint8Array(8))).status).toBe("committed");
  });

  test("stateless limits are rejected with the reason named", () => {
    const store = new KvStore();
    const cases: [unknown, string][] = [
      [put("", 1n), "keyInvalid"],
      [put("x".repeat(limits.keyBytesMax + 1), 1n), "keyTooLarge"],
      [put("\uD800", 1n), "keyInvalid"],
      [put("k", new Uint8Array(limits.valueBytesMax + 1)), "valueTooLarge"],
      [put("k", 1n << 300n), "valueTooLarge"],
      [{ reads: Array.from({ length: limits.keysPerTransactionMax + 1 }, (_, i) => `k${i}`), conditions: [], writes: [] }, "tooManyKeys"],
      [{ reads: [], conditions: [], writes: [{ key: "a", op: "delete" }, { key: "a", op: "delete" }] }, "duplicateWrite"],
      [{ reads: [], conditions: [], writes: [], scan: { start: "", limit: 0 } }, "scanLimitInvalid"],
      [{ reads: [], conditions: [], writes: Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, op: "put", value: new Uint8Array(4000) })) }, "transactionTooLarge"],
      [{ reads: [], conditions: [{ key: "a", test: "lt", value: true }], writes: [] }, "malformed"],
      [{ reads: [], conditions: [], writes: [{ key: "a", op: "put", value: 1.5 }] }, "malformed"],
      [null, "malformed"],
    ];
    for (const [tx, reason] of cases) {
      const result = store.apply(tx);
      expect(result.status === "rejected" ? (result.reason as string) : result.status).toBe(reason);
    }
    expect(store.size).toBe(0);
  });

  test("a failed condition is named and the reads still come back", () => {
    const store = new KvStore();
    store.apply(put("x", 3n));
    const result = store.apply({
      reads: ["x"],
      conditions: [{ key: "x", test: "exists" }, { key: "x", test: "gt", value: 5n }],
      writes: [{ key: "x", op: "put", value: 9n }],
    });
    expect(result).toEqual({ status: "conditionFailed", reads: [3n], condition: 1, key: "x", actual: 3n });
    expect(store.get("x")).toBe(3n);
  });

  test("integer comparisons fail on a missing key or a non-integer", () => {
    const store = new KvStore();
    store.apply(put("b", true));
    for (const key of ["missing", "b"]) {
      const result = store.apply({ reads: [], conditions: [{ key, test: "le", value: 100n }], writes: [] });
      expect(result.status).toBe("conditionFailed");
    }
  });

  test("values of different types are never equal", () => {
    const store = new KvStore();
    store.apply(put("v", 1n));
    for (const other of [true, new Uint8Array([1])]) {
      expect(store.apply({ reads: [], conditions: [{ key: "v", test: "equals", value: other }], writes: [] }).status).toBe("conditionFailed");
      expect(store.apply({ reads: [], conditions: [{ key: "v", test: "notEquals", value: other }], writes: [] }).status).toBe("committed");
    }
  });

  test("paged scans visit every key in the range exactly once, in order", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6, unit: "binary" }), { maxLength: 40 }), fc.integer({ min: 1, max: 7 }), (keys, limit) => {
        const store = new KvStore();
        for (const key of keys) store.apply(put(key, valueFor(key)));
        const seen: string[] = [];
        let start = "";
        for (let page = 0; page < 100; page++) {
          const result = store.apply({ reads: [], conditions: [], writes: [], scan: { start, limit } });
          if (result.status !== "committed" || result.scan === undefined) throw new Error("scan failed");
          seen.push(...result.scan.entries.map(([k]) => k));
          if (result.scan.next === null) break;
          start = result.scan.next;
        }
        expect(seen).toEqual([...keys].sort(utf8Order));
      }),
      { numRuns: 200 },
    );
  });
});

function valueFor(key: string): bigint {
  return BigInt(key.length);
}

test("generated values cover all three types", () => {
  const kinds = new Set(fc.sample(valueArb, 200).map((v) => typeof v));
  expect([...kinds].sort()).toEqual(["bigint", "boolean", "object"]);
});
