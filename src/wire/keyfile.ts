// Key files, version 2: one file per holder, with only the rings that holder needs.
//
//   node:    {"version": 2, "kind": "node", "color": "blue", "node": RING, "client": RING, "control": RING}
//   client:  {"version": 2, "kind": "client", "client": RING}
//   control: {"version": 2, "kind": "control", "control": RING}
//   RING:    {"current": 7, "keys": [{"id": 7, "secret": "<64 to 256 hex digits>"}, {"id": 3, "secret": "..."}]}
//
// A node signs and verifies peer frames with its color's node ring, and verifies requests
// and signs replies with the client and control rings. A client file lets its holder send
// data requests; a control file, cell creation and membership changes as well. A ring has
// one or two keys: the current one, and the previous one while a rotation rolls out.

import { isRecord } from "../core/transaction.ts";
import { limits } from "../limits.ts";
import { isPlainId } from "./ids.ts";
import { KeyFileError, KeyRing, KeySet, type Role, type Secret, isKeyId } from "./keyring.ts";

export const keyFileVersion = 2;

export interface RingSpec {
  readonly current: number;
  /** The current key and at most one other (the previous one). */
  readonly keys: readonly Secret[];
}

export type KeyFile =
  | { readonly kind: "node"; readonly color: string; readonly node: RingSpec; readonly client: RingSpec; readonly control: RingSpec }
  | { readonly kind: "client"; readonly client: RingSpec }
  | { readonly kind: "control"; readonly control: RingSpec };

export type KeyFileKind = KeyFile["kind"];

const ringsOfKind: Record<KeyFileKind, readonly Role[]> = {
  node: ["node", "client", "control"],
  client: ["client"],
  control: ["control"],
};

/** The rings a file of this kind holds, in file order. */
export function ringsOf(file: KeyFile): [Role, RingSpec][] {
  return ringsOfKind[file.kind].map((role) => [role, (file as unknown as Record<Role, RingSpec>)[role]]);
}

/**
 * Why a secret is too weak to use, or null. Catches placeholders and typos, not bad
 * randomness: a short secret, all zeros, or one byte repeated.
 */
export function weakSecret(secret: Uint8Array): string | null {
  if (secret.length < limits.keySecretBytesMin) return `has ${secret.length} bytes; at least ${limits.keySecretBytesMin} are needed`;
  if (secret.length > limits.keySecretBytesMax) return `has ${secret.length} bytes; at most ${limits.keySecretBytesMax} are allowed`;
  if (secret.every((b) => b === secret[0])) return secret[0] === 0 ? "is all zeros" : "is one byte repeated";
  return null;
}

export function parseHex(text: string): Uint8Array | string {
  const bad = /[^0-9a-fA-F]/.exec(text);
  if (bad !== null) return `is not hex (${JSON.stringify(bad[0])} at position ${bad.index})`;
  if (text.length % 2 !== 0) return `has an odd number of hex digits (${text.length})`;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function toHexString(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

class Problem extends Error {}

function parseRing(input: unknown, where: string): RingSpec {
  const bad = (problem: string): never => {
    throw new Problem(`${where}: ${problem}`);
  };
  if (!isRecord(input)) return bad("expected an object with current and keys");
  for (const field of Object.keys(input)) if (field !== "current" && field !== "keys") bad(`unknown field ${JSON.stringify(field)}`);
  if (!Array.isArray(input.keys) || input.keys.length < 1 || input.keys.length > 2) return bad("keys must list one or two keys (current and previous)");
  const keys: Secret[] = input.keys.map((key: unknown, i: number): Secret => {
    const at = `${where}.keys[${i}]`;
    if (!isRecord(key)) return bad(`keys[${i}] is not an object`);
    if (!isKeyId(key.id)) throw new Problem(`${at}.id must be an integer from 0 to 4294967295`);
    if (typeof key.secret !== "string") throw new Problem(`${at}.secret must be a hex string`);
    const secret = parseHex(key.secret);
    if (typeof secret === "string") throw new Problem(`${at}.secret ${secret}`);
    const weak = weakSecret(secret);
    if (weak !== null) throw new Problem(`${at}.secret ${weak}; generate keys with physalia keys generate`);
    return { id: key.id, secret };
  });
  if (keys.length === 2 && (keys[0] as Secret).id === (keys[1] as Secret).id) bad(`key id ${(keys[0] as Secret).id} appears twice`);
  if (!keys.some((k) => k.id === input.current)) bad(`current (${JSON.stringify(input.current)}) names no key in keys`);
  return { current: input.current as number, keys };
}

/** Reads a key file with its secrets (for the keys command); every problem is a one-line KeyFileError. */
export function parseKeyFileSpec(text: string): KeyFile | KeyFileError {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (error) {
    return new KeyFileError(`Cannot parse key file: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    if (!isRecord(input)) throw new Problem("expected a JSON object");
    if (input.version !== keyFileVersion) {
      const old = input.version === 1 ? " (version 1 files had one key for everyone; run physalia keys generate)" : "";
      throw new Problem(`unsupported version ${JSON.stringify(input.version)}, expected ${keyFileVersion}${old}`);
    }
    const kind = input.kind;
    if (kind !== "node" && kind !== "client" && kind !== "control") throw new Problem(`kind must be "node", "client" or "control", not ${JSON.stringify(kind)}`);
    const wanted = ringsOfKind[kind];
    const allowed = new Set<string>(["version", "kind", ...wanted, ...(kind === "node" ? ["color"] : [])]);
    for (const field of Object.keys(input)) {
      if (allowed.has(field)) continue;
      if (field === "node" || field === "client" || field === "control") {
        throw new Problem(`a ${kind} key file holds only the ${wanted.join(", ")} ring${wanted.length > 1 ? "s" : ""}, not the ${field} ring`);
      }
      throw new Problem(`unknown field ${JSON.stringify(field)}`);
    }
    const rings = new Map<Role, RingSpec>();
    for (const role of wanted) {
      if (input[role] === undefined) throw new Problem(`a ${kind} key file needs the ${role} ring`);
      rings.set(role, parseRing(input[role], role));
    }
    const file = ((): KeyFile => {
      if (kind === "client") return { kind, client: rings.get("client") as RingSpec };
      if (kind === "control") return { kind, control: rings.get("control") as RingSpec };
      if (typeof input.color !== "string" || !isPlainId(input.color)) throw new Problem("color must be a topology color name");
      return { kind, color: input.color, node: rings.get("node") as RingSpec, client: rings.get("client") as RingSpec, control: rings.get("control") as RingSpec };
    })();
    checkDistinct(file);
    return file;
  } catch (error) {
    if (error instanceof Problem || error instanceof KeyFileError) return new KeyFileError(`Cannot parse key file: ${error.message.replace(/^Cannot use keys?: /, "")}`);
    throw error;
  }
}

/** Key ids are unique across rings, and no two rings share a secret (that would merge their roles). */
function checkDistinct(file: KeyFile): void {
  const ids = new Map<number, Role>();
  const secrets = new Map<string, Role>();
  for (const [role, ring] of ringsOf(file)) {
    for (const key of ring.keys) {
      const idOwner = ids.get(key.id);
      if (idOwner !== undefined && idOwner !== role) throw new Problem(`key id ${key.id} is in both the ${idOwner} and the ${role} ring; key ids are unique across rings`);
      ids.set(key.id, role);
      const hex = toHexString(key.secret);
      const secretOwner = secrets.get(hex);
      if (secretOwner !== undefined && secretOwner !== role) throw new Problem(`the ${secretOwner} and ${role} rings share a secret, which would let one role speak as the other`);
      secrets.set(hex, role);
    }
  }
}

export function ringOf(spec: RingSpec): KeyRing {
  const current = spec.keys.find((k) => k.id === spec.current) as Secret;
  const previous = spec.keys.find((k) => k.id !== spec.current);
  return previous === undefined ? new KeyRing(current) : new KeyRing(current, previous);
}

export function keySetOf(file: KeyFile): KeySet {
  switch (file.kind) {
    case "node":
      return new KeySet({ node: ringOf(file.node), client: ringOf(file.client), control: ringOf(file.control) }, file.color);
    case "client":
      return new KeySet({ client: ringOf(file.client) });
    case "control":
      return new KeySet({ control: ringOf(file.control) });
  }
}

/** Reads a key file into the rings a process uses; every problem is a one-line KeyFileError. */
export function parseKeyFile(text: string): { readonly kind: KeyFileKind; readonly keys: KeySet } | KeyFileError {
  const file = parseKeyFileSpec(text);
  if (file instanceof KeyFileError) return file;
  try {
    return { kind: file.kind, keys: keySetOf(file) };
  } catch (error) {
    if (error instanceof KeyFileError) return new KeyFileError(`Cannot parse key file: ${error.message}`);
    throw error;
  }
}

export function formatKeyFile(file: KeyFile): string {
  const ring = (spec: RingSpec) => ({ current: spec.current, keys: spec.keys.map((k) => ({ id: k.id, secret: toHexString(k.secret) })) });
  const out: Record<string, unknown> = { version: keyFileVersion, kind: file.kind };
  if (file.kind === "node") out.color = file.color;
  for (const [role, spec] of ringsOf(file)) out[role] = ring(spec);
  return `${JSON.stringify(out, null, 1)}\n`;
}
