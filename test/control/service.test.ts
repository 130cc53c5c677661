// The control plane against real nodes on an in-memory network: it creates a cell where the
// placer says, replaces a member whose node stays down, moves the cell after its clients,
// and a standby finishes what a stopped active one began.

import { afterEach, describe, expect, test } from "bun:test";
import { PhysaliaClient } from "../../src/client/client.ts";
import { ProbeView } from "../../src/control/probe.ts";
import { ControlPlane, clientsKey, controlCellOf } from "../../src/control/service.ts";
import { parseTopology } from "../../src/control/topology/parse.ts";
import type { Topology } from "../../src/control/topology/types.ts";
import { utf8 } from "../../src/core/value.ts";
import { MemoryLog } from "../../src/node/log.ts";
import { PhysaliaNode } from "../../src/node/node.ts";
import type { Endpoint } from "../../src/transport/transport.ts";
import { nodePart } from "../../src/wire/ids.ts";
import { testKeys } from "../support/keys.ts";
import { MemoryNetwork } from "../support/memnet.ts";

const keys = testKeys();

function topology(vm1Row = "r1", extraNode = false): Topology {
  const nodes = [];
  for (const row of ["r1", "r2"]) {
    for (let i = 0; i < 4; i++) nodes.push({ id: `${row}n${i}`, address: `127.0.0.1:${row === "r1" ? 7300 + i : 7400 + i}`, row, rack: `${row}k${i % 3}`, power: `p${i % 3}`, color: "blue", capacity: 1000 });
  }
  if (extraNode) nodes.push({ id: "r2n9", address: "127.0.0.1:7409", row: "r2", rack: "r2k0", power: "p0", color: "blue", capacity: 1000 });
  const clients = [{ id: "vm1", kind: "instance", row: vm1Row, rack: `${vm1Row}k0` }, { id: "vm2", kind: "instance", row: "r2", rack: "r2k0" }];
  const parsed = parseTopology(JSON.stringify({ version: 1, powerDomains: ["p0", "p1", "p2"], colors: ["blue"], nodes, clients }));
  if (parsed instanceof Error) throw parsed;
  return parsed;
}

class Colony {
  readonly net = new MemoryNetwork();
  readonly topology = topology();
  readonly endpoints = new Map<string, Endpoint>(this.topology.nodes.map((n) => [n.id, { host: "127.0.0.1", port: Number(n.address.split(":")[1]) }]));
  readonly nodes = new Map<string, PhysaliaNode>();
  readonly clients: PhysaliaClient[] = [];
  readonly planes: ControlPlane[] = [];

  constructor() {
    for (const id of this.endpoints.keys()) this.start(id);
  }

  start(id: string): void {
    const endpoint = this.endpoints.get(id) as Endpoint;
    const node = new PhysaliaNode({
      id: `${id}~${"0".repeat(15)}${(this.nodes.size % 10)}`, peers: new Map([...this.endpoints].filter(([other]) => other !== id)), keys: keys.node,
      log: new MemoryLog(), transport: this.net.open(endpoint.host, endpoint.port), heartbeatMs: 20, livenessTimeoutMs: 200,
    });
    node.start();
    this.nodes.set(id, node);
  }

  async stop(id: string): Promise<void> {
    await this.nodes.get(id)?.stop();
    this.nodes.delete(id);
  }

  client(id: string): PhysaliaClient {
    const client = new PhysaliaClient({ id, nodes: this.endpoints, keys: keys.control, transport: this.net.open(), deadlineMs: 4_000, membersPerCell: 3 });
    this.clients.push(client);
    return client;
  }

  plane(id: string): ControlPlane {
    const client = this.client(id);
    const view = new ProbeView({ client, nodes: [...this.endpoints.keys()], controlCell: controlCellOf("blue"), probeMs: 150 });
    const plane = new ControlPlane({ id, topology: this.topology, color: "blue", client, view, graceMs: 300, passMs: 50, size: 3, leaseTtlMs: 900, ...(process.env.CONTROL_LOG ? { log: console.log } : {}) });
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

async function until<T>(what: string, check: () => Promise<T | null | false> | T | null | false, ms = 20_000): Promise<T> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    const value = await check();
    if (value !== null && value !== false) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const members = async (client: PhysaliaClient, cell: string) => ((await client.describe(cell))?.hosted.members ?? []).map(nodePart).sort();

describe("the control plane", () => {
  test("creates a cell near its client, replaces a member whose node stays down, and moves the cell after its client", async () => {
    colony = new Colony();
    const admin = colony.client("admin");
    const plane = colony.plane("control-a");
    await plane.ensureControlCell();
    await admin.transact(controlCellOf("blue"), { reads: [], conditions: [], writes: [{ key: "create/vol", op: "put", value: utf8(JSON.stringify({ client: "vm1" })) }] });
    const first = await plane.pass();
    expect(first.role).toBe("active");
    expect(first.created).toEqual(["vol"]);
    const placed = await members(admin, "vol");
    expect(placed.length).toBe(3);
    expect(placed.every((n) => n.startsWith("r1"))).toBe(true);
    // A member's node goes down and stays down past the grace period.
    const victim = placed[0] as string;
    await colony.stop(victim);
    const running = plane.run();
    const repaired = await until("the cell to be back to three live members without the dead one", async () => {
      const now = await members(admin, "vol");
      return now.length === 3 && !now.includes(victim) && now.every((n) => n.startsWith("r1")) ? now : null;
    });
    expect(repaired).not.toContain(victim);
    expect((await admin.transact("vol", { reads: [], conditions: [], writes: [{ key: "k", op: "put", value: utf8("v") }] })).status).toBe("committed");
    // Its client moves to row r2: the cell follows, one node at a time.
    await admin.transact("vol", { reads: [], conditions: [], writes: [{ key: clientsKey, op: "put", value: utf8(JSON.stringify({ instance: { row: "r2" }, primary: { row: "r2" }, replica: { row: "r2" } })) }] });
    const moved = await until("the cell to move to row r2", async () => {
      const now = await members(admin, "vol");
      return now.length === 3 && now.every((n) => n.startsWith("r2")) ? now : null;
    }, 30_000);
    expect(moved.length).toBe(3);
    expect((await admin.transact("vol", { reads: ["k"], conditions: [], writes: [] }))).toMatchObject({ status: "committed", reads: [utf8("v")] });
    plane.stop();
    await running;
  }, 60_000);

  test("one control plane is active at a time; when it stops, a standby takes over and finishes the repair", async () => {
    colony = new Colony();
    const admin = colony.client("admin");
    const a = colony.plane("control-a");
    const b = colony.plane("control-b");
    await a.ensureControlCell();
    await admin.transact(controlCellOf("blue"), { reads: [], conditions: [], writes: [{ key: "create/vol2", op: "put", value: utf8(JSON.stringify({ client: "vm1" })) }] });
    expect((await a.pass()).role).toBe("active");
    expect((await b.pass()).role).toBe("standby");
    const placed = await members(admin, "vol2");
    const victim = placed[0] as string;
    await colony.stop(victim);
    // The active one stops before it repairs anything; the standby takes the lease once it runs out.
    a.stop();
    const running = b.run();
    await until("the standby to become active", () => b.role === "active");
    const repaired = await until("the standby to repair the cell", async () => {
      const now = await members(admin, "vol2");
      return now.length === 3 && !now.includes(victim) ? now : null;
    });
    expect(repaired.length).toBe(3);
    b.stop();
    await running;
  }, 60_000);

  test("a new topology in which a cell's client has moved moves the cell; one with other nodes is refused", async () => {
    colony = new Colony();
    const admin = colony.client("admin");
    const plane = colony.plane("control-a");
    await plane.ensureControlCell();
    await admin.transact(controlCellOf("blue"), { reads: [], conditions: [], writes: [{ key: "create/vol3", op: "put", value: utf8(JSON.stringify({ client: "vm1" })) }] });
    expect((await plane.pass()).created).toEqual(["vol3"]);
    expect((await members(admin, "vol3")).every((n) => n.startsWith("r1"))).toBe(true);
    expect(plane.updateTopology(topology("r1", true))).toMatchObject({ ok: false, reason: expect.stringContaining("nodes of color blue changed") });
    expect(plane.updateTopology(topology("r2"))).toEqual({ ok: true, moved: 1 });
    const running = plane.run();
    const moved = await until("the cell to follow vm1 to row r2", async () => {
      const now = await members(admin, "vol3");
      return now.length === 3 && now.every((n) => n.startsWith("r2")) ? now : null;
    }, 30_000);
    expect(moved.length).toBe(3);
    plane.stop();
    await running;
  }, 60_000);
});
