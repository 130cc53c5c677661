// The control plane's peer-table request (discovery kinds `peersRequest` / `peersAnswer`):
// its wire form and decoder, the role check that admits it only under the control key, and
// real nodes on an in-memory network that answer the control key and ignore a client key.

import { afterEach, describe, expect, test } from "bun:test";
import { MissingKeyError, PhysaliaClient } from "../../src/client/client.ts";
import { decodeMessage, encodeMessage } from "../../src/discovery/messages.ts";
import { MemoryLog } from "../../src/node/log.ts";
import { PhysaliaNode } from "../../src/node/node.ts";
import type { Endpoint, Transport } from "../../src/transport/transport.ts";
import { Stamper } from "../../src/wire/freshness.ts";
import type { KeyRing } from "../../src/wire/keyring.ts";
import { encodeMessages } from "../../src/wire/message.ts";
import { authorizeAtClient, authorizeAtNode } from "../../src/wire/roles.ts";
import { testKeys } from "../support/keys.ts";
import { MemoryNetwork } from "../support/memnet.ts";

const blue = testKeys("blue", 10);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const record = { identity: "n2~00000000000000a1", address: "127.0.0.1:7201", generation: 1_700_000_000_000, heartbeat: 2, status: "suspected" as const };

describe("the peers messages", () => {
  test("round-trip through their wire form", () => {
    const request = { kind: "peersRequest" as const, id: 7, start: 3 };
    expect(decodeMessage(encodeMessage(request))).toEqual({ ok: true, message: request });
    const answer = { kind: "peersAnswer" as const, id: 7, peers: [{ record, heardAgoMs: 1_250 }, { record: { ...record, identity: "n3", generation: 0, status: "alive" as const }, heardAgoMs: null }], next: 5 };
    expect(decodeMessage(encodeMessage(answer))).toEqual({ ok: true, message: answer });
    expect(decodeMessage(encodeMessage({ ...answer, next: null }))).toEqual({ ok: true, message: { ...answer, next: null } });
  });

  test("malformed ones are typed rejections, never throws", () => {
    const good = encodeMessage({ kind: "peersAnswer", id: 1, peers: [{ record, heardAgoMs: 5 }], next: null }) as Record<string, unknown>;
    const bad: unknown[] = [
      { k: "q", i: 1 },
      { k: "q", i: -1, s: 0 },
      { ...good, r: [["n2~00000000000000a1", "127.0.0.1:7201", 1, 0, "a"]] },
      { ...good, r: [["n2~00000000000000a1", "127.0.0.1:7201", 1, 0, "x", 5]] },
      { ...good, r: [["n2~00000000000000a1", "127.0.0.1:7201", 1, 0, "a", -5]] },
      { ...good, r: [["n2~00000000000000a1", "127.0.0.1:7201", 1, 0, "a", "soon"]] },
      { ...good, x: "next" },
      { ...good, r: Array.from({ length: 4_097 }, () => (good.r as unknown[])[0]) },
    ];
    for (const value of bad) expect(decodeMessage(value).ok).toBe(false);
  });
});

describe("the role check", () => {
  const facts = { color: "blue", colorOf: (node: string) => (["n1", "n2", "n3"].includes(node) ? "blue" : undefined) };
  test("admits a peers request at a node only under the control key", () => {
    const frame = (role: "client" | "control" | "node", sender: string) => ({ role, sender, messages: [], discovery: [{ kind: "peersRequest" as const }] });
    expect(authorizeAtNode(frame("control", "ctl"), facts)).toEqual({ ok: true });
    expect(authorizeAtNode(frame("client", "app"), facts)).toMatchObject({ ok: false, reason: "wrongRole" });
    expect(authorizeAtNode(frame("node", "n2~00000000000000a1"), facts)).toMatchObject({ ok: false, reason: "wrongRole" });
    expect(authorizeAtNode({ ...frame("control", "ctl"), discovery: [{ kind: "peersAnswer" as const }] }, facts)).toMatchObject({ ok: false, reason: "wrongRole" });
  });

  test("admits a peers answer at a client only under the control key", () => {
    const clientFacts = { isNode: (node: string) => node === "n1" };
    const frame = (role: "client" | "control") => ({ role, sender: "n1~00000000000000a1", messages: [], discovery: [{ kind: "peersAnswer" as const }] });
    expect(authorizeAtClient(frame("control"), clientFacts)).toEqual({ ok: true });
    expect(authorizeAtClient(frame("client"), clientFacts)).toMatchObject({ ok: false, reason: "wrongRole" });
    expect(authorizeAtClient({ ...frame("control"), discovery: [{ kind: "peersRequest" as const }] }, clientFacts)).toMatchObject({ ok: false, reason: "wrongRole" });
  });
});

describe("nodes asked for their peer table", () => {
  const ids = ["n1", "n2", "n3"];
  const net = new MemoryNetwork();
  const endpoints = new Map<string, Endpoint>(ids.map((id, i) => [id, { host: "127.0.0.1", port: 7250 + i }]));
  const nodes: PhysaliaNode[] = [];
  const clients: PhysaliaClient[] = [];
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const node of nodes.splice(0)) await node.stop();
  });
  const start = () => {
    for (const [id, endpoint] of endpoints) {
      const node = new PhysaliaNode({
        id: `${id}~00000000000000a${id.slice(1)}`, peers: new Map([...endpoints].filter(([other]) => other !== id)), keys: blue.node, log: new MemoryLog(),
        transport: net.open(endpoint.host, endpoint.port), heartbeatMs: 20, livenessTimeoutMs: 200, discoveryRoundMs: 100, discoverySuspectTimeoutMs: 600,
      });
      node.start();
      nodes.push(node);
    }
  };

  test("answer the control key with every node of the color, itself first, and when they heard from each", async () => {
    start();
    await sleep(600);
    const control = new PhysaliaClient({ id: "ctl", nodes: endpoints, keys: blue.control, transport: net.open(), deadlineMs: 2_000 });
    clients.push(control);
    const answer = await control.peerTable("n1", { deadlineMs: 1_000 });
    expect(answer).not.toBeNull();
    const peers = answer?.peers ?? [];
    expect(peers.map((p) => p.record.identity)).toEqual(["n1~00000000000000a1", "n2~00000000000000a2", "n3~00000000000000a3"]);
    expect(peers.every((p) => p.record.status === "alive")).toBe(true);
    expect(peers[0]?.heardAgoMs).toBe(0);
    // Six rounds of gossip among three nodes: n1 has heard from both others.
    for (const p of peers.slice(1)) expect(p.heardAgoMs).not.toBeNull();
    expect(answer?.next).toBeNull();
    // A later page is the table from there on.
    expect((await control.peerTable("n1", { start: 2, deadlineMs: 1_000 }))?.peers.map((p) => p.record.identity)).toEqual(["n3~00000000000000a3"]);
    expect(nodes[0]?.discovery.stats.peersAnswered).toBe(2);
  });

  test("refuse a client key: the client library will not ask, and a forged request is dropped unanswered", async () => {
    start();
    const app = new PhysaliaClient({ id: "app", nodes: endpoints, keys: blue.client, transport: net.open(), deadlineMs: 2_000 });
    clients.push(app);
    await expect(app.peerTable("n1")).rejects.toBeInstanceOf(MissingKeyError);
    const received: Uint8Array[] = [];
    const raw: Transport = net.open();
    raw.onReceive((bytes) => received.push(bytes));
    const wire = encodeMessage({ kind: "peersRequest", id: 9, start: 0 });
    const send = (ring: KeyRing, stamper: Stamper) => raw.send(encodeMessages(ring, { sender: "app", receiver: "n1", stamp: stamper.next(), messages: [], discovery: [wire] }), endpoints.get("n1") as Endpoint);
    send(blue.rings.client, new Stamper(5));
    await sleep(100);
    expect(received.length).toBe(0);
    expect(nodes[0]?.metrics.framesDropped.get("wrongRole")).toBe(1);
    expect(nodes[0]?.discovery.stats.peersAnswered).toBe(0);
    // The same request under the control key is answered: the silence above was the role check.
    send(blue.rings.control, new Stamper(6));
    await sleep(100);
    expect(received.length).toBe(1);
    raw.close();
  });
});
