// The node: one process on one storage server, hosting replicas of many cells. It is the
// second driver of the pure cell core (the simworld is the first): it feeds replicas the
// frames that arrive, ticks the few that asked for a deadline, makes their records durable
// with one log sync for all of them, and only then sends what they asked to send.
//
// Where things are, in order: construction, the cells it hosts (built replicas and dormant
// ones, `lookAt`/`replicaFor`), compaction, status and metrics; then "receiving" (datagrams
// and chunks to frames), "admission" (clients' frames queued by cell and stepped in slices,
// refusals, the client table), "stepping a frame" (decode, authorize, dispatch to replicas and
// node-level requests, elections' pacing); "time" (timers, heartbeats); and "persist, then
// send" (the flush loop and frame packing).

import { assert } from "../core/assert.ts";
import { describeMessage } from "../core/describe.ts";
import { type CellRecord, type Effects, type Outgoing, clearEffects, createEffects } from "../core/effects.ts";
import type { DurableRecord } from "../core/effects.ts";
import { genesisProblem } from "../core/cellstate.ts";
import type { Envelope, HostedCell, NodeMessage, ReplyOutcome } from "../core/messages.ts";
import { Replica, type ReplicaEnv } from "../core/replica.ts";
import { limits } from "../limits.ts";
import { Reassembler, splitFrame } from "../transport/chunks.ts";
import type { Endpoint, Transport } from "../transport/transport.ts";
import { type Frame, decodeFrame } from "../wire/frame.ts";
import { ReplayGuard, Stamper, freshEpoch } from "../wire/freshness.ts";
import { hasIncarnation, isAddressedTo, nodePart } from "../wire/ids.ts";
import type { KeyRing, KeySet, Role } from "../wire/keyring.ts";
import { encodeMessages } from "../wire/message.ts";
import { type NodeFacts, authorizeAtNode, authorizeChunkAtNode } from "../wire/roles.ts";
import { decodeBody } from "../wire/schema.ts";
import type { EncodedCellRecord } from "../wire/records.ts";
import { Admission, type AdmissionOptions } from "./admission.ts";
import { Deadlines } from "./deadlines.ts";
import { DormantArena } from "./dormant.ts";
import { NodeDiscovery, addressOfEndpoint, discoveryDeadlineKey } from "./discovery.ts";
import type { NodeLog } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { overloadedFor, refusalsFor } from "./refusal.ts";

export interface NodeOptions {
  /**
   * This node's identity: its topology id and its data directory's incarnation
   * (`n3~0123456789abcdef`). Its replicas vote as this identity, so a node that lost its
   * data directory comes back as a stranger to every cell it was in.
   */
  readonly id: string;
  /** The other nodes this node may talk to (its color), by id. */
  readonly peers: ReadonlyMap<string, Endpoint>;
  /** A node's key file: its color's node ring, and the client and control rings. */
  readonly keys: KeySet;
  /**
   * Every node of the topology with its color, by topology id, so that a frame from a node
   * of another color is told from a stranger's. Default: this node and its peers.
   */
  readonly nodeColors?: ReadonlyMap<string, string>;
  /** Whether replayed frames are dropped (default true). Safety never depends on it. */
  readonly replayGuard?: boolean;
  /** This process's epoch, in every frame it sends; default: wall-clock milliseconds at start. */
  readonly epoch?: number;
  readonly log: NodeLog;
  readonly transport: Transport;
  /** Records recovered from the log, per cell, in write order. */
  readonly recovered?: ReadonlyMap<string, readonly DurableRecord[]>;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly heartbeatMs?: number;
  readonly livenessTimeoutMs?: number;
  /** Called once if the node cannot go on (a failed fsync); the process should exit. */
  readonly onFatal?: (error: unknown) => void;
  /** Receives a line for every cell message in and out, for debugging. */
  readonly trace?: (line: string) => void;
  /** Told when a peer sends a message for a cell this node does not host (a node that lost its log learns its cells this way). */
  readonly onUnknownCell?: (cell: string, from: string) => void;
  /** The identity this node had before its log was damaged: frames peers still address to it name cells to rejoin. */
  readonly formerIdentity?: string;
  /**
   * Every node address of the topology ("host:port"), of every color: a frame that fails
   * the MAC is answered (see `answerUnverified`) only when it came from elsewhere, so two
   * nodes can never keep answering each other. Default: the peers' addresses.
   */
  readonly nodeAddresses?: ReadonlySet<string>;
  /** This node's address as its peers and clients reach it (gossiped); default: the transport's local endpoint. */
  readonly address?: string;
  /** Milliseconds since the epoch, for discovery's stamps (default Date.now). */
  readonly wallClock?: () => number;
  /** Discovery's gossip round (default 1 s). */
  readonly discoveryRoundMs?: number;
  /**
   * How many of this node's replicas may be candidates at once (default
   * `electionsInFlightMaxDefault`). A replica past it refuses to start an election: a
   * client's request is answered `overloaded` and retried after a jittered backoff, a hole
   * waits for its next deadline. Elections finish, and free their places, at the pace the
   * peers answer, so a node that inherits thousands of cells campaigns for them in waves
   * its peers can keep up with, sharing frames and fsyncs within each wave.
   */
  readonly electionsInFlightMax?: number;
  /** How long a suspected peer has to refute before gossip calls it dead (default 6 s). */
  readonly discoverySuspectTimeoutMs?: number;
  /** How clients' frames wait to be stepped when the node is busy (admission.ts). */
  readonly admission?: AdmissionOptions;
}

/** Candidates a node runs at once by default: a wave's prepares fill a few frames per peer. */
export const electionsInFlightMaxDefault = 64;

/** Frames failing the MAC that a node answers per second at most (an answer costs two MACs). */
const unverifiedAnswersPerSecond = 10;

const clientsMax = 10_000;
/** The longest a node steps clients' frames before it reads its socket again, in ms. */
const sliceMs = 4;
/** Replies that reveal no vote and no applied state: they may leave before any record is durable. */
const immediateOutcomes: ReadonlySet<string> = new Set(["overloaded", "redirect"]);
/** Requests whose arrival time is kept to measure their latency; beyond it the oldest are forgotten. */
const timedRequestsMax = 10_000;

export class PhysaliaNode {
  readonly id: string;
  readonly metrics = new Metrics();
  private readonly replicas = new Map<string, Replica>();
  /**
   * Cells recovered as nothing but a promise and a snapshot (what compaction leaves of an
   * idle cell), kept as those records, packed, until their first message: a built replica
   * (its state's maps, its bookkeeping) holds several kilobytes, its records a few hundred
   * bytes, and most cells of a large node are idle. A replica rebuilt later is the one recovery
   * would have built at start: `Replica.recover` depends on nothing but the records.
   */
  private readonly dormant = new Map<string, number>();
  /** Where dormant cells' records are packed (dormant.ts); a cell's handle is its value in `dormant`. */
  private readonly arena = new DormantArena();
  /** The cells whose replica here is a candidate now (see `electionsInFlightMax`). */
  private readonly campaigning = new Set<string>();
  private readonly electionsInFlightMax: number;
  /** Smoothed time one flush takes (its records' sync included), and how late timers fire: see `retransmitEstimateMs`. */
  private flushMs = 0;
  private timerLateMs = 0;
  private readonly deadlines = new Deadlines();
  private readonly reassembler = new Reassembler();
  private readonly lastHeard = new Map<string, number>();
  private readonly peerIdentities = new Map<string, string>();
  /** Where each client was last heard from and under which role, least recently used first. */
  private readonly clients = new Map<string, { readonly endpoint: Endpoint; readonly role: Role; readonly cell: string | null }>();
  /** When each request waiting for its final answer arrived, by client and request id (for physalia_request_duration_seconds). */
  private readonly requestArrivals = new Map<string, number>();
  /** Clients' frames, authenticated and fresh, waiting to be stepped (admission.ts). */
  private readonly admission: Admission<{ readonly frame: Frame; readonly from: Endpoint }>;
  private sliceScheduled = false;
  /** Replies that need no sync, sent together at the next turn of the event loop (see `sendImmediate`). */
  private immediate: Outgoing[] = [];
  private immediateScheduled = false;
  private readonly stamper: Stamper;
  private readonly guard: ReplayGuard | null;
  private readonly facts: NodeFacts;
  private readonly nodeRing: KeyRing;
  private effects: Effects = createEffects();
  private flushing = false;
  private flushAgain = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private messageId = 0;
  private failed: unknown = null;
  private stopped = false;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly env: ReplicaEnv;
  private readonly livenessTimeoutMs: number;
  private readonly nodeAddresses: ReadonlySet<string>;
  private unverifiedTokens = unverifiedAnswersPerSecond;
  /** The node's discovery (node/discovery.ts). */
  readonly discovery: NodeDiscovery;
  private unverifiedRefilledAt = 0;

  /** The options, but for `recovered`: a node keeps no reference to the records it was built from (a million cells' worth). */
  private readonly options: Omit<NodeOptions, "recovered">;

  constructor(options: NodeOptions) {
    const { recovered: _recovered, ...kept } = options;
    this.options = kept;
    this.id = options.id;
    this.now = options.now ?? (() => performance.now());
    this.random = options.random ?? Math.random;
    this.livenessTimeoutMs = options.livenessTimeoutMs ?? 600;
    this.nodeAddresses = options.nodeAddresses ?? new Set([...options.peers.values()].map((e) => `${e.host}:${e.port}`));
    this.electionsInFlightMax = options.electionsInFlightMax ?? electionsInFlightMaxDefault;
    this.admission = new Admission(options.admission);
    assert(Number.isInteger(this.electionsInFlightMax) && this.electionsInFlightMax >= 1, "electionsInFlightMax is a positive integer");
    this.env = {
      isAlive: (peer) => this.isAlive(peer),
      jitter: () => this.random(),
      mayCampaign: () => this.mayCampaign(),
      retransmitMs: () => this.retransmitEstimateMs,
    };
    const { keys } = options;
    const nodeRing = keys.ring("node");
    assert(nodeRing !== undefined && keys.color !== null, "a node needs a node key file");
    assert(keys.ring("client") !== undefined && keys.ring("control") !== undefined, "a node needs the client and control rings");
    this.nodeRing = nodeRing;
    const color = keys.color;
    const colors = options.nodeColors ?? new Map([[nodePart(this.id), color], ...[...options.peers.keys()].map((p): [string, string] => [nodePart(p), color])]);
    assert(colors.get(nodePart(this.id)) === color, "a node's key file must be of its own color");
    this.facts = { color, colorOf: (node) => colors.get(node) };
    this.stamper = new Stamper(options.epoch ?? freshEpoch());
    this.guard = options.replayGuard === false ? null : new ReplayGuard();
    for (const [cell, records] of options.recovered ?? []) {
      const handle = isDormant(records) ? this.arena.put(records) : null;
      if (handle !== null) this.dormant.set(cell, handle);
      else this.replicas.set(cell, Replica.recover({ cell, self: this.id, env: this.env }, records));
    }
    this.discovery = new NodeDiscovery({
      identity: this.id, address: options.address ?? addressOfEndpoint(options.transport.local), peers: options.peers,
      wallClock: options.wallClock ?? Date.now, random: this.random, replicaOf: (cell) => this.replicas.get(cell),
      dormantOf: (cell) => this.dormant.get(cell), arena: this.arena,
      toPeer: (to, endpoint, wire) => this.sendDiscovery(to, { endpoint, ring: this.nodeRing }, wire),
      toClient: (client, wire) => {
        const known = this.clients.get(client);
        const ring = known === undefined ? undefined : this.options.keys.ring(known.role);
        if (known === undefined || ring === undefined) this.metrics.drop("unknownDestination");
        else this.sendDiscovery(client, { endpoint: known.endpoint, ring }, [wire]);
      },
      ...(options.discoveryRoundMs === undefined ? {} : { roundMs: options.discoveryRoundMs }),
      ...(options.discoverySuspectTimeoutMs === undefined ? {} : { suspectTimeoutMs: options.discoverySuspectTimeoutMs }),
    });
    for (const cell of this.replicas.keys()) this.discovery.host(cell);
    for (const cell of this.dormant.keys()) this.discovery.host(cell);
    options.transport.onReceive((bytes, from) => this.receive(bytes, from));
  }

  start(): void {
    const heartbeatMs = this.options.heartbeatMs ?? 150;
    this.heartbeat = setInterval(() => this.sendHeartbeats(), heartbeatMs);
    this.sendHeartbeats();
    for (const [cell, replica] of this.replicas) this.deadlines.set(cell, replica.nextDeadline());
    this.scheduleDiscovery();
    this.armTimer();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    if (this.timer !== null) clearTimeout(this.timer);
    this.options.transport.close();
    await this.options.log.close();
  }

  get cellCount(): number {
    return this.replicas.size + this.dormant.size;
  }

  /** Cells kept as their records until their first message (see `dormant`). */
  get dormantCount(): number {
    return this.dormant.size;
  }

  replica(cell: string): Replica | undefined {
    return this.replicaFor(cell);
  }

  /**
   * A cell's replica, to be read only: the built one, or for a dormant cell one built for the
   * look and dropped (a hello, a status page: waking would undo dormancy for a look). Nothing
   * is stepped on it. Discovery's audit, which visits every cell in turn, reads a dormant
   * cell's summary instead (DormantArena.summary): it builds nothing.
   */
  private lookAt(cell: string): Replica | undefined {
    const live = this.replicas.get(cell);
    if (live !== undefined) return live;
    const handle = this.dormant.get(cell);
    return handle === undefined ? undefined : Replica.recover({ cell, self: this.id, env: this.env }, this.arena.get(handle));
  }

  /** The replica of a cell this node hosts, built from its records first if it was dormant. */
  private replicaFor(cell: string): Replica | undefined {
    const live = this.replicas.get(cell);
    if (live !== undefined) return live;
    const handle = this.dormant.get(cell);
    if (handle === undefined) return undefined;
    const replica = Replica.recover({ cell, self: this.id, env: this.env }, this.arena.get(handle));
    this.dormant.delete(cell);
    this.replicas.set(cell, replica);
    this.deadlines.set(cell, replica.nextDeadline());
    return replica;
  }

  /**
   * Whether a peer was heard from lately: by identity (a replica's view: the member that
   * voted), or by topology id (whatever incarnation it runs now).
   */
  isAlive(peer: string): boolean {
    const identity = hasIncarnation(peer) ? peer : this.peerIdentities.get(peer);
    const heard = identity === undefined ? undefined : this.lastHeard.get(identity);
    return heard !== undefined && this.now() - heard < this.livenessTimeoutMs;
  }

  /** The identity a peer last spoke with, by topology id. */
  peerIdentity(node: string): string | undefined {
    return this.peerIdentities.get(node);
  }

  /**
   * Rewrites the log as the minimal records of every replica. `write` (the log's compact)
   * pulls the records as it copies them, a chunk per turn of the event loop, so each
   * replica's records are taken when the copy reaches it: gathering a million replicas in
   * one pass stopped the node for 42.5 s. The log keeps accepting appends meanwhile and
   * writes them again after the copy; for a replica taken later than some of them, replay
   * meets those records after its snapshot, which it tolerates: a promise or a snapshot never
   * goes back, and a cell's last accept of a slot comes last either way.
   */
  async compact(write: (entries: Iterable<CellRecord | EncodedCellRecord>) => Promise<void>): Promise<void> {
    if (this.failed !== null || this.stopped) return;
    const { replicas, dormant, arena } = this;
    // Dormant cells first: a dormant cell's records are its compacted records, handed over as
    // the arena holds them (encoded: a million are copied, none decoded), and one woken while
    // the copy runs moves to `replicas`, which is walked after (a Map's iterator visits what is
    // added during the walk), so no cell is missed; one woken after it was taken is taken
    // twice, which replay tolerates.
    function* entries(): Generator<CellRecord | EncodedCellRecord> {
      for (const [cell, handle] of dormant) for (const encoded of arena.encoded(handle, cell)) yield { cell, encoded };
      for (const [cell, replica] of replicas) for (const record of replica.compactedRecords()) yield { cell, record };
    }
    try {
      await write(entries());
    } catch (error) {
      this.fail(error);
    }
  }

  /** The names of the first `max` cells this node hosts, in name order (for the dashboard). */
  cellNames(max: number): string[] {
    return [...this.replicas.keys(), ...this.dormant.keys()].sort().slice(0, max);
  }

  /** One cell's replica, as /status?cell=NAME shows it, with what discovery here says of the cell; null when neither knows it. */
  cellStatus(cell: string): Record<string, unknown> | null {
    const replica = this.lookAt(cell);
    const discovery = this.discovery.lookup(cell);
    if (replica === undefined) return discovery.status === "noSuchCell" ? null : { cell, role: null, discovery };
    return { cell, role: replica.role, leader: replica.leader, applied: replica.applied, members: replica.cellState?.latestMembers() ?? null, discovery };
  }

  status(): Record<string, unknown> {
    let leaders = 0;
    let busy = 0;
    for (const replica of this.replicas.values()) {
      if (replica.role === "leader") leaders++;
      if (replica.nextDeadline() !== null) busy++;
    }
    return {
      id: this.id,
      cells: this.cellCount,
      dormantCells: this.dormant.size,
      leaders,
      cellsWithWork: busy,
      peersAlive: [...this.options.peers.keys()].filter((p) => this.isAlive(p)),
      peersDown: [...this.options.peers.keys()].filter((p) => !this.isAlive(p)),
      failed: this.failed === null ? null : String(this.failed),
      discovery: this.discovery.status(),
    };
  }

  /** The labels on every series this node exports: its topology id and its color. */
  get metricLabels(): { readonly node: string; readonly color: string } {
    return { node: nodePart(this.id), color: this.options.keys.color ?? "" };
  }

  metricsText(): string {
    let leaders = 0;
    for (const replica of this.replicas.values()) if (replica.role === "leader") leaders++;
    return this.metrics.render(this.metricLabels, [
      ["physalia_cells_hosted", "Cells this node hosts a replica of.", this.cellCount],
      ["physalia_cells_dormant", "Hosted cells kept as their compacted records until their first message.", this.dormant.size],
      ["physalia_cells_leading", "Cells whose replica on this node leads.", leaders],
      ["physalia_cells_with_deadlines", "Cells whose replica asked for a timer (the others cost no CPU).", this.deadlines.size - (this.deadlines.has(discoveryDeadlineKey) ? 1 : 0)],
      ["physalia_peers", "Nodes of this node's color it talks to.", this.options.peers.size],
      ["physalia_peers_alive", "Peers heard from within the liveness timeout.", [...this.options.peers.keys()].filter((p) => this.isAlive(p)).length],
      ["physalia_clients_known", "Clients this node can answer (heard from lately; bounded).", this.clients.size],
      ["physalia_chunked_messages_pending", "Large messages partly received, waiting for their other chunks.", this.reassembler.pendingMessages],
      ["physalia_client_frames_waiting", "Clients' frames admitted and waiting to be stepped (admission.ts).", this.admission.size],
      ["physalia_client_frames_admissible", "Clients' frames the node admits at once: what it steps within its budget, by its measured pace.", this.admission.capacity],
      ...this.discovery.gauges(),
    ]);
  }

  // ---- receiving ----------------------------------------------------------------------

  // Every frame passes, in order: its MAC (nothing unauthenticated is parsed or stored), the
  // role check (who may send what, see wire/roles.ts), then the replay guard.
  private receive(bytes: Uint8Array, from: Endpoint): void {
    if (this.stopped || this.failed !== null) return;
    const now = this.now();
    // The receiver is checked after the MAC, so that a frame for this node's former identity
    // (see `formerIdentity`) can still tell which cells that identity was in.
    const framed = decodeFrame(bytes, this.options.keys, { bytesMax: limits.messageBytesMax });
    if (!framed.ok) {
      this.metrics.drop(framed.reason);
      if (framed.reason === "unknownKey" || framed.reason === "badMac") this.answerUnverified(from, now);
      return;
    }
    if (!isAddressedTo(framed.frame.receiver, this.id)) {
      if (framed.frame.kind === "frame" && framed.frame.role === "node" && framed.frame.receiver === this.options.formerIdentity) this.forFormerIdentity(framed.frame);
      this.metrics.drop("wrongReceiver");
      return;
    }
    if (framed.frame.kind === "frame") {
      this.receiveFrame(framed.frame, from, now);
      return;
    }
    const chunk = framed.frame;
    const allowed = authorizeChunkAtNode(chunk, this.facts);
    if (!allowed.ok) {
      this.metrics.drop(allowed.reason);
      return;
    }
    if (!this.fresh(chunk)) return;
    const result = this.reassembler.add(chunk.sender, chunk.body, now);
    if (result.kind === "rejected") this.metrics.drop(result.reason);
    if (result.kind !== "frame") return;
    const inner = decodeFrame(result.frame, this.options.keys, { receiver: this.id, bytesMax: limits.messageBytesMax });
    if (!inner.ok) this.metrics.drop(inner.reason);
    else if (inner.frame.kind !== "frame") this.metrics.drop("unexpectedChunk");
    else if (inner.frame.sender !== chunk.sender) this.metrics.drop("wrongSender");
    else this.receiveFrame(inner.frame, from, now);
  }

  // A peer's frame is stepped at once; a client's waits its turn (admission.ts), its stamp
  // checked now, in arrival order, so that only fresh frames take a place in the queue.
  private receiveFrame(frame: Frame, from: Endpoint, now: number): void {
    if (frame.role === "node") {
      this.stepFrame(frame, from, now, false);
      return;
    }
    if (!this.fresh(frame)) return;
    const offer = this.admission.offer(this.admissionKey(frame.sender), { frame, from }, now);
    if (offer === "admitted") {
      this.scheduleSlice();
      return;
    }
    this.metrics.count(this.metrics.admissionRefused, offer);
    this.refuseOverloaded(frame, from);
  }

  // ---- admission (admission.ts holds the queue) -----------------------------------------

  private scheduleSlice(): void {
    if (this.sliceScheduled) return;
    this.sliceScheduled = true;
    setImmediate(() => this.slice());
  }

  /**
   * Steps waiting client frames for up to `sliceMs`, round-robin by sender, then lets the
   * event loop read the socket (peers' frames first) before the next slice. The replies
   * and records of a slice share one flush.
   */
  private slice(): void {
    this.sliceScheduled = false;
    if (this.stopped || this.failed !== null) return;
    const started = this.now();
    let now = started;
    do {
      const next = this.admission.take();
      if (next === undefined) break;
      this.stepFrame(next.item.frame, next.item.from, now, true);
      now = this.now();
    } while (now - started < sliceMs);
    this.admission.observe(now);
    if (this.admission.size > 0) this.scheduleSlice();
    this.sendImmediate();
  }

  /**
   * Replies that reveal no vote and no applied state (`overloaded`, `redirect`) need not
   * wait for a sync: those the last slice made, and the refusals of frames not admitted,
   * leave together once per turn of the event loop, one frame per client, instead of one
   * datagram per refusal or after other cells' fsyncs.
   */
  private sendImmediate(): void {
    const messages = this.effects.messages;
    let kept = 0;
    for (const m of messages) {
      if (m.message.kind === "reply" && immediateOutcomes.has(m.message.outcome.kind)) this.immediate.push(m);
      else messages[kept++] = m;
    }
    messages.length = kept;
    this.scheduleImmediate();
  }

  private scheduleImmediate(): void {
    if (this.immediate.length === 0 || this.immediateScheduled) return;
    this.immediateScheduled = true;
    setImmediate(() => {
      this.immediateScheduled = false;
      if (this.stopped || this.failed !== null) return;
      const batch = this.immediate;
      this.immediate = [];
      this.send(batch);
    });
  }

  /** A client frame the node will not step now: each request in it is answered `overloaded`, before its body is decoded or checked. */
  private refuseOverloaded(frame: Frame, from: Endpoint): void {
    if (!authorizeAtNode({ role: frame.role, sender: frame.sender, messages: [] }, this.facts).ok) return;
    const refusals = overloadedFor(frame.body, frame.sender);
    if (refusals.length === 0) return;
    this.rememberClient(frame.sender, from, frame.role);
    for (const { cell, client, id, outcome } of refusals) this.immediate.push({ to: frame.sender, cell, message: { kind: "reply", client, id, outcome }, afterSync: false });
    this.scheduleImmediate();
  }

  /** `cell`: the cell its last stepped frame was for, which its next frames wait under (admission); unchanged when null. */
  private rememberClient(sender: string, endpoint: Endpoint, role: Role, cell: string | null = null): void {
    const known = this.clients.get(sender);
    this.clients.delete(sender);
    this.clients.set(sender, { endpoint, role, cell: cell ?? known?.cell ?? null });
    if (this.clients.size > clientsMax) this.clients.delete(this.clients.keys().next().value as string);
  }

  /**
   * The queue a client's frame waits in: its cell's, as its last stepped frame named it
   * (clients keep to their cell: a session is a cell's), else its own until one is stepped.
   * So a cell flooded by many clients shares the node as one cell, not as many.
   */
  private admissionKey(sender: string): string {
    const cell = this.clients.get(sender)?.cell;
    return cell === undefined || cell === null ? `client\u0000${sender}` : `cell\u0000${cell}`;
  }

  // ---- stepping a frame ---------------------------------------------------------------

  /** Decodes, authorizes and steps one authenticated frame; `freshChecked` when its stamp was checked on arrival. */
  private stepFrame(frame: Frame, from: Endpoint, now: number, freshChecked: boolean): void {
    const body = decodeBody(frame.body);
    if (!body.ok) {
      this.metrics.drop(body.reason);
      if (frame.role !== "node") this.refuseUnreadable(frame, body.detail, from);
      return;
    }
    const allowed = authorizeAtNode({ role: frame.role, sender: frame.sender, messages: body.messages, discovery: body.discovery }, this.facts);
    if (!allowed.ok) {
      this.metrics.drop(allowed.reason);
      return;
    }
    if (!freshChecked && !this.fresh(frame)) return;
    this.metrics.framesReceived++;
    if (frame.role !== "node") this.metrics.clientFramesReceived++;
    const sender = frame.sender;
    if (frame.role === "node") {
      if (this.peerIdentities.get(nodePart(sender)) !== sender) {
        const previous = this.peerIdentities.get(nodePart(sender));
        if (previous !== undefined) this.lastHeard.delete(previous);
        this.peerIdentities.set(nodePart(sender), sender);
      }
      this.lastHeard.set(sender, now);
    }
    else this.rememberClient(sender, from, frame.role, body.messages[0]?.cell ?? null);
    for (const envelope of body.messages) this.dispatch(sender, envelope, now);
    if (body.discovery.length > 0) {
      for (const part of body.discovery) this.discovery.receive(sender, frame.role, part);
      this.scheduleDiscovery();
      this.armTimer();
    }
    this.scheduleFlush();
  }

  /**
   * A frame that fails the MAC is dropped unread. So that a client with the wrong key file
   * learns that at once rather than at its deadline, the node answers with an empty frame
   * signed under the client ring and another under the control ring: a client holding
   * either key verifies one and ignores it; one that holds neither cannot verify them, and
   * that is its sign (client.ts, KeysRejectedError). Nothing of the dropped frame is read,
   * the answer is no larger than a small request, it goes to no node address, and a token
   * bucket bounds it to a few a second.
   */
  private answerUnverified(from: Endpoint, now: number): void {
    if (this.nodeAddresses.has(`${from.host}:${from.port}`)) return;
    this.unverifiedTokens = Math.min(unverifiedAnswersPerSecond, this.unverifiedTokens + ((now - this.unverifiedRefilledAt) / 1000) * unverifiedAnswersPerSecond);
    this.unverifiedRefilledAt = now;
    if (this.unverifiedTokens < 1) return;
    this.unverifiedTokens--;
    for (const role of ["client", "control"] as const) {
      const ring = this.options.keys.ring(role);
      if (ring !== undefined) this.options.transport.send(encodeMessages(ring, { sender: this.id, receiver: "unverified", stamp: this.stamper.next(), messages: [] }), from);
    }
  }

  /** An authentic client frame the decoder refused: answer its requests with the cell's typed rejection (refusal.ts). */
  private refuseUnreadable(frame: Frame, detail: string, from: Endpoint): void {
    // A client's frame had its stamp checked on arrival (receiveFrame).
    if (!authorizeAtNode({ role: frame.role, sender: frame.sender, messages: [] }, this.facts).ok) return;
    const refusals = refusalsFor(frame.body, frame.sender, detail);
    if (refusals.length === 0) return;
    this.rememberClient(frame.sender, from, frame.role);
    for (const { cell, client, id, outcome } of refusals) this.reply(frame.sender, cell, client, id, outcome);
    this.scheduleFlush();
  }

  /** A peer still takes this node for its former identity: every cell it names is one to rejoin. */
  private forFormerIdentity(frame: Frame): void {
    const body = decodeBody(frame.body);
    if (!body.ok || !authorizeAtNode({ role: frame.role, sender: frame.sender, messages: body.messages }, this.facts).ok) return;
    for (const { cell } of body.messages) if (!this.replicas.has(cell) && !this.dormant.has(cell)) this.options.onUnknownCell?.(cell, frame.sender);
  }

  /** The replay guard: nodes are remembered by topology id for good, clients in a bounded table. */
  private fresh(frame: Frame): boolean {
    if (this.guard === null) return true;
    const pinned = frame.role === "node";
    if (this.guard.admit(pinned ? nodePart(frame.sender) : frame.sender, frame.stamp, pinned) === "fresh") return true;
    this.metrics.drop("replayed");
    return false;
  }

  private dispatch(sender: string, { cell, message }: Envelope, now: number): void {
    this.options.trace?.(`${now.toFixed(1)} ${sender} -> ${this.id} ${cell} ${describeMessage(message)}`);
    if (message.kind === "hello" || message.kind === "create" || message.kind === "join") {
      this.nodeRequest(sender, cell, message);
      return;
    }
    const replica = this.replicaFor(cell);
    if (replica === undefined) {
      this.metrics.drop("unknownCell");
      if (message.kind !== "request" && message.kind !== "reply" && this.options.peers.has(nodePart(sender))) this.options.onUnknownCell?.(cell, sender);
      if (message.kind === "request") {
        this.reply(sender, cell, message.client, message.id, { kind: "unavailable", reason: `cell ${cell} is not hosted on ${this.id}` });
        this.discovery.notHosted(sender, cell);
      }
      return;
    }
    // A replica this node keeps after the cell removed it answers for itself; discovery adds where the cell went.
    if (message.kind === "request" && !this.discovery.hosts(cell)) this.discovery.notHosted(sender, cell);
    if (message.kind === "request") {
      this.requestArrivals.set(`${sender}\u0000${message.id}`, now);
      if (this.requestArrivals.size > timedRequestsMax) this.requestArrivals.delete(this.requestArrivals.keys().next().value as string);
    }
    const before = replica.role;
    replica.step(sender, message, now, this.effects);
    this.observeRole(cell, before, replica.role);
    this.deadlines.set(cell, replica.nextDeadline());
    this.armTimer();
  }

  /**
   * How long this node's replicas first wait for a peer's answer before sending a prepare or
   * an accept again (ReplicaEnv.retransmitMs; the replica keeps it within its limits). A
   * peer answers after the sync in progress and then its own (two flushes), once its event
   * loop reaches the frame; its answer waits as long here. Peers of one colony share the
   * load, so this node's own flushes and timer lateness stand for theirs, doubled for margin.
   */
  get retransmitEstimateMs(): number {
    return 2 * (2 * this.flushMs + 2 * this.timerLateMs);
  }

  /** Whether one more replica may start an election now (ReplicaEnv.mayCampaign). */
  private mayCampaign(): boolean {
    if (this.campaigning.size < this.electionsInFlightMax) return true;
    this.metrics.electionsPaced++;
    return false;
  }

  /** Counts elections and leader changes from a replica's role before and after a step, and keeps `campaigning`. */
  private observeRole(cell: string, before: Replica["role"], after: Replica["role"]): void {
    // Every role change passes here, so a cell is in `campaigning` exactly while it campaigns.
    if (after === "candidate") this.campaigning.add(cell);
    else if (before === "candidate") this.campaigning.delete(cell);
    if (before === after) return;
    if (after === "candidate") this.metrics.elections++;
    if (after === "leader") this.metrics.count(this.metrics.leaderChanges, "gained");
    if (before === "leader") this.metrics.count(this.metrics.leaderChanges, "lost");
  }

  /** What this node says of its replica of a cell. */
  private hostedOf(replica: Replica): HostedCell {
    return { incarnation: replica.incarnation ?? "", members: replica.cellState?.latestMembers() ?? [], applied: replica.applied };
  }

  /**
   * Hello, create and join: answered by the node. A create or join never replaces a replica
   * the node hosts (it answers `exists`), and a create is refused unless it names this node
   * by its current identity: a creator that spoke to this data directory's predecessor
   * must not make a stranger of it a member.
   */
  private nodeRequest(sender: string, cell: string, request: NodeMessage): void {
    const answer = (outcome: ReplyOutcome) => this.reply(sender, cell, request.client, request.id, outcome);
    // Read only (a hello, or `exists`): a dormant cell is looked at, not woken.
    const existing = this.lookAt(cell);
    if (request.kind === "hello") {
      answer({ kind: "node", identity: this.id, hosted: existing === undefined ? null : this.hostedOf(existing) });
      return;
    }
    if (existing !== undefined) {
      answer({ kind: "exists", hosted: this.hostedOf(existing) });
      return;
    }
    let replica: Replica;
    if (request.kind === "create") {
      const genesis = request.genesis;
      const problem = genesisProblem(genesis) ??
        (!genesis.members.includes(this.id) ? `${this.id} is not among the members ${genesis.members.join(", ")} (a node that lost its data directory comes back with a new identity)` : null) ??
        (genesis.members.some((m) => nodePart(m) !== nodePart(this.id) && !this.options.peers.has(nodePart(m))) ? "a member is not a node of this colony and color" : null);
      if (problem !== null) {
        answer({ kind: "unavailable", reason: `Cannot create cell ${cell}: ${problem}` });
        return;
      }
      replica = new Replica({ cell, self: this.id, env: this.env, genesis });
    } else {
      replica = new Replica({ cell, self: this.id, env: this.env, joining: request.incarnation });
    }
    this.replicas.set(cell, replica);
    if (request.kind === "create") this.discovery.created(cell);
    else this.discovery.host(cell);
    // The record that makes the node host the replica after a restart is durable before the answer leaves.
    const record = replica.genesisRecord() ?? replica.joinedRecord();
    assert(record !== null, "a new replica has a genesis or a joined record");
    this.effects.records.push({ cell, record });
    answer({ kind: request.kind === "create" ? "created" : "joined" });
  }

  private reply(client: string, cell: string, name: string, id: number, outcome: ReplyOutcome): void {
    // "created" and "joined" stand for the record that makes this node host the replica.
    const afterSync = outcome.kind === "created" || outcome.kind === "joined";
    this.effects.messages.push({ to: client, cell, message: { kind: "reply", client: name, id, outcome }, afterSync });
  }

  // ---- time ---------------------------------------------------------------------------

  /** Puts discovery's next deadline (wall clock) into the deadline heap (node clock). */
  private scheduleDiscovery(): void {
    if (this.stopped) return;
    const inMs = this.discovery.nextDeadlineMs() - (this.options.wallClock ?? Date.now)();
    this.deadlines.set(discoveryDeadlineKey, this.now() + Math.max(0, inMs));
  }

  private armTimer(): void {
    const at = this.deadlines.earliest();
    if (at === null || at >= this.timerAt || this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, at - this.now()));
  }

  private onTimer(): void {
    this.timer = null;
    const scheduledAt = this.timerAt;
    this.timerAt = Infinity;
    if (this.stopped || this.failed !== null) return;
    const now = this.now();
    this.timerLateMs = smooth(this.timerLateMs, Math.max(0, now - scheduledAt));
    for (const cell of this.deadlines.due(now)) {
      if (cell === discoveryDeadlineKey) {
        this.discovery.tick();
        this.scheduleDiscovery();
        continue;
      }
      const replica = this.replicas.get(cell);
      if (replica === undefined) continue;
      const before = replica.role;
      replica.tick(now, this.effects);
      this.observeRole(cell, before, replica.role);
      this.deadlines.set(cell, replica.nextDeadline());
    }
    this.armTimer();
    this.scheduleFlush();
  }

  private sendHeartbeats(): void {
    if (this.stopped || this.failed !== null) return;
    // Partial chunked messages expire on this timer too, not only when the next chunk arrives.
    this.reassembler.sweep(this.now());
    // An empty, signed frame: proof of life for the pair, whatever cells they share.
    for (const [peer, endpoint] of this.options.peers) {
      if (peer === this.id) continue;
      this.options.transport.send(encodeMessages(this.nodeRing, { sender: this.id, receiver: peer, stamp: this.stamper.next(), messages: [] }), endpoint);
    }
  }

  // ---- persist, then send -------------------------------------------------------------

  private scheduleFlush(): void {
    if (this.effects.records.length === 0 && this.effects.messages.length === 0 && this.effects.applied.length === 0) return;
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    queueMicrotask(() => void this.flush());
  }

  private async flush(): Promise<void> {
    try {
      do {
        this.flushAgain = false;
        const startedAt = this.now();
        const batch = this.effects;
        this.effects = createEffects();
        this.metrics.slotsApplied += batch.applied.length;
        if (batch.applied.length > 0) this.discovery.applied(batch.applied);
        // What depends on no record of ours leaves now, so our fsync and our peers' overlap.
        this.send(batch.messages.filter((m) => !m.afterSync));
        const later = batch.messages.filter((m) => m.afterSync);
        if (batch.records.length > 0) {
          // A chosen record is knowledge, not a vote: a quorum's durable accepts already hold
          // the value, and a node that loses it learns it again (a leader by phase 1). So a
          // batch of chosen records that no message waits for is appended and not synced; the
          // next sync covers it, and a crash before that loses only what can be relearnt (the
          // log's recovery drops an unsynced tail as torn). Every follower used to sync twice
          // a slot, once for the accept and once for the commit, on the disk the next accept
          // waits for.
          if (later.length === 0 && batch.records.every((r) => r.record.kind === "chosen")) this.appendUnsynced(batch.records);
          else await this.persist(batch.records);
        }
        // A leader's acknowledgement of its own vote comes back to it now that the vote is durable.
        const own = later.filter((m) => m.to === this.id);
        if (own.length > 0) {
          const now = this.now();
          for (const { cell, message } of own) {
            const replica = this.replicas.get(cell);
            if (replica === undefined) continue;
            const before = replica.role;
            replica.step(this.id, message, now, this.effects);
            this.observeRole(cell, before, replica.role);
            this.deadlines.set(cell, replica.nextDeadline());
          }
          this.armTimer();
          if (this.effects.records.length > 0 || this.effects.messages.length > 0) this.flushAgain = true;
        }
        this.send(own.length > 0 ? later.filter((m) => m.to !== this.id) : later);
        clearEffects(batch);
        this.flushMs = smooth(this.flushMs, this.now() - startedAt);
      } while (this.flushAgain && this.failed === null && !this.stopped);
    } catch (error) {
      this.fail(error);
    } finally {
      this.flushing = false;
    }
  }

  private appendUnsynced(records: readonly CellRecord[]): void {
    this.options.log.append(records);
    this.metrics.recordsWritten += records.length;
    this.metrics.recordsUnsynced += records.length;
  }

  private async persist(records: readonly CellRecord[]): Promise<void> {
    this.options.log.append(records);
    const started = this.now();
    await this.options.log.sync();
    this.metrics.syncs++;
    this.metrics.recordsWritten += records.length;
    this.metrics.syncLatency.observeMs(this.now() - started);
  }

  private fail(error: unknown): void {
    if (this.failed !== null) return;
    // A failed fsync leaves the log's state unknown: never retry, stop answering, exit.
    this.failed = error;
    this.options.onFatal?.(error);
  }

  private send(messages: readonly Outgoing[]): void {
    const byDestination = new Map<string, Envelope[]>();
    const now = this.now();
    for (const { to, cell, message } of messages) {
      if (message.kind === "reply") this.observeReply(to, message, now);
      else this.metrics.count(this.metrics.messagesSent, message.kind);
      if (message.kind === "teach") this.metrics.count(this.metrics.teaching, message.snapshot === undefined ? "entries" : "snapshot");
      let list = byDestination.get(to);
      if (list === undefined) byDestination.set(to, (list = []));
      list.push({ cell, message });
    }
    if (this.options.trace !== undefined) {
      const now = this.now().toFixed(1);
      for (const { to, cell, message } of messages) this.options.trace(`${now} ${this.id} -> ${to} ${cell} ${describeMessage(message)}`);
    }
    for (const [to, envelopes] of byDestination) {
      // Peers get frames under the node key; a client gets them under the key it spoke with.
      const peer = this.options.peers.get(to) ?? (hasIncarnation(to) ? this.options.peers.get(nodePart(to)) : undefined);
      const client = peer === undefined ? this.clients.get(to) : undefined;
      const ring = peer !== undefined ? this.nodeRing : client !== undefined ? this.options.keys.ring(client.role) : undefined;
      const endpoint = peer ?? client?.endpoint;
      if (endpoint === undefined || ring === undefined) {
        this.metrics.drop("unknownDestination");
        continue;
      }
      this.sendFrames(to, { endpoint, ring }, envelopes);
    }
  }

  private observeReply(to: string, reply: Extract<Outgoing["message"], { kind: "reply" }>, now: number): void {
    const outcome = reply.outcome;
    this.metrics.reply(outcome.kind);
    if (outcome.kind === "done") {
      if (outcome.result.status === "rejected") this.metrics.reject(outcome.result.reason);
      else this.metrics.commandsCommitted++;
    }
    const key = `${to}\u0000${reply.id}`;
    const arrived = this.requestArrivals.get(key);
    if (arrived === undefined) return;
    // A redirect or a refusal to wait is not the request's answer: only the final one is timed.
    if (outcome.kind === "done" || outcome.kind === "read") this.metrics.requestLatency.observeMs(now - arrived);
    if (outcome.kind !== "overloaded") this.requestArrivals.delete(key);
  }

  /** Discovery messages in a frame of their own; one too large for a datagram is chunked. */
  private sendDiscovery(to: string, via: { readonly endpoint: Endpoint; readonly ring: KeyRing }, wire: readonly unknown[]): void {
    const frame = encodeMessages(via.ring, { sender: this.id, receiver: to, stamp: this.stamper.next(), messages: [], discovery: wire, bytesMax: limits.messageBytesMax });
    this.metrics.framesSent++;
    if (frame.length <= limits.frameBytesMax) {
      this.options.transport.send(frame, via.endpoint);
      return;
    }
    this.messageId = (this.messageId + 1) >>> 0;
    for (const chunk of splitFrame(frame, { ring: via.ring, sender: this.id, receiver: to, stamper: this.stamper, messageId: this.messageId })) this.options.transport.send(chunk, via.endpoint);
  }

  /** Packs envelopes into frames that fit a datagram; a single oversized one is chunked. */
  private sendFrames(to: string, via: { readonly endpoint: Endpoint; readonly ring: KeyRing }, envelopes: readonly Envelope[]): void {
    const { endpoint, ring } = via;
    const frame = encodeMessages(ring, { sender: this.id, receiver: to, stamp: this.stamper.next(), messages: envelopes, bytesMax: limits.messageBytesMax });
    if (frame.length <= limits.frameBytesMax) {
      this.options.transport.send(frame, endpoint);
      this.metrics.framesSent++;
      return;
    }
    if (envelopes.length > 1) {
      const half = envelopes.length >> 1;
      this.sendFrames(to, via, envelopes.slice(0, half));
      this.sendFrames(to, via, envelopes.slice(half));
      return;
    }
    this.messageId = (this.messageId + 1) >>> 0;
    const chunks = splitFrame(frame, { ring, sender: this.id, receiver: to, stamper: this.stamper, messageId: this.messageId });
    for (const chunk of chunks) this.options.transport.send(chunk, endpoint);
    this.metrics.framesSent++;
  }
}

assert(limits.frameBytesMax < limits.messageBytesMax, "chunking needs messages larger than frames");

/** An exponentially weighted moving average: each sample moves it a fifth of the way. */
function smooth(average: number, sample: number): number {
  return average + (sample - average) / 5;
}

/**
 * Whether a cell's recovered records leave its replica with nothing to do until a message
 * comes: what compaction leaves of an idle cell (at most a promise, and a snapshot), or a
 * genesis never used. (An empty replica that joined has a learn to retry: it is built.)
 */
function isDormant(records: readonly DurableRecord[]): boolean {
  if (records.length === 1) return records[0]?.kind === "snapshot" || records[0]?.kind === "genesis";
  return records.length === 2 && records[0]?.kind === "promise" && records[1]?.kind === "snapshot";
}
