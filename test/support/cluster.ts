// A tiny synchronous network of replicas for transcript-style tests: the test decides what
// is delivered, dropped or partitioned; records are durable at once.

import { type DurableRecord, type Outgoing, clearEffects, createEffects } from "../../src/core/effects.ts";
import type { ClientReply, Consistency, Operation } from "../../src/core/messages.ts";
import { Replica, type ReplicaEnv } from "../../src/core/replica.ts";

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
  private readonly effects = createEffects();

  constructor(readonly cell: string, readonly genesis: readonly string[], options: { alpha?: number } = {}) {
    const members = genesis;
    for (const id of members) {
      const genesis = options.alpha === undefined ? { members } : { members, alpha: options.alpha };
      this.replicas.set(id, new Replica({ cell, self: id, env: this.env(id), genesis }));
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
    const replica = new Replica({ cell: this.cell, self: id, env: this.env(id) });
    this.replicas.set(id, replica);
    this.records.set(id, []);
    return replica;
  }

  /** Replaces a replica by one rebuilt from its records, as after a crash. */
  restart(id: string, records: Iterable<DurableRecord> = this.records.get(id) ?? []): Replica {
    const options = { cell: this.cell, self: id, env: this.env(id) };
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

  request(to: string, client: string, seq: number, op: Operation, options: { consistency?: Consistency; force?: boolean; minApplied?: number } = {}): void {
    this.replica(to).step(client, {
      kind: "request", client, seq, op, consistency: options.consistency ?? "consistent", minApplied: options.minApplied ?? 0, force: options.force ?? false,
    }, this.now, this.effects);
    this.collect(to);
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
