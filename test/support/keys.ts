// Key sets for tests: what a node of one color, a client and a control holder each hold.

import { KeyRing, KeySet } from "../../src/wire/keyring.ts";

/** A secret that is not weak (not one repeated byte), different for each id and salt. */
export function testSecret(id: number, salt = 0): Uint8Array {
  return Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + id * 13 + salt * 101 + 1) & 0xff);
}

export function testRing(id: number, previous?: number): KeyRing {
  const current = { id, secret: testSecret(id) };
  return previous === undefined ? new KeyRing(current) : new KeyRing(current, { id: previous, secret: testSecret(previous) });
}

export interface TestKeys {
  /** A node's key file of `color`: its node ring, and the client and control rings. */
  readonly node: KeySet;
  readonly client: KeySet;
  readonly control: KeySet;
  readonly rings: { readonly node: KeyRing; readonly client: KeyRing; readonly control: KeyRing };
}

/** Key ids: client 1, control 2, and the node ring of each color from 10 on (blue 10, red 11, ...). */
export function testKeys(color = "blue", nodeKeyId = 10): TestKeys {
  const rings = { node: testRing(nodeKeyId), client: testRing(1), control: testRing(2) };
  return {
    node: new KeySet(rings, color),
    client: new KeySet({ client: rings.client }),
    control: new KeySet({ control: rings.control }),
    rings,
  };
}
