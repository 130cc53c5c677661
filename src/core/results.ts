// Canonical binary encoding of command results, for the session table inside a cell's
// state (which must encode identically on every replica).

import { limits } from "../limits.ts";
import type { ByteReader, ByteWriter } from "./bytes.ts";
import { decodeUtf8 } from "./bytes.ts";
import type { CommandResult } from "./messages.ts";
import { readValue, writeValue } from "./snapshot.ts";
import { rejectReasons } from "./transaction.ts";
import { type Value, utf8 } from "./value.ts";

function writeText(out: ByteWriter, text: string): void {
  out.bytes16(utf8(text));
}

function readText(input: ByteReader, what: string): string {
  const text = decodeUtf8(input.bytes16(4096, what));
  if (text === null) input.fail(`${what} is not UTF-8`);
  return text ?? "";
}

function writeOptional(out: ByteWriter, value: Value | null): void {
  if (value === null) out.u8(0);
  else {
    out.u8(1);
    writeValue(out, value);
  }
}

function readOptional(input: ByteReader): Value | null {
  return input.u8("presence") === 0 ? null : readValue(input);
}

export function writeResult(out: ByteWriter, result: CommandResult): void {
  if (result.status === "rejected") {
    out.u8(0).u8(rejectReasons.indexOf(result.reason));
    writeText(out, result.detail);
    return;
  }
  if (result.status === "configured") {
    out.u8(1).u8(result.members.length);
    for (const member of result.members) writeText(out, member);
    out.u64(result.effectiveSlot);
    return;
  }
  if (result.status === "session") {
    out.u8(4).u64(result.session).u32(result.ttlMs);
    return;
  }
  if (result.status === "closed") {
    out.u8(5);
    return;
  }
  if (result.status === "lease") {
    writeText(out.u8(6), result.name);
    out.u8(result.granted ? 1 : 0);
    if (result.holder === null) out.u8(0);
    else writeText(out.u8(1), result.holder);
    out.u64(result.remainingMs);
    return;
  }
  out.u8(result.status === "committed" ? 2 : 3);
  out.u16(result.reads.length);
  for (const value of result.reads) writeOptional(out, value);
  if (result.scan === undefined) out.u8(0);
  else {
    out.u8(1).u16(result.scan.entries.length);
    for (const [key, value] of result.scan.entries) {
      writeText(out, key);
      writeValue(out, value);
    }
    if (result.scan.next === null) out.u8(0);
    else writeText(out.u8(1), result.scan.next);
  }
  if (result.status === "committed") {
    out.u16(result.increments.length);
    for (const [key, value] of result.increments) {
      writeText(out, key);
      writeValue(out, value);
    }
  } else {
    out.u16(result.condition);
    writeText(out, result.key);
    writeOptional(out, result.actual);
  }
}

export function readResult(input: ByteReader): CommandResult | null {
  const tag = input.u8("result tag");
  if (tag === 0) {
    const reason = rejectReasons[input.u8("reason")];
    const detail = readText(input, "detail");
    if (reason === undefined) input.fail("unknown rejection reason");
    return reason === undefined ? null : { status: "rejected", reason, detail };
  }
  if (tag === 1) {
    const count = input.u8("member count");
    if (count > limits.cellMembersMax) input.fail("too many members");
    const members: string[] = [];
    for (let i = 0; i < count && input.error === null; i++) members.push(readText(input, "member"));
    return { status: "configured", members, effectiveSlot: input.u64("effective slot") };
  }
  if (tag === 4) return { status: "session", session: input.u64("session"), ttlMs: input.u32("session lifetime") };
  if (tag === 5) return { status: "closed" };
  if (tag === 6) {
    const name = readText(input, "lease name");
    const granted = input.u8("granted") === 1;
    const holder = input.u8("holder presence") === 1 ? readText(input, "lease holder") : null;
    return { status: "lease", name, granted, holder, remainingMs: input.u64("remaining") };
  }
  if (tag !== 2 && tag !== 3) {
    input.fail(`unknown result tag ${tag}`);
    return null;
  }
  const reads: (Value | null)[] = [];
  const readCount = input.u16("read count");
  for (let i = 0; i < readCount && input.error === null; i++) reads.push(readOptional(input));
  let scan: { entries: [string, Value][]; next: string | null } | undefined;
  if (input.u8("scan presence") === 1) {
    const entries: [string, Value][] = [];
    const count = input.u16("scan count");
    for (let i = 0; i < count && input.error === null; i++) {
      const key = readText(input, "scan key");
      const value = readValue(input);
      if (value !== null) entries.push([key, value]);
    }
    const next = input.u8("next presence") === 1 ? readText(input, "next") : null;
    scan = { entries, next };
  }
  const withScan = <T extends object>(r: T) => (scan === undefined ? r : { ...r, scan });
  if (tag === 2) {
    const increments: [string, bigint][] = [];
    const count = input.u16("increment count");
    for (let i = 0; i < count && input.error === null; i++) {
      const key = readText(input, "increment key");
      const value = readValue(input);
      if (typeof value !== "bigint") input.fail("increment is not an integer");
      else increments.push([key, value]);
    }
    return withScan({ status: "committed" as const, reads, increments });
  }
  const condition = input.u16("condition");
  const key = readText(input, "condition key");
  const actual = readOptional(input);
  return withScan({ status: "conditionFailed" as const, reads, condition, key, actual });
}
