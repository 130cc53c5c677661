// One configuration of cbor-x for the whole project: plain byte strings (no typed-array
// tags), maps as objects (cbor-x renames "__proto__"), 64-bit integers as bigint.
//
// We import the pure-JavaScript entry points on purpose. The package root loads the native
// `cbor-extract` addon when it is installed, and that addon crashed the whole Bun process
// (abort, not an exception) on inputs found by our decoder fuzz test. A node must survive any
// frame, so it never loads native code to parse one.

import { Decoder, setSizeLimits } from "cbor-x/decode";
import { Encoder } from "cbor-x/encode";

// Bound what one body can make the decoder allocate.
setSizeLimits({ maxArraySize: 65_536, maxMapSize: 4_096, maxObjectSize: 4_096 });

const options = {
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: "bigint",
  tagUint8Array: false,
  pack: false,
} as const;

const encoder = new Encoder(options);
const decoder = new Decoder(options);

export function encodeCbor(value: unknown): Uint8Array {
  // cbor-x may hand back a view of its shared buffer: copy so callers own the bytes.
  return new Uint8Array(encoder.encode(value));
}

export type CborResult = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly detail: string };

export function decodeCbor(bytes: Uint8Array): CborResult {
  try {
    return { ok: true, value: decoder.decode(bytes) };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : String(error) };
  }
}
