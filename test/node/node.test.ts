import { afterEach, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toHex } from "../../src/core/bytes.ts";
import { Replica } from "../../src/core/replica.ts";
import { openLog } from "../../src/storage/mod.ts";
import { NoSuchCellError, PhysaliaClient } from "../../src/client/client.ts";
import { MemoryLog, type NodeLog } from "../../src/node/log.ts";
import { type NodeOptions, PhysaliaNode } from "../../src/node/node.ts";
import type { CellRecord, DurableRecord } from "../../src/core/effects.ts";
import type { Endpoint } from "../../src/transport/transport.ts";
import { nodePart } from "../../src/wire/ids.ts";
import { KeyRing } from "../../src/wire/keyring.ts";
import { decodeMessages, encodeMessages } from "../../src/wire/message.ts";
import { testKeys, testSecret } from "../support/keys.ts";
import { utf8 } from "../../src/core/value.ts";
import { MemoryNetwork } from "../support/memnet.ts";

const keys = testKeys();
const stamp = { epoch: 1, counter: 1 };
const put = (key: string, value: Uint8Array | bigint | boolean) => ({ reads: [], conditions: [], writes: [{ key, op: "put" as const, value }] });
const get = (...keys: string[]) => ({ reads: keys, conditions: [], writes: [] });

class Colony {
  readonly net = new MemoryNetwork();
  readonly endpoints = new Map<string, Endpoint>();
  readonly nodes = new Map<string, PhysaliaNode>();
  readonly logs = new Map<string, MemoryLog>();
  readonly fatal: unknown[] = [];

  constructor(readonly count: number, private readonly extra: Partial<NodeOptions> = {}) {
    for (let i = 1; i <= count; i++) this.endpoints.set(`n${i}`, { host: "127.0.0.1", port: 7100 + i });
    for (const id of this.endpoints.keys()) this.start(id);
  }

  /** Each node's data incarnation: kept while its log is, new when it starts without one (a wiped disk). */
  readonly incarnations = new Map<string, string>();
  private incarnationsMade = 0;

  /** The identity `id` runs as now. */
  identity(id: string): string {
    return `${id}~${this.incarnations.get(id) ?? ""}`;
  }

  start(id: string, log: NodeLog = new MemoryLog(), incarnation?: string, fromFile?: ReadonlyMap<string, readonly DurableRecord[]>): PhysaliaNode {
    const memory = log instanceof MemoryLog ? log : null;
    const previous = this.logs.get(id);
    if (incarnation !== undefined) this.incarnations.set(id, incarnation);
    else if (previous === undefined || !this.incarnations.has(id)) this.incarnations.set(id, (++this.incarnationsMade).toString(16).padStart(16, "0"));
    const recovered = new Map<string, DurableRecord[]>([...(fromFile ?? [])].map(([cell, records]) => [cell, [...records]]));
    for (const { cell, record } of previous?.synced ?? []) {
      if (!recovered.has(cell)) recovered.set(cell, []);
      recovered.get(cell)?.push(record);
    }
    if (memory !== null && previous !== undefined) memory.synced.push(...previous.synced);
    const endpoint = this.endpoints.get(id) as Endpoint;
    const peers = new Map([...this.endpoints].filter(([other]) => other !== id));
    const node = new PhysaliaNode({
      id: this.identity(id), peers, keys: keys.node, log, transport: this.net.open(endpoint.host, endpoint.port), recovered,
      heartbeatMs: 20, livenessTimeoutMs: 100, onFatal: (error) => this.fatal.push(error), ...this.extra,
    });
    if (memory !== null) this.logs.set(id, memory);
    this.nodes.set(id, node);
    node.start();
    return node;
  }

  async kill(id: string): Promise<void> {
    await this.nodes.get(id)?.stop();
    this.nodes.delete(id);
  }

  client(id = "client-1", deadlineMs = 5_000): PhysaliaClient {
    return new PhysaliaClient({ id, nodes: this.endpoints, keys: keys.control, transport: this.net.open(), deadlineMs });
  }

  async stop(): Promise<void> {
    for (const node of this.nodes.values()) await node.stop();
  }
}

let colony: Colony | null = null;
afterEach(async () => {
  await colony?.stop();
  colony = null;
});

describe("the node", () => {
  test("hosts a cell created by a client and commits transactions through it", async () => {
    colony = new Colony(7);
    const client = colony.client();
    const created = await client.create("vol-1");
    expect(created.status).toBe("created");
    expect(created.members.length).toBe(7);
    expect(created.members).toContain(colony.identity("n1"));
    // Creating it again finds it.
    expect(await client.create("vol-1")).toMatchObject({ status: "exists", incarnation: created.incarnation });
    expect(await client.transact("vol-1", put("primary", utf8("server-1")))).toMatchObject({ status: "committed" });
    expect(await client.transact("vol-1", get("primary"))).toMatchObject({ status: "committed", reads: [utf8("server-1")] });
    const leaders = [...colony.nodes.values()].filter((n) => n.replica("vol-1")?.role === "leader");
    expect(leaders.length).toBe(1);
    // Every reply was preceded by a sync of its records.
    const syncs = [...colony.logs.values()].reduce((sum, log) => sum + log.syncs, 0);
    expect(syncs).toBeGreaterThan(0);
  });

  test("keeps serving after three of seven nodes are killed, and the restarted ones catch up", async () => {
    colony = new Colony(7);
    const client = colony.client();
    const members = (await client.create("vol-2")).members.map(nodePart);
    await client.transact("vol-2", put("k", 1n));
    const victims = members.slice(0, 3);
    for (const id of victims) await colony.kill(id);
    for (let i = 2; i <= 6; i++) expect(await client.transact("vol-2", put("k", BigInt(i)))).toMatchObject({ status: "committed" });
    for (const id of victims) colony.start(id, new MemoryLog());
    expect(await client.transact("vol-2", get("k"))).toMatchObject({ reads: [6n] });
    await Bun.sleep(400);
    for (const id of members) expect(colony.nodes.get(id)?.replica("vol-2")?.applied).toBe(colony.nodes.get(members[6] as string)?.replica("vol-2")?.applied as number);
  });

  test("drops and counts frames that fail to authenticate or parse, and keeps serving", async () => {
    colony = new Colony(3);
    const client = colony.client();
    await client.create("vol-3");
    const target = colony.endpoints.get("n1") as Endpoint;
    colony.net.inject(new Uint8Array([1, 2, 3]), target);
    const forged = encodeMessages(new KeyRing({ id: 10, secret: testSecret(10, 9) }), { sender: "n2", receiver: "n1", stamp, messages: [] });
    colony.net.inject(forged, target);
    const unknownKey = encodeMessages(new KeyRing({ id: 77, secret: testSecret(10) }), { sender: "n2", receiver: "n1", stamp, messages: [] });
    colony.net.inject(unknownKey, target);
    const metrics = colony.nodes.get("n1")?.metricsText() ?? "";
    expect(metrics).toContain('physalia_frames_dropped_total{reason="tooShort",node="n1",color="blue"} 1');
    expect(metrics).toContain('physalia_frames_dropped_total{reason="badMac",node="n1",color="blue"} 1');
    expect(metrics).toContain('physalia_frames_dropped_total{reason="unknownKey",node="n1",color="blue"} 1');
    expect(await client.transact("vol-3", put("k", true))).toMatchObject({ status: "committed" });
  });

  test("answers every request of a burst it cannot step overloaded, before decoding it, and keeps committing", async () => {
    // A budget of 1 ms at the starting estimate of 0.05 ms a frame admits 20 frames.
    colony = new Colony(3, { admission: { budgetMs: 1 } });
    const client = colony.client();
    await client.create("vol-burst");
    expect(await client.transact("vol-burst", put("k", 1n))).toMatchObject({ status: "committed" });
    const leader = [...colony.nodes.entries()].find(([, n]) => n.replica("vol-burst")?.role === "leader");
    expect(leader).toBeDefined();
    const [leaderId, leaderNode] = leader as [string, PhysaliaNode];
    const flooder = colony.net.open();
    const answers = new Map<number, string[]>();
    flooder.onReceive((bytes) => {
      const decoded = decodeMessages(bytes, keys.control, { receiver: "flooder" });
      if (!decoded.ok) return;
      for (const { message } of decoded.messages) {
        if (message.kind !== "reply") continue;
        answers.set(message.id, [...(answers.get(message.id) ?? []), message.outcome.kind]);
      }
    });
    const burst = 2_000;
    const ring = keys.rings.control;
    for (let id = 1; id <= burst; id++) {
      const request = { kind: "request" as const, client: "flooder", id, session: 0, seq: 0, acked: 0, op: { kind: "tx" as const, tx: get("k") }, consistency: "eventual" as const, minApplied: 0, force: false };
      const frame = encodeMessages(ring, { sender: "flooder", receiver: leaderNode.id, stamp: { epoch: 5, counter: id }, messages: [{ cell: "vol-burst", message: request }] });
      colony.net.inject(frame, colony.endpoints.get(leaderId) as Endpoint, flooder.local);
    }
    // A client of the same cell is served meanwhile, and every request of the burst gets one answer.
    expect(await client.transact("vol-burst", put("k", 2n))).toMatchObject({ status: "committed" });
    for (let i = 0; i < 100 && answers.size < burst; i++) await Bun.sleep(10);
    expect(answers.size).toBe(burst);
    const kinds = new Map<string, number>();
    for (const list of answers.values()) {
      expect(list.length).toBe(1);
      kinds.set(list[0] as string, (kinds.get(list[0] as string) ?? 0) + 1);
    }
    expect([...kinds.keys()].sort()).toEqual(["overloaded", "read"]);
    expect(kinds.get("read")).toBe(20);
    const metrics = leaderNode.metricsText();
    expect(metrics).toContain(`physalia_client_frames_refused_total{reason="overShare",node="${leaderId}",color="blue"} ${burst - 20}`);
    // Refused frames were never decoded: the node counted only the admitted ones as received.
    const received = Number(/physalia_frames_received_total\{[^}]*\} (\d+)/.exec(metrics)?.[1]);
    expect(received).toBeLessThan(burst);
  });

  test("many clients of one flooded cell share one place in the queue: a quiet cell's client is still admitted", async () => {
    // A budget of 1 ms at the starting estimate of 0.05 ms a frame: 20 frames wait at most,
    // 40 when the queue holds several shares.
    const c = new Colony(3, { admission: { budgetMs: 1 } });
    colony = c;
    const client = c.client();
    // Both cells of one replica on n1, so that n1 leads both.
    await client.create("vol-hot", { nodes: ["n1"] });
    await client.create("vol-quiet", { nodes: ["n1"] });
    expect(await client.transact("vol-hot", put("k", 1n))).toMatchObject({ status: "committed" });
    expect(await client.transact("vol-quiet", put("k", 1n))).toMatchObject({ status: "committed" });
    const leaderId = "n1";
    const leaderNode = c.nodes.get(leaderId) as PhysaliaNode;
    const ring = keys.rings.control;
    const answers = new Map<string, string[]>();
    const open = (id: string) => {
      const transport = c.net.open();
      transport.onReceive((bytes) => {
        const decoded = decodeMessages(bytes, keys.control, { receiver: id });
        if (!decoded.ok) return;
        for (const { message } of decoded.messages) if (message.kind === "reply") answers.set(`${id}/${message.id}`, [...(answers.get(`${id}/${message.id}`) ?? []), message.outcome.kind]);
      });
      return transport;
    };
    const send = (id: string, transport: { local: Endpoint }, cell: string, n: number) => {
      const request = { kind: "request" as const, client: id, id: n, session: 0, seq: 0, acked: 0, op: { kind: "tx" as const, tx: get("k") }, consistency: "eventual" as const, minApplied: 0, force: false };
      const frame = encodeMessages(ring, { sender: id, receiver: leaderNode.id, stamp: { epoch: 5, counter: n }, messages: [{ cell, message: request }] });
      c.net.inject(frame, c.endpoints.get(leaderId) as Endpoint, transport.local);
    };
    const hot = Array.from({ length: 40 }, (_, i) => ({ id: `hot-${i}`, transport: open(`hot-${i}`) }));
    const quiet = { id: "quiet", transport: open("quiet") };
    // Each client is served once first, so the node knows the cell it keeps to.
    for (const c of [...hot, quiet]) {
      send(c.id, c.transport, c === quiet ? "vol-quiet" : "vol-hot", 1);
      for (let i = 0; i < 100 && !answers.has(`${c.id}/1`); i++) await Bun.sleep(5);
      expect(answers.get(`${c.id}/1`)).toEqual(["read"]);
    }
    // The flood: ten frames from each of the 40 clients of vol-hot at once, then one from the quiet cell's client.
    for (const c of hot) for (let n = 2; n <= 11; n++) send(c.id, c.transport, "vol-hot", n);
    send(quiet.id, quiet.transport, "vol-quiet", 2);
    for (let i = 0; i < 200 && answers.size < 41 + 401; i++) await Bun.sleep(10);
    expect(answers.size).toBe(41 + 401);
    // Refused by cell, not by sender: the quiet client is admitted and served; vol-hot had one share, 20 frames.
    expect(answers.get("quiet/2")).toEqual(["read"]);
    const hotKinds = new Map<string, number>();
    for (const c of hot) for (let n = 2; n <= 11; n++) {
      const list = answers.get(`${c.id}/${n}`) as string[];
      expect(list.length).toBe(1);
      hotKinds.set(list[0] as string, (hotKinds.get(list[0] as string) ?? 0) + 1);
    }
    expect(hotKinds.get("read")).toBe(20);
    expect(hotKinds.get("overloaded")).toBe(380);
  });

  test("replaces a node that lost its disk: it rejoins empty and is taught by chunked snapshot", async () => {
    colony = new Colony(3);
    const client = colony.client();
    await client.create("vol-4");
    const big = new Uint8Array(4000).fill(7);
    for (let i = 0; i < 90; i++) await client.transact("vol-4", put(`blob-${i}`, big));
    // n3 loses its disk and comes back with a new identity: a stranger to vol-4, so it votes
    // nowhere until the cell adds it, and its former identity is then removed.
    const former = colony.identity("n3");
    await colony.kill("n3");
    colony.logs.delete("n3");
    colony.start("n3", new MemoryLog());
    expect(colony.identity("n3")).not.toBe(former);
    const joined = await client.join("vol-4", "n3");
    expect(joined).toBe(colony.identity("n3"));
    const added = await client.configure("vol-4", { kind: "addMember", node: joined });
    expect(added.status === "configured" && [...added.members].sort()).toEqual([colony.identity("n1"), colony.identity("n2"), former, joined].sort());
    const removed = await client.configure("vol-4", { kind: "removeMember", node: former });
    expect(removed.status === "configured" && [...removed.members].sort()).toEqual([colony.identity("n1"), colony.identity("n2"), joined].sort());
    for (let i = 0; i < 5; i++) await client.transact("vol-4", put("after", BigInt(i)));
    await Bun.sleep(500);
    const n1 = colony.nodes.get("n1")?.replica("vol-4");
    const n3 = colony.nodes.get("n3")?.replica("vol-4");
    expect(n3?.applied).toBe(n1?.applied as number);
    expect(n3?.cellState?.kv.get("blob-89")).toEqual(big);
    // The snapshot (about 360 KB) could only have arrived in chunks.
    expect(colony.logs.get("n3")?.synced.some((r) => r.record.kind === "snapshot" && r.record.state.length > 300_000)).toBe(true);
  }, 30_000);

  test("a new client cut off from every node while it looks a cell up finds it once the network is back (regression: one round of lookups, then none)", async () => {
    colony = new Colony(3);
    expect(await colony.client().create("vol-1")).toMatchObject({ status: "created" });
    // A fresh client (as every ctl is) with an empty cache, cut off for longer than it takes
    // to ask every node once: each lookup times out.
    const transport = colony.net.open();
    const cutOff = `${transport.local.host}:${transport.local.port}`;
    colony.net.down.add(cutOff);
    const client = new PhysaliaClient({ id: "client-cut", nodes: colony.endpoints, keys: keys.control, transport, deadlineMs: 10_000 });
    const write = client.transact("vol-1", put("k", utf8("v")));
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    colony.net.down.delete(cutOff);
    expect(await write).toMatchObject({ status: "committed" });
    client.close();
  }, 20_000);

  test("answers an operation on a cell nobody hosts with a clear error", async () => {
    colony = new Colony(3);
    const client = colony.client("client-2", 1_000);
    await expect(client.transact("no-such-cell", get("k"))).rejects.toBeInstanceOf(NoSuchCellError);
  });

  test("keeps cells recovered as a promise and a snapshot dormant until their first message, and serves them then", async () => {
    // Discovery rounds every 20 ms, so that its audits run during the test.
    colony = new Colony(3, { discoveryRoundMs: 20 });
    const client = colony.client();
    const cells = ["idle-a", "idle-b", "idle-c"];
    for (const cell of cells) {
      await client.create(cell);
      await client.transact(cell, put("k", utf8(`${cell}-1`)));
    }
    await Bun.sleep(100);
    // Each node comes back from its replicas' compacted records, as after a compaction.
    const compacted = new Map<string, CellRecord[]>();
    for (const [id, node] of colony.nodes) compacted.set(id, cells.flatMap((cell) => (node.replica(cell)?.compactedRecords() ?? []).map((record) => ({ cell, record }))));
    for (const id of [...colony.nodes.keys()]) await colony.kill(id);
    for (const [id, records] of compacted) {
      const log = new MemoryLog();
      log.synced.push(...records);
      colony.logs.set(id, log);
      colony.start(id);
    }
    // Discovery's audit reads every hosted cell each round (a thousand a round): it must not wake them.
    await Bun.sleep(150);
    for (const node of colony.nodes.values()) {
      expect(node.discovery.status()).toMatchObject({ hosted: 3 });
      expect(node.cellCount).toBe(3);
      expect(node.dormantCount).toBe(3);
      expect(node.metricsText()).toContain(`physalia_cells_dormant{node="${nodePart(node.id)}",color="blue"} 3`);
    }
    // A hello (the control plane's look at a member) and the status page read a dormant cell without waking it.
    const first = [...colony.nodes.values()][0] as PhysaliaNode;
    expect(await client.hello("idle-a", nodePart(first.id))).toMatchObject({ identity: first.id, hosted: { members: expect.any(Array) } });
    expect(first.cellStatus("idle-a")).toMatchObject({ cell: "idle-a", role: "follower" });
    expect(first.dormantCount).toBe(3);
    // The first message to a cell builds its replica; the others stay as they were.
    const other = colony.client("client-2");
    expect(await other.transact("idle-b", get("k"))).toMatchObject({ status: "committed", reads: [utf8("idle-b-1")] });
    expect(await other.transact("idle-b", put("k", utf8("idle-b-2")))).toMatchObject({ status: "committed" });
    for (const node of colony.nodes.values()) {
      expect(node.dormantCount).toBe(2);
      expect(node.cellNames(10)).toEqual(cells);
    }
    expect(await other.transact("idle-a", get("k"))).toMatchObject({ reads: [utf8("idle-a-1")] });
    expect(await other.transact("idle-c", get("k"))).toMatchObject({ reads: [utf8("idle-c-1")] });
  });

  test("stops for good when a log sync fails, and never retries it", async () => {
    colony = new Colony(3);
    let syncs = 0;
    const failing: NodeLog = { append() {}, async sync() { syncs++; throw new Error("EIO"); }, close() {} };
    await colony.kill("n1");
    colony.start("n1", failing);
    const client = colony.client("client-3", 2_000);
    await client.create("vol-5").catch(() => null);
    await Bun.sleep(100);
    expect(colony.fatal.length).toBe(1);
    expect(syncs).toBe(1);
  });
});

/**
 * Runs `body` with n1 stopped, its memory log dropped and a fresh directory for a file log,
 * in a colony of three; the directory is removed after.
 */
async function withFileLog(prefix: string, body: (dir: string, running: Colony) => Promise<void>): Promise<void> {
  const running = (colony = new Colony(3));
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    await running.kill("n1");
    running.logs.delete("n1");
    await body(dir, running);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Opens a log that must be intact. */
async function openIntact(dir: string, options: Parameters<typeof openLog>[1] = {}) {
  const opened = await openLog(dir, options);
  if (opened.log === null) throw new Error(`the log is damaged: ${JSON.stringify(opened.damage)}`);
  return { ...opened, log: opened.log };
}

/** What a replica holds, to set beside what recovery rebuilds. */
function heldBy(replica: Replica | undefined): { applied: number | undefined; digest: string } {
  return { applied: replica?.applied, digest: toHex(replica?.cellState?.digest() ?? new Uint8Array()) };
}

/**
 * Reopens the log: it must be undamaged and name exactly `cells`, and each cell's replica
 * rebuilt from it must hold what `held` says. Returns the rebuilt replicas.
 */
async function expectRecovered(dir: string, self: string, cells: readonly string[], held: readonly ReturnType<typeof heldBy>[]): Promise<Replica[]> {
  const reopened = await openLog(dir);
  expect(reopened.damage).toEqual([]);
  expect([...reopened.records.keys()].sort()).toEqual([...cells]);
  const replicas = cells.map((cell, c) => {
    const replica = Replica.recover({ cell, self, env: { isAlive: () => true, jitter: () => 0.5 } }, reopened.records.get(cell) ?? []);
    expect(replica.applied).toBe(held[c]?.applied as number);
    expect(toHex(replica.cellState?.digest() ?? new Uint8Array())).toBe(held[c]?.digest as string);
    return replica;
  });
  await reopened.log?.close();
  return replicas;
}

describe("the node on its file log", () => {
  test("compacts its log while serving and recovers the same cells from the compacted log", () => withFileLog("physalia-node-log-", async (dir, colony) => {
    const first = await openIntact(dir);
    const log = first.log;
    const node = colony.start("n1", log, first.incarnation);
    const client = colony.client();
    for (let c = 0; c < 3; c++) await client.create(`vol-${c}`);
    for (let i = 0; i < 40; i++) await client.transact(`vol-${i % 3}`, { reads: [], conditions: [], writes: [{ key: `k${i}`, op: "increment", by: 1n }] });
    const cells = [0, 1, 2].map((c) => `vol-${c}`);
    const before = cells.map((cell) => node.replica(cell));
    await node.compact((entries) => log.compact(entries));
    // Writes go on after the compaction, and must survive too.
    for (let i = 0; i < 6; i++) await client.transact(`vol-${i % 3}`, { reads: [], conditions: [], writes: [{ key: "after", op: "increment", by: 1n }] });
    await Bun.sleep(100);
    const held = before.map(heldBy);
    await colony.kill("n1");
    await expectRecovered(dir, "n1", cells, held);
  }), 30_000);

  test("wakes dormant cells while a compaction copies them, and loses none of them", () => withFileLog("physalia-node-dormant-", async (dir, colony) => {
    const first = await openIntact(dir);
    let node = colony.start("n1", first.log, first.incarnation);
    const client = colony.client();
    const cells = Array.from({ length: 300 }, (_, c) => `dormant-${String(c).padStart(3, "0")}`);
    await Promise.all(cells.map((cell) => client.create(cell)));
    await Promise.all(cells.map((cell) => client.transact(cell, put("k", utf8(cell)))));
    await node.compact((entries) => first.log.compact(entries));
    await Bun.sleep(100);
    await colony.kill("n1");
    // Back from the compacted log: a cell that is a promise and a snapshot there is dormant
    // (a few may hold a vote or a commit that came after their snapshot was taken).
    const second = await openIntact(dir, { compactionChunkBytes: 64 });
    const log = second.log;
    const idle = [...second.records.values()].filter((records) => records.map((r) => r.kind).join() === "promise,snapshot").length;
    expect(idle).toBeGreaterThan(cells.length / 2);
    node = colony.start("n1", log, second.incarnation, second.records);
    expect(node.dormantCount).toBe(idle);
    const writesDuring = await writeDuring(node.compact((entries) => log.compact(entries)), 3_000, (i) => client.transact(cells[(i * 37) % cells.length] as string, { reads: [], conditions: [], writes: [{ key: "n", op: "increment", by: 1n }] }));
    expect(writesDuring).toBeGreaterThan(3);
    const woken = cells.length - node.dormantCount;
    expect(woken).toBeGreaterThan(0);
    expect(node.dormantCount).toBeGreaterThan(0);
    await Bun.sleep(100);
    const held = cells.map((cell) => heldBy(node.replica(cell)));
    await colony.kill("n1");
    await expectRecovered(dir, node.id, cells, held);
  }), 60_000);

  test("takes each replica's records as the copy reaches it, with writes to every cell going on, and recovers what it served", () => withFileLog("physalia-node-lazy-", async (dir, colony) => {
    // A tiny chunk: the copy takes a record or two a turn, so it interleaves with the writes.
    const first = await openIntact(dir, { compactionChunkBytes: 64 });
    const log = first.log;
    const node = colony.start("n1", log, first.incarnation);
    const client = colony.client();
    // Enough cells that the copy, a record or two a turn, lasts many writes.
    const cells = Array.from({ length: 300 }, (_, c) => `lazy-${String(c).padStart(3, "0")}`);
    await Promise.all(cells.map((cell) => client.create(cell)));
    const written = (i: number) => cells[(i * 37) % cells.length] as string;
    for (let i = 0; i < 24; i++) await client.transact(written(i), { reads: [], conditions: [], writes: [{ key: "k", op: "increment", by: 1n }] });
    const writesDuring = await writeDuring(node.compact((entries) => log.compact(entries)), 2_400, (i) => client.transact(written(i), { reads: [], conditions: [], writes: [{ key: "k", op: "increment", by: 1n }, { key: `w${i}`, op: "put", value: utf8("x".repeat(i % 50)) }] }));
    expect(writesDuring).toBeGreaterThan(3);
    for (let i = 0; i < 6; i++) await client.transact(written(i), { reads: [], conditions: [], writes: [{ key: "after", op: "increment", by: 1n }] });
    await Bun.sleep(100);
    const live = cells.map((cell) => node.replica(cell));
    const held = live.map(heldBy);
    const promised = live.map((r) => r?.compactedRecords().find((x) => x.kind === "promise"));
    await colony.kill("n1");
    const recovered = await expectRecovered(dir, "n1", cells, held);
    for (const [c, replica] of recovered.entries()) expect(replica.compactedRecords().find((x) => x.kind === "promise")).toEqual(promised[c]);
  }), 60_000);
});

/**
 * Six writers at once, each calling `write(i)` for its share of 0..writesMax while `compaction`
 * runs; answers how many writes finished before it did.
 */
async function writeDuring(compaction: Promise<void>, writesMax: number, write: (i: number) => Promise<unknown>): Promise<number> {
  let compacting = true;
  const done = compaction.finally(() => {
    compacting = false;
  });
  let during = 0;
  await Promise.all(Array.from({ length: 6 }, async (_, writer) => {
    for (let i = writer; compacting && i < writesMax; i += 6) {
      await write(i);
      if (compacting) during++;
    }
  }));
  await done;
  return during;
}
