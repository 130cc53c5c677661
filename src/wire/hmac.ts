// HMAC-SHA256, the MAC of every frame, from whichever of two implementations is faster on
// the runtime this process runs on. Both compute the same bytes (RFC 2104 over SHA-256;
// test/wire/hmac.test.ts checks them against RFC 4231 and against each other), so the
// choice changes only the cost.
//
// Measured for a 150-byte frame (bench/hmac.ts, docs/performance.md): on Bun, node:crypto's
// createHmac (native BoringSSL) takes about 0.6 us and @noble/hashes (pure JavaScript)
// about 6.7 us; on Deno it is the other way round, 37 us against 11 us, because Deno's
// node:crypto crosses into Rust and back for every object it builds. Naming the runtime here
// would break the layering (only src/runtime knows it), so the first key ring to be built
// times the native one on a frame-sized input (24 calls: 25 us on Bun, under 1 ms on Deno)
// and keeps it only if it is fast enough that no JavaScript SHA-256 could beat it.

import { createHmac } from "node:crypto";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

/** Computes the MAC of one input under one key. */
export type MacFunction = (data: Uint8Array) => Uint8Array;

export const hmacImplementations = ["native", "noble"] as const;
export type HmacImplementation = (typeof hmacImplementations)[number];

/** An HMAC-SHA256 under `secret` with the given implementation. */
export function hmacSha256(secret: Uint8Array, implementation: HmacImplementation): MacFunction {
  if (implementation === "native") {
    // createHmac copies the key; a Buffer result is a Uint8Array, which is all callers read.
    const key = Uint8Array.from(secret);
    return (data) => createHmac("sha256", key).update(data).digest();
  }
  // The keyed hash state is computed once per key and cloned per input.
  const keyed = hmac.create(sha256, secret);
  return (data) => keyed.clone().update(data).digest();
}

let fastest: HmacImplementation | null = null;

/** The implementation key rings use: the faster of the two here, decided on first use. */
export function fastestHmac(): HmacImplementation {
  if (fastest === null) fastest = nativeIsFast() ? "native" : "noble";
  return fastest;
}

/**
 * No JavaScript SHA-256 computes a frame's MAC in under a few microseconds (the pure one takes
 * 6.7 us on Bun here, 11 us on Deno); a native one that takes longer than this is a slow
 * binding, and the pure one beats it. Timing only the native one is what keeps the choice
 * cheap: timing the pure one fairly would need it compiled first, hundreds of calls.
 */
const nativeUsMax = 4;
const batches = 3;
const batchCalls = 8;

function nativeIsFast(): boolean {
  const mac = hmacSha256(new Uint8Array(32).fill(0x5a), "native");
  const input = new Uint8Array(150).fill(0xa5);
  mac(input);
  // The fastest batch, so that a pause of the machine in one batch does not decide.
  let bestMs = Infinity;
  for (let batch = 0; batch < batches; batch++) {
    const started = performance.now();
    for (let i = 0; i < batchCalls; i++) mac(input);
    bestMs = Math.min(bestMs, performance.now() - started);
  }
  return (bestMs * 1000) / batchCalls < nativeUsMax;
}
