// Deterministic concurrent histories for the checker's speed test and benchmark: clients
// issue transactions one after another; each takes effect at one moment inside its interval
// (or, when its client times out, at any later moment or never), and results come from
// applying them to a KvStore in the order of those moments. Such a history is linearizable
// by construction.

import { HistoryRecorder } from "../../src/check/recorder.ts";
import { KvStore, type TxResult } from "../../src/core/kv.ts";
import type { Transaction } from "../../src/core/transaction.ts";
import { type Value, utf8 } from "../../src/core/value.ts";

export interface SimulationOptions {
  readonly seed: number;
  readonly clients: number;
  readonly opsPerClient: number;
  readonly keys: number;
  /** Fraction of operations whose client gives up; half of those never take effect. */
  readonly timeoutRate: number;
  /** Longest interval between invocation and response, in ticks. */
  readonly durationTicksMax: number;
}

export interface SimulatedHistory {
  readonly recorder: HistoryRecorder;
  readonly cell: string;
}

interface Planned {
  readonly client: string;
  readonly tx: Transaction;
  readonly invokedAt: number;
  readonly endedAt: number;
  /** When it takes effect, or null for never. */
  readonly appliedAt: number | null;
  readonly timedOut: boolean;
  result: TxResult | null;
}

/** mulberry32: small, fast and good enough to pick test inputs. */
export function prng(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function simulateHistory(options: SimulationOptions): SimulatedHistory {
  const random = prng(options.seed);
  const below = (n: number): number => Math.floor(random() * n);
  const keys = Array.from({ length: options.keys }, (_, i) => `k${i}`);
  const key = (): string => keys[below(keys.length)]!;
  const value = (): Value => (random() < 0.5 ? BigInt(below(4)) : utf8(`v${below(4)}`));
  const transaction = (): Transaction => {
    const kind = below(8);
    if (kind <= 1) return { reads: [key(), key()], conditions: [], writes: [] };
    if (kind === 2) return { reads: [], conditions: [], writes: [{ key: key(), op: "put", value: value() }] };
    if (kind === 3) return { reads: [], conditions: [], writes: [{ key: key(), op: "increment", by: 1n }] };
    if (kind === 4) return { reads: [], conditions: [], writes: [{ key: key(), op: "delete" }] };
    if (kind === 5) return { reads: [], conditions: [], writes: [], scan: { start: key(), limit: 1 + below(3) } };
    const [a, b] = [key(), key()];
    return {
      reads: [a],
      conditions: [random() < 0.5 ? { key: a, test: "notExists" } : { key: a, test: "equals", value: value() }],
      writes: a === b ? [{ key: b, op: "put", value: value() }] : [{ key: b, op: "put", value: value() }, { key: a, op: "delete" }],
    };
  };

  const planned: Planned[] = [];
  for (let c = 0; c < options.clients; c++) {
    let now = below(3);
    for (let i = 0; i < options.opsPerClient; i++) {
      const duration = 1 + below(options.durationTicksMax);
      const timedOut = random() < options.timeoutRate;
      const appliedAt = !timedOut
        ? now + random() * duration
        : random() < 0.5 ? null : now + random() * duration * 20;
      planned.push({ client: `client-${c}`, tx: transaction(), invokedAt: now, endedAt: now + duration, appliedAt, timedOut, result: null });
      now += duration + below(3);
    }
  }

  const store = new KvStore();
  const applied = planned.filter((p) => p.appliedAt !== null).sort((a, b) => a.appliedAt! - b.appliedAt!);
  for (const p of applied) p.result = store.apply(p.tx);

  const cell = `cell-${options.seed}`;
  const recorder = new HistoryRecorder();
  for (const p of [...planned].sort((a, b) => a.invokedAt - b.invokedAt)) {
    const id = recorder.invoke(cell, p.client, p.tx, p.invokedAt);
    if (p.timedOut) recorder.timeout(id, p.endedAt);
    else recorder.complete(id, p.result!, p.endedAt);
  }
  return { recorder, cell };
}
