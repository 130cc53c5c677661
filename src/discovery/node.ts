// The discovery layer of one node, pure: the node shell feeds it time, messages and what its
// replicas know, and carries out what it returns. It holds this node's replica of its color's
// cache, its peer table, its forwarding pointers and the set of cells it hosts, and it runs
// one anti-entropy session per round with a random peer:
//
//   step 0  A -> B  A's record, rumors, peer-table digest, cell-tree root
//   step 1  B -> A  B's record and rumors (the probe's answer), and where digests differ:
//                   B's peer bucket digests, and B's digests of the root's 16 children
//   step 2+         each side answers the other's sections: the digests of the children of
//                   subtrees that differ, down to the leaves; per differing leaf its items
//                   (name hash, entry hash); then the entries that differ and the name
//                   hashes wanted; then the wanted entries and any the sender holds newer.
//                   A subtree that one side lacks entirely is sent whole, without descending.
//
// The session ends when a side has nothing to say, after `sessionStepsMax` messages, or when
// a side's budget of `sessionBytesMax` is spent (what is left is found again next round).
// Every message is at most `messageBytesMax` bytes in the project's CBOR. A node answers at
// most `answeredSessionsMax` sessions at once; further opens get only the probe's answer.
//
// Time: `tick(nowMs)` is due at `nextDeadlineMs()`: the next round or a retransmission of the
// open. There is no per-cell timer: each round audits a bounded batch of hosted cells
// (round-robin; the node pushes its view of each), sweeps a bounded number of expired entries
// and every expired pointer.

import { assert } from "../core/assert.ts";
import type { Rng } from "../random.ts";
import { assertReport, type CacheOptions, type CellReport, DiscoveryCache, type MergeOutcome, type PushOutcome } from "./cache.ts";
import type { CellEntry } from "./entry.ts";
import { isAddress, isIdentity, nodeOf } from "./ids.ts";
import { discoveryLimits } from "./limits.ts";
import {
  type CellAnswer,
  type DiscoveryRejectReason,
  decodeMessage,
  encodeEntry,
  encodeMessage,
  encodePeerRecord,
  encodePeerReport,
  type GossipMessage,
  type LookupAnswer,
  type PeerInfo,
  type PeerReport,
  type PeersAnswer,
} from "./messages.ts";
import { type PeerRecord, type PeerSeed, PeerTable, type PeerView, comparePeerRecords } from "./peers.ts";
import { ForwardingPointers } from "./pointers.ts";
import { cborBytes } from "./size.ts";
import { EntryStore } from "./store.ts";

export interface DiscoveryNodeOptions {
  /** `nodeId~incarnation`. */
  readonly identity: string;
  readonly address: string;
  /** Chosen at process start and greater after every restart: the start time in ms. */
  readonly generation: number;
  /** The topology's nodes of this node's color. */
  readonly seeds: readonly PeerSeed[];
  readonly rng: Rng;
  readonly nowMs: number;
  /** A store shared with other replicas (the simulation); a node normally has its own. */
  readonly store?: EntryStore;
  readonly leafBits?: number;
  readonly roundMs?: number;
  readonly sessionBytesMax?: number;
  readonly replyTimeoutMs?: number;
  readonly suspectTimeoutMs?: number;
  readonly entryLifetimeMs?: number;
  readonly refreshIntervalMs?: number;
  readonly clockSkewMs?: number;
  readonly pointerLifetimeMs?: number;
  readonly pointersMax?: number;
  readonly auditsPerRound?: number;
  readonly sweepsPerRound?: number;
  readonly onChange?: CacheOptions["onChange"];
  /** Peer records known at start (a snapshot of a peer's table), taken without rumors. */
  readonly peerRecords?: readonly PeerRecord[];
}

/** A message to send: `wire` goes into a CBOR body to `address`; `bytes` is its encoded size. */
export interface Outgoing {
  readonly to: string;
  readonly address: string;
  readonly message: GossipMessage;
  readonly wire: Record<string, unknown>;
  readonly bytes: number;
}

export interface TickResult {
  readonly messages: readonly Outgoing[];
  /** Hosted cells due for the batched refresh: the node pushes its view of each. */
  readonly audit: readonly string[];
}

export type GossipRejectReason = DiscoveryRejectReason | "wrongKind" | "unknownSender" | "senderMismatch" | "unknownSession" | "treeMismatch";

export type ReceiveResult =
  | { readonly ok: true; readonly messages: readonly Outgoing[] }
  | { readonly ok: false; readonly reason: GossipRejectReason; readonly detail: string };

export type PeersAnswerResult =
  | { readonly ok: true; readonly answer: PeersAnswer; readonly wire: unknown }
  | { readonly ok: false; readonly reason: DiscoveryRejectReason | "wrongKind"; readonly detail: string };

export type AnswerResult =
  | { readonly ok: true; readonly answer: LookupAnswer; readonly wire: Record<string, unknown>; readonly bytes: number }
  | { readonly ok: false; readonly reason: DiscoveryRejectReason | "wrongKind"; readonly detail: string };

interface Session {
  readonly peer: string;
  readonly id: number;
  readonly initiator: boolean;
  bytesSent: number;
  lastMs: number;
  answered: boolean;
  attempts: number;
  deadlineMs: number;
  open: Outgoing | null;
}

export interface DiscoveryStats {
  sessionsOpened: number;
  sessionsAnswered: number;
  sessionsBusy: number;
  probesFailed: number;
  messagesSent: number;
  bytesSent: number;
  entriesSent: number;
  entriesStored: number;
  budgetCuts: number;
  /** Times this node answered a suspicion or death of itself by raising its heartbeat. */
  refutations: number;
  /** Follower pushes held back while the replica caught up. */
  pushesDeferred: number;
  rejected: Partial<Record<GossipRejectReason | MergeOutcome, number>>;
}

const none = -1;
// Bytes a section adds besides its items: its key and up to three list headers.
const sectionOverheadBytes = 24;

/** Room left for a message under construction. */
class Budget {
  used: number;
  cut = false;
  constructor(readonly limit: number, base: number) {
    this.used = base;
  }
  take(bytes: number): boolean {
    if (this.used + bytes > this.limit) {
      this.cut = true;
      return false;
    }
    this.used += bytes;
    return true;
  }
}

function digestBytes(pair: readonly [number, number]): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, pair[0]);
  view.setUint32(4, pair[1]);
  return out;
}

function sameDigest(bytes: Uint8Array, pair: readonly [number, number]): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, 8);
  return view.getUint32(0) === pair[0] && view.getUint32(4) === pair[1];
}

export class DiscoveryNode {
  readonly nodeId: string;
  readonly identity: string;
  readonly cache: DiscoveryCache;
  readonly peers: PeerTable;
  readonly pointers: ForwardingPointers;
  readonly roundMs: number;
  readonly sessionBytesMax: number;
  readonly replyTimeoutMs: number;
  readonly auditsPerRound: number;
  readonly sweepsPerRound: number;
  readonly stats: DiscoveryStats = {
    sessionsOpened: 0, sessionsAnswered: 0, sessionsBusy: 0, probesFailed: 0, messagesSent: 0, bytesSent: 0,
    entriesSent: 0, entriesStored: 0, budgetCuts: 0, refutations: 0, pushesDeferred: 0, rejected: {},
  };
  private readonly rng: Rng;
  private readonly sessions = new Map<string, Session>();
  private nextRoundMs: number;
  private readonly hosted: string[] = [];
  private readonly hostedAt = new Map<string, number>();
  private auditCursor = 0;
  /** The most entries a peer reported lately, and when: a node far below it is catching up. */
  private peerCountSeen = 0;
  private peerCountSeenMs = 0;

  constructor(options: DiscoveryNodeOptions) {
    assert(isIdentity(options.identity), "discovery: identity must be nodeId~incarnation");
    assert(isAddress(options.address), "discovery: address must be host:port");
    this.identity = options.identity;
    this.nodeId = nodeOf(options.identity);
    this.rng = options.rng;
    const store = options.store ?? new EntryStore(options.leafBits === undefined ? {} : { leafBits: options.leafBits });
    const cacheOptions: { -readonly [K in keyof CacheOptions]: CacheOptions[K] } = {};
    if (options.entryLifetimeMs !== undefined) cacheOptions.entryLifetimeMs = options.entryLifetimeMs;
    if (options.refreshIntervalMs !== undefined) cacheOptions.refreshIntervalMs = options.refreshIntervalMs;
    if (options.clockSkewMs !== undefined) cacheOptions.clockSkewMs = options.clockSkewMs;
    if (options.onChange !== undefined) cacheOptions.onChange = options.onChange;
    this.cache = new DiscoveryCache(store, cacheOptions);
    const peerOptions = { identity: options.identity, address: options.address, generation: options.generation, seeds: options.seeds, known: options.peerRecords ?? [] };
    this.peers = new PeerTable(options.suspectTimeoutMs === undefined ? peerOptions : { ...peerOptions, suspectTimeoutMs: options.suspectTimeoutMs });
    const pointerOptions: { lifetimeMs?: number; countMax?: number; store?: EntryStore } = { store };
    if (options.pointerLifetimeMs !== undefined) pointerOptions.lifetimeMs = options.pointerLifetimeMs;
    if (options.pointersMax !== undefined) pointerOptions.countMax = options.pointersMax;
    this.pointers = new ForwardingPointers(pointerOptions);
    this.roundMs = options.roundMs ?? discoveryLimits.gossipRoundMsDefault;
    this.sessionBytesMax = options.sessionBytesMax ?? discoveryLimits.sessionBytesMaxDefault;
    this.replyTimeoutMs = options.replyTimeoutMs ?? discoveryLimits.replyTimeoutMsDefault;
    this.auditsPerRound = options.auditsPerRound ?? discoveryLimits.auditsPerRoundDefault;
    this.sweepsPerRound = options.sweepsPerRound ?? discoveryLimits.sweepsPerRoundDefault;
    assert(this.sessionBytesMax >= 4_096, "discovery: a session needs at least 4 KiB");
    assert(this.replyTimeoutMs * discoveryLimits.openAttemptsMax < this.roundMs, "discovery: a probe must end within its round");
    // Start at a random point of the first round, so that nodes started together spread out.
    this.nextRoundMs = options.nowMs + this.rng.nextInt(this.roundMs);
  }

  // ---- cells ---------------------------------------------------------------------------

  /** This node now hosts a replica of `cell`; it will be audited by the batched refresh. */
  host(cell: string): void {
    this.pointers.delete(cell);
    if (this.hostedAt.has(cell)) return;
    this.hostedAt.set(cell, this.hosted.length);
    this.hosted.push(cell);
  }

  /** This node no longer hosts `cell` (without leaving a pointer: use `leave` for that). */
  unhost(cell: string): void {
    const at = this.hostedAt.get(cell);
    if (at === undefined) return;
    const last = this.hosted.pop() as string;
    if (last !== cell) {
      this.hosted[at] = last;
      this.hostedAt.set(last, at);
    }
    this.hostedAt.delete(cell);
  }

  hosts(cell: string): boolean {
    return this.hostedAt.has(cell);
  }

  get hostedCount(): number {
    return this.hosted.length;
  }

  /** This node was removed from `cell`: keep a forwarding pointer with the membership it knew. */
  leave(report: CellReport, clockMs: number): void {
    assertReport(report);
    const nowMs = Math.floor(clockMs);
    this.unhost(report.cell);
    this.pointers.add(
      { cell: report.cell, incarnation: report.incarnation, epoch: 0, version: report.version, ballot: report.ballot, leader: report.leader, refreshedMs: nowMs, members: [...report.members].sort() },
      nowMs,
    );
  }

  /**
   * A member's view of a hosted cell, on change (and for each cell `tick` lists for audit).
   * While this replica is catching up, a follower's view of a cell the replica does not hold
   * yet is `deferred`: the entry is most likely on its way, and a fresh stamp from every
   * member of every cell the node hosts would crowd out real changes. A leader always pushes.
   */
  push(report: CellReport, nowMs: number): PushOutcome | "deferred" {
    if (report.role === "follower" && this.catchingUp(nowMs) && this.cache.get(report.cell) === null) {
      this.stats.pushesDeferred++;
      return "deferred";
    }
    return this.cache.push(report, nowMs);
  }

  /** What this node can say about `cell` (see CellAnswer). */
  lookup(cell: string, nowMs: number): CellAnswer {
    const entry = this.cache.get(cell);
    if (this.hostedAt.has(cell)) return { cell, status: "hosted", entry };
    const pointer = this.pointers.get(cell, nowMs);
    if (pointer !== null) return { cell, status: "moved", pointer: pointer.entry, leftMs: pointer.leftMs, entry };
    if (entry !== null) return { cell, status: "found", entry };
    return { cell, status: "noSuchCell" };
  }

  /** Answers a client's lookup message; answers fewer cells when all would not fit one message. */
  answer(value: unknown, nowMs: number): AnswerResult {
    const decoded = decodeMessage(value);
    if (!decoded.ok) return decoded;
    if (decoded.message.kind !== "lookup") return { ok: false, reason: "wrongKind", detail: `a ${decoded.message.kind} message is not a lookup` };
    const request = decoded.message;
    const answers: CellAnswer[] = [];
    const peers = new Map<string, PeerInfo>();
    let bytes = 32;
    for (const cell of request.cells) {
      const answer = this.lookup(cell, nowMs);
      const added: PeerInfo[] = [];
      const members = new Set<string>();
      if (answer.status !== "noSuchCell") {
        for (const member of answer.entry?.members ?? []) members.add(member);
        if (answer.status === "moved") for (const member of answer.pointer.members) members.add(member);
      }
      for (const member of members) {
        const node = nodeOf(member);
        if (peers.has(node)) continue;
        const view = this.peers.get(node);
        if (view !== null) added.push({ identity: view.record.identity, address: view.record.address, status: view.record.status });
      }
      const wire = encodeMessage({ kind: "lookupAnswer", id: 0, answers: [answer], peers: added });
      const cost = cborBytes(wire);
      if (bytes + cost > discoveryLimits.messageBytesMax) break;
      bytes += cost;
      answers.push(answer);
      for (const info of added) peers.set(nodeOf(info.identity), info);
    }
    const answer: LookupAnswer = { kind: "lookupAnswer", id: request.id, answers, peers: [...peers.values()] };
    const wire = encodeMessage(answer);
    const size = cborBytes(wire);
    assert(size <= discoveryLimits.messageBytesMax, "discovery: a lookup answer outgrew its message");
    return { ok: true, answer, wire, bytes: size };
  }

  /**
   * Answers a peers request (the control plane's): this node's peer table from the request's
   * start, itself first, as many reports as fit one message, each with when this node last
   * heard from the peer. Costs the size of the table (its order is the table's own).
   */
  answerPeers(value: unknown, nowMs: number): PeersAnswerResult {
    const decoded = decodeMessage(value);
    if (!decoded.ok) return decoded;
    if (decoded.message.kind !== "peersRequest") return { ok: false, reason: "wrongKind", detail: `a ${decoded.message.kind} message is not a peers request` };
    const request = decoded.message;
    const self: PeerView = { nodeId: this.nodeId, record: this.peers.self(), lastHeardMs: nowMs };
    const table = [self, ...this.peers.views()];
    const peers: PeerReport[] = [];
    let bytes = 48;
    let at = request.start;
    for (; at < table.length && peers.length < discoveryLimits.peerReportsPerAnswerMax; at++) {
      const view = table[at] as PeerView;
      const report: PeerReport = { record: view.record, heardAgoMs: view.lastHeardMs === null ? null : Math.max(0, Math.floor(nowMs - view.lastHeardMs)) };
      const cost = cborBytes(encodePeerReport(report));
      if (bytes + cost > discoveryLimits.messageBytesMax) break;
      bytes += cost;
      peers.push(report);
    }
    const answer: PeersAnswer = { kind: "peersAnswer", id: request.id, peers, next: at < table.length ? at : null };
    const wire = encodeMessage(answer);
    assert(cborBytes(wire) <= discoveryLimits.messageBytesMax, "discovery: a peers answer outgrew its message");
    return { ok: true, answer, wire };
  }

  // ---- time ----------------------------------------------------------------------------

  nextDeadlineMs(): number {
    let due = this.nextRoundMs;
    for (const session of this.sessions.values()) if (session.initiator && !session.answered && session.deadlineMs < due) due = session.deadlineMs;
    return due;
  }

  tick(nowMs: number): TickResult {
    const messages: Outgoing[] = [];
    let audit: string[] = [];
    this.peers.tick(nowMs);
    for (const [key, session] of this.sessions) {
      if (session.initiator && !session.answered && nowMs >= session.deadlineMs && session.open !== null) {
        if (session.attempts < discoveryLimits.openAttemptsMax) {
          session.attempts++;
          session.deadlineMs = nowMs + this.replyTimeoutMs;
          session.lastMs = nowMs;
          messages.push(this.count(session.open, session));
        } else {
          this.sessions.delete(key);
          this.stats.probesFailed++;
          this.peers.suspect(session.peer, nowMs);
        }
      } else if (nowMs - session.lastMs >= discoveryLimits.sessionIdleMs) {
        this.sessions.delete(key);
      }
    }
    if (nowMs >= this.nextRoundMs) {
      this.nextRoundMs = Math.max(this.nextRoundMs + this.roundMs, nowMs + 1);
      const sessions = this.catchingUp(nowMs) ? discoveryLimits.catchUpSessionsMax : 1;
      for (let i = 0; i < sessions; i++) {
        const opened = this.open(nowMs);
        if (opened !== null) messages.push(opened);
      }
      audit = this.auditBatch();
      this.cache.sweep(nowMs, this.sweepsPerRound);
      this.pointers.sweep(nowMs);
    }
    return { messages, audit };
  }

  /** True while this replica holds a tenth fewer entries than a peer reported in the last ten rounds. */
  catchingUp(nowMs: number): boolean {
    if (nowMs - this.peerCountSeenMs > 10 * this.roundMs) return false;
    return this.cache.size + Math.ceil(this.peerCountSeen / 10) < this.peerCountSeen;
  }

  private noteCount(count: number | undefined, nowMs: number): void {
    if (count === undefined) return;
    if (count >= this.peerCountSeen || nowMs - this.peerCountSeenMs > 10 * this.roundMs) {
      this.peerCountSeen = count;
      this.peerCountSeenMs = nowMs;
    }
  }

  private auditBatch(): string[] {
    const out: string[] = [];
    const count = Math.min(this.auditsPerRound, this.hosted.length);
    for (let i = 0; i < count; i++) {
      if (this.auditCursor >= this.hosted.length) this.auditCursor = 0;
      out.push(this.hosted[this.auditCursor++] as string);
    }
    return out;
  }

  private open(nowMs: number): Outgoing | null {
    const peer = this.peers.pick(this.rng);
    if (peer === null) return null;
    const view = this.peers.get(peer);
    if (view === null) return null;
    // A bounded number of open sessions: a new one supersedes the oldest still talking.
    let initiated = 0;
    for (const session of this.sessions.values()) if (session.initiator) initiated++;
    for (const [key, session] of this.sessions) {
      if (initiated < discoveryLimits.catchUpSessionsMax) break;
      if (session.initiator) {
        this.sessions.delete(key);
        initiated--;
      }
    }
    const session: Session = {
      peer, id: this.rng.nextUint32(), initiator: true, bytesSent: 0, lastMs: nowMs, answered: false, attempts: 1,
      deadlineMs: nowMs + this.replyTimeoutMs, open: null,
    };
    const message: GossipMessage = {
      kind: "gossip", session: session.id, step: 0, from: this.peers.self(), rumors: this.peers.takeRumors(),
      peersDigest: digestBytes(this.peers.digest()), root: digestBytes(this.cache.root()), count: this.cache.size,
    };
    const out = this.outgoing(peer, view.record.address, message);
    session.open = out;
    this.sessions.set(sessionKey(peer, session.id, true), session);
    this.stats.sessionsOpened++;
    return this.count(out, session);
  }

  private outgoing(to: string, address: string, message: GossipMessage): Outgoing {
    const wire = encodeMessage(message);
    const bytes = cborBytes(wire);
    assert(bytes <= discoveryLimits.messageBytesMax, `discovery: a gossip message of ${bytes} bytes outgrew its bound`);
    return { to, address, message, wire, bytes };
  }

  private count(out: Outgoing, session: Session): Outgoing {
    session.bytesSent += out.bytes;
    this.stats.messagesSent++;
    this.stats.bytesSent += out.bytes;
    this.stats.entriesSent += out.message.entries?.length ?? 0;
    return out;
  }

  private reject(reason: GossipRejectReason | MergeOutcome, detail: string): ReceiveResult {
    this.stats.rejected[reason] = (this.stats.rejected[reason] ?? 0) + 1;
    return { ok: false, reason: reason as GossipRejectReason, detail };
  }

  // ---- gossip --------------------------------------------------------------------------

  /**
   * A gossip message from node `from` (the authenticated sender of its frame). Anything
   * malformed or out of place is refused with a typed reason and changes nothing.
   */
  receive(envelope: { readonly from: string; readonly message: unknown }, nowMs: number): ReceiveResult {
    const decoded = decodeMessage(envelope.message);
    if (!decoded.ok) return this.reject(decoded.reason, decoded.detail);
    const m = decoded.message;
    if (m.kind !== "gossip") return this.reject("wrongKind", `a ${m.kind} message is not gossip`);
    const peer = nodeOf(envelope.from);
    if (peer === this.nodeId || !this.peers.isKnown(peer)) return this.reject("unknownSender", `${peer} is not a peer of this color`);
    if (m.from !== undefined && nodeOf(m.from.identity) !== peer) return this.reject("senderMismatch", `a record of ${nodeOf(m.from.identity)} sent by ${peer}`);
    if (m.tree !== undefined) {
      const tree = m.tree;
      if (!this.cache.depths.includes(tree.depth)) return this.reject("treeMismatch", `tree depth ${tree.depth} is not one of ${this.cache.depths.join(",")}`);
      const parentDepth = this.cache.parentDepth(tree.depth);
      if (tree.hashes.length !== tree.parents.length * 4 * (1 << (tree.depth - parentDepth))) return this.reject("treeMismatch", `tree digests do not match a fanout of ${1 << (tree.depth - parentDepth)}`);
      if (tree.parents.some((parent) => parent >= 1 << parentDepth)) return this.reject("treeMismatch", "a tree parent beyond its depth");
    }
    if (m.wantTree !== undefined && !this.cache.depths.includes(m.wantTree.depth)) return this.reject("treeMismatch", `tree depth ${m.wantTree.depth} is not one of ${this.cache.depths.join(",")}`);
    if (m.leaves !== undefined && m.leaves.leaves.some((leaf) => leaf >= 1 << this.cache.leafBits)) return this.reject("treeMismatch", "a leaf beyond this tree");

    // Even steps come from the session's initiator, odd ones from its responder.
    const fromInitiator = m.step % 2 === 0;
    const key = sessionKey(peer, m.session, !fromInitiator);
    let session = this.sessions.get(key) ?? null;
    let busy = false;
    if (m.step === 0) {
      if (session === null) {
        // Sessions last a few round trips; one silent for a reply timeout is over.
        let answering = 0;
        for (const [other, s] of this.sessions) {
          if (s.initiator) continue;
          if (nowMs - s.lastMs > this.replyTimeoutMs) this.sessions.delete(other);
          else answering++;
        }
        if (answering >= discoveryLimits.answeredSessionsMax) busy = true;
        else {
          session = { peer, id: m.session, initiator: false, bytesSent: 0, lastMs: nowMs, answered: true, attempts: 0, deadlineMs: 0, open: null };
          this.sessions.set(key, session);
          this.stats.sessionsAnswered++;
        }
      }
    } else if (session === null) {
      return this.reject("unknownSession", `no session ${m.session} with ${peer}`);
    }
    this.peers.heard(peer, nowMs);
    this.noteCount(m.count, nowMs);
    const refutationsBefore = this.stats.refutations;
    if (session !== null) {
      session.lastMs = nowMs;
      if (session.initiator) session.answered = true;
    }
    const rumorsBack: PeerRecord[] = [];
    if (m.from !== undefined) {
      this.mergePeer(m.from, nowMs);
      // If we hold something newer about the sender (a suspicion), tell it, so it can refute.
      const mine = this.peers.get(peer);
      if (mine !== null && comparePeerRecords(mine.record, m.from) > 0) rumorsBack.push(mine.record);
    }
    for (const record of m.rumors ?? []) this.mergePeer(record, nowMs);
    for (const record of m.peerRecords ?? []) this.mergePeer(record, nowMs, false);
    const view = this.peers.get(peer);
    if (view === null) return { ok: true, messages: [] };

    if (busy) {
      this.stats.sessionsBusy++;
      const reply: GossipMessage = { kind: "gossip", session: m.session, step: 1, from: this.peers.self(), busy: true, rumors: [...rumorsBack, ...this.peers.takeRumors()].slice(0, discoveryLimits.rumorsPerMessageMax) };
      const out = this.outgoing(peer, view.record.address, reply);
      this.stats.messagesSent++;
      this.stats.bytesSent += out.bytes;
      return { ok: true, messages: [out] };
    }
    const stored = this.mergeEntries(m.entries ?? [], nowMs);
    if (m.busy === true || session === null || m.step + 1 > discoveryLimits.sessionStepsMax) {
      if (session !== null && m.busy === true) this.sessions.delete(key);
      return { ok: true, messages: [] };
    }
    const reply = this.answerSections(m, stored, rumorsBack, session, this.stats.refutations > refutationsBefore);
    if (reply === null) {
      if (!session.initiator) this.sessions.delete(key);
      return { ok: true, messages: [] };
    }
    return { ok: true, messages: [this.count(this.outgoing(peer, view.record.address, reply), session)] };
  }

  private mergePeer(record: PeerRecord, nowMs: number, spread = true): void {
    if (this.peers.merge(record, nowMs, { spread }) === "refuted") this.stats.refutations++;
  }

  /** Merges received entries; returns the records this replica holds newer than what came. */
  private mergeEntries(entries: readonly CellEntry[], nowMs: number): number[] {
    const newer: number[] = [];
    for (const entry of entries) {
      const outcome = this.cache.merge(entry, nowMs);
      if (outcome === "stored") this.stats.entriesStored++;
      else if (outcome === "older") {
        const index = this.cache.store.names.find(entry.cell);
        const record = index === none ? none : this.cache.recordAt(index);
        if (record !== none) newer.push(record);
      } else if (outcome !== "equal") this.stats.rejected[outcome] = (this.stats.rejected[outcome] ?? 0) + 1;
    }
    return newer;
  }

  private answerSections(m: GossipMessage, newer: readonly number[], rumorsBack: readonly PeerRecord[], session: Session, refuted: boolean): GossipMessage | null {
    const limit = Math.min(discoveryLimits.messageBytesMax, this.sessionBytesMax - session.bytesSent);
    if (limit < 512) {
      this.stats.budgetCuts++;
      return null;
    }
    const budget = new Budget(limit, 64);
    const step = m.step + 1;
    const out: { -readonly [K in keyof GossipMessage]: GossipMessage[K] } = { kind: "gossip", session: m.session, step };
    let substantive = false;

    // Our own record goes with the probe's answer, and at once after we refuted a suspicion.
    if (m.step === 0 || refuted) {
      out.from = this.peers.self();
      budget.take(cborBytes(encodePeerRecord(out.from)) + 4);
    }
    if (m.step === 0) {
      out.count = this.cache.size;
      budget.take(8);
    }
    const rumors = [...rumorsBack];
    if (m.step <= 1) rumors.push(...this.peers.takeRumors(discoveryLimits.rumorsPerMessageMax - rumors.length));
    if (rumors.length > 0) {
      out.rumors = rumors.slice(0, discoveryLimits.rumorsPerMessageMax);
      budget.take(out.rumors.reduce((sum, r) => sum + cborBytes(encodePeerRecord(r)), sectionOverheadBytes));
    }

    // The peer table.
    if (m.peersDigest !== undefined && !sameDigest(m.peersDigest, this.peers.digest())) {
      const buckets = this.peers.bucketDigests();
      if (budget.take(buckets.length + sectionOverheadBytes)) {
        out.peerBuckets = buckets;
        substantive = true;
      }
    }
    const peerBuckets = new Set<number>(m.peerWant ?? []);
    if (m.peerBuckets !== undefined) {
      const differing = this.peers.differingBuckets(m.peerBuckets);
      if (differing.length > 0) {
        out.peerWant = differing;
        budget.take(differing.length * 2 + sectionOverheadBytes);
        substantive = true;
      }
      for (const bucket of differing) peerBuckets.add(bucket);
    }
    if (peerBuckets.size > 0) {
      const records: PeerRecord[] = [];
      budget.take(sectionOverheadBytes);
      const buckets = [...peerBuckets];
      const order = this.rotation(buckets.length).map((i) => buckets[i] as number);
      for (const record of this.peers.recordsIn(order)) {
        if (!budget.take(cborBytes(encodePeerRecord(record)))) break;
        records.push(record);
      }
      if (records.length > 0) {
        out.peerRecords = records;
        substantive = true;
      }
    }

    // The cell tree: compare, descend, or ask for and send whole subtrees. Below the root,
    // digests travel as their high 32 bits; a collision there hides a difference only until
    // that subtree changes again, and the 64-bit root still differs meanwhile.
    const send = new Map<number, number>();
    const want = new Set<number>();
    const wantTree: number[] = [];
    let wantTreeDepth = 0;
    let descend: { depth: number; parents: number[] } | null = null;
    if (m.root !== undefined && !sameDigest(m.root, this.cache.root())) descend = { depth: this.cache.depths[0] as number, parents: [0] };
    if (m.tree !== undefined) {
      const depth = m.tree.depth;
      const shift = depth - this.cache.parentDepth(depth);
      const fanout = 1 << shift;
      const next = this.cache.nextDepth(depth);
      const hashes = new DataView(m.tree.hashes.buffer, m.tree.hashes.byteOffset, m.tree.hashes.byteLength);
      const leafItems: number[] = [];
      const nextParents: number[] = [];
      const counts = depth === this.cache.depths[0] && m.counts?.length === fanout ? m.counts : null;
      for (const p of this.rotation(m.tree.parents.length)) {
        const parent = m.tree.parents[p] as number;
        for (let c = 0; c < fanout; c++) {
          const node = (parent << shift) + c;
          const theirs = hashes.getUint32((p * fanout + c) * 4);
          const [mineHigh, mineLow] = this.cache.digest(depth, node);
          if (theirs === mineHigh) continue;
          // Holding less than half of what they hold there: ask for the subtree whole rather
          // than descend through a tree that differs nearly everywhere.
          const farBehind = counts !== null && this.cache.firstCount(node) * 2 < (counts[node] as number);
          if (farBehind || (mineHigh === 0 && mineLow === 0)) {
            wantTree.push(node);
            wantTreeDepth = depth;
          } else if (theirs === 0) {
            this.cache.forEachInSubtree(depth, node, (_, record) => {
              send.set(record, record);
              return send.size < 4096;
            }, this.rng.nextInt(1 << (this.cache.leafBits - depth)));
          } else if (next === null) leafItems.push(node);
          else nextParents.push(node);
        }
      }
      if (next !== null && nextParents.length > 0) descend = { depth: next, parents: nextParents };
      if (leafItems.length > 0) {
        const leaves: number[] = [];
        const counts: number[] = [];
        const items: number[] = [];
        budget.take(sectionOverheadBytes);
        // Like digests, leaf items may take a quarter of what is left.
        let leafRoom = Math.floor((budget.limit - budget.used) / 4);
        for (const leaf of leafItems) {
          const mineInLeaf: number[] = [];
          this.cache.forEachInLeaf(leaf, (nameIndex, record) => {
            const stampSeconds = Math.floor(this.cache.store.refreshedOf(record) / 1000) >>> 0;
            mineInLeaf.push(this.cache.store.names.placeHash(nameIndex), this.cache.store.hashHighOf(record), stampSeconds);
          });
          leafRoom -= 10 + mineInLeaf.length * 4;
          if (leafRoom < 0 || !budget.take(10 + mineInLeaf.length * 4)) {
            budget.cut = true;
            break;
          }
          leaves.push(leaf);
          counts.push(mineInLeaf.length / 3);
          items.push(...mineInLeaf);
        }
        if (leaves.length > 0) {
          const bytes = new Uint8Array(items.length * 4);
          const view = new DataView(bytes.buffer);
          items.forEach((word, i) => view.setUint32(i * 4, word));
          out.leaves = { leaves, counts, items: bytes };
          substantive = true;
        }
      }
    }
    if (descend !== null) {
      const shift = descend.depth - this.cache.parentDepth(descend.depth);
      const fanout = 1 << shift;
      const parents: number[] = [];
      budget.take(sectionOverheadBytes);
      // Digests may take a quarter of what is left: on a tree that differs nearly everywhere
      // (a replica rebuilding) they would otherwise leave no room for the entries themselves.
      let treeRoom = Math.floor((budget.limit - budget.used) / 4);
      for (const parent of descend.parents) {
        treeRoom -= 5 + fanout * 4;
        if (treeRoom < 0 || !budget.take(5 + fanout * 4)) {
          budget.cut = true;
          break;
        }
        parents.push(parent);
      }
      if (parents.length > 0) {
        const hashes = new Uint8Array(parents.length * fanout * 4);
        const view = new DataView(hashes.buffer);
        parents.forEach((parent, p) => {
          for (let c = 0; c < fanout; c++) view.setUint32((p * fanout + c) * 4, this.cache.digest(descend.depth, (parent << shift) + c)[0]);
        });
        out.tree = { depth: descend.depth, parents, hashes };
        if (descend.depth === this.cache.depths[0]) {
          out.counts = Array.from({ length: fanout }, (_, c) => this.cache.firstCount(c));
          budget.take(fanout * 5 + sectionOverheadBytes);
        }
        substantive = true;
      }
    }
    if (wantTree.length > 0) {
      const nodes: number[] = [];
      budget.take(sectionOverheadBytes);
      for (const node of wantTree) {
        if (!budget.take(5)) break;
        nodes.push(node);
      }
      out.wantTree = { depth: wantTreeDepth, nodes };
      substantive = true;
    }
    if (m.wantTree !== undefined) {
      // From a random leaf on, so that a subtree too big for one session arrives piece by piece.
      const leaves = 1 << (this.cache.leafBits - m.wantTree.depth);
      for (const node of m.wantTree.nodes) {
        this.cache.forEachInSubtree(m.wantTree.depth, node, (_, record) => {
          send.set(record, record);
          return send.size < 4096;
        }, this.rng.nextInt(leaves));
      }
    }
    if (m.leaves !== undefined) this.compareLeaves(m.leaves, send, want);
    for (const hash of m.want ?? []) {
      this.cache.forEachInLeaf(hash >>> (32 - this.cache.leafBits), (nameIndex, record) => {
        if (this.cache.store.names.placeHash(nameIndex) === hash) send.set(record, record);
      });
    }
    for (const record of newer) send.set(record, record);

    if (want.size > 0) {
      const hashes: number[] = [];
      budget.take(sectionOverheadBytes);
      for (const hash of want) {
        if (!budget.take(5)) break;
        hashes.push(hash);
      }
      out.want = hashes;
      substantive = true;
    }
    if (send.size > 0) {
      const entries: CellEntry[] = [];
      budget.take(sectionOverheadBytes);
      const records = [...send.keys()];
      for (const i of this.rotation(records.length)) {
        const entry = this.cache.store.entry(records[i] as number);
        if (!budget.take(cborBytes(encodeEntry(entry)))) break;
        entries.push(entry);
      }
      if (entries.length > 0) {
        out.entries = entries;
        substantive = true;
      }
    }
    if (budget.cut) this.stats.budgetCuts++;
    // The probe's answer goes out even when there is nothing else to say.
    if (!substantive && m.step !== 0 && out.rumors === undefined && out.from === undefined) return null;
    return out as GossipMessage;
  }

  /**
   * Which of our entries in the leaves `theirs` describes differ, and which of theirs we want.
   * Where both sides hold one entry under a name and they differ, the later stamp is probably
   * the newer entry: we send ours when it is at least as late, else ask for theirs. A wrong
   * guess costs one more message, never an update: whoever receives an older entry answers
   * with its newer one.
   */
  private compareLeaves(theirs: NonNullable<GossipMessage["leaves"]>, send: Map<number, number>, want: Set<number>): void {
    const view = new DataView(theirs.items.buffer, theirs.items.byteOffset, theirs.items.byteLength);
    const store = this.cache.store;
    let offset = 0;
    theirs.leaves.forEach((leaf, i) => {
      const count = theirs.counts[i] as number;
      const theirsByName = new Map<number, Array<{ hash: number; stamp: number }>>();
      for (let k = 0; k < count; k++) {
        const item = { hash: view.getUint32(offset + 4), stamp: view.getUint32(offset + 8) };
        const name = view.getUint32(offset);
        offset += 12;
        const list = theirsByName.get(name);
        if (list === undefined) theirsByName.set(name, [item]);
        else list.push(item);
      }
      const mineByName = new Map<number, Array<{ record: number; hash: number }>>();
      this.cache.forEachInLeaf(leaf, (nameIndex, record) => {
        const name = store.names.placeHash(nameIndex);
        const item = { record, hash: store.hashHighOf(record) };
        const list = mineByName.get(name);
        if (list === undefined) mineByName.set(name, [item]);
        else list.push(item);
      });
      let differences = 0;
      for (const [name, mine] of mineByName) {
        const theirItems = theirsByName.get(name) ?? [];
        const differing = mine.filter((item) => !theirItems.some((t) => t.hash === item.hash));
        const missing = theirItems.some((t) => !mine.some((item) => item.hash === t.hash));
        differences += differing.length + (missing ? 1 : 0);
        if (mine.length === 1 && theirItems.length === 1 && differing.length === 1) {
          const stamp = Math.floor(store.refreshedOf(mine[0]!.record) / 1000) >>> 0;
          if (stamp >= theirItems[0]!.stamp) send.set(mine[0]!.record, mine[0]!.record);
          else want.add(name);
          continue;
        }
        for (const item of differing) send.set(item.record, item.record);
        if (missing) want.add(name);
      }
      for (const name of theirsByName.keys()) {
        if (mineByName.has(name)) continue;
        differences++;
        want.add(name);
      }
      // The leaf digests differ yet the 32-bit items agree (a collision): send the leaf whole.
      if (differences === 0) this.cache.forEachInLeaf(leaf, (_, record) => send.set(record, record));
    });
  }

  /** Indices 0..n-1 from a random start, so that a cut budget does not always favour the same ones. */
  private rotation(n: number): number[] {
    if (n === 0) return [];
    const start = this.rng.nextInt(n);
    return Array.from({ length: n }, (_, i) => (start + i) % n);
  }
}

function sessionKey(peer: string, id: number, initiator: boolean): string {
  return `${initiator ? "o" : "a"}/${id}/${peer}`;
}
