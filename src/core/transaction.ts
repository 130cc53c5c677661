// A transaction names all its keys up front: what it reads, the conditions it needs, the
// writes it makes, and optionally one page of a scan. It is the only way to touch a cell:
// get, batch get, put, delete, batch write, conditional write, increment, scan and the
// compound read-and-conditional-write are all transactions.

import { limits } from "../limits.ts";
import {
  type Value,
  compareKeys,
  integerInRange,
  isValue,
  isWellFormed,
  utf8Bytes,
  valueBytes,
} from "./value.ts";

export type Condition =
  | { readonly key: string; readonly test: "exists" }
  | { readonly key: string; readonly test: "notExists" }
  | { readonly key: string; readonly test: "equals"; readonly value: Value }
  | { readonly key: string; readonly test: "notEquals"; readonly value: Value }
  | { readonly key: string; readonly test: IntegerTest; readonly value: bigint };

export type IntegerTest = "lt" | "le" | "gt" | "ge";

export type Write =
  | { readonly key: string; readonly op: "put"; readonly value: Value }
  | { readonly key: string; readonly op: "delete" }
  | { readonly key: string; readonly op: "increment"; readonly by: bigint };

/** Keys in [start, end) in key order; `start` "" is the first key, no `end` is the last. */
export interface ScanRange {
  readonly start: string;
  readonly end?: string;
  readonly limit: number;
}

export interface Transaction {
  readonly reads: readonly string[];
  readonly conditions: readonly Condition[];
  readonly writes: readonly Write[];
  readonly scan?: ScanRange;
}

export type RejectReason =
  | "malformed"
  | "keyInvalid"
  | "keyTooLarge"
  | "valueTooLarge"
  | "tooManyKeys"
  | "transactionTooLarge"
  | "duplicateWrite"
  | "scanLimitInvalid"
  | "wrongType"
  | "cellFull"
  | "configInvalid"
  | "staleRequest"
  /** The command's session is unknown: it expired, or never existed. The command was not applied now, and never will be. */
  | "sessionExpired"
  /** openSession found the cell's session table full of live sessions. */
  | "sessionsFull"
  /** A command past its session's window (`limits.sessionPendingMax` from the lowest seq its client waits for); not settled. */
  | "tooManyPending"
  /** A lease operation with a bad name, holder or lifetime. */
  | "leaseInvalid"
  /** `limits.leasesPerCellMax` leases are held; another cannot be taken until one is freed or expires. */
  | "leasesFull";

/** Every rejection reason, in the order of their codes in snapshots and frames (append only). */
export const rejectReasons: readonly RejectReason[] = [
  "malformed", "keyInvalid", "keyTooLarge", "valueTooLarge", "tooManyKeys", "transactionTooLarge",
  "duplicateWrite", "scanLimitInvalid", "wrongType", "cellFull", "configInvalid", "staleRequest",
  "sessionExpired", "sessionsFull", "tooManyPending", "leaseInvalid", "leasesFull",
];

export interface Rejection {
  readonly status: "rejected";
  readonly reason: RejectReason;
  readonly detail: string;
}

export function reject(reason: RejectReason, detail: string): Rejection {
  return { status: "rejected", reason, detail };
}

const integerTests: ReadonlySet<string> = new Set(["lt", "le", "gt", "ge"]);

/**
 * Checks that `input` is a well-formed transaction within every stateless limit. It accepts
 * anything at all, so a transaction that came off the wire, or a bug, can never reach apply
 * in a shape apply does not expect. The result is a fresh, frozen-shape copy.
 */
export function checkTransaction(input: unknown): Transaction | Rejection {
  if (!isRecord(input)) return reject("malformed", "transaction is not an object");
  const { reads, conditions, writes, scan } = input;
  if (!Array.isArray(reads)) return reject("malformed", "reads is not a list");
  if (!Array.isArray(conditions)) return reject("malformed", "conditions is not a list");
  if (!Array.isArray(writes)) return reject("malformed", "writes is not a list");
  // Bound the work before looking at the elements.
  if (reads.length + conditions.length + writes.length > 3 * limits.keysPerTransactionMax) {
    return reject("tooManyKeys", `more than ${limits.keysPerTransactionMax} keys`);
  }

  const keys = new Set<string>();
  let bytes = 0;
  const useKey = (key: unknown, where: string): Rejection | string => {
    if (typeof key !== "string") return reject("malformed", `${where}: key is not a string`);
    const problem = checkKey(key);
    if (problem !== null) return reject(problem.reason, `${where}: ${problem.detail}`);
    if (!keys.has(key)) {
      keys.add(key);
      bytes += utf8Bytes(key);
    }
    return key;
  };
  const useValue = (value: unknown, where: string): Rejection | Value => {
    if (!isValue(value)) return reject("malformed", `${where}: value is not bytes, an integer or a boolean`);
    if (typeof value === "bigint" && !integerInRange(value)) {
      return reject("valueTooLarge", `${where}: integer exceeds ${limits.integerBitsMax} bits`);
    }
    const size = valueBytes(value);
    if (size > limits.valueBytesMax) {
      return reject("valueTooLarge", `${where}: value of ${size} bytes exceeds ${limits.valueBytesMax}`);
    }
    bytes += size;
    return value;
  };

  const outReads: string[] = [];
  for (let i = 0; i < reads.length; i++) {
    const key = useKey(reads[i], `reads[${i}]`);
    if (typeof key !== "string") return key;
    outReads.push(key);
  }

  const outConditions: Condition[] = [];
  for (let i = 0; i < conditions.length; i++) {
    const where = `conditions[${i}]`;
    const condition: unknown = conditions[i];
    if (!isRecord(condition)) return reject("malformed", `${where} is not an object`);
    const key = useKey(condition.key, where);
    if (typeof key !== "string") return key;
    const test = condition.test;
    if (test === "exists" || test === "notExists") {
      outConditions.push({ key, test });
    } else if (test === "equals" || test === "notEquals") {
      const value = useValue(condition.value, where);
      if (!isValue(value)) return value;
      outConditions.push({ key, test, value });
    } else if (typeof test === "string" && integerTests.has(test)) {
      const value = condition.value;
      if (typeof value !== "bigint") return reject("malformed", `${where}: ${test} needs an integer`);
      const checked = useValue(value, where);
      if (typeof checked !== "bigint") return checked as Rejection;
      outConditions.push({ key, test: test as IntegerTest, value: checked });
    } else {
      return reject("malformed", `${where}: unknown test ${JSON.stringify(String(test))}`);
    }
  }

  const outWrites: Write[] = [];
  const written = new Set<string>();
  for (let i = 0; i < writes.length; i++) {
    const where = `writes[${i}]`;
    const write: unknown = writes[i];
    if (!isRecord(write)) return reject("malformed", `${where} is not an object`);
    const key = useKey(write.key, where);
    if (typeof key !== "string") return key;
    if (written.has(key)) return reject("duplicateWrite", `${where}: key ${JSON.stringify(key)} is written twice`);
    written.add(key);
    if (write.op === "put") {
      const value = useValue(write.value, where);
      if (!isValue(value)) return value;
      outWrites.push({ key, op: "put", value });
    } else if (write.op === "delete") {
      outWrites.push({ key, op: "delete" });
    } else if (write.op === "increment") {
      const by = write.by;
      if (typeof by !== "bigint") return reject("malformed", `${where}: increment needs an integer`);
      const checked = useValue(by, where);
      if (typeof checked !== "bigint") return checked as Rejection;
      outWrites.push({ key, op: "increment", by: checked });
    } else {
      return reject("malformed", `${where}: unknown op ${JSON.stringify(String(write.op))}`);
    }
  }

  if (keys.size > limits.keysPerTransactionMax) {
    return reject("tooManyKeys", `${keys.size} keys exceed ${limits.keysPerTransactionMax}`);
  }

  let outScan: ScanRange | undefined;
  if (scan !== undefined) {
    if (!isRecord(scan)) return reject("malformed", "scan is not an object");
    const { start, end, limit } = scan;
    if (typeof start !== "string") return reject("malformed", "scan.start is not a string");
    if (start !== "") {
      const problem = checkKey(start);
      if (problem !== null) return reject(problem.reason, `scan.start: ${problem.detail}`);
    }
    if (end !== undefined) {
      if (typeof end !== "string") return reject("malformed", "scan.end is not a string");
      const problem = checkKey(end);
      if (problem !== null) return reject(problem.reason, `scan.end: ${problem.detail}`);
    }
    if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > limits.scanPageKeysMax) {
      return reject("scanLimitInvalid", `scan.limit must be an integer from 1 to ${limits.scanPageKeysMax}`);
    }
    outScan = end === undefined ? { start, limit } : { start, end, limit };
    bytes += utf8Bytes(start) + (end === undefined ? 0 : utf8Bytes(end));
  }

  if (bytes > limits.transactionBytesMax) {
    return reject("transactionTooLarge", `${bytes} bytes exceed ${limits.transactionBytesMax}`);
  }
  const tx: Transaction = { reads: outReads, conditions: outConditions, writes: outWrites };
  return outScan === undefined ? tx : { ...tx, scan: outScan };
}

export function isRejection(value: unknown): value is Rejection {
  return isRecord(value) && value.status === "rejected";
}

interface KeyProblem {
  readonly reason: "keyInvalid" | "keyTooLarge";
  readonly detail: string;
}

export function checkKey(key: string): KeyProblem | null {
  if (key.length === 0) return { reason: "keyInvalid", detail: "key is empty" };
  if (key.length > limits.keyBytesMax) {
    return { reason: "keyTooLarge", detail: `key exceeds ${limits.keyBytesMax} bytes` };
  }
  if (!isWellFormed(key)) return { reason: "keyInvalid", detail: "key is not well-formed Unicode" };
  const bytes = utf8Bytes(key);
  if (bytes > limits.keyBytesMax) {
    return { reason: "keyTooLarge", detail: `key of ${bytes} bytes exceeds ${limits.keyBytesMax}` };
  }
  return null;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/** Keys the transaction touches, sorted: used by the checker to split histories. */
export function transactionKeys(tx: Transaction): string[] {
  const keys = new Set<string>(tx.reads);
  for (const c of tx.conditions) keys.add(c.key);
  for (const w of tx.writes) keys.add(w.key);
  return [...keys].sort(compareKeys);
}
