// The client library: finds a cell's replicas, sends a transaction, retries with
// exponential backoff and jitter, follows redirects to the leader, and keeps a session per
// cell so that eventually consistent reads never go back in time.
//
// Until the discovery cache exists, a cell's replicas are found from the topology alone:
// the `membersPerCell` nodes with the highest rendezvous hash of (cell, node). Every client
// computes the same answer, so `create` and later operations agree without a directory.

import { sha256 } from "@noble/hashes/sha2.js";
import type { TxResult } from "../core/kv.ts";
import type { CellMessage, ClientReply, CommandResult, ConfigChange, Consistency, Envelope, NodeMessage, Operation } from "../core/messages.ts";
import type { Transaction } from "../core/transaction.ts";
import { utf8 } from "../core/value.ts";
import { limits } from "../limits.ts";
import { Reassembler } from "../transport/chunks.ts";
import type { Endpoint, Transport } from "../transport/transport.ts";
import { type Frame, decodeFrame } from "../wire/frame.ts";
import { ReplayGuard, Stamper, freshEpoch } from "../wire/freshness.ts";
import { isPlainId, nodePart } from "../wire/ids.ts";
import type { KeyRing, KeySet, Role } from "../wire/keyring.ts";
import { encodeMessages } from "../wire/message.ts";
import { type ClientFacts, authorizeAtClient, classify } from "../wire/roles.ts";
import { decodeBody } from "../wire/schema.ts";

export class UnreachableError extends Error {
  override name = "UnreachableError";
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
  readonly now?: () => number;
  readonly random?: () => number;
  /** This process's epoch, in every frame it sends; default: wall-clock milliseconds now. */
  readonly epoch?: number;
  /** Whether replayed replies are dropped (default true). */
  readonly replayGuard?: boolean;
}

export interface OperationOptions {
  readonly consistency?: Consistency;
}

interface Waiter {
  readonly resolve: (reply: { from: string; reply: ClientReply }) => void;
}

const attemptTimeoutMs = 150;
const attemptTimeoutMaxMs = 1_600;

export class PhysaliaClient {
  private seq = 0;
  private readonly waiters = new Map<number, Waiter>();
  private readonly leaders = new Map<string, string>();
  private readonly sessions = new Map<string, number>();
  private readonly reassembler = new Reassembler();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly stamper: Stamper;
  private readonly guard: ReplayGuard | null;
  private readonly facts: ClientFacts;

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
    options.transport.onReceive((bytes) => this.receive(bytes));
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

  /** The nodes that host a cell, best first. */
  replicasFor(cell: string): string[] {
    const count = Math.min(this.options.membersPerCell ?? 7, this.options.nodes.size);
    const scored = [...this.options.nodes.keys()].map((node) => ({ node, score: rendezvous(cell, node) }));
    scored.sort((a, b) => (a.score < b.score ? 1 : a.score > b.score ? -1 : 0));
    return scored.slice(0, count).map((s) => s.node);
  }

  /** Creates the cell's replicas on its nodes; resolves with the members that confirmed. */
  async create(cell: string, alpha: number = limits.pipelineDepthDefault): Promise<{ members: string[]; confirmed: string[] }> {
    this.requireControl(`create cell ${cell}`);
    const members = this.replicasFor(cell);
    const confirmed = await Promise.all(members.map(async (node) => {
      const seq = ++this.seq;
      const message: NodeMessage = { kind: "create", client: this.options.id, seq, members, alpha };
      const answer = await this.exchange(cell, seq, message, [node]).catch(() => null);
      return answer !== null && answer.reply.outcome.kind === "done" ? node : null;
    }));
    const ok = confirmed.filter((n): n is string => n !== null);
    if (2 * ok.length <= members.length) {
      throw new UnreachableError(`Cannot create cell ${cell}: only ${ok.length} of ${members.length} replicas confirmed (${ok.join(", ") || "none"})`);
    }
    return { members, confirmed: ok };
  }

  /**
   * Asks `node` to host a joining replica of an existing cell (no state, no vote history),
   * before a membership change adds it.
   */
  async join(cell: string, node: string): Promise<void> {
    this.requireControl(`make ${node} join cell ${cell}`);
    // The node may be a former member coming back empty (it lost its disk and was removed).
    // Slots up to alpha after its removal may still be decided by the old membership, which
    // includes it; an empty acceptor must never vote there. Alpha sequential commands, each
    // in a later slot than the last, leave every such slot chosen before the node can vote.
    // We do not know this cell's alpha, so we use the largest a cell may have.
    for (let i = 0; i < limits.pipelineDepthMax; i++) await this.transact(cell, { reads: [], conditions: [], writes: [] });
    const seq = ++this.seq;
    const answer = await this.exchange(cell, seq, { kind: "create", client: this.options.id, seq, members: null, alpha: limits.pipelineDepthDefault }, [node]);
    if (answer.reply.outcome.kind !== "done") throw new UnreachableError(`Cannot make ${node} join cell ${cell}: ${answer.reply.outcome.kind}`);
  }

  async transact(cell: string, tx: Transaction, options: OperationOptions = {}): Promise<TxResult> {
    const result = await this.command(cell, { kind: "tx", tx }, options.consistency ?? "consistent");
    if (result.status === "configured") throw new Error("a transaction was answered with a membership result");
    return result;
  }

  /**
   * Changes a cell's membership, and returns once the change governs: a change applied at
   * slot i decides slots from i + alpha on, so until then the old membership still decides
   * (and the cell still needs the node being removed, and cannot count the one being added).
   */
  async configure(cell: string, change: ConfigChange): Promise<CommandResult> {
    this.requireControl(`change the members of cell ${cell}`);
    const result = await this.command(cell, { kind: "config", change }, "consistent");
    if (result.status === "configured") await this.advancePast(cell, result.effectiveSlot - 1);
    return result;
  }

  /** Runs empty transactions (each in a later slot) until this session has seen `slot`. */
  private async advancePast(cell: string, slot: number): Promise<void> {
    for (let i = 0; i < limits.pipelineDepthMax + 1 && (this.sessions.get(cell) ?? 0) < slot; i++) {
      await this.transact(cell, { reads: [], conditions: [], writes: [] });
    }
  }

  private async command(cell: string, op: Operation, consistency: Consistency): Promise<CommandResult> {
    const seq = ++this.seq;
    const replicas = this.replicasFor(cell);
    const request = (force: boolean): CellMessage => ({
      kind: "request", client: this.options.id, seq, op, consistency, minApplied: this.sessions.get(cell) ?? 0, force,
    });
    const { from, reply } = await this.exchange(cell, seq, request, replicas);
    const outcome = reply.outcome;
    if (outcome.kind === "done") {
      if (outcome.result.status !== "rejected") this.leaders.set(cell, from);
      this.sessions.set(cell, Math.max(this.sessions.get(cell) ?? 0, outcome.slot));
      return outcome.result;
    }
    if (outcome.kind === "read") {
      this.sessions.set(cell, Math.max(this.sessions.get(cell) ?? 0, outcome.applied));
      return outcome.result;
    }
    throw new UnreachableError(`Cannot complete the operation on cell ${cell}: ${outcome.kind}`);
  }

  /**
   * Sends one request until a final answer arrives: `done` or `read`. Redirects are followed,
   * `overloaded` backs off, `stale` and `unavailable` move on to another replica, and a
   * silent replica is retried elsewhere, with `force` once the leader itself went silent.
   */
  private async exchange(
    cell: string,
    seq: number,
    message: CellMessage | NodeMessage | ((force: boolean) => CellMessage),
    replicas: readonly string[],
  ): Promise<{ from: string; reply: ClientReply }> {
    const deadline = this.now() + (this.options.deadlineMs ?? 10_000);
    // Commands go to the leader when we know it; a node-level request goes to its one node.
    const toLeader = typeof message === "function";
    let target = (toLeader ? this.leaders.get(cell) : undefined) ?? replicas[Math.floor(this.random() * replicas.length)] ?? "";
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
    const elsewhere = () => {
      targetLeads = false;
      const others = replicas.filter((r) => r !== target);
      return others.length === 0 ? target : (others[Math.floor(this.random() * others.length)] as string);
    };
    while (this.now() < deadline) {
      tried.add(target);
      const force = leaderFailures >= 1;
      const body = typeof message === "function" ? message(force) : message;
      const timeout = Math.min(attemptTimeoutMaxMs, attemptTimeoutMs * 2 ** Math.min(attempt, 4)) * (0.75 + 0.5 * this.random());
      const answer = await this.sendAndWait(cell, seq, body, target, Math.min(timeout, deadline - this.now()));
      attempt++;
      if (answer === null) {
        if (targetLeads) leaderFailures++;
        this.leaders.delete(cell);
        target = elsewhere();
        continue;
      }
      const outcome = answer.reply.outcome;
      switch (outcome.kind) {
        case "done":
        case "read":
          return answer;
        case "redirect":
          if (++redirects > 3) leaderFailures++;
          if (outcome.leader !== null && outcome.leader !== target && this.options.nodes.has(outcome.leader)) {
            target = outcome.leader;
            targetLeads = true;
            this.leaders.set(cell, target);
          } else {
            target = elsewhere();
            await this.pause(20 * attempt);
          }
          break;
        case "overloaded":
          await this.pause(Math.min(1_000, 10 * 2 ** Math.min(attempt, 7)));
          break;
        case "unavailable":
          if (targetLeads) leaderFailures++;
          this.leaders.delete(cell);
          target = elsewhere();
          await this.pause(Math.min(500, 10 * 2 ** Math.min(attempt, 5)));
          break;
        case "stale":
          target = elsewhere();
          await this.pause(Math.min(500, 10 * 2 ** Math.min(attempt, 5)));
          break;
      }
    }
    throw new UnreachableError(`Cannot reach cell ${cell}: no answer within ${this.options.deadlineMs ?? 10_000} ms (tried ${[...tried].join(", ")})`);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms * (0.5 + this.random())));
  }

  private sendAndWait(cell: string, seq: number, message: CellMessage | NodeMessage, target: string, timeoutMs: number): Promise<{ from: string; reply: ClientReply } | null> {
    const endpoint = this.options.nodes.get(target);
    if (endpoint === undefined || timeoutMs <= 0) return Promise.resolve(null);
    const ring = this.ringFor(message);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters.delete(seq);
        resolve(null);
      }, timeoutMs);
      this.waiters.set(seq, {
        resolve: (answer) => {
          clearTimeout(timer);
          this.waiters.delete(seq);
          resolve(answer);
        },
      });
      const envelope: Envelope = { cell, message };
      this.options.transport.send(encodeMessages(ring, { sender: this.options.id, receiver: target, stamp: this.stamper.next(), messages: [envelope] }), endpoint);
    });
  }

  // Like a node's: the MAC first, then the role check (replies from known nodes only), then
  // the replay guard. Chunks (a large reply) are authenticated before they take memory.
  private receive(bytes: Uint8Array): void {
    const framed = decodeFrame(bytes, this.options.keys, { receiver: this.options.id, bytesMax: limits.messageBytesMax });
    if (!framed.ok) return;
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
    if (!authorizeAtClient({ role: frame.role, sender: frame.sender, messages: body.messages }, this.facts).ok || !this.fresh(frame)) return;
    for (const { message } of body.messages) {
      if (message.kind !== "reply" || message.client !== this.options.id) continue;
      this.waiters.get(message.seq)?.resolve({ from: nodePart(frame.sender), reply: message });
    }
  }

  private fresh(frame: Frame): boolean {
    return this.guard === null || this.guard.admit(nodePart(frame.sender), frame.stamp, true) === "fresh";
  }

  close(): void {
    this.options.transport.close();
  }
}

function rendezvous(cell: string, node: string): bigint {
  const hash = sha256(utf8(`${cell}\u0000${node}`));
  let score = 0n;
  for (let i = 0; i < 8; i++) score = (score << 8n) | BigInt(hash[i] as number);
  return score;
}
