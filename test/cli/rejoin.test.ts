// The rejoin workflow of a node whose log was damaged: it works from an intent written down
// before it acts, so stopping it at any point and starting it again finishes the job.

import { afterEach, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PhysaliaClient } from "../../src/client/client.ts";
import { type Rejoiner, readIntent, startRejoining, writeIntent } from "../../src/cli/rejoin.ts";
import { MemoryLog } from "../../src/node/log.ts";
import { PhysaliaNode } from "../../src/node/node.ts";
import type { Endpoint } from "../../src/transport/transport.ts";
import { testKeys } from "../support/keys.ts";
import { MemoryNetwork } from "../support/memnet.ts";

const keys = testKeys();
const ids = ["n1", "n2", "n3", "n4"];
const identity = (id: string, generation: number) => `${id}~${generation.toString(16).padStart(16, "0")}`;

interface Setup {
  readonly net: MemoryNetwork;
  readonly endpoints: Map<string, Endpoint>;
  readonly nodes: PhysaliaNode[];
  readonly admin: PhysaliaClient;
  readonly dir: string;
}

let setup: Setup | null = null;
const rejoiners: Rejoiner[] = [];
afterEach(async () => {
  for (const r of rejoiners.splice(0)) r.stop();
  if (setup === null) return;
  setup.admin.close();
  for (const node of setup.nodes) await node.stop();
  await rm(setup.dir, { recursive: true, force: true });
  setup = null;
});

async function colony(): Promise<Setup> {
  const net = new MemoryNetwork();
  const endpoints = new Map<string, Endpoint>(ids.map((id, i) => [id, { host: "127.0.0.1", port: 7600 + i }]));
  const nodes = ids.map((id) => new PhysaliaNode({
    id: identity(id, 1), peers: new Map([...endpoints].filter(([other]) => other !== id)), keys: keys.node, log: new MemoryLog(),
    transport: net.open(endpoints.get(id)?.host, endpoints.get(id)?.port), heartbeatMs: 20, livenessTimeoutMs: 200,
  }));
  for (const node of nodes) node.start();
  // A three-member cell on n1..n3: rendezvous placement picks three of the four nodes.
  const admin = new PhysaliaClient({ id: "admin", nodes: endpoints, keys: keys.control, transport: net.open(), deadlineMs: 5_000, membersPerCell: 3 });
  return { net, endpoints, nodes, admin, dir: await mkdtemp(join(tmpdir(), "physalia-rejoin-")) };
}

/** n-th node comes back on a fresh directory: a new identity, hosting nothing. */
async function replace(s: Setup, index: number): Promise<PhysaliaNode> {
  const id = ids[index] as string;
  await s.nodes[index]?.stop();
  const node = new PhysaliaNode({
    id: identity(id, 2), peers: new Map([...s.endpoints].filter(([other]) => other !== id)), keys: keys.node, log: new MemoryLog(),
    transport: s.net.open(s.endpoints.get(id)?.host, s.endpoints.get(id)?.port), heartbeatMs: 20, livenessTimeoutMs: 200,
  });
  node.start();
  s.nodes[index] = node;
  return node;
}

function rejoin(s: Setup, node: string, retryMs = 50): Rejoiner {
  const r = startRejoining({ directory: s.dir, identity: identity(node, 2), keys: keys.node, nodes: s.endpoints, transport: s.net.open(), print: () => {}, retryMs });
  rejoiners.push(r);
  return r;
}

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("a node rejoining its cells after its log was damaged", () => {
  test("adds its new identity and removes its former one in every cell of its intent, and strikes each out", async () => {
    setup = await colony();
    const s = setup;
    const cells = ["vol-a", "vol-b"];
    const hosts = new Map<string, string[]>();
    for (const cell of cells) {
      const created = await s.admin.create(cell);
      hosts.set(cell, created.members.map((m) => m.split("~")[0] as string));
      await s.admin.transact(cell, { reads: [], conditions: [], writes: [{ key: "k", op: "put", value: new Uint8Array([1]) }] });
    }
    const victim = ids.find((id) => cells.every((c) => hosts.get(c)?.includes(id))) as string;
    expect(victim).toBeDefined();
    await replace(s, ids.indexOf(victim));
    writeIntent(s.dir, { former: identity(victim, 1), cells });
    rejoin(s, victim);
    await until("the intent to be done", () => readIntent(s.dir)?.cells.length === 0);
    for (const cell of cells) {
      const members = (await s.admin.describe(cell))?.hosted.members ?? [];
      expect(members).toContain(identity(victim, 2));
      expect(members).not.toContain(identity(victim, 1));
      expect(members.length).toBe(3);
    }
  }, 30_000);

  test("stopped half way (added, not yet removed) and started again, it finishes", async () => {
    setup = await colony();
    const s = setup;
    const created = await s.admin.create("vol-c");
    const victim = (created.members[0] as string).split("~")[0] as string;
    await replace(s, ids.indexOf(victim));
    // The first run got as far as adding the new identity, then the process died.
    await s.admin.join("vol-c", victim);
    const added = await s.admin.configure("vol-c", { kind: "addMember", node: identity(victim, 2) });
    expect(added.status).toBe("configured");
    writeIntent(s.dir, { former: identity(victim, 1), cells: ["vol-c"] });
    rejoin(s, victim);
    await until("the intent to be done", () => readIntent(s.dir)?.cells.length === 0);
    const members = (await s.admin.describe("vol-c"))?.hosted.members ?? [];
    expect(members).toContain(identity(victim, 2));
    expect(members).not.toContain(identity(victim, 1));
  }, 30_000);

  test("a cell it is no member of is struck out without a change; an unreadable intent is an error, not ignored", async () => {
    setup = await colony();
    const s = setup;
    const created = await s.admin.create("vol-d");
    const outsider = ids.find((id) => !created.members.some((m) => m.startsWith(`${id}~`))) as string;
    writeIntent(s.dir, { former: identity(outsider, 1), cells: ["vol-d"] });
    rejoin(s, outsider);
    await until("the intent to be done", () => readIntent(s.dir)?.cells.length === 0);
    expect((await s.admin.describe("vol-d"))?.hosted.members).toEqual(created.members);
    const { writeFile } = await import("node:fs/promises");
    await writeFile(join(s.dir, "REJOIN.json"), "{ not json");
    expect(() => readIntent(s.dir)).toThrow(/Cannot read/);
  }, 30_000);
});
