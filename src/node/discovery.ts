// The node's side of discovery: it drives one DiscoveryNode (src/discovery, pure) with the
// wall clock, the frames that carry gossip and lookups, and what the node's replicas know.
//
//  - Gossip travels in the node's own signed frames (a body's `d`, see wire/schema.ts), under
//    the node key, to the address each peer's gossiped record names; lookups come from
//    clients under their keys and are answered under the same key, as are the control
//    plane's requests for the peer table (the control key only: src/control/gossipview.ts).
//  - The node hosts a cell from the moment it creates, joins or recovers its replica; each
//    member pushes its view at creation, the leader pushes when the cell applies a membership
//    change or it takes over, and the batched refresh (DiscoveryNode's audit, a bounded batch
//    a round) pushes every hosted cell in turn. There is no per-cell timer: the one deadline
//    of this module sits in the node's deadline heap under a key no cell can have.
//  - A replica whose latest membership no longer names this node leaves: the node keeps a
//    forwarding pointer with the members it knew, and answers requests for that cell, as
//    for any cell it does not host, with what discovery says (see `notHosted`).
//
// Discovery's clock is the wall clock (Date.now): entries are stamped and expire by it, and
// nodes compare stamps, so it must be the same clock in every process (to within the
// skew bound), which the node's monotonic clock is not.

import { AssertionError } from "../core/assert.ts";
import type { SnapshotSummary } from "../core/cellstate.ts";
import type { AppliedEntry } from "../core/effects.ts";
import type { Replica } from "../core/replica.ts";
import { type CellReport, DiscoveryNode, type Outgoing, discoveryLimits, encodeMessage, isIdentity } from "../discovery/mod.ts";
import { Rng, seedMax } from "../random.ts";
import type { Endpoint } from "../transport/transport.ts";
import type { Role } from "../wire/keyring.ts";
import type { DiscoveryPart } from "../wire/schema.ts";
import type { DormantArena } from "./dormant.ts";

/**
 * The key of discovery's deadline in the node's deadline heap. A lone surrogate never
 * decodes from CBOR text (invalid UTF-8 becomes U+FFFD), so no cell can be named so.
 */
export const discoveryDeadlineKey = "\uD800discovery";

export interface NodeDiscoveryOptions {
  /** This node's identity, `nodeId~incarnation`. */
  readonly identity: string;
  /** This node's address as peers and clients reach it, "host:port". */
  readonly address: string;
  /** The other nodes of its color, by topology id: the seeds. */
  readonly peers: ReadonlyMap<string, Endpoint>;
  /** Milliseconds since the epoch. */
  readonly wallClock: () => number;
  /** A number in [0, 1): seeds discovery's own generator. */
  readonly random: () => number;
  /** The built replica of a hosted cell, to be read only (undefined for a dormant cell). */
  readonly replicaOf: (cell: string) => Replica | undefined;
  /**
   * A dormant cell's handle in `arena` (node/dormant.ts), undefined for any other. What it
   * reports is read from its snapshot's header, so that the audit of a million idle cells
   * decodes no sessions or keys and builds nothing, and the arena keeps the memo by which
   * the audit skips a cell whose push would change nothing again.
   */
  readonly dormantOf: (cell: string) => number | undefined;
  readonly arena: DormantArena;
  /** Sends discovery messages to a peer under the node key. */
  readonly toPeer: (nodeId: string, endpoint: Endpoint, wire: readonly unknown[]) => void;
  /** Sends a lookup answer to a client under the key it spoke with. */
  readonly toClient: (client: string, wire: unknown) => void;
  readonly roundMs?: number;
  /** A suspected peer that does not refute within this is dead (default 6 s; tests shorten it). */
  readonly suspectTimeoutMs?: number;
}

export interface NodeDiscoveryStats {
  gossipReceived: number;
  lookupsAnswered: number;
  /** Peer tables sent to the control plane (pages of them). */
  peersAnswered: number;
  notHostedAnswers: number;
  pushes: number;
  /** Audits of dormant cells skipped by their memo: the same push would have changed nothing. */
  auditsSkipped: number;
  leaves: number;
  /** Discovery messages refused, by reason (the discovery layer's typed reasons). */
  readonly refused: Record<string, number>;
}

/** "host:port" or "[v6]:port" as an endpoint; null for anything else. */
export function endpointOfAddress(address: string): Endpoint | null {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(address);
  if (match === null) return null;
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) return null;
  return { host: (match[1] ?? match[2]) as string, port };
}

/** "host:port", with brackets around an IPv6 host. */
export function addressOfEndpoint(endpoint: Endpoint): string {
  return endpoint.host.includes(":") ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}`;
}

function configApplied(entry: AppliedEntry): boolean {
  if (entry.value.kind !== "batch") return false;
  return entry.value.commands.some((command, i) => command.op.kind === "config" && entry.executed[i] === true);
}

function reportOfSummary(cell: string, summary: SnapshotSummary, leader: string | null, ballot: number, role: CellReport["role"]): CellReport | null {
  const { members } = summary;
  if (members.length === 0 || !members.every(isIdentity)) return null;
  return { cell, incarnation: summary.incarnation, version: summary.membershipSlot, appliedSlot: Math.max(summary.applied, 0), members, leader, ballot, role };
}

export class NodeDiscovery {
  readonly discovery: DiscoveryNode;
  readonly stats: NodeDiscoveryStats = { gossipReceived: 0, lookupsAnswered: 0, peersAnswered: 0, notHostedAnswers: 0, pushes: 0, auditsSkipped: 0, leaves: 0, refused: {} };
  private readonly identity: string;
  /** The ballot round under which this node last pushed as leader, per cell it leads. */
  private readonly ledAt = new Map<string, number>();

  constructor(private readonly options: NodeDiscoveryOptions) {
    this.identity = options.identity;
    // A node run under a bare id (some unit tests do) gossips as incarnation zero; its cells'
    // members are bare ids too, so it hosts them and answers lookups, but pushes no entries.
    const identity = isIdentity(options.identity) ? options.identity : `${options.identity}~${"0".repeat(16)}`;
    const seeds = [...options.peers].map(([nodeId, endpoint]) => ({ nodeId, address: addressOfEndpoint(endpoint) }));
    const nowMs = options.wallClock();
    this.discovery = new DiscoveryNode({
      identity, address: options.address, generation: Math.floor(nowMs), seeds,
      rng: new Rng(Math.floor(options.random() * seedMax)), nowMs,
      // A shorter round (tests) shortens the probe's reply timeout with it: a probe's sends must end within its round.
      ...(options.roundMs === undefined ? {} : { roundMs: options.roundMs, replyTimeoutMs: Math.min(discoveryLimits.replyTimeoutMsDefault, Math.floor(options.roundMs / (discoveryLimits.openAttemptsMax + 1))) }),
      ...(options.suspectTimeoutMs === undefined ? {} : { suspectTimeoutMs: options.suspectTimeoutMs }),
    });
  }

  /** When discovery next needs `tick`, on the wall clock. */
  nextDeadlineMs(): number {
    return this.discovery.nextDeadlineMs();
  }

  /** Runs a round (or a retransmission) and the batched refresh of hosted cells it asks for. */
  tick(): void {
    this.guarded(() => {
      const nowMs = this.options.wallClock();
      const { messages, audit } = this.discovery.tick(nowMs);
      this.send(messages);
      for (const cell of audit) this.refresh(cell, nowMs);
    });
  }

  /** This node now hosts a replica of `cell` (recovered, created or joined). */
  host(cell: string): void {
    this.discovery.host(cell);
  }

  /** A replica was just created here from its genesis: its member's view goes in at once. */
  created(cell: string): void {
    this.discovery.host(cell);
    this.guarded(() => this.refresh(cell, this.options.wallClock()));
  }

  hosts(cell: string): boolean {
    return this.discovery.hosts(cell);
  }

  /**
   * Slots the node's replicas applied in one batch: a cell that applied a membership change
   * is pushed (or left, when the change removed this node), and one this node has come to
   * lead since it last pushed is pushed with its new ballot.
   */
  applied(entries: readonly AppliedEntry[]): void {
    this.guarded(() => this.appliedUnguarded(entries));
  }

  /**
   * Discovery is a hint beside the cells, never a reason for them to stop: a bug in it (an
   * AssertionError) is counted as `internalError` and the node goes on, where the same
   * error in the node's own path would stop it.
   */
  private guarded(run: () => void): void {
    try {
      run();
    } catch (error) {
      if (!(error instanceof AssertionError)) throw error;
      this.refuse("internalError");
    }
  }

  private appliedUnguarded(entries: readonly AppliedEntry[]): void {
    let nowMs: number | null = null;
    let last: string | null = null;
    for (const entry of entries) {
      if (entry.cell === last && !configApplied(entry)) continue;
      last = entry.cell;
      const replica = this.options.replicaOf(entry.cell);
      if (replica === undefined) continue;
      const changed = configApplied(entry);
      const newLeader = replica.role === "leader" && this.ledAt.get(entry.cell) !== replica.promisedBallot.round;
      if (!changed && !newLeader) continue;
      nowMs ??= this.options.wallClock();
      this.refresh(entry.cell, nowMs);
    }
  }

  /** The member's view of a hosted cell, pushed; or its leaving, when it is no member any more. */
  private refresh(cell: string, nowMs: number): void {
    const replica = this.options.replicaOf(cell);
    const handle = replica === undefined ? this.options.dormantOf(cell) : undefined;
    const { cache } = this.discovery;
    if (handle !== undefined && this.options.arena.auditMemoHolds(handle, cache.stampOf(cell), nowMs)) {
      this.stats.auditsSkipped++;
      return;
    }
    const report = this.reportFor(replica, handle, cell);
    if (report === undefined) {
      this.discovery.unhost(cell);
      this.ledAt.delete(cell);
      return;
    }
    if (report === null) return;
    if (!report.members.includes(this.identity)) {
      if (this.discovery.hosts(cell)) {
        this.discovery.leave(report, nowMs);
        this.stats.leaves++;
      }
      this.ledAt.delete(cell);
      return;
    }
    if (!this.discovery.hosts(cell)) return;
    if (report.role === "leader") this.ledAt.set(cell, report.ballot);
    else this.ledAt.delete(cell);
    const outcome = this.discovery.push(report, nowMs);
    this.stats.pushes++;
    // A dormant cell reports the same until it wakes, so while its entry keeps the stamp it
    // has now, the same push would change nothing: the entry is this report's (it was just
    // stored, corrected or re-stamped, or found current) until it is due for a refresh, or it
    // is one this member cannot judge (newerKnown), which only a change to it can alter.
    if (handle !== undefined) {
      const until = outcome === "newerKnown" ? Number.POSITIVE_INFINITY : outcome === "stored" || outcome === "corrected" || outcome === "restamped" || outcome === "current" ? cache.freshUntilMs(cell, report.role) : null;
      if (until !== null) this.options.arena.setAuditMemo(handle, cache.stampOf(cell), until);
    }
  }

  /**
   * What this node knows of a hosted cell: undefined when it hosts no replica of it, null while
   * its replica has no state (or no identities to name). A dormant replica leads nothing and
   * knows no leader: it was recovered from a snapshot and has heard nothing since.
   */
  private reportFor(replica: Replica | undefined, handle: number | undefined, cell: string): CellReport | null | undefined {
    if (replica === undefined) return handle === undefined ? undefined : reportOfSummary(cell, this.options.arena.summary(handle), null, 0, "follower");
    const state = replica.cellState;
    if (state === null) return null;
    const members = state.latestMembers();
    // A replica's hint may name a leader the cell has since removed: only a member is reported.
    const leader = replica.leader !== null && members.includes(replica.leader) ? replica.leader : null;
    const ballot = leader !== null && replica.promisedBallot.node === leader ? replica.promisedBallot.round : 0;
    const summary = { applied: state.applied, incarnation: state.incarnation, members, membershipSlot: state.latestMembershipSlot() };
    return reportOfSummary(cell, summary, leader, ballot, replica.role === "leader" ? "leader" : "follower");
  }

  /** A discovery message of an authenticated, role-checked frame. */
  receive(sender: string, role: Role, part: DiscoveryPart): void {
    this.guarded(() => this.receiveUnguarded(sender, role, part));
  }

  private receiveUnguarded(sender: string, role: Role, part: DiscoveryPart): void {
    const nowMs = this.options.wallClock();
    if (part.kind === "gossip" && role === "node") {
      this.stats.gossipReceived++;
      const result = this.discovery.receive({ from: sender, message: part.wire }, nowMs);
      if (result.ok) this.send(result.messages);
      else this.refuse(result.reason);
      return;
    }
    if (part.kind === "lookup" && role !== "node") {
      const result = this.discovery.answer(part.wire, nowMs);
      if (!result.ok) {
        this.refuse(result.reason);
        return;
      }
      this.stats.lookupsAnswered++;
      this.options.toClient(sender, result.wire);
      return;
    }
    if (part.kind === "peersRequest" && role === "control") {
      const result = this.discovery.answerPeers(part.wire, nowMs);
      if (!result.ok) {
        this.refuse(result.reason);
        return;
      }
      this.stats.peersAnswered++;
      this.options.toClient(sender, result.wire);
      return;
    }
    // The role check lets nothing else through; counted rather than trusted.
    this.refuse("wrongKind");
  }

  /**
   * A client sent a request for a cell this node does not host (any more): it is told, as an
   * unasked lookup answer (id 0), what this node knows instead: the members it knew when it
   * left (`moved`), its cache's entry (`found`), or nothing (`noSuchCell`).
   */
  notHosted(client: string, cell: string): void {
    const result = this.discovery.answer(encodeMessage({ kind: "lookup", id: 0, cells: [cell] }), this.options.wallClock());
    if (!result.ok) {
      this.refuse(result.reason);
      return;
    }
    this.stats.notHostedAnswers++;
    this.options.toClient(client, result.wire);
  }

  /** What this node can say about `cell` (hosted, moved, found or noSuchCell). */
  lookup(cell: string): ReturnType<DiscoveryNode["lookup"]> {
    return this.discovery.lookup(cell, this.options.wallClock());
  }

  /** Peers that gossip says are alive, by node id (this node excluded). */
  alivePeers(): string[] {
    return this.discovery.peers.views().filter((view) => view.nodeId !== this.discovery.nodeId && view.record.status === "alive").map((view) => view.nodeId);
  }

  status(): Record<string, unknown> {
    const peers: Record<string, string> = {};
    for (const view of this.discovery.peers.views()) if (view.nodeId !== this.discovery.nodeId) peers[view.nodeId] = view.record.status;
    return { entries: this.discovery.cache.size, pointers: this.discovery.pointers.size, hosted: this.discovery.hostedCount, peers };
  }

  /** What /metrics shows of discovery (each a gauge of the node's exposition). */
  gauges(): [string, string, number][] {
    const d = this.discovery;
    const refused = Object.values(this.stats.refused).reduce((sum, n) => sum + n, 0);
    return [
      ["physalia_discovery_entries", "Cells in this node's replica of its color's discovery cache.", d.cache.size],
      ["physalia_discovery_pointers", "Forwarding pointers kept for cells this node left.", d.pointers.size],
      ["physalia_discovery_peers_alive", "Peers that gossip says are alive.", this.alivePeers().length],
      ["physalia_discovery_bytes_sent", "Bytes of gossip this node has sent since it started.", d.stats.bytesSent],
      ["physalia_discovery_lookups_answered", "Lookups answered for clients since the node started.", this.stats.lookupsAnswered],
      ["physalia_discovery_audits_skipped", "Audits of dormant cells skipped since the node started: their entry was unchanged and fresh.", this.stats.auditsSkipped],
      ["physalia_discovery_refused", "Discovery messages refused since the node started (malformed, unknown sender or session, ...).", refused],
    ];
  }

  private refuse(reason: string): void {
    this.stats.refused[reason] = (this.stats.refused[reason] ?? 0) + 1;
  }

  private send(messages: readonly Outgoing[]): void {
    for (const out of messages) {
      // The address its gossiped record names, which starts as the topology's.
      const endpoint = endpointOfAddress(out.address) ?? this.options.peers.get(out.to);
      if (endpoint === undefined) this.refuse("badAddress");
      else this.options.toPeer(out.to, endpoint, [out.wire]);
    }
  }
}
