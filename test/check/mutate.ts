// Ways to change a recorded result so that it no longer says the same thing.
import type { TxResult } from "../../src/core/kv.ts";
import type { Value } from "../../src/core/value.ts";

function other(value: Value | null): Value | null {
  if (value === null) return 424242n;
  if (typeof value === "bigint") return value + 1n;
  if (typeof value === "boolean") return !value;
  return new Uint8Array([...value, 0xee]);
}

/** Every mutation of `result` this suite knows; each differs from the original. */
export function mutations(result: TxResult): TxResult[] {
  if (result.status === "rejected") {
    return [
      { ...result, reason: result.reason === "wrongType" ? "cellFull" : "wrongType" },
      { status: "committed", reads: [], increments: [] },
    ];
  }
  const out: TxResult[] = [];
  result.reads.forEach((value, i) => {
    const reads = [...result.reads];
    reads[i] = other(value);
    out.push({ ...result, reads });
  });
  out.push({ ...result, reads: [...result.reads, null] });
  if (result.scan === undefined) {
    out.push({ ...result, scan: { entries: [], next: null } });
  } else {
    const { entries, next } = result.scan;
    out.push({ ...result, scan: { entries, next: next === null ? "zz" : null } });
    if (entries.length > 0) {
      out.push({ ...result, scan: { entries: entries.slice(1), next } });
      const [key, value] = entries[0]!;
      out.push({ ...result, scan: { entries: [[key, other(value) ?? 0n], ...entries.slice(1)], next } });
    }
  }
  if (result.status === "committed") {
    result.increments.forEach(([key, value], i) => {
      const increments = [...result.increments];
      increments[i] = [key, value + 1n];
      out.push({ ...result, increments });
    });
    out.push({ status: "conditionFailed", reads: result.reads, condition: 0, key: "a", actual: null });
    out.push({ status: "rejected", reason: "wrongType", detail: "" });
  } else {
    out.push({ ...result, condition: result.condition + 1 });
    out.push({ ...result, key: `${result.key}!` });
    out.push({ ...result, actual: other(result.actual) });
    const { condition: _c, key: _k, actual: _a, ...rest } = result;
    out.push({ ...rest, status: "committed", increments: [] });
  }
  return out;
}
