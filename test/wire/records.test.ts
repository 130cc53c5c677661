import { describe, expect, test } from "bun:test";
import type { DurableRecord } from "../../src/core/effects.ts";
import { decodeRecord, encodeRecord, encodeRecordNamed, encodeRecordsNamed } from "../../src/wire/records.ts";
import { acceptRecord, snapshotRecord } from "../storage/support.ts";

const ballot = { round: 3, node: "n2~0123456789abcdef" };
const records: DurableRecord[] = [
  { kind: "genesis", genesis: { members: ["n1~0123456789abcdef", "n2~0123456789abcdef"], incarnation: "0123456789abcdef", alpha: 3, sessionTtlMs: 60_000, sessionsMax: 128 } },
  { kind: "joined", incarnation: "0123456789abcdef" },
  { kind: "promise", ballot },
  acceptRecord("x", 7).record,
  { kind: "chosen", slot: 9, value: { kind: "noop" } },
  snapshotRecord("x", 12, 300).record,
  snapshotRecord("x", 13, 70_000).record,
];
// Names whose CBOR heads take one, two and three bytes, and one that is not ASCII.
const names = ["", "a", "x".repeat(23), "x".repeat(24), "v".repeat(255), "w".repeat(256), "volume/é-ü-🙂"];

describe("records encoded without their cell's name", () => {
  test("take a name to become exactly the record encoded under it, for every kind", () => {
    for (const record of records) {
      const unnamed = encodeRecord({ cell: "", record });
      for (const cell of names) {
        const named = encodeRecordNamed(cell, unnamed);
        expect(named).toEqual(encodeRecord({ cell, record }));
        const decoded = decodeRecord(named);
        expect(decoded.ok && decoded.entry.cell).toBe(cell);
      }
    }
    for (const cell of names) {
      expect(encodeRecordsNamed(cell, records.map((record) => encodeRecord({ cell: "", record })))).toEqual(records.map((record) => encodeRecord({ cell, record })));
    }
  });

  test("refuse bytes that are not a record without a name", () => {
    expect(() => encodeRecordNamed("c", encodeRecord({ cell: "named", record: { kind: "promise", ballot } }))).toThrow();
    expect(() => encodeRecordNamed("c", new Uint8Array([0xa1, 0x60]))).toThrow();
  });
});
