// Payloads larger than one datagram (bulk teaching: snapshots) travel as numbered chunks.
// Each chunk is itself a signed frame of kind "chunk" (see wire/frame.ts), whose body is
//   message id (u32) | index (u16) | count (u16) | payload
// so a chunk is authenticated, its sender known and its role checked, before it takes any
// memory. The reassembled payload is a whole frame, authenticated again on its own.
// Reassembly is bounded per sender and in total, in messages and bytes, and a partial
// message expires on time: `sweep(now)` is called from a timer the owner already has.

import { limits } from "../limits.ts";
import { type Stamper } from "../wire/freshness.ts";
import { encodeFrame, frameOverheadBytes } from "../wire/frame.ts";
import type { KeyRing } from "../wire/keyring.ts";

const chunkHeaderBytes = 4 + 2 + 2;
export const chunkPayloadBytes = limits.frameBytesMax - frameOverheadBytes - chunkHeaderBytes;
const chunksMax = Math.ceil(limits.messageBytesMax / chunkPayloadBytes);

export interface SplitOptions {
  /** The ring the chunks are signed with: the same role as the frame they carry. */
  readonly ring: KeyRing;
  readonly sender: string;
  readonly receiver: string;
  /** Stamps each chunk, like any frame from this sender. */
  readonly stamper: Stamper;
  readonly messageId: number;
}

/** Splits a frame too large for one datagram into signed chunks. */
export function splitFrame(frame: Uint8Array, options: SplitOptions): Uint8Array[] {
  const count = Math.ceil(frame.length / chunkPayloadBytes);
  if (count > chunksMax) throw new RangeError(`Cannot chunk a frame of ${frame.length} bytes`);
  const out: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    const payload = frame.subarray(index * chunkPayloadBytes, (index + 1) * chunkPayloadBytes);
    const body = new Uint8Array(chunkHeaderBytes + payload.length);
    const view = new DataView(body.buffer);
    view.setUint32(0, options.messageId >>> 0);
    view.setUint16(4, index);
    view.setUint16(6, count);
    body.set(payload, chunkHeaderBytes);
    out.push(encodeFrame(options.ring, { kind: "chunk", sender: options.sender, receiver: options.receiver, stamp: options.stamper.next(), body }));
  }
  return out;
}

interface Partial {
  readonly sender: string;
  readonly parts: (Uint8Array | undefined)[];
  received: number;
  bytes: number;
  readonly startedAt: number;
}

export interface ReassemblerLimits {
  /** Partial messages held at once, over all senders. */
  readonly messagesMax: number;
  /** Partial messages held at once for one sender. */
  readonly messagesPerSenderMax: number;
  readonly bytesMax: number;
  readonly bytesPerSenderMax: number;
  /** A partial message older than this is dropped. */
  readonly timeoutMs: number;
}

export const defaultReassemblerLimits: ReassemblerLimits = {
  messagesMax: 64,
  messagesPerSenderMax: 8,
  bytesMax: 4 * limits.messageBytesMax,
  bytesPerSenderMax: 2 * limits.messageBytesMax,
  timeoutMs: 2_000,
};

export type ChunkResult =
  | { readonly kind: "frame"; readonly frame: Uint8Array }
  | { readonly kind: "partial" }
  | { readonly kind: "rejected"; readonly reason: "badChunk" | "chunkOverflow"; readonly detail: string };

interface SenderUse {
  messages: number;
  bytes: number;
}

export class Reassembler {
  private readonly partials = new Map<string, Partial>();
  private readonly senders = new Map<string, SenderUse>();
  private bytes = 0;
  /** Partial messages dropped because they expired. */
  expired = 0;

  constructor(private readonly bounds: ReassemblerLimits = defaultReassemblerLimits) {}

  /** Adds the body of one authenticated chunk from `sender`; returns the whole frame when its last chunk arrives. */
  add(sender: string, body: Uint8Array, now: number): ChunkResult {
    this.sweep(now);
    const reject = (reason: "badChunk" | "chunkOverflow", detail: string): ChunkResult => ({ kind: "rejected", reason, detail });
    if (body.length <= chunkHeaderBytes) return reject("badChunk", "no payload");
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    const id = view.getUint32(0);
    const index = view.getUint16(4);
    const count = view.getUint16(6);
    const payload = body.subarray(chunkHeaderBytes);
    if (count < 2 || count > chunksMax || index >= count || payload.length > chunkPayloadBytes) return reject("badChunk", `chunk ${index} of ${count}`);
    const key = `${sender}/${id}`;
    let partial = this.partials.get(key);
    let use = this.senders.get(sender);
    if (partial === undefined) {
      if (this.partials.size >= this.bounds.messagesMax) return reject("chunkOverflow", `${this.partials.size} partial messages held`);
      if (use !== undefined && use.messages >= this.bounds.messagesPerSenderMax) return reject("chunkOverflow", `${use.messages} partial messages held for ${sender}`);
      partial = { sender, parts: new Array<Uint8Array | undefined>(count), received: 0, bytes: 0, startedAt: now };
      this.partials.set(key, partial);
      if (use === undefined) this.senders.set(sender, (use = { messages: 0, bytes: 0 }));
      use.messages++;
    }
    const senderUse = use as SenderUse;
    if (partial.parts.length !== count) return reject("badChunk", `chunk count ${count} differs from ${partial.parts.length}`);
    if (partial.parts[index] !== undefined) return { kind: "partial" }; // A duplicate.
    if (this.bytes + payload.length > this.bounds.bytesMax) return reject("chunkOverflow", "the reassembly buffer is full");
    if (senderUse.bytes + payload.length > this.bounds.bytesPerSenderMax) return reject("chunkOverflow", `the reassembly buffer of ${sender} is full`);
    partial.parts[index] = payload.slice();
    partial.received++;
    partial.bytes += payload.length;
    senderUse.bytes += payload.length;
    this.bytes += payload.length;
    if (partial.received < count) return { kind: "partial" };
    this.drop(key, partial);
    const frame = new Uint8Array(partial.bytes);
    let at = 0;
    for (const part of partial.parts) {
      frame.set(part as Uint8Array, at);
      at += (part as Uint8Array).length;
    }
    return { kind: "frame", frame };
  }

  /** Drops partial messages that have waited longer than the timeout. */
  sweep(now: number): void {
    for (const [key, partial] of this.partials) {
      if (now - partial.startedAt > this.bounds.timeoutMs) {
        this.drop(key, partial);
        this.expired++;
      }
    }
  }

  get pendingMessages(): number {
    return this.partials.size;
  }

  get pendingBytes(): number {
    return this.bytes;
  }

  private drop(key: string, partial: Partial): void {
    this.partials.delete(key);
    this.bytes -= partial.bytes;
    const use = this.senders.get(partial.sender);
    if (use === undefined) return;
    use.messages--;
    use.bytes -= partial.bytes;
    if (use.messages === 0) this.senders.delete(partial.sender);
  }
}
