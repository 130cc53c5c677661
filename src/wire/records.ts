// The encoding of a replica's durable records for the node's log file. CBOR, as on the
// wire, with the same field validators: a record that comes back from disk is checked as
// strictly as a frame from the network (its checksum was checked by the storage layer).

import type { CellRecord, DurableRecord } from "../core/effects.ts";
import { limits } from "../limits.ts";
import { decodeCbor, encodeCbor } from "./cbor.ts";
import { SchemaError, bad, decodeBallot, decodeLogValue, encodeBallot, encodeLogValue, list, nat, str } from "./schema.ts";

export function encodeRecord(entry: CellRecord): Uint8Array {
  const { cell, record } = entry;
  switch (record.kind) {
    case "genesis":
      return encodeCbor([cell, "g", record.members, record.alpha, record.sessionTtlMs]);
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
          const members = list(fields[2], "record.members", limits.cellMembersMax).map((m, i) => str(m, `record.members[${i}]`, limits.nodeIdBytesMax));
          const alpha = nat(fields[3], "record.alpha");
          const sessionTtlMs = nat(fields[4], "record.sessionTtlMs");
          if (members.length === 0 || alpha < 1 || alpha > limits.pipelineDepthMax) bad("record", "invalid genesis");
          if (sessionTtlMs < limits.sessionTtlMsMin || sessionTtlMs > limits.sessionTtlMsMax) bad("record.sessionTtlMs", "out of range");
          return { kind: "genesis", members, alpha, sessionTtlMs };
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
