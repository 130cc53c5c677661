// The client's side of discovery, pure: it says which nodes to try for a cell and when to ask
// a node where a cell is; the caller sends, waits, and reports back what happened.
//
//  - Bootstrap: any node answers lookups, so the seeds are simply the topology's nodes.
//  - Answers are cached indefinitely (bounded by `cellsMax`, least recently used first out):
//    a cached membership is always safe to try, because cells check membership themselves.
//    Of two answers the client keeps the greater entry (entry.ts), so a stale node cannot
//    take back what a fresher one said.
//  - Refresh is lazy, on evidence: a replica says it does not host the cell (perhaps with a
//    forwarding pointer, which is used at once), or stops answering. The client then asks
//    up to `clientLookupAttemptsMax` distinct nodes, members first, and meanwhile keeps
//    trying what it has; when nobody knows better it keeps the old entry and asks again
//    later, backing off.
//  - "No such cell" is reported only when every node asked (at least two, when two are
//    known) said so and nothing was known before: one node's ignorance is no proof.

import type { Rng } from "../random.ts";
import { type CellEntry, compareEntries } from "./entry.ts";
import { nodeOf } from "./ids.ts";
import { discoveryLimits } from "./limits.ts";
import { type CellAnswer, decodeMessage, encodeMessage, type LookupRequest } from "./messages.ts";
import type { PeerSeed } from "./peers.ts";

export interface ClientDiscoveryOptions {
  readonly seeds: readonly PeerSeed[];
  readonly rng: Rng;
  readonly cellsMax?: number;
  readonly lookupRetryMs?: number;
  /**
   * How many nodes must say `noSuchCell` (default 2, or every seed when there are fewer):
   * more makes a just-created cell, not yet gossiped to every node, less likely to be
   * reported missing by a client that happened to ask only nodes that have not heard of it.
   */
  readonly noSuchCellAnswersMin?: number;
}

export interface Target {
  readonly nodeId: string;
  readonly address: string;
}

export interface LookupToSend extends Target {
  readonly message: LookupRequest;
  readonly wire: Record<string, unknown>;
}

export interface Route {
  /** known: try `candidates`; unknown: nothing cached yet (send the lookup and wait); noSuchCell: nodes asked all said so. */
  readonly status: "known" | "unknown" | "noSuchCell";
  readonly entry: CellEntry | null;
  /** Members to try, the likely leader first, those that went silent last. */
  readonly candidates: readonly Target[];
  /**
   * A lookup to send now, or null when none is due. The client counts it as asked: the
   * caller must send it, and call `lookupFailed` if no answer comes.
   */
  readonly lookup: LookupToSend | null;
}

export type Evidence =
  | { readonly kind: "notHosted"; readonly node: string; readonly pointer?: CellEntry }
  | { readonly kind: "silent"; readonly node: string }
  | { readonly kind: "answered"; readonly node: string }
  | { readonly kind: "leader"; readonly node: string };

interface Known {
  entry: CellEntry | null;
  leaderHint: string | null;
  /** Nodes that said they host the cell though the entry may not list them yet. */
  readonly hosts: Set<string>;
  /** Nodes that said they do not host it, under the current entry. */
  readonly excluded: Set<string>;
  stale: boolean;
  asked: Set<string>;
  noSuchCell: number;
  nextLookupMs: number;
  backoffMs: number;
}

interface Pending {
  readonly nodeId: string;
  readonly cell: string;
  readonly sentMs: number;
  /** The caller gave up on it (`lookupFailed`); an answer that comes later is still taken. */
  failed: boolean;
}

const backoffMaxMs = 30_000;
/** The longest pause between rounds of lookups that nobody answered: the nodes may be back any moment, and a caller's deadline is seconds. */
const unansweredRoundBackoffMaxMs = 4_000;
const pendingMax = 4_096;

export class ClientDiscovery {
  readonly cellsMax: number;
  readonly lookupRetryMs: number;
  readonly noSuchCellAnswersMin: number;
  private readonly rng: Rng;
  private readonly known = new Map<string, Known>();
  private readonly addresses = new Map<string, string>();
  private readonly seeds: string[];
  private readonly silentNodes = new Set<string>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(options: ClientDiscoveryOptions) {
    this.rng = options.rng;
    this.cellsMax = options.cellsMax ?? discoveryLimits.clientCellsMaxDefault;
    this.lookupRetryMs = options.lookupRetryMs ?? discoveryLimits.clientLookupRetryMsDefault;
    this.noSuchCellAnswersMin = Math.max(1, options.noSuchCellAnswersMin ?? 2);
    this.seeds = options.seeds.map((seed) => seed.nodeId);
    for (const seed of options.seeds) this.addresses.set(seed.nodeId, seed.address);
  }

  get size(): number {
    return this.known.size;
  }

  /** What to do for a request to `cell` now. */
  route(cell: string, nowMs: number): Route {
    const known = this.touch(cell, nowMs);
    const candidates = this.candidates(known);
    let lookup: LookupToSend | null = null;
    const needs = known.entry === null || known.stale || candidates.length === 0;
    if (needs && nowMs >= known.nextLookupMs) lookup = this.nextLookup(cell, known, nowMs);
    let status: Route["status"] = "known";
    if (known.entry === null) status = this.saysNoSuchCell(known) ? "noSuchCell" : "unknown";
    return { status, entry: known.entry, candidates, lookup };
  }

  /** The entry cached for `cell`, without counting as a use. */
  peek(cell: string): CellEntry | null {
    return this.known.get(cell)?.entry ?? null;
  }

  /**
   * Nodes the cell itself said it lives on (the caller created it, or changed its
   * membership): tried at once, before any lookup has answered. They stay candidates until
   * one says it does not host the cell.
   */
  hosting(cell: string, nodes: readonly string[], nowMs: number): void {
    const known = this.touch(cell, nowMs);
    for (const node of nodes) {
      const nodeId = nodeOf(node);
      if (!this.addresses.has(nodeId)) continue;
      known.hosts.add(nodeId);
      known.excluded.delete(nodeId);
    }
  }

  /** What happened when the caller talked to a member. */
  evidence(cell: string, evidence: Evidence, nowMs: number): void {
    const known = this.touch(cell, nowMs);
    const nodeId = nodeOf(evidence.node);
    switch (evidence.kind) {
      case "notHosted":
        known.excluded.add(nodeId);
        known.hosts.delete(nodeId);
        if (evidence.pointer !== undefined) this.consider(known, evidence.pointer);
        this.markStale(known, nowMs);
        break;
      case "silent":
        this.silentNodes.add(nodeId);
        this.markStale(known, nowMs);
        break;
      case "answered":
        this.silentNodes.delete(nodeId);
        break;
      case "leader":
        known.leaderHint = nodeId;
        break;
    }
  }

  /** A node's lookup answer. Returns false (and changes nothing) for anything malformed or unasked. */
  receive(value: unknown, nowMs: number): boolean {
    const decoded = decodeMessage(value);
    if (!decoded.ok || decoded.message.kind !== "lookupAnswer") return false;
    const answer = decoded.message;
    const pending = this.pending.get(answer.id);
    if (pending === undefined) return false;
    this.pending.delete(answer.id);
    this.silentNodes.delete(pending.nodeId);
    for (const peer of answer.peers) {
      const nodeId = nodeOf(peer.identity);
      if (this.addresses.has(nodeId) || this.addresses.size < discoveryLimits.clientAddressesMax) this.addresses.set(nodeId, peer.address);
      if (peer.status === "dead") this.silentNodes.add(nodeId);
    }
    for (const cellAnswer of answer.answers) this.learn(cellAnswer, pending.nodeId, nowMs);
    return true;
  }

  /** The lookup sent to `nodeId` got no answer. */
  lookupFailed(id: number, nowMs: number): void {
    const pending = this.pending.get(id);
    if (pending === undefined || pending.failed) return;
    // Kept (up to pendingMax lookups, the oldest forgotten first): an answer that was only
    // late (a data-channel client's first lookups wait for its connections to open) still
    // teaches the client, instead of costing it another round.
    pending.failed = true;
    this.silentNodes.add(pending.nodeId);
    const known = this.known.get(pending.cell);
    if (known !== undefined) known.nextLookupMs = Math.min(known.nextLookupMs, nowMs);
  }

  private learn(answer: CellAnswer, nodeId: string, nowMs: number): void {
    const known = this.known.get(answer.cell);
    if (known === undefined) return;
    const before = known.entry;
    switch (answer.status) {
      case "found":
        this.consider(known, answer.entry);
        break;
      case "hosted":
        known.hosts.add(nodeId);
        known.excluded.delete(nodeId);
        if (answer.entry !== null) this.consider(known, answer.entry);
        break;
      case "moved":
        this.consider(known, answer.pointer);
        if (answer.entry !== null) this.consider(known, answer.entry);
        break;
      case "noSuchCell":
        known.noSuchCell++;
        break;
    }
    if (known.entry !== before || answer.status === "hosted") {
      // Newer information: stop asking and reset the back-off.
      known.stale = false;
      known.asked.clear();
      known.backoffMs = this.lookupRetryMs;
      known.nextLookupMs = nowMs;
    } else if (known.asked.size >= discoveryLimits.clientLookupAttemptsMax) {
      // Nobody asked knew better: keep what we have and ask again later.
      known.asked.clear();
      known.nextLookupMs = nowMs + known.backoffMs;
      known.backoffMs = Math.min(known.backoffMs * 2, backoffMaxMs);
    } else {
      known.nextLookupMs = nowMs;
    }
  }

  private consider(known: Known, entry: CellEntry): void {
    if (known.entry !== null && compareEntries(entry, known.entry) <= 0) return;
    known.entry = entry;
    known.excluded.clear();
    known.noSuchCell = 0;
    if (entry.leader !== null) known.leaderHint = nodeOf(entry.leader);
  }

  private markStale(known: Known, nowMs: number): void {
    if (!known.stale) {
      known.stale = true;
      known.asked.clear();
      known.nextLookupMs = Math.min(known.nextLookupMs, nowMs);
    }
  }

  private saysNoSuchCell(known: Known): boolean {
    const needed = Math.min(this.noSuchCellAnswersMin, this.seeds.length);
    return known.noSuchCell >= Math.max(1, needed);
  }

  private touch(cell: string, nowMs: number): Known {
    let known = this.known.get(cell);
    if (known !== undefined) {
      this.known.delete(cell);
      this.known.set(cell, known);
      return known;
    }
    known = {
      entry: null, leaderHint: null, hosts: new Set(), excluded: new Set(), stale: false, asked: new Set(), noSuchCell: 0,
      nextLookupMs: nowMs, backoffMs: this.lookupRetryMs,
    };
    this.known.set(cell, known);
    if (this.known.size > this.cellsMax) {
      const oldest = this.known.keys().next();
      if (oldest.done !== true) this.known.delete(oldest.value);
    }
    return known;
  }

  private candidates(known: Known): Target[] {
    const members = new Set<string>();
    for (const member of known.entry?.members ?? []) members.add(nodeOf(member));
    for (const host of known.hosts) members.add(host);
    for (const excluded of known.excluded) members.delete(excluded);
    const ordered = [...members].sort((a, b) => this.rank(known, a) - this.rank(known, b));
    const out: Target[] = [];
    for (const nodeId of ordered) {
      const address = this.addresses.get(nodeId);
      if (address !== undefined) out.push({ nodeId, address });
    }
    return out;
  }

  private rank(known: Known, nodeId: string): number {
    if (this.silentNodes.has(nodeId)) return 3;
    if (nodeId === known.leaderHint) return 0;
    return known.hosts.has(nodeId) ? 1 : 2;
  }

  private nextLookup(cell: string, known: Known, nowMs: number): LookupToSend | null {
    // A member first (it hosts the cell, so it knows it best), then members and other nodes
    // in turn: every node learns the cell's entry by gossip, and when the members a cache
    // names went down together (a rack, a row) asking them one by one cost a retry each
    // (3.5 s for seven) before anyone else was asked.
    const candidates = this.candidates(known).map((target) => target.nodeId);
    const choices = candidates.filter((nodeId) => !known.asked.has(nodeId) && !this.silentNodes.has(nodeId));
    let nodeId: string | undefined = known.asked.size % 2 === 0 ? choices[0] : undefined;
    if (nodeId === undefined) {
      const members = new Set(candidates);
      for (let attempt = 0; attempt < 8 && nodeId === undefined; attempt++) {
        const seed = this.seeds[this.rng.nextInt(Math.max(1, this.seeds.length))];
        if (seed !== undefined && !members.has(seed) && !known.asked.has(seed) && !this.silentNodes.has(seed)) nodeId = seed;
      }
      nodeId ??= choices[0] ?? this.seeds.find((seed) => !known.asked.has(seed) && !this.silentNodes.has(seed)) ?? this.seeds.find((seed) => !known.asked.has(seed));
    }
    if (nodeId === undefined) {
      // Every node was asked and none answered (all timed out: a network blip, connections
      // still opening). Start a new round after a back-off; without this the client never
      // asked again and gave up at its deadline though the nodes were back.
      if (known.asked.size > 0) {
        known.asked.clear();
        known.nextLookupMs = nowMs + Math.min(known.backoffMs, unansweredRoundBackoffMaxMs);
        known.backoffMs = Math.min(known.backoffMs * 2, backoffMaxMs);
      }
      return null;
    }
    const address = this.addresses.get(nodeId);
    if (address === undefined) return null;
    known.asked.add(nodeId);
    known.nextLookupMs = nowMs + this.lookupRetryMs;
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1;
    if (this.pending.size >= pendingMax) {
      const oldest = this.pending.keys().next();
      if (oldest.done !== true) this.pending.delete(oldest.value);
    }
    this.pending.set(id, { nodeId, cell, sentMs: nowMs, failed: false });
    const message: LookupRequest = { kind: "lookup", id, cells: [cell] };
    return { nodeId, address, message, wire: encodeMessage(message) };
  }
}
