// The schema of a frame body, version by version. A body is a CBOR map
//   { v: protocol version, m: [ message, ... ], d: [ discovery message, ... ] }
// and every message is a map with its cell `c` and kind `k`, then short field names.
// Several cells' messages for the same peer share one body. `d`, absent when empty, holds
// discovery messages (src/discovery/messages.ts: gossip, lookups, the control plane's peer-table requests, and their answers), which
// belong to no cell; a decoder that predates them ignores the field. Decoding checks every field's
// type and bound and never throws; it does not apply the data model's limits (the replica
// answers those with a typed rejection).

import type { TxResult } from "../core/kv.ts";
import type {
  AcceptedEntry,
  Ballot,
  CellGenesis,
  HostedCell,
  CellMessage,
  ChosenEntry,
  Command,
  CommandResult,
  ConfigChange,
  Envelope,
  LogValue,
  NodeMessage,
  Operation,
  ReplyOutcome,
} from "../core/messages.ts";
import type { Condition, RejectReason, ScanRange, Transaction, Write } from "../core/transaction.ts";
import { isRecord, rejectReasons as allRejectReasons } from "../core/transaction.ts";
import type { Value } from "../core/value.ts";
import { type DiscoveryMessage, decodeMessage as decodeDiscoveryMessage } from "../discovery/messages.ts";
import { limits } from "../limits.ts";
import { EncodedCbor, decodeCbor, encodeCbor } from "./cbor.ts";

export const protocolVersion = 2;

export type BodyRejectReason = "badCbor" | "unsupportedProtocol" | "unknownKind" | "badSchema";

/**
 * A discovery message of a body: its kind (for the role check) and its wire form, which the
 * decoder has checked in full and the discovery layer takes as it is.
 */
export interface DiscoveryPart {
  readonly kind: DiscoveryMessage["kind"];
  readonly wire: unknown;
}

/** Discovery messages a body may carry: a node sends at most a few per peer at once. */
export const discoveryPartsMax = 16;

export type BodyResult =
  | { readonly ok: true; readonly messages: readonly Envelope[]; readonly discovery: readonly DiscoveryPart[] }
  | { readonly ok: false; readonly reason: BodyRejectReason; readonly detail: string };

export class SchemaError extends Error {
  constructor(
    readonly reason: BodyRejectReason,
    detail: string,
  ) {
    super(detail);
  }
}

const listMax = 4096;
const stringMax = 1024;
const rejectReasons: ReadonlySet<string> = new Set<RejectReason>(allRejectReasons);

// ---- encoding -------------------------------------------------------------------------

const testCodes = { exists: "ex", notExists: "nx", equals: "eq", notEquals: "ne", lt: "lt", le: "le", gt: "gt", ge: "ge" } as const;
const testNames = new Map<string, Condition["test"]>(Object.entries(testCodes).map(([name, code]) => [code, name as Condition["test"]]));
const opCodes = { put: "p", delete: "d", increment: "i" } as const;

function encodeTransaction(tx: Transaction): unknown {
  const out: Record<string, unknown> = {
    r: tx.reads,
    c: tx.conditions.map((c) => ("value" in c ? [c.key, testCodes[c.test], c.value] : [c.key, testCodes[c.test]])),
    w: tx.writes.map((w) => (w.op === "put" ? [w.key, "p", w.value] : w.op === "delete" ? [w.key, "d"] : [w.key, "i", w.by])),
  };
  if (tx.scan !== undefined) out.s = tx.scan.end === undefined ? [tx.scan.start, tx.scan.limit] : [tx.scan.start, tx.scan.limit, tx.scan.end];
  return out;
}

function encodeOperation(op: Operation): unknown {
  switch (op.kind) {
    case "tx":
      return { t: encodeTransaction(op.tx) };
    case "config":
      return { g: [op.change.kind === "addMember" ? "+" : "-", op.change.node] };
    case "openSession":
      return { o: [op.client, op.nonce] };
    case "closeSession":
      return { x: true };
    case "lease":
      return { l: [op.action === "acquire" ? "a" : "r", op.name, op.holder, op.ttlMs] };
  }
}

/**
 * Log values already encoded, by identity. A leader sends one value in an accept to every
 * member and writes it in its accept and chosen records, and a follower writes it twice:
 * encoded once, the bytes are reused. Log values are immutable (the core never changes one
 * it has made), which is what makes the bytes stay right.
 */
const encodedLogValues = new WeakMap<LogValue, EncodedCbor>();

export function encodeLogValue(value: LogValue): EncodedCbor {
  let encoded = encodedLogValues.get(value);
  if (encoded === undefined) {
    const tree = value.kind === "noop" ? { n: true } : { b: value.commands.map((c: Command) => [c.session, c.seq, c.acked, encodeOperation(c.op)]), st: [encodeBallot(value.stamp.ballot), value.stamp.time] };
    encoded = new EncodedCbor(encodeCbor(tree));
    encodedLogValues.set(value, encoded);
  }
  return encoded;
}

export const encodeBallot = (b: Ballot): unknown => [b.round, b.node];
const ballot = encodeBallot;

function encodeTxResult(result: TxResult): unknown {
  if (result.status === "rejected") return { s: "r", why: result.reason, d: result.detail };
  const out: Record<string, unknown> = { s: result.status === "committed" ? "c" : "f", r: result.reads };
  if (result.scan !== undefined) out.sc = [result.scan.entries, result.scan.next];
  if (result.status === "committed") out.i = result.increments;
  else Object.assign(out, { ci: result.condition, ck: result.key, ca: result.actual });
  return out;
}

function encodeCommandResult(result: CommandResult): unknown {
  if (result.status === "configured") return { s: "g", m: result.members, e: result.effectiveSlot };
  if (result.status === "session") return { s: "o", n: result.session, t: result.ttlMs };
  if (result.status === "closed") return { s: "x" };
  if (result.status === "lease") return { s: "l", n: result.name, g: result.granted, h: result.holder, t: result.remainingMs };
  return encodeTxResult(result);
}

function encodeOutcome(outcome: ReplyOutcome): unknown {
  switch (outcome.kind) {
    case "done":
      return { o: "d", r: encodeCommandResult(outcome.result), n: outcome.slot };
    case "read":
      return { o: "e", r: encodeTxResult(outcome.result), n: outcome.applied };
    case "overloaded":
      return { o: "o" };
    case "redirect":
      return { o: "l", l: outcome.leader };
    case "stale":
      return { o: "s", n: outcome.applied };
    case "unavailable":
      return { o: "u", why: outcome.reason };
    case "node":
      return { o: "n", id: outcome.identity, h: outcome.hosted === null ? null : encodeHosted(outcome.hosted) };
    case "created":
      return { o: "c" };
    case "joined":
      return { o: "j" };
    case "exists":
      return { o: "x", h: encodeHosted(outcome.hosted) };
  }
}

function encodeHosted(hosted: HostedCell): unknown {
  return [hosted.incarnation, hosted.members, hosted.applied];
}

export function encodeGenesis(genesis: CellGenesis): unknown {
  return [genesis.members, genesis.incarnation, genesis.alpha, genesis.sessionTtlMs, genesis.sessionsMax];
}

function encodeMessage(cell: string, m: CellMessage | NodeMessage): unknown {
  switch (m.kind) {
    case "hello":
      return { c: cell, k: "HLO", cl: m.client, q: m.id };
    case "create":
      return { c: cell, k: "NEW", cl: m.client, q: m.id, g: encodeGenesis(m.genesis) };
    case "join":
      return { c: cell, k: "JON", cl: m.client, q: m.id, i: m.incarnation };
    case "prepare":
      return { c: cell, k: "P1a", b: ballot(m.ballot), f: m.from };
    case "promise":
      return { c: cell, k: "P1b", b: ballot(m.ballot), f: m.from, a: m.accepted.map((e) => [e.slot, ballot(e.ballot), encodeLogValue(e.value)]), t: m.compactedThrough };
    case "accept":
      return { c: cell, k: "P2a", b: ballot(m.ballot), n: m.slot, x: encodeLogValue(m.value), t: m.chosenThrough };
    case "accepted":
      return { c: cell, k: "P2b", b: ballot(m.ballot), n: m.slot };
    case "nack":
      return { c: cell, k: "NAK", b: ballot(m.ballot), p: ballot(m.promised) };
    case "commit":
      return { c: cell, k: "CMT", b: ballot(m.ballot), t: m.through };
    case "learn":
      return { c: cell, k: "LRN", f: m.from };
    case "teach": {
      const out: Record<string, unknown> = { c: cell, k: "TCH", e: m.entries.map((e) => [e.slot, encodeLogValue(e.value)]), t: m.chosenThrough };
      if (m.snapshot !== undefined) out.s = [m.snapshot.slot, m.snapshot.state];
      return out;
    }
    case "request":
      return { c: cell, k: "REQ", cl: m.client, q: m.id, se: m.session, sq: m.seq, ak: m.acked, op: encodeOperation(m.op), y: m.consistency === "consistent" ? 1 : 0, ma: m.minApplied, fo: m.force };
    case "reply":
      return { c: cell, k: "REP", cl: m.client, q: m.id, r: encodeOutcome(m.outcome) };
  }
}

/** A body of cell messages and, optionally, discovery messages in their wire form (src/discovery `encodeMessage`). */
export function encodeBody(messages: readonly Envelope[], discovery: readonly unknown[] = []): Uint8Array {
  const body: Record<string, unknown> = { v: protocolVersion, m: messages.map((e) => encodeMessage(e.cell, e.message)) };
  if (discovery.length > 0) body.d = discovery;
  return encodeCbor(body);
}

// ---- decoding -------------------------------------------------------------------------

export function bad(path: string, problem: string): never {
  throw new SchemaError("badSchema", `${path}: ${problem}`);
}

function map(input: unknown, path: string): Record<string, unknown> {
  if (!isRecord(input)) bad(path, "expected a map");
  return input;
}

export function list(input: unknown, path: string, max = listMax): unknown[] {
  if (!Array.isArray(input)) bad(path, "expected a list");
  if (input.length > max) bad(path, `more than ${max} items`);
  return input;
}

export function str(input: unknown, path: string, max = stringMax): string {
  if (typeof input !== "string") bad(path, "expected text");
  if (input.length > max) bad(path, `text longer than ${max}`);
  return input;
}

/** A non-negative safe integer; cbor-x hands back 64-bit integers as bigint. */
export function nat(input: unknown, path: string): number {
  if (typeof input === "bigint" && input >= 0n && input <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(input);
  if (typeof input === "number" && Number.isSafeInteger(input) && input >= 0) return input;
  return bad(path, "expected a non-negative integer");
}

/** Any safe integer, of either sign (a clock reading: only differences between two matter). */
function safeInteger(input: unknown, path: string): number {
  if (typeof input === "bigint" && input >= BigInt(Number.MIN_SAFE_INTEGER) && input <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(input);
  if (typeof input === "number" && Number.isSafeInteger(input)) return input;
  return bad(path, "expected an integer");
}

function bool(input: unknown, path: string): boolean {
  if (typeof input !== "boolean") bad(path, "expected a boolean");
  return input;
}

function integer(input: unknown, path: string): bigint {
  if (typeof input === "bigint") return input;
  if (typeof input === "number" && Number.isSafeInteger(input)) return BigInt(input);
  return bad(path, "expected an integer");
}

function value(input: unknown, path: string): Value {
  if (typeof input === "boolean") return input;
  if (input instanceof Uint8Array) {
    if (input.length > limits.valueBytesMax) bad(path, "value too large");
    return input;
  }
  return integer(input, path);
}

function nullable<T>(input: unknown, path: string, read: (x: unknown, p: string) => T): T | null {
  return input === null || input === undefined ? null : read(input, path);
}

function incarnation(input: unknown, path: string): string {
  const text = str(input, path, 16);
  if (!/^[0-9a-f]{16}$/.test(text)) bad(path, "expected 16 lowercase hex digits");
  return text;
}

function memberList(input: unknown, path: string): string[] {
  return list(input, path, limits.cellMembersMax).map((n, i) => str(n, `${path}[${i}]`, limits.nodeIdBytesMax));
}

function decodeHosted(input: unknown, path: string): HostedCell {
  const [inc, members, applied] = list(input, path, 3);
  return { incarnation: incarnation(inc, `${path}.incarnation`), members: memberList(members, `${path}.members`), applied: safeSlot(applied, `${path}.applied`) };
}

/** A slot or -1 (a replica that has no state yet). */
function safeSlot(input: unknown, path: string): number {
  return input === -1 ? -1 : nat(input, path);
}

/** A genesis as a creator sends it: shapes only here; the node checks the values. */
export function decodeGenesis(input: unknown, path: string): CellGenesis {
  const [members, inc, alpha, sessionTtlMs, sessionsMax] = list(input, path, 5);
  return {
    members: memberList(members, `${path}.members`), incarnation: incarnation(inc, `${path}.incarnation`),
    alpha: nat(alpha, `${path}.alpha`), sessionTtlMs: nat(sessionTtlMs, `${path}.sessionTtlMs`), sessionsMax: nat(sessionsMax, `${path}.sessionsMax`),
  };
}

export function decodeBallot(input: unknown, path: string): Ballot {
  const [round, node] = list(input, path, 2);
  return { round: nat(round, `${path}.round`), node: str(node, `${path}.node`, limits.nodeIdBytesMax) };
}

function decodeTransaction(input: unknown, path: string): Transaction {
  const m = map(input, path);
  const reads = list(m.r, `${path}.r`, limits.keysPerTransactionMax).map((k, i) => str(k, `${path}.r[${i}]`));
  const conditions = list(m.c, `${path}.c`, limits.keysPerTransactionMax).map((raw, i): Condition => {
    const p = `${path}.c[${i}]`;
    const [key, code, operand] = list(raw, p, 3);
    const k = str(key, `${p}.key`);
    const test = testNames.get(str(code, `${p}.test`));
    if (test === undefined) bad(`${p}.test`, "unknown test");
    if (test === "exists" || test === "notExists") return { key: k, test };
    if (test === "equals" || test === "notEquals") return { key: k, test, value: value(operand, `${p}.value`) };
    return { key: k, test, value: integer(operand, `${p}.value`) };
  });
  const writes = list(m.w, `${path}.w`, limits.keysPerTransactionMax).map((raw, i): Write => {
    const p = `${path}.w[${i}]`;
    const [key, code, operand] = list(raw, p, 3);
    const k = str(key, `${p}.key`);
    if (code === opCodes.put) return { key: k, op: "put", value: value(operand, `${p}.value`) };
    if (code === opCodes.delete) return { key: k, op: "delete" };
    if (code === opCodes.increment) return { key: k, op: "increment", by: integer(operand, `${p}.by`) };
    return bad(`${p}.op`, "unknown write");
  });
  const tx: Transaction = { reads, conditions, writes };
  if (m.s === undefined) return tx;
  const [start, limit, end] = list(m.s, `${path}.s`, 3);
  const scan: ScanRange = { start: str(start, `${path}.s.start`), limit: nat(limit, `${path}.s.limit`) };
  return { ...tx, scan: end === undefined ? scan : { ...scan, end: str(end, `${path}.s.end`) } };
}

function decodeOperation(input: unknown, path: string): Operation {
  const m = map(input, path);
  if (m.t !== undefined) return { kind: "tx", tx: decodeTransaction(m.t, `${path}.t`) };
  if (m.o !== undefined) {
    const [client, nonce] = list(m.o, `${path}.o`, 2);
    return { kind: "openSession", client: str(client, `${path}.o.client`, limits.nodeIdBytesMax), nonce: nat(nonce, `${path}.o.nonce`) };
  }
  if (m.x === true) return { kind: "closeSession" };
  if (m.l !== undefined) {
    const [action, name, holder, ttlMs] = list(m.l, `${path}.l`, 4);
    if (action !== "a" && action !== "r") bad(`${path}.l.action`, "unknown lease action");
    return { kind: "lease", action: action === "a" ? "acquire" : "release", name: str(name, `${path}.l.name`, limits.leaseNameBytesMax), holder: str(holder, `${path}.l.holder`, limits.nodeIdBytesMax), ttlMs: nat(ttlMs, `${path}.l.ttlMs`) };
  }
  const [sign, node] = list(m.g, `${path}.g`, 2);
  const target = str(node, `${path}.g.node`, limits.nodeIdBytesMax);
  if (sign !== "+" && sign !== "-") bad(`${path}.g`, "unknown change");
  const change: ConfigChange = { kind: sign === "+" ? "addMember" : "removeMember", node: target };
  return { kind: "config", change };
}

export function decodeLogValue(input: unknown, path: string): LogValue {
  const m = map(input, path);
  if (m.n === true) return { kind: "noop" };
  const commands = list(m.b, `${path}.b`, limits.batchCommandsMax).map((raw, i): Command => {
    const [session, seq, acked, op] = list(raw, `${path}.b[${i}]`, 4);
    return { session: nat(session, `${path}.b[${i}].session`), seq: nat(seq, `${path}.b[${i}].seq`), acked: nat(acked, `${path}.b[${i}].acked`), op: decodeOperation(op, `${path}.b[${i}].op`) };
  });
  const [stampBallot, stampTime] = list(m.st, `${path}.st`, 2);
  return { kind: "batch", commands, stamp: { ballot: decodeBallot(stampBallot, `${path}.st.ballot`), time: safeInteger(stampTime, `${path}.st.time`) } };
}

function decodeReads(input: unknown, path: string): (Value | null)[] {
  return list(input, path).map((v, i) => nullable(v, `${path}[${i}]`, value));
}

function decodeTxResult(input: unknown, path: string): TxResult {
  const m = map(input, path);
  if (m.s === "r") {
    const reason = str(m.why, `${path}.why`);
    if (!rejectReasons.has(reason)) bad(`${path}.why`, "unknown reason");
    return { status: "rejected", reason: reason as RejectReason, detail: str(m.d, `${path}.d`) };
  }
  const reads = decodeReads(m.r, `${path}.r`);
  let scan: { entries: [string, Value][]; next: string | null } | undefined;
  if (m.sc !== undefined) {
    const [entries, next] = list(m.sc, `${path}.sc`, 2);
    scan = {
      entries: list(entries, `${path}.sc.entries`).map((e, i) => {
        const [k, v] = list(e, `${path}.sc[${i}]`, 2);
        return [str(k, `${path}.sc[${i}].key`), value(v, `${path}.sc[${i}].value`)];
      }),
      next: nullable(next, `${path}.sc.next`, str),
    };
  }
  const withScan = <T extends object>(r: T) => (scan === undefined ? r : { ...r, scan });
  if (m.s === "c") {
    const increments = list(m.i, `${path}.i`).map((e, i): [string, bigint] => {
      const [k, v] = list(e, `${path}.i[${i}]`, 2);
      return [str(k, `${path}.i[${i}].key`), integer(v, `${path}.i[${i}].value`)];
    });
    return withScan({ status: "committed" as const, reads, increments });
  }
  if (m.s === "f") {
    return withScan({
      status: "conditionFailed" as const, reads, condition: nat(m.ci, `${path}.ci`), key: str(m.ck, `${path}.ck`), actual: nullable(m.ca, `${path}.ca`, value),
    });
  }
  return bad(`${path}.s`, "unknown status");
}

function decodeCommandResult(input: unknown, path: string): CommandResult {
  const m = map(input, path);
  if (m.s === "g") {
    return { status: "configured", members: list(m.m, `${path}.m`, 16).map((n, i) => str(n, `${path}.m[${i}]`)), effectiveSlot: nat(m.e, `${path}.e`) };
  }
  if (m.s === "o") return { status: "session", session: nat(m.n, `${path}.n`), ttlMs: nat(m.t, `${path}.t`) };
  if (m.s === "x") return { status: "closed" };
  if (m.s === "l") {
    return { status: "lease", name: str(m.n, `${path}.n`, limits.leaseNameBytesMax), granted: bool(m.g, `${path}.g`), holder: nullable(m.h, `${path}.h`, (x, p) => str(x, p, limits.nodeIdBytesMax)), remainingMs: nat(m.t, `${path}.t`) };
  }
  return decodeTxResult(m, path);
}

function decodeOutcome(input: unknown, path: string): ReplyOutcome {
  const m = map(input, path);
  switch (m.o) {
    case "d":
      return { kind: "done", result: decodeCommandResult(m.r, `${path}.r`), slot: nat(m.n, `${path}.n`) };
    case "e":
      return { kind: "read", result: decodeTxResult(m.r, `${path}.r`), applied: nat(m.n, `${path}.n`) };
    case "o":
      return { kind: "overloaded" };
    case "l":
      return { kind: "redirect", leader: nullable(m.l, `${path}.l`, str) };
    case "s":
      return { kind: "stale", applied: nat(m.n, `${path}.n`) };
    case "u":
      return { kind: "unavailable", reason: str(m.why, `${path}.why`) };
    case "n":
      return { kind: "node", identity: str(m.id, `${path}.id`, limits.nodeIdBytesMax), hosted: nullable(m.h, `${path}.h`, decodeHosted) };
    case "c":
      return { kind: "created" };
    case "j":
      return { kind: "joined" };
    case "x":
      return { kind: "exists", hosted: decodeHosted(m.h, `${path}.h`) };
    default:
      return bad(`${path}.o`, "unknown outcome");
  }
}

function decodeMessage(input: unknown, path: string): Envelope {
  const m = map(input, path);
  const cell = str(m.c, `${path}.c`, limits.keyBytesMax);
  const message = ((): CellMessage | NodeMessage => {
    switch (m.k) {
      case "HLO":
        return { kind: "hello", client: str(m.cl, `${path}.cl`, limits.nodeIdBytesMax), id: nat(m.q, `${path}.q`) };
      case "NEW":
        return { kind: "create", client: str(m.cl, `${path}.cl`, limits.nodeIdBytesMax), id: nat(m.q, `${path}.q`), genesis: decodeGenesis(m.g, `${path}.g`) };
      case "JON":
        return { kind: "join", client: str(m.cl, `${path}.cl`, limits.nodeIdBytesMax), id: nat(m.q, `${path}.q`), incarnation: incarnation(m.i, `${path}.i`) };
      case "P1a":
        return { kind: "prepare", ballot: decodeBallot(m.b, `${path}.b`), from: nat(m.f, `${path}.f`) };
      case "P1b":
        return {
          kind: "promise", ballot: decodeBallot(m.b, `${path}.b`), from: nat(m.f, `${path}.f`), compactedThrough: nat(m.t, `${path}.t`),
          accepted: list(m.a, `${path}.a`).map((raw, i): AcceptedEntry => {
            const [slot, b, v] = list(raw, `${path}.a[${i}]`, 3);
            return { slot: nat(slot, `${path}.a[${i}].slot`), ballot: decodeBallot(b, `${path}.a[${i}].ballot`), value: decodeLogValue(v, `${path}.a[${i}].value`) };
          }),
        };
      case "P2a":
        return { kind: "accept", ballot: decodeBallot(m.b, `${path}.b`), slot: nat(m.n, `${path}.n`), value: decodeLogValue(m.x, `${path}.x`), chosenThrough: nat(m.t, `${path}.t`) };
      case "P2b":
        return { kind: "accepted", ballot: decodeBallot(m.b, `${path}.b`), slot: nat(m.n, `${path}.n`) };
      case "NAK":
        return { kind: "nack", ballot: decodeBallot(m.b, `${path}.b`), promised: decodeBallot(m.p, `${path}.p`) };
      case "CMT":
        return { kind: "commit", ballot: decodeBallot(m.b, `${path}.b`), through: nat(m.t, `${path}.t`) };
      case "LRN":
        return { kind: "learn", from: nat(m.f, `${path}.f`) };
      case "TCH": {
        const entries = list(m.e, `${path}.e`).map((raw, i): ChosenEntry => {
          const [slot, v] = list(raw, `${path}.e[${i}]`, 2);
          return { slot: nat(slot, `${path}.e[${i}].slot`), value: decodeLogValue(v, `${path}.e[${i}].value`) };
        });
        const teach = { kind: "teach" as const, entries, chosenThrough: nat(m.t, `${path}.t`) };
        if (m.s === undefined) return teach;
        const [slot, state] = list(m.s, `${path}.s`, 2);
        if (!(state instanceof Uint8Array)) bad(`${path}.s.state`, "expected bytes");
        return { ...teach, snapshot: { slot: nat(slot, `${path}.s.slot`), state } };
      }
      case "REQ": {
        const consistency = m.y === 1 ? "consistent" : m.y === 0 ? "eventual" : bad(`${path}.y`, "unknown consistency");
        return {
          kind: "request", client: str(m.cl, `${path}.cl`, limits.nodeIdBytesMax), id: nat(m.q, `${path}.q`), session: nat(m.se, `${path}.se`), seq: nat(m.sq, `${path}.sq`), acked: nat(m.ak, `${path}.ak`), op: decodeOperation(m.op, `${path}.op`),
          consistency, minApplied: nat(m.ma, `${path}.ma`), force: bool(m.fo, `${path}.fo`),
        };
      }
      case "REP":
        return { kind: "reply", client: str(m.cl, `${path}.cl`, limits.nodeIdBytesMax), id: nat(m.q, `${path}.q`), outcome: decodeOutcome(m.r, `${path}.r`) };
      default:
        throw new SchemaError("unknownKind", `${path}.k: unknown message kind ${JSON.stringify(String(m.k)).slice(0, 40)}`);
    }
  })();
  return { cell, message };
}

export function decodeBody(bytes: Uint8Array): BodyResult {
  const decoded = decodeCbor(bytes);
  if (!decoded.ok) return { ok: false, reason: "badCbor", detail: decoded.detail };
  try {
    const body = map(decoded.value, "body");
    if (body.v !== protocolVersion) {
      return { ok: false, reason: "unsupportedProtocol", detail: `protocol version ${String(body.v).slice(0, 20)}` };
    }
    const messages = list(body.m, "body.m").map((m, i) => decodeMessage(m, `m[${i}]`));
    const discovery = body.d === undefined ? [] : list(body.d, "body.d", discoveryPartsMax).map((wire, i): DiscoveryPart => {
      const decoded = decodeDiscoveryMessage(wire);
      if (!decoded.ok) throw new SchemaError(decoded.reason === "unknownKind" ? "unknownKind" : "badSchema", `d[${i}]: ${decoded.detail}`);
      return { kind: decoded.message.kind, wire };
    });
    return { ok: true, messages, discovery };
  } catch (error) {
    if (error instanceof SchemaError) return { ok: false, reason: error.reason, detail: error.message };
    // Anything else is a bug in this decoder, but a frame must never take the node down.
    return { ok: false, reason: "badSchema", detail: `decoder error: ${error instanceof Error ? error.message : String(error)}` };
  }
}
