// Clients whose every transaction goes into a history for the linearizability checker, and
// the workload the nemesis runs them in: each worker increments a counter only it writes,
// so it knows how many of its increments could have happened, and puts, reads and
// compare-and-sets a few keys it shares with the other workers of its cell.

import type { HistoryRecorder } from "../../src/check/recorder.ts";
import { OutcomeUnknownError, type PhysaliaClient, SessionRefusedError, UnreachableError } from "../../src/client/client.ts";
import type { TxResult } from "../../src/core/kv.ts";
import type { Transaction } from "../../src/core/transaction.ts";
import { type Value, utf8 } from "../../src/core/value.ts";
import type { Rng } from "../../src/random.ts";
import type { ClientProxy } from "./nemesis-proxy.ts";
import type { ProcessColony } from "./support.ts";

export type Outcome =
  | { readonly kind: "result"; readonly result: TxResult }
  | { readonly kind: "unknown"; readonly why: string };

/** Rejections only the session layer gives; a client that runs one command at a time must never be handed one. */
const sessionReasons = new Set(["sessionExpired", "staleRequest", "tooManyPending", "sessionsFull"]);

export class RecordedClient {
  /** Answers no correct cell gives this client: each one a bug to report. */
  readonly anomalies: string[] = [];

  constructor(readonly id: string, readonly client: PhysaliaClient, private readonly recorder: HistoryRecorder) {}

  /**
   * Runs one transaction and records it: completed with its result, or of unknown outcome
   * when the client gave up (its deadline passed, the session expired while it retried, or
   * no session could be opened: all may or may not have applied it, never twice).
   */
  async transact(cell: string, tx: Transaction): Promise<Outcome> {
    const op = this.recorder.invoke(cell, this.id, tx, performance.now());
    try {
      const result = await this.client.transact(cell, tx);
      if (result.status === "rejected" && sessionReasons.has(result.reason)) {
        this.recorder.timeout(op, performance.now());
        // The client library turns session-layer refusals into errors; one reaching here is a
        // bug, recorded as unknown (a copy of the command could still be applied) and reported.
        this.anomalies.push(`${this.id} on ${cell}: a transaction was answered ${result.reason} (${result.detail})`);
        return { kind: "unknown", why: result.reason };
      }
      this.recorder.complete(op, result, performance.now());
      return { kind: "result", result };
    } catch (error) {
      this.recorder.timeout(op, performance.now());
      if (error instanceof UnreachableError || error instanceof OutcomeUnknownError || error instanceof SessionRefusedError) {
        return { kind: "unknown", why: error.name };
      }
      this.anomalies.push(`${this.id} on ${cell}: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`);
      return { kind: "unknown", why: "error" };
    }
  }
}

export interface WorkerCounts {
  operations: number;
  committed: number;
  conditionFailed: number;
  rejected: number;
  unknown: number;
  incrementsCommitted: number;
  incrementsUnknown: number;
}

export const sharedKeys = ["shared/0", "shared/1", "shared/2"];

/**
 * One loop of transactions on one cell until told to stop. Several workers (lanes) may share
 * one client, whose commands then overlap in its one session; each lane has its own counter.
 */
export class Worker {
  readonly counts: WorkerCounts = { operations: 0, committed: 0, conditionFailed: 0, rejected: 0, unknown: 0, incrementsCommitted: 0, incrementsUnknown: 0 };
  /** Broken promises about the worker's own counter, each a double (or lost) increment. */
  readonly counterProblems: string[] = [];
  private readonly lastSeen = new Map<string, Value | null>();
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private n = 0;

  constructor(
    readonly recorded: RecordedClient,
    readonly cell: string,
    readonly proxy: ClientProxy,
    private readonly rng: Rng,
    readonly lane = 0,
  ) {}

  get id(): string {
    return `${this.recorded.id}/${this.lane}`;
  }

  get counterKey(): string {
    return `count/${this.id}`;
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.step();
        // A little think time, so that a history stays small enough to check.
        await Bun.sleep(this.rng.nextInt(15));
      }
    })();
  }

  /** Stops after the transaction in flight. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Reads the counter once more (recorded) and checks it against what the worker knows. */
  async finalCheck(): Promise<Outcome> {
    const outcome = await this.recorded.transact(this.cell, { reads: [this.counterKey], conditions: [], writes: [] });
    if (outcome.kind === "result" && outcome.result.status === "committed") {
      const value = outcome.result.reads[0] ?? null;
      const count = value === null ? 0n : typeof value === "bigint" ? value : -1n;
      const low = BigInt(this.counts.incrementsCommitted);
      const high = low + BigInt(this.counts.incrementsUnknown);
      if (count < low || count > high) {
        this.counterProblems.push(`${this.id}: counter is ${count} at the end, but ${low} increments committed and ${this.counts.incrementsUnknown} more are unknown`);
      }
    }
    return outcome;
  }

  private async step(): Promise<void> {
    const n = ++this.n;
    const shared = sharedKeys[this.rng.nextInt(sharedKeys.length)] as string;
    const pick = this.rng.nextInt(100);
    let tx: Transaction;
    let increment = false;
    if (pick < 40) {
      increment = true;
      tx = { reads: pick < 20 ? [this.counterKey] : [], conditions: [], writes: [{ key: this.counterKey, op: "increment", by: 1n }] };
    } else if (pick < 65) {
      tx = { reads: [], conditions: [], writes: [{ key: shared, op: "put", value: utf8(`${this.id}:${n}`) }] };
    } else if (pick < 85) {
      tx = { reads: [this.counterKey, shared], conditions: [], writes: [] };
    } else {
      const seen = this.lastSeen.get(shared) ?? null;
      tx = {
        reads: [shared],
        conditions: [seen === null ? { key: shared, test: "notExists" } : { key: shared, test: "equals", value: seen }],
        writes: [{ key: shared, op: "put", value: utf8(`${this.id}:cas:${n}`) }],
      };
    }
    const before = { committed: this.counts.incrementsCommitted, unknown: this.counts.incrementsUnknown };
    const outcome = await this.recorded.transact(this.cell, tx);
    this.counts.operations++;
    if (outcome.kind === "unknown") {
      this.counts.unknown++;
      if (increment) this.counts.incrementsUnknown++;
      return;
    }
    const result = outcome.result;
    if (result.status === "committed") this.counts.committed++;
    else if (result.status === "conditionFailed") this.counts.conditionFailed++;
    else this.counts.rejected++;
    if (result.status !== "rejected") tx.reads.forEach((key, i) => this.lastSeen.set(key, result.reads[i] ?? null));
    if (!increment || result.status !== "committed") return;
    this.counts.incrementsCommitted++;
    // Only this worker writes its counter: the new value counts its increments so far,
    // at least every committed one and at most every unknown one too.
    const value = result.increments[0]?.[1] ?? -1n;
    const low = BigInt(before.committed + 1);
    const high = low + BigInt(before.unknown);
    if (value < low || value > high) {
      this.counterProblems.push(`${this.id}: increment ${n} made the counter ${value}, but only ${before.committed} increments committed before it and ${before.unknown} are unknown`);
    }
  }
}

/** Adds up the workers' counts. */
export function totalCounts(workers: readonly Worker[]): WorkerCounts {
  const total: WorkerCounts = { operations: 0, committed: 0, conditionFailed: 0, rejected: 0, unknown: 0, incrementsCommitted: 0, incrementsUnknown: 0 };
  for (const worker of workers) for (const key of Object.keys(total) as (keyof WorkerCounts)[]) total[key] += worker.counts[key];
  return total;
}

export interface OthersOptions {
  /** Clients at work at once. */
  readonly concurrency?: number;
  /** Ids are `${prefix}${i}`. */
  readonly prefix?: string;
}

/** `count` other clients each open a session with the cell, commit one put, and end their session. */
export async function othersUseCell(colony: ProcessColony, cell: string, count: number, options: OthersOptions = {}): Promise<void> {
  let next = 0;
  const prefix = options.prefix ?? "other-";
  const one = async () => {
    for (let i = next++; i < count; i = next++) {
      const client = await colony.client(`${prefix}${i}`, "client.json");
      const result = await client.transact(cell, { reads: [], conditions: [], writes: [{ key: `others/${prefix}${i}`, op: "put", value: true }] });
      if (result.status !== "committed") throw new Error(`${prefix}${i}: ${JSON.stringify(result)}`);
      await client.end();
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, one));
}
