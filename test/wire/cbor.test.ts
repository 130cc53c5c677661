import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Encoder } from "cbor-x/encode";
import { EncodedCbor, decodeCbor, encodeCbor } from "../../src/wire/cbor.ts";
import { decodeBody, encodeBody, encodeLogValue } from "../../src/wire/schema.ts";
import { canonical, envelopes } from "../support/messages.ts";

// cbor-x configured as the project configured it before it had an encoder of its own.
const cborX = new Encoder({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint", tagUint8Array: false, pack: false } as ConstructorParameters<typeof Encoder>[0]);
const reference = (value: unknown) => new Uint8Array(cborX.encode(value));

const decoded = (bytes: Uint8Array) => {
  const result = decodeCbor(bytes);
  if (!result.ok) throw new Error(`does not decode: ${result.detail}`);
  return result.value;
};

const edgeNumbers = [0, 1, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -24, -25, -256, -257, -65_536, -65_537, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 32), -(2 ** 32) - 1, -(2 ** 53) + 1, 0.5, -1.25, 1e300, Number.NaN, Number.POSITIVE_INFINITY, -0];
const edgeBigints = [0n, 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n, 2n ** 200n + 12_345n, -1n, -(2n ** 64n) + 1n, -(2n ** 64n), -(2n ** 64n) - 1n, -(2n ** 255n)];

const leaf = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ maxLength: 300 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.constantFrom(...edgeNumbers),
  fc.double(),
  fc.bigInt(),
  fc.constantFrom(...edgeBigints),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 300 }),
);

const tree = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: "small" }, leaf, tie("array"), tie("object")),
  array: fc.array(tie("node"), { maxLength: 30 }),
  object: fc.dictionary(fc.string({ maxLength: 8 }).filter((k) => k !== "__proto__"), tie("node"), { maxKeys: 30 }),
}));

/** Trees without maps, whose encodings must be the very bytes cbor-x writes. */
const flatTree = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: "small" }, leaf, tie("array")),
  array: fc.array(tie("node"), { maxLength: 30 }),
}));

describe("CBOR encoding", () => {
  test("anything our messages are made of decodes to what cbor-x's own encoding decodes to", () => {
    fc.assert(
      fc.property(tree.node, (value) => {
        expect(decoded(encodeCbor(value))).toEqual(decoded(reference(value)));
      }),
      { numRuns: 3000 },
    );
  }, 60_000); // thousands of generated trees: seconds on a busy 2-core machine

  test("without maps, the bytes are the very bytes cbor-x writes", () => {
    fc.assert(
      fc.property(flatTree.node, (value) => {
        expect([...encodeCbor(value)]).toEqual([...reference(value)]);
      }),
      { numRuns: 3000 },
    );
    for (const value of [...edgeNumbers, ...edgeBigints]) expect([...encodeCbor(value)]).toEqual([...reference(value)]);
  }, 60_000); // thousands of generated trees: seconds on a busy 2-core machine

  test("maps get the shortest header, and large collections longer ones", () => {
    expect([...encodeCbor({ a: 1 })]).toEqual([0xa1, 0x61, 0x61, 0x01]);
    const wide = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, i]));
    expect(decoded(encodeCbor(wide))).toEqual(wide);
    const long = encodeCbor(Array.from({ length: 70_000 }, (_, i) => i % 7));
    expect([...long.subarray(0, 5)]).toEqual([0x9a, 0x00, 0x01, 0x11, 0x70]);
    expect(long.length).toBe(5 + 70_000);
  });

  test("an already encoded item is written as it is", () => {
    fc.assert(
      fc.property(tree.node, tree.node, (outer, inner) => {
        expect(decoded(encodeCbor([outer, new EncodedCbor(encodeCbor(inner)), { x: new EncodedCbor(encodeCbor(inner)) }]))).toEqual(decoded(reference([outer, inner, { x: inner }])));
      }),
      { numRuns: 500 },
    );
  });

  test("types our messages never hold are encoded by cbor-x, as before", () => {
    for (const value of [new Map([["a", 1]]), new Set([1, 2]), new Date(1_700_000_000_000), new Uint16Array([1, 2]), [1, new Map([[2, 3]])]]) {
      expect([...encodeCbor(value)]).toEqual([...reference(value)]);
    }
    // Even beside an item already encoded, which cbor-x is given decoded.
    expect(decoded(encodeCbor([new Date(5), new EncodedCbor(encodeCbor({ a: [1n, "x"] }))]))).toEqual(decoded(reference([new Date(5), { a: [1n, "x"] }])));
  });

  test("a large value grows the buffer, and the next encoding is right again", () => {
    const big = new Uint8Array(200_000).fill(7);
    expect(decoded(encodeCbor({ big }))).toEqual({ big });
    expect([...encodeCbor([1, "a"])]).toEqual([0x82, 0x01, 0x61, 0x61]);
  });

  test("bodies and log values encode as before: every message kind decodes to itself", () => {
    fc.assert(
      fc.property(envelopes, (messages) => {
        const body = encodeBody(messages);
        expect(canonical(decodeBody(body))).toBe(canonical({ ok: true, messages, discovery: [] }));
      }),
      { numRuns: 1000 },
    );
  }, 60_000); // thousands of generated trees: seconds on a busy 2-core machine

  test("a log value is encoded once and its bytes reused", () => {
    const value = { kind: "batch" as const, commands: [{ session: 1, seq: 2, acked: 2, op: { kind: "closeSession" as const } }], stamp: { ballot: { round: 1, node: "n1" }, time: 5 } };
    const first = encodeLogValue(value);
    expect(encodeLogValue(value)).toBe(first);
    expect(decoded(first.bytes)).toEqual({ b: [[1, 2, 2, { x: true }]], st: [[1, "n1"], 5] });
    // An equal value made anew is encoded anew, to the same bytes.
    const again = encodeLogValue({ ...value });
    expect(again).not.toBe(first);
    expect([...again.bytes]).toEqual([...first.bytes]);
  });
});
