// Issue 9's schedule, delivered by hand: two membership changes inside one pipeline window
// let a new quorum ({C, N, O}) avoid the first promisers of a later leader ({A, B}). With a
// leader that counts a late promise for slots its sender compacted, and an acceptor that
// acknowledges a slot it holds only as chosen, slot 6 was chosen twice. Invariants P and A
// in replica.ts's header are what this test holds the replica to.

import { describe, expect, test } from "bun:test";
import { toHex } from "../../src/core/bytes.ts";
import { printLogValue } from "../../src/core/describe.ts";
import type { Operation } from "../../src/core/messages.ts";
import type { Mutation } from "../../src/core/mutations.ts";
import { utf8 } from "../../src/core/value.ts";
import { Cluster, type InFlight } from "../support/cluster.ts";

const put = (key: string, value: string): Operation => ({ kind: "tx", tx: { reads: [], conditions: [], writes: [{ key, op: "put", value: utf8(value) }] } });
const add = (node: string): Operation => ({ kind: "config", change: { kind: "addMember", node } });

const to = (...nodes: string[]) => (m: InFlight) => nodes.includes(m.out.to);
const kind = (...kinds: string[]) => (m: InFlight) => kinds.includes(m.out.message.kind);
const both = (...tests: ((m: InFlight) => boolean)[]) => (m: InFlight) => tests.every((t) => t(m));
const slotOf = (m: InFlight): number | null => ("slot" in m.out.message ? (m.out.message as { slot: number }).slot : null);

interface Outcome {
  /** Every value any replica holds as chosen or applied at slot 6, printed. */
  readonly slot6: Set<string>;
  /** Clients told "committed at slot 6". */
  readonly committedAt6: string[];
}

function runSchedule(mutations: readonly Mutation[]): Outcome {
  // One slot a request, as the schedule numbers them.
  const cell = new Cluster("v", ["A", "B", "C"], { alpha: 3, mutations, eagerProposals: true });
  cell.join("N");
  cell.join("O");

  // 1. C leads at (1, C); the clients' sessions are open, and every slot so far (call the
  //    last one 1 + base; the schedule numbers them from 1) is chosen everywhere.
  for (const client of ["c1", "admin", "admin2", "c4", "c5", "q", "w"]) cell.openSession("C", client);
  cell.request("C", "c1", 1, put("k", "one"));
  cell.settleCommitted();
  expect(cell.replica("C").role).toBe("leader");
  const base = cell.replica("C").applied - 1;
  for (const id of ["A", "B", "C"]) expect(cell.replica(id).applied).toBe(base + 1);

  // 2. Slots 2-4 (add N, add O, a put) are accepted by A only, and A never learns they were chosen.
  cell.request("C", "admin", 1, add("N"));
  cell.request("C", "admin2", 1, add("O"));
  cell.request("C", "c4", 1, put("k", "four"));
  cell.drop(both(kind("accept"), to("B")));
  cell.deliver(both(kind("accept", "accepted"), to("A", "C")));
  expect(cell.replica("C").applied).toBe(base + 4);
  cell.drop(kind("commit"));
  expect(cell.replica("A").applied).toBe(base + 1);

  // 3. Slot 5 (members A, B, C, N) is chosen by C, B and N; B never learns slots 2-4.
  cell.request("C", "c5", 1, put("k", "five"));
  cell.drop(both(kind("accept"), to("A")));
  cell.deliver(both(kind("accept", "accepted"), to("B", "N", "C")));
  expect(cell.replica("C").applied).toBe(base + 5);
  cell.drop(() => true);

  // 4. Slot 6 (members A, B, C, N, O) is chosen by C, N and O with value q, C answers its
  //    client, and N and O install C's snapshot at slot 6.
  cell.request("C", "q", 1, put("k", "q"));
  cell.drop(both(kind("accept"), to("A", "B")));
  cell.deliver(both(kind("accept", "accepted"), to("N", "O", "C")));
  expect(cell.replica("C").applied).toBe(base + 6);
  cell.drop(() => true);
  cell.now += 1_000;
  cell.tickOne("N");
  cell.tickOne("O");
  cell.deliver((m) => (m.out.message.kind === "learn" && m.out.to === "C") || (m.out.message.kind === "teach" && ["N", "O"].includes(m.out.to)));
  expect(cell.replica("N").applied).toBe(base + 6);
  expect(cell.replica("O").applied).toBe(base + 6);
  cell.drop(() => true);

  if (process.env.TRACE) cell.trace = console.log;
  // 5. C goes away. A campaigns at (2, A); only B answers, with compactedThrough 1, so A
  //    leads and re-proposes slots 2-5 with B.
  cell.down.add("C");
  cell.request("A", "w", 1, put("k", "w"), { force: true });
  expect(cell.replica("A").role).toBe("candidate");
  cell.drop(to("C"));
  cell.deliver(both(kind("prepare", "promise"), to("B", "A")));
  expect(cell.replica("A").role).toBe("leader");
  cell.drop(to("C", "N", "O"));
  cell.deliver((m) => to("A", "B")(m) && (slotOf(m) ?? 0) <= base + 4 && kind("accept", "accepted")(m));
  expect(cell.replica("A").applied).toBe(base + 4);

  // 6. A needs more promises for slots 5 and 6. N's arrives, late, with compactedThrough 6
  //    and no votes; O's never does.
  cell.drop((m) => to("C", "O")(m) || kind("commit")(m));
  cell.now += 1_000;
  cell.tickOne("A");
  cell.drop(to("C", "O"));
  cell.deliver(both(kind("prepare", "promise"), to("N", "A")));
  // 7. Whatever A now proposes, B and N see before A's request to learn from N is answered.
  cell.drop(to("C", "O"));
  cell.deliver((m) => to("A", "B", "N")(m) && kind("accept", "accepted")(m));
  cell.deliver((m) => to("A", "B", "N")(m) && kind("accept", "accepted", "teach", "learn", "commit")(m));

  const slot6 = new Set<string>();
  for (const id of ["A", "B", "C", "N", "O"]) {
    const replica = cell.replica(id);
    const value = replica.chosenValue(base + 6);
    if (value !== undefined) slot6.add(printLogValue(value));
  }
  const committedAt6 = cell.replies.filter((r) => r.outcome.kind === "done" && r.outcome.slot === base + 6 && r.outcome.result.status === "committed").map((r) => r.client);
  return { slot6, committedAt6 };
}

describe("two membership changes inside one pipeline window", () => {
  test("a late promise from a replica that compacted past the leader, and its acks, never choose a second value", () => {
    const { slot6, committedAt6 } = runSchedule([]);
    expect(slot6.size).toBe(1);
    expect([...slot6][0]).toContain(`"value":"${toHex(utf8("q"))}"`);
    expect(committedAt6).toEqual(["q"]);
  });

  test("with both defects brought back, the schedule does choose two values for slot 6", () => {
    const { slot6, committedAt6 } = runSchedule(["latePromise", "emptyAck"]);
    expect(slot6.size).toBe(2);
    expect(committedAt6.sort()).toEqual(["q", "w"]);
  });
});
