// Records the history of client invocations and responses, per cell. Times are whatever the
// caller uses (simulated ticks or milliseconds); the recorder reads no clock, so a seeded
// simulation records the same history every time.

import { assert } from "../core/assert.ts";
import type { TxResult } from "../core/kv.ts";
import type { Transaction } from "../core/transaction.ts";
import type { OpId, Operation } from "./operation.ts";

type Status = "pending" | "completed" | "unknown" | "failed";

interface Call {
  readonly id: OpId;
  readonly cell: string;
  readonly client: string;
  readonly tx: Transaction;
  readonly invokedAt: number;
  status: Status;
  result: TxResult | null;
  /** The response time when completed, the give-up time when unknown. */
  endedAt: number | null;
}

export class HistoryRecorder {
  private readonly records: Call[] = [];
  private readonly byCell = new Map<string, OpId[]>();

  /** Operations recorded so far, in every cell. */
  get size(): number {
    return this.records.length;
  }

  /** Notes that `client` sent `tx` to `cell` at time `at`. */
  invoke(cell: string, client: string, tx: Transaction, at: number): OpId {
    assert(Number.isFinite(at), `invoke: time ${at} is not finite`);
    const id = this.records.length;
    this.records.push({ id, cell, client, tx, invokedAt: at, status: "pending", result: null, endedAt: null });
    const ids = this.byCell.get(cell);
    if (ids === undefined) this.byCell.set(cell, [id]);
    else ids.push(id);
    return id;
  }

  /**
   * Notes the result the client received at `at`. A reply that arrives after the client gave
   * up (`timeout`) is still accepted: it turns the unknown outcome into a known one.
   */
  complete(id: OpId, result: TxResult, at: number): void {
    const record = this.record(id, "complete", at);
    assert(record.status === "pending" || record.status === "unknown", `complete: operation ${id} is already ${record.status}`);
    record.status = "completed";
    record.result = result;
    record.endedAt = at;
  }

  /** Notes that the client stopped waiting at `at`: the operation may or may not take effect, at any later time. */
  timeout(id: OpId, at: number): void {
    const record = this.record(id, "timeout", at);
    assert(record.status === "pending", `timeout: operation ${id} is already ${record.status}`);
    record.status = "unknown";
    record.endedAt = at;
  }

  /**
   * Notes that the operation certainly had no effect, for example a cell refused it as
   * overloaded before proposing it and no earlier attempt of the same call was sent. It is
   * left out of the history. When in doubt, use `timeout`: it is always safe.
   */
  fail(id: OpId, at: number): void {
    const record = this.record(id, "fail", at);
    assert(record.status === "pending", `fail: operation ${id} is already ${record.status}`);
    record.status = "failed";
    record.endedAt = at;
  }

  /** Cells with at least one invocation, in the order they were first used. */
  cells(): string[] {
    return [...this.byCell.keys()];
  }

  /** The cell's operations in invocation order; an operation still pending is reported with an unknown outcome. */
  history(cell: string): Operation[] {
    const out: Operation[] = [];
    for (const id of this.byCell.get(cell) ?? []) {
      const r = this.records[id]!;
      const base = { id: r.id, cell: r.cell, client: r.client, tx: r.tx, invokedAt: r.invokedAt };
      if (r.status === "completed") {
        assert(r.result !== null && r.endedAt !== null, "completed operation without a result");
        out.push({ ...base, outcome: "completed", result: r.result, respondedAt: r.endedAt });
      } else if (r.status !== "failed") {
        out.push({ ...base, outcome: "unknown", gaveUpAt: r.endedAt });
      }
    }
    return out;
  }

  private record(id: OpId, what: string, at: number): Call {
    const record = this.records[id];
    assert(record !== undefined, `${what}: no operation ${id}`);
    assert(Number.isFinite(at) && at >= record.invokedAt, `${what}: time ${at} is before operation ${id} was invoked at ${record.invokedAt}`);
    return record;
  }
}
