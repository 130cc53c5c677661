// A tiny synchronous network of replicas for transcript-style tests: the test decides what
// is delivered, dropped or partitioned; records are durable at once.

import { type DurableRecord, type Outgoing, clearEffects, createEffects } from "../../src/core/effects.ts";
import type { ClientReply, Consistency, Operation } from "../../src/core/messages.ts";
import type { Mutation } from "../../src/core/mutations.ts";
import { Replica, type ReplicaEnv } from "../../src/core/replica.ts";
import { limits } from "../../src/limits.ts";

export interface InFlight {
  readonly from: string;
  readonly out: Outgoing;
}

export class Cluster {
  readonly replicas = new Map<string, Replica>();
  readonly records = new Map<string, DurableRecord[]>();
  readonly pending: InFlight[] = [];
  readonly replies: (ClientReply & { from: string })[] = [];
  readonly down = new Set<string>();
  /** Links cut in both directions, as "a|b" with a < b. */
  readonly cut = new Set<string>();
  now = 0;
  /** Prints every message `deliver` hands over, when set (for debugging a schedule). */
  trace: ((line: string) => void) | null = null;
  private readonly effects = createEffects();

  private readonly mutations: readonly Mutation[];
  private readonly eagerProposals: boolean;

  /** `eagerProposals`: every request proposed into a slot of its own as it comes (ReplicaOptions). */
  constructor(readonly cell: string, readonly genesis: readonly string[], options: { alpha?: number; mutations?: readonly Mutation[]; eagerProposals?: boolean } = {}) {
    const members = genesis;
    this.mutations = options.mutations ?? [];
    this.eagerProposals = options.eagerProposals ?? false;
    for (const id of members) {
      const genesis = options.alpha === undefined ? { members } : { members, alpha: options.alpha };
      this.replicas.set(id, new Replica({ cell, self: id, env: this.env(id), genesis, mutations: this.mutations, eagerProposals: this.eagerProposals }));
      this.records.set(id, []);
    }
  }

  env(self: string): ReplicaEnv {
    return { isAlive: (peer) => !this.down.has(peer) && this.linked(self, peer) && this.replicas.has(peer), jitter: () => 0.5 };
  }

  linked(a: string, b: string): boolean {
    return !this.cut.has(a < b ? `${a}|${b}` : `${b}|${a}`);
  }

  isolate(id: string): void {
    for (const other of this.replicas.keys()) if (other !== id) this.cut.add(id < other ? `${id}|${other}` : `${other}|${id}`);
  }

  replica(id: string): Replica {
    const replica = this.replicas.get(id);
    if (replica === undefined) throw new Error(`no replica ${id}`);
    return replica;
  }

  /** A replica that joins later, with no state. */
  join(id: string): Replica {
    const replica = new Replica({ cell: this.cell, self: id, env: this.env(id), mutations: this.mutations, eagerProposals: this.eagerProposals });
    this.replicas.set(id, replica);
    this.records.set(id, []);
    return replica;
  }

  /** Replaces a replica by one rebuilt from its records, as after a crash. */
  restart(id: string, records: Iterable<DurableRecord> = this.records.get(id) ?? []): Replica {
    const options = { cell: this.cell, self: id, env: this.env(id), mutations: this.mutations, eagerProposals: this.eagerProposals };
    const replica = Replica.recover(this.genesis.includes(id) ? { ...options, genesis: { members: this.genesis } } : options, records);
    this.replicas.set(id, replica);
    return replica;
  }

  private collect(from: string): void {
    for (const { record } of this.effects.records) this.records.get(from)?.push(record);
    for (const out of this.effects.messages) {
      if (this.replicas.has(out.to)) this.pending.push({ from, out });
      else if (out.message.kind === "reply") this.replies.push({ ...out.message, from });
    }
    clearEffects(this.effects);
  }

  /** Each client's session, opened through the log on its first consistent request. */
  readonly sessions = new Map<string, number>();
  private requestIds = 0;

  /**
   * Sends a client's command: in its session (opened first, with everything delivered, if it
   * has none yet; a test that cannot let messages flow calls `openSession` beforehand).
   * Retries reuse the seq. The reply's `id` is the seq, so tests can match it.
   */
  request(to: string, client: string, seq: number, op: Operation, options: { consistency?: Consistency; force?: boolean; minApplied?: number; acked?: number } = {}): void {
    const consistency = options.consistency ?? "consistent";
    const eventual = consistency === "eventual";
    const session = eventual ? 0 : this.sessions.get(client) ?? this.openSession(to, client);
    this.replica(to).step(client, {
      kind: "request", client, id: seq, session, seq, acked: options.acked ?? seq, op, consistency, minApplied: options.minApplied ?? 0, force: options.force ?? false,
    }, this.now, this.effects);
    this.collect(to);
  }

  /**
   * Opens a session for `client` through replica `to` (following redirects), delivering
   * everything until it is answered; the answer is not left among `replies`.
   */
  openSession(to: string, client: string): number {
    const id = 1_000_000 + ++this.requestIds;
    let target = to;
    for (let tries = 0; tries < 5; tries++) {
      const before = this.replies.length;
      this.replica(target).step(client, {
        kind: "request", client, id, session: 0, seq: 0, acked: 0, op: { kind: "openSession", client, nonce: id },
        consistency: "consistent", minApplied: 0, force: false,
      }, this.now, this.effects);
      this.collect(target);
      this.run();
      const answers = this.replies.splice(before).filter((r) => r.client === client && r.id === id);
      this.replies.push(...this.replies.splice(before).filter((r) => !(r.client === client && r.id === id)));
      const done = answers.find((r) => r.outcome.kind === "done");
      if (done !== undefined && done.outcome.kind === "done" && done.outcome.result.status === "session") {
        this.sessions.set(client, done.outcome.result.session);
        return done.outcome.result.session;
      }
      const redirect = answers.find((r) => r.outcome.kind === "redirect");
      if (redirect === undefined || redirect.outcome.kind !== "redirect" || redirect.outcome.leader === null) break;
      target = redirect.outcome.leader;
    }
    throw new Error(`openSession: ${client} got no session through ${to}`);
  }

  /**
   * Delivers, one at a time and in order, the pending messages that `which` selects, and the
   * ones they cause that it also selects, until none is left; the others stay pending.
   */
  deliver(which: (m: InFlight) => boolean, limit = 10_000): number {
    let delivered = 0;
    for (;;) {
      const index = this.pending.findIndex(which);
      if (index < 0) return delivered;
      if (++delivered > limit) throw new Error("deliver: too many messages");
      const [{ from, out }] = this.pending.splice(index, 1) as [InFlight];
      this.trace?.(`${from} -> ${out.to} ${out.message.kind} ${JSON.stringify(out.message, (_, v) => (typeof v === "bigint" ? String(v) : v instanceof Uint8Array ? "bytes" : v)).slice(0, 200)}`);
      this.replica(out.to).step(from, out.message, this.now, this.effects);
      this.collect(out.to);
    }
  }

  /** Drops the pending messages that `which` selects; returns how many. */
  drop(which: (m: InFlight) => boolean): number {
    const before = this.pending.length;
    const kept = this.pending.filter((m) => !which(m));
    this.pending.length = 0;
    this.pending.push(...kept);
    return before - kept.length;
  }

  /** Delivers pending messages (and what they cause) until none are left; drops those across a cut or to a down node. */
  settle(limit = 100_000): number {
    let delivered = 0;
    while (this.pending.length > 0) {
      if (++delivered > limit) throw new Error("settle: too many messages");
      const { from, out } = this.pending.shift() as InFlight;
      if (this.down.has(out.to) || this.down.has(from) || !this.linked(from, out.to)) continue;
      this.replica(out.to).step(from, out.message, this.now, this.effects);
      this.collect(out.to);
    }
    return delivered;
  }

  /**
   * Settles, then lets the leader's commit go out (it waits limits.commitDelayMs for an
   * accept to carry it) and settles again: every live replica then knows what was chosen.
   */
  settleCommitted(): void {
    this.settle();
    this.advance(limits.commitDelayMs);
    this.settle();
  }

  /** Ticks one replica at the current time (tests that deliver by hand choose who acts). */
  tickOne(id: string): void {
    this.replica(id).tick(this.now, this.effects);
    this.collect(id);
  }

  /** Advances time and ticks every replica whose deadline passed. */
  advance(ms: number): void {
    this.now += ms;
    for (const [id, replica] of this.replicas) {
      if (this.down.has(id)) continue;
      const deadline = replica.nextDeadline();
      if (deadline !== null && deadline <= this.now) {
        replica.tick(this.now, this.effects);
        this.collect(id);
      }
    }
  }

  /** Runs time forward, delivering everything, until every live replica is quiet. */
  run(stepMs = 10, steps = 500): void {
    for (let i = 0; i < steps; i++) {
      this.settle();
      if ([...this.replicas.entries()].every(([id, r]) => this.down.has(id) || r.nextDeadline() === null)) return;
      this.advance(stepMs);
    }
  }

  lastReply(client: string): (ClientReply & { from: string }) | undefined {
    return [...this.replies].reverse().find((r) => r.client === client);
  }
}
