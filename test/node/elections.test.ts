import { afterEach, describe, expect, test } from "bun:test";
import { PhysaliaClient } from "../../src/client/client.ts";
import { utf8 } from "../../src/core/value.ts";
import { limits } from "../../src/limits.ts";
import { MemoryLog } from "../../src/node/log.ts";
import { PhysaliaNode } from "../../src/node/node.ts";
import type { Endpoint } from "../../src/transport/transport.ts";
import { testKeys } from "../support/keys.ts";
import { MemoryNetwork } from "../support/memnet.ts";

const keys = testKeys();
let nodes: PhysaliaNode[] = [];
afterEach(async () => {
  for (const node of nodes) await node.stop();
  nodes = [];
});

/** Three nodes, each running at most `electionsInFlightMax` candidates at once. */
function colony(electionsInFlightMax: number, log: () => MemoryLog = () => new MemoryLog()): { net: MemoryNetwork; endpoints: Map<string, Endpoint> } {
  const net = new MemoryNetwork();
  const endpoints = new Map<string, Endpoint>([1, 2, 3].map((i) => [`n${i}`, { host: "127.0.0.1", port: 7300 + i }]));
  for (const [id, endpoint] of endpoints) {
    const node = new PhysaliaNode({
      id: `${id}~000000000000000${id.slice(1)}`, peers: new Map([...endpoints].filter(([other]) => other !== id)), keys: keys.node,
      log: log(), transport: net.open(endpoint.host, endpoint.port), heartbeatMs: 20, livenessTimeoutMs: 100, electionsInFlightMax,
    });
    node.start();
    nodes.push(node);
  }
  return { net, endpoints };
}

describe("a node's elections", () => {
  test("run at most electionsInFlightMax at once; the others are refused for now, and every cell still elects", async () => {
    const { net, endpoints } = colony(1);
    const client = new PhysaliaClient({ id: "writer", nodes: endpoints, keys: keys.control, transport: net.open(), deadlineMs: 20_000 });
    const cells = Array.from({ length: 12 }, (_, i) => `vol-${i}`);
    for (const cell of cells) expect((await client.create(cell)).status).toBe("created");
    // Sample how many candidates each node runs while every cell elects its first leader at once.
    let most = 0;
    const sampler = setInterval(() => {
      for (const node of nodes) most = Math.max(most, cells.filter((cell) => node.replica(cell)?.role === "candidate").length);
    }, 0);
    const results = await Promise.all(cells.map((cell) => client.transact(cell, { reads: [], conditions: [], writes: [{ key: "k", op: "put", value: utf8(cell) }] })));
    clearInterval(sampler);
    client.close();
    for (const result of results) expect(result.status).toBe("committed");
    expect(most).toBe(1);
    const paced = nodes.map((node) => Number(/physalia_elections_paced_total\{[^}]*\} (\d+)/.exec(node.metricsText())?.[1] ?? "0"));
    expect(paced.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  });

  test("wait longer before retransmitting when the node's syncs are slow", async () => {
    const syncMs = 40;
    const { net, endpoints } = colony(64, () => new SlowLog(syncMs));
    const client = new PhysaliaClient({ id: "writer", nodes: endpoints, keys: keys.control, transport: net.open(), deadlineMs: 20_000 });
    await client.create("vol-slow");
    for (let i = 0; i < 10; i++) await client.transact("vol-slow", { reads: [], conditions: [], writes: [{ key: "k", op: "put", value: utf8(`v${i}`) }] });
    client.close();
    // Every flush that synced took at least syncMs, so a peer answers two of them later at the earliest.
    const leader = nodes.find((node) => node.replica("vol-slow")?.role === "leader");
    expect(leader?.retransmitEstimateMs ?? 0).toBeGreaterThan(limits.retransmitMs);
  });
});

/** A log whose every sync takes `syncMs`, as a loaded disk's would. */
class SlowLog extends MemoryLog {
  constructor(private readonly syncMs: number) {
    super();
  }

  override async sync(): Promise<void> {
    await Bun.sleep(this.syncMs);
    await super.sync();
  }
}
