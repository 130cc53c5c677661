// One replica of one cell: a Multi-Paxos acceptor, learner and (when it must) proposer,
// written as a pure state machine. It is driven by `step` (a message arrived) and `tick`
// (time passed) and answers with effects (see effects.ts); it never touches a clock, a
// socket, a file or a random source. Liveness of peers and jitter come in through `env`.
//
// The protocol, in short:
// - Phase 1 runs once per leadership, for every slot after the candidate's applied slot.
//   Acceptors answer with what they accepted; the candidate re-proposes the value of the
//   highest ballot for each such slot, or a no-op into a gap.
// - Phase 2 runs per slot, at most alpha slots past the applied slot. Membership changes
//   applied at slot i decide slots from i + alpha on, so every slot in the window has a
//   known membership when it is proposed.
// - A slot is chosen when a majority of its membership accepted it at the leader's ballot.
//   The leader applies chosen slots in order, replies to clients and tells the others with
//   `commit`; the others learn from a commit what they accepted at that ballot, and ask to
//   be taught (log segment or snapshot) whatever else they miss.
// - An idle cell sends nothing and asks for no tick.
//
// The invariants each check protects (issue 9 found the first two missing: with two
// membership changes inside one pipeline window, a new quorum could avoid the leader's
// first promisers, and both defects together chose two values for one slot):
// - P, promises: a promise reports its sender's votes only for slots past its
//   `compactedThrough`; for the slots it compacted it reports nothing. So a leader counts a
//   promise toward a quorum only once its own applied slot has reached that
//   `compactedThrough` (it learns up to there first), and it proposes only past its applied
//   slot. (`countedPromises`.)
// - A, acknowledgements: `accepted(b, s)` means its sender durably holds the value proposed
//   at ballot b for slot s. An acceptor that already holds s as chosen or applied holds no
//   vote at b: it answers with the chosen value (a teach), never with an ack. (`onAccept`.)
// - C, commits: `commit(b, through)` lets followers take what they accepted at b as chosen,
//   which is true only if every slot the leader applied while leading at b was chosen by its
//   own quorum at b. So a leader about to learn anything from a teacher steps down first.
//   (`yieldTo`.)

import { limits } from "../limits.ts";
import { assert } from "./assert.ts";
import { ballotsEqual, compareBallots, zeroBallot } from "./ballot.ts";
import { type ApplyOptions, CellState, type CellSettings, type Membership } from "./cellstate.ts";
import { sameData } from "./equal.ts";
import { type DurableRecord, type Effects, needsSync } from "./effects.ts";
import type {
  AcceptedEntry,
  Ballot,
  CellMessage,
  ChosenEntry,
  ClientRequest,
  Command,
  LogValue,
  PeerMessage,
  ReplyOutcome,
} from "./messages.ts";
import { takeBatch } from "./batch.ts";
import type { Mutation } from "./mutations.ts";
import { hasQuorum } from "./quorum.ts";
import { checkTransaction, isRejection } from "./transaction.ts";

export interface ReplicaEnv {
  /** The node shell's per-node-pair failure detector. */
  isAlive(node: string): boolean;
  /** A number in [0, 1), from the driver's random source. */
  jitter(): number;
  /**
   * How long a prepare or an accept waits for its answer before it is sent again, at first
   * (it doubles from there): the driver's estimate of its peers' turnaround, which grows
   * with their load. Clamped to [limits.retransmitMs, limits.retransmitBackoffMaxMs];
   * limits.retransmitMs when absent. A peer that has the first copy queued answers it, and
   * every early copy only makes it answer twice: after a node leading 1,800 cells died, the
   * survivors sent 50,000 prepares for 3,700 elections at a fixed 30 ms.
   */
  retransmitMs?(): number;
  /**
   * Whether this replica may start an election now. A node that hosts thousands of cells
   * paces how many of its replicas campaign at once, so that the failure of a node leading
   * many of them does not swamp the survivors with every election at the same moment (each
   * slow election then outlasts its clients' attempts and is preempted). When refused, a
   * client's request is answered `overloaded` (the client backs off, with jitter, and asks
   * again) and a hole waits for its next deadline. Absent: always.
   */
  mayCampaign?(): boolean;
}

/** A replica's genesis: the members, and settings that default for tests (see CellGenesis). */
export interface Genesis extends CellSettings {
  readonly members: readonly string[];
}

export interface ReplicaOptions {
  readonly cell: string;
  readonly self: string;
  readonly env: ReplicaEnv;
  /** The cell's first membership; absent for a replica joining an existing cell. */
  readonly genesis?: Genesis;
  /** For a replica joining an existing cell: the incarnation it joins (it takes no snapshot of another). */
  readonly joining?: string;
  /** Applied entries kept for teaching by log segment (default `limits.logTailEntriesMax`); the simworld makes it small so snapshots are taught often. */
  readonly tailEntriesMax?: number;
  /** Deliberate bugs, for testing the tools (see mutations.ts); never set in production. */
  readonly mutations?: readonly Mutation[];
  /**
   * How long a leader waits for an accept to carry what it applied before it sends a commit
   * (default `limits.commitDelayMs`). The explorer sets 0, so that its searches, which pass
   * no time unless they spend a tick, still meet every commit.
   */
  readonly commitDelayMs?: number;
  /**
   * Propose each request as it comes, even while slots are in flight (default false: past
   * two in flight they gather for the next slot). Either is the same protocol; the
   * explorer's scripted schedules count on one slot a request.
   */
  readonly eagerProposals?: boolean;
}

export type Role = "follower" | "candidate" | "leader";



interface Proposal {
  readonly value: LogValue;
  readonly acks: Set<string>;
  sentAt: number;
  backoff: number;
}

interface PromiseInfo {
  readonly accepted: readonly AcceptedEntry[];
  readonly compactedThrough: number;
}

interface Waiting {
  readonly command: Command;
  /** Where the answer goes, and the request id it echoes: the latest copy's. */
  replyTo: string;
  client: string;
  id: number;
}

const noop: LogValue = { kind: "noop" };
/** Identifies a command among the waiting ones: by session and seq, or an open by its asker's nonce. */
function commandKey(command: Command): string {
  const op = command.op;
  return op.kind === "openSession" ? `open:${op.client}:${op.nonce}` : `${command.session}#${command.seq}`;
}

export class Replica {
  readonly cell: string;
  readonly self: string;
  private readonly env: ReplicaEnv;
  private readonly mutations: ReadonlySet<Mutation>;
  private readonly tailEntriesMax: number;
  private readonly applyOptions: ApplyOptions;
  private joinedIncarnation: string | null;

  // Durable state: every change is in a record before any message that depends on it.
  private state: CellState | null;
  private promised: Ballot = zeroBallot;
  private readonly accepted = new Map<number, { ballot: Ballot; value: LogValue }>();
  /** Chosen values: unapplied ones, plus a tail of applied ones kept for teaching. */
  private readonly chosen = new Map<number, LogValue>();
  private tailStart = 1;

  // Volatile state.
  private roleNow: Role = "follower";
  private ballot: Ballot = zeroBallot;
  private maxRoundSeen = 0;
  private leaderHint: string | null = null;
  private lastLeaderActivity = 0;
  private readonly promises = new Map<string, PromiseInfo>();
  private prepareSentAt = 0;
  private prepareBackoff: number = limits.retransmitMs;
  private prepareAttempts = 0;
  private recovered = new Map<number, { ballot: Ballot; value: LogValue }>();
  private recoveredThrough = 0;
  private readonly inflight = new Map<number, Proposal>();
  private nextSlot = 0;
  private readonly queue = new Map<string, Waiting>();
  private readonly waiting = new Map<string, Waiting>();
  /**
   * When the leader sends a commit for what it applied, unless an accept (which carries
   * `chosenThrough`) told every member first: null while the followers know it all.
   */
  private commitDueAt: number | null = null;
  private readonly commitDelayMs: number;
  private readonly eagerProposals: boolean;
  private learnGoal = 0;
  private learnSentAt = -Infinity;
  /**
   * How long an unanswered learn waits before the next: it doubles (with jitter) while
   * nothing is learnt, and starts over at limits.learnRetryMs once the replica applies.
   * A teacher ignores a learn past its own applied slot, so while a cell's new leader is
   * slow to choose, its followers' learns for that slot go unanswered: at a fixed 60 ms,
   * 1,600 such cells sent 75,000 learns in a few seconds (bench/failover.ts).
   */
  private learnBackoff: number = limits.learnRetryMs;
  private learnTarget: string | null = null;
  private learnRotation = 0;
  private holeDeadline: number | null = null;

  constructor(options: ReplicaOptions) {
    this.cell = options.cell;
    this.self = options.self;
    this.env = options.env;
    this.mutations = new Set(options.mutations ?? []);
    this.tailEntriesMax = options.tailEntriesMax ?? limits.logTailEntriesMax;
    this.commitDelayMs = options.commitDelayMs ?? limits.commitDelayMs;
    this.eagerProposals = options.eagerProposals ?? false;
    assert(this.commitDelayMs >= 0 && this.commitDelayMs <= limits.holeWaitMs, "commit delay out of range");
    this.applyOptions = { lruSessions: this.mutations.has("lruSessions") };
    this.joinedIncarnation = options.joining ?? null;
    assert(Number.isInteger(this.tailEntriesMax) && this.tailEntriesMax >= 1 && this.tailEntriesMax <= limits.logTailEntriesMax, "tail size out of range");
    this.state = options.genesis === undefined ? null : CellState.genesis(options.genesis.members, options.genesis);
  }

  /** Rebuilds a replica from its durable records, in the order they were written. */
  static recover(options: ReplicaOptions, records: Iterable<DurableRecord>): Replica {
    const replica = new Replica(options);
    for (const record of records) replica.replay(record);
    replica.applyReady(0, null);
    for (const slot of replica.accepted.keys()) if (slot <= replica.applied) replica.accepted.delete(slot);
    replica.maxRoundSeen = replica.promised.round;
    return replica;
  }

  private replay(record: DurableRecord): void {
    switch (record.kind) {
      case "genesis":
        if (this.state === null) this.state = CellState.genesis(record.genesis.members, record.genesis);
        return;
      case "joined":
        this.joinedIncarnation ??= record.incarnation; // An empty replica: it learns the cell from its peers.
        return;
      case "promise":
        if (compareBallots(record.ballot, this.promised) > 0) this.promised = record.ballot;
        return;
      case "accept":
        this.accepted.set(record.slot, { ballot: record.ballot, value: record.value });
        return;
      case "chosen":
        this.chosen.set(record.slot, record.value);
        return;
      case "snapshot": {
        // Records can follow a compaction that already covers them: never go back.
        if (this.state !== null && record.slot <= this.state.applied) return;
        const state = CellState.decode(record.state);
        assert(typeof state !== "string", `recover: unreadable snapshot record: ${String(state)}`);
        this.installState(state);
        return;
      }
    }
  }

  // ---- observers ----------------------------------------------------------------------

  get role(): Role {
    return this.roleNow;
  }

  /** The last applied slot; -1 while a joining replica has no state yet. */
  get applied(): number {
    return this.state === null ? -1 : this.state.applied;
  }

  get cellState(): CellState | null {
    return this.state;
  }

  /** The cell's incarnation: from its state, or the one this empty replica joined. */
  get incarnation(): string | null {
    return this.state?.incarnation ?? this.joinedIncarnation;
  }

  /** The record a driver writes when it creates an empty replica to join a cell, so that a restart still hosts it. */
  joinedRecord(): DurableRecord | null {
    return this.state === null && this.joinedIncarnation !== null ? { kind: "joined", incarnation: this.joinedIncarnation } : null;
  }

  get promisedBallot(): Ballot {
    return this.promised;
  }

  /** Whether this replica votes: a member of the latest membership or of one that still decides a slot in the window. */
  get votes(): boolean {
    return this.isMember();
  }

  get leader(): string | null {
    return this.roleNow === "leader" ? this.self : this.leaderHint;
  }

  /** The ballot of this replica's vote in a slot past its applied one, if it holds one. */
  acceptedBallot(slot: number): Ballot | undefined {
    return this.accepted.get(slot)?.ballot;
  }

  /** The chosen value of a slot, while this replica still holds it. */
  chosenValue(slot: number): LogValue | undefined {
    return this.chosen.get(slot);
  }

  /** True when nothing is in flight, queued or awaited: no tick is needed. */
  get quiescent(): boolean {
    return this.nextDeadline() === null;
  }

  /** The earliest time at which `tick` has work to do, or null for none. */
  nextDeadline(): number | null {
    let deadline: number | null = null;
    const at = (time: number) => {
      if (deadline === null || time < deadline) deadline = time;
    };
    if (this.roleNow === "leader") {
      for (const proposal of this.inflight.values()) at(proposal.sentAt + proposal.backoff);
      if (this.blockedOnPromises()) at(this.prepareSentAt + this.prepareBackoff);
    } else if (this.roleNow === "candidate") {
      at(this.prepareSentAt + this.prepareBackoff);
    }
    if (this.learnGoal > this.applied) at(this.learnSentAt + this.learnBackoff);
    if (this.commitDueAt !== null) at(this.commitDueAt); // Set only while leading: stepDown clears it.
    if (this.holeDeadline !== null) at(this.holeDeadline);
    return deadline;
  }

  /** The record a driver writes when it creates a replica with a genesis, so that recovery knows it. */
  genesisRecord(): DurableRecord | null {
    const state = this.state;
    if (state === null || state.applied !== 0) return null;
    return {
      kind: "genesis",
      genesis: { members: state.latestMembers(), incarnation: state.incarnation, alpha: state.alpha, sessionTtlMs: state.sessionTtlMs, sessionsMax: state.sessionsMax },
    };
  }

  /**
   * The records that, replayed alone, rebuild this replica's durable state: the promise, a
   * snapshot of the applied state, and every vote and chosen value past it. A driver that
   * compacts its log writes these and may then forget this cell's older records.
   */
  compactedRecords(): DurableRecord[] {
    const records: DurableRecord[] = [];
    if (compareBallots(this.promised, zeroBallot) > 0) records.push({ kind: "promise", ballot: this.promised });
    if (this.state !== null) records.push({ kind: "snapshot", slot: this.state.applied, state: this.state.encode() });
    const applied = this.applied;
    for (const [slot, { ballot, value }] of this.accepted) if (slot > applied) records.push({ kind: "accept", slot, ballot, value });
    for (const [slot, value] of this.chosen) if (slot > applied) records.push({ kind: "chosen", slot, value });
    return records;
  }

  // ---- inputs -------------------------------------------------------------------------

  step(from: string, message: CellMessage, now: number, out: Effects): void {
    switch (message.kind) {
      case "request":
        this.onRequest(from, message, now, out);
        break;
      case "reply":
        break; // Replicas never ask, so a reply is stray: ignore it.
      default:
        this.onPeer(from, message, now, out);
    }
    this.flushCommit(now, out);
    this.updateHoleDeadline(now);
  }

  tick(now: number, out: Effects): void {
    if (this.roleNow === "leader") {
      for (const [slot, proposal] of this.inflight) {
        if (now < proposal.sentAt + proposal.backoff) continue;
        const members = this.membersFor(slot);
        for (const member of members) {
          if (!proposal.acks.has(member)) this.send(out, member, { kind: "accept", ballot: this.ballot, slot, value: proposal.value, chosenThrough: this.applied });
        }
        proposal.sentAt = now;
        proposal.backoff = this.nextBackoff(proposal.backoff);
      }
      if (this.blockedOnPromises() && now >= this.prepareSentAt + this.prepareBackoff) this.sendPrepares(now, out);
    } else if (this.roleNow === "candidate" && now >= this.prepareSentAt + this.prepareBackoff) {
      if (this.prepareAttempts >= limits.candidateAttemptsMax) {
        this.stepDown(out, "unavailable");
      } else {
        this.prepareAttempts++;
        this.sendPrepares(now, out);
      }
    }
    if (this.learnGoal > this.applied && now >= this.learnSentAt + this.learnBackoff) {
      this.learnRotation++;
      this.requestLearn(this.pickTeacher(), now, out, true);
      // Also when there was nobody to ask (an empty replica that knows no member and no
      // leader yet): the next look waits its backoff. Left at -Infinity, the deadline stayed
      // in the past and the replica ticked as fast as its driver could call it.
      this.learnSentAt = now;
      this.learnBackoff = this.nextBackoff(this.learnBackoff);
    }
    if (this.holeDeadline !== null && now >= this.holeDeadline) {
      this.holeDeadline = null;
      this.onHole(now, out);
    }
    this.flushCommit(now, out);
    this.updateHoleDeadline(now);
  }

  // ---- clients ------------------------------------------------------------------------

  private onRequest(client: string, request: ClientRequest, now: number, out: Effects): void {
    const reply = (outcome: ReplyOutcome) => this.send(out, client, { kind: "reply", client: request.client, id: request.id, outcome });
    const state = this.state;
    if (state === null) {
      reply({ kind: "redirect", leader: this.leaderHint });
      return;
    }
    if (!this.isMember()) {
      reply({ kind: "unavailable", reason: `${this.self} is not a member of cell ${this.cell}` });
      return;
    }
    const op = request.op;
    if (op.kind === "tx") {
      const tx = checkTransaction(op.tx);
      if (isRejection(tx)) {
        // A stateless rejection depends on no state, so it needs no slot.
        reply({ kind: "done", result: tx, slot: state.applied });
        return;
      }
      if (request.consistency === "eventual" && tx.writes.length === 0) {
        if (state.applied >= request.minApplied) {
          const result = state.kv.apply(tx);
          assert(result.status !== "committed" || result.increments.length === 0, "a read changed the state");
          reply({ kind: "read", result, applied: state.applied });
        } else {
          reply({ kind: "stale", applied: state.applied });
          if (this.leaderHint !== null && this.leaderHint !== this.self) this.requestLearn(this.leaderHint, now, out, false);
        }
        return;
      }
    }
    const command: Command = op.kind === "openSession" ? { session: 0, seq: 0, acked: 0, op } : { session: request.session, seq: request.seq, acked: request.acked, op };
    if (op.kind !== "openSession") {
      // A retry of a command the cell already applied, or a command for a session that is
      // gone: answered from the applied state, without a slot. Only the log decides the rest.
      const known = state.precheck(command.session, command.seq);
      if (known !== null) {
        reply({ kind: "done", result: known.result, slot: known.slot });
        return;
      }
    }
    const key = commandKey(command);
    const known = this.waiting.get(key) ?? this.queue.get(key);
    if (known !== undefined) {
      known.replyTo = client;
      known.client = request.client;
      known.id = request.id;
      return;
    }
    if (this.roleNow === "follower") {
      // `force` asks for a new leader because the client lost the old one; a replica that
      // heard from that leader a moment ago knows better, and sends the client back. (A
      // crowd of clients each forcing elections kept two replicas preempting each other.)
      const leader = this.leaderHint;
      const heard = now - this.lastLeaderActivity < limits.leaderQuietMs;
      if (leader !== null && leader !== this.self && this.env.isAlive(leader) && (!request.force || heard)) {
        reply({ kind: "redirect", leader });
        return;
      }
    }
    if (this.queue.size >= limits.queueCommandsMax || (this.roleNow === "follower" && this.env.mayCampaign?.() === false)) {
      reply({ kind: "overloaded" });
      return;
    }
    this.queue.set(key, { command, replyTo: client, client: request.client, id: request.id });
    if (this.roleNow === "follower") this.startCandidacy(now, out);
    // While two slots are in flight, commands gather for the next until one is chosen
    // (applyReady proposes them) or they fill a batch: at 64 clients a slot carried 9.5
    // commands when each request was proposed as it came, and every slot costs each replica
    // an accept, a vote and an fsync. (With one slot in flight the simworld found clients
    // starved: a cell whose slots take 20 ms then commits one batch per 20 ms, and closed-loop
    // clients wait up to two slots for each command.)
    else if (this.roleNow === "leader" && (this.eagerProposals || this.inflight.size < 2 || this.queue.size >= limits.batchCommandsMax)) this.propose(now, out);
  }

  private replyAll(out: Effects, outcome: ReplyOutcome): void {
    for (const map of [this.waiting, this.queue]) {
      for (const { replyTo, client, id } of map.values()) this.send(out, replyTo, { kind: "reply", client, id, outcome });
      map.clear();
    }
  }

  // ---- peers --------------------------------------------------------------------------

  private onPeer(from: string, message: PeerMessage, now: number, out: Effects): void {
    if ("ballot" in message) this.maxRoundSeen = Math.max(this.maxRoundSeen, message.ballot.round);
    switch (message.kind) {
      case "prepare":
        return this.onPrepare(from, message.ballot, message.from, now, out);
      case "promise":
        return this.onPromise(from, message, now, out);
      case "accept":
        return this.onAccept(from, message, now, out);
      case "accepted":
        return this.onAccepted(from, message.ballot, message.slot, now, out);
      case "nack":
        return this.onNack(message.ballot, message.promised, now, out);
      case "commit":
        return this.onCommit(from, message.ballot, message.through, now, out);
      case "learn":
        return this.onLearn(from, message.from, out);
      case "teach":
        return this.onTeach(from, message, now, out);
    }
  }

  /** Raises the promise (durably) and gives up any lower ballot of our own. */
  private promise(ballot: Ballot, out: Effects): void {
    if (compareBallots(ballot, this.promised) <= 0) return;
    this.promised = ballot;
    this.persist(out, { kind: "promise", ballot });
    if (this.roleNow !== "follower" && compareBallots(ballot, this.ballot) > 0) {
      this.leaderHint = ballot.node;
      this.stepDown(out, "redirect");
    }
  }

  /**
   * The acceptor's rule, shared by prepare and accept: refuse a ballot below the promise
   * (telling the sender what we promised), else promise it and note its owner as leader.
   */
  private admit(from: string, ballot: Ballot, now: number, out: Effects): boolean {
    if (compareBallots(ballot, this.promised) < 0) {
      this.send(out, from, { kind: "nack", ballot, promised: this.promised });
      return false;
    }
    this.promise(ballot, out);
    this.leaderHint = ballot.node;
    this.lastLeaderActivity = now;
    return true;
  }

  private onPrepare(from: string, ballot: Ballot, fromSlot: number, now: number, out: Effects): void {
    if (!this.admit(from, ballot, now, out)) return;
    this.send(out, from, { kind: "promise", ballot, from: fromSlot, accepted: this.acceptedFrom(fromSlot), compactedThrough: Math.max(0, this.applied) });
  }

  private acceptedFrom(slot: number): AcceptedEntry[] {
    const entries: AcceptedEntry[] = [];
    for (const [s, { ballot, value }] of this.accepted) if (s >= slot) entries.push({ slot: s, ballot, value });
    return entries;
  }

  private onAccept(from: string, message: Extract<PeerMessage, { kind: "accept" }>, now: number, out: Effects): void {
    const { ballot, slot, value } = message;
    if (!this.admit(from, ballot, now, out)) return;
    if (slot <= this.applied || this.chosen.has(slot)) {
      // Invariant A: we hold no vote at this ballot, only the chosen value: teach it.
      if (this.mutations.has("emptyAck")) this.send(out, from, { kind: "accepted", ballot, slot });
      else this.teachSlot(from, slot, out);
    } else {
      const previous = this.accepted.get(slot);
      if (previous === undefined || !ballotsEqual(previous.ballot, ballot)) {
        this.accepted.set(slot, { ballot, value });
        this.persist(out, { kind: "accept", slot, ballot, value });
      }
      this.send(out, from, { kind: "accepted", ballot, slot });
    }
    this.learnChosen(from, ballot, message.chosenThrough, now, out);
  }

  /** Tells `to` the chosen value of `slot`, which this replica holds (applied, or chosen past a hole). */
  private teachSlot(to: string, slot: number, out: Effects): void {
    const state = this.state;
    if (state === null) return;
    if (slot <= state.applied) {
      this.onLearn(to, slot, out);
      return;
    }
    const value = this.chosen.get(slot);
    if (value !== undefined) this.send(out, to, { kind: "teach", entries: [{ slot, value }], chosenThrough: state.applied });
  }

  private onCommit(from: string, ballot: Ballot, through: number, now: number, out: Effects): void {
    this.leaderHint = ballot.node;
    this.lastLeaderActivity = now;
    this.learnChosen(from, ballot, through, now, out);
  }

  /**
   * Everything the leader of `ballot` chose is what it proposed at `ballot`. That holds only
   * because a leader never advances past a slot it did not choose itself: see `yieldTo`.
   */
  private learnChosen(from: string, ballot: Ballot, through: number, now: number, out: Effects): void {
    if (through <= this.applied) return;
    this.yieldTo(from, out);
    for (const [slot, entry] of this.accepted) {
      if (slot <= through && ballotsEqual(entry.ballot, ballot)) this.choose(slot, entry.value, out);
    }
    this.applyReady(now, out);
    if (this.applied < through) this.requestLearn(from, now, out, false, through);
  }

  private onPromise(from: string, message: Extract<PeerMessage, { kind: "promise" }>, now: number, out: Effects): void {
    if (this.roleNow === "follower" || !ballotsEqual(message.ballot, this.ballot)) return;
    this.promises.set(from, { accepted: message.accepted, compactedThrough: message.compactedThrough });
    for (const entry of message.accepted) this.recover(entry);
    if (message.compactedThrough > this.applied) this.requestLearn(from, now, out, false, message.compactedThrough);
    if (this.roleNow === "candidate") this.tryLead(now, out);
    else this.propose(now, out);
  }

  private recover(entry: AcceptedEntry): void {
    if (entry.slot <= this.applied) return;
    const known = this.recovered.get(entry.slot);
    if (known === undefined || compareBallots(entry.ballot, known.ballot) > 0) this.recovered.set(entry.slot, { ballot: entry.ballot, value: entry.value });
    this.recoveredThrough = Math.max(this.recoveredThrough, entry.slot);
  }

  private onNack(ballot: Ballot, promised: Ballot, now: number, out: Effects): void {
    this.maxRoundSeen = Math.max(this.maxRoundSeen, promised.round);
    if (this.roleNow === "follower" || !ballotsEqual(ballot, this.ballot) || compareBallots(promised, this.ballot) <= 0) return;
    this.leaderHint = promised.node;
    if (promised.node !== this.self && this.env.isAlive(promised.node)) {
      this.stepDown(out, "redirect");
    } else if (this.isMember()) {
      // The higher ballot's owner looks dead: campaign again, higher.
      this.stepDown(out, null);
      this.startCandidacy(now, out);
    } else {
      this.stepDown(out, "unavailable");
    }
  }

  private onLearn(from: string, fromSlot: number, out: Effects): void {
    const state = this.state;
    if (state === null || fromSlot > state.applied) return;
    if (fromSlot < this.tailStart) {
      this.send(out, from, { kind: "teach", entries: [], snapshot: { slot: state.applied, state: state.encode() }, chosenThrough: state.applied });
      return;
    }
    const entries: ChosenEntry[] = [];
    const last = Math.min(state.applied, fromSlot + limits.teachEntriesMax - 1);
    for (let slot = fromSlot; slot <= last; slot++) {
      const value = this.chosen.get(slot);
      assert(value !== undefined, `teach: slot ${slot} missing from the tail`);
      entries.push({ slot, value });
    }
    this.send(out, from, { kind: "teach", entries, chosenThrough: state.applied });
  }

  private onTeach(from: string, message: Extract<PeerMessage, { kind: "teach" }>, now: number, out: Effects): void {
    if (this.contradictsProposals(message)) this.yieldTo(from, out);
    const snapshot = message.snapshot;
    if (snapshot !== undefined && snapshot.slot > this.applied) {
      const state = CellState.decode(snapshot.state);
      if (typeof state === "string" || state.applied !== snapshot.slot) return; // A bad snapshot: ask someone else later.
      const incarnation = this.incarnation;
      if (incarnation !== null && state.incarnation !== incarnation) return; // Another cell of the same name: never ours.
      this.installState(state);
      this.persist(out, { kind: "snapshot", slot: snapshot.slot, state: snapshot.state });
    }
    for (const entry of message.entries) if (entry.slot > this.applied) this.choose(entry.slot, entry.value, out);
    this.applyReady(now, out);
    this.learnGoal = Math.max(this.learnGoal, message.chosenThrough);
    if (this.applied < this.learnGoal) this.requestLearn(from, now, out, true);
    if (this.roleNow === "candidate") this.tryLead(now, out);
    else if (this.roleNow === "leader") this.propose(now, out);
  }

  /**
   * True when a teach tells this leader of a chosen value that may differ from what it
   * proposed at its own ballot, and that followers may have accepted (invariant C): a slot
   * in flight with another value, or a snapshot covering a slot in flight. A value equal to
   * our proposal, or one for a slot we never proposed, is simply learned: a leader that
   * stepped down on every teach would never fill a hole below a slot that is already chosen.
   */
  private contradictsProposals(message: Extract<PeerMessage, { kind: "teach" }>): boolean {
    if (this.roleNow !== "leader") return false;
    const snapshot = message.snapshot;
    if (snapshot !== undefined && snapshot.slot > this.applied) {
      for (const slot of this.inflight.keys()) if (slot <= snapshot.slot) return true;
    }
    for (const entry of message.entries) {
      const proposal = this.inflight.get(entry.slot);
      if (proposal !== undefined && !sameData(proposal.value, entry.value)) return true;
    }
    return false;
  }

  /**
   * A leader's `commit(ballot, through)` tells followers that every slot up to `through` they
   * accepted at `ballot` is chosen. That is true only if every slot the leader applied while
   * leading was chosen by its own quorum at its ballot. So a leader about to learn a chosen
   * value from anyone else (which means another ballot made progress) stops leading first.
   * (The simworld found this: a stale leader taught past its proposals committed a value
   * that a newer leader had overwritten.)
   */
  private yieldTo(teacher: string, out: Effects): void {
    if (this.roleNow !== "leader") return;
    this.leaderHint = teacher;
    this.stepDown(out, "redirect");
  }

  private installState(state: CellState): void {
    this.state = state;
    for (const slot of this.chosen.keys()) if (slot <= state.applied) this.chosen.delete(slot);
    for (const slot of this.accepted.keys()) if (slot <= state.applied) this.accepted.delete(slot);
    for (const slot of this.recovered.keys()) if (slot <= state.applied) this.recovered.delete(slot);
    this.tailStart = state.applied + 1;
    this.learnBackoff = limits.learnRetryMs;
    this.settleProposals();
  }

  private onHole(now: number, out: Effects): void {
    if (!this.hasHole()) return;
    const leader = this.leaderHint;
    if (leader !== null && leader !== this.self && this.env.isAlive(leader) && now - this.lastLeaderActivity < 4 * limits.holeWaitMs) {
      // A learn still waiting for its answer is retried by `tick`, backing off; asking again
      // at every hole deadline would not back off.
      if (this.learnGoal <= this.applied) this.requestLearn(leader, now, out, true, this.applied + 1);
      return;
    }
    // Whack-a-mole: nobody teaches this slot, so propose into it; phase 1 recovers any value.
    if (this.roleNow === "follower" && this.isMember() && this.env.mayCampaign?.() !== false) this.startCandidacy(now, out);
  }

  // ---- learning -----------------------------------------------------------------------

  private requestLearn(teacher: string | null, now: number, out: Effects, force: boolean, goal = 0): void {
    this.learnGoal = Math.max(this.learnGoal, goal, this.state === null ? 1 : 0);
    if (teacher === null || teacher === this.self) return;
    if (!force && now < this.learnSentAt + limits.learnRetryMs) return;
    this.learnSentAt = now;
    this.learnTarget = teacher;
    this.send(out, teacher, { kind: "learn", from: this.applied + 1 });
  }

  private pickTeacher(): string | null {
    const candidates = this.knownMembers().filter((m) => m !== this.self);
    if (this.learnTarget !== null && this.env.isAlive(this.learnTarget) && this.learnRotation % 2 === 1) return this.learnTarget;
    if (candidates.length === 0) return this.leaderHint;
    const alive = candidates.filter((m) => this.env.isAlive(m));
    const pool = alive.length > 0 ? alive : candidates;
    return pool[this.learnRotation % pool.length] ?? null;
  }

  // ---- proposing ----------------------------------------------------------------------

  private startCandidacy(now: number, out: Effects): void {
    assert(this.state !== null, "a replica without state cannot lead");
    this.roleNow = "candidate";
    // Commands proposed under an earlier ballot may be lost: propose them again. If they were
    // chosen after all, the session table answers the second copy without applying it.
    const requeued = new Map([...this.waiting, ...this.queue]);
    this.waiting.clear();
    this.queue.clear();
    for (const [key, waiting] of requeued) this.queue.set(key, waiting);
    this.ballot = { round: Math.max(this.maxRoundSeen, this.promised.round) + 1, node: this.self };
    this.maxRoundSeen = this.ballot.round;
    this.promise(this.ballot, out);
    this.promises.clear();
    this.recovered = new Map();
    this.recoveredThrough = this.applied;
    this.prepareAttempts = 1;
    this.prepareBackoff = this.firstRetransmitMs();
    this.sendPrepares(now, out);
    this.tryLead(now, out);
  }

  private sendPrepares(now: number, out: Effects): void {
    const from = this.applied + 1;
    if (this.isMember() && !this.promises.has(this.self)) {
      this.promises.set(this.self, { accepted: this.acceptedFrom(from), compactedThrough: this.applied });
      for (const entry of this.acceptedFrom(from)) this.recover(entry);
    }
    for (const member of this.knownMembers()) {
      if (!this.promises.has(member)) this.send(out, member, { kind: "prepare", ballot: this.ballot, from });
    }
    this.prepareSentAt = now;
    this.prepareBackoff = this.nextBackoff(this.prepareBackoff);
  }

  private tryLead(now: number, out: Effects): void {
    if (this.roleNow !== "candidate" || this.state === null) return;
    for (const info of this.promises.values()) if (info.compactedThrough > this.applied) return; // Learn first.
    for (const membership of this.state.windowMemberships()) if (!hasQuorum(membership.members, this.countedPromises())) return;
    this.roleNow = "leader";
    this.leaderHint = this.self;
    this.nextSlot = this.applied + 1;
    this.inflight.clear();
    this.propose(now, out);
  }

  /** The promises that may count toward a quorum now (invariant P). */
  private countedPromises(): { has(node: string): boolean } {
    return {
      has: (node) => {
        const info = this.promises.get(node);
        return info !== undefined && (info.compactedThrough <= this.applied || this.mutations.has("latePromise"));
      },
    };
  }

  private blockedOnPromises(): boolean {
    if (this.roleNow !== "leader" || this.state === null) return false;
    const members = this.state.membersFor(this.nextSlot);
    return members !== null && !hasQuorum(members, this.countedPromises());
  }

  private propose(now: number, out: Effects): void {
    const state = this.state;
    if (this.roleNow !== "leader" || state === null) return;
    while (this.nextSlot <= state.applied + state.alpha) {
      const slot = this.nextSlot;
      const members = state.membersFor(slot);
      assert(members !== null, `propose: no membership for slot ${slot}`);
      if (!members.includes(this.self) && !this.isMember()) {
        this.stepDown(out, "redirect");
        return;
      }
      if (!hasQuorum(members, this.countedPromises())) {
        // A new member has not promised yet (or promised from past our applied slot, and we
        // are learning up to there): phase 1 with it before deciding its slots.
        if (now >= this.prepareSentAt + this.prepareBackoff || this.prepareSentAt === 0) this.sendPrepares(now, out);
        return;
      }
      let value: LogValue;
      const known = this.chosen.get(slot);
      // A slot we already know as chosen (learned past a hole) gets its chosen value: proposing
      // it is safe at any ballot, and it is what phase 1 would recover anyway.
      if (known !== undefined) value = known;
      else if (slot <= this.recoveredThrough) value = this.recovered.get(slot)?.value ?? noop;
      else if (this.queue.size > 0) value = { kind: "batch", commands: takeBatch(this.queue, this.waiting), stamp: { ballot: this.ballot, time: Math.floor(now) } };
      else return;
      this.nextSlot++;
      const proposal: Proposal = { value, acks: new Set(), sentAt: now, backoff: this.firstRetransmitMs() };
      this.inflight.set(slot, proposal);
      for (const member of members) {
        if (member === this.self) {
          this.accepted.set(slot, { ballot: this.ballot, value });
          this.persist(out, { kind: "accept", slot, ballot: this.ballot, value });
          this.acknowledgeOwnVote(out, slot);
        } else {
          this.send(out, member, { kind: "accept", ballot: this.ballot, slot, value, chosenThrough: state.applied });
        }
      }
      // These accepts tell their members everything applied so far, as a commit would.
      if (this.commitDueAt !== null && this.knownMembers().every((member) => members.includes(member))) this.commitDueAt = null;
      this.checkChosen(slot, now, out);
    }
  }

  /**
   * Called whenever the applied slot advances. Proposals for slots that are now applied were
   * settled by someone else (we learned them from a teacher): drop them, and propose again
   * any of their commands that did not make it into the chosen values.
   */
  private settleProposals(): void {
    const applied = this.applied;
    for (const [slot, proposal] of this.inflight) {
      if (slot > applied) continue;
      this.inflight.delete(slot);
      if (proposal.value.kind === "batch") for (const command of proposal.value.commands) this.requeue(command);
    }
    if (this.roleNow === "leader" && this.nextSlot <= applied) this.nextSlot = applied + 1;
  }

  private requeue(command: Command): void {
    const key = commandKey(command);
    const waiting = this.waiting.get(key);
    if (waiting === undefined) return;
    this.waiting.delete(key);
    this.queue.set(key, waiting);
  }

  private onAccepted(from: string, ballot: Ballot, slot: number, now: number, out: Effects): void {
    if (this.roleNow !== "leader" || !ballotsEqual(ballot, this.ballot)) return;
    const proposal = this.inflight.get(slot);
    if (proposal === undefined) return;
    proposal.acks.add(from);
    this.checkChosen(slot, now, out);
  }

  private checkChosen(slot: number, now: number, out: Effects): void {
    const proposal = this.inflight.get(slot);
    if (proposal === undefined) return;
    if (!hasQuorum(this.membersFor(slot), proposal.acks)) return;
    this.inflight.delete(slot);
    out.chosen.push({ cell: this.cell, slot, ballot: this.ballot, value: proposal.value, voters: [...proposal.acks] });
    this.choose(slot, proposal.value, out);
    this.applyReady(now, out);
  }

  private choose(slot: number, value: LogValue, out: Effects): void {
    if (slot <= this.applied || this.chosen.has(slot)) return;
    this.chosen.set(slot, value);
    this.persist(out, { kind: "chosen", slot, value });
  }

  /** Applies chosen slots in order, answers waiting clients, and keeps the pipeline full. */
  private applyReady(now: number, out: Effects | null): void {
    const state = this.state;
    if (state === null) return;
    let progressed = false;
    for (;;) {
      const slot = state.applied + 1;
      const value = this.chosen.get(slot);
      if (value === undefined) break;
      const results = state.apply(slot, value, this.applyOptions);
      progressed = true;
      this.accepted.delete(slot);
      this.recovered.delete(slot);
      if (out === null) continue;
      out.applied.push({ cell: this.cell, slot, value, executed: results.map((r) => r.executed) });
      for (const { command, result } of results) {
        const key = commandKey(command);
        const waiting = this.waiting.get(key) ?? this.queue.get(key);
        if (waiting === undefined) continue;
        this.waiting.delete(key);
        this.queue.delete(key);
        this.send(out, waiting.replyTo, { kind: "reply", client: waiting.client, id: waiting.id, outcome: { kind: "done", result, slot } });
      }
    }
    while (state.applied - this.tailStart >= this.tailEntriesMax) this.chosen.delete(this.tailStart++);
    if (!progressed) return;
    this.learnBackoff = limits.learnRetryMs;
    this.settleProposals();
    if (out === null) return;
    if (this.roleNow === "leader") {
      this.commitDueAt ??= now + this.commitDelayMs;
      if (!this.isMember()) this.stepDown(out, "redirect");
      else this.propose(now, out);
    } else if (this.roleNow === "candidate") {
      this.tryLead(now, out);
    }
  }

  private flushCommit(now: number, out: Effects): void {
    if (this.commitDueAt === null || now < this.commitDueAt || this.roleNow !== "leader" || this.state === null) return;
    this.commitDueAt = null;
    for (const member of this.knownMembers()) {
      if (member !== this.self) this.send(out, member, { kind: "commit", ballot: this.ballot, through: this.state.applied });
    }
  }

  private stepDown(out: Effects, tell: "redirect" | "unavailable" | null): void {
    this.roleNow = "follower";
    this.inflight.clear();
    this.promises.clear();
    this.recovered = new Map();
    this.commitDueAt = null;
    if (tell === "redirect") this.replyAll(out, { kind: "redirect", leader: this.leaderHint === this.self ? null : this.leaderHint });
    else if (tell === "unavailable") this.replyAll(out, { kind: "unavailable", reason: "no quorum answered" });
  }

  // ---- helpers ------------------------------------------------------------------------

  private membersFor(slot: number): readonly string[] {
    const members = this.state?.membersFor(slot) ?? null;
    assert(members !== null, `no membership known for slot ${slot}`);
    return members;
  }

  /** Members of every membership in the window, and of the latest one. */
  private knownMembers(): string[] {
    const state = this.state;
    if (state === null) return this.leaderHint === null ? [] : [this.leaderHint];
    const all = new Set<string>();
    for (const membership of state.windowMemberships() as Membership[]) for (const member of membership.members) all.add(member);
    for (const member of state.latestMembers()) all.add(member);
    return [...all];
  }

  private isMember(): boolean {
    const state = this.state;
    if (state === null) return false;
    if (state.latestMembers().includes(this.self)) return true;
    return state.windowMemberships().some((m) => m.members.includes(this.self));
  }

  private hasHole(): boolean {
    const applied = this.applied;
    for (const slot of this.accepted.keys()) if (slot > applied) return true;
    for (const slot of this.chosen.keys()) if (slot > applied) return true;
    return false;
  }

  private updateHoleDeadline(now: number): void {
    if (this.roleNow === "leader" || !this.hasHole()) {
      this.holeDeadline = null;
    } else if (this.holeDeadline === null) {
      this.holeDeadline = now + limits.holeWaitMs * (1 + this.env.jitter());
    }
  }

  private firstRetransmitMs(): number {
    const estimate = this.env.retransmitMs?.() ?? limits.retransmitMs;
    return Math.min(limits.retransmitBackoffMaxMs, Math.max(limits.retransmitMs, estimate));
  }

  private nextBackoff(current: number): number {
    return Math.min(limits.retransmitBackoffMaxMs, current * 2) * (0.75 + 0.5 * this.env.jitter());
  }

  private persist(out: Effects, record: DurableRecord): void {
    out.records.push({ cell: this.cell, record });
  }

  private send(out: Effects, to: string, message: CellMessage): void {
    if (to === this.self) return;
    out.messages.push({ to, cell: this.cell, message, afterSync: needsSync(message) });
  }

  /** A leader's vote counts once its record is durable: the driver hands this back to it then. */
  private acknowledgeOwnVote(out: Effects, slot: number): void {
    if (this.mutations.has("earlyOwnVote")) {
      this.inflight.get(slot)?.acks.add(this.self);
      return;
    }
    out.messages.push({ to: this.self, cell: this.cell, message: { kind: "accepted", ballot: this.ballot, slot }, afterSync: true });
  }
}
