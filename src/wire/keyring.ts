// Frame keys, by id, for rotation: a node signs with the current key and accepts frames
// signed with the current or the previous one. Rotating is: add a new key as current, keep
// the old one as previous until every node has the new file, then drop it.

import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { isRecord } from "../core/transaction.ts";
import { limits } from "../limits.ts";

export const macBytes = 32;

export class KeyFileError extends Error {
  override name = "KeyFileError";
}

interface Key {
  readonly id: number;
  readonly mac: ReturnType<typeof hmac.create>;
}

export class KeyRing {
  private readonly keys: ReadonlyMap<number, Key>;
  readonly currentId: number;

  constructor(current: { id: number; secret: Uint8Array }, previous?: { id: number; secret: Uint8Array }) {
    const keys = new Map<number, Key>();
    for (const key of previous === undefined ? [current] : [current, previous]) {
      checkKeyId(key.id);
      if (key.secret.length < limits.keySecretBytesMin || key.secret.length > limits.keySecretBytesMax) {
        throw new KeyFileError(`Cannot use key ${key.id}: a secret has ${limits.keySecretBytesMin} to ${limits.keySecretBytesMax} bytes`);
      }
      if (keys.has(key.id)) throw new KeyFileError(`Cannot use keys: id ${key.id} appears twice`);
      // The keyed hash state is computed once per key and cloned per frame.
      keys.set(key.id, { id: key.id, mac: hmac.create(sha256, key.secret) });
    }
    this.keys = keys;
    this.currentId = current.id;
  }

  has(keyId: number): boolean {
    return this.keys.has(keyId);
  }

  /** HMAC-SHA256 with the given key; undefined when the ring does not hold it. */
  mac(keyId: number, data: Uint8Array): Uint8Array | undefined {
    const key = this.keys.get(keyId);
    if (key === undefined) return undefined;
    return key.mac.clone().update(data).digest();
  }
}

function checkKeyId(id: number): void {
  if (!Number.isInteger(id) || id < 0 || id > 0xffff_ffff) {
    throw new KeyFileError(`Cannot use key id ${id}: ids are integers from 0 to 4294967295`);
  }
}

/**
 * The key file: `{"version": 1, "current": 2, "keys": [{"id": 2, "secret": "<hex>"},
 * {"id": 1, "secret": "<hex>"}]}`. One or two keys; `current` names the signing key and the
 * other, if present, is the previous key, still accepted.
 */
export function parseKeyFile(text: string): KeyRing | KeyFileError {
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (error) {
    return new KeyFileError(`Cannot parse key file: ${error instanceof Error ? error.message : String(error)}`);
  }
  const bad = (problem: string) => new KeyFileError(`Cannot parse key file: ${problem}`);
  if (!isRecord(input)) return bad("expected a JSON object");
  if (input.version !== 1) return bad(`unsupported version ${JSON.stringify(input.version)}, expected 1`);
  if (!Array.isArray(input.keys) || input.keys.length < 1 || input.keys.length > 2) {
    return bad("keys must list one or two keys (current and previous)");
  }
  const parsed: { id: number; secret: Uint8Array }[] = [];
  for (let i = 0; i < input.keys.length; i++) {
    const key: unknown = input.keys[i];
    if (!isRecord(key)) return bad(`keys[${i}] is not an object`);
    if (typeof key.id !== "number" || !Number.isInteger(key.id) || key.id < 0 || key.id > 0xffff_ffff) {
      return bad(`keys[${i}].id must be an integer from 0 to 4294967295`);
    }
    if (typeof key.secret !== "string" || !/^([0-9a-fA-F]{2})+$/.test(key.secret)) {
      return bad(`keys[${i}].secret must be hex`);
    }
    const secret = hexToBytes(key.secret);
    if (secret.length < limits.keySecretBytesMin || secret.length > limits.keySecretBytesMax) {
      return bad(`keys[${i}].secret must be ${limits.keySecretBytesMin} to ${limits.keySecretBytesMax} bytes`);
    }
    parsed.push({ id: key.id, secret });
  }
  const current = parsed.find((k) => k.id === input.current);
  if (current === undefined) return bad(`current (${JSON.stringify(input.current)}) names no key in keys`);
  const previous = parsed.find((k) => k !== current);
  if (previous !== undefined && previous.id === current.id) return bad(`key id ${current.id} appears twice`);
  try {
    return previous === undefined ? new KeyRing(current) : new KeyRing(current, previous);
  } catch (error) {
    return error instanceof KeyFileError ? error : bad(String(error));
  }
}

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Constant-time comparison, so a forger learns nothing from how long a check takes. */
export function macsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= (a[i] as number) ^ (b[i] as number);
  return difference === 0;
}
