// Sessions and leases in the cell's state, applied slot by slot as the log would: exactly
// once, expiry by the log-carried clock, the bounded table, the window, and leases.

import { describe, expect, test } from "bun:test";
import { CellState } from "../../src/core/cellstate.ts";
import type { Command, CommandResult, LogValue, Operation } from "../../src/core/messages.ts";
import { limits } from "../../src/limits.ts";

const leader = { round: 1, node: "n1~0000000000000001" };

/** A cell and a log: each `apply` is the next slot, stamped by one leader's clock at `time`. */
class Log {
  readonly state: CellState;
  slot = 0;
  constructor(settings: { sessionTtlMs?: number; sessionsMax?: number } = {}) {
    this.state = CellState.genesis(["n1~0000000000000001", "n2~0000000000000002", "n3~0000000000000003"], settings);
  }

  apply(time: number, ...commands: Command[]): CommandResult[] {
    const value: LogValue = { kind: "batch", commands, stamp: { ballot: leader, time } };
    return this.state.apply(++this.slot, value).map((r) => r.result);
  }

  open(time: number, client = "c", nonce = 1): number {
    const [result] = this.apply(time, { session: 0, seq: 0, acked: 0, op: { kind: "openSession", client, nonce } });
    if (result?.status !== "session") throw new Error(`no session: ${JSON.stringify(result)}`);
    return result.session;
  }
}

const increment: Operation = { kind: "tx", tx: { reads: [], conditions: [], writes: [{ key: "n", op: "increment", by: 1n }] } };
const read = (state: CellState) => state.kv.get("n");

describe("sessions in the log", () => {
  test("a retry is answered from the session and a copy below the acknowledged mark is refused: nothing is carried out twice", () => {
    const log = new Log();
    const s = log.open(0);
    const [first] = log.apply(10, { session: s, seq: 1, acked: 1, op: increment });
    const [retry] = log.apply(20, { session: s, seq: 1, acked: 1, op: increment });
    expect(retry).toEqual(first as CommandResult);
    log.apply(30, { session: s, seq: 2, acked: 2, op: increment });
    const [late] = log.apply(40, { session: s, seq: 1, acked: 1, op: increment });
    expect(late).toMatchObject({ status: "rejected", reason: "staleRequest" });
    expect(read(log.state)).toBe(2n);
  });

  test("a retried open whose answer was lost gets the same session, not another", () => {
    const log = new Log();
    const a = log.open(0, "c", 7);
    const b = log.open(5, "c", 7);
    expect(b).toBe(a);
    expect(log.state.sessionCount).toBe(1);
    expect(log.open(6, "c", 8)).not.toBe(a);
  });

  test("a session unused for its lifetime of the cell's time expires, and its commands are refused for ever", () => {
    const log = new Log({ sessionTtlMs: 1_000 });
    const s = log.open(0);
    log.apply(500, { session: s, seq: 1, acked: 1, op: increment });
    // Another client keeps the log (and its clock) moving.
    const other = log.open(600, "d");
    log.apply(1_600, { session: other, seq: 1, acked: 1, op: increment });
    const [refused] = log.apply(1_700, { session: s, seq: 2, acked: 2, op: increment });
    expect(refused).toMatchObject({ status: "rejected", reason: "sessionExpired" });
    expect(log.state.precheck(s, 2)).toMatchObject({ result: { reason: "sessionExpired" } });
    expect(read(log.state)).toBe(2n);
  });

  test("the cell's time moves only by the distance between stamps of one ballot", () => {
    const log = new Log({ sessionTtlMs: 1_000 });
    const s = log.open(1_000_000);
    expect(log.state.time).toBe(0);
    log.apply(1_000_400, { session: s, seq: 1, acked: 1, op: increment });
    expect(log.state.time).toBe(400);
    // A new leader, with a clock an hour away: no jump.
    const newer = { round: 2, node: "n2~0000000000000002" };
    log.state.apply(++log.slot, { kind: "batch", commands: [], stamp: { ballot: newer, time: 3_600_000 } });
    expect(log.state.time).toBe(400);
    // A stale leader's stamp, chosen late: moves nothing.
    log.state.apply(++log.slot, { kind: "batch", commands: [], stamp: { ballot: leader, time: 9_000_000 } });
    expect(log.state.time).toBe(400);
    log.state.apply(++log.slot, { kind: "batch", commands: [], stamp: { ballot: newer, time: 3_600_250 } });
    expect(log.state.time).toBe(650);
  });

  test("a full table refuses to open more, and forgets no live session to make room", () => {
    const log = new Log({ sessionsMax: 3 });
    const sessions = [log.open(0, "a"), log.open(0, "b"), log.open(0, "c")];
    const [full] = log.apply(10, { session: 0, seq: 0, acked: 0, op: { kind: "openSession", client: "d", nonce: 1 } });
    expect(full).toMatchObject({ status: "rejected", reason: "sessionsFull" });
    for (const s of sessions) expect(log.state.sessionFor(s)).toBeDefined();
    // Closing one makes room.
    log.apply(20, { session: sessions[0] as number, seq: 1, acked: 1, op: { kind: "closeSession" } });
    expect(log.open(30, "d")).toBeGreaterThan(0);
  });

  test("a command past the session's window is refused, and carried out once the window reaches it", () => {
    const log = new Log();
    const s = log.open(0);
    const beyond = 1 + limits.sessionPendingMax;
    const [refused] = log.apply(10, { session: s, seq: beyond, acked: 1, op: increment });
    expect(refused).toMatchObject({ status: "rejected", reason: "tooManyPending" });
    expect(read(log.state)).toBeUndefined();
    // The refusal settled nothing: that is why the client library never sends past the window.
    const [later] = log.apply(20, { session: s, seq: beyond, acked: 2, op: increment });
    expect(later).toMatchObject({ status: "committed" });
  });

  test("answers survive a snapshot: a replica that installs it answers retries the same way", () => {
    const log = new Log();
    const s = log.open(0);
    const [first] = log.apply(10, { session: s, seq: 1, acked: 1, op: increment });
    const copy = CellState.decode(log.state.encode());
    if (typeof copy === "string") throw new Error(copy);
    expect(copy.precheck(s, 1)).toEqual({ result: first as CommandResult, slot: 2 });
    expect(copy.digest()).toEqual(log.state.digest());
  });
});

describe("leases in the log", () => {
  const acquire = (holder: string, ttlMs: number, name = "primary"): Operation => ({ kind: "lease", action: "acquire", name, holder, ttlMs });
  const release = (holder: string, name = "primary"): Operation => ({ kind: "lease", action: "release", name, holder, ttlMs: 10 });

  test("one holder at a time until its lease runs out in the cell's time; renewal extends it; release frees it", () => {
    const log = new Log();
    const a = log.open(0, "a");
    const b = log.open(0, "b");
    expect(log.apply(100, { session: a, seq: 1, acked: 1, op: acquire("server-a", 1_000) })[0]).toMatchObject({ status: "lease", granted: true, holder: "server-a", remainingMs: 1_000 });
    expect(log.apply(600, { session: b, seq: 1, acked: 1, op: acquire("server-b", 1_000) })[0]).toMatchObject({ granted: false, holder: "server-a", remainingMs: 500 });
    expect(log.apply(900, { session: a, seq: 2, acked: 2, op: acquire("server-a", 1_000) })[0]).toMatchObject({ granted: true, remainingMs: 1_000 });
    expect(log.apply(1_800, { session: b, seq: 2, acked: 2, op: acquire("server-b", 1_000) })[0]).toMatchObject({ granted: false, remainingMs: 100 });
    expect(log.apply(1_850, { session: b, seq: 3, acked: 3, op: release("server-b") })[0]).toMatchObject({ granted: false, holder: "server-a" });
    expect(log.apply(2_000, { session: b, seq: 4, acked: 4, op: acquire("server-b", 1_000) })[0]).toMatchObject({ granted: true, holder: "server-b" });
    expect(log.apply(2_100, { session: b, seq: 5, acked: 5, op: release("server-b") })[0]).toMatchObject({ granted: false, holder: null });
    expect(log.state.leaseFor("primary")).toBeUndefined();
  });

  test("bad names, holders and lifetimes are refused; the table of leases is bounded", () => {
    const log = new Log();
    const a = log.open(0, "a");
    let seq = 0;
    const send = (op: Operation) => log.apply(10, { session: a, seq: ++seq, acked: seq, op })[0];
    expect(send({ kind: "lease", action: "acquire", name: "", holder: "h", ttlMs: 100 })).toMatchObject({ reason: "leaseInvalid" });
    expect(send({ kind: "lease", action: "acquire", name: "x", holder: "bad holder", ttlMs: 100 })).toMatchObject({ reason: "leaseInvalid" });
    expect(send({ kind: "lease", action: "acquire", name: "x", holder: "h", ttlMs: 1 })).toMatchObject({ reason: "leaseInvalid" });
    for (let i = 0; i < limits.leasesPerCellMax; i++) expect(send(acquire("h", 10_000, `l${i}`))).toMatchObject({ granted: true });
    expect(send(acquire("h", 10_000, "one-more"))).toMatchObject({ status: "rejected", reason: "leasesFull" });
  });

  test("a lease is part of the state every replica agrees on", () => {
    const log = new Log();
    const a = log.open(0, "a");
    log.apply(10, { session: a, seq: 1, acked: 1, op: acquire("server-a", 5_000) });
    const copy = CellState.decode(log.state.encode());
    if (typeof copy === "string") throw new Error(copy);
    expect(copy.leaseFor("primary")).toEqual({ holder: "server-a", expiresAt: 5_010 });
  });
});
