// A frame is one authenticated unit on the wire (version 2):
//
//   0  magic: "PY" a frame of messages, "PK" a chunk of a larger frame (2 bytes)
//   2  frame version (u8)             3  MAC count n, 1 or 2 (u8)
//   4  n key ids (u32 each, big-endian): the current key, then the previous one while rotating
//   .. sender epoch (u64)  .. sender counter (u64)
//   .. sender length (u8), sender, receiver length (u8), receiver
//   .. body (CBOR for a frame, see schema.ts; chunk header and payload for a chunk)
//   .. n MACs: HMAC-SHA256 of everything before the first MAC, one per key id, in order
//
// A receiver verifies the MAC of the first key id it holds, and checks it before anything
// else is read, so nothing unauthenticated reaches a parser or takes memory. The key id
// says which ring signed, and so the sender's role. Decoding never throws: every problem
// comes back as a FrameRejection with a reason.

import { decodeUtf8 } from "../core/bytes.ts";
import { utf8 } from "../core/value.ts";
import { limits } from "../limits.ts";
import type { Stamp } from "./freshness.ts";
import { isAddressedTo, isNodeId } from "./ids.ts";
import { type KeyRing, type KeySet, type Role, macBytes, macsEqual } from "./keyring.ts";

export const frameVersion = 2;
const magic0 = 0x50; // "P"
const frameMagic1 = 0x59; // "Y"
const chunkMagic1 = 0x4b; // "K"
const macsMax = 2;
const stampBytes = 16;
const prefixBytes = 2 + 1 + 1;
/** The most a frame adds to its body: the largest header and two MACs. */
export const frameOverheadBytes = prefixBytes + 4 * macsMax + stampBytes + 2 + 2 * limits.nodeIdBytesMax + macsMax * macBytes;
const frameBytesMin = prefixBytes + 4 + stampBytes + 2 * 2 + macBytes;
/** The largest epoch or counter: the high word of a u64 that is still a safe integer. */
const highWordMax = 0x1f_ffff;

export type FrameKind = "frame" | "chunk";

export type FrameRejectReason =
  | "tooShort"
  | "tooLarge"
  | "badMagic"
  | "unsupportedVersion"
  | "unknownKey"
  | "badMac"
  | "badHeader"
  | "wrongReceiver";

export interface FrameHeader {
  readonly kind: FrameKind;
  readonly version: number;
  /** The key whose MAC this receiver verified, and the role of its ring. */
  readonly keyId: number;
  readonly role: Role;
  readonly sender: string;
  readonly receiver: string;
  readonly stamp: Stamp;
}

export interface Frame extends FrameHeader {
  readonly body: Uint8Array;
}

export type FrameResult =
  | { readonly ok: true; readonly frame: Frame }
  | { readonly ok: false; readonly reason: FrameRejectReason; readonly detail: string };

export interface EncodeFrameOptions {
  readonly kind?: FrameKind;
  readonly sender: string;
  readonly receiver: string;
  readonly stamp: Stamp;
  readonly body: Uint8Array;
  /** Largest frame allowed; a transport that chunks may pass a larger bound. */
  readonly bytesMax?: number;
}

export class FrameEncodeError extends Error {
  override name = "FrameEncodeError";
}

/** Whether the bytes start like a chunk; only decodeFrame says whether it is authentic. */
export function isChunk(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === magic0 && bytes[1] === chunkMagic1;
}

function checkStampPart(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new FrameEncodeError(`Cannot frame: the ${what} ${value} is not a safe non-negative integer`);
}

/** Signs a frame with every signing key of the ring. Bad ids or sizes are bugs of the caller. */
export function encodeFrame(ring: KeyRing, options: EncodeFrameOptions): Uint8Array {
  const { sender, receiver, body, stamp } = options;
  if (!isNodeId(sender)) throw new FrameEncodeError(`Cannot frame: invalid sender id ${JSON.stringify(sender)}`);
  if (!isNodeId(receiver)) throw new FrameEncodeError(`Cannot frame: invalid receiver id ${JSON.stringify(receiver)}`);
  checkStampPart(stamp.epoch, "epoch");
  checkStampPart(stamp.counter, "counter");
  const keyIds = ring.signingIds;
  const senderBytes = utf8(sender);
  const receiverBytes = utf8(receiver);
  const signedBytes = prefixBytes + 4 * keyIds.length + stampBytes + 1 + senderBytes.length + 1 + receiverBytes.length + body.length;
  const length = signedBytes + keyIds.length * macBytes;
  const bytesMax = options.bytesMax ?? limits.frameBytesMax;
  if (length > bytesMax) throw new FrameEncodeError(`Cannot frame: ${length} bytes exceed ${bytesMax}`);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  out[0] = magic0;
  out[1] = options.kind === "chunk" ? chunkMagic1 : frameMagic1;
  out[2] = frameVersion;
  out[3] = keyIds.length;
  let at = prefixBytes;
  for (const id of keyIds) {
    view.setUint32(at, id);
    at += 4;
  }
  for (const value of [stamp.epoch, stamp.counter]) {
    view.setUint32(at, Math.floor(value / 0x1_0000_0000));
    view.setUint32(at + 4, value >>> 0);
    at += 8;
  }
  out[at++] = senderBytes.length;
  out.set(senderBytes, at);
  at += senderBytes.length;
  out[at++] = receiverBytes.length;
  out.set(receiverBytes, at);
  at += receiverBytes.length;
  out.set(body, at);
  at += body.length;
  const signed = out.subarray(0, signedBytes);
  for (const id of keyIds) {
    const mac = ring.mac(id, signed);
    if (mac === undefined) throw new FrameEncodeError(`Cannot frame: the ring has no key ${id}`);
    out.set(mac, at);
    at += macBytes;
  }
  return out;
}

export interface DecodeFrameOptions {
  /** When set, frames addressed to any other node or client are rejected. */
  readonly receiver?: string;
  readonly bytesMax?: number;
}

export function decodeFrame(bytes: Uint8Array, keys: KeySet, options: DecodeFrameOptions = {}): FrameResult {
  const reject = (reason: FrameRejectReason, detail: string): FrameResult => ({ ok: false, reason, detail });
  const bytesMax = options.bytesMax ?? limits.frameBytesMax;
  if (bytes.length > bytesMax) return reject("tooLarge", `${bytes.length} bytes exceed ${bytesMax}`);
  if (bytes.length < frameBytesMin) return reject("tooShort", `${bytes.length} bytes`);
  if (bytes[0] !== magic0 || (bytes[1] !== frameMagic1 && bytes[1] !== chunkMagic1)) return reject("badMagic", "not a physalia frame");
  if (bytes[2] !== frameVersion) return reject("unsupportedVersion", `frame version ${bytes[2]}`);
  const macs = bytes[3] as number;
  if (macs < 1 || macs > macsMax) return reject("badHeader", `${macs} MACs`);
  const macAt = bytes.length - macs * macBytes;
  if (macAt < prefixBytes + 4 * macs + stampBytes + 4) return reject("tooShort", `${bytes.length} bytes for ${macs} MACs`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  // The first key id this receiver holds decides; a second one, if held, must be of the same ring.
  let chosen = -1;
  let held: { readonly role: Role; readonly ring: KeyRing } | undefined;
  for (let i = 0; i < macs; i++) {
    const found = keys.lookup(view.getUint32(prefixBytes + 4 * i));
    if (found === undefined) continue;
    if (held === undefined) {
      held = found;
      chosen = i;
    } else if (found.ring !== held.ring) return reject("badHeader", "the key ids belong to different rings");
  }
  const keyIds = Array.from({ length: macs }, (_, i) => view.getUint32(prefixBytes + 4 * i));
  if (held === undefined) return reject("unknownKey", `key id ${keyIds.join(", ")}`);
  const keyId = keyIds[chosen] as number;
  const expected = held.ring.mac(keyId, bytes.subarray(0, macAt));
  const mac = bytes.subarray(macAt + chosen * macBytes, macAt + (chosen + 1) * macBytes);
  if (expected === undefined || !macsEqual(expected, mac)) return reject("badMac", "authentication failed");

  // Authentic from here on; the header is still checked, as a peer could have a bug.
  let at = prefixBytes + 4 * macs;
  const words = [view.getUint32(at), view.getUint32(at + 4), view.getUint32(at + 8), view.getUint32(at + 12)] as const;
  if (words[0] > highWordMax || words[2] > highWordMax) return reject("badHeader", "epoch or counter out of range");
  const stamp: Stamp = { epoch: words[0] * 0x1_0000_0000 + words[1], counter: words[2] * 0x1_0000_0000 + words[3] };
  at += stampBytes;
  const senderLength = bytes[at++] as number;
  if (senderLength === 0 || senderLength > limits.nodeIdBytesMax || at + senderLength + 1 > macAt) {
    return reject("badHeader", "sender length out of bounds");
  }
  const sender = decodeUtf8(bytes.subarray(at, at + senderLength));
  at += senderLength;
  const receiverLength = bytes[at++] as number;
  if (receiverLength === 0 || receiverLength > limits.nodeIdBytesMax || at + receiverLength > macAt) {
    return reject("badHeader", "receiver length out of bounds");
  }
  const receiver = decodeUtf8(bytes.subarray(at, at + receiverLength));
  at += receiverLength;
  if (sender === null || !isNodeId(sender)) return reject("badHeader", "invalid sender id");
  if (receiver === null || !isNodeId(receiver)) return reject("badHeader", "invalid receiver id");
  if (options.receiver !== undefined && !isAddressedTo(receiver, options.receiver)) {
    return reject("wrongReceiver", `addressed to ${receiver}`);
  }
  return {
    ok: true,
    frame: { kind: bytes[1] === chunkMagic1 ? "chunk" : "frame", version: frameVersion, keyId, role: held.role, sender, receiver, stamp, body: bytes.subarray(at, macAt) },
  };
}
