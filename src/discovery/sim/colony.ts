// A deterministic simulation of the discovery layer alone: N DiscoveryNodes of one color over
// a simulated network (latency, loss, partitions), a model of M cells (membership churn and
// leader changes, applied to each cell's truth; the Paxos cells themselves are not run), node
// crashes (the cache is memory and is lost; the node's cells are on disk and survive), and
// poisoned entries. Everything comes from one seed; the same seed replays exactly.
//
// What it measures:
//  - convergence: for every change, the time from the change until every node that is up
//    holds an entry at least that new (in rounds and simulated seconds)
//  - gossip bytes each node sends per simulated second (the exact CBOR size of each message)
//  - liveness: how long until every node believes a crashed node suspected, then dead;
//    suspicions of nodes that were up; refutations
//  - rebuild: how long a restarted node with an empty cache takes to hold every cell again
//  - poison: for each kind of wrong entry, how far it spread and when no node held it any more
//  - clients (when asked for, clients.ts): real client caches looking cells up through the
//    same network, how long they take to find a cell and whether any gives up for good
//
// The replicas share one EntryStore (see store.ts), which is what lets a thousand replicas of
// a hundred thousand cells fit one process.

import { assert } from "../../core/assert.ts";
import { deriveSeed, Rng } from "../../random.ts";
import type { CellReport } from "../cache.ts";
import { DiscoveryCache } from "../cache.ts";
import type { CellEntry } from "../entry.ts";
import { DiscoveryNode, type Outgoing } from "../node.ts";
import type { PeerRecord, PeerSeed } from "../peers.ts";
import { EntryStore } from "../store.ts";
import { type ClientsReport, type ClientsSpec, SimClients } from "./clients.ts";
import { EventQueue } from "./events.ts";

export type PoisonKind =
  /** The same version and ballot, other members, stamped later: wins the order; a member proves it wrong. */
  | "wrongMembers"
  /** An old membership under a higher epoch: wins the order; a member's newer version beats it at that epoch. */
  | "higherEpochStale"
  /** The right membership with a non-member as leader under a higher ballot: a member proves it wrong. */
  | "nonMemberLeader"
  /** A version beyond every member's applied slot: nobody can judge it; it expires. */
  | "futureVersion"
  /** A cell that does not exist: nobody refreshes it; it expires. */
  | "phantom"
  /** A restarted node loaded with older entries: they lose to every peer's. */
  | "staleBackup";

export interface PhaseSpec {
  readonly name: string;
  readonly durationMs: number;
  /** Membership changes per simulated second, over the whole colony. */
  readonly churnPerSecond: number;
  readonly leaderChangesPerSecond: number;
  readonly lossRate?: number;
  /** A fraction of the nodes cut off from the rest, from `atMs` into the phase, for `durationMs`. */
  readonly partition?: { readonly fraction: number; readonly atMs: number; readonly durationMs: number };
  /** `count` nodes crash at `atMs` into the phase and restart `downMs` later with an empty cache. */
  readonly crashes?: { readonly count: number; readonly atMs: number; readonly downMs: number };
  /** Wrong entries injected at `atMs` into the phase into `nodes` nodes, `cellsPerKind` cells per kind. */
  readonly poison?: { readonly atMs: number; readonly nodes: number; readonly cellsPerKind: number; readonly kinds: readonly PoisonKind[] };
  /** Every client's lookups and answers are lost from `atMs` into the phase, for `durationMs`. */
  readonly clientsCutOff?: { readonly atMs: number; readonly durationMs: number };
}

export interface ColonySimOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly cells: number;
  readonly membersPerCell?: number;
  readonly leafBits?: number;
  readonly roundMs?: number;
  readonly sessionBytesMax?: number;
  readonly latencyMinMs?: number;
  readonly latencyMaxMs?: number;
  readonly lossRate?: number;
  /** Each node's clock is off the simulation's by up to this much either way. */
  readonly clockOffsetMsMax?: number;
  readonly entryLifetimeMs?: number;
  readonly refreshIntervalMs?: number;
  readonly clockSkewMs?: number;
  readonly auditsPerRound?: number;
  readonly suspectTimeoutMs?: number;
  /** How long after a leader crashes a new one is elected among the members that are up. */
  readonly electionMs?: number;
  readonly phases: readonly PhaseSpec[];
  /** Clients looking cells up through the simulated network (clients.ts); none by default. */
  readonly clients?: ClientsSpec;
  /** A quiet time at the end, with no faults, so that the last changes can converge. */
  readonly settleMs?: number;
  /** Told when each phase ends (the bench prints progress with it). */
  readonly onPhaseEnd?: (name: string, simulatedSeconds: number, events: number) => void;
}

export interface Distribution {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface PhaseReport {
  readonly name: string;
  readonly changes: number;
  readonly converged: number;
  readonly unconverged: number;
  readonly unconvergedAll: number;
  /** From a change until every node in service at the change (up, not rebuilding) held it. */
  readonly convergenceRounds: Distribution;
  readonly convergenceSeconds: Distribution;
  /** From a change until every node up held it, nodes still rebuilding their replica included. */
  readonly convergenceAllSeconds: Distribution;
  readonly bytesPerNodePerSecond: { readonly mean: number; readonly p99: number; readonly max: number };
  readonly messagesPerNodePerSecond: number;
  /** Pairs (observer, node) where an up node was believed dead by an up observer, at the phase's end. */
  readonly wronglyDeadPairs: number;
}

export interface PoisonReport {
  readonly kind: PoisonKind;
  readonly cells: number;
  readonly injected: number;
  /** The most nodes that held one poisoned entry at once. */
  readonly spreadMax: number;
  /** When no node held any of them any more, after injection; null if some still did at the end. */
  readonly healedSeconds: number | null;
  /** The same over the nodes in service (not rebuilding an emptied replica). */
  readonly healedInServiceSeconds: number | null;
  readonly heldAtEnd: number;
}

export interface ColonySimReport {
  readonly seed: number;
  readonly nodes: number;
  readonly cells: number;
  readonly simulatedSeconds: number;
  readonly events: number;
  readonly phases: readonly PhaseReport[];
  readonly liveness: {
    readonly crashes: number;
    readonly allSuspectedSeconds: Distribution;
    readonly allDeadSeconds: Distribution;
    readonly undetected: number;
    readonly probesFailed: number;
    readonly refutations: number;
  };
  readonly rebuild: { readonly restarts: number; readonly fullSeconds: Distribution; readonly incomplete: number };
  readonly poison: readonly PoisonReport[];
  readonly rejected: Readonly<Record<string, number>>;
  readonly storeRecords: number;
  readonly storeNames: number;
  readonly clients: ClientsReport | null;
}

interface SimCell {
  readonly name: string;
  readonly incarnation: string;
  members: number[];
  leader: number | null;
  version: number;
  appliedSlot: number;
  ballot: number;
  /** Poisoned cells take no more churn, so that their healing is measured alone. */
  frozen: boolean;
}

interface Tracker {
  readonly cell: number;
  readonly version: number;
  readonly ballot: number;
  readonly startMs: number;
  readonly phase: number;
  readonly knowers: Uint8Array;
  /** Nodes in service (up and not rebuilding) when the change happened. */
  readonly targets: Uint8Array;
  count: number;
  targetsUp: number;
  targetsKnowing: number;
  /** When every target still up knew the change. */
  convergedMs: number | null;
  /** When every node up, rebuilding ones included, knew it. */
  convergedAllMs: number | null;
}

interface PoisonTrack {
  readonly kind: PoisonKind;
  readonly records: Set<number>;
  holders: number;
  spreadMax: number;
  readonly injectedMs: number;
  healedMs: number | null;
  healedInServiceMs: number | null;
  readonly cells: number;
  injected: number;
}

interface Crash {
  readonly node: number;
  readonly atMs: number;
  readonly generation: number;
  suspectedAllMs: number | null;
  deadAllMs: number | null;
}

const epochMs = 1_700_000_000_000;

function hex16(rng: Rng): string {
  return rng.nextUint32().toString(16).padStart(8, "0") + rng.nextUint32().toString(16).padStart(8, "0");
}

function distribution(values: readonly number[]): Distribution {
  if (values.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
  const round = (x: number): number => Math.round(x * 1000) / 1000;
  return { count: sorted.length, p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted[sorted.length - 1] as number) };
}

export class ColonySim {
  readonly options: ColonySimOptions;
  readonly store: EntryStore;
  private readonly rng: Rng;
  private readonly netRng: Rng;
  private readonly queue = new EventQueue();
  private readonly seeds: PeerSeed[];
  private readonly identities: string[];
  private readonly offsets: number[];
  private readonly nodes: (DiscoveryNode | null)[];
  private readonly generations: number[];
  private readonly scheduledMs: number[];
  private readonly group: Uint8Array;
  /** 1 for a node that is up and not rebuilding its replica. */
  private readonly inService: Uint8Array;
  private partitioned = false;
  private clientsCutOff = false;
  private clients: SimClients | null = null;
  private readonly cells: SimCell[] = [];
  private readonly cellIndex = new Map<number, number>();
  private readonly trackers = new Map<number, Tracker[]>();
  private readonly allTrackers: Tracker[] = [];
  private readonly poisonByRecord = new Map<number, PoisonTrack>();
  private readonly poisonTracks: PoisonTrack[] = [];
  private readonly crashes: Crash[] = [];
  private readonly restarts: Array<{ node: number; atMs: number; fullMs: number | null }> = [];
  private readonly bytesByNode: Float64Array;
  private readonly messagesByNode: Float64Array;
  private upCount: number;
  private phase = 0;
  private lossRate: number;
  private events = 0;
  private probesFailedGone = 0;
  private refutationsGone = 0;
  private readonly rejectedGone: Record<string, number> = {};
  private readonly roundMs: number;
  private readonly latencyMinMs: number;
  private readonly latencyMaxMs: number;

  constructor(options: ColonySimOptions) {
    assert(options.nodes >= 2 && options.cells >= 1, "sim: needs two nodes and a cell");
    this.options = options;
    this.rng = new Rng(deriveSeed(options.seed, 1));
    this.netRng = new Rng(deriveSeed(options.seed, 2));
    this.store = new EntryStore({ leafBits: options.leafBits ?? 12 });
    this.roundMs = options.roundMs ?? 1_000;
    this.latencyMinMs = options.latencyMinMs ?? 0.2;
    this.latencyMaxMs = options.latencyMaxMs ?? 2;
    this.lossRate = options.lossRate ?? 0;
    const n = options.nodes;
    this.seeds = Array.from({ length: n }, (_, i) => ({ nodeId: `n${i}`, address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:7101` }));
    this.identities = this.seeds.map((seed) => `${seed.nodeId}~${hex16(this.rng)}`);
    const skew = options.clockOffsetMsMax ?? 50;
    this.offsets = Array.from({ length: n }, () => Math.round((this.rng.nextFloat() * 2 - 1) * skew));
    this.nodes = new Array<DiscoveryNode | null>(n).fill(null);
    this.generations = new Array<number>(n).fill(0);
    this.scheduledMs = new Array<number>(n).fill(Number.POSITIVE_INFINITY);
    this.group = new Uint8Array(n);
    this.inService = new Uint8Array(n);
    this.bytesByNode = new Float64Array(n);
    this.messagesByNode = new Float64Array(n);
    this.upCount = 0;
    this.queue.nowMs = epochMs;
  }

  private nodeNow(node: number): number {
    return this.queue.nowMs + (this.offsets[node] as number);
  }

  private report(cellIndex: number, node: number): CellReport | null {
    const cell = this.cells[cellIndex] as SimCell;
    if (!cell.members.includes(node)) return null;
    const leader = cell.leader === null ? null : (this.identities[cell.leader] as string);
    return {
      cell: cell.name, incarnation: cell.incarnation, version: cell.version, appliedSlot: cell.appliedSlot,
      members: cell.members.map((m) => this.identities[m] as string), leader, ballot: cell.ballot,
      role: cell.leader === node ? "leader" : "follower",
    };
  }

  private truthEntry(cellIndex: number, refreshedMs: number): CellEntry {
    const cell = this.cells[cellIndex] as SimCell;
    return {
      cell: cell.name, incarnation: cell.incarnation, epoch: 0, version: cell.version, ballot: cell.ballot,
      leader: cell.leader === null ? null : (this.identities[cell.leader] as string), refreshedMs,
      members: cell.members.map((m) => this.identities[m] as string).sort(),
    };
  }

  private makeNode(i: number, generation: number, peerRecords: readonly PeerRecord[] = []): DiscoveryNode {
    const o = this.options;
    const node = new DiscoveryNode({
      peerRecords,
      identity: this.identities[i] as string, address: (this.seeds[i] as PeerSeed).address, generation, seeds: this.seeds,
      rng: new Rng(deriveSeed(o.seed, 3, i, generation % 0xffff_ffff)), nowMs: this.nodeNow(i), store: this.store,
      roundMs: this.roundMs, sessionBytesMax: o.sessionBytesMax ?? 64 * 1024,
      entryLifetimeMs: o.entryLifetimeMs ?? 24 * 3_600_000, refreshIntervalMs: o.refreshIntervalMs ?? 4 * 3_600_000,
      clockSkewMs: o.clockSkewMs ?? 60_000, auditsPerRound: o.auditsPerRound ?? 16, suspectTimeoutMs: o.suspectTimeoutMs ?? 6_000,
      onChange: (nameIndex, before, after) => this.changed(i, nameIndex, before, after),
    });
    for (const cellIndex of this.hostedBy(i)) node.host((this.cells[cellIndex] as SimCell).name);
    return node;
  }

  private hostedLists: number[][] = [];

  private hostedBy(node: number): readonly number[] {
    return this.hostedLists[node] ?? [];
  }

  private setHosted(node: number, cellIndex: number, hosted: boolean): void {
    const list = (this.hostedLists[node] ??= []);
    const at = list.indexOf(cellIndex);
    if (hosted && at < 0) list.push(cellIndex);
    if (!hosted && at >= 0) list.splice(at, 1);
  }

  // ---- set-up ----------------------------------------------------------------------------

  private setUp(): void {
    const o = this.options;
    const membersPerCell = o.membersPerCell ?? 7;
    const refreshIntervalMs = o.refreshIntervalMs ?? 4 * 3_600_000;
    const template = new DiscoveryCache(this.store, { entryLifetimeMs: o.entryLifetimeMs ?? 24 * 3_600_000, refreshIntervalMs, clockSkewMs: o.clockSkewMs ?? 60_000 });
    for (let c = 0; c < o.cells; c++) {
      const members: number[] = [];
      while (members.length < membersPerCell) {
        const node = this.rng.nextInt(o.nodes);
        if (!members.includes(node)) members.push(node);
      }
      const version = 1 + this.rng.nextInt(1_000);
      const cell: SimCell = {
        name: `vol-${hex16(this.rng).slice(0, 17)}`, incarnation: hex16(this.rng), members, leader: members[0] as number,
        version, appliedSlot: version + this.rng.nextInt(1_000), ballot: 1 + this.rng.nextInt(5), frozen: false,
      };
      this.cells.push(cell);
      for (const member of members) this.setHosted(member, c, true);
      // Stamps spread over one refresh interval, so that leaders do not all refresh at once.
      const outcome = template.merge(this.truthEntry(c, epochMs - this.rng.nextInt(refreshIntervalMs)), epochMs);
      assert(outcome === "stored", `sim: set-up merge ${outcome}`);
      this.cellIndex.set(this.store.names.find(cell.name), c);
    }
    // The colony has been running a while: every node knows every other's record.
    const records: PeerRecord[] = [];
    for (let i = 0; i < o.nodes; i++) {
      this.generations[i] = epochMs - 1_000_000 + i;
      records.push({ identity: this.identities[i] as string, address: (this.seeds[i] as PeerSeed).address, generation: this.generations[i] as number, heartbeat: 0, status: "alive" });
    }
    for (let i = 0; i < o.nodes; i++) {
      const node = this.makeNode(i, this.generations[i] as number, records);
      node.cache.copyFrom(template);
      this.nodes[i] = node;
      this.upCount++;
      this.inService[i] = 1;
      this.schedule(i);
    }
    template.clear();
  }

  // ---- the network and the nodes' time ---------------------------------------------------

  private schedule(i: number): void {
    const node = this.nodes[i];
    if (node === null || node === undefined) return;
    const due = node.nextDeadlineMs() - (this.offsets[i] as number);
    if (due >= (this.scheduledMs[i] as number)) return;
    this.scheduledMs[i] = due;
    this.queue.at(due, () => {
      if (this.scheduledMs[i] !== due) return;
      this.scheduledMs[i] = Number.POSITIVE_INFINITY;
      const current = this.nodes[i];
      if (current === null || current === undefined) return;
      this.events++;
      const result = current.tick(this.nodeNow(i));
      this.send(i, result.messages);
      for (const cellName of result.audit) {
        const cellIndex = this.cellIndex.get(this.store.names.find(cellName));
        if (cellIndex === undefined) continue;
        const report = this.report(cellIndex, i);
        if (report !== null) current.push(report, this.nodeNow(i));
      }
      this.schedule(i);
    });
  }

  private send(from: number, messages: readonly Outgoing[]): void {
    for (const out of messages) {
      this.bytesByNode[from] = (this.bytesByNode[from] as number) + out.bytes;
      this.messagesByNode[from] = (this.messagesByNode[from] as number) + 1;
      const to = Number(out.to.slice(1));
      if (this.netRng.chance(this.lossRate)) continue;
      if (this.partitioned && this.group[from] !== this.group[to]) continue;
      const latency = this.latencyMinMs + this.netRng.nextFloat() * (this.latencyMaxMs - this.latencyMinMs);
      const sender = this.seeds[from] as PeerSeed;
      this.queue.at(this.queue.nowMs + latency, () => {
        const node = this.nodes[to];
        if (node === null || node === undefined) return;
        this.events++;
        const result = node.receive({ from: sender.nodeId, message: out.wire }, this.nodeNow(to));
        if (result.ok) this.send(to, result.messages);
        this.schedule(to);
      });
    }
  }

  /** A client's lookup to node `to` and its answer, each through the network (latency, loss, the clients' cut-off). */
  private clientLookup(to: number, wire: unknown, reply: (wire: unknown) => void): void {
    const lost = (): boolean => this.clientsCutOff || this.netRng.chance(this.lossRate);
    const extra = this.options.clients?.extraLatencyMs ?? 0;
    const latency = (): number => extra + this.latencyMinMs + this.netRng.nextFloat() * (this.latencyMaxMs - this.latencyMinMs);
    if (lost()) return;
    this.queue.at(this.queue.nowMs + latency(), () => {
      const node = this.nodes[to];
      if (node === null || node === undefined) return;
      this.events++;
      const answer = node.answer(wire, this.nodeNow(to));
      if (!answer.ok || lost()) return;
      this.queue.at(this.queue.nowMs + latency(), () => reply(answer.wire));
    });
  }

  // ---- convergence -----------------------------------------------------------------------

  private knows(record: number, tracker: Tracker): boolean {
    if (record < 0) return false;
    const cell = this.cells[tracker.cell] as SimCell;
    const entry = this.store.entry(record);
    if (entry.incarnation !== cell.incarnation) return false;
    const version = this.store.versionOf(record);
    return version > tracker.version || (version === tracker.version && this.store.ballotOf(record) >= tracker.ballot);
  }

  private changed(node: number, nameIndex: number, before: number, after: number): void {
    const trackers = this.trackers.get(nameIndex);
    if (trackers !== undefined) {
      for (const tracker of trackers) {
        const knew = tracker.knowers[node] === 1;
        const knows = this.knows(after, tracker);
        if (knew === knows) continue;
        tracker.knowers[node] = knows ? 1 : 0;
        tracker.count += knows ? 1 : -1;
        if (tracker.targets[node] === 1) tracker.targetsKnowing += knows ? 1 : -1;
        this.checkConverged(tracker);
      }
    }
    if (before >= 0) {
      const track = this.poisonByRecord.get(before);
      if (track !== undefined) track.holders--;
    }
    if (after >= 0) {
      const track = this.poisonByRecord.get(after);
      if (track !== undefined) {
        track.holders++;
        track.spreadMax = Math.max(track.spreadMax, track.holders);
      }
    }
  }

  private checkConverged(tracker: Tracker): void {
    if (tracker.convergedMs === null && tracker.targetsKnowing >= tracker.targetsUp) tracker.convergedMs = this.queue.nowMs;
    if (tracker.convergedAllMs === null && tracker.count >= this.upCount) {
      tracker.convergedAllMs = this.queue.nowMs;
      if (tracker.convergedMs === null) tracker.convergedMs = this.queue.nowMs;
      const nameIndex = this.store.names.find((this.cells[tracker.cell] as SimCell).name);
      const list = this.trackers.get(nameIndex);
      if (list !== undefined) {
        const rest = list.filter((t) => t !== tracker);
        if (rest.length === 0) this.trackers.delete(nameIndex);
        else this.trackers.set(nameIndex, rest);
      }
    }
  }

  private track(cellIndex: number): void {
    const cell = this.cells[cellIndex] as SimCell;
    const tracker: Tracker = {
      cell: cellIndex, version: cell.version, ballot: cell.ballot, startMs: this.queue.nowMs, phase: this.phase,
      knowers: new Uint8Array(this.options.nodes), targets: new Uint8Array(this.options.nodes), count: 0, targetsUp: 0, targetsKnowing: 0,
      convergedMs: null, convergedAllMs: null,
    };
    const nameIndex = this.store.names.find(cell.name);
    for (let i = 0; i < this.options.nodes; i++) {
      const node = this.nodes[i];
      if (node === null || node === undefined) continue;
      const target = this.inService[i] === 1;
      if (target) {
        tracker.targets[i] = 1;
        tracker.targetsUp++;
      }
      if (this.knows(node.cache.recordAt(nameIndex), tracker)) {
        tracker.knowers[i] = 1;
        tracker.count++;
        if (target) tracker.targetsKnowing++;
      }
    }
    this.allTrackers.push(tracker);
    const list = this.trackers.get(nameIndex);
    if (list === undefined) this.trackers.set(nameIndex, [tracker]);
    else list.push(tracker);
    this.checkConverged(tracker);
  }

  private recheckAll(): void {
    for (const list of [...this.trackers.values()]) for (const tracker of list) this.checkConverged(tracker);
  }

  // ---- the cells' life -------------------------------------------------------------------

  private pushFromLeader(cellIndex: number): void {
    const cell = this.cells[cellIndex] as SimCell;
    if (cell.leader === null) return;
    const node = this.nodes[cell.leader];
    if (node === null || node === undefined) return;
    const report = this.report(cellIndex, cell.leader);
    if (report !== null) node.push(report, this.nodeNow(cell.leader));
  }

  private pickCell(): number | null {
    for (let attempt = 0; attempt < 16; attempt++) {
      const c = this.rng.nextInt(this.cells.length);
      if (!(this.cells[c] as SimCell).frozen) return c;
    }
    return null;
  }

  private churn(): void {
    const c = this.pickCell();
    if (c === null) return;
    const cell = this.cells[c] as SimCell;
    const removable = cell.members.filter((m) => m !== cell.leader);
    if (removable.length === 0) return;
    const removed = removable[this.rng.nextInt(removable.length)] as number;
    let added = this.rng.nextInt(this.options.nodes);
    while (cell.members.includes(added)) added = this.rng.nextInt(this.options.nodes);
    cell.members = [...cell.members.filter((m) => m !== removed), added];
    cell.appliedSlot += 1 + this.rng.nextInt(5);
    cell.version = cell.appliedSlot;
    this.setHosted(removed, c, false);
    this.setHosted(added, c, true);
    const leaving = this.nodes[removed];
    if (leaving !== null && leaving !== undefined) {
      const report = { ...(this.report(c, cell.members[0] as number) as CellReport), role: "follower" as const };
      leaving.leave(report, this.nodeNow(removed));
    }
    this.nodes[added]?.host(cell.name);
    this.pushFromLeader(c);
    this.track(c);
  }

  private changeLeader(): void {
    const c = this.pickCell();
    if (c === null) return;
    const cell = this.cells[c] as SimCell;
    const up = cell.members.filter((m) => this.nodes[m] !== null && m !== cell.leader);
    if (up.length === 0) return;
    cell.leader = up[this.rng.nextInt(up.length)] as number;
    cell.ballot++;
    this.pushFromLeader(c);
    this.track(c);
  }

  private poisson(ratePerSecond: number, untilMs: number, run: () => void): void {
    if (ratePerSecond <= 0) return;
    const next = (): void => {
      const gapMs = (-Math.log(1 - this.rng.nextFloat()) / ratePerSecond) * 1000;
      const atMs = this.queue.nowMs + gapMs;
      if (atMs >= untilMs) return;
      this.queue.at(atMs, () => {
        this.events++;
        run();
        next();
      });
    };
    next();
  }

  // ---- faults ----------------------------------------------------------------------------

  /** A crash; `detectable` is false for a restart at the same moment, which no peer can notice. */
  private crash(i: number, detectable = true): void {
    const node = this.nodes[i];
    if (node === null || node === undefined) return;
    this.probesFailedGone += node.stats.probesFailed;
    this.refutationsGone += node.stats.refutations;
    for (const [reason, count] of Object.entries(node.stats.rejected)) this.rejectedGone[reason] = (this.rejectedGone[reason] ?? 0) + (count ?? 0);
    this.nodes[i] = null;
    this.upCount--;
    node.cache.clear();
    this.inService[i] = 0;
    for (const list of this.trackers.values()) {
      for (const tracker of list) {
        if (tracker.targets[i] !== 1) continue;
        tracker.targets[i] = 0;
        tracker.targetsUp--;
      }
    }
    this.scheduledMs[i] = Number.POSITIVE_INFINITY;
    if (detectable) this.crashes.push({ node: i, atMs: this.queue.nowMs, generation: this.generations[i] as number, suspectedAllMs: null, deadAllMs: null });
    this.recheckAll();
    // Cells it led elect a new leader among the members that are up, a moment later.
    for (const c of this.hostedBy(i)) {
      const cell = this.cells[c] as SimCell;
      if (cell.leader !== i) continue;
      this.queue.at(this.queue.nowMs + (this.options.electionMs ?? 2_000), () => {
        if (cell.leader !== i) return;
        const up = cell.members.filter((m) => this.nodes[m] !== null);
        if (up.length === 0) return;
        cell.leader = up[this.rng.nextInt(up.length)] as number;
        cell.ballot++;
        this.pushFromLeader(c);
        this.track(c);
      });
    }
  }

  private restart(i: number, staleEntries: readonly CellEntry[] = []): DiscoveryNode {
    const generation = Math.max(this.queue.nowMs, (this.generations[i] as number) + 1);
    this.generations[i] = generation;
    const node = this.makeNode(i, generation);
    for (const entry of staleEntries) node.cache.merge(entry, this.nodeNow(i));
    this.nodes[i] = node;
    this.upCount++;
    this.restarts.push({ node: i, atMs: this.queue.nowMs, fullMs: null });
    this.schedule(i);
    return node;
  }

  private watch(): void {
    // Liveness of crashed nodes, rebuilds of restarted ones: polled twice a second.
    for (const crash of this.crashes) {
      if (crash.deadAllMs !== null || this.nodes[crash.node] !== null) continue;
      let suspected = 0;
      let dead = 0;
      let observers = 0;
      const nodeId = `n${crash.node}`;
      for (const node of this.nodes) {
        if (node === null) continue;
        observers++;
        const view = node.peers.get(nodeId);
        if (view === null || view.record.generation !== crash.generation) continue;
        if (view.record.status !== "alive") suspected++;
        if (view.record.status === "dead") dead++;
      }
      if (crash.suspectedAllMs === null && suspected === observers) crash.suspectedAllMs = this.queue.nowMs;
      if (dead === observers) crash.deadAllMs = this.queue.nowMs;
    }
    for (const restart of this.restarts) {
      if (restart.fullMs !== null) continue;
      const node = this.nodes[restart.node];
      if (node === null || node === undefined) continue;
      if (node.cache.size >= this.cells.length) {
        restart.fullMs = this.queue.nowMs;
        this.inService[restart.node] = 1;
      }
    }
    for (const track of this.poisonTracks) {
      if (track.healedMs === null && track.holders === 0) track.healedMs = this.queue.nowMs;
      if (track.healedInServiceMs === null && !this.heldInService(track)) track.healedInServiceMs = this.queue.nowMs;
    }
  }

  private heldInService(track: PoisonTrack): boolean {
    for (const record of track.records) {
      const nameIndex = this.store.nameOf(record);
      for (let i = 0; i < this.nodes.length; i++) {
        const node = this.nodes[i];
        if (node !== null && node !== undefined && this.inService[i] === 1 && node.cache.recordAt(nameIndex) === record) return true;
      }
    }
    return false;
  }

  private poison(kinds: readonly PoisonKind[], nodeCount: number, cellsPerKind: number): void {
    const up = this.nodes.flatMap((node, i) => (node === null ? [] : [i]));
    for (const kind of kinds) {
      const track: PoisonTrack = { kind, records: new Set(), holders: 0, spreadMax: 0, injectedMs: this.queue.nowMs, healedMs: null, healedInServiceMs: null, cells: cellsPerKind, injected: 0 };
      this.poisonTracks.push(track);
      const forged: CellEntry[] = [];
      for (let k = 0; k < cellsPerKind; k++) {
        const c = this.pickCell();
        if (c === null) continue;
        const cell = this.cells[c] as SimCell;
        cell.frozen = true;
        const truth = this.truthEntry(c, this.queue.nowMs);
        const stranger = (): string => this.identities[this.rng.nextInt(this.options.nodes)] as string;
        const strangers = (): string[] => {
          const set = new Set<string>();
          while (set.size < cell.members.length) set.add(stranger());
          return [...set].sort();
        };
        switch (kind) {
          case "wrongMembers":
            forged.push({ ...truth, members: strangers() });
            break;
          case "higherEpochStale":
            forged.push({ ...truth, epoch: 3, version: Math.max(0, truth.version - 1), members: strangers() });
            break;
          case "nonMemberLeader": {
            let leader = stranger();
            while (truth.members.includes(leader)) leader = stranger();
            forged.push({ ...truth, ballot: truth.ballot + 10, leader });
            break;
          }
          case "futureVersion":
            forged.push({ ...truth, version: cell.appliedSlot + 1_000, members: strangers() });
            break;
          case "phantom":
            forged.push({ ...truth, cell: `phantom-${hex16(this.rng)}`, members: strangers() });
            break;
          case "staleBackup":
            forged.push({ ...truth, version: Math.max(0, truth.version - 1), refreshedMs: truth.refreshedMs - 60_000, members: strangers() });
            break;
        }
      }
      const targets: number[] = [];
      for (let k = 0; k < nodeCount && up.length > 0; k++) targets.push(up.splice(this.rng.nextInt(up.length), 1)[0] as number);
      for (const target of targets) {
        let node = this.nodes[target] as DiscoveryNode;
        if (kind === "staleBackup") {
          this.crash(target, false);
          node = this.restart(target);
        }
        for (const entry of forged) {
          if (node.cache.merge(entry, this.nodeNow(target)) !== "stored") continue;
          const index = this.store.names.find(entry.cell);
          const record = node.cache.recordAt(index);
          if (!track.records.has(record)) {
            // Hold the record so that its index is not reused while we watch it.
            this.store.retain(record);
            track.records.add(record);
            this.poisonByRecord.set(record, track);
            track.holders++;
          }
          track.spreadMax = Math.max(track.spreadMax, track.holders);
          track.injected++;
        }
      }
    }
  }

  // ---- running ---------------------------------------------------------------------------

  run(): ColonySimReport {
    this.setUp();
    if (this.options.clients !== undefined) {
      this.clients = new SimClients({
        queue: this.queue, seeds: this.seeds,
        lookup: (to, wire, reply) => this.clientLookup(to, wire, reply),
        pickCell: (rng) => {
          const cell = this.cells[rng.nextInt(this.cells.length)];
          return cell === undefined ? null : { name: cell.name, incarnation: cell.incarnation };
        },
      }, this.options.clients, deriveSeed(this.options.seed, 4));
      this.clients.start();
    }
    const ended: Array<() => PhaseReport> = [];
    const phases = [...this.options.phases, { name: "settle", durationMs: this.options.settleMs ?? 60_000, churnPerSecond: 0, leaderChangesPerSecond: 0 }];
    let watchUntil = 0;
    const watchEvery = (untilMs: number): void => {
      for (let t = Math.max(watchUntil, this.queue.nowMs) + 500; t <= untilMs; t += 500) this.queue.at(t, () => this.watch());
      watchUntil = untilMs;
    };
    for (const [p, spec] of phases.entries()) {
      this.phase = p;
      const startMs = this.queue.nowMs;
      const endMs = startMs + spec.durationMs;
      this.lossRate = spec.lossRate ?? this.options.lossRate ?? 0;
      this.bytesByNode.fill(0);
      this.messagesByNode.fill(0);
      this.poisson(spec.churnPerSecond, endMs, () => this.churn());
      this.poisson(spec.leaderChangesPerSecond, endMs, () => this.changeLeader());
      if (spec.partition !== undefined) {
        const { fraction, atMs, durationMs } = spec.partition;
        this.queue.at(startMs + atMs, () => {
          for (let i = 0; i < this.options.nodes; i++) this.group[i] = this.rng.chance(fraction) ? 1 : 0;
          this.partitioned = true;
        });
        this.queue.at(startMs + atMs + durationMs, () => {
          this.partitioned = false;
        });
      }
      if (spec.clientsCutOff !== undefined) {
        const { atMs, durationMs } = spec.clientsCutOff;
        this.queue.at(startMs + atMs, () => {
          this.clientsCutOff = true;
        });
        this.queue.at(startMs + atMs + durationMs, () => {
          this.clientsCutOff = false;
        });
      }
      if (spec.crashes !== undefined) {
        const { count, atMs, downMs } = spec.crashes;
        this.queue.at(startMs + atMs, () => {
          const up = this.nodes.flatMap((node, i) => (node === null ? [] : [i]));
          for (let k = 0; k < count && up.length > 0; k++) {
            const victim = up.splice(this.rng.nextInt(up.length), 1)[0] as number;
            this.crash(victim);
            this.queue.at(this.queue.nowMs + downMs, () => {
              this.restart(victim);
              this.recheckAll();
            });
          }
        });
      }
      if (spec.poison !== undefined) {
        const { atMs, nodes, cellsPerKind, kinds } = spec.poison;
        this.queue.at(startMs + atMs, () => this.poison(kinds, nodes, cellsPerKind));
      }
      watchEvery(endMs);
      this.queue.runUntil(endMs);
      ended.push(this.phaseEnd(p, spec, startMs, endMs));
      this.options.onPhaseEnd?.(spec.name, (this.queue.nowMs - epochMs) / 1000, this.events);
    }
    this.watch();
    // Convergence is judged at the very end, so that changes made late in a phase count.
    return this.finalReport(ended.map((report) => report()));
  }

  /** What a phase leaves behind at its end; its convergence figures are read later. */
  private phaseEnd(p: number, spec: PhaseSpec, startMs: number, endMs: number): () => PhaseReport {
    const seconds = (endMs - startMs) / 1000;
    const perNode = [...this.bytesByNode].map((b) => b / seconds).sort((a, b) => a - b);
    const mean = perNode.reduce((s, x) => s + x, 0) / perNode.length;
    let wronglyDead = 0;
    for (const observer of this.nodes) {
      if (observer === null) continue;
      for (const view of observer.peers.views()) {
        const target = Number(view.nodeId.slice(1));
        if (this.nodes[target] !== null && view.record.status === "dead") wronglyDead++;
      }
    }
    const messagesPerNodePerSecond = Math.round(([...this.messagesByNode].reduce((sum, x) => sum + x, 0) / this.options.nodes / seconds) * 100) / 100;
    return () => {
      const mine = this.allTrackers.filter((t) => t.phase === p);
      const converged = mine.filter((t) => t.convergedMs !== null);
      const delays = converged.map((t) => ((t.convergedMs as number) - t.startMs) / 1000);
      const allDelays = mine.filter((t) => t.convergedAllMs !== null).map((t) => ((t.convergedAllMs as number) - t.startMs) / 1000);
      return {
        name: spec.name,
        changes: mine.length,
        converged: converged.length,
        unconverged: mine.length - converged.length,
        unconvergedAll: mine.length - allDelays.length,
        convergenceRounds: distribution(delays.map((x) => (x * 1000) / this.roundMs)),
        convergenceSeconds: distribution(delays),
        convergenceAllSeconds: distribution(allDelays),
        bytesPerNodePerSecond: { mean: Math.round(mean), p99: Math.round(perNode[Math.floor(perNode.length * 0.99)] as number), max: Math.round(perNode[perNode.length - 1] as number) },
        messagesPerNodePerSecond,
        wronglyDeadPairs: wronglyDead,
      };
    };
  }

  private finalReport(phases: PhaseReport[]): ColonySimReport {
    let probesFailed = this.probesFailedGone;
    let refutations = this.refutationsGone;
    const rejected: Record<string, number> = { ...this.rejectedGone };
    for (const node of this.nodes) {
      if (node === null) continue;
      probesFailed += node.stats.probesFailed;
      refutations += node.stats.refutations;
      for (const [reason, count] of Object.entries(node.stats.rejected)) rejected[reason] = (rejected[reason] ?? 0) + (count ?? 0);
    }
    const detected = this.crashes.filter((c) => c.deadAllMs !== null);
    const suspected = this.crashes.filter((c) => c.suspectedAllMs !== null);
    const rebuilt = this.restarts.filter((r) => r.fullMs !== null);
    return {
      seed: this.options.seed,
      nodes: this.options.nodes,
      cells: this.options.cells,
      simulatedSeconds: (this.queue.nowMs - epochMs) / 1000,
      events: this.events,
      phases,
      liveness: {
        crashes: this.crashes.length,
        allSuspectedSeconds: distribution(suspected.map((c) => ((c.suspectedAllMs as number) - c.atMs) / 1000)),
        allDeadSeconds: distribution(detected.map((c) => ((c.deadAllMs as number) - c.atMs) / 1000)),
        undetected: this.crashes.length - detected.length,
        probesFailed,
        refutations,
      },
      rebuild: {
        restarts: this.restarts.length,
        fullSeconds: distribution(rebuilt.map((r) => ((r.fullMs as number) - r.atMs) / 1000)),
        incomplete: this.restarts.length - rebuilt.length,
      },
      poison: this.poisonTracks.map((t) => ({
        kind: t.kind, cells: t.cells, injected: t.injected, spreadMax: t.spreadMax,
        healedSeconds: t.healedMs === null ? null : (t.healedMs - t.injectedMs) / 1000,
        healedInServiceSeconds: t.healedInServiceMs === null ? null : (t.healedInServiceMs - t.injectedMs) / 1000, heldAtEnd: t.holders,
      })),
      rejected,
      storeRecords: this.store.records,
      storeNames: this.store.names.size,
      clients: this.clients?.report(distribution) ?? null,
    };
  }

  /** Every up node's entry for every cell, against the truth: how many (node, cell) pairs are wrong. */
  disagreements(): number {
    let wrong = 0;
    for (const [c, cell] of this.cells.entries()) {
      const index = this.store.names.find(cell.name);
      for (const node of this.nodes) {
        if (node === null) continue;
        const record = index < 0 ? -1 : node.cache.recordAt(index);
        if (record < 0) {
          wrong++;
          continue;
        }
        const entry = this.store.entry(record);
        const truth = this.truthEntry(c, 0);
        if (entry.incarnation !== truth.incarnation || entry.version !== truth.version || entry.members.join() !== truth.members.join()) wrong++;
      }
    }
    return wrong;
  }
}
