// The discovery layer's messages: their types, their wire form (plain data for a CBOR frame
// body: short keys, entries and peer records as tuples), and a decoder that checks every
// field's type and bound and never throws. A message that fails comes back as a typed
// rejection, to be dropped and counted by the caller.
//
//   gossip        {k:"g", s: session, t: step, ...sections}              node <-> node
//   lookup        {k:"l", i: request id, c: [cell names]}                client -> node
//   lookupAnswer  {k:"a", i: request id, a: [answers], p: [peer infos]}  node -> client
//   peersRequest  {k:"q", i: request id, s: start}                       control -> node
//   peersAnswer   {k:"t", i: request id, r: [peer reports], x: next}     node -> control
//
// A peers request asks a node for its peer table, from position `s` of the table's order;
// the answer holds the records that fit one message, each with how long ago the answering
// node last heard from that peer itself (null: never), and `x`, where the next page starts
// (null: this was the last). The first page starts with the answering node's own record.
//
// A gossip message is made of optional sections; each answers sections of the message
// before it (node.ts has the rules). Digests are 8 bytes, big-endian, high word first.
//
//   f  the sender's own peer record          [identity, address, generation, heartbeat, status]
//   b  busy: the sender answers this session with liveness only
//   r  rumors: peer records
//   pd the peer table's digest               pb its 64 bucket digests
//   pw peer buckets wanted                   pr peer records of differing buckets
//   rt the cell tree's root digest           n  the sender's number of entries
//   tr [depth, [parents], digests]           the sender's digests of every child at `depth` of
//                                            these parents (subtrees one descent step up; the
//                                            root is parent 0 of the first step), 4 bytes each
//   c  [counts]                              with the first tree step: the sender's entries under
//                                            each first-level subtree
//   wt [depth, [nodes]]                      "send me every entry under these subtrees"
//   lv [[leaves], [counts], items]           per leaf, per entry: name hash, entry hash, stamp
//                                            (whole seconds), 12 bytes
//   w  [name hashes]                         "send me your entries with these name hashes"
//   e  [entries]                             [cell, incarnation, epoch, version, ballot, leader, refreshedMs, [members]]

import { type CellEntry, canonicalEntry } from "./entry.ts";
import { isAddress, isCellName, isIdentity, isIncarnation, isNodeId } from "./ids.ts";
import { discoveryLimits } from "./limits.ts";
import type { PeerRecord, PeerStatus } from "./peers.ts";

export interface TreeSection {
  /** The depth of the digests; the parents are one descent step up (or the root). */
  readonly depth: number;
  readonly parents: readonly number[];
  /** The sender's 32-bit digests of every child of each parent, in order, 4 bytes each. */
  readonly hashes: Uint8Array;
}

export interface SubtreesSection {
  readonly depth: number;
  readonly nodes: readonly number[];
}

export interface LeavesSection {
  readonly leaves: readonly number[];
  /** How many items each leaf has in `items`. */
  readonly counts: readonly number[];
  /**
   * Per entry, 12 bytes: its name's 32-bit placing hash, the high word of its entry hash, and
   * its stamp in whole seconds (mod 2^32), which tells which side probably holds the newer one.
   */
  readonly items: Uint8Array;
}

export interface GossipMessage {
  readonly kind: "gossip";
  readonly session: number;
  readonly step: number;
  readonly from?: PeerRecord;
  readonly busy?: true;
  readonly rumors?: readonly PeerRecord[];
  readonly peersDigest?: Uint8Array;
  readonly peerBuckets?: Uint8Array;
  readonly peerWant?: readonly number[];
  readonly peerRecords?: readonly PeerRecord[];
  readonly root?: Uint8Array;
  /** How many entries the sender holds: a node far behind its peers catches up faster. */
  readonly count?: number;
  readonly tree?: TreeSection;
  /** With the first tree step: how many entries the sender holds under each of its subtrees. */
  readonly counts?: readonly number[];
  readonly wantTree?: SubtreesSection;
  readonly leaves?: LeavesSection;
  readonly want?: readonly number[];
  readonly entries?: readonly CellEntry[];
}

export interface LookupRequest {
  readonly kind: "lookup";
  readonly id: number;
  readonly cells: readonly string[];
}

/**
 * What one node can say about one cell:
 *  - found       its replica of the cache holds this entry (a hint: it may be stale)
 *  - hosted      it hosts a replica of the cell itself (certain), with its cache entry if any
 *  - moved       it left the cell; the pointer is the membership it knew then (certain about
 *                the past), with its cache entry if any
 *  - noSuchCell  it has no entry, no pointer and no replica. Certain only about this node: a
 *                cell created a moment ago may not have reached it yet.
 */
export type CellAnswer =
  | { readonly cell: string; readonly status: "found"; readonly entry: CellEntry }
  | { readonly cell: string; readonly status: "hosted"; readonly entry: CellEntry | null }
  | { readonly cell: string; readonly status: "moved"; readonly pointer: CellEntry; readonly leftMs: number; readonly entry: CellEntry | null }
  | { readonly cell: string; readonly status: "noSuchCell" };

/** How the answering node reaches a member, and what it believes about it. */
export interface PeerInfo {
  readonly identity: string;
  readonly address: string;
  readonly status: PeerStatus;
}

export interface LookupAnswer {
  readonly kind: "lookupAnswer";
  readonly id: number;
  readonly answers: readonly CellAnswer[];
  readonly peers: readonly PeerInfo[];
}

export interface PeersRequest {
  readonly kind: "peersRequest";
  readonly id: number;
  /** Where in the answering node's table to start (0 for the first page). */
  readonly start: number;
}

/** One peer as the answering node sees it: the merged record, and its own last contact. */
export interface PeerReport {
  readonly record: PeerRecord;
  /** How long ago the answering node last received a message from the peer; null: never. */
  readonly heardAgoMs: number | null;
}

export interface PeersAnswer {
  readonly kind: "peersAnswer";
  readonly id: number;
  readonly peers: readonly PeerReport[];
  /** The `start` of the next page; null when the table ends here. */
  readonly next: number | null;
}

export type DiscoveryMessage = GossipMessage | LookupRequest | LookupAnswer | PeersRequest | PeersAnswer;

export type DiscoveryRejectReason = "badSchema" | "unknownKind" | "overLimit";

export type DecodeResult<T> = { readonly ok: true; readonly message: T } | { readonly ok: false; readonly reason: DiscoveryRejectReason; readonly detail: string };

// ---- encoding -------------------------------------------------------------------------

const statusCodes: Readonly<Record<PeerStatus, string>> = { alive: "a", suspected: "s", dead: "d" };
const statusNames = new Map<unknown, PeerStatus>([["a", "alive"], ["s", "suspected"], ["d", "dead"]]);

export function encodeEntry(entry: CellEntry): unknown[] {
  return [entry.cell, entry.incarnation, entry.epoch, entry.version, entry.ballot, entry.leader, entry.refreshedMs, [...entry.members]];
}

export function encodePeerRecord(record: PeerRecord): unknown[] {
  return [record.identity, record.address, record.generation, record.heartbeat, statusCodes[record.status]];
}

/** The wire form of any discovery message: plain data for a CBOR body. */
export function encodeMessage(message: DiscoveryMessage): Record<string, unknown> {
  switch (message.kind) {
    case "lookup":
      return { k: "l", i: message.id, c: [...message.cells] };
    case "lookupAnswer":
      return {
        k: "a",
        i: message.id,
        a: message.answers.map(encodeAnswer),
        p: message.peers.map((peer) => [peer.identity, peer.address, statusCodes[peer.status]]),
      };
    case "gossip":
      return encodeGossip(message);
    case "peersRequest":
      return { k: "q", i: message.id, s: message.start };
    case "peersAnswer":
      return { k: "t", i: message.id, r: message.peers.map(encodePeerReport), x: message.next };
  }
}

export function encodePeerReport(report: PeerReport): unknown[] {
  return [...encodePeerRecord(report.record), report.heardAgoMs];
}

function encodeAnswer(answer: CellAnswer): unknown[] {
  switch (answer.status) {
    case "found":
      return [answer.cell, "f", encodeEntry(answer.entry)];
    case "hosted":
      return [answer.cell, "h", answer.entry === null ? null : encodeEntry(answer.entry)];
    case "moved":
      return [answer.cell, "m", encodeEntry(answer.pointer), answer.leftMs, answer.entry === null ? null : encodeEntry(answer.entry)];
    case "noSuchCell":
      return [answer.cell, "n"];
  }
}

function encodeGossip(m: GossipMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { k: "g", s: m.session, t: m.step };
  if (m.from !== undefined) out.f = encodePeerRecord(m.from);
  if (m.busy === true) out.b = true;
  if (m.rumors !== undefined) out.r = m.rumors.map(encodePeerRecord);
  if (m.peersDigest !== undefined) out.pd = m.peersDigest;
  if (m.peerBuckets !== undefined) out.pb = m.peerBuckets;
  if (m.peerWant !== undefined) out.pw = [...m.peerWant];
  if (m.peerRecords !== undefined) out.pr = m.peerRecords.map(encodePeerRecord);
  if (m.root !== undefined) out.rt = m.root;
  if (m.count !== undefined) out.n = m.count;
  if (m.tree !== undefined) out.tr = [m.tree.depth, [...m.tree.parents], m.tree.hashes];
  if (m.counts !== undefined) out.c = [...m.counts];
  if (m.wantTree !== undefined) out.wt = [m.wantTree.depth, [...m.wantTree.nodes]];
  if (m.leaves !== undefined) out.lv = [[...m.leaves.leaves], [...m.leaves.counts], m.leaves.items];
  if (m.want !== undefined) out.w = [...m.want];
  if (m.entries !== undefined) out.e = m.entries.map(encodeEntry);
  return out;
}

// ---- decoding -------------------------------------------------------------------------

class Invalid {
  constructor(
    readonly reason: DiscoveryRejectReason,
    readonly detail: string,
  ) {}
}

function fail(detail: string, reason: DiscoveryRejectReason = "badSchema"): never {
  throw new Invalid(reason, detail);
}

/** A non-negative safe integer up to `max`; CBOR may hand 64-bit integers over as bigint. */
function integer(value: unknown, field: string, max: number = Number.MAX_SAFE_INTEGER): number {
  let n: number;
  if (typeof value === "number") n = value;
  else if (typeof value === "bigint" && value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER)) n = Number(value);
  else fail(`${field} is not an integer`);
  if (!Number.isSafeInteger(n) || n < 0) fail(`${field} is not a non-negative integer`);
  if (n > max) fail(`${field} is over ${max}`, "overLimit");
  return n;
}

function list(value: unknown, field: string, max: number): readonly unknown[] {
  if (!Array.isArray(value)) fail(`${field} is not a list`);
  if (value.length > max) fail(`${field} has ${value.length} items, over ${max}`, "overLimit");
  return value;
}

function bytes(value: unknown, field: string, length?: number): Uint8Array {
  if (!(value instanceof Uint8Array)) fail(`${field} is not a byte string`);
  if (length !== undefined && value.length !== length) fail(`${field} is ${value.length} bytes, not ${length}`);
  if (value.length > discoveryLimits.messageBytesMax) fail(`${field} is over ${discoveryLimits.messageBytesMax} bytes`, "overLimit");
  return value;
}

function tuple(value: unknown, field: string, lengths: readonly number[]): readonly unknown[] {
  if (!Array.isArray(value) || !lengths.includes(value.length)) fail(`${field} is not a list of ${lengths.join(" or ")}`);
  return value;
}

export function decodeEntry(value: unknown, field = "entry"): CellEntry {
  const t = tuple(value, field, [8]);
  const [cell, incarnation, epoch, version, ballot, leader, refreshedMs, members] = t;
  if (!isCellName(cell)) fail(`${field}: cell name is not 1 to ${discoveryLimits.cellNameBytesMax} bytes of well-formed UTF-8`);
  if (!isIncarnation(incarnation)) fail(`${field}: incarnation is not 16 lowercase hex digits`);
  if (leader !== null && !isIdentity(leader)) fail(`${field}: leader is not an identity`);
  const memberList = list(members, `${field}: members`, discoveryLimits.membersMax);
  if (memberList.length === 0) fail(`${field}: no members`);
  for (const member of memberList) if (!isIdentity(member)) fail(`${field}: a member is not an identity`);
  if (new Set(memberList).size !== memberList.length) fail(`${field}: a member is listed twice`);
  return canonicalEntry({
    cell,
    incarnation,
    epoch: integer(epoch, `${field}: epoch`, 0xffff_ffff),
    version: integer(version, `${field}: version`),
    ballot: integer(ballot, `${field}: ballot`),
    leader: leader as string | null,
    refreshedMs: integer(refreshedMs, `${field}: refreshedMs`),
    members: memberList as string[],
  });
}

export function decodePeerRecord(value: unknown, field = "peer record"): PeerRecord {
  const [identity, address, generation, heartbeat, status] = tuple(value, field, [5]);
  const gen = integer(generation, `${field}: generation`);
  // A bare node id is how a seed nobody has heard from looks, and only that.
  if (!isIdentity(identity) && !(gen === 0 && isNodeId(identity))) fail(`${field}: identity is not nodeId~incarnation`);
  if (!isAddress(address)) fail(`${field}: address is not host:port`);
  const name = statusNames.get(status);
  if (name === undefined) fail(`${field}: status is not a, s or d`);
  return { identity: identity as string, address, generation: gen, heartbeat: integer(heartbeat, `${field}: heartbeat`), status: name };
}

function nodesOf(value: unknown, field: string, depth: number): number[] {
  const nodes = list(value, field, 1 << Math.min(depth, 12)).map((node) => integer(node, field, 2 ** depth - 1));
  return nodes;
}

const leafIndexMax = 2 ** discoveryLimits.leafBitsMax - 1;
const itemsMax = Math.floor(discoveryLimits.messageBytesMax / 4);

function decodeGossip(m: Record<string, unknown>): GossipMessage {
  // Unknown fields are ignored, so that a newer node can add a section during a rolling upgrade.
  const out: { -readonly [K in keyof GossipMessage]: GossipMessage[K] } = {
    kind: "gossip",
    session: integer(m.s, "session", 0xffff_ffff),
    step: integer(m.t, "step", discoveryLimits.sessionStepsMax),
  };
  if (m.f !== undefined) out.from = decodePeerRecord(m.f, "from");
  if (m.b !== undefined) {
    if (m.b !== true) fail("busy is not true");
    out.busy = true;
  }
  if (m.r !== undefined) out.rumors = list(m.r, "rumors", discoveryLimits.rumorsPerMessageMax).map((r) => decodePeerRecord(r, "rumor"));
  if (m.pd !== undefined) out.peersDigest = bytes(m.pd, "peersDigest", 8);
  if (m.pb !== undefined) out.peerBuckets = bytes(m.pb, "peerBuckets", discoveryLimits.peerBuckets * 8);
  if (m.pw !== undefined) out.peerWant = list(m.pw, "peerWant", discoveryLimits.peerBuckets).map((b) => integer(b, "peerWant", discoveryLimits.peerBuckets - 1));
  if (m.pr !== undefined) out.peerRecords = list(m.pr, "peerRecords", discoveryLimits.peerRecordsPerMessageMax).map((r) => decodePeerRecord(r, "peerRecords"));
  if (m.rt !== undefined) out.root = bytes(m.rt, "root", 8);
  if (m.n !== undefined) out.count = integer(m.n, "count", 0xffff_ffff);
  if (m.tr !== undefined) {
    const [depth, parents, hashes] = tuple(m.tr, "tree", [3]);
    const d = integer(depth, "tree: depth", discoveryLimits.leafBitsMax);
    if (d < 1) fail("tree: depth is 0");
    const p = nodesOf(parents, "tree: parents", d);
    const digests = bytes(hashes, "tree: digests");
    const fanout = p.length === 0 ? 0 : digests.length / (4 * p.length);
    if (p.length === 0 || !Number.isInteger(fanout) || fanout < 2 || (fanout & (fanout - 1)) !== 0) fail("tree: digests are not a power-of-two number of 4-byte children per parent");
    out.tree = { depth: d, parents: p, hashes: digests };
  }
  if (m.c !== undefined) out.counts = list(m.c, "counts", 1 << discoveryLimits.treeStepBits).map((count) => integer(count, "counts", 0xffff_ffff));
  if (m.wt !== undefined) {
    const [depth, nodes] = tuple(m.wt, "wantTree", [2]);
    const d = integer(depth, "wantTree: depth", discoveryLimits.leafBitsMax);
    out.wantTree = { depth: d, nodes: nodesOf(nodes, "wantTree: nodes", d) };
  }
  if (m.lv !== undefined) {
    const [leaves, counts, items] = tuple(m.lv, "leaves", [3]);
    const leafList = list(leaves, "leaves: leaves", itemsMax).map((leaf) => integer(leaf, "leaves: leaf", leafIndexMax));
    const countList = list(counts, "leaves: counts", itemsMax).map((count) => integer(count, "leaves: count", itemsMax));
    if (countList.length !== leafList.length) fail("leaves: counts and leaves differ in length");
    const total = countList.reduce((sum, count) => sum + count, 0);
    out.leaves = { leaves: leafList, counts: countList, items: bytes(items, "leaves: items", total * 12) };
  }
  if (m.w !== undefined) out.want = list(m.w, "want", itemsMax).map((hash) => integer(hash, "want", 0xffff_ffff));
  if (m.e !== undefined) out.entries = list(m.e, "entries", itemsMax).map((entry) => decodeEntry(entry));
  return out as GossipMessage;
}

function decodeAnswer(value: unknown): CellAnswer {
  if (!Array.isArray(value) || value.length < 2) fail("answer is not a list");
  const [cell, status] = value as unknown[];
  if (!isCellName(cell)) fail("answer: cell name is not valid");
  const entryOrNull = (v: unknown, field: string): CellEntry | null => (v === null ? null : decodeEntry(v, field));
  const checkCell = (entry: CellEntry | null): void => {
    if (entry !== null && entry.cell !== cell) fail("answer: entry names another cell");
  };
  switch (status) {
    case "f": {
      const [, , entry] = tuple(value, "found answer", [3]);
      const decoded = decodeEntry(entry, "answer: entry");
      checkCell(decoded);
      return { cell, status: "found", entry: decoded };
    }
    case "h": {
      const [, , entry] = tuple(value, "hosted answer", [3]);
      const decoded = entryOrNull(entry, "answer: entry");
      checkCell(decoded);
      return { cell, status: "hosted", entry: decoded };
    }
    case "m": {
      const [, , pointer, leftMs, entry] = tuple(value, "moved answer", [5]);
      const decodedPointer = decodeEntry(pointer, "answer: pointer");
      const decoded = entryOrNull(entry, "answer: entry");
      checkCell(decodedPointer);
      checkCell(decoded);
      return { cell, status: "moved", pointer: decodedPointer, leftMs: integer(leftMs, "answer: leftMs"), entry: decoded };
    }
    case "n":
      tuple(value, "noSuchCell answer", [2]);
      return { cell, status: "noSuchCell" };
    default:
      return fail("answer: status is not f, h, m or n");
  }
}

/** Decodes and checks a discovery message from its wire form. Never throws. */
export function decodeMessage(value: unknown): DecodeResult<DiscoveryMessage> {
  try {
    if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Uint8Array) fail("message is not a map");
    const m = value as Record<string, unknown>;
    switch (m.k) {
      case "g":
        return { ok: true, message: decodeGossip(m) };
      case "l": {
        const cells = list(m.c, "cells", discoveryLimits.lookupCellsMax);
        for (const cell of cells) if (!isCellName(cell)) fail("cells: a cell name is not valid");
        return { ok: true, message: { kind: "lookup", id: integer(m.i, "id", 0xffff_ffff), cells: cells as string[] } };
      }
      case "a": {
        const answers = list(m.a, "answers", discoveryLimits.lookupCellsMax).map(decodeAnswer);
        const peers = list(m.p, "peers", discoveryLimits.lookupCellsMax * discoveryLimits.membersMax * 2).map((p): PeerInfo => {
          const [identity, address, status] = tuple(p, "peer", [3]);
          if (!isIdentity(identity) && !isNodeId(identity)) fail("peer: identity is not valid");
          if (!isAddress(address)) fail("peer: address is not host:port");
          const name = statusNames.get(status);
          if (name === undefined) fail("peer: status is not a, s or d");
          return { identity: identity as string, address, status: name };
        });
        return { ok: true, message: { kind: "lookupAnswer", id: integer(m.i, "id", 0xffff_ffff), answers, peers } };
      }
      case "q":
        return { ok: true, message: { kind: "peersRequest", id: integer(m.i, "id", 0xffff_ffff), start: integer(m.s, "start", discoveryLimits.peersMax) } };
      case "t": {
        const peers = list(m.r, "peers", discoveryLimits.peerReportsPerAnswerMax).map((value): PeerReport => {
          const t = tuple(value, "peer report", [6]);
          const heard = t[5];
          return { record: decodePeerRecord(t.slice(0, 5), "peer report"), heardAgoMs: heard === null ? null : integer(heard, "peer report: heardAgoMs") };
        });
        const next = m.x === null ? null : integer(m.x, "next", discoveryLimits.peersMax);
        return { ok: true, message: { kind: "peersAnswer", id: integer(m.i, "id", 0xffff_ffff), peers, next } };
      }
      default:
        return { ok: false, reason: "unknownKind", detail: `unknown message kind ${JSON.stringify(String(m.k)).slice(0, 40)}` };
    }
  } catch (error) {
    if (error instanceof Invalid) return { ok: false, reason: error.reason, detail: error.detail };
    throw error;
  }
}
