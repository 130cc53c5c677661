// Payloads larger than one datagram (bulk teaching: snapshots) travel as numbered chunks
// and are reassembled before the frame is authenticated. A chunk is
//   "PK" | version (u8) | message id (u32) | index (u16) | count (u16) | payload
// Chunk headers are not authenticated (the reassembled frame is), so reassembly is
// bounded in messages, bytes and time: a forger can waste at most those bounds.

import { limits } from "../limits.ts";

const magic0 = 0x50; // "P"
const magic1 = 0x4b; // "K"
const chunkVersion = 1;
const headerBytes = 2 + 1 + 4 + 2 + 2;
export const chunkPayloadBytes = limits.frameBytesMax - headerBytes;
const chunksMax = Math.ceil(limits.messageBytesMax / chunkPayloadBytes);

export function isChunk(bytes: Uint8Array): boolean {
  return bytes.length >= headerBytes && bytes[0] === magic0 && bytes[1] === magic1;
}

/** Splits a frame too large for one datagram. */
export function splitFrame(frame: Uint8Array, messageId: number): Uint8Array[] {
  const count = Math.ceil(frame.length / chunkPayloadBytes);
  if (count > chunksMax) throw new RangeError(`Cannot chunk a frame of ${frame.length} bytes`);
  const out: Uint8Array[] = [];
  for (let index = 0; index < count; index++) {
    const payload = frame.subarray(index * chunkPayloadBytes, (index + 1) * chunkPayloadBytes);
    const chunk = new Uint8Array(headerBytes + payload.length);
    const view = new DataView(chunk.buffer);
    chunk[0] = magic0;
    chunk[1] = magic1;
    chunk[2] = chunkVersion;
    view.setUint32(3, messageId >>> 0);
    view.setUint16(7, index);
    view.setUint16(9, count);
    chunk.set(payload, headerBytes);
    out.push(chunk);
  }
  return out;
}

interface Partial {
  readonly parts: (Uint8Array | undefined)[];
  received: number;
  bytes: number;
  readonly startedAt: number;
}

export interface ReassemblerLimits {
  readonly messagesMax: number;
  readonly bytesMax: number;
  readonly timeoutMs: number;
}

export const defaultReassemblerLimits: ReassemblerLimits = { messagesMax: 64, bytesMax: 4 * limits.messageBytesMax, timeoutMs: 2_000 };

export type ChunkResult =
  | { readonly kind: "frame"; readonly frame: Uint8Array }
  | { readonly kind: "partial" }
  | { readonly kind: "rejected"; readonly reason: "badChunk" | "chunkOverflow" };

export class Reassembler {
  private readonly partials = new Map<string, Partial>();
  private bytes = 0;

  constructor(private readonly bounds: ReassemblerLimits = defaultReassemblerLimits) {}

  /** Adds one chunk from `source`; returns the whole frame when its last chunk arrives. */
  add(source: string, chunk: Uint8Array, now: number): ChunkResult {
    this.expire(now);
    if (!isChunk(chunk) || chunk[2] !== chunkVersion) return { kind: "rejected", reason: "badChunk" };
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const id = view.getUint32(3);
    const index = view.getUint16(7);
    const count = view.getUint16(9);
    const payload = chunk.subarray(headerBytes);
    if (count < 2 || count > chunksMax || index >= count || payload.length === 0 || payload.length > chunkPayloadBytes) {
      return { kind: "rejected", reason: "badChunk" };
    }
    const key = `${source}/${id}`;
    let partial = this.partials.get(key);
    if (partial === undefined) {
      if (this.partials.size >= this.bounds.messagesMax) return { kind: "rejected", reason: "chunkOverflow" };
      partial = { parts: new Array<Uint8Array | undefined>(count), received: 0, bytes: 0, startedAt: now };
      this.partials.set(key, partial);
    }
    if (partial.parts.length !== count) return { kind: "rejected", reason: "badChunk" };
    if (partial.parts[index] !== undefined) return { kind: "partial" }; // a duplicate
    if (this.bytes + payload.length > this.bounds.bytesMax) return { kind: "rejected", reason: "chunkOverflow" };
    partial.parts[index] = payload.slice();
    partial.received++;
    partial.bytes += payload.length;
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

  get pendingMessages(): number {
    return this.partials.size;
  }

  private drop(key: string, partial: Partial): void {
    this.partials.delete(key);
    this.bytes -= partial.bytes;
  }

  private expire(now: number): void {
    for (const [key, partial] of this.partials) {
      if (now - partial.startedAt > this.bounds.timeoutMs) this.drop(key, partial);
    }
  }
}
