// Frames that carry messages: the one entry point transports use.

import type { Envelope } from "../core/messages.ts";
import { type DecodeFrameOptions, type FrameRejectReason, decodeFrame, encodeFrame } from "./frame.ts";
import type { KeyRing } from "./keyring.ts";
import { type BodyRejectReason, decodeBody, encodeBody } from "./schema.ts";

export type WireRejectReason = FrameRejectReason | BodyRejectReason;

export const wireRejectReasons: readonly WireRejectReason[] = [
  "tooShort", "tooLarge", "badMagic", "unsupportedVersion", "unknownKey", "badMac", "badHeader",
  "wrongReceiver", "badCbor", "unsupportedProtocol", "unknownKind", "badSchema",
];

export type WireResult =
  | { readonly ok: true; readonly sender: string; readonly receiver: string; readonly keyId: number; readonly messages: readonly Envelope[] }
  | { readonly ok: false; readonly reason: WireRejectReason; readonly detail: string };

export interface EncodeMessagesOptions {
  readonly sender: string;
  readonly receiver: string;
  readonly messages: readonly Envelope[];
  readonly bytesMax?: number;
}

export function encodeMessages(ring: KeyRing, options: EncodeMessagesOptions): Uint8Array {
  const body = encodeBody(options.messages);
  const frame = { sender: options.sender, receiver: options.receiver, body };
  return encodeFrame(ring, options.bytesMax === undefined ? frame : { ...frame, bytesMax: options.bytesMax });
}

export function decodeMessages(bytes: Uint8Array, ring: KeyRing, options: DecodeFrameOptions = {}): WireResult {
  const framed = decodeFrame(bytes, ring, options);
  if (!framed.ok) return framed;
  const body = decodeBody(framed.frame.body);
  if (!body.ok) return body;
  const { sender, receiver, keyId } = framed.frame;
  return { ok: true, sender, receiver, keyId, messages: body.messages };
}
