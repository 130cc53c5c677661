// Frame keys. Each role has its own ring: the nodes of one color (peer messages), clients
// (data requests and their replies) and control (cell creation and membership changes).
// A ring holds a current key and, during a rotation, the previous one: a sender signs with
// both (two MACs), so a receiver that holds either verifies the frame. Rotating is: add a
// new key as current and keep the old one, roll the file out, then drop the old key.
//
// Key ids are unique across a colony's rings, so a frame's key id tells the receiver which
// ring, and so which role, signed it.

import { limits } from "../limits.ts";
import { type MacFunction, fastestHmac, hmacSha256 } from "./hmac.ts";

export const macBytes = 32;

export const roles = ["node", "client", "control"] as const;
export type Role = (typeof roles)[number];

export class KeyFileError extends Error {
  override name = "KeyFileError";
}

export interface Secret {
  readonly id: number;
  readonly secret: Uint8Array;
}

export function isKeyId(id: unknown): id is number {
  return typeof id === "number" && Number.isInteger(id) && id >= 0 && id <= 0xffff_ffff;
}

export class KeyRing {
  private readonly keys: ReadonlyMap<number, MacFunction>;
  readonly currentId: number;
  readonly previousId: number | null;

  constructor(current: Secret, previous?: Secret) {
    const keys = new Map<number, MacFunction>();
    const implementation = fastestHmac();
    for (const key of previous === undefined ? [current] : [current, previous]) {
      if (!isKeyId(key.id)) throw new KeyFileError(`Cannot use key id ${key.id}: ids are integers from 0 to 4294967295`);
      if (key.secret.length < limits.keySecretBytesMin || key.secret.length > limits.keySecretBytesMax) {
        throw new KeyFileError(`Cannot use key ${key.id}: a secret has ${limits.keySecretBytesMin} to ${limits.keySecretBytesMax} bytes`);
      }
      if (keys.has(key.id)) throw new KeyFileError(`Cannot use keys: id ${key.id} appears twice`);
      keys.set(key.id, hmacSha256(key.secret, implementation));
    }
    this.keys = keys;
    this.currentId = current.id;
    this.previousId = previous?.id ?? null;
  }

  /** The keys a frame is signed with: the current one, and the previous one while rotating. */
  get signingIds(): readonly number[] {
    return this.previousId === null ? [this.currentId] : [this.currentId, this.previousId];
  }

  has(keyId: number): boolean {
    return this.keys.has(keyId);
  }

  /** HMAC-SHA256 with the given key; undefined when the ring does not hold it. */
  mac(keyId: number, data: Uint8Array): Uint8Array | undefined {
    return this.keys.get(keyId)?.(data);
  }
}

export interface KeySetRings {
  readonly node?: KeyRing;
  readonly client?: KeyRing;
  readonly control?: KeyRing;
}

/** The rings one process holds, by role; a node ring belongs to one color. */
export class KeySet {
  private readonly byId = new Map<number, { readonly role: Role; readonly ring: KeyRing }>();
  readonly color: string | null;

  constructor(
    private readonly rings: KeySetRings,
    color?: string,
  ) {
    if (rings.node !== undefined && color === undefined) throw new KeyFileError("Cannot use a node ring without its color");
    this.color = rings.node === undefined ? null : (color as string);
    for (const role of roles) {
      const ring = rings[role];
      if (ring === undefined) continue;
      for (const id of ring.signingIds) {
        const other = this.byId.get(id);
        if (other !== undefined) throw new KeyFileError(`Cannot use keys: id ${id} is in both the ${other.role} and the ${role} ring; key ids are unique across rings`);
        this.byId.set(id, { role, ring });
      }
    }
  }

  ring(role: Role): KeyRing | undefined {
    return this.rings[role];
  }

  /** The role and ring of a key id, or undefined for a key this set does not hold. */
  lookup(keyId: number): { readonly role: Role; readonly ring: KeyRing } | undefined {
    return this.byId.get(keyId);
  }

  get roles(): Role[] {
    return roles.filter((role) => this.rings[role] !== undefined);
  }
}

/** Constant-time comparison, so a forger learns nothing from how long a check takes. */
export function macsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= (a[i] as number) ^ (b[i] as number);
  return difference === 0;
}
