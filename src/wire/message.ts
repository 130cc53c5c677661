// Frames that carry messages: the one entry point transports use.

import type { Envelope } from "../core/messages.ts";
import { type DecodeFrameOptions, type FrameHeader, type FrameRejectReason, decodeFrame, encodeFrame } from "./frame.ts";
import type { Stamp } from "./freshness.ts";
import type { KeyRing, KeySet } from "./keyring.ts";
import type { RoleRejectReason } from "./roles.ts";
import { type BodyRejectReason, type DiscoveryPart, decodeBody, encodeBody } from "./schema.ts";

/** Why a frame was dropped: by the frame layer, the body decoder, the role check or the replay guard. */
export type WireRejectReason = FrameRejectReason | BodyRejectReason | RoleRejectReason | "replayed" | "unexpectedChunk";

export const wireRejectReasons: readonly WireRejectReason[] = [
  "tooShort", "tooLarge", "badMagic", "unsupportedVersion", "unknownKey", "badMac", "badHeader",
  "wrongReceiver", "badCbor", "unsupportedProtocol", "unknownKind", "badSchema",
  "wrongRole", "wrongColor", "unknownNode", "wrongSender", "replayed", "unexpectedChunk",
];

export type WireResult =
  | { readonly ok: true; readonly header: FrameHeader; readonly messages: readonly Envelope[]; readonly discovery: readonly DiscoveryPart[] }
  | { readonly ok: false; readonly reason: WireRejectReason; readonly detail: string };

export interface EncodeMessagesOptions {
  readonly sender: string;
  readonly receiver: string;
  readonly stamp: Stamp;
  readonly messages: readonly Envelope[];
  /** Discovery messages in their wire form (src/discovery `encodeMessage`), beside the cells' messages. */
  readonly discovery?: readonly unknown[];
  readonly bytesMax?: number;
}

/** Signs messages with a ring: the node ring for peers, the client or control ring for requests and replies. */
export function encodeMessages(ring: KeyRing, options: EncodeMessagesOptions): Uint8Array {
  const body = encodeBody(options.messages, options.discovery);
  const frame = { sender: options.sender, receiver: options.receiver, stamp: options.stamp, body };
  return encodeFrame(ring, options.bytesMax === undefined ? frame : { ...frame, bytesMax: options.bytesMax });
}

/** Authenticates and parses a frame of messages; a chunk is refused here (reassemble it first). */
export function decodeMessages(bytes: Uint8Array, keys: KeySet, options: DecodeFrameOptions = {}): WireResult {
  const framed = decodeFrame(bytes, keys, options);
  if (!framed.ok) return framed;
  const { body: bodyBytes, ...header } = framed.frame;
  if (header.kind !== "frame") return { ok: false, reason: "unexpectedChunk", detail: "a chunk where a whole frame was expected" };
  const body = decodeBody(bodyBytes);
  if (!body.ok) return body;
  return { ok: true, header, messages: body.messages, discovery: body.discovery };
}
