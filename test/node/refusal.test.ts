// The shallow read behind `overloaded` answers (refusal.ts) against the whole decode it
// replaced: on bodies our encoder writes, both find the same requests; on damaged bytes the
// shallow read never throws and never names a request that is not the sender's.

import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { limits } from "../../src/limits.ts";
import { overloadedFor } from "../../src/node/refusal.ts";
import { decodeCbor, encodeCbor } from "../../src/wire/cbor.ts";

const sender = "client-7";
const nodeKinds = new Set(["HLO", "NEW", "JON"]);

/** The read this module used to make: cbor-x decodes the whole body. */
function byWholeDecode(body: Uint8Array): { cell: string; client: string; id: number }[] {
  const decoded = decodeCbor(body);
  if (!decoded.ok) return [];
  const messages = (decoded.value as { m?: unknown } | null)?.m;
  if (!Array.isArray(messages)) return [];
  const out: { cell: string; client: string; id: number }[] = [];
  for (const message of messages.slice(0, limits.batchCommandsMax)) {
    if (typeof message !== "object" || message === null) continue;
    const { c: cell, k: kind, cl: client, q: id } = message as Record<string, unknown>;
    if (typeof cell !== "string" || cell.length > limits.keyBytesMax || client !== sender) continue;
    const number = typeof id === "bigint" && id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(id) : id;
    if (typeof number !== "number" || !Number.isSafeInteger(number) || number < 0) continue;
    if (kind === "REQ" || (typeof kind === "string" && nodeKinds.has(kind))) out.push({ cell, client, id: number });
  }
  return out;
}

const shallow = (body: Uint8Array) => overloadedFor(body, sender).map(({ cell, client, id }) => ({ cell, client, id }));

// Values as the encoder writes them (integers as integers: the shallow read takes no float ids).
const leaf = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.integer({ min: -1_000, max: 1_000 }),
  fc.constantFrom(0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32, Number.MAX_SAFE_INTEGER),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 40 }),
);
const value = fc.letrec((tie) => ({
  tree: fc.oneof({ depthSize: "small", withCrossShrink: true }, leaf, fc.array(tie("tree"), { maxLength: 4 }), fc.dictionary(fc.string({ maxLength: 4 }), tie("tree"), { maxKeys: 4 })),
})).tree;
const message = fc.record(
  {
    c: fc.oneof(fc.string({ maxLength: 20 }), fc.constant("x".repeat(limits.keyBytesMax + 1)), value),
    k: fc.oneof(fc.constantFrom("REQ", "HLO", "NEW", "JON", "RPL", "req"), value),
    cl: fc.oneof(fc.constant(sender), fc.constant("someone-else"), value),
    q: fc.oneof(fc.nat(), fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 53, -1), fc.bigInt({ min: 0n, max: 1n << 60n }), value),
    t: value,
  },
  { requiredKeys: [] },
);
const body = fc.record(
  {
    v: fc.nat(),
    m: fc.oneof({ weight: 5, arbitrary: fc.array(fc.oneof({ weight: 4, arbitrary: message }, { weight: 1, arbitrary: value }), { maxLength: limits.batchCommandsMax + 3 }) }, { weight: 1, arbitrary: value }),
    x: value,
  },
  { requiredKeys: [] },
);

describe("the shallow read of a refused body", () => {
  test("finds exactly the requests a whole decode finds, on bodies the encoder writes", () => {
    fc.assert(
      fc.property(body, (b) => {
        const bytes = encodeCbor(b);
        expect(shallow(bytes)).toEqual(byWholeDecode(bytes));
      }),
      { numRuns: 3_000 },
    );
  });

  test("finds them in a real request's body, and none in a body with trailing bytes or cut short", () => {
    const bytes = encodeCbor({ v: 1, m: [{ c: "volume-1", k: "REQ", cl: sender, q: 41, t: { r: [], c: [], w: [{ k: "a", o: "p", v: new Uint8Array(100) }] } }] });
    expect(shallow(bytes)).toEqual([{ cell: "volume-1", client: sender, id: 41 }]);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(shallow(longer)).toEqual([]);
    for (let cut = 0; cut < bytes.length; cut++) expect(shallow(bytes.subarray(0, cut))).toEqual([]);
  });

  test("answers at most as many requests as a body may carry", () => {
    const many = Array.from({ length: limits.batchCommandsMax + 5 }, (_, i) => ({ c: `cell-${i}`, k: "REQ", cl: sender, q: i }));
    const bytes = encodeCbor({ v: 1, m: many });
    expect(shallow(bytes)).toHaveLength(limits.batchCommandsMax);
    expect(shallow(bytes)).toEqual(byWholeDecode(bytes));
  });

  test("never throws on damaged bytes, and names only the sender's requests", () => {
    fc.assert(
      fc.property(body, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), (b, flips) => {
        const bytes = encodeCbor(b);
        for (const [at, byte] of flips) if (bytes.length > 0) bytes[at % bytes.length] = byte;
        for (const found of shallow(bytes)) {
          expect(found.client).toBe(sender);
          expect(Number.isSafeInteger(found.id) && found.id >= 0).toBe(true);
        }
      }),
      { numRuns: 3_000 },
    );
  });
});
