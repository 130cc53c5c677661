import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { type DiscoveryMessage, decodeMessage, encodeMessage } from "../../src/discovery/messages.ts";
import type { PeerRecord } from "../../src/discovery/peers.ts";
import { cborBytes } from "../../src/discovery/size.ts";
import { decodeCbor, encodeCbor } from "../../src/wire/cbor.ts";
import { entry, entryArb, identity, nowMs } from "./support.ts";

const recordArb: fc.Arbitrary<PeerRecord> = fc.record({
  identity: fc.integer({ min: 0, max: 500 }).map((n) => identity(n)),
  address: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 65_535 })).map(([b, port]) => `10.0.${b}.7:${port}`),
  generation: fc.integer({ min: 1, max: 2 ** 45 }),
  heartbeat: fc.integer({ min: 0, max: 1_000 }),
  status: fc.constantFrom("alive" as const, "suspected" as const, "dead" as const),
});

const bytesArb = (length: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: length, maxLength: length });

const gossipArb: fc.Arbitrary<DiscoveryMessage> = fc
  .record(
    {
      session: fc.integer({ min: 0, max: 0xffff_ffff }),
      step: fc.integer({ min: 0, max: 12 }),
      from: recordArb,
      rumors: fc.array(recordArb, { maxLength: 5 }),
      peersDigest: bytesArb(8),
      root: bytesArb(8),
      tree: fc.integer({ min: 1, max: 4 }).chain((parents) => fc.record({ depth: fc.constant(8), parents: fc.array(fc.integer({ min: 0, max: 15 }), { minLength: parents, maxLength: parents }), hashes: bytesArb(parents * 64) })),
      want: fc.array(fc.integer({ min: 0, max: 0xffff_ffff }), { maxLength: 5 }),
      entries: fc.array(entryArb, { maxLength: 4 }),
    },
    { requiredKeys: ["session", "step"] },
  )
  .map((fields) => ({ kind: "gossip" as const, ...fields }));

const lookupAnswerArb: fc.Arbitrary<DiscoveryMessage> = fc.record({
  kind: fc.constant("lookupAnswer" as const),
  id: fc.integer({ min: 0, max: 0xffff_ffff }),
  answers: fc.array(
    fc.oneof(
      entryArb.map((e) => ({ cell: e.cell, status: "found" as const, entry: e })),
      fc.option(entryArb, { nil: null }).map((e) => ({ cell: "vol-1", status: "hosted" as const, entry: e })),
      fc.tuple(entryArb, fc.option(entryArb, { nil: null })).map(([p, e]) => ({ cell: "vol-1", status: "moved" as const, pointer: p, leftMs: nowMs, entry: e })),
      fc.constant({ cell: "vol-2", status: "noSuchCell" as const }),
    ),
    { maxLength: 4 },
  ),
  peers: fc.array(recordArb.map((r) => ({ identity: r.identity, address: r.address, status: r.status })), { maxLength: 4 }),
});

const messageArb = fc.oneof(gossipArb, lookupAnswerArb, fc.array(fc.constantFrom("vol-1", "é", "x".repeat(256)), { maxLength: 8 }).map((cells) => ({ kind: "lookup" as const, id: 3, cells })));

describe("discovery messages on the wire", () => {
  test("survive the project's CBOR unchanged, and their computed size is their encoded size", () => {
    fc.assert(
      fc.property(messageArb, (message) => {
        const wire = encodeMessage(message);
        const bytes = encodeCbor(wire);
        expect(cborBytes(wire)).toBe(bytes.length);
        const cbor = decodeCbor(bytes);
        expect(cbor.ok).toBe(true);
        const decoded = decodeMessage(cbor.ok ? cbor.value : null);
        expect(decoded).toEqual({ ok: true, message });
      }),
      { numRuns: 500 },
    );
  });

  test("decoding never throws on arbitrary values and mutated messages", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        expect(() => decodeMessage(value)).not.toThrow();
      }),
      { numRuns: 1_000 },
    );
    fc.assert(
      fc.property(messageArb, fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 255 }), (message, at, value) => {
        const bytes = encodeCbor(encodeMessage(message));
        bytes[at % bytes.length] = value;
        const cbor = decodeCbor(bytes);
        if (cbor.ok) expect(() => decodeMessage(cbor.value)).not.toThrow();
      }),
      { numRuns: 1_000 },
    );
  });

  test("a malformed message comes back as a typed rejection naming what is wrong", () => {
    const good = encodeMessage({ kind: "gossip", session: 1, step: 0, entries: [entry()] });
    const goodEntry = (good.e as unknown[][])[0] as unknown[];
    const otherCell = (encodeMessage({ kind: "gossip", session: 0, step: 0, entries: [entry({ cell: "vol-2" })] }).e as unknown[][])[0];
    const cases: Array<[unknown, string, string]> = [
      [null, "badSchema", "not a map"],
      [{ k: "z" }, "unknownKind", "unknown message kind"],
      [{ ...good, s: -1 }, "badSchema", "session"],
      [{ ...good, t: 13 }, "overLimit", "step"],
      [{ ...good, e: [["vol-1"]] }, "badSchema", "entry"],
      [{ ...good, e: [[...goodEntry.slice(0, 7), []]] }, "badSchema", "no members"],
      [{ ...good, e: [[...goodEntry.slice(0, 7), [identity(1), identity(1)]]] }, "badSchema", "listed twice"],
      [{ ...good, e: [["", ...goodEntry.slice(1)]] }, "badSchema", "cell name"],
      [{ ...good, e: [[goodEntry[0], "ABC", ...goodEntry.slice(2)]] }, "badSchema", "incarnation"],
      [{ ...good, rt: new Uint8Array(7) }, "badSchema", "root"],
      [{ ...good, tr: [8, [1], new Uint8Array(12)] }, "badSchema", "power-of-two"],
      [{ ...good, f: [identity(1), "nowhere", 1, 0, "a"] }, "badSchema", "address"],
      [{ ...good, f: ["n1", "10.0.0.1:7101", 5, 0, "a"] }, "badSchema", "identity"],
      [{ ...good, r: Array.from({ length: 49 }, () => [identity(1), "10.0.0.1:7101", 1, 0, "a"]) }, "overLimit", "rumors"],
      [{ k: "l", i: 1, c: Array.from({ length: 65 }, () => "vol-1") }, "overLimit", "cells"],
      [{ k: "a", i: 1, a: [["vol-1", "f", otherCell]], p: [] }, "badSchema", "another cell"],
    ];
    for (const [value, reason, detail] of cases) {
      const decoded = decodeMessage(value);
      expect(decoded.ok).toBe(false);
      if (!decoded.ok) {
        expect(decoded.reason).toBe(reason as typeof decoded.reason);
        expect(decoded.detail).toContain(detail);
      }
    }
  });

  test("64-bit integers that a CBOR decoder hands over as bigint are accepted, larger ones refused", () => {
    const wire = encodeMessage({ kind: "gossip", session: 1, step: 0, entries: [entry()] });
    const tuple = [...(wire.e as unknown[][])[0]!];
    tuple[6] = BigInt(nowMs);
    expect(decodeMessage({ ...wire, e: [tuple] }).ok).toBe(true);
    tuple[6] = 2n ** 60n;
    expect(decodeMessage({ ...wire, e: [tuple] }).ok).toBe(false);
  });
});
