// The encoding of a replica's durable records for the node's log file. CBOR, as on the
// wire, with the same field validators: a record that comes back from disk is checked as
// strictly as a frame from the network (its checksum was checked by the storage layer).

import { assert } from "../core/assert.ts";
import type { CellRecord, DurableRecord } from "../core/effects.ts";
import { limits } from "../limits.ts";
import { decodeCbor, encodeCbor } from "./cbor.ts";
import { genesisProblem } from "../core/cellstate.ts";
import { SchemaError, bad, decodeBallot, decodeGenesis, decodeLogValue, encodeBallot, encodeGenesis, encodeLogValue, list, nat, str } from "./schema.ts";

export function encodeRecord(entry: CellRecord): Uint8Array {
  const { cell, record } = entry;
  switch (record.kind) {
    case "genesis":
      return encodeCbor([cell, "g", encodeGenesis(record.genesis)]);
    case "joined":
      return encodeCbor([cell, "j", record.incarnation]);
    case "promise":
      return encodeCbor([cell, "p", encodeBallot(record.ballot)]);
    case "accept":
      return encodeCbor([cell, "a", record.slot, encodeBallot(record.ballot), encodeLogValue(record.value)]);
    case "chosen":
      return encodeCbor([cell, "c", record.slot, encodeLogValue(record.value)]);
    case "snapshot":
      return encodeCbor([cell, "s", record.slot, record.state]);
  }
}

/** A cell's record already encoded by `encodeRecord`: what a compaction may be handed instead of the record. */
export interface EncodedCellRecord {
  readonly cell: string;
  readonly encoded: Uint8Array;
}

/**
 * `encodeRecord({ cell, record })`, made from `encodeRecord({ cell: "", record })` without
 * decoding the record: a record is an array whose first item is its cell's name, so the name
 * goes in after the array's head. The node keeps its idle cells' records encoded so
 * (node/dormant.ts), and a compaction copies a million of them.
 */
export function encodeRecordNamed(cell: string, unnamed: Uint8Array): Uint8Array {
  return withName(encodeCbor(cell), unnamed);
}

/** `encodeRecordNamed` for several records of one cell: the name is encoded once. */
export function encodeRecordsNamed(cell: string, unnamed: readonly Uint8Array[]): Uint8Array[] {
  const name = encodeCbor(cell);
  return unnamed.map((record) => withName(name, record));
}

function withName(name: Uint8Array, unnamed: Uint8Array): Uint8Array {
  const head = unnamed[0] as number;
  // An array of at most 23 items (the head is one byte), then the empty text string.
  assert(head >= 0x80 && head <= 0x97 && unnamed[1] === 0x60, "an unnamed record is an array that begins with an empty name");
  const out = new Uint8Array(unnamed.length - 1 + name.length);
  out[0] = head;
  out.set(name, 1);
  out.set(unnamed.subarray(2), 1 + name.length);
  return out;
}

export type RecordResult = { readonly ok: true; readonly entry: CellRecord } | { readonly ok: false; readonly detail: string };

export function decodeRecord(bytes: Uint8Array): RecordResult {
  const decoded = decodeCbor(bytes);
  if (!decoded.ok) return { ok: false, detail: decoded.detail };
  try {
    const fields = list(decoded.value, "record", 5);
    const cell = str(fields[0], "record.cell", limits.keyBytesMax);
    const record = ((): DurableRecord => {
      switch (fields[1]) {
        case "g": {
          const genesis = decodeGenesis(fields[2], "record.genesis");
          const problem = genesisProblem(genesis);
          if (problem !== null) bad("record.genesis", problem);
          return { kind: "genesis", genesis };
        }
        case "j": {
          const incarnation = str(fields[2], "record.incarnation", 16);
          if (!/^[0-9a-f]{16}$/.test(incarnation)) bad("record.incarnation", "expected 16 lowercase hex digits");
          return { kind: "joined", incarnation };
        }
        case "p":
          return { kind: "promise", ballot: decodeBallot(fields[2], "record.ballot") };
        case "a":
          return { kind: "accept", slot: nat(fields[2], "record.slot"), ballot: decodeBallot(fields[3], "record.ballot"), value: decodeLogValue(fields[4], "record.value") };
        case "c":
          return { kind: "chosen", slot: nat(fields[2], "record.slot"), value: decodeLogValue(fields[3], "record.value") };
        case "s": {
          const state = fields[3];
          if (!(state instanceof Uint8Array)) bad("record.state", "expected bytes");
          return { kind: "snapshot", slot: nat(fields[2], "record.slot"), state };
        }
        default:
          return bad("record.kind", "unknown record kind");
      }
    })();
    return { ok: true, entry: { cell, record } };
  } catch (error) {
    return { ok: false, detail: error instanceof SchemaError ? error.message : String(error) };
  }
}
