// A frame is one authenticated unit on the wire:
//
//   0  magic "PY" (2 bytes)       3  key id (u32, big-endian)
//   2  frame version (u8)         7  sender length (u8), sender, receiver length (u8), receiver
//   .. body (CBOR, see schema.ts) .. HMAC-SHA256 over everything before it (32 bytes)
//
// The MAC is checked before the body is parsed, so nothing unauthenticated reaches CBOR.
// Decoding never throws: every problem comes back as a FrameRejection with a reason.

import { decodeUtf8 } from "../core/bytes.ts";
import { utf8 } from "../core/value.ts";
import { limits } from "../limits.ts";
import { type KeyRing, macBytes, macsEqual } from "./keyring.ts";

export const frameVersion = 1;
const magic0 = 0x50; // "P"
const magic1 = 0x59; // "Y"
const fixedHeaderBytes = 2 + 1 + 4 + 1 + 1;
export const frameOverheadBytes = fixedHeaderBytes + 2 * limits.nodeIdBytesMax + macBytes;

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
  readonly version: number;
  readonly keyId: number;
  readonly sender: string;
  readonly receiver: string;
}

export interface Frame extends FrameHeader {
  readonly body: Uint8Array;
}

export type FrameResult =
  | { readonly ok: true; readonly frame: Frame }
  | { readonly ok: false; readonly reason: FrameRejectReason; readonly detail: string };

const nodeIdPattern = /^[A-Za-z0-9._-]+$/;

export function isNodeId(id: string): boolean {
  return id.length > 0 && id.length <= limits.nodeIdBytesMax && nodeIdPattern.test(id);
}

export interface EncodeFrameOptions {
  readonly sender: string;
  readonly receiver: string;
  readonly body: Uint8Array;
  /** Largest frame allowed; a transport that chunks may pass a larger bound. */
  readonly bytesMax?: number;
}

export class FrameEncodeError extends Error {
  override name = "FrameEncodeError";
}

/** Signs a frame with the ring's current key. Bad ids or sizes are bugs of the caller. */
export function encodeFrame(ring: KeyRing, options: EncodeFrameOptions): Uint8Array {
  const { sender, receiver, body } = options;
  if (!isNodeId(sender)) throw new FrameEncodeError(`Cannot frame: invalid sender id ${JSON.stringify(sender)}`);
  if (!isNodeId(receiver)) throw new FrameEncodeError(`Cannot frame: invalid receiver id ${JSON.stringify(receiver)}`);
  const senderBytes = utf8(sender);
  const receiverBytes = utf8(receiver);
  const length = fixedHeaderBytes + senderBytes.length + receiverBytes.length + body.length + macBytes;
  const bytesMax = options.bytesMax ?? limits.frameBytesMax;
  if (length > bytesMax) throw new FrameEncodeError(`Cannot frame: ${length} bytes exceed ${bytesMax}`);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  out[0] = magic0;
  out[1] = magic1;
  out[2] = frameVersion;
  view.setUint32(3, ring.currentId);
  let at = 7;
  out[at++] = senderBytes.length;
  out.set(senderBytes, at);
  at += senderBytes.length;
  out[at++] = receiverBytes.length;
  out.set(receiverBytes, at);
  at += receiverBytes.length;
  out.set(body, at);
  at += body.length;
  const mac = ring.mac(ring.currentId, out.subarray(0, at));
  if (mac === undefined) throw new FrameEncodeError("Cannot frame: the ring has no current key");
  out.set(mac, at);
  return out;
}

export interface DecodeFrameOptions {
  /** When set, frames addressed to any other node are rejected. */
  readonly receiver?: string;
  readonly bytesMax?: number;
}

export function decodeFrame(bytes: Uint8Array, ring: KeyRing, options: DecodeFrameOptions = {}): FrameResult {
  const reject = (reason: FrameRejectReason, detail: string): FrameResult => ({ ok: false, reason, detail });
  const bytesMax = options.bytesMax ?? limits.frameBytesMax;
  if (bytes.length > bytesMax) return reject("tooLarge", `${bytes.length} bytes exceed ${bytesMax}`);
  if (bytes.length < fixedHeaderBytes + 2 + macBytes) return reject("tooShort", `${bytes.length} bytes`);
  if (bytes[0] !== magic0 || bytes[1] !== magic1) return reject("badMagic", "not a physalia frame");
  if (bytes[2] !== frameVersion) return reject("unsupportedVersion", `frame version ${bytes[2]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const keyId = view.getUint32(3);
  if (!ring.has(keyId)) return reject("unknownKey", `key id ${keyId}`);

  const macAt = bytes.length - macBytes;
  const expected = ring.mac(keyId, bytes.subarray(0, macAt));
  if (expected === undefined || !macsEqual(expected, bytes.subarray(macAt))) return reject("badMac", "authentication failed");

  // Authentic from here on; the header is still checked, as a peer could have a bug.
  let at = 7;
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
  if (options.receiver !== undefined && receiver !== options.receiver) {
    return reject("wrongReceiver", `addressed to ${receiver}`);
  }
  return { ok: true, frame: { version: frameVersion, keyId, sender, receiver, body: bytes.subarray(at, macAt) } };
}
