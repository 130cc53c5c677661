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
  type Rejection,
  type IntegerTest,
  type Transaction,
  type Write,
  checkTransaction,
  isRecord,
  isRejection,
} from "../core/transaction.ts";
import { decodeUtf8 } from "../core/bytes.ts";
import { type Value, utf8 } from "../core/value.ts";
import { limits } from "../limits.ts";

export class JsonInputError extends Error {
  override name = "JsonInputError";
}

/** A transaction that is well-formed JSON but breaks a limit of the data model: the cell's own typed answer. */
export class TransactionRejectedError extends JsonInputError {
  override name = "TransactionRejectedError";
  constructor(readonly rejection: Rejection) {
    super(`${rejection.reason}: ${rejection.detail}`);
  }
}

function fail(where: string, problem: string): never {
  throw new JsonInputError(`${where}: ${problem}`);
}

/** At most this many characters of someone's input are quoted back in a message. */
const excerptChars = 40;

/** Input quoted back in a message: cut short, with its length, so a huge argument is never echoed whole. */
export function excerpt(input: unknown): string {
  const text = typeof input === "string" ? input : input instanceof JsonNumber ? input.text : JSON.stringify(input) ?? String(input);
  if (text.length <= excerptChars) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, excerptChars))}... (${text.length} characters)`;
}

/**
 * A JSON number as it was written. JSON.parse would turn 1.0 into 1, 1e3 into 1000 and
 * 9007199254740993 into 9007199254740992, so floats could slip in as integers and a large
 * integer would be refused under another number; the text keeps what the user wrote.
 */
export class JsonNumber {
  constructor(readonly text: string) {}

  /** The integer it names, or null for a float (a fraction or an exponent). */
  integer(): bigint | null {
    return /^-?(0|[1-9][0-9]*)$/.test(this.text) ? BigInt(this.text) : null;
  }
}

export type Json = null | boolean | string | JsonNumber | Json[] | { [key: string]: Json };

/** Deeper than this is no transaction, only a way to exhaust the parser's stack. */
const jsonDepthMax = 32;

/**
 * Parses JSON (RFC 8259) strictly: numbers keep their text (JsonNumber), a key given twice
 * in one object is refused (JSON.parse would silently keep the last), and nesting is
 * bounded. Throws JsonInputError naming `where` and the position.
 */
export function parseJson(text: string, where: string): Json {
  let at = 0;
  const problem = (what: string): never => fail(where, `${what} at position ${at}`);
  const space = () => {
    while (at < text.length && (text[at] === " " || text[at] === "\t" || text[at] === "\n" || text[at] === "\r")) at++;
  };
  const literal = (word: string, value: Json): Json => {
    if (text.startsWith(word, at)) {
      at += word.length;
      return value;
    }
    return problem(`invalid JSON (expected a value: ${excerpt(text.slice(at, at + 12))})`);
  };
  const string = (): string => {
    at++; // The opening quote.
    let out = "";
    for (;;) {
      if (at >= text.length) problem("invalid JSON (unterminated string)");
      const c = text[at] as string;
      if (c === '"') {
        at++;
        return out;
      }
      if (c < " ") problem("invalid JSON (a control character in a string)");
      if (c !== "\\") {
        out += c;
        at++;
        continue;
      }
      const e = text[at + 1];
      const simple: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
      if (e !== undefined && Object.hasOwn(simple, e)) {
        out += simple[e];
        at += 2;
      } else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(at + 2, at + 6))) {
        out += String.fromCharCode(Number.parseInt(text.slice(at + 2, at + 6), 16));
        at += 6;
      } else problem("invalid JSON (a bad escape in a string)");
    }
  };
  const number = (): JsonNumber => {
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(at, at + 100_000 + 1));
    if (match === null || match[0] === "" || match[0] === "-") return problem("invalid JSON (a bad number)");
    at += match[0].length;
    return new JsonNumber(match[0]);
  };
  const value = (depth: number): Json => {
    if (depth > jsonDepthMax) problem(`invalid JSON (nested deeper than ${jsonDepthMax})`);
    space();
    const c = text[at];
    if (c === "{") {
      at++;
      const out: Record<string, Json> = {};
      space();
      if (text[at] === "}") {
        at++;
        return out;
      }
      for (;;) {
        space();
        if (text[at] !== '"') problem("invalid JSON (expected a key in quotes)");
        const keyAt = at;
        const key = string();
        if (Object.hasOwn(out, key)) {
          at = keyAt;
          problem(`duplicate key ${excerpt(key)}`);
        }
        space();
        if (text[at] !== ":") problem("invalid JSON (expected :)");
        at++;
        // A plain object with a "__proto__" key would set its prototype; defineProperty does not.
        Object.defineProperty(out, key, { value: value(depth + 1), enumerable: true, writable: true, configurable: true });
        space();
        if (text[at] === ",") {
          at++;
          continue;
        }
        if (text[at] === "}") {
          at++;
          return out;
        }
        problem("invalid JSON (expected , or })");
      }
    }
    if (c === "[") {
      at++;
      const out: Json[] = [];
      space();
      if (text[at] === "]") {
        at++;
        return out;
      }
      for (;;) {
        out.push(value(depth + 1));
        space();
        if (text[at] === ",") {
          at++;
          continue;
        }
        if (text[at] === "]") {
          at++;
          return out;
        }
        problem("invalid JSON (expected , or ])");
      }
    }
    if (c === '"') return string();
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return number();
    if (c === "t") return literal("true", true);
    if (c === "f") return literal("false", false);
    if (c === "n") return literal("null", null);
    return problem(c === undefined ? "invalid JSON (it ends early)" : `invalid JSON (unexpected ${excerpt(c)})`);
  };
  const out = value(0);
  space();
  if (at < text.length) problem("invalid JSON (more after the value)");
  return out;
}

/**
 * Whether a command-line word is meant as JSON: it starts like a JSON value or a number (a
 * brace, a bracket, a quote, or a digit after an optional sign and point), or is a word JSON
 * or another language uses for a literal (true, false, null, NaN, Infinity, in any case).
 * Anything else (`server-17`, `--help`, `hello world`) cannot be mistaken for JSON and is
 * taken as a string.
 */
export function looksLikeJson(text: string): boolean {
  const trimmed = text.trim();
  return /^([{["']|[+-]?\.?[0-9])/.test(trimmed) || /^[+-]?(true|false|null|nan|inf|infinity|none|undefined)$/i.test(trimmed);
}

/**
 * A VALUE from the command line: JSON when it looks like JSON (and then it must be valid),
 * else the text itself as a string, so that `server-17` needs no quotes but `{"int":"5"` is
 * a typo to report, never a string to store.
 */
export function valueFromText(text: string, where: string): Value {
  if (!looksLikeJson(text)) return utf8(text);
  return valueFromJson(parseJson(text, where), where);
}

function safeIntegerOf(input: JsonNumber | number, where: string): bigint {
  const integer = input instanceof JsonNumber ? input.integer() : Number.isInteger(input) ? BigInt(input) : null;
  const text = input instanceof JsonNumber ? input.text : String(input);
  if (integer === null) return fail(where, `${excerpt(text)} is a float, and floats are not supported (every replica must compute the same result)`);
  if (integer > BigInt(Number.MAX_SAFE_INTEGER) || integer < BigInt(Number.MIN_SAFE_INTEGER)) {
    return fail(where, `${excerpt(text)} is past the safe integers (+-${Number.MAX_SAFE_INTEGER}) that JSON tools keep exactly; write it as {"int": "${text.length <= excerptChars ? text : "..."}"}`);
  }
  return integer;
}

export function valueFromJson(input: unknown, where = "value"): Value {
  if (typeof input === "string") return utf8(input);
  if (typeof input === "boolean") return input;
  if (typeof input === "number" || input instanceof JsonNumber) return safeIntegerOf(input, where);
  if (!isRecord(input)) fail(where, "expected a string, integer, boolean or {\"int\"|\"str\"|\"bytes\"|\"bool\": ...}");
  const fields = Object.keys(input);
  if (fields.length !== 1) fail(where, `expected exactly one of int, str, bytes, bool; got ${excerpt(fields.join(", "))}`);
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
      return fail(where, `unknown value type ${excerpt(field)}`);
  }
}

/** Decimal digits enough for any integer the data model takes (256 bits), and a few more to say "too large" with. */
const integerDigitsMax = 400;

/** An integer: a JSON integer in the safe range, or its decimal text (of any size up to the limit). */
export function integerFromJson(input: unknown, where: string): bigint {
  if (typeof input === "number" || input instanceof JsonNumber) return safeIntegerOf(input, where);
  if (typeof input === "string" && /^-?(0|[1-9][0-9]*)$/.test(input)) {
    if (input.length > integerDigitsMax) return fail(where, `an integer of ${input.length} digits is far past the ${limits.integerBitsMax}-bit limit`);
    return BigInt(input);
  }
  return fail(where, `expected a decimal integer, got ${excerpt(input)}`);
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
    fail(where, `expected exactly one of exists, equals, notEquals, lt, le, gt, ge; got ${excerpt(tests.join(", "))}`);
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
  return fail(where, `unknown test ${excerpt(test)}`);
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
    if (!allowed.includes(field)) fail(where, `unknown field ${excerpt(field)}`);
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
    const limitJson = scan.limit ?? 100;
    if (typeof limitJson !== "number" && !(limitJson instanceof JsonNumber)) fail("scan.limit", "expected a number");
    const limitBig = safeIntegerOf(limitJson, "scan.limit");
    // Out-of-range limits are the cell's typed answer (scanLimitInvalid), checked below.
    const limit = limitBig > 1_000_000n || limitBig < -1_000_000n ? 1_000_000 : Number(limitBig);
    if (scan.end !== undefined && typeof scan.end !== "string") fail("scan.end", "expected a key");
    draft = { ...draft, scan: scan.end === undefined ? { start, limit } : { start, end: scan.end as string, limit } };
  }
  const checked = checkTransaction(draft);
  if (isRejection(checked)) throw new TransactionRejectedError(checked);
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
      out.increments = Object.fromEntries(result.increments.map(([key, value]) => [key, valueToJson(value)]));
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
