// A brute-force linearizability oracle for small histories, written independently of the
// checker's search: it tries every order that respects real time, and every subset of the
// operations with an unknown outcome, comparing results through a printed summary.
import type { Operation } from "../../src/check/operation.ts";
import { KvStore, type TxResult } from "../../src/core/kv.ts";
import { toHex } from "../../src/core/bytes.ts";
import type { Value } from "../../src/core/value.ts";

const show = (v: Value | null | undefined): string =>
  v === null || v === undefined ? "none" : typeof v === "bigint" ? `i${v}` : typeof v === "boolean" ? `b${v}` : `x${toHex(v)}`;

/** Everything a result says except the prose of a rejection. */
export function summary(result: TxResult): string {
  if (result.status === "rejected") return `rejected ${result.reason}`;
  const scan = result.scan === undefined
    ? "-"
    : `${result.scan.entries.map(([k, v]) => `${k}=${show(v)}`).join(",")}|${result.scan.next ?? "end"}`;
  const common = `${result.reads.map(show).join(",")} scan ${scan}`;
  if (result.status === "committed") return `committed ${common} inc ${result.increments.map(([k, v]) => `${k}=${v}`).join(",")}`;
  return `failed ${common} at ${result.condition} ${result.key}=${show(result.actual)}`;
}

export function bruteForceLinearizable(ops: readonly Operation[], initial = new KvStore()): boolean {
  const go = (store: KvStore, remaining: readonly Operation[]): boolean => {
    if (remaining.every((op) => op.outcome === "unknown")) return true;
    for (const op of remaining) {
      const mustWait = remaining.some((p) => p !== op && p.outcome === "completed" && p.respondedAt < op.invokedAt);
      if (mustWait) continue;
      const next = store.clone();
      const result = next.apply(op.tx);
      if (op.outcome === "completed" && summary(result) !== summary(op.result)) continue;
      if (go(next, remaining.filter((p) => p !== op))) return true;
    }
    return false;
  };
  return go(initial, ops);
}
