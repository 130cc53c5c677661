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
import { decodeCbor } from "../wire/cbor.ts";

export interface Refusal {
  readonly cell: string;
  readonly client: string;
  readonly id: number;
  readonly outcome: ReplyOutcome;
}

/** Node-level requests, answered by the node rather than a replica (hello, create, join). */
const nodeKinds: Readonly<Record<string, NodeMessage["kind"]>> = { HLO: "hello", NEW: "create", JON: "join" };

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

/** The requests a body seems to hold (cell, client, id and kind), from a shallow read that trusts nothing but their shape. */
function requestsIn(body: Uint8Array, sender: string): { cell: string; client: string; id: number; kind: string }[] {
  const decoded = decodeCbor(body);
  if (!decoded.ok) return [];
  const messages = (decoded.value as { m?: unknown } | null)?.m;
  if (!Array.isArray(messages)) return [];
  const out: { cell: string; client: string; id: number; kind: string }[] = [];
  for (const message of messages.slice(0, limits.batchCommandsMax)) {
    if (typeof message !== "object" || message === null) continue;
    const { c: cell, k: kind, cl: client, q: id } = message as Record<string, unknown>;
    if (typeof cell !== "string" || cell.length > limits.keyBytesMax || client !== sender) continue;
    const number = typeof id === "bigint" && id <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(id) : id;
    if (typeof number !== "number" || !Number.isSafeInteger(number) || number < 0) continue;
    if (kind === "REQ" || (typeof kind === "string" && Object.hasOwn(nodeKinds, kind))) out.push({ cell, client, id: number, kind });
  }
  return out;
}
