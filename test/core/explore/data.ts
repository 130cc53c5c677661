// Copying and printing the explorer's states. A state holds live objects (replicas, cell
// states, the checker's history), so exploring a transition means copying the whole state
// first; dedup needs a canonical text of it.

import { CellState } from "../../../src/core/cellstate.ts";

/**
 * A deep copy of plain data, Maps, Sets, byte arrays and class instances (by prototype and
 * own fields), preserving sharing and cycles. Frozen objects (messages, and the values the
 * replicas keep from them) and those for which `shared` says true (the replicas'
 * environments) are not copied.
 */
export function cloneDeep<T>(value: T, shared: (value: object) => boolean, seen = new Map<unknown, unknown>()): T {
  if (typeof value !== "object" || value === null) return value;
  if (shared(value) || Object.isFrozen(value)) return value;
  const known = seen.get(value);
  if (known !== undefined) return known as T;
  if (value instanceof Uint8Array) {
    const copy = value.slice();
    seen.set(value, copy);
    return copy as T;
  }
  if (value instanceof Map) {
    const copy = new Map();
    seen.set(value, copy);
    for (const [k, v] of value) copy.set(cloneDeep(k, shared, seen), cloneDeep(v, shared, seen));
    return copy as T;
  }
  if (value instanceof Set) {
    const copy = new Set();
    seen.set(value, copy);
    for (const v of value) copy.add(cloneDeep(v, shared, seen));
    return copy as T;
  }
  const copy = Array.isArray(value) ? [] : Object.create(Object.getPrototypeOf(value));
  seen.set(value, copy);
  for (const key of Object.keys(value)) copy[key] = cloneDeep((value as Record<string, unknown>)[key], shared, seen);
  return copy as T;
}

/**
 * A canonical text of any state the explorer holds: Maps as their entries in order (order
 * matters in the replica: the session table is in order of use), Sets sorted, bytes in hex,
 * bigints tagged, and a cell state as its canonical encoding (so a lazily built cache
 * inside it does not split one state in two). Bytes are printed as a hash of them: the text
 * identifies a state, it is not read back.
 */
export function printData(value: unknown): string {
  const replacer = (_key: string, v: unknown): unknown => {
    // A frozen object never changes: its text is computed once and stands for it as a hash.
    if (v !== value && typeof v === "object" && v !== null && Object.isFrozen(v)) return printFrozen(v);
    return plain(v);
  };
  return JSON.stringify(value, replacer) ?? "undefined";
}

const printedFrozen = new WeakMap<object, string>();

function printFrozen(v: object): string {
  let text = printedFrozen.get(v);
  if (text === undefined) printedFrozen.set(v, (text = `#${hashText(printData(v))}`));
  return text;
}

/**
 * Freezes a message and everything it holds (byte arrays excepted: they cannot be frozen, and
 * nothing writes into them). Messages are shared between states, so a replica that changed
 * one would change every state holding it; frozen, such a write throws instead.
 */
export function deepFreeze(value: unknown): void {
  if (typeof value !== "object" || value === null || value instanceof Uint8Array || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
}

function plain(v: unknown): unknown {
  if (typeof v === "bigint") return `${v}n`;
  if (v instanceof Uint8Array) return hashBytes(v);
  if (v instanceof CellState) return hashBytes(v.encode());
  if (v instanceof Map) return [...v.entries()];
  if (v instanceof Set) return [...v].map((x) => printData(x)).sort();
  if (v === Infinity) return "Infinity";
  if (v === -Infinity) return "-Infinity";
  return v;
}

/**
 * Two independent 53-bit hashes (cyrb53, with two seeds, in one pass) of a text or of bytes,
 * as one key: dedup keeps these, not the states. At a million states, the chance that two
 * distinct states share a key is about 1e-20.
 */
function hash106(length: number, text: string | null, bytes: Uint8Array | null): string {
  let a1 = 0xdeadbeef ^ 1;
  let a2 = 0x41c6ce57 ^ 1;
  let b1 = 0xdeadbeef ^ 2;
  let b2 = 0x41c6ce57 ^ 2;
  for (let i = 0; i < length; i++) {
    const c = text !== null ? text.charCodeAt(i) : (bytes as Uint8Array)[i] as number;
    a1 = Math.imul(a1 ^ c, 2654435761);
    a2 = Math.imul(a2 ^ c, 1597334677);
    b1 = Math.imul(b1 ^ c, 2654435761);
    b2 = Math.imul(b2 ^ c, 1597334677);
  }
  const finish = (h1: number, h2: number): number => {
    const x1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    const x2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(x1 ^ (x1 >>> 13), 3266489909);
    return 4294967296 * (2097151 & x2) + (x1 >>> 0);
  };
  return `${finish(a1, a2).toString(36)}.${finish(b1, b2).toString(36)}`;
}

export function hashText(text: string): string {
  return hash106(text.length, text, null);
}

export function hashBytes(bytes: Uint8Array): string {
  return `${bytes.length}:${hash106(bytes.length, null, bytes)}`;
}
