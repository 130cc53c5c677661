// Least privilege, replay protection and authenticated chunks through real PhysaliaNodes on
// an in-memory network: what an attacker holding a client key (or a control key, or another
// color's node key) sends, and what the nodes do with it.

import { afterEach, describe, expect, test } from "bun:test";
import { MissingKeyError, PhysaliaClient } from "../../src/client/client.ts";
import { toHex } from "../../src/core/bytes.ts";
import type { CellMessage, Envelope, NodeMessage } from "../../src/core/messages.ts";
import { utf8 } from "../../src/core/value.ts";
import { MemoryLog } from "../../src/node/log.ts";
import { PhysaliaNode } from "../../src/node/node.ts";
import { splitFrame } from "../../src/transport/chunks.ts";
import type { Endpoint, Transport } from "../../src/transport/transport.ts";
import { encodeFrame } from "../../src/wire/frame.ts";
import { Stamper } from "../../src/wire/freshness.ts";
import { KeyRing, KeySet } from "../../src/wire/keyring.ts";
import { encodeMessages } from "../../src/wire/message.ts";
import { testKeys, testRing, testSecret } from "../support/keys.ts";
import { MemoryNetwork } from "../support/memnet.ts";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const blue = testKeys("blue", 10);
const ids = ["n1", "n2", "n3"];
const colors = new Map([...ids.map((id): [string, string] => [id, "blue"]), ["r1", "red"], ["r2", "red"]]);
const put = (key: string, value: string) => ({ reads: [], conditions: [], writes: [{ key, op: "put" as const, value: utf8(value) }] });

/** A transport that keeps a copy of every datagram it sends. */
function tapped(inner: Transport, sent: { bytes: Uint8Array; to: Endpoint }[]): Transport {
  return {
    local: inner.local,
    send: (bytes, to) => {
      sent.push({ bytes: bytes.slice(), to });
      inner.send(bytes, to);
    },
    onReceive: (handler) => inner.onReceive(handler),
    close: () => inner.close(),
  };
}

class Colony {
  readonly net = new MemoryNetwork();
  readonly endpoints = new Map<string, Endpoint>(ids.map((id, i) => [id, { host: "127.0.0.1", port: 7200 + i }]));
  readonly nodes = new Map<string, PhysaliaNode>();
  readonly logs = new Map<string, MemoryLog>();
  clock = 0;
  private readonly clients: PhysaliaClient[] = [];

  constructor(options: { replayGuard?: boolean; manualClock?: boolean } = {}) {
    for (const [id, endpoint] of this.endpoints) {
      const log = new MemoryLog();
      const node = new PhysaliaNode({
        id, peers: new Map([...this.endpoints].filter(([other]) => other !== id)), keys: blue.node, nodeColors: colors, log,
        transport: this.net.open(endpoint.host, endpoint.port), heartbeatMs: 20, livenessTimeoutMs: 100_000,
        ...(options.replayGuard === undefined ? {} : { replayGuard: options.replayGuard }),
        ...(options.manualClock === true ? { now: () => this.clock } : {}),
      });
      this.nodes.set(id, node);
      this.logs.set(id, log);
      node.start();
    }
  }

  client(id: string, keys: KeySet, sent?: { bytes: Uint8Array; to: Endpoint }[]): PhysaliaClient {
    const transport = sent === undefined ? this.net.open() : tapped(this.net.open(), sent);
    const client = new PhysaliaClient({ id, nodes: this.endpoints, keys, transport, deadlineMs: 5_000 });
    this.clients.push(client);
    return client;
  }

  node(id: string): PhysaliaNode {
    return this.nodes.get(id) as PhysaliaNode;
  }

  dropped(id: string, reason: string): number {
    return this.node(id).metrics.framesDropped.get(reason) ?? 0;
  }

  /** Everything an attack could change on every node: cells hosted, log, applied slot, promise, state. */
  snapshot(cell: string): string {
    return JSON.stringify(ids.map((id) => {
      const replica = this.node(id).replica(cell);
      return [id, this.node(id).cellCount, this.logs.get(id)?.synced.length, replica?.applied, replica?.promisedBallot, toHex(replica?.cellState?.digest() ?? new Uint8Array())];
    }));
  }

  /** Sends raw frames straight to a node, as an attacker on the network would. */
  inject(to: string, frames: readonly Uint8Array[]): void {
    for (const frame of frames) this.net.inject(frame, this.endpoints.get(to) as Endpoint);
  }

  async stop(): Promise<void> {
    for (const client of this.clients) client.close();
    for (const node of this.nodes.values()) await node.stop();
  }
}

let colony: Colony | null = null;
// Each describe stops its colony after every test (hooks live inside a describe, for Deno's shim too).
const stopColony = async () => {
  await colony?.stop();
  colony = null;
};

/** A cell with one value, written through the control key, and the colony quiet again. */
async function withCell(c: Colony): Promise<PhysaliaClient> {
  const admin = c.client("admin", blue.control);
  await admin.create("vol");
  await admin.transact("vol", put("k", "real"));
  await sleep(150);
  return admin;
}

/** Every peer message and every control operation an attacker could try, aimed at cell `vol`. */
function attacks(c: Colony, sender: string): Record<string, CellMessage | NodeMessage> {
  const replica = c.node("n1").replica("vol");
  const slot = (replica?.applied ?? 0) + 1;
  const ballot = { round: 1_000_000, node: "n2" };
  const forged = { kind: "batch" as const, commands: [{ session: 64, seq: 1, acked: 1, op: { kind: "tx" as const, tx: put("k", "forged") } }], stamp: { ballot, time: 0 } };
  return {
    prepare: { kind: "prepare", ballot, from: 1 },
    promise: { kind: "promise", ballot, from: 1, accepted: [{ slot, ballot, value: forged }], compactedThrough: 0 },
    accept: { kind: "accept", ballot, slot, value: forged, chosenThrough: slot - 1 },
    accepted: { kind: "accepted", ballot, slot },
    nack: { kind: "nack", ballot, promised: ballot },
    commit: { kind: "commit", ballot, through: slot },
    learn: { kind: "learn", from: 1 },
    teach: { kind: "teach", entries: [{ slot, value: forged }], chosenThrough: slot },
    create: { kind: "create", client: sender, id: 1, genesis: { members: ids, incarnation: "0123456789abcdef", alpha: 3, sessionTtlMs: 60_000, sessionsMax: 128 } },
    join: { kind: "join", client: sender, id: 2, incarnation: "0123456789abcdef" },
    addMember: { kind: "request", client: sender, id: 3, session: 64, seq: 3, acked: 3, op: { kind: "config", change: { kind: "addMember", node: "n9" } }, consistency: "consistent", minApplied: 0, force: true },
    removeMember: { kind: "request", client: sender, id: 4, session: 64, seq: 4, acked: 4, op: { kind: "config", change: { kind: "removeMember", node: "n2" } }, consistency: "consistent", minApplied: 0, force: true },
  };
}

const frame = (ring: KeyRing, sender: string, to: string, stamper: Stamper, message: CellMessage | NodeMessage, cell = "vol") =>
  encodeMessages(ring, { sender, receiver: to, stamp: stamper.next(), messages: [{ cell, message } satisfies Envelope] });

describe("least privilege at a node", () => {
  afterEach(stopColony);
  test("a client key cannot make any node accept a peer message or a control operation, whatever sender it claims", async () => {
    colony = new Colony();
    const admin = await withCell(colony);
    const before = colony.snapshot("vol");
    const stamper = new Stamper(5);
    let sent = 0;
    for (const sender of ["mallory", "n2", "n1", "r1", "n2~0123456789abcdef"]) {
      for (const message of Object.values(attacks(colony, sender))) {
        for (const to of ids) colony.inject(to, [frame(blue.rings.client, sender, to, stamper, message)]);
        // And under a cell nobody created, which a create would bring into being.
        colony.inject("n1", [frame(blue.rings.client, sender, "n1", stamper, message, "new-cell")]);
        sent++;
      }
    }
    await sleep(100);
    for (const id of ids) expect(colony.dropped(id, "wrongRole")).toBe(id === "n1" ? 2 * sent : sent);
    expect(colony.snapshot("vol")).toBe(before);
    for (const id of ids) expect(colony.node(id).replica("new-cell")).toBeUndefined();
    expect(await admin.transact("vol", { reads: ["k"], conditions: [], writes: [] })).toMatchObject({ status: "committed", reads: [utf8("real")] });
  });

  test("the attack from outside: an accept at round 1,000,000 and a commit, signed as n1 with the control key, changes nothing", async () => {
    colony = new Colony();
    const admin = await withCell(colony);
    const before = colony.snapshot("vol");
    const stamper = new Stamper(5);
    const { accept, commit } = attacks(colony, "n1");
    for (const to of ["n2", "n3"]) colony.inject(to, [frame(blue.rings.control, "n1", to, stamper, accept as CellMessage), frame(blue.rings.control, "n1", to, stamper, commit as CellMessage)]);
    await sleep(100);
    expect(colony.dropped("n2", "wrongRole") + colony.dropped("n3", "wrongRole")).toBe(4);
    expect(colony.snapshot("vol")).toBe(before);
    expect(await admin.transact("vol", { reads: ["k"], conditions: [], writes: [] })).toMatchObject({ reads: [utf8("real")] });
  });

  test("a control key may create cells and change membership, but still not speak as a node", async () => {
    colony = new Colony();
    await withCell(colony);
    const before = colony.snapshot("vol");
    const stamper = new Stamper(5);
    const peers = Object.entries(attacks(colony, "ops")).filter(([kind]) => !["create", "join", "addMember", "removeMember"].includes(kind));
    for (const [, message] of peers) colony.inject("n1", [frame(blue.rings.control, "ops", "n1", stamper, message)]);
    await sleep(100);
    expect(colony.dropped("n1", "wrongRole")).toBe(peers.length);
    expect(colony.snapshot("vol")).toBe(before);
  });

  test("a client holding only the client key reads and writes, and is refused control operations before it sends them", async () => {
    colony = new Colony();
    await withCell(colony);
    const client = colony.client("app", blue.client);
    expect(await client.transact("vol", put("k", "from-app"))).toMatchObject({ status: "committed" });
    expect(await client.transact("vol", { reads: ["k"], conditions: [], writes: [] }, { consistency: "eventual" })).toMatchObject({ status: "committed" });
    await expect(client.create("other")).rejects.toBeInstanceOf(MissingKeyError);
    await expect(client.configure("vol", { kind: "removeMember", node: "n3" })).rejects.toBeInstanceOf(MissingKeyError);
    await expect(client.join("vol", "n3")).rejects.toBeInstanceOf(MissingKeyError);
    expect(colony.node("n1").replica("other")).toBeUndefined();
  });

  test("a node of another color is dropped: unknownKey with its own ring, wrongColor if the ring were shared", async () => {
    colony = new Colony();
    await withCell(colony);
    const before = colony.snapshot("vol");
    const red = testKeys("red", 11);
    const stamper = new Stamper(5);
    const peerAttacks = Object.entries(attacks(colony, "r1")).filter(([kind]) => !["create", "join", "addMember", "removeMember"].includes(kind));
    for (const [, message] of peerAttacks) {
      colony.inject("n1", [frame(red.rings.node, "r1", "n1", stamper, message)]);
      // A misconfigured colony whose colors share one node ring: the sender's color still decides.
      colony.inject("n1", [frame(blue.rings.node, "r1", "n1", stamper, message)]);
      colony.inject("n1", [frame(blue.rings.node, "r2~00000000000000aa", "n1", stamper, message)]);
    }
    colony.inject("n1", [encodeMessages(blue.rings.node, { sender: "r1", receiver: "n1", stamp: stamper.next(), messages: [] })]);
    await sleep(100);
    expect(colony.dropped("n1", "unknownKey")).toBe(peerAttacks.length);
    expect(colony.dropped("n1", "wrongColor")).toBe(2 * peerAttacks.length + 1);
    expect(colony.snapshot("vol")).toBe(before);
    // Red's heartbeats do not make it a live peer.
    expect((colony.node("n1").status().peersAlive as string[]).includes("r1")).toBe(false);
  });
});

describe("replay protection at a node", () => {
  afterEach(stopColony);
  test("a captured client frame re-sent byte for byte is dropped and counted, not processed again", async () => {
    colony = new Colony();
    await withCell(colony);
    const sent: { bytes: Uint8Array; to: Endpoint }[] = [];
    const client = colony.client("app", blue.client, sent);
    await client.transact("vol", { reads: [], conditions: [], writes: [{ key: "n", op: "increment", by: 1n }] });
    await sleep(100);
    const received = () => ids.reduce((sum, id) => sum + colony!.node(id).metrics.clientFramesReceived, 0);
    const replayed = () => ids.reduce((sum, id) => sum + colony!.dropped(id, "replayed"), 0);
    const receivedBefore = received();
    for (const { bytes, to } of sent) colony.net.inject(bytes, to);
    expect(replayed()).toBe(sent.length);
    // Clients' frames are stepped a turn later (src/node/admission.ts): wait for it.
    await sleep(20);
    expect(received()).toBe(receivedBefore);
  });

  test("with the guard off, the same replay is processed again (and only the cell's sessions stop a double apply)", async () => {
    colony = new Colony({ replayGuard: false });
    const admin = await withCell(colony);
    const sent: { bytes: Uint8Array; to: Endpoint }[] = [];
    const client = colony.client("app", blue.client, sent);
    await client.transact("vol", { reads: [], conditions: [], writes: [{ key: "n", op: "increment", by: 1n }] });
    await sleep(100);
    const received = () => ids.reduce((sum, id) => sum + colony!.node(id).metrics.clientFramesReceived, 0);
    const receivedBefore = received();
    for (const { bytes, to } of sent) colony.net.inject(bytes, to);
    // Clients' frames are stepped a turn later (src/node/admission.ts): wait for it.
    await sleep(20);
    expect(received() - receivedBefore).toBe(sent.length);
    await sleep(100);
    expect(await admin.transact("vol", { reads: ["n"], conditions: [], writes: [] })).toMatchObject({ reads: [1n] });
  });
});

describe("chunked frames at a node", () => {
  afterEach(stopColony);
  // A teach with a snapshot of a cell n1 does not host: once reassembled and decoded it is
  // counted as unknownCell, which shows it arrived whole.
  const bigTeach = (sender: string, stamper: Stamper, messageId: number) => {
    const snapshot = { slot: 5, state: new Uint8Array(300_000).map((_, i) => i & 0xff) };
    const whole = encodeMessages(blue.rings.node, {
      sender, receiver: "n1", stamp: stamper.next(), messages: [{ cell: "ghost", message: { kind: "teach", entries: [], chosenThrough: 5, snapshot } }], bytesMax: 4 * 1024 * 1024,
    });
    return splitFrame(whole, { ring: blue.rings.node, sender, receiver: "n1", stamper, messageId });
  };

  test("a flood of forged, wrong-role and over-quota chunks cannot delay a real chunked message", async () => {
    colony = new Colony();
    const n1 = colony.node("n1");
    const real = bigTeach("n2", new Stamper(50), 7);
    expect(real.length).toBeGreaterThan(3);
    const forger = new KeyRing({ id: 10, secret: testSecret(10, 3) });
    const flood: Uint8Array[] = [];
    const clientStamper = new Stamper(60);
    const forgerStamper = new Stamper(70);
    for (let i = 0; i < 3_000; i++) {
      // Forged as n2, under n2's key id, aimed at the real message's own id and indexes.
      const body = new Uint8Array(208);
      new DataView(body.buffer).setUint32(0, 7);
      new DataView(body.buffer).setUint16(4, i % real.length);
      new DataView(body.buffer).setUint16(6, real.length);
      flood.push(encodeFrame(forger, { kind: "chunk", sender: "n2", receiver: "n1", stamp: forgerStamper.next(), body }));
      if (i % 10 === 0) flood.push(encodeFrame(blue.rings.client, { kind: "chunk", sender: "mallory", receiver: "n1", stamp: clientStamper.next(), body }));
    }
    // A node of the colony with a bug: it starts 100 messages and finishes none.
    const n3Stamper = new Stamper(80);
    const partials = Array.from({ length: 100 }, (_, i) => bigTeach("n3", n3Stamper, 1000 + i)[0] as Uint8Array);
    const framesBefore = n1.metrics.framesReceived;
    // Interleave: the real chunks arrive spread through the flood.
    const all = [...flood, ...partials];
    const every = Math.floor(all.length / real.length);
    real.forEach((chunk, i) => all.splice((i + 1) * every, 0, chunk));
    colony.inject("n1", all);
    expect(colony.dropped("n1", "unknownCell")).toBe(1);
    expect(n1.metrics.framesReceived - framesBefore).toBe(1);
    expect(colony.dropped("n1", "badMac")).toBe(3_000);
    expect(colony.dropped("n1", "wrongRole")).toBe(300);
    expect(colony.dropped("n1", "chunkOverflow")).toBe(100 - 8);
    // Only the buggy node's own quota is held; nothing of the forgers.
    expect(n1.metricsText()).toContain('physalia_chunked_messages_pending{node="n1",color="blue"} 8');
  });

  test("a slow sender's partial message is expired by the heartbeat timer, without another chunk", async () => {
    colony = new Colony({ manualClock: true });
    const n1 = colony.node("n1");
    const chunks = bigTeach("n2", new Stamper(90), 3);
    colony.inject("n1", [chunks[0] as Uint8Array]);
    expect(n1.metricsText()).toContain('physalia_chunked_messages_pending{node="n1",color="blue"} 1');
    colony.clock += 2_500;
    await sleep(100); // A few heartbeats.
    expect(n1.metricsText()).toContain('physalia_chunked_messages_pending{node="n1",color="blue"} 0');
    // The rest arriving late cannot complete it.
    colony.inject("n1", chunks.slice(1));
    expect(colony.dropped("n1", "unknownCell")).toBe(0);
  });

  test("a replayed chunk is dropped like any replayed frame", async () => {
    colony = new Colony();
    const chunks = bigTeach("n2", new Stamper(95), 4);
    colony.inject("n1", chunks);
    colony.inject("n1", chunks);
    expect(colony.dropped("n1", "unknownCell")).toBe(1);
    expect(colony.dropped("n1", "replayed")).toBe(chunks.length);
  });
});

test("a ring's rotation does not split the colony: nodes on the old file and on the rotated file talk", async () => {
  const net = new MemoryNetwork();
  const endpoints = new Map<string, Endpoint>(ids.map((id, i) => [id, { host: "127.0.0.1", port: 7300 + i }]));
  const rings = { client: testRing(1), control: testRing(2) };
  const old = new KeySet({ node: testRing(10), ...rings }, "blue");
  const rotated = new KeySet({ node: testRing(12, 10), ...rings }, "blue");
  const nodes = ids.map((id, i) => new PhysaliaNode({
    id, peers: new Map([...endpoints].filter(([other]) => other !== id)), keys: i === 0 ? rotated : old, log: new MemoryLog(),
    transport: net.open(endpoints.get(id)?.host, endpoints.get(id)?.port), heartbeatMs: 20, livenessTimeoutMs: 200,
  }));
  for (const node of nodes) node.start();
  const client = new PhysaliaClient({ id: "admin", nodes: endpoints, keys: new KeySet({ control: rings.control }), transport: net.open(), deadlineMs: 5_000 });
  try {
    await client.create("vol");
    for (let i = 0; i < 5; i++) expect(await client.transact("vol", put("k", `v${i}`))).toMatchObject({ status: "committed" });
    await sleep(100);
    for (const node of nodes) expect((node.status().peersAlive as string[]).length).toBe(2);
  } finally {
    client.close();
    for (const node of nodes) await node.stop();
  }
});
