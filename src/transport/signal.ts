// Signalling for data channels: an offer goes to the answering node's /signal endpoint in one
// HTTP POST and the answer comes back in the response, each with its full SDP (every ICE
// candidate gathered first, so no trickling). Both are authenticated with an HMAC of the
// colony's frame key, which binds the DTLS fingerprints in the SDP to holders of the key: a
// party without it can neither open a channel nor sit in the middle of one. A signal is
// fresh for `signalAgeMsMax` of wall-clock time and an answerer accepts each nonce once.

import { type KeySet, type Role, macsEqual } from "../wire/keyring.ts";

/**
 * The keys signalling uses: one to sign this side's signals, and every key the other side
 * may sign with. A key ring is one; `signalKeysOf` makes one from a key file's rings.
 */
export interface SignalKeys {
  readonly currentId: number;
  has(keyId: number): boolean;
  mac(keyId: number, data: Uint8Array): Uint8Array | undefined;
}

/**
 * Signs with the `role` ring and accepts a signal under any ring of `keys`: a node takes
 * offers from its peers (node key) and from clients (client or control key).
 */
export function signalKeysOf(keys: KeySet, role: Role): SignalKeys {
  const own = keys.ring(role);
  if (own === undefined) throw new Error(`Cannot signal: the key file has no ${role} ring`);
  return {
    currentId: own.currentId,
    has: (keyId) => keys.lookup(keyId) !== undefined,
    mac: (keyId, data) => keys.lookup(keyId)?.ring.mac(keyId, data),
  };
}

function hexToBytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

export const signalVersion = 1;
export const signalBytesMax = 16 * 1024;
export const signalAgeMsMax = 30_000;
const identityBytesMax = 300;
const sdpBytesMax = 12 * 1024;

export type SignalKind = "offer" | "answer";

export interface Signal {
  readonly kind: SignalKind;
  /** The sender's identity: a node's topology address, or a client's label. */
  readonly from: string;
  /** The receiver's identity. */
  readonly to: string;
  /** The offer's nonce; an answer repeats it. */
  readonly nonce: string;
  /** Wall-clock milliseconds when it was made. */
  readonly at: number;
  readonly sdp: string;
}

export interface SignedSignal extends Signal {
  readonly v: number;
  readonly key: number;
  readonly mac: string;
}

function macInput(signal: Signal): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(["physalia-signal", signalVersion, signal.kind, signal.from, signal.to, signal.nonce, signal.at, signal.sdp]));
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function newNonce(): string {
  return hex(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * Signs a signal with the current key, or with `keyId`: an answer is signed with the key
 * its offer was, since a client holds only its own role's key (as frames to it are).
 */
export function signSignal(keyring: SignalKeys, signal: Signal, keyId: number = keyring.currentId): SignedSignal {
  const mac = keyring.mac(keyId, macInput(signal));
  if (mac === undefined) throw new Error(`the key ring has no key ${keyId}`);
  return { v: signalVersion, ...signal, key: keyId, mac: hex(mac) };
}

export type SignalCheck =
  | { readonly ok: true; readonly signal: Signal; readonly keyId: number }
  | { readonly ok: false; readonly status: 400 | 401 | 409; readonly reason: string };

/**
 * Parses and authenticates one signal, expecting `kind` addressed to `to`. Any input gives an
 * answer, never an exception.
 */
export function checkSignal(keyring: SignalKeys, text: string, expect: { kind: SignalKind; to: string; nowMs: number }): SignalCheck {
  const bad = (reason: string): SignalCheck => ({ ok: false, status: 400, reason });
  if (text.length > signalBytesMax) return bad(`a signal has at most ${signalBytesMax} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return bad("a signal is JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return bad("a signal is a JSON object");
  const raw = value as Record<string, unknown>;
  if (raw.v !== signalVersion) return bad(`unsupported signal version ${JSON.stringify(raw.v)}`);
  if (raw.kind !== expect.kind) return bad(`expected an ${expect.kind}`);
  for (const field of ["from", "to", "nonce", "sdp", "mac"] as const) {
    if (typeof raw[field] !== "string") return bad(`${field} must be a string`);
  }
  const { from, to, nonce, sdp, mac } = raw as Record<"from" | "to" | "nonce" | "sdp" | "mac", string>;
  if (from.length === 0 || from.length > identityBytesMax || to.length > identityBytesMax) return bad("from and to are 1 to 300 characters");
  if (!/^[0-9a-f]{32}$/.test(nonce)) return bad("nonce must be 32 hex digits");
  if (sdp.length === 0 || sdp.length > sdpBytesMax) return bad(`sdp must be 1 to ${sdpBytesMax} characters`);
  if (!/^[0-9a-f]{64}$/.test(mac)) return bad("mac must be 64 hex digits");
  const at = raw.at;
  if (typeof at !== "number" || !Number.isSafeInteger(at)) return bad("at must be an integer");
  const key = raw.key;
  if (typeof key !== "number" || !Number.isInteger(key)) return bad("key must be an integer");
  const signal: Signal = { kind: expect.kind, from, to, nonce, at, sdp };
  const expected = keyring.has(key) ? keyring.mac(key, macInput(signal)) : undefined;
  if (expected === undefined || !macsEqual(expected, hexToBytes(mac))) return { ok: false, status: 401, reason: "the signal is not signed with a key of this colony" };
  if (to !== expect.to) return { ok: false, status: 409, reason: `the signal is for ${to}, not ${expect.to}` };
  if (Math.abs(expect.nowMs - at) > signalAgeMsMax) return { ok: false, status: 409, reason: "the signal is stale (or the clocks disagree by more than 30 s)" };
  return { ok: true, signal, keyId: key };
}

/** Nonces an answerer has accepted, kept while a signal carrying them could still be fresh. */
export class NonceCache {
  private readonly seen = new Map<string, number>();

  constructor(private readonly entriesMax = 10_000) {}

  /** Records the nonce; false when it was seen already, or the cache is full of fresh ones. */
  accept(nonce: string, nowMs: number): boolean {
    for (const [old, at] of this.seen) {
      if (nowMs - at <= 2 * signalAgeMsMax) break;
      this.seen.delete(old);
    }
    if (this.seen.has(nonce) || this.seen.size >= this.entriesMax) return false;
    this.seen.set(nonce, nowMs);
    return true;
  }
}
