import { describe, expect, test } from "bun:test";
import { clearEffects, createEffects } from "../../src/core/effects.ts";
import type { Operation } from "../../src/core/messages.ts";
import type { Replica, ReplicaEnv } from "../../src/core/replica.ts";
import { utf8 } from "../../src/core/value.ts";
import { limits } from "../../src/limits.ts";
import { Cluster } from "../support/cluster.ts";

const get = (key: string): Operation => ({ kind: "tx", tx: { reads: [key], conditions: [], writes: [] } });
const put = (key: string, value: string): Operation => ({ kind: "tx", tx: { reads: [], conditions: [], writes: [{ key, op: "put", value: utf8(value) }] } });

/** Ticks `replica` every 10 ms from `from` for `durationMs`, and returns when it sent each learn (its answers are lost). */
function learnTimes(replica: Replica, from: number, durationMs: number): number[] {
  const out = createEffects();
  const times: number[] = [];
  for (let now = from; now <= from + durationMs; now += 10) {
    const deadline = replica.nextDeadline();
    if (deadline !== null && deadline <= now) replica.tick(now, out);
    for (const { message } of out.messages) if (message.kind === "learn") times.push(now);
    clearEffects(out);
  }
  return times;
}

describe("a cell after its leader dies", () => {
  test("backs off its unanswered learns, and starts over once it has learnt", () => {
    const cell = new Cluster("v", ["n1", "n2", "n3"]);
    cell.request("n1", "c", 1, put("k", "a"));
    cell.settle();
    // n3 misses two writes, then hears of them from the leader's commit: it must learn them.
    cell.isolate("n3");
    for (let seq = 2; seq <= 3; seq++) {
      cell.request("n1", "c", seq, put("k", `v${seq}`));
      cell.settle();
    }
    const leader = cell.replica("n1");
    const n3 = cell.replica("n3");
    expect(n3.applied).toBeLessThan(leader.applied);
    const first = createEffects();
    n3.step("n1", { kind: "commit", ballot: leader.promisedBallot, through: leader.applied }, cell.now, first);
    expect(first.messages.filter((m) => m.message.kind === "learn").length).toBe(1);

    // Nobody answers for 3 s: the retries thin out (a fixed 60 ms would send 50) but never stop.
    const times = learnTimes(n3, cell.now, 3_000);
    expect(times.length).toBeGreaterThanOrEqual(5);
    expect(times.length).toBeLessThanOrEqual(12);
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    expect(gaps[gaps.length - 1]).toBeGreaterThanOrEqual(limits.retransmitBackoffMaxMs * 0.75);

    // A learn that is answered catches n3 up, and it goes quiet.
    cell.now = Math.max(cell.now + 3_000, n3.nextDeadline() ?? 0);
    cell.cut.clear();
    const out = createEffects();
    n3.tick(cell.now, out);
    const learn = out.messages.find((m) => m.message.kind === "learn");
    expect(learn).toBeDefined();
    const answer = createEffects();
    cell.replica(learn?.to ?? "n1").step("n3", learn?.message ?? { kind: "learn", from: 1 }, cell.now, answer);
    for (const m of answer.messages) if (m.to === "n3") n3.step(learn?.to ?? "n1", m.message, cell.now, out);
    expect(n3.applied).toBe(leader.applied);
    expect(n3.nextDeadline()).toBeNull();

    // Behind again later: the first retry comes after limits.learnRetryMs, not the backed-off wait.
    cell.isolate("n3");
    cell.request("n1", "c", 4, put("k", "v4"));
    cell.settle();
    cell.now += 1;
    const again = createEffects();
    n3.step("n1", { kind: "commit", ballot: leader.promisedBallot, through: leader.applied }, cell.now, again);
    expect(again.messages.filter((m) => m.message.kind === "learn").length).toBe(0);
    const retries = learnTimes(n3, cell.now, 200);
    expect(retries[0]).toBe(cell.now + limits.learnRetryMs);
  });

  test("send a forcing client to the live candidate it promised, for leaderQuietMs", () => {
    const cell = new Cluster("v", ["n1", "n2", "n3"]);
    cell.request("n1", "c", 1, put("k", "a"));
    cell.settle();
    cell.openSession("n1", "d");
    cell.down.add("n1");
    cell.now += 1_000;
    // n2 takes over; n3 promises its ballot, and n2 is slow to hear back (a loaded node).
    cell.request("n2", "c", 2, put("k", "b"), { force: true });
    expect(cell.replica("n2").role).toBe("candidate");
    cell.deliver((m) => m.out.to === "n3" && m.out.message.kind === "prepare");
    cell.drop(() => true);
    // A retry that asks n3 to take over, soon after: n3 knows better than to preempt n2.
    cell.now += limits.leaderQuietMs / 2;
    cell.request("n3", "d", 1, put("k", "d"), { force: true });
    expect(cell.lastReply("d")?.outcome).toEqual({ kind: "redirect", leader: "n2" });
    expect(cell.replica("n3").role).toBe("follower");
    // Past the liveness timeout without a word from n2, a forcing client is served by n3.
    cell.now += limits.leaderQuietMs / 2 + 1;
    cell.request("n3", "d", 1, put("k", "d"), { force: true });
    expect(cell.replica("n3").role).not.toBe("follower");
  });

  test("start no election while the node refuses it: a forcing client is told overloaded, a hole waits", () => {
    const cell = new PacedCluster("v", ["n1", "n2", "n3"]);
    cell.request("n1", "c", 1, put("k", "a"));
    cell.settle();
    // n1 proposes a second write; n3 accepts it, and then n1 dies before anyone learns it chosen.
    cell.request("n1", "c", 2, put("k", "b"));
    cell.deliver((m) => m.out.to === "n3" && m.out.message.kind === "accept");
    cell.drop(() => true);
    cell.down.add("n1");
    cell.campaignsAllowed = false;
    cell.now += 1_000;
    cell.request("n2", "c", 3, put("k", "c"), { force: true });
    expect(cell.lastReply("c")?.outcome).toEqual({ kind: "overloaded" });
    expect(cell.replica("n2").role).toBe("follower");
    // n3's hole passes its deadlines again and again, but n3 does not campaign either.
    for (let i = 0; i < 100; i++) cell.advance(20);
    expect(cell.replica("n3").role).toBe("follower");
    expect(cell.asked).toBeGreaterThanOrEqual(3);
    // Allowed again: the hole's next deadline makes n3 campaign, and the cell recovers the write.
    cell.campaignsAllowed = true;
    cell.run();
    expect(cell.replica("n3").role).toBe("leader");
    cell.request("n3", "c", 3, put("k", "c"), { force: true });
    cell.run();
    expect(cell.lastReply("c")?.outcome).toMatchObject({ kind: "done", result: { status: "committed" } });
    cell.request("n3", "c", 4, get("k"));
    cell.run();
    expect(cell.lastReply("c")?.outcome).toMatchObject({ kind: "done", result: { reads: [utf8("c")] } });
    expect(cell.replica("n3").applied).toBe(cell.replica("n2").applied);
  });

  test("wait as long as the node's estimate of its peers' turnaround before preparing again", () => {
    const firstResend = (estimateMs: number | undefined): number => {
      const cell = new PacedCluster("v", ["n1", "n2", "n3"]);
      cell.retransmitEstimateMs = estimateMs;
      cell.request("n1", "c", 1, put("k", "a"));
      cell.settleCommitted();
      cell.down.add("n1");
      cell.now += 1_000;
      const startedAt = cell.now;
      cell.request("n2", "c", 2, put("k", "b"), { force: true });
      // Nobody answers: the promises are lost (n3 is slow), so n2 prepares again.
      for (let i = 0; i < 100; i++) {
        const lost = cell.drop(() => true);
        if (lost > 0 && cell.now > startedAt) return cell.now - startedAt;
        cell.advance(10);
      }
      return Infinity;
    };
    expect(firstResend(undefined)).toBeLessThan(100);
    expect(firstResend(200)).toBeGreaterThanOrEqual(200);
    // However loaded the node says its peers are, a lost prepare is sent again within a second.
    expect(firstResend(60_000)).toBeLessThanOrEqual(2 * limits.retransmitBackoffMaxMs);
  });
});

/** A cell whose node may refuse its replicas' elections (ReplicaEnv.mayCampaign). */
class PacedCluster extends Cluster {
  campaignsAllowed = true;
  /** What the node says its peers take to answer (ReplicaEnv.retransmitMs); absent when undefined. */
  retransmitEstimateMs: number | undefined = undefined;
  /** How many times a replica asked. */
  asked = 0;

  override env(self: string): ReplicaEnv {
    return {
      ...super.env(self),
      retransmitMs: () => this.retransmitEstimateMs ?? limits.retransmitMs,
      mayCampaign: () => {
        this.asked++;
        return this.campaignsAllowed;
      },
    };
  }
}