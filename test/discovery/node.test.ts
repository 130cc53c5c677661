import { describe, expect, test } from "bun:test";
import { discoveryLimits } from "../../src/discovery/limits.ts";
import { encodeMessage } from "../../src/discovery/messages.ts";
import { DiscoveryNode, type Outgoing } from "../../src/discovery/node.ts";
import { Rng } from "../../src/random.ts";
import { entry, identity, members, nowMs, report } from "./support.ts";

function colony(count: number, options: { sessionBytesMax?: number; leafBits?: number } = {}): DiscoveryNode[] {
  const seeds = Array.from({ length: count }, (_, i) => ({ nodeId: `n${i}`, address: `10.0.0.${i + 1}:7101` }));
  return seeds.map(
    (seed, i) =>
      new DiscoveryNode({
        identity: identity(i), address: seed.address, generation: 1_000 + i, seeds, rng: new Rng(100 + i), nowMs,
        leafBits: options.leafBits ?? 8, sessionBytesMax: options.sessionBytesMax ?? 64 * 1024,
      }),
  );
}

/** Runs `rounds` gossip rounds, delivering every message at once unless `lose` says so. */
function run(nodes: DiscoveryNode[], rounds: number, options: { lose?: (out: Outgoing) => boolean; sent?: Outgoing[] } = {}): number {
  const byId = new Map(nodes.map((n) => [n.nodeId, n]));
  let now = nowMs;
  for (let round = 0; round < rounds; round++) {
    for (const stepMs of [0, 250, 500, 750]) {
      now = nowMs + round * 1_000 + stepMs;
      const queue: Array<{ from: string; out: Outgoing }> = [];
      for (const node of nodes) for (const out of node.tick(now).messages) queue.push({ from: node.nodeId, out });
      while (queue.length > 0) {
        const { from, out } = queue.shift()!;
        options.sent?.push(out);
        if (options.lose?.(out) === true) continue;
        const result = byId.get(out.to)!.receive({ from, message: out.wire }, now);
        expect(result.ok).toBe(true);
        if (result.ok) for (const next of result.messages) queue.push({ from: out.to, out: next });
      }
    }
  }
  return now;
}

describe("anti-entropy between nodes", () => {
  test("brings eight replicas with different cells to the same contents", () => {
    const nodes = colony(8);
    nodes.forEach((node, i) => {
      for (let c = 0; c < 150; c++) node.push(report({ cell: `cell-${i}-${c}`, members: members(i), leader: identity(i) }), nowMs);
    });
    run(nodes, 12);
    for (const node of nodes) {
      expect(node.cache.size).toBe(1_200);
      expect(node.cache.root()).toEqual(nodes[0]!.cache.root());
    }
  });

  test("never sends a message over the bound nor a session over its budget (4 KiB sessions)", () => {
    const nodes = colony(2, { sessionBytesMax: 4_096 });
    for (let c = 0; c < 2_000; c++) nodes[0]!.push(report({ cell: `cell-${c}` }), nowMs);
    const sent: Outgoing[] = [];
    run(nodes, 1, { sent });
    expect(nodes[1]!.cache.size).toBeGreaterThan(0);
    expect(nodes[1]!.cache.size).toBeLessThan(2_000);
    const perSession = new Map<string, number>();
    for (const out of sent) {
      expect(out.bytes).toBeLessThanOrEqual(discoveryLimits.messageBytesMax);
      const key = `${out.to}/${out.message.session}`;
      perSession.set(key, (perSession.get(key) ?? 0) + out.bytes);
    }
    // A side stops once what it sent reaches the budget, so it exceeds it by at most one message.
    for (const bytes of perSession.values()) expect(bytes).toBeLessThanOrEqual(4_096 + 4_096);
    run(nodes, 200);
    expect(nodes[1]!.cache.size).toBe(2_000);
  });

  test("converges through 30% message loss", () => {
    const nodes = colony(6);
    nodes.forEach((node, i) => {
      for (let c = 0; c < 50; c++) node.push(report({ cell: `cell-${i}-${c}`, members: members(i), leader: identity(i) }), nowMs);
    });
    const rng = new Rng(9);
    run(nodes, 30, { lose: () => rng.chance(0.3) });
    for (const node of nodes) expect(node.cache.root()).toEqual(nodes[0]!.cache.root());
    expect(nodes[0]!.cache.size).toBe(300);
  });

  test("costs a probe and its answer per round when replicas agree", () => {
    const nodes = colony(4);
    run(nodes, 10);
    const sent: Outgoing[] = [];
    run(nodes, 5, { sent });
    expect(sent.every((out) => out.message.entries === undefined && out.message.tree === undefined)).toBe(true);
    expect(sent.length).toBeLessThanOrEqual(4 * 5 * 3);
  });
});

describe("a replica that restarted empty", () => {
  test("catches up with several sessions a round, and holds back followers' pushes of cells it lacks meanwhile", () => {
    const nodes = colony(6);
    for (const node of nodes.slice(1)) for (let c = 0; c < 3_000; c++) node.cache.merge(entry({ cell: `cell-${c}` }), nowMs);
    // One round: n0 hears counts of 3,000 entries from its peers.
    run([nodes[0]!, ...nodes.slice(1)], 1);
    const now = nowMs + 1_500;
    expect(nodes[0]!.catchingUp(now)).toBe(true);
    expect(nodes[0]!.tick(nowMs + 2_000).messages.filter((out) => out.message.step === 0).length).toBe(discoveryLimits.catchUpSessionsMax);
    const lacking = [...Array(3_000).keys()].map((c) => `cell-${c}`).find((cell) => nodes[0]!.cache.get(cell) === null)!;
    expect(nodes[0]!.push(report({ cell: lacking, role: "follower" }), now)).toBe("deferred");
    expect(nodes[0]!.push(report({ cell: lacking, role: "leader" }), now)).toBe("stored");
    run(nodes, 30);
    expect(nodes[0]!.cache.size).toBe(3_000);
    expect(nodes[0]!.catchingUp(nowMs + 31_000)).toBe(false);
  });
});

describe("liveness through the sessions", () => {
  test("a peer that answers nothing is suspected after three sends of the open, then dead everywhere", () => {
    const nodes = colony(5);
    run(nodes, 3);
    const now = run(nodes, 25, { lose: (out) => out.to === "n4" || out.address === "10.0.0.5:7101" });
    // n4 never hears anything, so it cannot refute.
    for (const node of nodes.slice(0, 4)) expect(node.peers.get("n4")?.record.status).toBe("dead");
    expect(nodes.slice(0, 4).reduce((sum, node) => sum + node.stats.probesFailed, 0)).toBeGreaterThan(0);
    expect(now).toBeGreaterThan(nowMs);
  });

  test("a node declared dead while cut off refutes once it can talk again", () => {
    const nodes = colony(5);
    run(nodes, 3);
    let cut = true;
    run(nodes, 25, { lose: (out) => cut && (out.to === "n4" || out.message.from?.identity === identity(4) || out.address === "10.0.0.5:7101") });
    expect(nodes[0]!.peers.get("n4")?.record.status).toBe("dead");
    cut = false;
    run(nodes, 30);
    for (const node of nodes) expect(node.peers.get("n4")?.record.status).toBe("alive");
    expect(nodes[4]!.stats.refutations).toBeGreaterThan(0);
  });
});

describe("what a node says about a cell", () => {
  test("hosted, moved (with every member it knew), found, or no such cell", () => {
    const [node] = colony(2);
    const n = node!;
    n.host("mine");
    n.push(report({ cell: "mine" }), nowMs);
    n.leave(report({ cell: "gone", members: members(3) }), nowMs);
    n.cache.merge(entry({ cell: "heard" }), nowMs);
    expect(n.lookup("mine", nowMs)).toMatchObject({ status: "hosted", entry: { cell: "mine" } });
    expect(n.lookup("gone", nowMs)).toMatchObject({ status: "moved", pointer: { members: [...members(3)].sort() }, entry: null });
    expect(n.lookup("heard", nowMs)).toMatchObject({ status: "found" });
    expect(n.lookup("never", nowMs)).toEqual({ cell: "never", status: "noSuchCell" });
    const pointerLifetimeMs = discoveryLimits.pointerLifetimeMsDefault;
    expect(n.lookup("gone", nowMs + pointerLifetimeMs).status).toBe("noSuchCell");
  });

  test("answers a lookup with the members' addresses, and fewer cells when all would not fit", () => {
    const [n] = colony(8);
    // Moved answers carry a pointer and an entry: 64 of them with long names outgrow a message.
    for (let c = 0; c < 64; c++) {
      n!.cache.merge(entry({ cell: `${"v".repeat(250)}-${c}`, members: members(0, 9) }), nowMs);
      n!.leave(report({ cell: `${"v".repeat(250)}-${c}`, members: members(0, 9) }), nowMs);
    }
    const small = n!.answer(encodeMessage({ kind: "lookup", id: 7, cells: [`${"v".repeat(250)}-1`, "nope"] }), nowMs);
    expect(small.ok).toBe(true);
    if (small.ok) {
      expect(small.answer.answers.map((a) => a.status)).toEqual(["moved", "noSuchCell"]);
      expect(small.answer.peers.map((p) => p.address)).toContain("10.0.0.3:7101");
    }
    const big = n!.answer(encodeMessage({ kind: "lookup", id: 8, cells: Array.from({ length: 64 }, (_, c) => `${"v".repeat(250)}-${c}`) }), nowMs);
    expect(big.ok).toBe(true);
    if (big.ok) {
      expect(big.bytes).toBeLessThanOrEqual(discoveryLimits.messageBytesMax);
      expect(big.answer.answers.length).toBeGreaterThan(0);
      expect(big.answer.answers.length).toBeLessThan(64);
    }
  });
});

describe("input from outside", () => {
  test("malformed or misplaced messages are refused with a typed reason and change nothing", () => {
    const [a, b] = colony(2);
    const before = a!.cache.root();
    const open = b!.tick(nowMs + 1_000).messages[0]!;
    const cases: Array<[string, unknown, string]> = [
      ["n1", { k: "g" }, "badSchema"],
      ["n1", encodeMessage({ kind: "lookup", id: 1, cells: ["x"] }), "wrongKind"],
      ["n9", open.wire, "unknownSender"],
      ["n0", open.wire, "unknownSender"],
      ["n1", { ...open.wire, f: [identity(5), "10.0.0.6:7101", 1, 0, "a"] }, "senderMismatch"],
      ["n1", { ...open.wire, t: 3 }, "unknownSession"],
      ["n1", { ...open.wire, tr: [6, [0], new Uint8Array(64)] }, "treeMismatch"],
      ["n1", { ...open.wire, tr: [4, [0], new Uint8Array(16)] }, "treeMismatch"],
    ];
    for (const [from, message, reason] of cases) {
      const result = a!.receive({ from, message }, nowMs);
      expect([reason, result.ok]).toEqual([reason, false]);
      if (!result.ok) expect(result.reason).toBe(reason as typeof result.reason);
    }
    expect(a!.cache.root()).toEqual(before);
    expect(a!.stats.rejected.unknownSender).toBe(2);
  });

  test("entries a peer sends that are expired or from the future are counted and dropped", () => {
    const [a, b] = colony(2);
    const open = b!.tick(nowMs + 1_000).messages[0]!;
    const stale = entry({ refreshedMs: nowMs - discoveryLimits.entryLifetimeMsDefault });
    const ahead = entry({ cell: "vol-2", refreshedMs: nowMs + 3_600_000 });
    const wire = encodeMessage({ ...open.message, entries: [stale, ahead] });
    expect(a!.receive({ from: "n1", message: wire }, nowMs).ok).toBe(true);
    expect(a!.cache.size).toBe(0);
    expect(a!.stats.rejected).toMatchObject({ expired: 1, future: 1 });
  });

  test("a node answering too many sessions at once gives further ones only the probe's answer", () => {
    const nodes = colony(7);
    const target = nodes[0]!;
    target.push(report({ cell: "x" }), nowMs);
    let busy = 0;
    for (const node of nodes.slice(1)) {
      const open = node.tick(nowMs + 1_000).messages.find((out) => out.to === "n0") ?? null;
      const wire = open?.wire ?? encodeMessage({ kind: "gossip", session: 99, step: 0, from: node.peers.self(), root: new Uint8Array(8) });
      const result = target.receive({ from: node.nodeId, message: wire }, nowMs + 1_000);
      if (result.ok && result.messages[0]?.message.busy === true) busy++;
    }
    expect(busy).toBe(6 - discoveryLimits.answeredSessionsMax);
  });
});
