// The JSON form of values, transactions and results, for the CLI and for people.
//
// Values:       "text" (UTF-8 bytes)   {"str": "text"}   {"bytes": "<base64>"}
//               {"int": "-12345678901234567890"}   42 (a safe integer)   true / false
// Transaction:  {"read": ["k1", ...],
//                "if":    [{"key": "k", "exists": true}, {"key": "k", "equals": V},
//                          {"key": "k", "notEquals": V}, {"key": "k", "ge": 5}, ...],
//                "write": [{"put": "k", "value": V}, {"delete": "k"}, {"increment": "k", "by": 1}],
//                "scan":  {"start": "a", "end": "m", "limit": 10}}
// Floats are refused: every replica must compute the same answer on every machine.

import type { TxResult } from "../core/kv.ts";
import {
  type Condition,
  type IntegerTest,
  type Transaction,
  type Write,
  checkTransaction,
  isRecord,
  isRejection,
} from "../core/transaction.ts";
import { decodeUtf8 } from "../core/bytes.ts";
import { type Value, utf8 } from "../core/value.ts";

export class JsonInputError extends Error {
  override name = "JsonInputError";
}

function fail(where: string, problem: string): never {
  throw new JsonInputError(`${where}: ${problem}`);
}

export function valueFromJson(input: unknown, where = "value"): Value {
  if (typeof input === "string") return utf8(input);
  if (typeof input === "boolean") return input;
  if (typeof input === "number") {
    if (!Number.isSafeInteger(input)) {
      fail(where, `${input} is not a safe integer; floats are not supported, write {"int": "..."} for large integers`);
    }
    return BigInt(input);
  }
  if (!isRecord(input)) fail(where, "expected a string, integer, boolean or {\"int\"|\"str\"|\"bytes\"|\"bool\": ...}");
  const fields = Object.keys(input);
  if (fields.length !== 1) fail(where, `expected exactly one of int, str, bytes, bool; got ${JSON.stringify(fields)}`);
  const [field] = fields as [string];
  const inner = input[field];
  switch (field) {
    case "int":
      return integerFromJson(inner, `${where}.int`);
    case "str":
      if (typeof inner !== "string") fail(`${where}.str`, "expected a string");
      return utf8(inner);
    case "bytes":
      if (typeof inner !== "string") fail(`${where}.bytes`, "expected base64 text");
      return base64Decode(inner, `${where}.bytes`);
    case "bool":
      if (typeof inner !== "boolean") fail(`${where}.bool`, "expected true or false");
      return inner;
    default:
      return fail(where, `unknown value type ${JSON.stringify(field)}`);
  }
}

export function integerFromJson(input: unknown, where: string): bigint {
  if (typeof input === "number") {
    if (!Number.isSafeInteger(input)) fail(where, `${input} is not a safe integer; write it as a string`);
    return BigInt(input);
  }
  if (typeof input === "string" && /^-?(0|[1-9][0-9]{0,400})$/.test(input)) return BigInt(input);
  return fail(where, `expected a decimal integer, got ${JSON.stringify(input)}`);
}

export function valueToJson(value: Value | null): unknown {
  if (value === null) return null;
  if (typeof value === "bigint") return { int: value.toString() };
  if (typeof value === "boolean") return { bool: value };
  const text = decodeUtf8(value);
  return text === null ? { bytes: base64Encode(value) } : { str: text };
}

const integerTests: readonly IntegerTest[] = ["lt", "le", "gt", "ge"];

function conditionFromJson(input: unknown, where: string): Condition {
  if (!isRecord(input)) fail(where, "expected an object");
  const { key, ...rest } = input;
  if (typeof key !== "string") fail(`${where}.key`, "expected a string");
  const tests = Object.keys(rest);
  if (tests.length !== 1) {
    fail(where, `expected exactly one of exists, equals, notEquals, lt, le, gt, ge; got ${JSON.stringify(tests)}`);
  }
  const [test] = tests as [string];
  const operand = rest[test];
  if (test === "exists") {
    if (typeof operand !== "boolean") fail(`${where}.exists`, "expected true or false");
    return { key, test: operand ? "exists" : "notExists" };
  }
  if (test === "equals" || test === "notEquals") return { key, test, value: valueFromJson(operand, `${where}.${test}`) };
  if ((integerTests as readonly string[]).includes(test)) {
    return { key, test: test as IntegerTest, value: integerFromJson(operand, `${where}.${test}`) };
  }
  return fail(where, `unknown test ${JSON.stringify(test)}`);
}

function writeFromJson(input: unknown, where: string): Write {
  if (!isRecord(input)) fail(where, "expected an object");
  if ("put" in input) {
    if (typeof input.put !== "string") fail(`${where}.put`, "expected a key");
    if (!("value" in input)) fail(where, "put needs a value");
    onlyFields(input, ["put", "value"], where);
    return { key: input.put, op: "put", value: valueFromJson(input.value, `${where}.value`) };
  }
  if ("delete" in input) {
    if (typeof input.delete !== "string") fail(`${where}.delete`, "expected a key");
    onlyFields(input, ["delete"], where);
    return { key: input.delete, op: "delete" };
  }
  if ("increment" in input) {
    if (typeof input.increment !== "string") fail(`${where}.increment`, "expected a key");
    onlyFields(input, ["increment", "by"], where);
    const by = "by" in input ? integerFromJson(input.by, `${where}.by`) : 1n;
    return { key: input.increment, op: "increment", by };
  }
  return fail(where, "expected put, delete or increment");
}

function onlyFields(input: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const field of Object.keys(input)) {
    if (!allowed.includes(field)) fail(where, `unknown field ${JSON.stringify(field)}`);
  }
}

function listField(input: Record<string, unknown>, field: string): unknown[] {
  const value = input[field];
  if (value === undefined) return [];
  if (!Array.isArray(value)) fail(field, "expected a list");
  return value;
}

/**
 * Parses the JSON form of a transaction and checks it against every stateless limit, so
 * the CLI can refuse bad input before anything is sent. Throws JsonInputError.
 */
export function transactionFromJson(input: unknown): Transaction {
  if (!isRecord(input)) fail("transaction", "expected an object");
  onlyFields(input, ["read", "if", "write", "scan"], "transaction");
  const reads = listField(input, "read").map((key, i) => {
    if (typeof key !== "string") fail(`read[${i}]`, "expected a key");
    return key;
  });
  const conditions = listField(input, "if").map((c, i) => conditionFromJson(c, `if[${i}]`));
  const writes = listField(input, "write").map((w, i) => writeFromJson(w, `write[${i}]`));
  let draft: Transaction = { reads, conditions, writes };
  if (input.scan !== undefined) {
    const scan = input.scan;
    if (!isRecord(scan)) fail("scan", "expected an object");
    onlyFields(scan, ["start", "end", "limit"], "scan");
    const start = scan.start ?? "";
    if (typeof start !== "string") fail("scan.start", "expected a key");
    const limit = scan.limit ?? 100;
    if (typeof limit !== "number") fail("scan.limit", "expected a number");
    if (scan.end !== undefined && typeof scan.end !== "string") fail("scan.end", "expected a key");
    draft = { ...draft, scan: scan.end === undefined ? { start, limit } : { start, end: scan.end as string, limit } };
  }
  const checked = checkTransaction(draft);
  if (isRejection(checked)) throw new JsonInputError(`${checked.reason}: ${checked.detail}`);
  return checked;
}

export function transactionToJson(tx: Transaction): unknown {
  const out: Record<string, unknown> = {};
  if (tx.reads.length > 0) out.read = [...tx.reads];
  if (tx.conditions.length > 0) {
    out.if = tx.conditions.map((c) => {
      if (c.test === "exists" || c.test === "notExists") return { key: c.key, exists: c.test === "exists" };
      if (c.test === "equals" || c.test === "notEquals") return { key: c.key, [c.test]: valueToJson(c.value) };
      return { key: c.key, [c.test]: c.value.toString() };
    });
  }
  if (tx.writes.length > 0) {
    out.write = tx.writes.map((w) => {
      if (w.op === "put") return { put: w.key, value: valueToJson(w.value) };
      if (w.op === "delete") return { delete: w.key };
      return { increment: w.key, by: w.by.toString() };
    });
  }
  if (tx.scan !== undefined) out.scan = { ...tx.scan };
  return out;
}

export function resultToJson(tx: Transaction, result: TxResult): unknown {
  if (result.status === "rejected") return { status: "rejected", reason: result.reason, detail: result.detail };
  const reads: Record<string, unknown> = {};
  tx.reads.forEach((key, i) => (reads[key] = valueToJson(result.reads[i] ?? null)));
  const out: Record<string, unknown> = { status: result.status };
  if (tx.reads.length > 0) out.reads = reads;
  if (result.scan !== undefined) {
    out.scan = {
      entries: result.scan.entries.map(([key, value]) => [key, valueToJson(value)]),
      next: result.scan.next,
    };
  }
  if (result.status === "committed") {
    if (result.increments.length > 0) {
      out.increments = Object.fromEntries(result.increments.map(([key, value]) => [key, value.toString()]));
    }
  } else {
    out.condition = result.condition;
    out.key = result.key;
    out.actual = valueToJson(result.actual);
  }
  return out;
}

const base64Alphabet = /^[A-Za-z0-9+/]*={0,2}$/;

export function base64Encode(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function base64Decode(text: string, where: string): Uint8Array {
  if (text.length % 4 !== 0 || !base64Alphabet.test(text)) fail(where, "invalid base64");
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
