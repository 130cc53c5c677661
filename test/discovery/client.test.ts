import { describe, expect, test } from "bun:test";
import { ClientDiscovery, type Route } from "../../src/discovery/client.ts";
import { encodeMessage } from "../../src/discovery/messages.ts";
import { DiscoveryNode } from "../../src/discovery/node.ts";
import { Rng } from "../../src/random.ts";
import { entry, identity, members, nowMs, report } from "./support.ts";

const seeds = Array.from({ length: 10 }, (_, i) => ({ nodeId: `n${i}`, address: `10.0.0.${i + 1}:7101` }));

function nodes(): Map<string, DiscoveryNode> {
  return new Map(
    seeds.map((seed, i) => [
      seed.nodeId,
      new DiscoveryNode({ identity: identity(i), address: seed.address, generation: 10 + i, seeds, rng: new Rng(i), nowMs, leafBits: 6 }),
    ]),
  );
}

function client(cellsMax = 100): ClientDiscovery {
  return new ClientDiscovery({ seeds, rng: new Rng(3), cellsMax, lookupRetryMs: 500 });
}

/** Sends the route's lookup, if any, to the node it names and hands the answer back. */
function ask(c: ClientDiscovery, colony: Map<string, DiscoveryNode>, route: Route, now: number): string | null {
  if (route.lookup === null) return null;
  const answer = colony.get(route.lookup.nodeId)!.answer(route.lookup.wire, now);
  expect(answer.ok).toBe(true);
  if (answer.ok) expect(c.receive(answer.wire, now)).toBe(true);
  return route.lookup.nodeId;
}

describe("the client's discovery cache", () => {
  test("bootstraps from any node, then tries the leader first and keeps the answer indefinitely", () => {
    const colony = nodes();
    for (const node of colony.values()) node.cache.merge(entry({ members: members(2), leader: identity(4) }), nowMs);
    const c = client();
    const first = c.route("vol-1", nowMs);
    expect(first.status).toBe("unknown");
    expect(first.lookup).not.toBeNull();
    ask(c, colony, first, nowMs);
    const known = c.route("vol-1", nowMs);
    expect(known.status).toBe("known");
    expect(known.candidates[0]).toEqual({ nodeId: "n4", address: "10.0.0.5:7101" });
    expect(known.candidates.map((t) => t.nodeId).sort()).toEqual(["n2", "n3", "n4", "n5", "n6", "n7", "n8"]);
    expect(known.lookup).toBeNull();
    // A week later, with no evidence against it, the answer is still used as is.
    expect(c.route("vol-1", nowMs + 7 * 24 * 3_600_000)).toMatchObject({ status: "known", lookup: null });
  });

  test("a replica that no longer hosts the cell and hands over its pointer moves the client at once", () => {
    const c = client();
    const colony = nodes();
    for (const node of colony.values()) node.cache.merge(entry({ members: members(0) }), nowMs);
    ask(c, colony, c.route("vol-1", nowMs), nowMs);
    const pointer = entry({ version: 12, members: [...members(1, 6), identity(9)] });
    c.evidence("vol-1", { kind: "notHosted", node: identity(0), pointer }, nowMs);
    const route = c.route("vol-1", nowMs);
    expect(route.entry?.version).toBe(12);
    expect(route.candidates.map((t) => t.nodeId)).not.toContain("n0");
    expect(route.candidates.map((t) => t.nodeId)).toContain("n9");
  });

  test("on a silent member it asks a member first, then members and other nodes in turn, keeps the old entry when nobody knows better, and backs off", () => {
    const colony = nodes();
    for (const node of colony.values()) node.cache.merge(entry({ members: members(0) }), nowMs);
    const c = client();
    ask(c, colony, c.route("vol-1", nowMs), nowMs);
    c.evidence("vol-1", { kind: "silent", node: identity(0) }, nowMs);
    const asked: string[] = [];
    let now = nowMs;
    for (let i = 0; i < 3; i++) {
      const route = c.route("vol-1", now);
      expect(route.status).toBe("known");
      expect(route.candidates.at(-1)?.nodeId).toBe("n0");
      asked.push(ask(c, colony, route, now) as string);
    }
    const cellMembers = ["n1", "n2", "n3", "n4", "n5", "n6"];
    expect(cellMembers).toContain(asked[0] as string);
    expect(["n7", "n8", "n9"]).toContain(asked[1] as string);
    expect(cellMembers).toContain(asked[2] as string);
    expect(new Set(asked).size).toBe(3);
    // Three members knew nothing newer: no lookup until the back-off has passed.
    expect(c.route("vol-1", now + 100).lookup).toBeNull();
    now += 600;
    expect(c.route("vol-1", now).lookup).not.toBeNull();
  });

  test("a cache that names only members that went down together finds the cell at the second lookup", () => {
    // The cell moved to n3..n9 (version 12) and every node knows it; the client still has
    // n0..n6 (version 10), and n0..n6 are down (a row lost): lookups to them go unanswered.
    const colony = nodes();
    for (const node of colony.values()) node.cache.merge(entry({ version: 10, members: members(0) }), nowMs);
    const c = client();
    ask(c, colony, c.route("vol-1", nowMs), nowMs);
    expect(c.route("vol-1", nowMs).entry?.version).toBe(10);
    for (const node of colony.values()) node.cache.merge(entry({ version: 12, members: members(3) }), nowMs);
    const down = new Set(["n0", "n1", "n2", "n3", "n4", "n5", "n6"]);
    c.evidence("vol-1", { kind: "silent", node: identity(0) }, nowMs);
    let now = nowMs;
    let lookups = 0;
    // Each route is used: a lookup it names counts as asked, so it must be sent.
    for (let route = c.route("vol-1", now); route.entry?.version !== 12 && now < nowMs + 10_000; route = c.route("vol-1", now)) {
      if (route.lookup !== null) {
        lookups++;
        if (down.has(route.lookup.nodeId)) c.lookupFailed(route.lookup.message.id, now);
        else ask(c, colony, route, now);
      }
      now += 100;
    }
    expect(c.route("vol-1", now).entry?.version).toBe(12);
    // One member asked in vain, then a node outside the cell: within one retry (500 ms), not one per member.
    expect(lookups).toBeLessThanOrEqual(2);
    expect(now - nowMs).toBeLessThanOrEqual(700);
  });

  test("when every node was asked and none answered, it starts over after a back-off, and finds the cell once they answer (regression: it never asked again)", () => {
    // Every node is unreachable for a while (a data-channel client whose connections are
    // still opening, a network blip): each lookup times out. The client must keep asking.
    const colony = nodes();
    for (const node of colony.values()) node.cache.merge(entry({ members: members(0) }), nowMs);
    const c = client();
    let now = nowMs;
    const failedAt: number[] = [];
    for (; now < nowMs + 20_000; now += 100) {
      const route = c.route("vol-1", now);
      if (route.lookup !== null) {
        failedAt.push(now);
        c.lookupFailed(route.lookup.message.id, now);
      }
    }
    // More lookups than there are nodes: the rounds start over...
    expect(failedAt.length).toBeGreaterThan(seeds.length);
    // ...but backed off: fewer in the last five seconds than in the first, and never silent for long.
    expect(failedAt.filter((at) => at >= now - 5_000).length).toBeLessThan(failedAt.filter((at) => at < nowMs + 5_000).length);
    const gaps = failedAt.slice(1).map((at, i) => at - (failedAt[i] as number));
    expect(Math.max(...gaps)).toBeGreaterThanOrEqual(2_000);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(4_100);
    // The nodes answer again: the cell is found within the longest back-off.
    const back = now;
    let found = c.route("vol-1", now);
    for (; found.entry === null && now < back + 4_100; now += 100, found = c.route("vol-1", now)) ask(c, colony, found, now);
    expect(found.status).toBe("known");
    expect(found.candidates.map((t) => t.nodeId)).toContain("n0");
  });

  test("a stale node cannot take back what a fresher one said", () => {
    const colony = nodes();
    colony.get("n0")!.cache.merge(entry({ version: 12, members: members(3) }), nowMs);
    for (const [id, node] of colony) if (id !== "n0") node.cache.merge(entry({ version: 10 }), nowMs);
    const c = client();
    c.evidence("vol-1", { kind: "notHosted", node: identity(9), pointer: entry({ version: 12, members: members(3) }) }, nowMs);
    const route = c.route("vol-1", nowMs);
    ask(c, colony, route, nowMs);
    expect(c.route("vol-1", nowMs).entry?.version).toBe(12);
  });

  test("says no such cell only after two nodes said so, and not once anything is known", () => {
    const colony = nodes();
    const c = client();
    // Every route's lookup is sent: the client counts on it.
    const step = (now: number): Route => {
      const route = c.route("ghost", now);
      ask(c, colony, route, now);
      return route;
    };
    expect(step(nowMs).status).toBe("unknown");
    expect(step(nowMs).status).toBe("unknown");
    expect(step(nowMs).status).toBe("noSuchCell");
    colony.get("n5")!.push(report({ cell: "ghost", members: members(5) }), nowMs);
    colony.get("n5")!.host("ghost");
    // Lookups go on (backing off); one that reaches the node that knows the cell makes it known.
    let now = nowMs;
    for (let i = 0; i < 200 && c.route("ghost", now).status !== "known"; i++) {
      now += 1_000;
      step(now);
    }
    expect(c.route("ghost", now).status).toBe("known");
  });

  test("takes an answer that comes after its lookup was given up on, once", () => {
    const colony = nodes();
    for (const node of colony.values()) node.cache.merge(entry({ members: members(0) }), nowMs);
    const c = client();
    const route = c.route("vol-1", nowMs);
    expect(route.lookup).not.toBeNull();
    const lookup = route.lookup!;
    c.lookupFailed(lookup.message.id, nowMs + 300);
    expect(c.route("vol-1", nowMs + 300).status).toBe("unknown");
    const answer = colony.get(lookup.nodeId)!.answer(lookup.wire, nowMs + 400);
    expect(answer.ok).toBe(true);
    if (!answer.ok) return;
    expect(c.receive(answer.wire, nowMs + 400)).toBe(true);
    const known = c.route("vol-1", nowMs + 400);
    expect(known.status).toBe("known");
    expect(known.candidates.map((t) => t.nodeId)).toContain("n0");
    // The same answer again is unasked now.
    expect(c.receive(answer.wire, nowMs + 500)).toBe(false);
  });

  test("ignores malformed, unasked and wrong-kind answers", () => {
    const c = client();
    expect(c.receive({ k: "a", i: 1 }, nowMs)).toBe(false);
    expect(c.receive(encodeMessage({ kind: "lookupAnswer", id: 99, answers: [], peers: [] }), nowMs)).toBe(false);
    expect(c.receive(encodeMessage({ kind: "lookup", id: 1, cells: ["x"] }), nowMs)).toBe(false);
  });

  test("holds at most cellsMax cells, forgetting the least recently used", () => {
    const c = client(3);
    for (const cell of ["a", "b", "c"]) c.evidence(cell, { kind: "notHosted", node: identity(9), pointer: entry({ cell }) }, nowMs);
    c.route("a", nowMs);
    c.evidence("d", { kind: "notHosted", node: identity(9), pointer: entry({ cell: "d" }) }, nowMs);
    expect(c.size).toBe(3);
    expect(c.route("a", nowMs).status).toBe("known");
    expect(c.route("c", nowMs).status).toBe("known");
    expect(c.route("b", nowMs).status).toBe("unknown");
  });
});
