// The whole colony in one deterministic, event-driven world: hundreds of nodes of a generated
// datacenter, each running the real cell replicas (src/core Replica) of the cells placed on
// it and a real DiscoveryNode (src/discovery), clients that find their cell through a real
// ClientDiscovery and commit writes through the cells' own Paxos, and the real control plane
// (src/control/service.ts's ControlPlane, through control.ts) that repairs and moves cells.
// Everything random comes from one seed; the same seed replays the same run.
//
// What the world models, and what it leaves out:
// - The network: a latency by distance (rack, row, across rows) with jitter, and cuts, as
//   a side per rack: two endpoints talk exactly when their racks are on the same side. The
//   control plane sits with the spine, on side 0. No loss: the failures here are the
//   correlated ones.
// - The node shell: what src/node does around its replicas. Records are taken as durable
//   `fsyncMs` after the step that wrote them (messages that stand for a record wait that
//   long; the rest leave at once), since no node here restarts and so no record is read
//   back. The failure detector is perfect: a peer is alive exactly when it is up and on this
//   node's side. A request for a cell the node does not host is answered "not hosted", with
//   its forwarding pointer when it has one; a replica that applies its own removal leaves
//   the cell (a pointer stays behind).
// - Idle cells cost nothing: a replica with nothing in flight asks for no tick, so only the
//   cells a client or the control plane touches, and the gossip, make events.

import { majority } from "../../src/control/placement/rules.ts";
import type { Cluster } from "../../src/control/placement/cluster.ts";
import type { CellClients } from "../../src/control/placement/types.ts";
import type { Topology } from "../../src/control/topology/types.ts";
import { clearEffects, createEffects, type Effects } from "../../src/core/effects.ts";
import type { CellMessage, ClientReply, Command, CommandResult, ConfigChange, Operation } from "../../src/core/messages.ts";
import { Replica, type ReplicaEnv } from "../../src/core/replica.ts";
import { type CellReport } from "../../src/discovery/cache.ts";
import { ClientDiscovery, type Evidence, type LookupToSend } from "../../src/discovery/client.ts";
import type { CellEntry } from "../../src/discovery/entry.ts";
import { DiscoveryNode } from "../../src/discovery/node.ts";
import type { PeerRecord, PeerSeed } from "../../src/discovery/peers.ts";
import { EntryStore } from "../../src/discovery/store.ts";
import { deriveSeed, Rng } from "../../src/random.ts";
import { EventQueue } from "../../src/sim/queue.ts";
import { nodePart } from "../../src/wire/ids.ts";
import { ColonyControl, type ControlHost, type ColonyControlOptions } from "./control.ts";

type Wire = Record<string, unknown>;

/** What travels between endpoints. Cell messages are the core's own; the rest is the node shell's and discovery's. */
type Payload =
  | { readonly kind: "cell"; readonly cell: string; readonly message: CellMessage }
  | { readonly kind: "notHosted"; readonly cell: string; readonly id: number; readonly pointer: CellEntry | null }
  | { readonly kind: "gossip"; readonly wire: Wire }
  | { readonly kind: "lookup"; readonly wire: Wire }
  | { readonly kind: "answer"; readonly wire: Wire }
  | { readonly kind: "join"; readonly cell: string; readonly incarnation: string; readonly id: number }
  | { readonly kind: "joined"; readonly id: number; readonly identity: string };

interface Endpoint {
  readonly name: string;
  /** The cluster's rack index, or -1 for the control plane (on the spine). */
  readonly rack: number;
  isUp(): boolean;
  receive(from: string, payload: Payload): void;
}

export interface WorldStats {
  events: number;
  messagesSent: number;
  messagesDropped: number;
  gossipMessages: number;
  lookups: number;
  notHosted: number;
  leaves: number;
}

export interface WorldOptions {
  readonly seed: number;
  readonly topology: Topology;
  readonly cluster: Cluster;
  readonly control: Omit<ColonyControlOptions, "cluster" | "topology">;
  /** How long after a step its records count as durable (default 1 ms). */
  readonly fsyncMs?: number;
}

export class ColonyWorld {
  readonly cluster: Cluster;
  readonly control: ColonyControl;
  readonly stats: WorldStats = { events: 0, messagesSent: 0, messagesDropped: 0, gossipMessages: 0, lookups: 0, notHosted: 0, leaves: 0 };
  private readonly queue = new EventQueue<() => void>();
  private readonly endpoints = new Map<string, Endpoint>();
  readonly nodes: ColonyNode[] = [];
  private readonly nodeById = new Map<string, ColonyNode>();
  readonly effects: Effects = createEffects();
  private readonly netRng: Rng;
  readonly rng: Rng;
  private readonly store = new EntryStore({ leafBits: 10 });
  readonly seeds: readonly PeerSeed[];
  private readonly controlCaller: Caller;
  readonly fsyncMs: number;
  private time = 0;
  /** The side of each rack, or null when the network is whole. */
  private rackSide: Int32Array | null = null;

  constructor(options: WorldOptions) {
    this.cluster = options.cluster;
    this.rng = new Rng(deriveSeed(options.seed, 1));
    this.netRng = new Rng(deriveSeed(options.seed, 2));
    this.fsyncMs = options.fsyncMs ?? 1;
    const topology = options.topology;
    this.seeds = topology.nodes.map((n) => ({ nodeId: n.id, address: n.address }));
    const identities = topology.nodes.map((n, i) => `${n.id}~${(i + 1).toString(16).padStart(16, "0")}`);
    const records: PeerRecord[] = topology.nodes.map((n, i) => ({ identity: identities[i] as string, address: n.address, generation: 1, heartbeat: 0, status: "alive" }));
    topology.nodes.forEach((n, i) => {
      const node = new ColonyNode(this, n.id, identities[i] as string, this.cluster.nodeIndex.get(n.id) as number);
      node.discovery = new DiscoveryNode({
        identity: node.identity, address: n.address, generation: 1, seeds: this.seeds, rng: new Rng(deriveSeed(options.seed, 3, i)), nowMs: 0,
        store: this.store, auditsPerRound: 64, peerRecords: records,
      });
      this.nodes.push(node);
      this.nodeById.set(n.id, node);
      this.endpoints.set(n.id, node);
    });
    this.control = new ColonyControl(this.controlHost(), { ...options.control, cluster: this.cluster, topology });
    this.controlCaller = new Caller(this, "control", -1, new ControlRouter(this));
    this.endpoints.set("control", this.controlCaller);
    for (const node of this.nodes) this.scheduleDiscovery(node);
  }

  now(): number {
    return this.time;
  }

  at(timeMs: number, action: () => void): void {
    this.queue.push(Math.max(timeMs, this.time), action);
  }

  /**
   * Runs events until `untilMs` of simulated time. After an event that answered something the
   * control plane awaits (`woke`), the plane's promises run to their next wait before the next
   * event: the real control plane is async, the world is not, and this keeps both in one
   * order, the same from the same seed.
   */
  async runUntil(untilMs: number): Promise<void> {
    for (;;) {
      const next = this.queue.peekTime();
      if (next === undefined || next > untilMs) break;
      const item = this.queue.pop() as { at: number; event: () => void };
      this.time = Math.max(this.time, item.at);
      this.stats.events++;
      item.event();
      if (this.awoken) {
        this.awoken = false;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    this.time = Math.max(this.time, untilMs);
  }

  private awoken = false;

  node(id: string): ColonyNode | undefined {
    return this.nodeById.get(id);
  }

  /** A new cell: its replicas on `nodes` (indexes), registered with the control plane. */
  createCell(cell: string, incarnation: string, nodes: readonly number[], clients: CellClients): void {
    const members = nodes.map((n) => (this.nodes[n] as ColonyNode).identity);
    for (const n of nodes) (this.nodes[n] as ColonyNode).host(cell, { members, incarnation });
    this.control.register(cell, incarnation, members, clients);
  }

  /** A membership change submitted from the spine, as the control plane submits one (for tests). */
  change(cell: string, change: ConfigChange, done: (configured: boolean) => void): void {
    this.controlCaller.configure(cell, change, done);
  }

  addClient(name: string, rack: number): Caller {
    const caller = new Caller(this, name, rack, new ClientRouter(this, new Rng(deriveSeed(this.rng.nextUint32(), 4))));
    this.endpoints.set(name, caller);
    return caller;
  }

  // ---- failures -----------------------------------------------------------------------

  crash(node: number): void {
    (this.nodes[node] as ColonyNode).crash();
  }

  cut(rackSide: Int32Array | null): void {
    this.rackSide = rackSide;
  }

  sideOf(rack: number): number {
    return rack < 0 || this.rackSide === null ? 0 : (this.rackSide[rack] as number);
  }

  /** Whether two racks can talk (-1 is the spine, where the control plane is). */
  connected(rackA: number, rackB: number): boolean {
    return this.sideOf(rackA) === this.sideOf(rackB);
  }

  /**
   * The members whose majority the cell needs now: those that decide the next slot, on its
   * replica furthest applied. In the middle of a change that is not the latest membership:
   * a change chosen at slot i takes effect at i + alpha, and the slots before are decided by
   * the membership before it (the control plane's own view lags further: it learns a change
   * once the change has answered).
   */
  currentMembers(cell: string): readonly string[] {
    let best: Replica | null = null;
    for (const node of this.nodes) {
      const replica = node.replicas.get(cell);
      if (replica?.cellState == null) continue;
      if (best === null || replica.applied > best.applied) best = replica;
    }
    const state = best?.cellState ?? null;
    if (state === null) return this.control.membersOf(cell);
    return state.membersFor(state.applied + 1) ?? state.latestMembers();
  }

  /** Whether a client in `rack` could reach a majority of the cell's current members: the Monte Carlo's rule, applied to this colony. */
  majorityReachable(cell: string, rack: number): boolean {
    const members = this.currentMembers(cell);
    let reachable = 0;
    for (const m of members) {
      const node = this.nodeById.get(nodePart(m));
      if (node !== undefined && node.up && this.connected(rack, node.rack)) reachable++;
    }
    return reachable >= majority(members.length);
  }

  // ---- the network --------------------------------------------------------------------

  send(from: Endpoint, to: string, payload: Payload): void {
    const target = this.endpoints.get(nodePart(to));
    this.stats.messagesSent++;
    if (target === undefined || !from.isUp() || !this.connected(from.rack, target.rack)) {
      this.stats.messagesDropped++;
      return;
    }
    const latency = this.latencyMs(from.rack, target.rack);
    this.queue.push(this.time + latency, () => {
      // A cut made while the message was on its way stops it too.
      if (!target.isUp() || !this.connected(from.rack, target.rack)) {
        this.stats.messagesDropped++;
        return;
      }
      target.receive(from.name, payload);
    });
  }

  private latencyMs(rackA: number, rackB: number): number {
    const cluster = this.cluster;
    const base = rackA === rackB ? 0.1 : rackA >= 0 && rackB >= 0 && cluster.rackRow[rackA] === cluster.rackRow[rackB] ? 0.3 : 1;
    return base * (0.75 + 0.5 * this.netRng.nextFloat());
  }

  // ---- nodes' timers ------------------------------------------------------------------

  scheduleTick(node: ColonyNode, cell: string, replica: Replica): void {
    const deadline = replica.nextDeadline();
    if (deadline === null) return;
    const when = Math.max(deadline, this.time);
    const have = node.tickAt.get(cell);
    if (have !== undefined && have <= when) return;
    node.tickAt.set(cell, when);
    this.queue.push(when, () => {
      if (!node.up || node.tickAt.get(cell) !== when) return;
      node.tickAt.delete(cell);
      if (node.replicas.get(cell) !== replica) return;
      replica.tick(this.time, this.effects);
      node.afterStep(cell, replica);
    });
  }

  scheduleDiscovery(node: ColonyNode): void {
    const due = node.discovery.nextDeadlineMs();
    if (due >= node.discoveryDue) return;
    node.discoveryDue = due;
    this.queue.push(Math.max(due, this.time), () => {
      if (node.discoveryDue !== due || !node.up) return;
      node.discoveryDue = Infinity;
      node.discoveryTick();
    });
  }

  countGossip(count: number): void {
    this.stats.gossipMessages += count;
  }

  // ---- the control plane's access -----------------------------------------------------

  private controlHost(): ControlHost {
    const reachable = (id: string) => {
      const node = this.nodeById.get(id);
      return node !== undefined && node.up && this.connected(-1, node.rack);
    };
    return {
      now: () => this.time,
      at: (timeMs, action) => this.at(timeMs, action),
      reachable,
      identityOf: (id) => this.nodeById.get(id)?.identity ?? null,
      woke: () => {
        this.awoken = true;
      },
      applied: (identity, cell) => {
        const node = this.nodeById.get(nodePart(identity));
        const replica = node?.identity === identity ? node.replicas.get(cell) : undefined;
        return replica === undefined ? null : replica.applied;
      },
      describe: (cell) => {
        let best: Replica | null = null;
        for (const node of this.nodes) {
          if (!reachable(node.id)) continue;
          const replica = node.replicas.get(cell);
          if (replica?.cellState === null || replica === undefined) continue;
          if (best === null || replica.applied > best.applied) best = replica;
        }
        return best?.cellState?.latestMembers() ?? null;
      },
      join: (node, cell, incarnation, done) => this.controlCaller.join(node, cell, incarnation, done),
      configure: (cell, change, done) => this.controlCaller.configure(cell, change, done),
    };
  }
}

/** A node: its replicas, its discovery node, and what its shell does around them. */
export class ColonyNode implements Endpoint {
  up = true;
  readonly replicas = new Map<string, Replica>();
  readonly tickAt = new Map<string, number>();
  discovery!: DiscoveryNode;
  discoveryDue = Infinity;
  readonly rack: number;
  /**
   * Replicas of cells this node has left: they answer no client (a request gets "not hosted"
   * and the pointer) but still answer their peers, as a real node's removed replica does:
   * one that applied the slots after its removal may be the only one that can teach them.
   */
  readonly left = new Map<string, Replica>();
  /** Cells whose replica here has seen itself a member: when it stops being one, it leaves. */
  private readonly member = new Set<string>();
  private readonly reported = new Map<string, string>();
  private readonly env: ReplicaEnv;

  constructor(private readonly world: ColonyWorld, readonly id: string, readonly identity: string, readonly index: number) {
    this.rack = world.cluster.nodeRack[index] as number;
    this.env = {
      isAlive: (peer) => {
        const other = world.node(nodePart(peer));
        return other !== undefined && other.up && other.identity === peer && world.connected(this.rack, other.rack);
      },
      jitter: () => world.rng.nextFloat(),
    };
  }

  /** Replicas know each other by identity, so that is what a node's messages come from. */
  get name(): string {
    return this.identity;
  }

  isUp(): boolean {
    return this.up;
  }

  host(cell: string, genesis: { readonly members: readonly string[]; readonly incarnation: string } | null, joining?: string): Replica {
    const base = { cell, self: this.identity, env: this.env };
    const replica = new Replica(genesis !== null ? { ...base, genesis } : { ...base, joining: joining as string });
    this.replicas.set(cell, replica);
    this.left.delete(cell);
    this.discovery.host(cell);
    // A new cell's members tell discovery at once, as a node does when it hosts one.
    this.noteCell(cell, replica);
    return replica;
  }

  crash(): void {
    this.up = false;
    this.replicas.clear();
    this.left.clear();
    this.tickAt.clear();
  }

  receive(from: string, payload: Payload): void {
    const world = this.world;
    switch (payload.kind) {
      case "cell": {
        const replica = this.replicas.get(payload.cell);
        if (replica === undefined) {
          if (payload.message.kind === "request") {
            world.stats.notHosted++;
            const answer = this.discovery.lookup(payload.cell, world.now());
            world.send(this, from, { kind: "notHosted", cell: payload.cell, id: payload.message.id, pointer: answer.status === "moved" ? answer.pointer : null });
            return;
          }
          const gone = this.left.get(payload.cell);
          if (gone !== undefined) {
            gone.step(from, payload.message, world.now(), world.effects);
            this.afterStep(payload.cell, gone);
          }
          return;
        }
        replica.step(from, payload.message, world.now(), world.effects);
        this.afterStep(payload.cell, replica);
        return;
      }
      case "gossip": {
        const result = this.discovery.receive({ from: nodePart(from), message: payload.wire }, world.now());
        if (result.ok) this.sendGossip(result.messages);
        world.scheduleDiscovery(this);
        return;
      }
      case "lookup": {
        world.stats.lookups++;
        const result = this.discovery.answer(payload.wire, world.now());
        if (result.ok) world.send(this, from, { kind: "answer", wire: result.wire });
        return;
      }
      case "join": {
        if (!this.replicas.has(payload.cell)) this.host(payload.cell, null, payload.incarnation);
        world.send(this, from, { kind: "joined", id: payload.id, identity: this.identity });
        return;
      }
      default:
        return;
    }
  }

  /** Sends what a step asked for, tells discovery what changed, and asks for the next tick. */
  afterStep(cell: string, replica: Replica): void {
    const world = this.world;
    const effects = world.effects;
    for (const out of effects.messages) {
      const payload: Payload = { kind: "cell", cell: out.cell, message: out.message };
      if (out.to === this.identity) {
        // The leader's own vote counts once it is durable.
        world.at(world.now() + world.fsyncMs, () => {
          const self = this.replicas.get(out.cell);
          if (!this.up || self === undefined) return;
          self.step(this.identity, out.message, world.now(), world.effects);
          this.afterStep(out.cell, self);
        });
      } else if (out.afterSync) {
        world.at(world.now() + world.fsyncMs, () => world.send(this, out.to, payload));
      } else {
        world.send(this, out.to, payload);
      }
    }
    clearEffects(effects);
    this.noteCell(cell, replica);
    if (this.replicas.get(cell) === replica) world.scheduleTick(this, cell, replica);
  }

  private report(cell: string, replica: Replica): CellReport | null {
    const state = replica.cellState;
    if (state === null) return null;
    const window = state.windowMemberships();
    const latest = window[window.length - 1];
    // A change applied at slot s takes effect at s + alpha; the genesis membership is version 0.
    const version = latest === undefined || latest.from <= 1 ? 0 : latest.from - state.alpha;
    const members = state.latestMembers();
    // A hint at a member on its way out (or already out) says nothing about the new membership.
    const hint = replica.leader;
    const leader = hint !== null && members.includes(hint) ? hint : null;
    const promised = replica.promisedBallot;
    return {
      cell, incarnation: state.incarnation, version, appliedSlot: state.applied, members, leader,
      ballot: leader !== null && promised.node === leader ? promised.round : 0, role: replica.role === "leader" ? "leader" : "follower",
    };
  }

  private noteCell(cell: string, replica: Replica): void {
    const report = this.report(cell, replica);
    if (report === null) return;
    if (!report.members.includes(this.identity)) {
      if (!this.member.has(cell)) return;
      // A removal chosen at slot i takes effect at i + alpha: until then this replica still
      // votes for the slots between, as the real node's does (it never drops a replica).
      // Leaving at once took a voter from a membership that still needs it, and left a cell
      // of eight with a cut between four and four stuck (seed 20200225, half row cut off).
      if (replica.votes) return;
      // Removed: leave the cell, keeping a forwarding pointer for clients that still come here.
      this.member.delete(cell);
      this.reported.delete(cell);
      this.replicas.delete(cell);
      this.left.set(cell, replica);
      this.tickAt.delete(cell);
      this.discovery.leave(report, this.world.now());
      this.world.stats.leaves++;
      return;
    }
    this.member.add(cell);
    const key = `${report.version}|${report.leader}|${report.ballot}`;
    if (this.reported.get(cell) === key) return;
    this.reported.set(cell, key);
    this.discovery.push(report, this.world.now());
  }

  discoveryTick(): void {
    const world = this.world;
    const result = this.discovery.tick(world.now());
    this.sendGossip(result.messages);
    for (const cell of result.audit) {
      const replica = this.replicas.get(cell);
      const report = replica === undefined || !this.member.has(cell) ? null : this.report(cell, replica);
      if (report !== null) this.discovery.push(report, world.now());
    }
    world.scheduleDiscovery(this);
  }

  private sendGossip(messages: readonly { readonly to: string; readonly wire: Wire }[]): void {
    this.world.countGossip(messages.length);
    for (const out of messages) this.world.send(this, out.to, { kind: "gossip", wire: out.wire });
  }
}

/** How a caller picks the nodes to try for a cell. */
interface Router {
  targets(cell: string, caller: Caller): readonly string[];
  evidence(cell: string, evidence: Evidence): void;
  answer(wire: Wire): void;
  lookupFailed(id: number): void;
}

/** A client's routing: the real ClientDiscovery, with its lookups sent to nodes over the network. */
export class ClientRouter implements Router {
  readonly discovery: ClientDiscovery;
  constructor(private readonly world: ColonyWorld, rng: Rng) {
    this.discovery = new ClientDiscovery({ seeds: world.seeds, rng });
  }

  targets(cell: string, caller: Caller): readonly string[] {
    const route = this.discovery.route(cell, this.world.now());
    if (route.lookup !== null) caller.sendLookup(route.lookup);
    return route.candidates.map((t) => t.nodeId);
  }

  evidence(cell: string, evidence: Evidence): void {
    this.discovery.evidence(cell, evidence, this.world.now());
  }

  answer(wire: Wire): void {
    this.discovery.receive(wire, this.world.now());
  }

  lookupFailed(id: number): void {
    this.discovery.lookupFailed(id, this.world.now());
  }
}

/** The control plane's routing: the members it knows, the leader that last answered first. */
class ControlRouter implements Router {
  private readonly leaders = new Map<string, string>();
  constructor(private readonly world: ColonyWorld) {}

  targets(cell: string): readonly string[] {
    const members = this.world.control.membersOf(cell).map(nodePart);
    const leader = this.leaders.get(cell);
    return leader !== undefined && members.includes(leader) ? [leader, ...members.filter((m) => m !== leader)] : members;
  }

  evidence(cell: string, evidence: Evidence): void {
    if (evidence.kind === "leader") this.leaders.set(cell, nodePart(evidence.node));
  }

  answer(): void {}

  lookupFailed(): void {}
}

interface Call {
  readonly cell: string;
  readonly op: Operation;
  readonly deadlineMs: number;
  readonly done: (result: CommandResult | null) => void;
  flight: number;
  command: Command;
  opening: boolean;
  attempt: number;
  token: number;
  hint: string | null;
  readonly tried: Set<string>;
  reopened: boolean;
}

/**
 * One endpoint that asks cells for things: a client, or the control plane. A call opens a
 * session with the cell when it has none, then sends its command in it, retrying elsewhere
 * on silence and following redirects, until it is answered or its deadline passes.
 */
export class Caller implements Endpoint {
  private readonly sessions = new Map<string, { readonly id: number; nextSeq: number }>();
  private readonly calls = new Map<number, Call>();
  private readonly joins = new Map<number, (identity: string | null) => void>();
  private nextId = 1;
  private readonly rng: Rng;

  constructor(private readonly world: ColonyWorld, readonly name: string, public rack: number, readonly router: Router) {
    this.rng = new Rng(deriveSeed(world.rng.nextUint32(), 5));
  }

  isUp(): boolean {
    return true;
  }

  /** Runs one operation on a cell; `done` gets the cell's result, or null if none came within `boundMs`. */
  call(cell: string, op: Operation, boundMs: number, done: (result: CommandResult | null) => void): void {
    const session = this.sessions.get(cell);
    const call: Call = {
      cell, op, deadlineMs: this.world.now() + boundMs, done, flight: 0, command: this.commandFor(cell, op), opening: session === undefined,
      attempt: 0, token: 0, hint: null, tried: new Set(), reopened: false,
    };
    this.launch(call);
  }

  private commandFor(cell: string, op: Operation): Command {
    const session = this.sessions.get(cell);
    if (session === undefined) return { session: 0, seq: 0, acked: 0, op: { kind: "openSession", client: this.name, nonce: this.rng.nextInt(0x7fff_ffff) } };
    const seq = session.nextSeq++;
    return { session: session.id, seq, acked: seq, op };
  }

  private launch(call: Call): void {
    this.calls.delete(call.flight);
    call.flight = this.nextId++;
    this.calls.set(call.flight, call);
    this.attempt(call);
  }

  private finish(call: Call, result: CommandResult | null): void {
    this.calls.delete(call.flight);
    call.token++;
    call.done(result);
  }

  private attempt(call: Call): void {
    const world = this.world;
    if (world.now() >= call.deadlineMs) return this.finish(call, null);
    const targets = this.router.targets(call.cell, this);
    const token = ++call.token;
    if (targets.length === 0) {
      // Nothing known yet: the lookup is on its way.
      world.at(world.now() + 50, () => {
        if (call.token === token) this.attempt(call);
      });
      return;
    }
    let target = call.hint !== null && targets.includes(call.hint) ? call.hint : (targets.find((t) => !call.tried.has(t)) ?? null);
    if (target === null) {
      call.tried.clear();
      target = targets[0] as string;
    }
    call.hint = null;
    call.tried.add(target);
    call.attempt++;
    const { command } = call;
    const message: CellMessage = {
      kind: "request", client: this.name, id: call.flight, session: command.session, seq: command.seq, acked: command.acked, op: command.op,
      consistency: "consistent", minApplied: 0, force: call.attempt > 2,
    };
    world.send(this, target, { kind: "cell", cell: call.cell, message });
    const timeoutMs = Math.min(800, 60 * 2 ** Math.min(call.attempt - 1, 4)) * (0.75 + 0.5 * this.rng.nextFloat());
    const sentTo = target;
    world.at(world.now() + timeoutMs, () => {
      if (call.token !== token) return;
      this.router.evidence(call.cell, { kind: "silent", node: sentTo });
      this.attempt(call);
    });
  }

  private retryLater(call: Call, delayMs: number): void {
    const token = ++call.token;
    this.world.at(this.world.now() + delayMs, () => {
      if (call.token === token) this.attempt(call);
    });
  }

  receive(from: string, payload: Payload): void {
    switch (payload.kind) {
      case "cell":
        if (payload.message.kind === "reply") this.onReply(from, payload.message);
        return;
      case "notHosted": {
        const call = this.calls.get(payload.id);
        this.router.evidence(payload.cell, payload.pointer === null ? { kind: "notHosted", node: from } : { kind: "notHosted", node: from, pointer: payload.pointer });
        if (call !== undefined) this.attempt(call);
        return;
      }
      case "answer":
        this.router.answer(payload.wire);
        return;
      case "joined": {
        const done = this.joins.get(payload.id);
        this.joins.delete(payload.id);
        done?.(payload.identity);
        return;
      }
      default:
        return;
    }
  }

  private onReply(from: string, reply: ClientReply): void {
    const call = this.calls.get(reply.id);
    if (call === undefined) return;
    const outcome = reply.outcome;
    const node = nodePart(from);
    switch (outcome.kind) {
      case "done": {
        this.router.evidence(call.cell, { kind: "answered", node });
        this.router.evidence(call.cell, { kind: "leader", node: from });
        const result = outcome.result;
        if (call.opening) {
          if (result.status !== "session") return this.finish(call, result);
          this.sessions.set(call.cell, { id: result.session, nextSeq: 1 });
          call.opening = false;
          call.command = this.commandFor(call.cell, call.op);
          call.hint = node;
          this.launch(call);
          return;
        }
        if (result.status === "rejected" && result.reason === "sessionExpired" && !call.reopened) {
          // The session lapsed between two probes: open another and send the command again.
          this.sessions.delete(call.cell);
          call.reopened = true;
          call.opening = true;
          call.command = this.commandFor(call.cell, call.op);
          call.hint = node;
          this.launch(call);
          return;
        }
        return this.finish(call, result);
      }
      case "redirect":
        this.router.evidence(call.cell, { kind: "answered", node });
        if (outcome.leader !== null) {
          this.router.evidence(call.cell, { kind: "leader", node: outcome.leader });
          call.hint = nodePart(outcome.leader);
        }
        return this.retryLater(call, call.attempt > 6 ? 20 : 0);
      case "unavailable":
        return this.retryLater(call, 20);
      case "overloaded":
        return this.retryLater(call, 50);
      default:
        return;
    }
  }

  /** Sends a discovery lookup; if no answer comes in time, the router hears of it. */
  sendLookup(lookup: LookupToSend): void {
    this.world.send(this, lookup.nodeId, { kind: "lookup", wire: lookup.wire });
    const id = lookup.message.id;
    this.world.at(this.world.now() + 200, () => this.router.lookupFailed(id));
  }

  join(node: string, cell: string, incarnation: string, done: (identity: string | null) => void): void {
    const id = this.nextId++;
    this.joins.set(id, done);
    this.world.send(this, node, { kind: "join", cell, incarnation, id });
    this.world.at(this.world.now() + 1_000, () => {
      if (!this.joins.has(id)) return;
      this.joins.delete(id);
      done(null);
    });
  }

  configure(cell: string, change: ConfigChange, done: (configured: boolean) => void): void {
    this.call(cell, { kind: "config", change }, 2_000, (result) => done(result?.status === "configured"));
  }
}
