import { describe, expect, test } from "bun:test";
import { toHex } from "../../src/core/bytes.ts";
import { limits } from "../../src/limits.ts";
import type { Operation } from "../../src/core/messages.ts";
import { utf8 } from "../../src/core/value.ts";
import { Cluster } from "../support/cluster.ts";

const put = (key: string, value: string): Operation => ({ kind: "tx", tx: { reads: [], conditions: [], writes: [{ key, op: "put", value: utf8(value) }] } });
const increment = (key: string): Operation => ({ kind: "tx", tx: { reads: [key], conditions: [], writes: [{ key, op: "increment", by: 1n }] } });
const get = (key: string): Operation => ({ kind: "tx", tx: { reads: [key], conditions: [], writes: [] } });
const three = ["n1", "n2", "n3"];
const digests = (cluster: Cluster, ids: readonly string[]) => ids.map((id) => toHex(cluster.replica(id).cellState?.digest() ?? new Uint8Array()));

describe("a cell's replicas", () => {
  test("commit a write, and every replica applies it once the commit arrives", () => {
    const cell = new Cluster("v", three);
    cell.request("n1", "c", 1, put("k", "x"));
    cell.settle();
    expect(cell.lastReply("c")?.outcome).toMatchObject({ kind: "done", result: { status: "committed" } });
    expect(cell.replica("n1").role).toBe("leader");
    // The followers hear of the commit with the next accept, or after limits.commitDelayMs.
    for (const id of ["n2", "n3"]) expect(cell.replica(id).applied).toBe(1);
    cell.settleCommitted();
    // Slot 1 opened the client's session; slot 2 holds the write.
    for (const id of three) expect(cell.replica(id).applied).toBe(2);
    expect(new Set(digests(cell, three)).size).toBe(1);
  });

  test("go quiet when there is no work: no replica asks for a tick", () => {
    const cell = new Cluster("v", three);
    for (let i = 1; i <= 5; i++) cell.request("n1", "c", i, put(`k${i}`, "x"));
    cell.run();
    for (const id of three) {
      expect(cell.replica(id).nextDeadline()).toBeNull();
      expect(cell.replica(id).applied).toBeGreaterThanOrEqual(1);
    }
  });

  test("an empty replica restarted before anyone taught it waits between looks for a teacher, never spins", async () => {
    // Seen first as a runaway of the simworld (seed 714365, nine nodes, membership faults,
    // with the 600 ms force rule): a replica that joined, was never taught, and restarted
    // knows no member and no leader, so it has nobody to ask; its learn deadline stayed at
    // -Infinity and every tick left it there, so a node's timer fired again at once, forever.
    const { Replica } = await import("../../src/core/replica.ts");
    const { createEffects } = await import("../../src/core/effects.ts");
    const replica = Replica.recover({ cell: "c", self: "n1~a", env: { isAlive: () => false, jitter: () => 0.5 } }, [{ kind: "joined", incarnation: "inc" }]);
    const out = createEffects();
    const now = 1_000;
    let ticks = 0;
    for (let deadline = replica.nextDeadline(); deadline !== null && deadline <= now && ticks < 100; deadline = replica.nextDeadline()) {
      replica.tick(now, out);
      ticks++;
    }
    expect(ticks).toBe(1);
    expect(replica.nextDeadline()).toBeGreaterThan(now);
    // It still looks again later, backing off, and asks a teacher once it knows one.
    const later = replica.nextDeadline() as number;
    replica.tick(later, out);
    expect(replica.nextDeadline()).toBeGreaterThan(later);
  });

  test("send a client to a live leader instead of competing with it", () => {
    const cell = new Cluster("v", three);
    cell.request("n1", "c", 1, put("k", "x"));
    cell.settle();
    cell.request("n2", "d", 1, put("k", "y"));
    expect(cell.lastReply("d")?.outcome).toEqual({ kind: "redirect", leader: "n1" });
  });

  test("keep committing after a minority crashes", () => {
    const cell = new Cluster("v", ["n1", "n2", "n3", "n4", "n5"]);
    cell.down.add("n4");
    cell.down.add("n5");
    for (let i = 1; i <= 10; i++) {
      cell.request("n1", "c", i, increment("n"));
      cell.settle();
      expect(cell.lastReply("c")?.outcome).toMatchObject({ kind: "done", result: { status: "committed", increments: [["n", BigInt(i)]] } });
    }
  });

  test("make no progress without a majority, and answer unavailable after giving up", () => {
    const cell = new Cluster("v", three);
    // The session is opened through n2, which then leads; n1 stays a follower.
    cell.openSession("n2", "c");
    cell.down.add("n2");
    cell.down.add("n3");
    cell.now += 1_000;
    cell.request("n1", "c", 1, put("k", "x"), { force: true });
    cell.run(50, 200);
    expect(cell.replica("n1").applied).toBe(1);
    expect(cell.lastReply("c")?.outcome).toMatchObject({ kind: "unavailable" });
    expect(cell.replica("n1").nextDeadline()).toBeNull();
  });

  test("replace a leader that stops answering when a client insists (force)", () => {
    const cell = new Cluster("v", three);
    cell.request("n1", "c", 1, put("k", "x"));
    cell.settle();
    cell.isolate("n1");
    cell.request("n2", "c", 2, put("k", "y"), { force: true });
    cell.run();
    expect(cell.replica("n2").role).toBe("leader");
    expect(cell.lastReply("c")?.outcome).toMatchObject({ kind: "done", result: { status: "committed" } });
    // The old leader rejoins and learns what it missed.
    cell.cut.clear();
    cell.request("n2", "c", 3, get("k"));
    cell.run();
    expect(new Set(digests(cell, three)).size).toBe(1);
  });

  test("answer a retried command from its session instead of applying it twice", () => {
    const cell = new Cluster("v", three);
    cell.request("n1", "c", 1, increment("n"));
    cell.settle();
    cell.request("n1", "c", 1, increment("n"));
    cell.request("n2", "c", 1, increment("n"), { force: true });
    cell.run();
    const doneReplies = cell.replies.filter((r) => r.outcome.kind === "done");
    expect(doneReplies.length).toBeGreaterThanOrEqual(2);
    for (const reply of doneReplies) expect(reply.outcome).toMatchObject({ result: { increments: [["n", 1n]] } });
    cell.request("n1", "c", 2, get("n"));
    cell.run();
    expect(cell.lastReply("c")?.outcome).toMatchObject({ result: { reads: [1n] } });
  });

  test("refuse work at once as overloaded when the pipeline and the queue are full", () => {
    const cell = new Cluster("v", three);
    cell.request("n1", "c0", 1, put("k", "x"));
    cell.settle();
    const commands = limits.pipelineDepthDefault * limits.batchCommandsMax + limits.queueCommandsMax + 5;
    // A few clients, each with many commands in flight in its session.
    const clients = Math.ceil(commands / limits.sessionPendingMax);
    for (let i = 0; i < clients; i++) cell.openSession("n1", `c${i + 1}`);
    // Followers stop answering: slots stay in flight and requests queue up.
    cell.isolate("n1");
    for (let i = 0; i < commands; i++) cell.request("n1", `c${(i % clients) + 1}`, 1 + Math.floor(i / clients), put("k", `v${i}`), { acked: 1 });
    const overloaded = cell.replies.filter((r) => r.outcome.kind === "overloaded");
    expect(overloaded.length).toBeGreaterThanOrEqual(5);
    expect(overloaded.length).toBeLessThan(commands);
  });

  test("tell followers what was chosen with the next accept, and with a commit only after limits.commitDelayMs without one", () => {
    const cell = new Cluster("v", three);
    const isCommit = (m: { out: { message: { kind: string } } }) => m.out.message.kind === "commit";
    cell.request("n1", "c", 1, put("k", "x"));
    cell.deliver((m) => !isCommit(m));
    for (let i = 2; i <= 4; i++) {
      const before = cell.replica("n1").applied;
      cell.request("n1", "c", i, put("k", `x${i}`));
      // The accepts for the new slot carry chosenThrough: the followers apply the slot before.
      cell.deliver((m) => m.out.message.kind === "accept");
      for (const id of ["n2", "n3"]) expect(cell.replica(id).applied).toBe(before);
      cell.deliver((m) => !isCommit(m));
    }
    expect(cell.pending.filter(isCommit)).toHaveLength(0);
    expect(cell.replica("n1").nextDeadline()).toBe(cell.now + limits.commitDelayMs);
    // Nothing else comes: the commit leaves once the delay has passed, and not before.
    cell.advance(limits.commitDelayMs - 1);
    expect(cell.pending.filter(isCommit)).toHaveLength(0);
    cell.advance(1);
    expect(cell.pending.filter(isCommit)).toHaveLength(2);
    cell.settle();
    for (const id of three) expect(cell.replica(id).applied).toBe(cell.replica("n1").applied);
    expect(cell.replica("n1").quiescent).toBe(true);
  });

  test("gather requests that come while two slots are in flight into the next slot, unless they fill a batch", () => {
    const cell = new Cluster("v", three);
    const clients = Array.from({ length: 13 + limits.batchCommandsMax }, (_, i) => `c${i}`);
    for (const client of clients) cell.openSession("n1", client);
    const accepts = () => cell.pending.filter((m) => m.out.message.kind === "accept" && m.out.to === "n2").map((m) => m.out.message);
    const batchSizes = () => accepts().map((a) => (a.kind === "accept" && a.value.kind === "batch" ? a.value.commands.length : 0));
    const base = cell.replica("n1").applied;
    cell.request("n1", "c0", 1, put("k0", "x"));
    cell.request("n1", "c1", 1, put("k1", "x"));
    expect(batchSizes()).toEqual([1, 1]);
    for (let i = 2; i <= 10; i++) cell.request("n1", `c${i}`, 1, put(`k${i}`, "x"));
    expect(batchSizes()).toEqual([1, 1]); // the nine wait for the two slots in flight
    cell.deliver((m) => m.out.message.kind !== "accept" || m.out.message.slot === base + 1);
    expect(batchSizes()).toEqual([1, 9]); // one chosen: the next slot carries all nine
    cell.settle();
    expect(cell.replica("n1").applied).toBe(base + 3);
    // A full batch does not wait.
    cell.request("n1", "c11", 1, put("k11", "x"));
    cell.request("n1", "c12", 1, put("k12", "x"));
    for (let i = 13; i < 13 + limits.batchCommandsMax; i++) cell.request("n1", `c${i}`, 1, put(`k${i}`, "x"));
    expect(batchSizes()).toEqual([1, 1, limits.batchCommandsMax]);
    cell.settle();
    expect(cell.replica("n1").applied).toBe(base + 6);
    for (const client of clients) expect(cell.lastReply(client)?.outcome).toMatchObject({ kind: "done", result: { status: "committed" } });
  });

  test("teach a member that fell behind by log segment", () => {
    const cell = new Cluster("v", three);
    cell.request("n1", "c", 1, put("k", "x"));
    cell.settleCommitted();
    cell.down.add("n3");
    for (let i = 2; i <= 6; i++) {
      cell.request("n1", "c", i, put(`k${i}`, "x"));
      cell.settle();
    }
    cell.down.delete("n3");
    expect(cell.replica("n3").applied).toBe(2);
    cell.request("n1", "c", 7, put("k7", "x"));
    cell.run();
    expect(cell.replica("n3").applied).toBe(cell.replica("n1").applied);
    const teach = cell.records.get("n3")?.filter((r) => r.kind === "snapshot") ?? [];
    expect(teach.length).toBe(0);
    expect(new Set(digests(cell, three)).size).toBe(1);
  });

  test("add a member, which learns the state by snapshot and then votes", () => {
    const cell = new Cluster("v", three);
    for (let i = 1; i <= limits.logTailEntriesMax + 5; i++) {
      cell.request("n1", "c", i, put(`k${i % 7}`, `v${i}`));
      cell.settle();
    }
    cell.join("n4");
    cell.request("n1", "admin", 1, { kind: "config", change: { kind: "addMember", node: "n4" } });
    cell.run();
    expect(cell.lastReply("admin")?.outcome).toMatchObject({ result: { status: "configured", members: ["n1", "n2", "n3", "n4"] } });
    for (let i = 1; i <= 5; i++) cell.request("n1", "c2", i, put("z", `w${i}`));
    cell.run();
    expect(cell.records.get("n4")?.some((r) => r.kind === "snapshot")).toBe(true);
    expect(cell.records.get("n4")?.some((r) => r.kind === "accept")).toBe(true);
    expect(cell.replica("n4").applied).toBe(cell.replica("n1").applied);
    expect(new Set(digests(cell, ["n1", "n2", "n3", "n4"])).size).toBe(1);
    // With four members, two of them down means no majority.
    cell.openSession("n1", "c3");
    cell.down.add("n2");
    cell.down.add("n3");
    cell.request("n1", "c3", 1, put("q", "x"));
    cell.run(50, 100);
    expect(cell.lastReply("c3")?.outcome.kind).not.toBe("done");
  });

  test("remove a member: the cell decides without it from alpha slots later", () => {
    const cell = new Cluster("v", ["n1", "n2", "n3", "n4"]);
    cell.request("n1", "admin", 1, { kind: "config", change: { kind: "removeMember", node: "n4" } });
    cell.run();
    // Slot 1 opened the operator's session; the change is applied at slot 2.
    expect(cell.lastReply("admin")?.outcome).toMatchObject({ kind: "done", result: { status: "configured", members: three, effectiveSlot: 2 + limits.pipelineDepthDefault } });
    // Three is as small as a cell gets: the next removal is refused.
    cell.request("n1", "admin", 2, { kind: "config", change: { kind: "removeMember", node: "n3" } });
    cell.run();
    expect(cell.lastReply("admin")?.outcome).toMatchObject({ kind: "done", result: { status: "rejected", reason: "configInvalid" } });
    cell.openSession("n1", "c");
    cell.openSession("n1", "d");
    // From here on {n1, n2, n3} decides, so n1 and n2 are a majority without n4 (and n3).
    expect(cell.replica("n1").applied).toBeGreaterThanOrEqual(1 + limits.pipelineDepthDefault);
    cell.down.add("n4");
    cell.down.add("n3");
    for (let i = 1; i <= 6; i++) cell.request("n1", "c", i, put("k", `${i}`));
    cell.run();
    expect(cell.lastReply("c")?.outcome).toMatchObject({ kind: "done", result: { status: "committed" } });
    // The removed member answers no client as if it still served the cell.
    cell.down.delete("n4");
    cell.request("n4", "d", 1, get("k"));
    cell.settle();
    expect(cell.lastReply("d")?.outcome.kind === "unavailable" || cell.lastReply("d")?.outcome.kind === "redirect").toBe(true);
  });

  test("serve eventually consistent reads from applied state, refusing a session's stale replica", () => {
    const cell = new Cluster("v", three);
    cell.request("n1", "c", 1, put("k", "x"));
    cell.settleCommitted();
    cell.down.add("n3");
    cell.request("n1", "c", 2, put("k", "y"));
    cell.settleCommitted();
    cell.down.delete("n3");
    const slot = cell.replica("n1").applied;
    cell.request("n3", "r", 1, get("k"), { consistency: "eventual", minApplied: slot });
    expect(cell.lastReply("r")?.outcome).toEqual({ kind: "stale", applied: 2 });
    cell.request("n2", "r", 2, get("k"), { consistency: "eventual", minApplied: slot });
    expect(cell.lastReply("r")?.outcome).toMatchObject({ kind: "read", applied: slot, result: { reads: [utf8("y")] } });
  });

  test("rebuild the same replica from its records, or from its compacted records", () => {
    const cell = new Cluster("v", three);
    for (let i = 1; i <= 20; i++) cell.request("n1", "c", i, increment(`n${i % 3}`));
    cell.run();
    const before = digests(cell, ["n2"])[0];
    const promised = cell.replica("n2").promisedBallot;
    const compacted = cell.replica("n2").compactedRecords();
    expect(cell.restart("n2").promisedBallot).toEqual(promised);
    expect(digests(cell, ["n2"])[0]).toBe(before);
    const fromCompacted = cell.restart("n2", compacted);
    expect(toHex(fromCompacted.cellState?.digest() ?? new Uint8Array())).toBe(before as string);
    expect(fromCompacted.promisedBallot).toEqual(promised);
    expect(compacted.length).toBeLessThan(cell.records.get("n2")?.length ?? 0);
  });
});
