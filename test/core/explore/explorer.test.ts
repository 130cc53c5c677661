// The explorer's own machinery: that each check fires on the defect it names (fed by hand),
// that copies of a world are independent, that dedup sees through the order of independent
// steps, that the dead-message rule only drops messages that change nothing, and that a
// random walk replays from its seed.

import { describe, expect, test } from "bun:test";
import { createEffects, type Effects } from "../../../src/core/effects.ts";
import type { Ballot, CellMessage, LogValue } from "../../../src/core/messages.ts";
import { printData } from "./data.ts";
import { budget, membershipScenario, oneSlot, openInput, put, randomWorld } from "./scenarios.ts";
import { exhaustive, walk } from "./search.ts";
import { isDead, World } from "./world.ts";
import { now, timeoutMs } from "./modes.ts";

const ballot = (round: number, node: string): Ballot => ({ round, node });
const batch = (key: string, session = 64, seq = 1): LogValue => ({
  kind: "batch", commands: [{ session, seq, acked: seq, op: put(key, key) }], stamp: { ballot: ballot(1, "a"), time: 0 },
});
const openBatch: LogValue = { kind: "batch", commands: [{ session: 0, seq: 0, acked: 0, op: { kind: "openSession", client: "x", nonce: 1 } }], stamp: { ballot: ballot(1, "a"), time: 0 } };

function freshWorld(): World {
  return World.create({ cell: "v", members: ["a", "b", "c"], alpha: 3 }, [], budget({}));
}

/** Feeds one hand-made step of replica `id` to the world's history. */
function feed(world: World, id: string, fill: (effects: Effects) => void, requests: Record<string, { session: number; seq: number }> = {}): string | null {
  const effects = createEffects();
  fill(effects);
  const replica = world.replica(id);
  world.history.afterStep(id, replica, replica.applied, effects, (client, requestId) => {
    const known = requests[`${client}#${requestId}`];
    return known === undefined ? undefined : { client, id: requestId, session: known.session, seq: known.seq, op: put("k", "k") };
  });
  return world.history.violation;
}

const send = (effects: Effects, to: string, message: CellMessage) => effects.messages.push({ to, cell: "v", message, afterSync: false });

describe("the explorer's checks", () => {
  test("invariant A: an acknowledgement from a replica that holds no vote there", () => {
    const world = freshWorld();
    expect(feed(world, "b", (fx) => send(fx, "a", { kind: "accepted", ballot: ballot(1, "a"), slot: 1 }))).toMatch(/^invariant A: b acknowledged slot 1 at 1\.a/);
  });

  test("P2c: a higher ballot proposing another value into a chosen slot, in either order", () => {
    const chosenFirst = freshWorld();
    expect(feed(chosenFirst, "a", (fx) => fx.chosen.push({ cell: "v", slot: 1, ballot: ballot(1, "a"), value: batch("x"), voters: ["a", "b"] }))).toBeNull();
    expect(feed(chosenFirst, "b", (fx) => send(fx, "c", { kind: "accept", ballot: ballot(2, "b"), slot: 1, value: batch("x"), chosenThrough: 0 }))).toBeNull();
    expect(feed(chosenFirst, "b", (fx) => send(fx, "c", { kind: "accept", ballot: ballot(3, "b"), slot: 1, value: batch("y"), chosenThrough: 0 }))).toMatch(/^P2c: b proposed into slot 1 at 3\.b/);
    const proposedFirst = freshWorld();
    expect(feed(proposedFirst, "b", (fx) => send(fx, "c", { kind: "accept", ballot: ballot(2, "b"), slot: 1, value: batch("y"), chosenThrough: 0 }))).toBeNull();
    expect(feed(proposedFirst, "a", (fx) => fx.chosen.push({ cell: "v", slot: 1, ballot: ballot(1, "a"), value: batch("x"), voters: ["a", "b"] }))).toMatch(/^P2c: slot 1 was chosen at 1\.a/);
  });

  test("agreement: two replicas applying different values at one slot", () => {
    const world = freshWorld();
    expect(feed(world, "a", (fx) => fx.applied.push({ cell: "v", slot: 1, value: { kind: "noop" }, executed: [] }))).toBeNull();
    expect(feed(world, "b", (fx) => fx.applied.push({ cell: "v", slot: 1, value: openBatch, executed: [true] }))).toMatch(/^agreement: b applied slot 1/);
  });

  test("exactly once and replies: a command refused for good and then carried out, and an answer the log never gave", () => {
    const world = freshWorld();
    expect(feed(world, "a", (fx) => fx.applied.push({ cell: "v", slot: 1, value: openBatch, executed: [true] }))).toBeNull();
    // Session 64 (slot 1, place 0) exists; its command 1 is refused, then carried out.
    const refusal = { kind: "done" as const, result: { status: "rejected" as const, reason: "sessionExpired" as const, detail: "" }, slot: 1 };
    expect(feed(world, "b", (fx) => send(fx, "x", { kind: "reply", client: "x", id: 7, outcome: refusal }), { "x#7": { session: 64, seq: 1 } })).toBeNull();
    expect(feed(world, "a", (fx) => fx.applied.push({ cell: "v", slot: 2, value: batch("k"), executed: [true] }))).toMatch(/^exactly once: session 64 command 1 was refused for good/);
    const other = freshWorld();
    feed(other, "a", (fx) => fx.applied.push({ cell: "v", slot: 1, value: openBatch, executed: [true] }));
    feed(other, "a", (fx) => fx.applied.push({ cell: "v", slot: 2, value: batch("k"), executed: [true] }));
    const wrong = { kind: "done" as const, result: { status: "conditionFailed" as const, reads: [], condition: 0, key: "k", actual: null }, slot: 2 };
    expect(feed(other, "a", (fx) => send(fx, "x", { kind: "reply", client: "x", id: 8, outcome: wrong }), { "x#8": { session: 64, seq: 1 } })).toMatch(/^replies: a answered session 64 command 1/);
  });

  test("a check left out reports nothing", () => {
    const world = World.create({ cell: "v", members: ["a", "b", "c"], alpha: 3, checks: ["agreement"] }, [], budget({}));
    expect(feed(world, "b", (fx) => send(fx, "a", { kind: "accepted", ballot: ballot(1, "a"), slot: 1 }))).toBeNull();
  });
});

describe("the explorer's machinery", () => {
  test("a fork steps its own copy of a replica and leaves the original world as it was", () => {
    const root = freshWorld();
    root.send(openInput("x", ["a"]), "a");
    const before = root.fingerprint();
    const child = root.fork();
    const [first] = child.transitions();
    expect(first).toBeDefined();
    if (first !== undefined) child.apply(first);
    expect(child.fingerprint()).not.toBe(before);
    expect(root.fingerprint()).toBe(before);
    expect(child.replica("a")).toBe(root.replica("a")); // not stepped by the child: still shared
  });

  test("two orders of independent deliveries reach one state", () => {
    const root = freshWorld();
    root.send(openInput("x", ["a"]), "a");
    // a's prepares to b and c: deliver them in both orders.
    const prepares = root.transitions().filter((t) => t.kind === "deliver");
    expect(prepares.length).toBe(2);
    const ends = [[0, 1], [1, 0]].map((order) => {
      const world = root.fork();
      for (const i of order) {
        const target = i === 0 ? "b" : "c";
        const index = world.inFlight.findIndex((m) => m.to === target && m.message.kind === "prepare");
        world.apply({ kind: "deliver", index, keepCopy: false });
      }
      return world.fingerprint();
    });
    expect(ends[0]).toBe(ends[1] as string);
  });

  test("a message the dead-message rule would drop changes nothing when delivered", () => {
    // Keep dead messages in flight, and deliver each one found to a copy of its world.
    const scenario = membershipScenario({ keepDead: true });
    let checked = 0;
    const problems: string[] = [];
    exhaustive(scenario.root, { ...scenario.bounds, statesMax: 4000 }, {
      now,
      onState: (world) => {
        world.inFlight.forEach((message, index) => {
          if (!isDead(world.replica(message.to), message.message)) return;
          checked++;
          const copy = world.fork();
          copy.apply({ kind: "deliver", index, keepCopy: false });
          const same = printData(copy.replica(message.to)) === printData(world.replica(message.to)) && copy.inFlight.length === world.inFlight.length - 1 && copy.history.print() === world.history.print();
          if (!same) problems.push(`${message.from} -> ${message.to} ${printData(message.message)}`);
        });
      },
    });
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(100);
  }, timeoutMs);

  test("the one-slot search is deterministic", () => {
    const a = oneSlot({ rounds: 1 });
    const b = oneSlot({ rounds: 1 });
    expect(a.root.fingerprint()).toBe(b.root.fingerprint());
  });

  test("a random walk replays exactly from its seed", () => {
    const traces = [1, 2].map(() => {
      const trace: string[] = [];
      walk((seed) => randomWorld(seed), 7, { seeds: 1, stepsMax: 200 }, trace);
      return trace;
    });
    expect(traces[0]?.length).toBeGreaterThan(50);
    expect(printData(traces[1])).toBe(printData(traces[0]));
  });
});
