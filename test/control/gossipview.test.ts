// The control plane's gossip view against real nodes on an in-memory network: node health
// from three nodes' peer tables a pass (never a hello per node), a stopped node dead within
// a bound of gossip rounds and never counted down for longer than it was, cells' members
// from batched discovery lookups after a membership change, and a repair driven by it.

import { afterEach, describe, expect, test } from "bun:test";
import { UsageError } from "../../src/cli/args.ts";
import { controlCommand } from "../../src/cli/control.ts";
import { PhysaliaClient } from "../../src/client/client.ts";
import { GossipView } from "../../src/control/gossipview.ts";
import { registryPrefix } from "../../src/control/registry.ts";
import { ControlPlane, controlCellOf } from "../../src/control/service.ts";
import { parseTopology } from "../../src/control/topology/parse.ts";
import type { Topology } from "../../src/control/topology/types.ts";
import type { CellAnswer } from "../../src/discovery/mod.ts";
import { utf8 } from "../../src/core/value.ts";
import { MemoryLog } from "../../src/node/log.ts";
import { PhysaliaNode } from "../../src/node/node.ts";
import type { Endpoint, Transport } from "../../src/transport/transport.ts";
import { nodePart } from "../../src/wire/ids.ts";
import { testKeys } from "../support/keys.ts";
import { MemoryNetwork } from "../support/memnet.ts";

const keys = testKeys();
const roundMs = 200;
const suspectTimeoutMs = 1_000;

function topology(): Topology {
  const nodes = [];
  for (const row of ["r1", "r2"]) {
    for (let i = 0; i < 4; i++) nodes.push({ id: `${row}n${i}`, address: `127.0.0.1:${row === "r1" ? 7500 + i : 7600 + i}`, row, rack: `${row}k${i % 3}`, power: `p${i % 3}`, color: "blue", capacity: 1000 });
  }
  const clients = [{ id: "vm1", kind: "instance", row: "r1", rack: "r1k0" }];
  const parsed = parseTopology(JSON.stringify({ version: 1, powerDomains: ["p0", "p1", "p2"], colors: ["blue"], nodes, clients }));
  if (parsed instanceof Error) throw parsed;
  return parsed;
}

/** Counts the datagrams a client sends. */
function counted(inner: Transport, counter: { sent: number }): Transport {
  return {
    local: inner.local,
    send: (bytes, to) => {
      counter.sent++;
      inner.send(bytes, to);
    },
    onReceive: (handler) => inner.onReceive(handler),
    close: () => inner.close(),
  };
}

class Colony {
  readonly net = new MemoryNetwork();
  readonly topology = topology();
  readonly endpoints = new Map<string, Endpoint>(this.topology.nodes.map((n) => [n.id, { host: "127.0.0.1", port: Number(n.address.split(":")[1]) }]));
  readonly nodes = new Map<string, PhysaliaNode>();
  readonly clients: PhysaliaClient[] = [];
  readonly planes: ControlPlane[] = [];

  constructor() {
    let i = 0;
    for (const id of this.endpoints.keys()) this.start(id, i++);
  }

  start(id: string, i: number): void {
    const endpoint = this.endpoints.get(id) as Endpoint;
    const node = new PhysaliaNode({
      id: `${id}~${"0".repeat(15)}${i % 10}`, peers: new Map([...this.endpoints].filter(([other]) => other !== id)), keys: keys.node,
      log: new MemoryLog(), transport: this.net.open(endpoint.host, endpoint.port), heartbeatMs: 20, livenessTimeoutMs: 200,
      discoveryRoundMs: roundMs, discoverySuspectTimeoutMs: suspectTimeoutMs,
    });
    node.start();
    this.nodes.set(id, node);
  }

  async stop(id: string): Promise<void> {
    await this.nodes.get(id)?.stop();
    this.nodes.delete(id);
  }

  client(id: string, counter?: { sent: number }): PhysaliaClient {
    const transport = counter === undefined ? this.net.open() : counted(this.net.open(), counter);
    const client = new PhysaliaClient({ id, nodes: this.endpoints, keys: keys.control, transport, deadlineMs: 4_000, membersPerCell: 3 });
    this.clients.push(client);
    return client;
  }

  view(client: PhysaliaClient): GossipView {
    return new GossipView({ client, nodes: [...this.endpoints.keys()], controlCell: controlCellOf("blue"), askMs: 150, heardRecentMs: 2 * roundMs, suspectTimeoutMs });
  }

  plane(id: string): ControlPlane {
    const client = this.client(id);
    const plane = new ControlPlane({ id, topology: this.topology, color: "blue", client, view: this.view(client), graceMs: 300, passMs: 50, size: 3, leaseTtlMs: 900, ...(process.env.CONTROL_LOG ? { log: console.log } : {}) });
    this.planes.push(plane);
    return plane;
  }

  async close(): Promise<void> {
    for (const plane of this.planes) plane.stop();
    for (const client of this.clients) client.close();
    for (const node of this.nodes.values()) await node.stop();
  }
}

let colony: Colony | null = null;
afterEach(async () => {
  await colony?.close();
  colony = null;
});

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, check: () => Promise<T | null | false> | T | null | false, ms = 20_000): Promise<T> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    const value = await check();
    if (value !== null && value !== false) return value;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const members = async (client: PhysaliaClient, cell: string) => ((await client.describe(cell))?.hosted.members ?? []).map(nodePart).sort();
async function register(client: PhysaliaClient, cells: readonly string[]): Promise<boolean> {
  for (let i = 0; i < cells.length; i += 32) {
    const writes = cells.slice(i, i + 32).map((cell) => ({ key: `cell/${cell}`, op: "put" as const, value: utf8("{}") }));
    if ((await client.transact(controlCellOf("blue"), { reads: [], conditions: [], writes })).status !== "committed") return false;
  }
  return true;
}

describe("the gossip view", () => {
  test("learns node health from three peer tables a pass; a stopped node is dead within a bound of gossip rounds, and never down for longer than it was", async () => {
    colony = new Colony();
    const counter = { sent: 0 };
    const view = colony.view(colony.client("control", counter));
    const all = await until("every node alive", async () => {
      const health = await view.health();
      return [...health.values()].every((h) => h.health === "alive") ? health : null;
    });
    expect(all.size).toBe(8);
    expect(all.get("r1n2")?.identity).toBe(`r1n2~${"0".repeat(15)}2`);
    const victim = "r1n2";
    await colony.stop(victim);
    const stoppedAt = performance.now();
    let passes = 0;
    let before = counter.sent;
    let requests = view.stats.peerRequests;
    let sawSuspect = false;
    const dead = await until("the stopped node to be dead", async () => {
      const health = await view.health();
      passes++;
      // Three requests a pass (one page each), whatever the number of nodes; no hello at all.
      expect(counter.sent - before).toBe(3);
      expect(view.stats.peerRequests - requests).toBe(3);
      before = counter.sent;
      requests = view.stats.peerRequests;
      const h = health.get(victim);
      for (const [node, other] of health) if (node !== victim) expect(other.health).toBe("alive");
      // Never counted down for longer than it has really been down: a repair is never early.
      expect(h?.downForMs ?? 0).toBeLessThanOrEqual(performance.now() - stoppedAt + 5);
      if (h?.health === "suspect") sawSuspect = true;
      return h?.health === "dead" ? { at: performance.now(), health: h } : null;
    }, 15_000);
    // Detection: a probe within a few rounds (about two in three rounds reach any one node in a
    // colony of eight), three sends of 50 ms, then the suspicion's timeout and its rumor.
    const detectedMs = dead.at - stoppedAt;
    expect(detectedMs).toBeLessThan(15 * roundMs + suspectTimeoutMs);
    expect(detectedMs).toBeGreaterThanOrEqual(suspectTimeoutMs);
    expect(dead.health.identity).toBe(`r1n2~${"0".repeat(15)}2`);
    expect(passes).toBeGreaterThan(1);
    expect(sawSuspect || dead.health.downForMs >= suspectTimeoutMs - 5).toBe(true);
    // Down for about as long as it was: from the last time an asked node heard from it.
    await sleep(300);
    const later = (await view.health()).get(victim);
    expect(later?.health).toBe("dead");
    expect(later?.downForMs ?? 0).toBeGreaterThanOrEqual(300);
    expect(later?.downForMs ?? Infinity).toBeLessThanOrEqual(performance.now() - stoppedAt + 5);
  }, 30_000);

  test("asks more nodes only when none of the first ones answers", async () => {
    colony = new Colony();
    const counter = { sent: 0 };
    const view = colony.view(colony.client("control", counter));
    await until("every node alive", async () => [...(await view.health()).values()].every((h) => h.health === "alive"));
    // Every node but r2n3 stops: the view goes through its batches of three until r2n3 answers.
    for (const id of [...colony.nodes.keys()]) if (id !== "r2n3") await colony.stop(id);
    const before = view.stats.peerRequests;
    const health = await view.health();
    expect(health.get("r2n3")?.health).toBe("alive");
    expect(view.stats.peerRequests - before).toBeGreaterThan(3);
    expect(view.stats.peerRequests - before).toBeLessThanOrEqual(8);
  }, 30_000);

  test("cells() returns the members discovery knows, in lookups of 64 cells, after a membership change", async () => {
    colony = new Colony();
    const admin = colony.client("admin");
    const plane = colony.plane("control-a");
    await plane.ensureControlCell();
    const created = await admin.create("vol", { nodes: ["r1n0", "r1n1", "r1n2"] });
    expect(created.status).toBe("created");
    // 71 names: the real cell and 70 that were never created (discovery knows none of them).
    const ghosts = Array.from({ length: 70 }, (_, i) => `ghost-${i}`);
    expect(await register(admin, ["vol", ...ghosts])).toBe(true);
    const view = colony.view(colony.client("control"));
    await view.health();
    const first = await until("the cell in the view", async () => {
      const before = view.stats.lookups;
      const cells = await view.cells();
      // Every name not known yet, 64 to a lookup: two lookups, never one per cell.
      expect(view.stats.lookups - before).toBe(2);
      return cells.find((c) => c.cell === "vol") ?? null;
    });
    expect(first.members.map(nodePart).sort()).toEqual(["r1n0", "r1n1", "r1n2"]);
    expect(first.incarnation).toBe(created.incarnation);
    // A member is added, then another removed, and the view is told (as the control plane tells it).
    const identity = await admin.join("vol", "r2n0");
    view.changed("vol");
    // Told before the change shows anywhere: the cell is held back rather than shown with its old members.
    expect((await view.cells()).find((c) => c.cell === "vol")).toBeUndefined();
    expect((await admin.configure("vol", { kind: "addMember", node: identity })).status).toBe("configured");
    const added = await until("the added member in the view", async () => {
      const cell = (await view.cells()).find((c) => c.cell === "vol");
      // Held back until discovery shows the change: never the members from before it.
      if (cell !== undefined) expect(cell.members.length).toBe(4);
      return cell ?? null;
    }, 10_000);
    expect(added.members.map(nodePart).sort()).toEqual(["r1n0", "r1n1", "r1n2", "r2n0"]);
    const removed = created.members.find((m) => nodePart(m) === "r1n0") as string;
    expect((await admin.configure("vol", { kind: "removeMember", node: removed })).status).toBe("configured");
    // Not told this time (a node's own rejoin is such a change): the rotation finds it.
    const after = await until("the removal in the view", async () => {
      const cell = (await view.cells()).find((c) => c.cell === "vol");
      return cell !== undefined && cell.members.length === 3 ? cell : null;
    }, 15_000);
    expect(after.members.map(nodePart).sort()).toEqual(["r1n1", "r1n2", "r2n0"]);
    expect(await members(admin, "vol")).toEqual(["r1n1", "r1n2", "r2n0"]);
  }, 40_000);

  test("drives the control plane's repair of a dead node's cell", async () => {
    colony = new Colony();
    const admin = colony.client("admin");
    const plane = colony.plane("control-a");
    await plane.ensureControlCell();
    await admin.transact(controlCellOf("blue"), { reads: [], conditions: [], writes: [{ key: "create/vol", op: "put", value: utf8(JSON.stringify({ client: "vm1" })) }] });
    const first = await plane.pass();
    expect(first.created).toEqual(["vol"]);
    const placed = await members(admin, "vol");
    expect(placed.length).toBe(3);
    const victim = placed[0] as string;
    await colony.stop(victim);
    const running = plane.run();
    const repaired = await until("the cell to be back to three live members without the dead one", async () => {
      const now = await members(admin, "vol");
      return now.length === 3 && !now.includes(victim) ? now : null;
    }, 30_000);
    expect(repaired).not.toContain(victim);
    expect((await admin.transact("vol", { reads: [], conditions: [], writes: [{ key: "k", op: "put", value: utf8("v") }] })).status).toBe("committed");
    plane.stop();
    await running;
  }, 60_000);
});

test("physalia control takes --view gossip or probe, and refuses anything else before it opens a socket", async () => {
  await expect(controlCommand(["--view", "rumor", "--topology", "/nonexistent.json"])).rejects.toBeInstanceOf(UsageError);
});

/** A client that answers lookups and registry scans from two maps the test edits: no network. */
function scripted(entries: Map<string, { members: string[]; version: number }>, registered: string[]) {
  const incarnation = "0123456789abcdef";
  const stats = { registryReads: 0 };
  const client = {
    async lookupAt(_node: string, asked: readonly string[]) {
      const answers: CellAnswer[] = asked.map((cell) => {
        const known = entries.get(cell);
        if (known === undefined) return { cell, status: "noSuchCell" } as CellAnswer;
        return { cell, status: "found", entry: { cell, incarnation, epoch: 1, version: known.version, ballot: 1, leader: known.members[0] as string, refreshedMs: 0, members: known.members } };
      });
      return { kind: "lookupAnswer", id: 1, answers, peers: [] };
    },
    async transact(_cell: string, tx: { scan?: { start: string } }) {
      if (tx.scan?.start === registryPrefix) stats.registryReads++;
      return { status: "committed", reads: [], scan: { entries: registered.map((n) => [`${registryPrefix}${n}`, new Uint8Array(0)] as const), next: null } };
    },
  };
  return { client: client as unknown as PhysaliaClient, stats };
}

test("a pass in which no entry changed hands over the same cells without touching each; a changed entry shows the next pass, a deregistered cell at the next read of the registry", async () => {
  const id = (node: string) => `${node}~0123456789abcdef`;
  const entries = new Map([
    ["a", { members: ["r1n0", "r1n1", "r1n2"].map(id), version: 1 }],
    ["b", { members: ["r1n1", "r1n2", "r1n3"].map(id), version: 1 }],
    // A member of another color (not among the view's nodes) is never handed over.
    ["c", { members: ["r1n0", "r2n0", "g9"].map(id), version: 1 }],
  ]);
  const registered = ["a", "b", "c"];
  const { client, stats } = scripted(entries, registered);
  const view = new GossipView({ client, nodes: ["r1n0", "r1n1", "r1n2", "r1n3", "r2n0"], controlCell: controlCellOf("blue"), rescanEvery: 5 });
  const first = await view.cells();
  expect(first.map((c) => c.cell).sort()).toEqual(["a", "b", "c"]);
  expect(first.find((c) => c.cell === "c")?.members.map(nodePart)).toEqual(["r1n0", "r2n0"]);
  // Nothing changed: the very same array, and the same objects in it.
  const second = await view.cells();
  expect(second).toBe(first);
  // b gains a member: the next pass shows it, though the registry is not read again.
  entries.set("b", { members: ["r1n1", "r1n2", "r1n3", "r2n0"].map(id), version: 2 });
  const reads = stats.registryReads;
  const third = await view.cells();
  expect(stats.registryReads).toBe(reads);
  expect(third).not.toBe(first);
  expect(third.find((c) => c.cell === "b")?.members.map(nodePart)).toEqual(["r1n1", "r1n2", "r1n3", "r2n0"]);
  expect(third.find((c) => c.cell === "a")).toBe(first.find((c) => c.cell === "a"));
  // An older entry (a lagging node's) changes nothing.
  entries.set("b", { members: ["r1n1", "r1n2", "r1n3"].map(id), version: 1 });
  expect(await view.cells()).toBe(third);
  // c leaves the registry: gone at the next read of it (every fifth pass here), not before.
  registered.splice(registered.indexOf("c"), 1);
  let passes = 0;
  for (let seen = stats.registryReads; stats.registryReads === seen; passes++) {
    const cells = await view.cells();
    if (stats.registryReads === seen) expect(cells.some((c) => c.cell === "c")).toBe(true);
    else expect(cells.map((c) => c.cell).sort()).toEqual(["a", "b"]);
  }
  expect(passes).toBeLessThanOrEqual(5);
});
