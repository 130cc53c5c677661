// The client library: finds a cell's replicas, sends a transaction, retries with
// exponential backoff and jitter, follows redirects to the leader, and keeps a session per
// cell so that eventually consistent reads never go back in time.
//
// A cell's replicas are found through discovery (src/discovery/client.ts): the client asks
// any node of the topology where the cell is, keeps the answer indefinitely, and asks again
// only on evidence: a replica that says it does not host the cell (with the members it knew
// when it left, which are tried at once), or one that stops answering. A stale answer costs
// time, never correctness: cells decide their membership through their own logs. Where a
// new cell goes is placement, not lookup: `create` takes the nodes it is given (the control
// plane's choice) or, by default, the `membersPerCell` nodes with the highest rendezvous
// hash of (cell, node).

import { sha256 } from "@noble/hashes/sha2.js";
import type { TxResult } from "../core/kv.ts";
import type { CellGenesis, CellMessage, ClientReply, CommandResult, HostedCell, LeaseResult, ConfigChange, Consistency, Envelope, NodeMessage, Operation } from "../core/messages.ts";
import { type Rejection, type Transaction, checkTransaction, isRejection } from "../core/transaction.ts";
import { leaseProblem } from "../core/cellstate.ts";
import { utf8 } from "../core/value.ts";
import { limits } from "../limits.ts";
import { type CellEntry, ClientDiscovery, type DiscoveryMessage, type LookupAnswer, type PeersAnswer, decodeMessage as decodeDiscoveryMessage, discoveryLimits, encodeMessage as encodeDiscoveryMessage } from "../discovery/mod.ts";
import { Rng, seedMax } from "../random.ts";
import { Reassembler } from "../transport/chunks.ts";
import type { Endpoint, Transport } from "../transport/transport.ts";
import { type Frame, decodeFrame } from "../wire/frame.ts";
import { ReplayGuard, Stamper, freshEpoch } from "../wire/freshness.ts";
import { isPlainId, nodePart } from "../wire/ids.ts";
import type { KeyRing, KeySet, Role } from "../wire/keyring.ts";
import { encodeMessages } from "../wire/message.ts";
import { type ClientFacts, authorizeAtClient, classify } from "../wire/roles.ts";
import { type DiscoveryPart, decodeBody } from "../wire/schema.ts";

export class UnreachableError extends Error {
  override name = "UnreachableError";
}

/**
 * The command may or may not have been applied (once, never twice): its session expired
 * while the client was retrying it, so the cell can no longer say which. Read the state to
 * find out. The client has dropped the session; the next command opens a new one.
 */
export class OutcomeUnknownError extends Error {
  override name = "OutcomeUnknownError";
}

/** The cell refused to open a session for this client (its session table stayed full). */
export class SessionRefusedError extends Error {
  override name = "SessionRefusedError";
}

/**
 * Discovery knows no such cell: the nodes asked (at least three, or every node of a smaller
 * colony) each said that neither it nor its replica of the cache has heard of it, and this
 * client knew nothing of it either. The cell was never created (a mistyped name), or is gone.
 */
export class NoSuchCellError extends Error {
  override name = "NoSuchCellError";
}

/**
 * The nodes answered, but under keys this client does not hold: its key file is another
 * colony's, or older than a rotation the nodes finished. A node drops a frame that fails
 * its MAC without parsing it, and says so only by a signed empty frame back (see
 * PhysaliaNode's `answerUnverified`), which a client with the right keys verifies and
 * ignores, and a client with the wrong ones cannot verify: that is the sign.
 */
export class KeysRejectedError extends Error {
  override name = "KeysRejectedError";
}

/** The operation needs a key this client does not hold (creating cells and membership changes need the control key). */
export class MissingKeyError extends Error {
  override name = "MissingKeyError";
}

export interface ClientOptions {
  /** This client's id: the sender of its frames (1 to 64 of [A-Za-z0-9._-]). */
  readonly id: string;
  /** Every node of the colony (of one color), by id. */
  readonly nodes: ReadonlyMap<string, Endpoint>;
  /** A client key file (data requests) or a control key file (data, cell creation, membership). */
  readonly keys: KeySet;
  readonly transport: Transport;
  readonly membersPerCell?: number;
  /** How long one operation may take, retries included. */
  readonly deadlineMs?: number;
  /** Nodes that must say they know no such cell before the client believes it (default 3, or every node when fewer). */
  readonly noSuchCellAnswersMin?: number;
  readonly now?: () => number;
  readonly random?: () => number;
  /** This process's epoch, in every frame it sends; default: wall-clock milliseconds now. */
  readonly epoch?: number;
  /** Whether replayed replies are dropped (default true). */
  readonly replayGuard?: boolean;
}

export interface CreateSettings {
  /** The nodes to create it on (the control plane's placement); by default, the rendezvous nodes of the topology (placement, not lookup). */
  readonly nodes?: readonly string[];
  readonly alpha?: number;
  readonly sessionTtlMs?: number;
  readonly sessionsMax?: number;
  /** How long each planned node has to answer before creation is refused. */
  readonly deadlineMs?: number;
}

export type CreateOutcome =
  | { readonly status: "created"; readonly incarnation: string; readonly members: readonly string[] }
  /** The cell exists already: what `at` says of it (members empty while that replica is still learning). */
  | { readonly status: "exists"; readonly incarnation: string; readonly members: readonly string[]; readonly at: string };

/**
 * A new cell's incarnation: 16 lowercase hex digits holding, as one 64-bit integer, the
 * creation time in milliseconds since the epoch times 2^16 plus 16 random bits. Discovery
 * keeps the entry of the greater incarnation (compared as that integer; fixed-width hex
 * compares the same way), so a cell re-created under an old name, a millisecond or more
 * later, wins over every entry of its predecessor; the random bits keep two creations in
 * the same millisecond apart. Times up to the year 10889 fit 48 bits.
 */
export function newIncarnation(nowMs: number = Date.now(), random16: number = crypto.getRandomValues(new Uint16Array(1))[0] as number): string {
  const value = (BigInt(Math.floor(nowMs)) << 16n) | BigInt(random16 & 0xffff);
  return value.toString(16).padStart(16, "0");
}

/** A lease answer as the client sees it: the cell's answer, and how long this client may count on it. */
export type LeaseAnswer =
  | (LeaseResult & { readonly held: boolean; readonly validUntil: number; readonly validForMs: number })
  | Rejection;

function leaseRefusal(result: CommandResult): Rejection {
  if (result.status === "rejected") return result;
  throw new Error(`a lease operation was answered with a ${result.status} result`);
}

export interface OperationOptions {
  readonly consistency?: Consistency;
}

interface Waiter {
  readonly resolve: (reply: { from: string; reply: ClientReply }) => void;
}

/** A session this client holds with one cell. */
interface CellSession {
  readonly id: number;
  readonly ttlMs: number;
  nextSeq: number;
  /** Sequence numbers sent and not yet answered (or given up on). */
  readonly waiting: Set<number>;
  /** Commands waiting for the session's window to move. */
  readonly windowWaiters: (() => void)[];
}

/** A command to send; its acknowledgement mark is read at each attempt, as answers to others arrive. */
interface OutgoingCommand {
  readonly session: number;
  readonly seq: number;
  readonly acked: () => number;
  readonly op: Operation;
}

function lowestWaited(session: CellSession, seq: number): number {
  let lowest = seq;
  for (const other of session.waiting) if (other < lowest) lowest = other;
  return lowest;
}

interface Answer {
  readonly from: string;
  readonly reply: ClientReply;
  /** How many times the request was sent, and when first. */
  readonly sends: number;
  readonly firstSentAt: number;
}

const attemptTimeoutMs = 150;
/** Nodes asked at once before a client believes there is no such cell. */
const confirmNodesMax = 16;
/** Lookup ids of those checks start here, far from discovery's own (which count up from 1). */
const confirmIdFirst = 0x8000_0000;
const attemptTimeoutMaxMs = 1_600;
/** Ids of direct discovery requests (peer tables, lookups at one node) run from here up to the "no such cell" checks' ids. */
const askedIdFirst = 0x4000_0000;

export class PhysaliaClient {
  private requestId = 0;
  private readonly waiters = new Map<number, Waiter>();
  private readonly leaders = new Map<string, string>();
  /** Per cell: the highest slot this client has seen, so eventual reads never go back. */
  private readonly seen = new Map<string, number>();
  private readonly sessions = new Map<string, CellSession>();
  private readonly opening = new Map<string, Promise<CellSession>>();
  /** Where cells are: discovery's client cache. */
  private readonly discovery: ClientDiscovery;
  /** Lookups sent and not yet answered, by id: each is failed when its timer fires. */
  private readonly lookups = new Map<number, ReturnType<typeof setTimeout>>();
  /** Woken whenever a lookup answer (asked or not) arrives. */
  private discoveryWaiters: (() => void)[] = [];
  /** "No such cell" checks in flight (see confirmNoSuchCell), by lookup id. */
  private readonly confirming = new Map<number, (status: string) => void>();
  private confirmId = confirmIdFirst;
  /** Peer-table requests in flight (see peerTable), by id. */
  /** Discovery requests asked directly (peerTable, lookupAt) and not yet answered, by id. */
  private readonly asked = new Map<number, { readonly node: string; readonly settle: (answer: DiscoveryMessage | null) => void }>();
  private askedId = askedIdFirst;
  /** Per cell: the node whose answer last changed what this client knows. */
  private readonly answeredBy = new Map<string, string>();
  private readonly reassembler = new Reassembler();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly stamper: Stamper;
  private readonly guard: ReplayGuard | null;
  private readonly facts: ClientFacts;
  /** Node ids by "host:port", to tell which node a frame that fails our MAC came from. */
  private readonly nodeAt = new Map<string, string>();
  /** Nodes that sent frames this client could verify, and frames it could not (see KeysRejectedError). */
  private readonly verifiedFrom = new Set<string>();
  private readonly unverifiedFrom = new Set<string>();

  constructor(private readonly options: ClientOptions) {
    if (!isPlainId(options.id)) throw new RangeError(`A client id is 1 to 64 of [A-Za-z0-9._-], not ${JSON.stringify(options.id)}`);
    if (options.keys.ring("client") === undefined && options.keys.ring("control") === undefined) {
      throw new MissingKeyError("A client needs a client or control key file");
    }
    this.now = options.now ?? (() => performance.now());
    this.random = options.random ?? Math.random;
    this.stamper = new Stamper(options.epoch ?? freshEpoch());
    this.guard = options.replayGuard === false ? null : new ReplayGuard();
    this.facts = { isNode: (node) => options.nodes.has(node) };
    for (const [node, endpoint] of options.nodes) this.nodeAt.set(`${endpoint.host}:${endpoint.port}`, node);
    const seeds = [...options.nodes].map(([nodeId, endpoint]) => ({ nodeId, address: endpoint.host.includes(":") ? `[${endpoint.host}]:${endpoint.port}` : `${endpoint.host}:${endpoint.port}` }));
    this.discovery = new ClientDiscovery({
      seeds, rng: new Rng(Math.floor(this.random() * seedMax)),
      noSuchCellAnswersMin: options.noSuchCellAnswersMin ?? discoveryLimits.clientLookupAttemptsMax,
    });
    options.transport.onReceive((bytes, from) => this.receive(bytes, from));
  }

  /** The ring a message goes under: the least role that may send it, among those held. */
  private ringFor(message: CellMessage | NodeMessage): KeyRing {
    const needs: Role = classify(message) === "control" ? "control" : "client";
    const ring = this.options.keys.ring(needs) ?? (needs === "client" ? this.options.keys.ring("control") : undefined);
    if (ring === undefined) throw new MissingKeyError(`Cannot send ${message.kind === "request" ? "a membership change" : message.kind}: it needs the control key`);
    return ring;
  }

  private requireControl(what: string): void {
    if (this.options.keys.ring("control") === undefined) throw new MissingKeyError(`Cannot ${what}: it needs the control key file, and this client holds only the client key`);
  }

  /**
   * Where a new cell goes when no placement is given: the `membersPerCell` nodes of the
   * topology with the highest rendezvous hash of (cell, node). This is placement only;
   * every lookup goes through discovery.
   */
  placementFor(cell: string): string[] {
    const count = Math.min(this.options.membersPerCell ?? 7, this.options.nodes.size);
    const scored = [...this.options.nodes.keys()].map((node) => ({ node, score: rendezvous(cell, node) }));
    scored.sort((a, b) => (a.score < b.score ? 1 : a.score > b.score ? -1 : 0));
    return scored.slice(0, count).map((s) => s.node);
  }

  /** Tells the client where the cell itself said its members are (node ids or identities): it created the cell, or changed its membership. */
  learnMembers(cell: string, members: readonly string[]): void {
    this.discovery.hosting(cell, members, this.now());
  }

  /** The nodes to try for a cell, best first, as discovery has them now; sends a lookup when one is due. */
  private candidatesFor(cell: string): string[] {
    const route = this.discovery.route(cell, this.now());
    if (route.lookup !== null) this.sendLookup(route.lookup);
    return route.candidates.map((target) => target.nodeId).filter((node) => this.options.nodes.has(node));
  }

  /**
   * Waits until the nodes to try for a cell are known. Throws NoSuchCellError when the nodes
   * discovery asked said there is no such cell and a wider check agrees (see
   * `confirmNoSuchCell`), UnreachableError at the deadline.
   */
  private async locate(cell: string, deadline: number): Promise<string[]> {
    let confirmed = false;
    for (;;) {
      const candidates = this.candidatesFor(cell);
      if (candidates.length > 0) return candidates;
      if (this.discovery.route(cell, this.now()).status === "noSuchCell") {
        if (confirmed || !(await this.confirmNoSuchCell(cell, deadline))) {
          throw new NoSuchCellError(`No such cell: ${cell} (the nodes asked, and their replicas of the discovery cache, have not heard of it)`);
        }
        confirmed = true;
        continue;
      }
      // Nodes answered lookups only under keys this client does not hold (see KeysRejectedError).
      if (this.verifiedFrom.size === 0 && this.unverifiedFrom.size >= Math.min(2, this.options.nodes.size)) throw this.keysRejectedError(cell, this.unverifiedFrom);
      const leftMs = deadline - this.now();
      if (leftMs <= 0) throw new UnreachableError(`Cannot find cell ${cell}: no node answered where it is`);
      await this.discoveryNews(Math.min(leftMs, 100));
    }
  }

  /** Resolves when a lookup answer arrives, or after `ms`. */
  private discoveryNews(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.discoveryWaiters.push(done);
    });
  }

  private sendLookup(lookup: { readonly nodeId: string; readonly message: { readonly id: number }; readonly wire: unknown }): void {
    const endpoint = this.options.nodes.get(lookup.nodeId);
    const ring = this.options.keys.ring("client") ?? this.options.keys.ring("control");
    if (endpoint === undefined || ring === undefined) {
      this.discovery.lookupFailed(lookup.message.id, this.now());
      return;
    }
    const id = lookup.message.id;
    const timeoutMs = attemptTimeoutMs * 2;
    this.lookups.set(id, setTimeout(() => {
      this.lookups.delete(id);
      this.discovery.lookupFailed(id, this.now());
      this.wakeDiscovery();
    }, timeoutMs));
    this.options.transport.send(encodeMessages(ring, { sender: this.options.id, receiver: lookup.nodeId, stamp: this.stamper.next(), messages: [], discovery: [lookup.wire] }), endpoint);
  }

  /**
   * Before "no such cell" is believed: a cell created a moment ago is known at once to the
   * nodes that host it, and to the others only once gossip brings it (a few rounds), so a
   * client that happened to ask only nodes that had not heard of it yet would call it
   * missing. Every node of the topology (at most `confirmNodesMax`, at random) is asked at
   * once; true when one of them knows the cell (what it said goes to discovery).
   */
  private async confirmNoSuchCell(cell: string, deadline: number): Promise<boolean> {
    const ring = this.options.keys.ring("client") ?? this.options.keys.ring("control");
    if (ring === undefined) return false;
    const nodes = [...this.options.nodes.keys()];
    for (let i = nodes.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [nodes[i], nodes[j]] = [nodes[j] as string, nodes[i] as string];
    }
    const asked = nodes.slice(0, confirmNodesMax);
    let known = false;
    let answered = 0;
    const ids: number[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, Math.min(attemptTimeoutMs * 2, deadline - this.now())));
      for (const node of asked) {
        this.confirmId = this.confirmId >= 0xffff_ffff ? confirmIdFirst : this.confirmId + 1;
        const id = this.confirmId;
        ids.push(id);
        this.confirming.set(id, (status) => {
          answered++;
          if (status !== "noSuchCell") known = true;
          if (known || answered === asked.length) {
            clearTimeout(timer);
            resolve();
          }
        });
        const endpoint = this.options.nodes.get(node) as Endpoint;
        const wire = encodeDiscoveryMessage({ kind: "lookup", id, cells: [cell] });
        this.options.transport.send(encodeMessages(ring, { sender: this.options.id, receiver: node, stamp: this.stamper.next(), messages: [], discovery: [wire] }), endpoint);
      }
    });
    for (const id of ids) this.confirming.delete(id);
    return known;
  }

  /**
   * Asks `node` for one page of its discovery peer table: what its gossip holds of every node
   * of its color (status, identity, address) and when it last heard from each itself. Only
   * the control key may ask. Null when the node does not answer within `deadlineMs`.
   */
  async peerTable(node: string, options: { readonly start?: number; readonly deadlineMs?: number } = {}): Promise<PeersAnswer | null> {
    this.requireControl(`ask ${node} for its peer table`);
    const answer = await this.askDiscovery(node, (id) => ({ kind: "peersRequest", id, start: options.start ?? 0 }), options.deadlineMs);
    return answer?.kind === "peersAnswer" ? answer : null;
  }

  /**
   * Asks `node` where each of `cells` is (at most `discoveryLimits.lookupCellsMax`): one
   * lookup, answered from its replica of the discovery cache, its replicas and its forwarding
   * pointers. The answer may cover fewer cells than asked (it must fit one message). This
   * client's own cache is not changed. Null when the node does not answer within `deadlineMs`.
   */
  async lookupAt(node: string, cells: readonly string[], deadlineMs?: number): Promise<LookupAnswer | null> {
    if (cells.length > discoveryLimits.lookupCellsMax) throw new RangeError(`A lookup names at most ${discoveryLimits.lookupCellsMax} cells, not ${cells.length}`);
    const answer = await this.askDiscovery(node, (id) => ({ kind: "lookup", id, cells }), deadlineMs);
    return answer?.kind === "lookupAnswer" ? answer : null;
  }

  /** Sends one discovery request to `node` and waits for the answer with its id (or null at the deadline). */
  private askDiscovery(node: string, request: (id: number) => DiscoveryMessage, deadlineMs: number = attemptTimeoutMs * 2): Promise<DiscoveryMessage | null> {
    const endpoint = this.options.nodes.get(node);
    if (endpoint === undefined) throw new UnreachableError(`Cannot ask ${node}: it is not a node this client knows`);
    const message = request(this.askedId);
    const ring = (message.kind === "peersRequest" ? this.options.keys.ring("control") : this.options.keys.ring("client") ?? this.options.keys.ring("control")) as KeyRing;
    const id = this.askedId;
    this.askedId = this.askedId >= confirmIdFirst - 1 ? askedIdFirst : this.askedId + 1;
    return new Promise<DiscoveryMessage | null>((resolve) => {
      const settle = (answer: DiscoveryMessage | null) => {
        clearTimeout(timer);
        this.asked.delete(id);
        resolve(answer);
      };
      const timer = setTimeout(() => settle(null), deadlineMs);
      this.asked.set(id, { node, settle });
      this.options.transport.send(encodeMessages(ring, { sender: this.options.id, receiver: node, stamp: this.stamper.next(), messages: [], discovery: [encodeDiscoveryMessage(message)] }), endpoint);
    });
  }

  private wakeDiscovery(): void {
    const waiters = this.discoveryWaiters;
    this.discoveryWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * A lookup answer from `node`. An asked one goes to discovery; an unasked one (id 0) is
   * what a node that does not host a cell we sent a request to knows instead: the members
   * it knew when it left, or its cache's entry, tried at once.
   */
  private discoveryAnswer(node: string, part: DiscoveryPart): void {
    const decoded = decodeDiscoveryMessage(part.wire);
    if (decoded.ok && (decoded.message.kind === "peersAnswer" || decoded.message.kind === "lookupAnswer") && this.asked.has(decoded.message.id)) {
      // Only the node asked answers a request (another would have to guess its id).
      const request = this.asked.get(decoded.message.id);
      if (request?.node === node) request.settle(decoded.message);
      return;
    }
    if (!decoded.ok || decoded.message.kind !== "lookupAnswer") return;
    const answer = decoded.message;
    const now = this.now();
    const before = answer.answers.map((a) => this.discovery.peek(a.cell));
    const confirming = this.confirming.get(answer.id);
    if (confirming !== undefined) {
      this.confirming.delete(answer.id);
      for (const cellAnswer of answer.answers) {
        if (cellAnswer.status === "hosted") this.discovery.hosting(cellAnswer.cell, [node], now);
        const entry = cellAnswer.status === "moved" ? cellAnswer.pointer : cellAnswer.status === "noSuchCell" ? null : cellAnswer.entry;
        // A host becomes a candidate; any other node's entry or pointer is taken as a moved
        // replica's word would be (the greater entry is kept).
        if (entry !== null && cellAnswer.status !== "hosted") this.discovery.evidence(cellAnswer.cell, { kind: "notHosted", node, pointer: entry }, now);
        confirming(cellAnswer.status);
      }
    } else if (answer.id !== 0) {
      // A late answer (its lookup timed out) is still news; discovery refuses unasked ones.
      const timer = this.lookups.get(answer.id);
      if (timer !== undefined) clearTimeout(timer);
      this.lookups.delete(answer.id);
      this.discovery.receive(part.wire, now);
    } else {
      for (const cellAnswer of answer.answers) {
        if (cellAnswer.status === "hosted") continue;
        const pointer: CellEntry | undefined = cellAnswer.status === "moved" ? cellAnswer.pointer : cellAnswer.status === "found" ? cellAnswer.entry : undefined;
        this.discovery.evidence(cellAnswer.cell, pointer === undefined ? { kind: "notHosted", node } : { kind: "notHosted", node, pointer }, now);
        if (cellAnswer.status === "moved" && cellAnswer.entry !== null) this.discovery.evidence(cellAnswer.cell, { kind: "notHosted", node, pointer: cellAnswer.entry }, now);
      }
    }
    answer.answers.forEach((a, i) => {
      if (this.discovery.peek(a.cell) !== before[i]) this.answeredBy.set(a.cell, node);
    });
    this.wakeDiscovery();
  }

  /**
   * Where a cell is, as discovery says: the entry this client holds (`cache`), or, when it
   * holds none, the one a node answers now (`fresh`, with the node that answered). Null
   * when the cell is known only from nodes that host it and have no entry yet.
   */
  async where(cell: string, deadlineMs: number = this.options.deadlineMs ?? 10_000): Promise<{ readonly entry: CellEntry; readonly source: "cache" | "fresh"; readonly node: string | null } | null> {
    const cached = this.discovery.peek(cell);
    if (cached !== null) return { entry: cached, source: "cache", node: this.answeredBy.get(cell) ?? null };
    const deadline = this.now() + deadlineMs;
    // Throws NoSuchCellError, or UnreachableError when no node answers.
    await this.locate(cell, deadline);
    // Known from nodes that host it: their entry comes with their answers, or soon after.
    const entryBy = Math.min(deadline, this.now() + 1_000);
    for (;;) {
      this.candidatesFor(cell);
      const entry = this.discovery.peek(cell);
      if (entry !== null) return { entry, source: "fresh", node: this.answeredBy.get(cell) ?? null };
      const leftMs = entryBy - this.now();
      if (leftMs <= 0) return null;
      await this.discoveryNews(Math.min(leftMs, 100));
    }
  }

  /** Asks a node who it is (its identity) and what it knows of a cell. */
  async hello(cell: string, node: string, deadlineMs?: number): Promise<{ identity: string; hosted: HostedCell | null }> {
    const id = ++this.requestId;
    const answer = await this.exchange(cell, id, { kind: "hello", client: this.options.id, id }, [node], deadlineMs);
    const outcome = answer.reply.outcome;
    if (outcome.kind !== "node") throw new UnreachableError(`Cannot ask ${node} about cell ${cell}: it answered ${outcome.kind}`);
    return { identity: outcome.identity, hosted: outcome.hosted };
  }

  /**
   * Creates a cell on its planned nodes, each named by its current identity, with a fresh
   * incarnation; or says that the cell exists. Every planned node must answer first: a node
   * that did not could be the one that hosts the cell already.
   */
  async create(cell: string, settings: CreateSettings = {}): Promise<CreateOutcome> {
    this.requireControl(`create cell ${cell}`);
    const planned = settings.nodes === undefined ? this.placementFor(cell) : [...settings.nodes];
    const unknown = planned.find((node) => !this.options.nodes.has(node));
    if (unknown !== undefined) throw new UnreachableError(`Cannot create cell ${cell}: ${unknown} is not a node this client knows`);
    const hellos = await Promise.all(planned.map((node) => this.hello(cell, node, settings.deadlineMs ?? this.options.deadlineMs ?? 10_000).then((h) => ({ node, ...h }), () => ({ node, identity: null, hosted: null }))));
    const hosting = hellos.find((h) => h.hosted !== null);
    if (hosting?.hosted) return { status: "exists", incarnation: hosting.hosted.incarnation, members: [...hosting.hosted.members], at: hosting.node };
    const silent = hellos.filter((h) => h.identity === null).map((h) => h.node);
    if (silent.length > 0) {
      throw new UnreachableError(`Cannot create cell ${cell}: ${silent.join(", ")} did not answer, and a cell is created only when every node it is planned on answers (one that does not might already host it)`);
    }
    const genesis: CellGenesis = {
      members: hellos.map((h) => h.identity as string),
      incarnation: newIncarnation(),
      alpha: settings.alpha ?? limits.pipelineDepthDefault,
      sessionTtlMs: settings.sessionTtlMs ?? limits.sessionTtlMsDefault,
      sessionsMax: settings.sessionsMax ?? limits.sessionsPerCellMax,
    };
    const answers = await Promise.all(planned.map(async (node) => {
      const id = ++this.requestId;
      return this.exchange(cell, id, { kind: "create", client: this.options.id, id, genesis }, [node]).then((a) => ({ node, outcome: a.reply.outcome }), () => ({ node, outcome: null }));
    }));
    const raced = answers.find((a) => a.outcome?.kind === "exists");
    if (raced?.outcome?.kind === "exists") return { status: "exists", incarnation: raced.outcome.hosted.incarnation, members: [...raced.outcome.hosted.members], at: raced.node };
    const created = answers.filter((a) => a.outcome?.kind === "created").map((a) => a.node);
    if (2 * created.length <= planned.length) {
      const refused = answers.find((a) => a.outcome?.kind === "unavailable");
      const why = refused?.outcome?.kind === "unavailable" ? `; ${refused.node}: ${refused.outcome.reason}` : "";
      throw new UnreachableError(`Cannot create cell ${cell}: only ${created.length} of ${planned.length} nodes created it (${created.join(", ") || "none"})${why}`);
    }
    this.learnMembers(cell, genesis.members);
    return { status: "created", incarnation: genesis.incarnation, members: [...genesis.members] };
  }

  /**
   * What the cell's replicas say of it: its incarnation and latest members, from the first
   * planned node that hosts it with state.
   */
  async describe(cell: string, timeoutMs = 1_000): Promise<{ node: string; hosted: HostedCell } | null> {
    const deadline = this.now() + Math.max(timeoutMs, this.options.deadlineMs ?? 10_000);
    // A round asks every replica discovery names; one whose node hosts no replica, or a
    // replica the cell removed, is evidence for discovery (a removed replica also names the
    // members it knew), and the next round asks again. A few rounds follow a moved cell.
    for (let round = 0; round < 4; round++) {
      let replicas: string[];
      try {
        replicas = await this.locate(cell, deadline);
      } catch (error) {
        if (error instanceof NoSuchCellError || error instanceof UnreachableError) return null;
        throw error;
      }
      const { member, other } = await this.askReplicas(cell, replicas, timeoutMs);
      if (member !== null) {
        this.learnMembers(cell, member.hosted.members);
        return member;
      }
      if (other === null && this.now() >= deadline) return null;
      if (round === 3) return other;
    }
    return null;
  }

  /**
   * Asks each replica at once who it is and what it holds, so that a dead one costs nothing;
   * the furthest along answers best, and once one has answered the others get a moment
   * more, not the whole timeout. `member`: the best answer of a replica that is a member of
   * its own latest membership; `other`: the best of the rest.
   */
  private async askReplicas(cell: string, replicas: readonly string[], timeoutMs: number): Promise<{ member: { node: string; hosted: HostedCell } | null; other: { node: string; hosted: HostedCell } | null }> {
    let member: { node: string; hosted: HostedCell } | null = null;
    let other: { node: string; hosted: HostedCell } | null = null;
    await new Promise<void>((resolve) => {
      let pending = replicas.length;
      let grace: ReturnType<typeof setTimeout> | null = null;
      const settle = () => {
        if (--pending === 0) resolve();
      };
      if (pending === 0) resolve();
      for (const node of replicas) {
        void this.hello(cell, node, timeoutMs).then((answer) => {
          const hosted = answer.hosted;
          const now = this.now();
          if (hosted === null) {
            this.discovery.evidence(cell, { kind: "notHosted", node }, now);
            return;
          }
          if (hosted.applied < 0) return;
          if (hosted.members.includes(answer.identity)) {
            if (member === null || hosted.applied > member.hosted.applied) member = { node, hosted };
            if (grace === null) grace = setTimeout(resolve, 50);
          } else {
            this.discovery.evidence(cell, { kind: "notHosted", node }, now);
            this.learnMembers(cell, hosted.members);
            if (other === null || hosted.applied > other.hosted.applied) other = { node, hosted };
          }
        }, () => undefined).finally(settle);
      }
    });
    return { member, other };
  }

  /**
   * Asks `node` to host an empty replica of an existing cell, and returns the identity the
   * cell must add: the replica joins as that identity, and nothing it does counts until a
   * membership change through the cell adds it.
   */
  async join(cell: string, node: string): Promise<string> {
    this.requireControl(`make ${node} join cell ${cell}`);
    const known = await this.describe(cell);
    if (known === null) throw new UnreachableError(`Cannot make ${node} join cell ${cell}: no replica of it answered`);
    const { identity, hosted } = await this.hello(cell, node);
    if (hosted !== null) {
      if (hosted.incarnation !== known.hosted.incarnation) throw new UnreachableError(`Cannot make ${node} join cell ${cell}: it hosts another cell of that name (incarnation ${hosted.incarnation})`);
      return identity;
    }
    const id = ++this.requestId;
    const answer = await this.exchange(cell, id, { kind: "join", client: this.options.id, id, incarnation: known.hosted.incarnation }, [node]);
    const outcome = answer.reply.outcome;
    if (outcome.kind !== "joined" && outcome.kind !== "exists") throw new UnreachableError(`Cannot make ${node} join cell ${cell}: ${outcome.kind === "unavailable" ? outcome.reason : outcome.kind}`);
    return identity;
  }

  /**
   * Takes, or renews, a lease in a cell. When granted, the caller may act as its holder
   * until `validUntil` on this client's clock (`now()`), and no longer: that is a third of
   * the lifetime, counted from before the request was sent, so that the lease stays safe as
   * long as no clock in the colony runs more than three times faster than another
   * (`limits.clockRateRatioMax`). A grant whose answer came back too late is `held: false`.
   */
  async lease(cell: string, name: string, holder: string, ttlMs: number): Promise<LeaseAnswer> {
    // What the cell would refuse whatever its state is answered here, typed and at once.
    const problem = leaseProblem({ name, holder, ttlMs });
    if (problem !== null) return { status: "rejected", reason: "leaseInvalid", detail: problem };
    const sentAt = this.now();
    const result = await this.command(cell, { kind: "lease", action: "acquire", name, holder, ttlMs });
    if (result.status !== "lease") return leaseRefusal(result);
    const validUntil = sentAt + ttlMs / limits.clockRateRatioMax;
    const held = result.granted && validUntil > this.now();
    return { ...result, held, validUntil: held ? validUntil : sentAt, validForMs: held ? Math.floor(validUntil - this.now()) : 0 };
  }

  /** Gives a lease back, if `holder` holds it. */
  async release(cell: string, name: string, holder: string): Promise<LeaseAnswer> {
    const problem = leaseProblem({ name, holder, ttlMs: limits.leaseTtlMsMin });
    if (problem !== null) return { status: "rejected", reason: "leaseInvalid", detail: problem };
    const result = await this.command(cell, { kind: "lease", action: "release", name, holder, ttlMs: limits.leaseTtlMsMin });
    if (result.status !== "lease") return leaseRefusal(result);
    return { ...result, held: false, validUntil: this.now(), validForMs: 0 };
  }

  async transact(cell: string, tx: Transaction, options: OperationOptions = {}): Promise<TxResult> {
    // A transaction past a stateless limit gets the cell's typed answer here, at once: sent,
    // some of them (a value over the limit, too many keys) would not even pass the node's
    // decoder, which drops what it cannot parse.
    const checked = checkTransaction(tx);
    if (isRejection(checked)) return checked;
    const consistency = options.consistency ?? "consistent";
    const result = consistency === "eventual" && tx.writes.length === 0 ? await this.eventualRead(cell, tx) : await this.command(cell, { kind: "tx", tx });
    if (result.status === "configured" || result.status === "session" || result.status === "closed" || result.status === "lease") throw new Error(`a transaction was answered with a ${result.status} result`);
    return result;
  }

  /**
   * Changes a cell's membership, and returns once the change governs: a change applied at
   * slot i decides slots from i + alpha on, so until then the old membership still decides
   * (and the cell still needs the node being removed, and cannot count the one being added).
   */
  async configure(cell: string, change: ConfigChange): Promise<CommandResult> {
    this.requireControl(`change the members of cell ${cell}`);
    const result = await this.command(cell, { kind: "config", change });
    if (result.status === "configured") {
      // The nodes of both memberships may answer until the change governs.
      this.learnMembers(cell, result.members);
      await this.advancePast(cell, result.effectiveSlot - 1);
    }
    return result;
  }

  /** Runs empty transactions (each in a later slot) until this client has seen `slot`. */
  private async advancePast(cell: string, slot: number): Promise<void> {
    for (let i = 0; i < limits.pipelineDepthMax + 1 && (this.seen.get(cell) ?? 0) < slot; i++) {
      await this.transact(cell, { reads: [], conditions: [], writes: [] });
    }
  }

  /**
   * Closes this client's sessions (each frees a place in its cell's session table; one that
   * cannot be reached expires by itself), then the transport.
   */
  async end(deadlineMs = 1_000): Promise<void> {
    const sessions = [...this.sessions.entries()];
    this.sessions.clear();
    await Promise.all(sessions.map(([cell, session]) => {
      const seq = session.nextSeq++;
      return this.send(cell, { session: session.id, seq, acked: () => lowestWaited(session, seq), op: { kind: "closeSession" } }, deadlineMs).catch(() => undefined);
    }));
    this.close();
  }

  /** An eventually consistent read: any replica at or past the slots this client has seen answers. */
  private async eventualRead(cell: string, tx: Transaction): Promise<CommandResult> {
    const { reply } = await this.send(cell, { session: 0, seq: 0, acked: () => 0, op: { kind: "tx", tx } }, undefined, "eventual");
    return reply.outcome.kind === "read" || reply.outcome.kind === "done" ? reply.outcome.result : unreachable(cell, reply.outcome.kind);
  }

  /**
   * Runs one command in this client's session with the cell, opening the session first if
   * it has none. Commands may overlap: each has its own sequence number, and each tells the
   * cell the lowest one still waited for, so the cell can forget answers below it.
   */
  private async command(cell: string, op: Operation): Promise<CommandResult> {
    for (let attempt = 0; ; attempt++) {
      const session = await this.sessionFor(cell);
      // Stay inside the session's window: never more than limits.sessionPendingMax past the
      // lowest command still waited for (the cell would refuse it, and that refusal settles nothing).
      while (session.waiting.size > 0 && session.nextSeq >= lowestWaited(session, session.nextSeq) + limits.sessionPendingMax) {
        await new Promise<void>((resolve) => session.windowWaiters.push(resolve));
      }
      const seq = session.nextSeq++;
      session.waiting.add(seq);
      let answer: Answer;
      try {
        answer = await this.send(cell, { session: session.id, seq, acked: () => lowestWaited(session, seq), op });
      } finally {
        // Answered or given up: either way the cell may forget it, and must never carry out a late copy.
        session.waiting.delete(seq);
        for (const wake of session.windowWaiters.splice(0)) wake();
      }
      const { reply, sends, firstSentAt } = answer;
      const result = reply.outcome.kind === "done" ? reply.outcome.result : unreachable(cell, reply.outcome.kind);
      if (result.status === "rejected" && result.reason === "tooManyPending") {
        throw new OutcomeUnknownError(`Cannot tell whether the operation on cell ${cell} was applied: the cell refused it as past its session's window, and a copy may still be carried out (${result.detail})`);
      }
      if (result.status !== "rejected" || result.reason !== "sessionExpired") return result;
      if (this.sessions.get(cell) === session) this.sessions.delete(cell);
      // Sent once and refused well within the session's lifetime: the command was never
      // applied (a copy applied earlier would have kept the session alive past this
      // answer), so it is safe to send it again in a new session. Otherwise nobody knows.
      if (sends !== 1 || this.now() - firstSentAt >= session.ttlMs / 4 || attempt > 0) {
        throw new OutcomeUnknownError(`Cannot tell whether the operation on cell ${cell} was applied: its session expired while it was retried (${result.detail}); it was applied at most once. Read the state to find out.`);
      }
    }
  }

  /** This client's session with the cell; opened once, however many commands ask at the same time. */
  private sessionFor(cell: string): Promise<CellSession> {
    const known = this.sessions.get(cell);
    if (known !== undefined) return Promise.resolve(known);
    let opening = this.opening.get(cell);
    if (opening === undefined) {
      opening = this.openSession(cell).finally(() => this.opening.delete(cell));
      this.opening.set(cell, opening);
    }
    return opening;
  }

  private async openSession(cell: string): Promise<CellSession> {
    const nonce = Math.floor(this.random() * 0xffff_ffff);
    const deadline = this.now() + (this.options.deadlineMs ?? 10_000);
    for (let attempt = 0; ; attempt++) {
      const { reply } = await this.send(cell, { session: 0, seq: 0, acked: () => 0, op: { kind: "openSession", client: this.options.id, nonce } }, Math.max(1, deadline - this.now()));
      const result = reply.outcome.kind === "done" ? reply.outcome.result : unreachable(cell, reply.outcome.kind);
      if (result.status === "session") {
        const session: CellSession = { id: result.session, ttlMs: result.ttlMs, nextSeq: 1, waiting: new Set(), windowWaiters: [] };
        this.sessions.set(cell, session);
        return session;
      }
      if (result.status === "rejected" && result.reason === "sessionsFull") {
        const waitMs = Math.min(2_000, 50 * 2 ** Math.min(attempt, 6));
        // Not worth another try if the deadline would pass first: say why it failed.
        if (this.now() + waitMs * 1.5 < deadline) {
          await this.pause(waitMs);
          continue;
        }
      }
      throw new SessionRefusedError(`Cannot open a session with cell ${cell}: ${result.status === "rejected" ? `${result.reason}: ${result.detail}` : result.status}`);
    }
  }

  /** Sends one command to the cell (to its leader when known) until it is answered. */
  private async send(cell: string, command: OutgoingCommand, deadlineMs?: number, consistency: Consistency = "consistent"): Promise<Answer> {
    const id = ++this.requestId;
    const request = (force: boolean): CellMessage => ({
      kind: "request", client: this.options.id, id, session: command.session, seq: command.seq, acked: command.acked(), op: command.op,
      consistency, minApplied: this.seen.get(cell) ?? 0, force,
    });
    const answer = await this.exchange(cell, id, request, null, deadlineMs);
    const outcome = answer.reply.outcome;
    if (outcome.kind === "done") {
      if (outcome.result.status !== "rejected") this.leaders.set(cell, answer.from);
      this.seen.set(cell, Math.max(this.seen.get(cell) ?? 0, outcome.slot));
    } else if (outcome.kind === "read") {
      this.seen.set(cell, Math.max(this.seen.get(cell) ?? 0, outcome.applied));
    }
    return answer;
  }

  /**
   * Sends one request until a final answer arrives: `done` or `read`. Redirects are followed,
   * `overloaded` backs off, `stale` and `unavailable` move on to another replica, and a
   * silent replica is retried elsewhere, with `force` once the leader itself went silent.
   * `fixed` names the one node a node-level request is for; null finds the cell's replicas
   * through discovery, tells it what each attempt showed, and asks it again at every move.
   */
  private async exchange(
    cell: string,
    id: number,
    message: CellMessage | NodeMessage | ((force: boolean) => CellMessage),
    fixed: readonly string[] | null,
    deadlineMs: number = this.options.deadlineMs ?? 10_000,
  ): Promise<Answer> {
    const deadline = this.now() + deadlineMs;
    let sends = 0;
    let firstSentAt = 0;
    const discovered = fixed === null;
    let replicas: readonly string[] = fixed ?? (await this.locate(cell, deadline));
    // Commands go to the leader when we know it; a node-level request goes to its one node.
    const toLeader = typeof message === "function";
    let target = (toLeader ? this.leaders.get(cell) : undefined) ?? (discovered ? replicas[0] : replicas[Math.floor(this.random() * replicas.length)]) ?? "";
    // Whether `target` is the replica we believe leads (cached, or named by a redirect).
    let targetLeads = toLeader && this.leaders.has(cell);
    let attempt = 0;
    // Evidence that the leader itself cannot serve: it went silent, or it answered that it
    // does not host the cell (a node that lost its disk still looks alive to its peers), or
    // replicas keep redirecting to each other (stale hints). Only then does the client ask
    // for a new leader with `force`: forcing on a dead follower's silence would make healthy
    // replicas preempt each other.
    let leaderFailures = 0;
    let redirects = 0;
    const tried = new Set<string>();
    // Replicas that answered that they do not host the cell (node.ts answers "cell X is not
    // hosted on N", a replica the cell removed "N is not a member of cell X").
    const notHosted = new Set<string>();
    const silent = new Set<string>();
    const evidence = (kind: "silent" | "answered" | "notHosted" | "leader", node: string) => {
      if (kind === "silent") silent.add(node);
      if (kind === "answered") silent.delete(node);
      if (discovered) this.discovery.evidence(cell, { kind, node }, this.now());
    };
    const elsewhere = async (): Promise<string> => {
      targetLeads = false;
      if (discovered) {
        replicas = this.candidatesFor(cell);
        if (replicas.length === 0) replicas = await this.locate(cell, deadline);
      }
      const others = replicas.filter((r) => r !== target);
      const hosting = others.filter((r) => !notHosted.has(r));
      const choice = hosting.length > 0 ? hosting : others;
      if (choice.length === 0) return replicas[0] ?? target;
      // Those that have not gone silent in this request are tried first, at random, so that
      // two replicas with a stale leader hint do not keep the client between them; when every
      // one has gone silent, any of them, at random: taking the first of a fixed ranking made
      // a client alternate between two paused replicas for its whole deadline while a third,
      // reachable again, was never asked.
      const fresh = choice.filter((r) => !silent.has(r));
      const pool = fresh.length > 0 ? fresh : choice;
      return pool[Math.floor(this.random() * pool.length)] as string;
    };
    // Two nodes, so that one corrupted reply (which also fails the MAC) is not taken for a wrong key.
    const keysRejected = () => this.verifiedFrom.size === 0 && [...tried].filter((node) => this.unverifiedFrom.has(node)).length >= Math.min(2, replicas.length);
    while (this.now() < deadline) {
      tried.add(target);
      const force = leaderFailures >= 1;
      const body = typeof message === "function" ? message(force) : message;
      const timeout = Math.min(attemptTimeoutMaxMs, attemptTimeoutMs * 2 ** Math.min(attempt, 4)) * (0.75 + 0.5 * this.random());
      if (sends++ === 0) firstSentAt = this.now();
      const answer = await this.sendAndWait(cell, id, body, target, Math.min(timeout, deadline - this.now()));
      attempt++;
      if (answer === null) {
        // Nothing this client could verify came back, but the node did answer: under keys
        // this client does not hold. Waiting longer cannot help.
        if (keysRejected()) throw this.keysRejectedError(cell, tried);
        if (targetLeads) leaderFailures++;
        this.leaders.delete(cell);
        evidence("silent", target);
        target = await elsewhere();
        continue;
      }
      evidence("answered", target);
      const outcome = answer.reply.outcome;
      // A node's own answer (to hello, create, join) is final, a refusal included.
      if (!toLeader && outcome.kind !== "overloaded") return { ...answer, sends, firstSentAt };
      switch (outcome.kind) {
        case "done":
        case "read":
        case "node":
        case "created":
        case "joined":
        case "exists":
          return { ...answer, sends, firstSentAt };
        case "redirect":
          if (++redirects > 3) leaderFailures++;
          if (outcome.leader !== null && nodePart(outcome.leader) !== target && this.options.nodes.has(nodePart(outcome.leader))) {
            target = nodePart(outcome.leader);
            targetLeads = true;
            this.leaders.set(cell, target);
            evidence("leader", target);
          } else {
            target = await elsewhere();
            await this.pause(20 * attempt);
          }
          break;
        case "overloaded":
          await this.pause(Math.min(1_000, 10 * 2 ** Math.min(attempt, 7)));
          break;
        case "unavailable":
          // A node without a replica tells discovery so; a replica that says it is no member
          // may only be behind (added, and still learning), so that stays with this request.
          if (/ is not hosted on /.test(outcome.reason)) {
            notHosted.add(target);
            evidence("notHosted", target);
          } else if (/ is not a member of cell /.test(outcome.reason)) notHosted.add(target);
          if (targetLeads) leaderFailures++;
          this.leaders.delete(cell);
          target = await elsewhere();
          await this.pause(Math.min(500, 10 * 2 ** Math.min(attempt, 5)));
          break;
        case "stale":
          target = await elsewhere();
          await this.pause(Math.min(500, 10 * 2 ** Math.min(attempt, 5)));
          break;
      }
    }
    if (keysRejected()) throw this.keysRejectedError(cell, tried);
    throw new UnreachableError(`Cannot reach cell ${cell}: no answer within ${deadlineMs} ms (tried ${[...tried].join(", ")} of ${replicas.join(", ")})`);
  }

  private keysRejectedError(cell: string, tried: ReadonlySet<string>): KeysRejectedError {
    const nodes = [...tried].filter((node) => this.unverifiedFrom.has(node));
    return new KeysRejectedError(`Cannot use cell ${cell}: the nodes reject this key file (${nodes.join(", ")} answered under keys it does not hold: is it another colony's, or older than a key rotation?)`);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms * (0.5 + this.random())));
  }

  private sendAndWait(cell: string, id: number, message: CellMessage | NodeMessage, target: string, timeoutMs: number): Promise<{ from: string; reply: ClientReply } | null> {
    const endpoint = this.options.nodes.get(target);
    if (endpoint === undefined || timeoutMs <= 0) return Promise.resolve(null);
    const ring = this.ringFor(message);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        resolve(null);
      }, timeoutMs);
      this.waiters.set(id, {
        resolve: (answer) => {
          clearTimeout(timer);
          this.waiters.delete(id);
          resolve(answer);
        },
      });
      const envelope: Envelope = { cell, message };
      this.options.transport.send(encodeMessages(ring, { sender: this.options.id, receiver: target, stamp: this.stamper.next(), messages: [envelope] }), endpoint);
    });
  }

  // Like a node's: the MAC first, then the role check (replies from known nodes only), then
  // the replay guard. Chunks (a large reply) are authenticated before they take memory.
  private receive(bytes: Uint8Array, from: Endpoint): void {
    const framed = decodeFrame(bytes, this.options.keys, { receiver: this.options.id, bytesMax: limits.messageBytesMax });
    if (!framed.ok) {
      const node = this.nodeAt.get(`${from.host}:${from.port}`);
      if (node !== undefined && (framed.reason === "unknownKey" || framed.reason === "badMac")) this.unverifiedFrom.add(node);
      return;
    }
    if (this.options.nodes.has(nodePart(framed.frame.sender))) this.verifiedFrom.add(nodePart(framed.frame.sender));
    if (framed.frame.kind === "frame") return this.receiveFrame(framed.frame);
    const chunk = framed.frame;
    if (!authorizeAtClient({ role: chunk.role, sender: chunk.sender, messages: [] }, this.facts).ok || !this.fresh(chunk)) return;
    const result = this.reassembler.add(chunk.sender, chunk.body, this.now());
    if (result.kind !== "frame") return;
    const inner = decodeFrame(result.frame, this.options.keys, { receiver: this.options.id, bytesMax: limits.messageBytesMax });
    if (inner.ok && inner.frame.kind === "frame" && inner.frame.sender === chunk.sender) this.receiveFrame(inner.frame);
  }

  private receiveFrame(frame: Frame): void {
    const body = decodeBody(frame.body);
    if (!body.ok) return;
    if (!authorizeAtClient({ role: frame.role, sender: frame.sender, messages: body.messages, discovery: body.discovery }, this.facts).ok || !this.fresh(frame)) return;
    for (const part of body.discovery) this.discoveryAnswer(nodePart(frame.sender), part);
    for (const { message } of body.messages) {
      if (message.kind !== "reply" || message.client !== this.options.id) continue;
      this.waiters.get(message.id)?.resolve({ from: nodePart(frame.sender), reply: message });
    }
  }

  private fresh(frame: Frame): boolean {
    return this.guard === null || this.guard.admit(nodePart(frame.sender), frame.stamp, true) === "fresh";
  }

  close(): void {
    for (const timer of this.lookups.values()) clearTimeout(timer);
    this.lookups.clear();
    for (const { settle } of [...this.asked.values()]) settle(null);
    this.wakeDiscovery();
    this.options.transport.close();
  }
}

function unreachable(cell: string, outcome: string): never {
  throw new UnreachableError(`Cannot complete the operation on cell ${cell}: ${outcome}`);
}

function rendezvous(cell: string, node: string): bigint {
  const hash = sha256(utf8(`${cell}\u0000${node}`));
  let score = 0n;
  for (let i = 0; i < 8; i++) score = (score << 8n) | BigInt(hash[i] as number);
  return score;
}
