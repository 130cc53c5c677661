// One state of the explorer: the replicas of one cell, the messages in flight between them,
// the client inputs not yet sent, the time, what is left of the fault budget, and the
// checker's history. Transitions:
// - deliver one message: the oldest on its link, or (spending the reorder budget) any other;
//   optionally leaving a copy in flight (the network duplicates it);
// - drop one message;
// - tick one replica, with time advanced to its deadline if that is later;
// - let time pass (`waitMs`), so that a follower stops trusting a leader it heard from;
// - send the next input of one client to one of the replicas it may go to;
// - crash one replica and bring it back from its durable records (random walks only).
// Records are durable the moment a step returns, which is the driver's contract (records
// before messages): a crash can only lose a step whole, which is the same as losing the
// message that caused it, so recovering from every record written is the complete crash model.
//
// A world is copied on write: `fork` shares the replicas, and a step copies the one replica
// it steps, so that states on the search stack share everything they did not change.

import { compareBallots } from "../../../src/core/ballot.ts";
import type { CellState } from "../../../src/core/cellstate.ts";
import { describeMessage } from "../../../src/core/describe.ts";
import { type DurableRecord, clearEffects, createEffects } from "../../../src/core/effects.ts";
import type { CellMessage, ClientRequest, Operation } from "../../../src/core/messages.ts";
import type { Mutation } from "../../../src/core/mutations.ts";
import { type Genesis, Replica, type ReplicaEnv, type ReplicaOptions } from "../../../src/core/replica.ts";
import { cloneDeep, deepFreeze, hashText, printData } from "./data.ts";
import { type Check, History, type SentRequest, checkKinds } from "./history.ts";

export interface Message {
  readonly from: string;
  readonly to: string;
  readonly message: CellMessage;
}

/** A command some client sends, when the explorer chooses, to one replica it chooses among `at`. */
export interface Input {
  readonly client: string;
  /** The request id; a retry of the same command is another input with another id. */
  readonly id: number;
  readonly at: readonly string[];
  readonly session: number;
  readonly seq: number;
  readonly acked: number;
  readonly op: Operation;
  /** Set by a client that timed out on the leader (see ClientRequest). */
  readonly force: boolean;
  /** The network duplicates it: a copy stays in flight, for any later point (or never). */
  readonly duplicate: boolean;
  /** Requests of other clients that arrive at the same replica at the same moment (a crowd). */
  readonly crowd?: readonly Input[];
}

/** What is left of each kind of nondeterminism the search may still spend on one path. */
export interface Budget {
  /**
   * Deliveries out of order: each link (sender to receiver) delivers in the order sent unless
   * this is spent (Infinity: any order, always). Bounding it keeps the number of states
   * polynomial in the messages in flight instead of exponential, as delay-bounded search does.
   */
  reorders: number;
  copies: number;
  drops: number;
  ticks: number;
  waits: number;
  crashes: number;
}

export const budgetKinds = ["reorders", "copies", "drops", "ticks", "waits", "crashes"] as const;

export type Transition =
  | { readonly kind: "deliver"; readonly index: number; readonly keepCopy: boolean }
  | { readonly kind: "drop"; readonly index: number }
  | { readonly kind: "tick"; readonly replica: string }
  | { readonly kind: "wait" }
  | { readonly kind: "inject"; readonly lane: number; readonly at: string }
  | { readonly kind: "crash"; readonly replica: string };

export interface WorldSpec {
  readonly cell: string;
  /** The genesis members; they start with the cell's first state. */
  readonly members: readonly string[];
  readonly alpha: number;
  /** The session table's bound (the genesis setting `sessionsMax`); the core default when absent. */
  readonly sessionsMax?: number;
  /** Replicas with no state, that membership changes may add. */
  readonly joiners?: readonly string[];
  readonly tailEntriesMax?: number;
  readonly mutations?: readonly Mutation[];
  /** Whether `self` believes `peer` alive; the failure detector never changes during a search. */
  readonly alive?: (self: string, peer: string) => boolean;
  /** Messages the search leaves out of its scope: never put in flight. */
  readonly outOfScope?: (message: Message) => boolean;
  /** The invariants checked (default: all of them). */
  readonly checks?: readonly Check[];
  /** How far a `wait` moves time, in ms. */
  readonly waitMs?: number;
  /** Leave dead messages in flight instead of discarding them (see `isDead`); for cross-checking the rule. */
  readonly keepDead?: boolean;
}

/** What every world forked from one root shares: the spec, environments, the requests sent. */
interface Shared {
  spec: WorldSpec;
  readonly envs: Map<string, ReplicaEnv>;
  readonly envSet: WeakSet<object>;
  readonly lanes: Input[][];
  readonly requests: Map<string, SentRequest>;
  readonly effects: ReturnType<typeof createEffects>;
  /** Keep durable records (for crashes); off in exhaustive search, where nothing crashes. */
  readonly durable: boolean;
}

/**
 * The genesis a spec describes. `sessionsMax` is a genesis setting the core is gaining; it
 * is passed through an object the type does not know fully, so this compiles before and after.
 */
export function genesisOf(spec: WorldSpec): Genesis {
  const settings = spec.sessionsMax === undefined ? {} : { sessionsMax: spec.sessionsMax };
  const genesis = { members: spec.members, alpha: spec.alpha, ...settings };
  return genesis;
}

export class World {
  private constructor(
    private readonly shared: Shared,
    readonly replicas: Map<string, Replica>,
    readonly inFlight: Message[],
    /** Per lane, how many of its inputs were sent. */
    readonly sent: number[],
    public now: number,
    readonly budget: Budget,
    public history: History,
    private readonly records: Map<string, DurableRecord[]> | null,
    /** Replicas copied since the last fork: this world may step them in place. */
    private readonly owned: Set<string>,
  ) {}

  static create(spec: WorldSpec, lanes: readonly (readonly Input[])[], budget: Budget, options: { durable?: boolean } = {}): World {
    const envs = new Map<string, ReplicaEnv>();
    const envSet = new WeakSet<object>();
    const ids = [...spec.members, ...(spec.joiners ?? [])];
    const alive = spec.alive ?? (() => false);
    for (const id of ids) {
      const env: ReplicaEnv = { isAlive: (peer) => alive(id, peer), jitter: () => 0.5 };
      envs.set(id, env);
      envSet.add(env);
    }
    const durable = options.durable ?? false;
    const shared: Shared = { spec, envs, envSet, lanes: lanes.map((l) => [...l]), requests: new Map(), effects: createEffects(), durable };
    const replicas = new Map<string, Replica>();
    const records = durable ? new Map<string, DurableRecord[]>() : null;
    for (const id of ids) {
      const replica = new Replica(World.optionsFor(shared, id));
      replicas.set(id, replica);
      const genesis = replica.genesisRecord();
      records?.set(id, genesis === null ? [] : [genesis]);
    }
    const first = replicas.get(spec.members[0] ?? "") as Replica;
    const reference = cloneDeep(first.cellState as CellState, () => false);
    const history = new History(reference, (spec.mutations ?? []).includes("lruSessions"), new Set(spec.checks ?? checkKinds));
    return new World(shared, replicas, [], lanes.map(() => 0), 0, { ...budget }, history, records, new Set(ids));
  }

  private static optionsFor(shared: Shared, id: string): ReplicaOptions {
    const spec = shared.spec;
    // Commits leave at once (a search passes no time unless it spends a tick on it), and each
    // request is proposed as it comes (the scenarios number their slots by request).
    const base = { cell: spec.cell, self: id, env: shared.envs.get(id) as ReplicaEnv, mutations: spec.mutations ?? [], commitDelayMs: 0, eagerProposals: true };
    const withTail = spec.tailEntriesMax === undefined ? base : { ...base, tailEntriesMax: spec.tailEntriesMax };
    return spec.members.includes(id) ? { ...withTail, genesis: genesisOf(spec) } : withTail;
  }

  get spec(): WorldSpec {
    return this.shared.spec;
  }

  get violation(): string | null {
    return this.history.violation;
  }

  /** A copy that shares every replica until it steps one. */
  fork(): World {
    this.owned.clear();
    return new World(
      this.shared,
      new Map(this.replicas),
      [...this.inFlight],
      [...this.sent],
      this.now,
      { ...this.budget },
      this.history.fork(),
      this.records === null ? null : new Map([...this.records].map(([id, list]) => [id, [...list]])),
      new Set(),
    );
  }

  replica(id: string): Replica {
    const replica = this.replicas.get(id);
    if (replica === undefined) throw new Error(`explorer: no replica ${id}`);
    return replica;
  }

  /** The replica `id`, copied first if this world shares it with another. */
  private own(id: string): Replica {
    const replica = this.replica(id);
    if (this.owned.has(id)) return replica;
    const copy = cloneDeep(replica, (v) => this.shared.envSet.has(v));
    this.replicas.set(id, copy);
    this.owned.add(id);
    return copy;
  }

  /** Runs one step of replica `id` and checks it; what it sends to replicas goes in flight. */
  private stepReplica(id: string, act: (replica: Replica, effects: ReturnType<typeof createEffects>) => void): void {
    const replica = this.own(id);
    const effects = this.shared.effects;
    const before = replica.applied;
    act(replica, effects);
    printedReplicas.delete(replica);
    if (this.records !== null) this.records.get(id)?.push(...effects.records.map((r) => r.record));
    this.history.afterStep(id, replica, before, effects, (client, requestId) => this.shared.requests.get(`${client}#${requestId}`));
    const outOfScope = this.shared.spec.outOfScope;
    const keepDead = this.shared.spec.keepDead === true;
    // No dead message is ever in flight: none is sent, and a step's own dead ones are dropped.
    if (!keepDead) this.discardDead(id);
    for (const out of effects.messages) {
      deepFreeze(out.message);
      const receiver = this.replicas.get(out.to);
      if (receiver === undefined) continue; // Replies: the history has checked them.
      const message: Message = { from: id, to: out.to, message: out.message };
      if (outOfScope?.(message) === true || (!keepDead && isDead(receiver, out.message))) continue;
      this.inFlight.push(message);
    }
    clearEffects(effects);
  }

  /**
   * Drops the messages to `id` that its last step made dead: delivering them now or at any
   * later point would change nothing, so states that differ only by them are one state.
   */
  private discardDead(id: string): void {
    const replica = this.replica(id);
    let kept = 0;
    for (const message of this.inFlight) if (message.to !== id || !isDead(replica, message.message)) this.inFlight[kept++] = message;
    this.inFlight.length = kept;
  }

  // ---- transitions ----------------------------------------------------------------------

  /** Every transition enabled here; identical messages in flight on one link are offered once. */
  transitions(): Transition[] {
    const out: Transition[] = [];
    const offered = new Set<string>();
    const links = new Set<string>();
    this.inFlight.forEach((message, index) => {
      const link = `${message.from}>${message.to}`;
      const first = !links.has(link);
      links.add(link);
      const key = `${link}:${printMessage(message)}`;
      if (offered.has(key)) return;
      offered.add(key);
      if (first || this.budget.reorders > 0) {
        out.push({ kind: "deliver", index, keepCopy: false });
        if (this.budget.copies > 0) out.push({ kind: "deliver", index, keepCopy: true });
      }
      if (this.budget.drops > 0) out.push({ kind: "drop", index });
    });
    this.shared.lanes.forEach((lane, index) => {
      const input = lane[this.sent[index] ?? 0];
      if (input !== undefined) for (const at of input.at) out.push({ kind: "inject", lane: index, at });
    });
    if (this.budget.ticks > 0) {
      for (const [id, replica] of this.replicas) if (replica.nextDeadline() !== null) out.push({ kind: "tick", replica: id });
    }
    if (this.budget.waits > 0) out.push({ kind: "wait" });
    if (this.budget.crashes > 0 && this.records !== null) for (const id of this.replicas.keys()) out.push({ kind: "crash", replica: id });
    return out;
  }

  apply(transition: Transition): void {
    switch (transition.kind) {
      case "deliver": {
        const message = this.inFlight[transition.index] as Message;
        if (!this.firstOnLink(transition.index)) this.budget.reorders--;
        if (transition.keepCopy) this.budget.copies--;
        else this.inFlight.splice(transition.index, 1);
        this.stepReplica(message.to, (replica, effects) => replica.step(message.from, message.message, this.now, effects));
        return;
      }
      case "drop":
        this.budget.drops--;
        this.inFlight.splice(transition.index, 1);
        return;
      case "tick": {
        this.budget.ticks--;
        const deadline = this.replica(transition.replica).nextDeadline();
        if (deadline !== null && deadline > this.now) this.now = Math.ceil(deadline);
        this.stepReplica(transition.replica, (replica, effects) => replica.tick(this.now, effects));
        return;
      }
      case "wait":
        this.budget.waits--;
        this.now += this.shared.spec.waitMs ?? 100;
        return;
      case "inject": {
        const index = transition.lane;
        const input = this.shared.lanes[index]?.[this.sent[index] ?? 0];
        if (input === undefined) throw new Error(`explorer: lane ${index} has no input left`);
        this.sent[index] = (this.sent[index] ?? 0) + 1;
        this.send(input, transition.at);
        for (const other of input.crowd ?? []) this.send(other, transition.at);
        return;
      }
      case "crash": {
        this.budget.crashes--;
        const id = transition.replica;
        const records = this.records?.get(id) ?? [];
        this.replicas.set(id, Replica.recover(World.optionsFor(this.shared, id), records));
        this.owned.add(id);
        return;
      }
    }
  }

  /** True when message `index` is the oldest in flight on its link. */
  private firstOnLink(index: number): boolean {
    const message = this.inFlight[index] as Message;
    for (let i = 0; i < index; i++) {
      const other = this.inFlight[i] as Message;
      if (other.from === message.from && other.to === message.to) return false;
    }
    return true;
  }

  /** Sends a client's request to replica `at` now (and leaves a copy in flight if the input says so). */
  send(input: Input, at: string): void {
    const request: ClientRequest = {
      kind: "request", client: input.client, id: input.id, session: input.session, seq: input.seq, acked: input.acked, op: input.op,
      consistency: "consistent", minApplied: 0, force: input.force,
    };
    deepFreeze(request);
    this.shared.requests.set(`${input.client}#${input.id}`, { client: input.client, id: input.id, session: input.session, seq: input.seq, op: input.op });
    if (input.duplicate) this.inFlight.push({ from: input.client, to: at, message: request });
    this.stepReplica(at, (replica, effects) => replica.step(input.client, request, this.now, effects));
  }

  // ---- scripting (for the prefix a scenario runs before the search) --------------------

  /** Narrows the search's scope after a prefix: messages `outOfScope` selects are never put in flight. */
  setScope(outOfScope: (message: Message) => boolean): void {
    const before = this.shared.spec.outOfScope;
    this.shared.spec = { ...this.shared.spec, outOfScope: (m) => outOfScope(m) || before?.(m) === true };
  }

  /** Adds a client's inputs, for the search to send; only on a root, before any fork. */
  addLane(inputs: readonly Input[]): void {
    this.shared.lanes.push([...inputs]);
    this.sent.push(0);
  }

  /** Delivers, in order, the messages `which` selects and those they cause that it selects, until none is left. */
  deliverWhere(which: (m: Message) => boolean, limit = 10_000): number {
    let delivered = 0;
    for (;;) {
      const index = this.inFlight.findIndex(which);
      if (index < 0) return delivered;
      if (++delivered > limit) throw new Error("explorer: deliverWhere did not settle");
      // A scripted delivery spends no budget: the budget is the search's.
      const [message] = this.inFlight.splice(index, 1) as [Message];
      this.stepReplica(message.to, (replica, effects) => replica.step(message.from, message.message, this.now, effects));
    }
  }

  dropWhere(which: (m: Message) => boolean): number {
    const before = this.inFlight.length;
    const kept = this.inFlight.filter((m) => !which(m));
    this.inFlight.length = 0;
    this.inFlight.push(...kept);
    return before - kept.length;
  }

  /**
   * Opens a session for `client` through `at`, delivering what `which` selects until the
   * answer comes; returns the session id. The prefix of a scenario uses it.
   */
  openSession(client: string, at: string, which: (m: Message) => boolean = () => true): number {
    const id = 1_000_000 + this.shared.requests.size;
    this.send({ client, id, at: [at], session: 0, seq: 0, acked: 0, op: { kind: "openSession", client, nonce: id }, force: false, duplicate: false }, at);
    this.deliverWhere(which);
    const session = this.sessionOpenedFor(client, id);
    if (session === null) throw new Error(`explorer: ${client} got no session through ${at}`);
    return session;
  }

  /** The session the log opened for `client`'s open request `id`, if it did. */
  private sessionOpenedFor(client: string, id: number): number | null {
    return this.history.openedFor(client, id)[0] ?? null;
  }

  // ---- identity -------------------------------------------------------------------------

  /**
   * The canonical text of everything that decides this world's future and its verdicts,
   * budget excluded (the search compares budgets by dominance). With unbounded reordering
   * the messages on a link are a multiset, so they are sorted.
   */
  fingerprint(): string {
    const replicas = [...this.replicas].map(([id, r]) => `${id}=${printReplica(r)}`);
    // In flight: per link in the order sent (that order is what delivery follows), links sorted.
    const links = new Map<string, string[]>();
    for (const message of this.inFlight) {
      const link = `${message.from}>${message.to}`;
      let list = links.get(link);
      if (list === undefined) links.set(link, (list = []));
      list.push(printMessage(message));
    }
    const messages = [...links].map(([link, list]) => `${link}:${this.budget.reorders === Infinity ? list.sort().join(",") : list.join(",")}`).sort();
    return `${replicas.join("|")}#${messages.join(";")}#${this.sent.join(",")}#${this.now}#${this.history.print()}`;
  }

  budgetVector(): number[] {
    return budgetKinds.map((k) => this.budget[k]);
  }

  describe(transition: Transition): string {
    switch (transition.kind) {
      case "deliver": {
        const m = this.inFlight[transition.index] as Message;
        return `${transition.keepCopy ? "deliver a copy of" : "deliver"} ${m.from} -> ${m.to} ${describeShort(m.message)}`;
      }
      case "drop": {
        const m = this.inFlight[transition.index] as Message;
        return `drop ${m.from} -> ${m.to} ${describeShort(m.message)}`;
      }
      case "tick":
        return `tick ${transition.replica} at ${Math.max(this.now, Math.ceil(this.replica(transition.replica).nextDeadline() ?? 0))}`;
      case "wait":
        return `wait ${this.shared.spec.waitMs ?? 100} ms`;
      case "inject": {
        const input = this.shared.lanes[transition.lane]?.[this.sent[transition.lane] ?? 0];
        return `${input?.client ?? "?"} sends #${input?.id ?? "?"} ${input?.op.kind ?? "?"} s=${input?.session}.${input?.seq} to ${transition.at}`;
      }
      case "crash":
        return `crash and recover ${transition.replica}`;
    }
  }
}

/**
 * True when delivering `message` to `replica`, now or after anything else happens, has no
 * effect. Only answers to a replica's own ballot qualify, once the replica has left that
 * ballot for good, which it shows by having promised a higher one, or by being a follower
 * while promised to it: a replica campaigns again only above every round it has seen, so it
 * never returns to a ballot it left. Then (replica.ts) a promise or an acknowledgement is
 * ignored, and a nack changes only the highest round seen, which is at least the promised
 * round. An acknowledgement of an applied slot is ignored too: no ballot proposes a slot
 * again once it is applied.
 */
export function isDead(replica: Replica, message: CellMessage): boolean {
  if (message.kind !== "promise" && message.kind !== "accepted" && message.kind !== "nack") return false;
  const ballot = message.ballot;
  if (ballot.node !== replica.self) return false;
  if (message.kind === "accepted" && message.slot <= replica.applied) return true;
  const promised = replica.promisedBallot;
  const order = compareBallots(promised, ballot);
  const left = order > 0 || (order === 0 && replica.role === "follower");
  if (!left) return false;
  return message.kind !== "nack" || message.promised.round <= promised.round;
}

const printedReplicas = new WeakMap<Replica, string>();
const printedMessages = new WeakMap<Message, string>();

/** A replica's text, cached: a replica in a world is never stepped again once that world is forked. */
function printReplica(replica: Replica): string {
  let text = printedReplicas.get(replica);
  if (text === undefined) printedReplicas.set(replica, (text = hashText(printData(replica))));
  return text;
}

/** A message's identity: a hash of its text (messages are never changed once sent). */
function printMessage(message: Message): string {
  let text = printedMessages.get(message);
  if (text === undefined) printedMessages.set(message, (text = hashText(printData(message))));
  return text;
}

function describeShort(message: CellMessage): string {
  const text = describeMessage(message);
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}
