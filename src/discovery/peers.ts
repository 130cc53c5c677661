// Node liveness and addresses, spread like SWIM (Das, Gupta and Motivala, 2002): every round a
// node opens a gossip session with a random peer, and that session is also the probe. A peer
// that answers none of `openAttemptsMax` sends is *suspected*; the suspicion spreads as a
// rumor; a suspected node that hears of it *refutes* by raising its own heartbeat; a
// suspicion nobody refutes within `suspectTimeoutMs` becomes *dead* at every node that
// holds it. Each record names one node's identity, address, generation and heartbeat:
//
//   generation  chosen by the node at process start (its start time in ms), so a restarted
//               process outranks everything said about its previous life
//   heartbeat   raised by the node itself, only to refute a suspicion
//   status      alive < suspected < dead at the same generation and heartbeat
//
// Records merge by that order (then identity and address, so that the order is total),
// which makes the table converge like the cell cache. The topology file is the seed list
// and the only source of node ids: records of other node ids are ignored. Seeds nobody has
// heard from yet have generation 0 and are assumed alive.

import { assert } from "../core/assert.ts";
import type { Rng } from "../random.ts";
import { Hash64, stringHash64 } from "./hash.ts";
import { nodeOf } from "./ids.ts";
import { discoveryLimits } from "./limits.ts";

export type PeerStatus = "alive" | "suspected" | "dead";

export interface PeerRecord {
  /** `nodeId~incarnation`, or the bare node id of a seed nobody has heard from. */
  readonly identity: string;
  readonly address: string;
  readonly generation: number;
  readonly heartbeat: number;
  readonly status: PeerStatus;
}

export interface PeerSeed {
  readonly nodeId: string;
  readonly address: string;
}

/** A record and what this node itself observed about that peer. */
export interface PeerView {
  readonly nodeId: string;
  readonly record: PeerRecord;
  /** When this node last received a message from the peer, or null. */
  readonly lastHeardMs: number | null;
}

const statusRank: Readonly<Record<PeerStatus, number>> = { alive: 0, suspected: 1, dead: 2 };

export function comparePeerRecords(a: PeerRecord, b: PeerRecord): number {
  if (a.generation !== b.generation) return a.generation - b.generation;
  if (a.heartbeat !== b.heartbeat) return a.heartbeat - b.heartbeat;
  if (a.status !== b.status) return statusRank[a.status] - statusRank[b.status];
  if (a.identity !== b.identity) return a.identity < b.identity ? -1 : 1;
  if (a.address !== b.address) return a.address < b.address ? -1 : 1;
  return 0;
}

/** A record's 64-bit digest: part of the protocol, so the field order is fixed. */
export function hashPeerRecord(record: PeerRecord): readonly [number, number] {
  const identity = stringHash64(record.identity);
  const address = stringHash64(record.address);
  return new Hash64().pair(identity[0], identity[1]).pair(address[0], address[1]).integer(record.generation).integer(record.heartbeat).word(statusRank[record.status]).finish();
}

/** The anti-entropy bucket of a node id. */
export function peerBucket(nodeId: string): number {
  return stringHash64(nodeId)[0] % discoveryLimits.peerBuckets;
}

interface Slot {
  record: PeerRecord;
  hashHigh: number;
  hashLow: number;
  readonly bucket: number;
  suspectedSinceMs: number | null;
  lastHeardMs: number | null;
}

export type PeerMergeOutcome = "stored" | "older" | "equal" | "unknownNode" | "refuted" | "selfConflict";

export interface PeerTableOptions {
  /** This node's identity (`nodeId~incarnation`), address and generation. */
  readonly identity: string;
  readonly address: string;
  readonly generation: number;
  /** Every node of this node's color in the topology, this node included or not. */
  readonly seeds: readonly PeerSeed[];
  readonly suspectTimeoutMs?: number;
  /** Records already known at start (a peer's table, say), taken without being rumored. */
  readonly known?: readonly PeerRecord[];
}

export class PeerTable {
  readonly nodeId: string;
  readonly suspectTimeoutMs: number;
  private readonly slots = new Map<string, Slot>();
  private readonly others: string[] = [];
  private readonly buckets = new Uint32Array(discoveryLimits.peerBuckets * 2);
  private readonly bucketNodes: string[][] = Array.from({ length: discoveryLimits.peerBuckets }, () => []);
  private digestHigh = 0;
  private digestLow = 0;
  private readonly suspected = new Set<string>();
  /** Rumors: node id -> sends left. Map order rotates them. */
  private readonly rumorQueue = new Map<string, number>();

  constructor(options: PeerTableOptions) {
    this.nodeId = nodeOf(options.identity);
    this.suspectTimeoutMs = options.suspectTimeoutMs ?? discoveryLimits.suspectTimeoutMsDefault;
    assert(options.generation >= 1, "peers: a live node's generation is at least 1");
    assert(options.seeds.length <= discoveryLimits.peersMax, "peers: too many seeds");
    for (const seed of options.seeds) this.addSeed(seed);
    for (const record of options.known ?? []) this.merge(record, 0, { spread: false });
    this.write(this.nodeId, { identity: options.identity, address: options.address, generation: options.generation, heartbeat: 0, status: "alive" });
    this.rumor(this.nodeId);
  }

  /** Adds a topology node; a known node keeps what has been learnt about it. */
  addSeed(seed: PeerSeed): void {
    if (this.slots.has(seed.nodeId)) return;
    if (seed.nodeId !== this.nodeId) this.others.push(seed.nodeId);
    this.write(seed.nodeId, { identity: seed.nodeId, address: seed.address, generation: 0, heartbeat: 0, status: "alive" });
  }

  get size(): number {
    return this.slots.size;
  }

  self(): PeerRecord {
    return (this.slots.get(this.nodeId) as Slot).record;
  }

  get(nodeId: string): PeerView | null {
    const slot = this.slots.get(nodeId);
    return slot === undefined ? null : { nodeId, record: slot.record, lastHeardMs: slot.lastHeardMs };
  }

  /** Every peer but this node. */
  views(): PeerView[] {
    return this.others.map((nodeId) => this.get(nodeId) as PeerView);
  }

  isKnown(nodeId: string): boolean {
    return this.slots.has(nodeId);
  }

  private write(nodeId: string, record: PeerRecord): void {
    const [hashHigh, hashLow] = hashPeerRecord(record);
    let slot = this.slots.get(nodeId);
    if (slot === undefined) {
      slot = { record, hashHigh: 0, hashLow: 0, bucket: peerBucket(nodeId), suspectedSinceMs: null, lastHeardMs: null };
      this.slots.set(nodeId, slot);
      (this.bucketNodes[slot.bucket] as string[]).push(nodeId);
    }
    const at = slot.bucket * 2;
    const deltaHigh = (slot.hashHigh ^ hashHigh) >>> 0;
    const deltaLow = (slot.hashLow ^ hashLow) >>> 0;
    this.buckets[at] = ((this.buckets[at] as number) ^ deltaHigh) >>> 0;
    this.buckets[at + 1] = ((this.buckets[at + 1] as number) ^ deltaLow) >>> 0;
    this.digestHigh = (this.digestHigh ^ deltaHigh) >>> 0;
    this.digestLow = (this.digestLow ^ deltaLow) >>> 0;
    slot.record = record;
    slot.hashHigh = hashHigh;
    slot.hashLow = hashLow;
  }

  private rumor(nodeId: string): void {
    const sends = Math.ceil(discoveryLimits.rumorSpreadFactor * Math.log2(this.slots.size + 1));
    this.rumorQueue.delete(nodeId);
    if (this.rumorQueue.size >= discoveryLimits.rumorsMax) {
      const oldest = this.rumorQueue.keys().next();
      if (oldest.done !== true) this.rumorQueue.delete(oldest.value);
    }
    this.rumorQueue.set(nodeId, sends);
  }

  /**
   * Takes a record learnt from a peer. A record about this node that it must answer is
   * refuted. A newer record is rumored on unless `spread` is false (records that came by
   * anti-entropy, which reconciles every pair of nodes anyway).
   */
  merge(record: PeerRecord, nowMs: number, options: { readonly spread?: boolean } = {}): PeerMergeOutcome {
    const nodeId = nodeOf(record.identity);
    const slot = this.slots.get(nodeId);
    if (slot === undefined) return "unknownNode";
    if (nodeId === this.nodeId) return this.answerAboutSelf(record);
    const order = comparePeerRecords(record, slot.record);
    if (order < 0) return "older";
    if (order === 0) return "equal";
    this.write(nodeId, record);
    this.noteStatus(nodeId, slot, nowMs);
    if (options.spread !== false) this.rumor(nodeId);
    return "stored";
  }

  private answerAboutSelf(record: PeerRecord): PeerMergeOutcome {
    const own = this.self();
    if (record.generation > own.generation) return "selfConflict";
    if (record.generation < own.generation || comparePeerRecords(record, own) <= 0) return "older";
    // Same generation, and the peer believes something newer than we said: a suspicion or
    // death we must refute, or a heartbeat of ours we have forgotten. Outrank it.
    this.write(this.nodeId, { ...own, heartbeat: record.heartbeat + 1, status: "alive" });
    this.rumor(this.nodeId);
    return "refuted";
  }

  private noteStatus(nodeId: string, slot: Slot, nowMs: number): void {
    if (slot.record.status === "suspected") {
      slot.suspectedSinceMs = nowMs;
      this.suspected.add(nodeId);
    } else {
      slot.suspectedSinceMs = null;
      this.suspected.delete(nodeId);
    }
  }

  /** This node received a message from `nodeId`: direct evidence that it runs. */
  heard(nodeId: string, nowMs: number): void {
    const slot = this.slots.get(nodeId);
    if (slot !== undefined) slot.lastHeardMs = nowMs;
  }

  /** A probe of `nodeId` went unanswered: suspect it (unless already suspected or dead). */
  suspect(nodeId: string, nowMs: number): boolean {
    const slot = this.slots.get(nodeId);
    if (slot === undefined || nodeId === this.nodeId || slot.record.status !== "alive") return false;
    this.write(nodeId, { ...slot.record, status: "suspected" });
    this.noteStatus(nodeId, slot, nowMs);
    this.rumor(nodeId);
    return true;
  }

  /** Suspicions older than the timeout become deaths. Costs the number of suspected peers. */
  tick(nowMs: number): number {
    let declared = 0;
    for (const nodeId of this.suspected) {
      const slot = this.slots.get(nodeId) as Slot;
      if (slot.suspectedSinceMs !== null && nowMs - slot.suspectedSinceMs >= this.suspectTimeoutMs) {
        this.write(nodeId, { ...slot.record, status: "dead" });
        this.noteStatus(nodeId, slot, nowMs);
        this.rumor(nodeId);
        declared++;
      }
    }
    return declared;
  }

  /** Up to `countMax` rumors for the next message, rotating through the queue. */
  takeRumors(countMax: number = discoveryLimits.rumorsPerMessageMax): PeerRecord[] {
    const out: PeerRecord[] = [];
    for (const [nodeId, sends] of this.rumorQueue) {
      if (out.length >= countMax) break;
      out.push((this.slots.get(nodeId) as Slot).record);
      this.rumorQueue.delete(nodeId);
      if (sends > 1) this.rumorQueue.set(nodeId, sends - 1);
    }
    return out;
  }

  get rumorCount(): number {
    return this.rumorQueue.size;
  }

  /**
   * A random peer to open a session with: one not believed dead, except one round in
   * `deadProbeEveryRounds`, when a dead one is tried so that a healed partition is noticed.
   */
  pick(rng: Rng): string | null {
    if (this.others.length === 0) return null;
    const wantDead = rng.nextInt(discoveryLimits.deadProbeEveryRounds) === 0;
    for (let attempt = 0; attempt < 16; attempt++) {
      const nodeId = this.others[rng.nextInt(this.others.length)] as string;
      const dead = (this.slots.get(nodeId) as Slot).record.status === "dead";
      if (dead === wantDead) return nodeId;
    }
    const matching = this.others.filter((nodeId) => ((this.slots.get(nodeId) as Slot).record.status === "dead") === wantDead);
    const pool = matching.length > 0 ? matching : this.others;
    return pool[rng.nextInt(pool.length)] as string;
  }

  digest(): readonly [number, number] {
    return [this.digestHigh, this.digestLow];
  }

  /** The bucket digests, 8 bytes each, big-endian. */
  bucketDigests(): Uint8Array {
    const out = new Uint8Array(discoveryLimits.peerBuckets * 8);
    const view = new DataView(out.buffer);
    for (let i = 0; i < discoveryLimits.peerBuckets; i++) {
      view.setUint32(i * 8, this.buckets[i * 2] as number);
      view.setUint32(i * 8 + 4, this.buckets[i * 2 + 1] as number);
    }
    return out;
  }

  /** The buckets whose digests differ from `theirs` (a bucketDigests() of a peer). */
  differingBuckets(theirs: Uint8Array): number[] {
    const view = new DataView(theirs.buffer, theirs.byteOffset, theirs.byteLength);
    const out: number[] = [];
    for (let i = 0; i < discoveryLimits.peerBuckets; i++) {
      if (view.getUint32(i * 8) !== this.buckets[i * 2] || view.getUint32(i * 8 + 4) !== this.buckets[i * 2 + 1]) out.push(i);
    }
    return out;
  }

  /** The records of the given buckets, in the order given, at most `countMax`. */
  recordsIn(buckets: readonly number[], countMax: number = discoveryLimits.peerRecordsPerMessageMax): PeerRecord[] {
    const out: PeerRecord[] = [];
    for (const bucket of buckets) {
      for (const nodeId of this.bucketNodes[bucket] ?? []) {
        if (out.length >= countMax) return out;
        out.push((this.slots.get(nodeId) as Slot).record);
      }
    }
    return out;
  }
}
