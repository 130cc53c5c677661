// What a node answers to an authenticated client frame whose body its decoder refused.
//
// The decoder bounds every field (schema.ts) and refuses a body past a bound without
// building it, so a request with a value over 4096 bytes, more than 64 keys or a key too
// long to be one never reaches a replica, which would have answered it with a typed
// rejection. Dropping it left its client waiting out its deadline. The frame is authentic
// (its MAC verified) and its sender is known, so the node looks, without trusting more than
// the shape, for the requests in it and answers each with the rejection the cell would give.

import type { NodeMessage, ReplyOutcome } from "../core/messages.ts";
import { type RejectReason, reject } from "../core/transaction.ts";
import { limits } from "../limits.ts";
import { CborCursor, asciiCode } from "../wire/cbor.ts";

export interface Refusal {
  readonly cell: string;
  readonly client: string;
  readonly id: number;
  readonly outcome: ReplyOutcome;
}

/** Node-level requests, answered by the node rather than a replica (hello, create, join). */
const nodeKinds: Readonly<Record<string, NodeMessage["kind"]>> = { HLO: "hello", NEW: "create", JON: "join" };

/** The keys and kinds the shallow read looks for, as CborCursor.shortText reads them. */
const keyCode = { m: asciiCode("m"), c: asciiCode("c"), k: asciiCode("k"), cl: asciiCode("cl"), q: asciiCode("q") };
const kindByCode = new Map(["REQ", ...Object.keys(nodeKinds)].map((kind) => [asciiCode(kind), kind]));

/** Which limit a decoder refusal names, by the field it is about (schema.ts's paths and words). */
export function reasonOf(detail: string): RejectReason {
  if (/value too large/.test(detail)) return "valueTooLarge";
  if (/\.t\.[rcw]: more than \d+ items/.test(detail)) return "tooManyKeys";
  if (/\.t\.[rcw]\[\d+\](\.key)?: text longer than/.test(detail)) return "keyTooLarge";
  return "malformed";
}

/**
 * The answers to the requests in a refused body, from `sender` only (a request names its
 * client, which must be the frame's sender, as the role check requires of parsed ones).
 * Bounded: at most as many answers as a body may carry messages.
 */
export function refusalsFor(body: Uint8Array, sender: string, detail: string): Refusal[] {
  const why = `the node could not read the request: ${detail}`;
  return requestsIn(body, sender).map(({ cell, client, id, kind }) => ({
    cell, client, id,
    outcome: kind === "REQ" ? { kind: "done", result: reject(reasonOf(detail), why), slot: 0 } : { kind: "unavailable", reason: why },
  }));
}

/**
 * The answers to the requests of a frame the node refused to step because it is overloaded
 * (admission.ts): each is told `overloaded`, which settles nothing, and its client backs off.
 */
export function overloadedFor(body: Uint8Array, sender: string): Refusal[] {
  return requestsIn(body, sender).map(({ cell, client, id }) => ({ cell, client, id, outcome: { kind: "overloaded" } }));
}

/**
 * The requests a body seems to hold (cell, client, id and kind), from a shallow read that
 * trusts nothing but their shape: only the body's `m` and each message's `c`, `k`, `cl` and
 * `q` are read, everything else is skipped unread (CborCursor). A body that is not
 * well-formed CBOR to its last byte holds none.
 */
function requestsIn(body: Uint8Array, sender: string): { cell: string; client: string; id: number; kind: string }[] {
  const cursor = new CborCursor(body);
  if (cursor.head() !== 5) return [];
  let out: { cell: string; client: string; id: number; kind: string }[] | null = null;
  for (let fields = cursor.argument, i = 0; i < fields && !cursor.failed; i++) {
    // A map key that is not text is stepped over with its value (the full decoder names keys as text).
    const key = cursor.shortText();
    if (key !== keyCode.m) {
      cursor.skip();
      continue;
    }
    // The last `m` counts, as the full decoder's object keeps the last of a repeated key.
    out = messagesIn(cursor, sender);
  }
  return cursor.done && out !== null ? out : [];
}

/** The requests of a body's `m`; null when it is not an array. */
function messagesIn(cursor: CborCursor, sender: string): { cell: string; client: string; id: number; kind: string }[] | null {
  const major = cursor.head();
  if (major !== 4) {
    if (major >= 0) cursor.skipRest();
    return null;
  }
  const out: { cell: string; client: string; id: number; kind: string }[] = [];
  for (let count = cursor.argument, m = 0; m < count && !cursor.failed; m++) {
    if (m >= limits.batchCommandsMax) {
      cursor.skip();
      continue;
    }
    const kindOfItem = cursor.head();
    if (kindOfItem !== 5) {
      if (kindOfItem >= 0) cursor.skipRest();
      continue;
    }
    let cell: string | null = null;
    let kind: string | undefined;
    let client: string | null = null;
    let id: number | null = null;
    for (let pairs = cursor.argument, p = 0; p < pairs && !cursor.failed; p++) {
      const key = cursor.shortText();
      if (key === keyCode.c) cell = cursor.text();
      else if (key === keyCode.k) kind = kindByCode.get(cursor.shortText());
      else if (key === keyCode.cl) client = cursor.text();
      else if (key === keyCode.q) id = cursor.unsigned();
      else cursor.skip();
    }
    if (cell === null || cell.length > limits.keyBytesMax || client !== sender) continue;
    if (id === null || !Number.isSafeInteger(id)) continue;
    if (kind !== undefined) out.push({ cell, client, id, kind });
  }
  return out;
}
