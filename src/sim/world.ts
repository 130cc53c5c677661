// The simworld: simulated nodes, disks, network and clients driving the real cell core,
// with faults injected from one seed. Frames go through the real wire encoding, signed and
// checked, so corruption exercises the same decoder a node uses.
//
// Where things are: the constructor builds the nodes, cells and clients from the seed; then,
// by section, the ClientHost side (what a simulated client may ask of the world), the run
// (the event loop and its end), nodes (stepping replicas, their disks and flushes), the
// network (frames, delays, loss, duplication, corruption), faults (crashes, wipes,
// compactions, partitions and healing) and checks (agreement, convergence,
// liveness, linearizability).

import { checkHistory } from "../check/linearizable.ts";
import { HistoryRecorder } from "../check/recorder.ts";
import { toHex } from "../core/bytes.ts";
import { describeMessage, printLogValue } from "../core/describe.ts";
import { compareBallots } from "../core/ballot.ts";
import { type CellRecord, type ChosenAtBallot, type Effects, type Outgoing, clearEffects, createEffects } from "../core/effects.ts";
import type { Ballot, CellMessage, ConfigChange, Envelope, LogValue } from "../core/messages.ts";
import type { Replica, ReplicaEnv } from "../core/replica.ts";
import { limits } from "../limits.ts";
import { ReplayGuard, Stamper } from "../wire/freshness.ts";
import { nodePart } from "../wire/ids.ts";
import { KeyRing, KeySet } from "../wire/keyring.ts";
import { decodeMessages, encodeMessages } from "../wire/message.ts";
import { type NodeFacts, authorizeAtClient, authorizeAtNode } from "../wire/roles.ts";
import { type ClientHost, SimClient } from "./client.ts";
import { SimNode } from "./node.ts";
import { type SimOptions, checkSimOptions, mutationOf } from "./options.ts";
import { EventQueue } from "./queue.ts";
import { Rng } from "./rng.ts";

type Event =
  | { readonly kind: "deliver"; readonly from: string; readonly to: string; readonly bytes: Uint8Array; readonly corrupted: boolean; readonly sent: SentFrame }
  | { readonly kind: "tick"; readonly node: SimNode; readonly cell: string; readonly epoch: number }
  | { readonly kind: "fsync"; readonly node: SimNode; readonly epoch: number; readonly upto: number }
  | { readonly kind: "client"; readonly client: SimClient; readonly token: number }
  | { readonly kind: "fault"; readonly action: () => void }
  | { readonly kind: "own"; readonly node: SimNode; readonly epoch: number; readonly messages: readonly Outgoing[] }
  | { readonly kind: "monitor" };

/** What the copies of one sent frame share, so the replay guard's verdicts can be checked. */
interface SentFrame {
  accepted: boolean;
}

export interface SimStats {
  members: number;
  replayGuard: boolean;
  events: number;
  framesSent: number;
  framesDropped: number;
  framesDuplicated: number;
  framesCorrupted: number;
  framesRejected: Record<string, number>;
  framesReplayed: number;
  crashes: number;
  /** Disks replaced: the node came back with a new identity. */
  wipes: number;
  compactions: number;
  sessionTtlMs: number;
  sessionsOpened: number;
  /** Openings refused because a cell's session table was full. */
  sessionsRefused: number;
  /** Commands answered sessionExpired. */
  sessionsExpired: number;
  lateCopies: number;
  leasesGranted: number;
  /** The smallest gap between two holders of one lease, in real ms (negative: they overlapped). */
  leaseGapMinMs: number;
  tailEntriesMax: number;
  recordsLostInCrashes: number;
  partitions: number;
  membershipChanges: number;
  operations: number;
  unknownOutcomes: number;
  clientTimeouts: number;
  slotsApplied: number;
  checkStatesExplored: number;
  inconclusiveChecks: number;
  endedAtMs: number;
}

export interface SimReport {
  readonly seed: number;
  readonly ok: boolean;
  readonly failures: readonly string[];
  readonly stats: SimStats;
}

const eventsMax = 3_000_000;

export class World implements ClientHost {
  private readonly rng: Rng;
  private readonly netRng: Rng;
  private readonly faultRng: Rng;
  private readonly jitterRng: Rng;
  /** The rings of each holder: nodes (one color), clients, and the admins that change membership. */
  private readonly nodeKeys: KeySet;
  private readonly clientKeys: KeySet;
  private readonly controlKeys: KeySet;
  private readonly facts: NodeFacts;
  private readonly guarded: boolean;
  /** Each sender's stamps; a node gets a new epoch when it restarts (SimNode.epoch moves on). */
  private readonly stampers = new Map<string, { readonly nodeEpoch: number; readonly stamper: Stamper }>();
  /** Each receiver's replay guard; a crash forgets it, as a real process would. */
  private readonly guards = new Map<string, { readonly nodeEpoch: number; readonly guard: ReplayGuard }>();
  private senderEpochs = 0;
  private readonly queue = new EventQueue<Event>();
  private readonly nodes = new Map<string, SimNode>();
  private readonly clients = new Map<string, SimClient>();
  private readonly admins: SimClient[] = [];
  private readonly auditors = new Map<string, SimClient>();
  private readonly churnStarts = new Map<SimClient, number>();
  /** Lease grants per "cell#name", in real (global) time, as their holders counted them. */
  private readonly grants = new Map<string, LeaseGrant[]>();
  private readonly cellMembers = new Map<string, readonly string[]>();
  /** Per cell, the addMember changes admins submitted that the cell has not answered for good (by identity, with a count). */
  private readonly addsUnsettled = new Map<string, Map<string, number>>();
  /** The furthest-applied membership seen per cell (replicas that held it may be down now). */
  private readonly membersSeen = new Map<string, { applied: number; members: readonly string[] }>();
  private readonly blocked = new Set<string>();
  private readonly agreement = new Map<string, Map<number, string>>();
  /** Per "cell#slot": the lowest ballot at which a leader saw its value chosen, and the value. */
  private readonly chosenAt = new Map<string, { ballot: Ballot; value: string }>();
  private readonly effects: Effects = createEffects();
  private readonly failures: string[] = [];
  readonly recorder = new HistoryRecorder();
  private time = 0;
  private faulty = true;
  private auditing = false;
  private endAt = Infinity;
  private readonly memberCount: number;
  private readonly lossRate: number;
  private readonly duplicateRate: number;
  private readonly corruptRate: number;
  private readonly reorderMs: number;
  private readonly lateCopyRate: number;
  /** Per cell, the (session, seq) of every command carried out, to show none is carried out twice. */
  private readonly executed = new Map<string, Set<string>>();
  readonly stats: SimStats = {
    members: 0, events: 0, framesSent: 0, framesDropped: 0, framesDuplicated: 0, framesCorrupted: 0, framesRejected: {}, framesReplayed: 0, replayGuard: false,
    crashes: 0, wipes: 0, compactions: 0, sessionTtlMs: 0, sessionsOpened: 0, sessionsRefused: 0, sessionsExpired: 0, lateCopies: 0, leasesGranted: 0, leaseGapMinMs: Infinity, tailEntriesMax: 0, recordsLostInCrashes: 0, partitions: 0, membershipChanges: 0, operations: 0, unknownOutcomes: 0,
    clientTimeouts: 0, slotsApplied: 0, checkStatesExplored: 0, inconclusiveChecks: 0, endedAtMs: 0,
  };

  constructor(private readonly options: SimOptions) {
    checkSimOptions(options);
    this.rng = new Rng(options.seed);
    this.netRng = this.rng.fork();
    this.faultRng = this.rng.fork();
    this.jitterRng = this.rng.fork();
    const secret = new Uint8Array(32);
    for (let i = 0; i < secret.length; i++) secret[i] = this.rng.int(256);
    // Three rings from one seed: the node, client and control secrets differ in their last byte.
    const ring = (id: number) => new KeyRing({ id, secret: secret.map((b, i) => (i === secret.length - 1 ? b ^ id : b)) });
    const rings = { node: ring(1), client: ring(2), control: ring(3) };
    this.nodeKeys = new KeySet(rings, "sim");
    this.clientKeys = new KeySet({ client: rings.client });
    this.controlKeys = new KeySet({ control: rings.control });
    this.facts = { color: "sim", colorOf: (id) => (this.nodes.has(nodePart(id)) ? "sim" : undefined) };
    // Safety must never depend on the replay guard: half the seeds run without it.
    this.guarded = options.replayGuard ?? options.seed % 2 === 0;
    this.stats.replayGuard = this.guarded;
    const faults = options.faults;
    this.lossRate = faults.has("loss") ? 0.01 + this.netRng.next() * 0.1 : 0;
    this.duplicateRate = faults.has("duplicate") ? 0.01 + this.netRng.next() * 0.08 : 0;
    this.corruptRate = faults.has("corrupt") ? 0.002 + this.netRng.next() * 0.02 : 0;
    this.reorderMs = faults.has("reorder") ? 1 + this.netRng.next() * 15 : 0;
    // Late copies: a frame kept back and delivered seconds later, after sessions came and went.
    this.lateCopyRate = faults.has("late") ? 0.002 + this.netRng.next() * 0.01 : 0;

    // A small log tail makes teaching by snapshot common, not a rarity of long runs.
    const mutation = mutationOf(options.bug);
    const settings = { tailEntriesMax: this.rng.pick([2, 4, 8, limits.logTailEntriesMax]), mutations: mutation === null ? [] : [mutation] };
    this.stats.tailEntriesMax = settings.tailEntriesMax;
    for (let i = 1; i <= options.nodes; i++) {
      const drift = faults.has("drift");
      const offset = drift ? (this.rng.next() - 0.5) * 1000 : 0;
      const rate = this.clockRate(i - 1) - 1;
      const id = `n${i}`;
      this.nodes.set(id, new SimNode(id, offset, rate, settings, this.newIncarnation()));
    }
    const nodeIds = [...this.nodes.values()].map((n) => n.identity);
    const sizes = [3, 5, 7].filter((m) => m <= options.nodes);
    const memberCount = options.members ?? (sizes.length > 0 ? this.rng.pick(sizes) : options.nodes);
    this.memberCount = memberCount;
    // Short session lifetimes, so that sessions expire within a run while copies of their
    // commands are still in flight; and now and then a crowd of short-lived clients that
    // fills the session table (limits.sessionsPerCellMax) in a burst.
    const sessionTtlMs = this.rng.pick([150, 400, 1000, 2500]);
    const churn = options.churnClientsPerCell ?? (faults.has("churn") ? this.rng.pick([0, 0, 30, 2 * limits.sessionsPerCellMax]) : 0);
    this.stats.sessionTtlMs = sessionTtlMs;
    for (let c = 1; c <= options.cells; c++) {
      const cell = `cell-${c}`;
      const members = this.rng.shuffle(nodeIds).slice(0, memberCount);
      this.cellMembers.set(cell, members);
      for (const member of members) {
        const node = this.nodes.get(nodePart(member)) as SimNode;
        node.host(cell, { members, sessionTtlMs }, this.envFor(node));
      }
      for (let i = 1; i <= options.clientsPerCell; i++) {
        const id = `c${c}-${i}`;
        this.clients.set(id, new SimClient(id, cell, this, this.rng.fork(), options.opsPerClient, "regular"));
      }
      // Lease holders: the first with the slowest clock the run allows, to be the one a too
      // fast cell clock would betray.
      for (let i = 1; i <= (options.leaseClientsPerCell ?? 2); i++) {
        const client = new SimClient(`l${c}-${i}`, cell, this, this.rng.fork(), 4 + this.rng.int(6), "leaser");
        client.clockRate = i === 1 ? 1 : this.clockRate(2 + i);
        this.clients.set(client.id, client);
      }
      const bursts = [this.rng.next() * this.options.faultMs * 0.8, this.rng.next() * this.options.faultMs * 0.8];
      for (let i = 1; i <= churn; i++) {
        const client = new SimClient(`t${c}-${i}`, cell, this, this.rng.fork(), 1 + this.rng.int(2), "churn");
        this.clients.set(client.id, client);
        this.churnStarts.set(client, (this.rng.pick(bursts) as number) + this.rng.next() * 150);
      }
      if (faults.has("membership")) {
        // Two operators per cell; now and then the second acts the moment the first does, so
        // that two changes land inside one pipeline window (issue 9 lived there).
        const admin = new SimClient(`admin${c}`, cell, this, this.rng.fork(), 0, "admin");
        const partner = new SimClient(`admin${c}b`, cell, this, this.rng.fork(), 0, "admin");
        admin.partner = partner;
        for (const a of [admin, partner]) {
          this.clients.set(a.id, a);
          this.admins.push(a);
        }
      }
      const auditor = new SimClient(`audit${c}`, cell, this, this.rng.fork(), 0, "auditor");
      this.clients.set(auditor.id, auditor);
      this.auditors.set(cell, auditor);
    }
  }

  // ---- ClientHost ---------------------------------------------------------------------

  now(): number {
    return this.time;
  }

  inFaultPhase(): boolean {
    return this.faulty;
  }

  /**
   * A cell's latest membership, as the replica furthest along knows it (operators' replies
   * can arrive out of order, so the log is the only authority); every node's identity for "*".
   */
  members(cell: string): readonly string[] {
    if (cell === "*") return [...this.nodes.values()].map((n) => n.identity);
    let best: { applied: number; members: readonly string[] } | null = null;
    for (const node of this.nodes.values()) {
      const state = node.replicas.get(cell)?.cellState;
      if (state !== null && state !== undefined && (best === null || state.applied > best.applied)) best = { applied: state.applied, members: state.latestMembers() };
    }
    if (best !== null && best.applied > (this.membersSeen.get(cell)?.applied ?? -1)) this.membersSeen.set(cell, best);
    return this.membersSeen.get(cell)?.members ?? this.cellMembers.get(cell) ?? [];
  }

  prepareChange(cell: string, change: ConfigChange): void {
    if (change.kind !== "addMember") return;
    let adds = this.addsUnsettled.get(cell);
    if (adds === undefined) this.addsUnsettled.set(cell, (adds = new Map()));
    adds.set(change.node, (adds.get(change.node) ?? 0) + 1);
    const node = this.nodes.get(nodePart(change.node));
    if (node === undefined || node.identity !== change.node || node.hosted.has(cell)) return;
    node.hosted.set(cell, null);
    if (node.up) {
      node.host(cell, null, this.envFor(node));
    }
  }

  changeSettled(cell: string, change: ConfigChange): void {
    if (change.kind !== "addMember") return;
    const adds = this.addsUnsettled.get(cell);
    const count = adds?.get(change.node) ?? 0;
    if (count <= 1) adds?.delete(change.node);
    else adds?.set(change.node, count - 1);
  }

  configured(cell: string, members: readonly string[]): void {
    this.cellMembers.set(cell, members);
    this.stats.membershipChanges++;
  }

  plannedMembers(): number {
    return this.memberCount;
  }

  leaseGranted(cell: string, grant: LeaseGrant): void {
    this.stats.leasesGranted++;
    const key = `${cell}#${grant.name}`;
    let list = this.grants.get(key);
    if (list === undefined) this.grants.set(key, (list = []));
    list.push(grant);
  }

  fail(problem: string): void {
    this.failures.push(`at ${this.time.toFixed(1)}ms: ${problem}`);
  }

  wake(at: number, client: SimClient, token: number): void {
    this.queue.push(at, { kind: "client", client, token });
  }

  send(from: string, to: string, cell: string, message: CellMessage): void {
    this.transmit(from, to, [{ cell, message }]);
  }

  // ---- the run ------------------------------------------------------------------------

  run(): SimReport {
    for (const client of this.clients.values()) {
      if (client.kind !== "auditor") this.queue.push(this.churnStarts.get(client) ?? this.rng.next() * 20, { kind: "client", client, token: 0 });
    }
    this.scheduleFaults();
    this.queue.push(this.options.faultMs, { kind: "fault", action: () => this.heal() });
    const deadline = this.options.faultMs + this.options.livenessMs;
    for (;;) {
      const next = this.queue.peekTime();
      if (next === undefined || next > deadline || next > this.endAt) break;
      const item = this.queue.pop();
      if (item === undefined) break;
      this.time = Math.max(this.time, item.at);
      if (++this.stats.events > eventsMax) {
        this.fail(`runaway: more than ${eventsMax} events`);
        break;
      }
      this.handle(item.event);
    }
    this.stats.endedAtMs = Math.round(this.time);
    this.stats.members = this.memberCount;
    this.finalChecks();
    return { seed: this.options.seed, ok: this.failures.length === 0, failures: this.failures, stats: this.stats };
  }

  private handle(event: Event): void {
    switch (event.kind) {
      case "deliver":
        return this.deliver(event);
      case "tick": {
        const { node, cell } = event;
        if (!node.up || event.epoch !== node.epoch) return;
        const replica = node.replicas.get(cell);
        if (replica === undefined) return;
        node.tickAt.delete(cell);
        if (this.options.trace?.cell === cell) this.trace(`${node.id} tick (${replica.role})`);
        const before = this.effects.messages.length;
        replica.tick(node.localTime(this.time), this.effects);
        this.checkSent(node, before);
        this.afterStep(node, [replica]);
        return;
      }
      case "fsync":
        return this.fsyncDone(event.node, event.epoch, event.upto);
      case "client":
        return event.client.wake(event.token);
      case "fault":
        return event.action();
      case "own":
        return this.deliverOwn(event.node, event.epoch, event.messages);
      case "monitor":
        return this.monitor();
    }
  }

  // ---- nodes --------------------------------------------------------------------------

  private envFor(node: SimNode): ReplicaEnv {
    return {
      isAlive: (peer: string) => {
        const other = this.nodes.get(nodePart(peer));
        return other !== undefined && other.up && other.identity === peer && !this.blocked.has(`${node.id}>${other.id}`) && !this.blocked.has(`${other.id}>${node.id}`);
      },
      jitter: () => this.jitterRng.next(),
    };
  }

  private afterStep(node: SimNode, touched: Iterable<Replica>): void {
    const effects = this.effects;
    const bug = this.options.bug;
    for (const { cell, record } of effects.records) {
      if (bug === "forgetPromises" && record.kind === "promise") continue;
      if (bug === "forgetAccepts" && record.kind === "accept") continue;
      node.disk.append({ cell, record });
    }
    const requires = node.disk.records.length;
    // What depends on no record leaves at the next release; the rest waits for the sync.
    for (const message of effects.messages) node.outbox.push({ message, requires: message.afterSync ? requires : 0 });
    // A replica applies in memory at once, but what it applied is a fact only once the
    // records behind it are durable: a crash before the sync loses both, and nothing that
    // depended on them has left the node. So agreement is checked as the records sync.
    for (const entry of effects.applied) node.appliedPending.push({ entry, requires });
    // A leader counts its own vote before that vote is durable, so its "chosen" too is a
    // fact only once its records are.
    for (const chosen of effects.chosen) {
      this.checkVoters(chosen);
      node.chosenPending.push({ chosen, requires });
    }
    clearEffects(effects);
    if (node.disk.records.length > node.disk.synced && !node.disk.syncing) this.startSync(node);
    this.release(node);
    for (const replica of touched) this.scheduleTick(node, replica);
  }

  private startSync(node: SimNode): void {
    node.disk.syncing = true;
    const latency = 0.2 + this.netRng.next() * 4;
    this.queue.push(this.time + latency, { kind: "fsync", node, epoch: node.epoch, upto: node.disk.records.length });
    // Now and then the power fails while this very write is in flight: random crash times
    // almost never land in a window this short, and it is where durability bugs live.
    if (this.faulty && this.options.faults.has("crash") && this.faultRng.chance(0.004)) {
      this.queue.push(this.time + latency * this.faultRng.next(), { kind: "fault", action: () => this.crash(node) });
    }
  }

  private fsyncDone(node: SimNode, epoch: number, upto: number): void {
    if (epoch !== node.epoch || !node.up) return;
    for (let i = node.disk.synced; i < upto; i++) {
      const { cell, record } = node.disk.records[i] as CellRecord;
      if (record.kind !== "accept") continue;
      const key = `${cell}#${record.slot}`;
      let ballots = node.durableVotes.get(key);
      if (ballots === undefined) node.durableVotes.set(key, (ballots = new Set()));
      ballots.add(`${record.ballot.round}.${record.ballot.node}`);
    }
    node.disk.synced = Math.max(node.disk.synced, upto);
    node.disk.syncing = false;
    if (node.disk.records.length > node.disk.synced) this.startSync(node);
    this.release(node);
  }

  /** Sends every held message whose records are durable, one frame per destination. */
  private release(node: SimNode): void {
    const durable = countReady(node.appliedPending, node.disk.synced);
    for (const { entry } of node.appliedPending.splice(0, durable)) this.checkAgreement(node, entry.cell, entry.slot, entry.value, entry.executed);
    for (const { chosen } of node.chosenPending.splice(0, countReady(node.chosenPending, node.disk.synced))) this.noteChosen(node, chosen);
    const outbox = node.outbox;
    const everything = this.options.bug === "sendBeforeSync";
    const ready: Outgoing[] = [];
    let kept = 0;
    for (const held of outbox) {
      if (everything || held.requires <= node.disk.synced) ready.push(held.message);
      else outbox[kept++] = held;
    }
    outbox.length = kept;
    if (ready.length === 0) return;
    const byDestination = new Map<string, Envelope[]>();
    const own: Outgoing[] = [];
    for (const message of ready) {
      if (message.to === node.identity) {
        own.push(message);
        continue;
      }
      let list = byDestination.get(message.to);
      if (list === undefined) byDestination.set(message.to, (list = []));
      list.push({ cell: message.cell, message: message.message });
    }
    for (const [to, envelopes] of byDestination) this.transmit(node.identity, to, envelopes);
    // A leader's acknowledgement of its own vote, now durable, goes back to it.
    if (own.length > 0) this.queue.push(this.time + 0.01, { kind: "own", node, epoch: node.epoch, messages: own });
  }

  private deliverOwn(node: SimNode, epoch: number, messages: readonly Outgoing[]): void {
    if (!node.up || epoch !== node.epoch) return;
    const touched = new Set<Replica>();
    const now = node.localTime(this.time);
    for (const { cell, message } of messages) {
      const replica = node.replicas.get(cell);
      if (replica === undefined) continue;
      const before = this.effects.messages.length;
      replica.step(node.identity, message, now, this.effects);
      this.checkSent(node, before);
      touched.add(replica);
    }
    this.afterStep(node, touched);
  }

  private scheduleTick(node: SimNode, replica: Replica): void {
    const deadline = replica.nextDeadline();
    if (deadline === null) {
      node.tickAt.delete(replica.cell);
      return;
    }
    const at = Math.max(node.globalTime(deadline), this.time + 0.05);
    const scheduled = node.tickAt.get(replica.cell);
    if (scheduled !== undefined && scheduled <= at && scheduled >= this.time) return;
    node.tickAt.set(replica.cell, at);
    this.queue.push(at, { kind: "tick", node, cell: replica.cell, epoch: node.epoch });
  }

  private trace(line: string): void {
    this.options.trace?.print(`${this.time.toFixed(2).padStart(9)} ${line}`);
  }

  /**
   * Two of the protocol's invariants, checked on every message a replica sends, so that a bug
   * shows the moment it acts and not only in the rare runs where it chooses two values:
   * - an acceptor acknowledges (b, s) only while it holds its own vote at b for s;
   * - a proposal into a slot whose chosen value is known carries that value (Paxos's P2c).
   */
  private checkProposal(node: SimNode, cell: string, message: CellMessage): void {
    if (message.kind === "accepted") {
      const held = node.replicas.get(cell)?.acceptedBallot(message.slot);
      if (held === undefined || held.round !== message.ballot.round || held.node !== message.ballot.node) {
        this.fail(`${node.id} acknowledged ${cell} slot ${message.slot} at ${message.ballot.round}.${message.ballot.node} without holding a vote there`);
      }
    } else if (message.kind === "accept") {
      const known = this.chosenAt.get(`${cell}#${message.slot}`);
      if (known !== undefined && compareBallots(message.ballot, known.ballot) > 0 && known.value !== printLogValue(message.value)) {
        this.fail(`${node.id} proposed into ${cell} slot ${message.slot} at ${message.ballot.round}.${message.ballot.node}, chosen at ${known.ballot.round}.${known.ballot.node} as ${known.value.slice(0, 120)}, another value: ${printLogValue(message.value).slice(0, 120)}`);
      }
    }
  }

  /** Checks the messages one step of a replica added to the effects, right after that step. */
  private checkSent(node: SimNode, from: number): void {
    const messages = this.effects.messages;
    for (let i = from; i < messages.length; i++) {
      const { cell, message } = messages[i] as Outgoing;
      this.checkProposal(node, cell, message);
    }
  }

  /** A value is chosen only by votes that are durable, the leader's own included. */
  private checkVoters(chosen: ChosenAtBallot): void {
    const ballot = `${chosen.ballot.round}.${chosen.ballot.node}`;
    for (const voter of chosen.voters) {
      const node = this.nodes.get(nodePart(voter));
      if (node === undefined || node.identity !== voter) continue; // A former identity: its disk is gone.
      if (node.durableVotes.get(`${chosen.cell}#${chosen.slot}`)?.has(ballot) !== true) {
        this.fail(`${chosen.cell} slot ${chosen.slot} was chosen at ${ballot} counting ${voter}'s vote before it was durable`);
      }
    }
  }

  /** Records a value chosen at a ballot (the lowest such ballot per slot is what P2c needs). */
  private noteChosen(node: SimNode, chosen: ChosenAtBallot): void {
    const key = `${chosen.cell}#${chosen.slot}`;
    const value = printLogValue(chosen.value);
    const known = this.chosenAt.get(key);
    if (known === undefined || compareBallots(chosen.ballot, known.ballot) < 0) this.chosenAt.set(key, { ballot: chosen.ballot, value });
    if (known !== undefined && known.value !== value) this.fail(`agreement: ${node.id} chose another value for ${chosen.cell} slot ${chosen.slot}: ${value.slice(0, 200)} vs ${known.value.slice(0, 200)}`);
  }

  /** No command is carried out twice: a session applies each sequence number at most once. */
  private checkOnce(cell: string, slot: number, value: LogValue, executed: readonly boolean[]): void {
    if (value.kind !== "batch") return;
    let seen = this.executed.get(cell);
    if (seen === undefined) this.executed.set(cell, (seen = new Set()));
    value.commands.forEach((command, i) => {
      if (executed[i] !== true || command.op.kind === "openSession") return;
      const key = `${command.session}#${command.seq}`;
      if (seen.has(key)) this.fail(`exactly once: ${cell} carried out session ${command.session} command ${command.seq} a second time, at slot ${slot}`);
      seen.add(key);
    });
  }

  private checkAgreement(node: SimNode, cell: string, slot: number, value: LogValue, executed: readonly boolean[]): void {
    this.stats.slotsApplied++;
    if (this.options.trace?.cell === cell) this.trace(`${node.id} applied ${slot}: ${printLogValue(value).slice(0, 120)}`);
    let slots = this.agreement.get(cell);
    if (slots === undefined) this.agreement.set(cell, (slots = new Map()));
    const printed = printLogValue(value);
    const known = slots.get(slot);
    if (known === undefined) {
      slots.set(slot, printed);
      this.checkOnce(cell, slot, value, executed);
    } else if (known !== printed) this.fail(`agreement: ${node.id} applied a different value at ${cell} slot ${slot}: ${printed.slice(0, 200)} vs ${known.slice(0, 200)}`);
  }

  // ---- network ------------------------------------------------------------------------

  /** The keys a node or client holds: admins change membership, so they hold the control key. */
  /**
   * A clock's rate. With a ratio R set, rates spread over [1, R], the first clock at 1 and the
   * second at R, so the slowest and fastest clocks the bound allows both run; without, within
   * ±5% under the drift fault.
   */
  private clockRate(index: number): number {
    const ratio = this.options.clockRateRatio;
    if (ratio !== undefined) return index === 0 ? 1 : index === 1 ? ratio : Math.exp(this.rng.next() * Math.log(ratio));
    return this.options.faults.has("drift") ? 1 + (this.rng.next() - 0.5) * 0.1 : 1;
  }

  /** A fresh data-directory incarnation, from the run's seed. */
  private newIncarnation(): string {
    let hex = "";
    for (let i = 0; i < 4; i++) hex += this.rng.int(0x10000).toString(16).padStart(4, "0");
    return hex;
  }

  private keysOf(id: string): KeySet {
    if (this.nodes.has(nodePart(id))) return this.nodeKeys;
    return id.startsWith("admin") ? this.controlKeys : this.clientKeys;
  }

  /** The ring a frame goes under: node to node under the node ring, otherwise the client's own. */
  private ringFor(from: string, to: string): KeyRing {
    const client = this.nodes.has(nodePart(from)) ? (this.nodes.has(nodePart(to)) ? null : this.keysOf(to)) : this.keysOf(from);
    const ring = client === null ? this.nodeKeys.ring("node") : (client.ring("client") ?? client.ring("control"));
    if (ring === undefined) throw new Error(`the simworld has no ring for ${from} -> ${to}`);
    return ring;
  }

  private stamp(from: string) {
    const nodeEpoch = this.nodes.get(nodePart(from))?.epoch ?? 0;
    let entry = this.stampers.get(from);
    if (entry === undefined || entry.nodeEpoch !== nodeEpoch) this.stampers.set(from, (entry = { nodeEpoch, stamper: new Stamper(++this.senderEpochs) }));
    return entry.stamper.next();
  }

  private guardOf(to: string): ReplayGuard {
    const nodeEpoch = this.nodes.get(nodePart(to))?.epoch ?? 0;
    let entry = this.guards.get(to);
    if (entry === undefined || entry.nodeEpoch !== nodeEpoch) this.guards.set(to, (entry = { nodeEpoch, guard: new ReplayGuard() }));
    return entry.guard;
  }

  private transmit(from: string, to: string, envelopes: Envelope[]): void {
    const bytes = encodeMessages(this.ringFor(from, to), { sender: from, receiver: to, stamp: this.stamp(from), messages: envelopes, bytesMax: limits.messageBytesMax });
    const sent: SentFrame = { accepted: false };
    this.stats.framesSent++;
    const rng = this.netRng;
    if (this.blocked.has(`${nodePart(from)}>${nodePart(to)}`) || (this.faulty && rng.chance(this.lossRate))) {
      this.stats.framesDropped++;
      return;
    }
    const copies = this.faulty && rng.chance(this.duplicateRate) ? 2 : 1;
    if (copies === 2) this.stats.framesDuplicated++;
    if (this.faulty && rng.chance(this.lateCopyRate)) {
      this.stats.lateCopies++;
      this.queue.push(this.time + 300 + rng.next() * 3_000, { kind: "deliver", from, to, bytes, corrupted: false, sent });
    }
    for (let i = 0; i < copies; i++) {
      let delay = 0.1 + rng.next() * 0.9 + rng.next() * this.reorderMs;
      if (this.faulty && this.options.faults.has("delay") && rng.chance(0.02)) delay += 50 + rng.next() * 250;
      let frame = bytes;
      let corrupted = false;
      if (this.faulty && rng.chance(this.corruptRate)) {
        frame = bytes.slice();
        const at = rng.int(frame.length);
        frame[at] = (frame[at] as number) ^ (1 << rng.int(8));
        corrupted = true;
        this.stats.framesCorrupted++;
      }
      this.queue.push(this.time + delay, { kind: "deliver", from, to, bytes: frame, corrupted, sent });
    }
  }

  private deliver(event: Extract<Event, { kind: "deliver" }>): void {
    const { from, to, bytes, corrupted } = event;
    const node = this.nodes.get(nodePart(to));
    if (node !== undefined && !node.up) return;
    const decoded = decodeMessages(bytes, this.keysOf(to), { receiver: node?.identity ?? to, bytesMax: limits.messageBytesMax });
    if (!decoded.ok && decoded.reason === "wrongReceiver" && !corrupted) {
      // For a former identity of a node whose disk was wiped: lost, as on a real network.
      this.stats.framesRejected.wrongReceiver = (this.stats.framesRejected.wrongReceiver ?? 0) + 1;
      return;
    }
    if (!decoded.ok) {
      this.stats.framesRejected[decoded.reason] = (this.stats.framesRejected[decoded.reason] ?? 0) + 1;
      if (!corrupted) this.fail(`an intact frame from ${from} to ${to} was rejected: ${decoded.reason}: ${decoded.detail}`);
      return;
    }
    if (corrupted) {
      this.fail(`a corrupted frame from ${from} to ${to} was accepted`);
      return;
    }
    // The same role checks as a real node's and client's: every frame here is legitimate.
    const { header } = decoded;
    const frame = { role: header.role, sender: header.sender, messages: decoded.messages };
    const allowed = node === undefined ? authorizeAtClient(frame, { isNode: (id) => this.nodes.has(nodePart(id)) }) : authorizeAtNode(frame, this.facts);
    if (!allowed.ok) {
      this.fail(`a legitimate frame from ${from} to ${to} failed the role check: ${allowed.reason}: ${allowed.detail}`);
      return;
    }
    if (this.guarded) {
      const verdict = this.guardOf(to).admit(header.sender, header.stamp, true);
      if (verdict !== "fresh") {
        this.stats.framesReplayed++;
        // A duplicate must be the second copy of a frame already accepted; an older epoch or
        // a frame beyond the window is lost, which the protocol tolerates.
        if (verdict === "duplicate" && !event.sent.accepted) this.fail(`the replay guard at ${to} dropped a frame from ${from} it never accepted`);
        return;
      }
    }
    event.sent.accepted = true;
    const client = this.clients.get(to);
    if (client !== undefined) {
      for (const { message } of decoded.messages) if (message.kind === "reply") client.onReply(header.sender, message);
      return;
    }
    if (node === undefined) return;
    const now = node.localTime(this.time);
    const touched = new Set<Replica>();
    for (const { cell, message } of decoded.messages) {
      const replica = node.replicas.get(cell);
      if (replica === undefined || message.kind === "create" || message.kind === "join" || message.kind === "hello") continue; // The sim creates replicas itself.
      if (this.options.trace?.cell === cell) this.trace(`${header.sender} -> ${to} ${describeMessage(message)}`);
      const before = this.effects.messages.length;
      replica.step(header.sender, message, now, this.effects);
      this.checkSent(node, before);
      touched.add(replica);
    }
    this.afterStep(node, touched);
  }

  // ---- faults -------------------------------------------------------------------------

  private scheduleFaults(): void {
    const faults = this.options.faults;
    const rng = this.faultRng;
    const end = this.options.faultMs;
    if (faults.has("crash")) {
      for (let t = rng.next() * 300; t < end; t += 150 + rng.next() * 550) {
        this.queue.push(t, { kind: "fault", action: () => this.crashSomeone() });
      }
    }
    // Log compaction is not a fault, but it changes what a restart recovers and what a
    // replica can teach; it runs in every run.
    for (let t = 100 + rng.next() * 400; t < end; t += 100 + rng.next() * 500) {
      this.queue.push(t, { kind: "fault", action: () => this.compactSomeone() });
    }
    if (faults.has("wipe")) {
      for (let t = 500 + rng.next() * 1000; t < end; t += 700 + rng.next() * 1500) {
        this.queue.push(t, { kind: "fault", action: () => this.wipeSomeone() });
      }
    }
    if (faults.has("partition")) {
      for (let t = 200 + rng.next() * 600; t < end; t += 400 + rng.next() * 1100) {
        this.queue.push(t, { kind: "fault", action: () => this.partition() });
      }
    }
  }

  private crashSomeone(): void {
    if (!this.faulty) return;
    const rng = this.faultRng;
    const up = [...this.nodes.values()].filter((n) => n.up);
    if (this.nodes.size - up.length >= 3 || up.length === 0) return;
    // The adversary prefers a node with writes in flight: that is where durability bugs hide.
    const unsynced = up.filter((n) => n.disk.records.length > n.disk.synced);
    this.crash(unsynced.length > 0 && rng.chance(0.7) ? rng.pick(unsynced) : rng.pick(up));
  }

  private compactSomeone(): void {
    const node = this.faultRng.pick([...this.nodes.values()]);
    this.release(node);
    if (node.compact()) {
      this.stats.compactions++;
      if (node.outbox.length !== 0 || node.appliedPending.length !== 0 || node.chosenPending.length !== 0) this.fail(`${node.id} compacted with messages held for records`);
    }
  }

  /**
   * A disk is replaced: the node loses everything and comes back with a new identity, a
   * stranger to its cells until an operator adds it again (and removes the former identity).
   * At most one former identity per cell at a time, and never with another member down: a
   * cell that lost a majority of its disks has lost data, which no protocol can undo.
   */
  private wipeSomeone(): void {
    if (!this.faulty) return;
    const current = new Set(this.members("*"));
    const candidates = [...this.nodes.values()].filter((node) => {
      if (!node.up) return false;
      for (const cell of this.cellMembers.keys()) {
        // Every membership that may still decide a slot, not only the latest; and a replica
        // the node hosts may be in a change not yet applied anywhere: count it too.
        const deciding = this.decidingMembers(cell);
        if (!deciding.has(node.identity) && !node.hosted.has(cell)) continue;
        for (const m of deciding) if (m !== node.identity && (!current.has(m) || !this.nodes.get(nodePart(m))?.up)) return false;
        // A member added but never taught holds no copy of the cell: wiping the only members
        // that do loses the cell's data (seed 104398: members {n6, n1, n4}, n1 and n4 empty,
        // and n6 wiped), which the model says never happens. It counts as a member down.
        for (const m of deciding) if (m !== node.identity && (this.nodes.get(nodePart(m))?.replicas.get(cell)?.applied ?? -1) < 0) return false;
        // An addMember that may still land (retried, or a late copy of it) of an identity that
        // is gone would make a member that can never vote: count it as a member down.
        for (const added of this.addsUnsettled.get(cell)?.keys() ?? []) if (added !== node.identity && !current.has(added)) return false;
      }
      return true;
    });
    if (candidates.length === 0) return;
    const node = this.faultRng.pick(candidates);
    const former = node.identity;
    const reuse = this.options.bug === "reuseIdentity";
    const hosted = [...node.hosted];
    node.wipe(reuse ? former.slice(former.indexOf("~") + 1) : this.newIncarnation());
    // The broken driver also hosts the cells again, empty, under the same identity.
    if (reuse) for (const [cell] of hosted) node.hosted.set(cell, null);
    this.stats.wipes++;
    this.trace(`${former} WIPED, back as ${node.identity}`);
    this.queue.push(this.time + 30 + this.faultRng.next() * 500, { kind: "fault", action: () => this.restart(node) });
  }

  /** Members of every membership that decides a slot past the least advanced replica's applied one. */
  private decidingMembers(cell: string): Set<string> {
    const out = new Set<string>(this.members(cell));
    for (const node of this.nodes.values()) {
      const state = node.replicas.get(cell)?.cellState;
      if (state === null || state === undefined) continue;
      for (const membership of state.windowMemberships()) for (const m of membership.members) out.add(m);
      for (const m of state.latestMembers()) out.add(m);
    }
    return out;
  }

  private crash(node: SimNode): void {
    const down = [...this.nodes.values()].filter((n) => !n.up).length;
    if (!this.faulty || !node.up || down >= 3) return;
    this.stats.crashes++;
    this.trace(`${node.id} CRASH`);
    this.stats.recordsLostInCrashes += node.crash();
    this.queue.push(this.time + 30 + this.faultRng.next() * 800, { kind: "fault", action: () => this.restart(node) });
  }

  private restart(node: SimNode): void {
    if (node.up) return;
    this.trace(`${node.id} RESTART`);
    node.restart(this.envFor(node));
    for (const replica of node.replicas.values()) this.scheduleTick(node, replica);
  }

  private partition(): void {
    if (!this.faulty || this.blocked.size > 0) return;
    const rng = this.faultRng;
    const ids = rng.shuffle([...this.nodes.keys()]);
    const cut = (a: readonly string[], b: readonly string[], oneWay = false) => {
      for (const x of a) {
        for (const y of b) {
          this.blocked.add(`${x}>${y}`);
          if (!oneWay) this.blocked.add(`${y}>${x}`);
        }
      }
    };
    const shape = rng.pick(["halves", "minority", "bridge", "isolate", "asymmetric"] as const);
    if (shape === "halves") cut(ids.slice(0, ids.length >> 1), ids.slice(ids.length >> 1));
    else if (shape === "minority") {
      const size = rng.between(1, Math.max(1, (ids.length - 1) >> 1));
      cut(ids.slice(0, size), ids.slice(size));
    } else if (shape === "bridge" && ids.length >= 3) {
      // One node talks to both sides; the sides cannot talk to each other.
      const rest = ids.slice(1);
      cut(rest.slice(0, rest.length >> 1), rest.slice(rest.length >> 1));
    } else if (shape === "isolate") {
      const clients = [...this.clients.keys()].filter(() => rng.chance(0.5));
      cut([ids[0] as string], [...ids.slice(1), ...clients]);
    } else {
      cut(ids.slice(0, 1 + rng.int(ids.length - 1)), ids, true);
      for (const id of ids) this.blocked.delete(`${id}>${id}`);
    }
    this.stats.partitions++;
    this.trace(`PARTITION ${shape}: ${[...this.blocked].join(" ")}`);
    this.queue.push(this.time + 200 + rng.next() * 1300, { kind: "fault", action: () => this.blocked.clear() });
  }

  /** The end of faults: links heal, crashed nodes come back, the network stops losing. */
  private heal(): void {
    this.faulty = false;
    this.blocked.clear();
    for (const node of this.nodes.values()) if (!node.up) this.restart(node);
    this.queue.push(this.time + 50, { kind: "monitor" });
  }

  private monitor(): void {
    const regular = [...this.clients.values()].filter((c) => c.kind !== "auditor");
    if (!this.auditing) {
      if (regular.every((c) => c.finished && !c.busy)) {
        this.auditing = true;
        for (const auditor of this.auditors.values()) auditor.audit();
      }
    } else if ([...this.auditors.values()].every((a) => !a.busy)) {
      // Give lagging replicas a moment to learn, then stop.
      this.endAt = this.time + 1_000;
      return;
    }
    this.queue.push(this.time + 50, { kind: "monitor" });
  }

  // ---- checks -------------------------------------------------------------------------

  /** No two holders of one lease believe they hold it at the same real time. */
  private checkLeases(): void {
    for (const [key, grants] of this.grants) {
      const sorted = [...grants].sort((a, b) => a.from - b.from);
      for (let i = 0; i < sorted.length; i++) {
        const a = sorted[i] as LeaseGrant;
        for (let j = i + 1; j < sorted.length; j++) {
          const b = sorted[j] as LeaseGrant;
          if (b.from >= a.until + 10_000) break;
          if (b.holder === a.holder) continue;
          const gap = b.from - a.until;
          if (gap < this.stats.leaseGapMinMs) this.stats.leaseGapMinMs = gap;
          if (gap < 0) this.fail(`lease ${key}: ${a.holder} held it until ${a.until.toFixed(1)} and ${b.holder} from ${b.from.toFixed(1)}, two holders at once`);
        }
      }
    }
  }

  private finalChecks(): void {
    const unfinished = [...this.clients.values()].filter((c) => c.busy || (!c.finished && c.kind !== "auditor"));
    if (unfinished.length > 0 || !this.auditing) {
      this.fail(`liveness: ${unfinished.length} clients still had work ${this.options.livenessMs}ms after healing (${unfinished.map((c) => c.id).join(", ")})`);
    }
    for (const client of this.clients.values()) {
      this.stats.clientTimeouts += client.timeouts;
      this.stats.sessionsOpened += client.sessionsOpened;
      this.stats.sessionsRefused += client.sessionsRefused;
      this.stats.sessionsExpired += client.sessionsExpired;
    }
    for (const cell of this.cellMembers.keys()) {
      const digests = new Map<number, { node: string; digest: string }>();
      for (const node of this.nodes.values()) {
        const state = node.replicas.get(cell)?.cellState;
        if (state === null || state === undefined) continue;
        const digest = toHex(state.digest());
        const seen = digests.get(state.applied);
        if (seen === undefined) digests.set(state.applied, { node: node.id, digest });
        else if (seen.digest !== digest) this.fail(`divergence: ${node.id} and ${seen.node} differ in ${cell} at applied slot ${state.applied}`);
      }
    }
    this.checkLeases();
    const verdicts = checkHistory(this.recorder);
    for (const verdict of verdicts) {
      this.stats.checkStatesExplored += verdict.statesExplored;
      if (verdict.ok === false) this.fail(`linearizability: ${verdict.explanation}`);
      else if (verdict.ok !== true) this.stats.inconclusiveChecks++;
    }
    for (const cell of this.recorder.cells()) {
      for (const op of this.recorder.history(cell)) {
        this.stats.operations++;
        if (op.outcome === "unknown") this.stats.unknownOutcomes++;
      }
    }
  }
}

export interface LeaseGrant {
  readonly name: string;
  readonly holder: string;
  /** Real time when the holder heard it holds the lease, and when its own clock (counting from before it asked) says it no longer does. */
  readonly from: number;
  readonly until: number;
}

function countReady(outbox: readonly { requires: number }[], synced: number): number {
  let ready = 0;
  while (ready < outbox.length && (outbox[ready] as { requires: number }).requires <= synced) ready++;
  return ready;
}


export function runSimulation(options: SimOptions): SimReport {
  return new World(options).run();
}
