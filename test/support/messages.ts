// fast-check generators for every message kind on the wire.
import fc from "fast-check";
import type { Ballot, CellMessage, Command, CommandResult, Envelope, LogValue, Operation, ReplyOutcome } from "../../src/core/messages.ts";
import type { TxResult } from "../../src/core/kv.ts";
import { smallKey, transaction, value } from "./arbitraries.ts";

const nodeId = fc.constantFrom("n1", "n2", "node-7", "a.b_c");
const slot = fc.oneof(fc.nat(100), fc.constantFrom(2 ** 32 + 5, Number.MAX_SAFE_INTEGER));
const ballot: fc.Arbitrary<Ballot> = fc.record({ round: slot, node: nodeId });
const operation: fc.Arbitrary<Operation> = fc.oneof(
  transaction.map((tx) => ({ kind: "tx" as const, tx })),
  fc.record({ kind: fc.constant("config" as const), change: fc.record({ kind: fc.constantFrom("addMember" as const, "removeMember" as const), node: nodeId }) }),
  fc.record({ kind: fc.constant("openSession" as const), client: nodeId, nonce: fc.nat() }),
  fc.constant({ kind: "closeSession" as const }),
);
const command: fc.Arbitrary<Command> = fc.record({ session: slot, seq: slot, acked: slot, op: operation });
const stamp = fc.record({ ballot, time: fc.oneof(fc.integer(), fc.constantFrom(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)) });
const logValue: fc.Arbitrary<LogValue> = fc.oneof(
  fc.constant({ kind: "noop" as const }),
  fc.record({ commands: fc.array(command, { maxLength: 3 }), stamp }).map(({ commands, stamp: st }) => ({ kind: "batch" as const, commands, stamp: st })),
);
const reads = fc.array(fc.option(value, { nil: null }), { maxLength: 3 });
const scan = fc.option(fc.record({ entries: fc.array(fc.tuple(smallKey, value), { maxLength: 3 }), next: fc.option(smallKey, { nil: null }) }), { nil: undefined });
const txResult: fc.Arbitrary<TxResult> = fc.oneof(
  fc.record({ status: fc.constant("committed" as const), reads, increments: fc.array(fc.tuple(smallKey, fc.bigInt({ min: -(1n << 70n), max: 1n << 70n })), { maxLength: 2 }), scan })
    .map(({ scan: s, ...r }) => (s === undefined ? r : { ...r, scan: s })),
  fc.record({ status: fc.constant("conditionFailed" as const), reads, condition: fc.nat(5), key: smallKey, actual: fc.option(value, { nil: null }), scan })
    .map(({ scan: s, ...r }) => (s === undefined ? r : { ...r, scan: s })),
  fc.record({ status: fc.constant("rejected" as const), reason: fc.constantFrom("malformed" as const, "cellFull" as const, "wrongType" as const), detail: fc.string({ maxLength: 20 }) }),
);
const commandResult: fc.Arbitrary<CommandResult> = fc.oneof(
  txResult,
  fc.record({ status: fc.constant("configured" as const), members: fc.array(nodeId, { maxLength: 7 }), effectiveSlot: slot }),
  fc.record({ status: fc.constant("session" as const), session: slot, ttlMs: fc.nat() }),
  fc.constant({ status: "closed" as const }),
  fc.record({ status: fc.constant("rejected" as const), reason: fc.constantFrom("sessionExpired" as const, "sessionsFull" as const, "tooManyPending" as const, "staleRequest" as const), detail: fc.string({ maxLength: 20 }) }),
);
const hosted = fc.record({ incarnation: fc.constant("0123456789abcdef"), members: fc.array(nodeId, { maxLength: 7 }), applied: fc.oneof(fc.constant(-1), slot) });
const outcome: fc.Arbitrary<ReplyOutcome> = fc.oneof(
  fc.record({ kind: fc.constant("done" as const), result: commandResult, slot }),
  fc.record({ kind: fc.constant("read" as const), result: txResult, applied: slot }),
  fc.constant({ kind: "overloaded" as const }),
  fc.record({ kind: fc.constant("redirect" as const), leader: fc.option(nodeId, { nil: null }) }),
  fc.record({ kind: fc.constant("stale" as const), applied: slot }),
  fc.record({ kind: fc.constant("unavailable" as const), reason: fc.string({ maxLength: 20 }) }),
  fc.record({ kind: fc.constant("node" as const), identity: fc.constantFrom("n1~0123456789abcdef", "n2"), hosted: fc.option(hosted, { nil: null }) }),
  fc.constant({ kind: "created" as const }),
  fc.constant({ kind: "joined" as const }),
  fc.record({ kind: fc.constant("exists" as const), hosted }),
);

export const cellMessage: fc.Arbitrary<CellMessage> = fc.oneof(
  fc.record({ kind: fc.constant("prepare" as const), ballot, from: slot }),
  fc.record({ kind: fc.constant("promise" as const), ballot, from: slot, compactedThrough: slot, accepted: fc.array(fc.record({ slot, ballot, value: logValue }), { maxLength: 3 }) }),
  fc.record({ kind: fc.constant("accept" as const), ballot, slot, value: logValue, chosenThrough: slot }),
  fc.record({ kind: fc.constant("accepted" as const), ballot, slot }),
  fc.record({ kind: fc.constant("nack" as const), ballot, promised: ballot }),
  fc.record({ kind: fc.constant("commit" as const), ballot, through: slot }),
  fc.record({ kind: fc.constant("learn" as const), from: slot }),
  fc.record({ kind: fc.constant("teach" as const), entries: fc.array(fc.record({ slot, value: logValue }), { maxLength: 3 }), chosenThrough: slot }),
  fc.record({ kind: fc.constant("teach" as const), entries: fc.constant([]), chosenThrough: slot, snapshot: fc.record({ slot, state: fc.uint8Array({ maxLength: 40 }) }) }),
  fc.record({ kind: fc.constant("request" as const), client: nodeId, id: slot, session: slot, seq: slot, acked: slot, op: operation, consistency: fc.constantFrom("consistent" as const, "eventual" as const), minApplied: slot, force: fc.boolean() }),
  fc.record({ kind: fc.constant("reply" as const), client: nodeId, id: slot, outcome }),
);

const anyMessage = fc.oneof(
  { arbitrary: cellMessage, weight: 10 },
  { arbitrary: fc.record({ kind: fc.constant("create" as const), client: nodeId, id: slot, genesis: fc.record({ members: fc.array(nodeId, { minLength: 1, maxLength: 7 }), incarnation: fc.constantFrom("0123456789abcdef", "ffffffffffffffff"), alpha: fc.integer({ min: 1, max: 8 }), sessionTtlMs: fc.nat(), sessionsMax: fc.nat(200) }) }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("join" as const), client: nodeId, id: slot, incarnation: fc.constantFrom("0123456789abcdef", "0000000000000001") }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant("hello" as const), client: nodeId, id: slot }), weight: 1 },
);

export const envelopes: fc.Arbitrary<Envelope[]> = fc.array(fc.record({ cell: fc.constantFrom("vol-1", "vol-2", "é"), message: anyMessage }), { minLength: 1, maxLength: 4 });

/** A printable form in which bytes of any Uint8Array subclass compare equal by content. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v) => {
    if (typeof v === "bigint") return `${v}n`;
    if (v instanceof Uint8Array) return `bytes:${Array.from(v).join(",")}`;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : 1)));
    }
    return v;
  });
}
