// Every limit comes back as its typed answer, and a failure says what is wrong (issue 15,
// defects 1 and 2): a value over the limit, too many keys, a mistyped cell name and a wrong
// key file each end in their own answer, not in "no answer within 10000 ms".

import { afterEach, describe, expect, test } from "bun:test";
import { KeysRejectedError, NoSuchCellError, PhysaliaClient, UnreachableError } from "../../src/client/client.ts";
import type { ClientReply } from "../../src/core/messages.ts";
import type { Transaction } from "../../src/core/transaction.ts";
import { limits } from "../../src/limits.ts";
import { MemoryLog } from "../../src/node/log.ts";
import { PhysaliaNode } from "../../src/node/node.ts";
import { reasonOf } from "../../src/node/refusal.ts";
import type { Endpoint, Transport } from "../../src/transport/transport.ts";
import { Stamper } from "../../src/wire/freshness.ts";
import { decodeMessages } from "../../src/wire/message.ts";
import { KeySet } from "../../src/wire/keyring.ts";
import { encodeBody } from "../../src/wire/schema.ts";
import { encodeFrame } from "../../src/wire/frame.ts";
import { testKeys, testRing } from "../support/keys.ts";
import { MemoryNetwork } from "../support/memnet.ts";

const keys = testKeys();
const ids = ["n1", "n2", "n3"];

let nodes: PhysaliaNode[] = [];
afterEach(async () => {
  for (const node of nodes) await node.stop();
  nodes = [];
});

function colony(): { net: MemoryNetwork; endpoints: Map<string, Endpoint> } {
  const net = new MemoryNetwork();
  const endpoints = new Map<string, Endpoint>(ids.map((id, i) => [id, { host: "127.0.0.1", port: 7700 + i }]));
  nodes = ids.map((id) => new PhysaliaNode({
    id: `${id}~000000000000000${ids.indexOf(id) + 1}`, peers: new Map([...endpoints].filter(([other]) => other !== id)), keys: keys.node, log: new MemoryLog(),
    transport: net.open("127.0.0.1", endpoints.get(id)?.port), heartbeatMs: 20, livenessTimeoutMs: 200,
  }));
  for (const node of nodes) node.start();
  return { net, endpoints };
}

function client(net: MemoryNetwork, endpoints: Map<string, Endpoint>, options: { keys?: typeof keys.client; deadlineMs?: number } = {}): PhysaliaClient {
  return new PhysaliaClient({ id: "c1", nodes: endpoints, keys: options.keys ?? keys.control, transport: net.open(), deadlineMs: options.deadlineMs ?? 60_000, membersPerCell: 3 });
}

const rawStamps = new Stamper(1);

/** Sends raw messages to n1 as client "raw" and waits for the first reply. */
async function rawRequest(net: MemoryNetwork, endpoints: Map<string, Endpoint>, body: Uint8Array): Promise<ClientReply> {
  const transport: Transport = net.open();
  const reply = new Promise<ClientReply>((resolve) => {
    transport.onReceive((bytes) => {
      const decoded = decodeMessages(bytes, keys.client, { receiver: "raw" });
      const message = decoded.ok ? decoded.messages[0]?.message : undefined;
      if (message?.kind === "reply") resolve(message);
    });
  });
  const ring = keys.client.ring("client");
  if (ring === undefined) throw new Error("no client ring");
  transport.send(encodeFrame(ring, { sender: "raw", receiver: "n1", stamp: rawStamps.next(), body }), endpoints.get("n1") as Endpoint);
  try {
    return await reply;
  } finally {
    transport.close();
  }
}

/** A request body: encodeBody checks no bound, so it can carry what the decoder refuses. */
function requestBody(tx: Transaction): Uint8Array {
  return encodeBody([{ cell: "vol", message: { kind: "request", client: "raw", id: 7, session: 0, seq: 0, acked: 0, op: { kind: "tx", tx }, consistency: "consistent", minApplied: 0, force: false } }]);
}

describe("limits come back as typed answers", () => {
  test("the client answers a value over the limit, too many keys or a key too long itself, without sending", async () => {
    const { net, endpoints } = colony();
    const c = client(net, endpoints);
    const before = net.delivered;
    const big = await c.transact("vol", { reads: [], conditions: [], writes: [{ key: "k", op: "put", value: new Uint8Array(limits.valueBytesMax + 1) }] });
    expect(big).toMatchObject({ status: "rejected", reason: "valueTooLarge" });
    const many = await c.transact("vol", { reads: Array.from({ length: limits.keysPerTransactionMax + 1 }, (_, i) => `k${i}`), conditions: [], writes: [] });
    expect(many).toMatchObject({ status: "rejected", reason: "tooManyKeys" });
    const long = await c.transact("vol", { reads: ["k".repeat(limits.keyBytesMax + 1)], conditions: [], writes: [] });
    expect(long).toMatchObject({ status: "rejected", reason: "keyTooLarge" });
    expect(await c.lease("vol", "l".repeat(limits.leaseNameBytesMax + 1), "h", 1000)).toMatchObject({ status: "rejected", reason: "leaseInvalid" });
    expect(net.delivered).toBe(before);
    c.close();
  });

  test("a node answers an authentic request its decoder refuses with the cell's typed rejection", async () => {
    const { net, endpoints } = colony();
    const big = await rawRequest(net, endpoints, requestBody({ reads: [], conditions: [], writes: [{ key: "k", op: "put", value: new Uint8Array(limits.valueBytesMax + 1) }] }));
    expect(big).toMatchObject({ id: 7, outcome: { kind: "done", result: { status: "rejected", reason: "valueTooLarge" } } });
    const many = await rawRequest(net, endpoints, requestBody({ reads: Array.from({ length: limits.keysPerTransactionMax + 1 }, (_, i) => `k${i}`), conditions: [], writes: [] }));
    expect(many).toMatchObject({ outcome: { kind: "done", result: { status: "rejected", reason: "tooManyKeys" } } });
    const long = await rawRequest(net, endpoints, requestBody({ reads: ["k".repeat(2000)], conditions: [], writes: [] }));
    expect(long).toMatchObject({ outcome: { kind: "done", result: { status: "rejected", reason: "keyTooLarge" } } });
  });

  test("the decoder's words map to the reasons", () => {
    expect(reasonOf("m[0].op.t.w[0].value: value too large")).toBe("valueTooLarge");
    expect(reasonOf("m[0].op.t.r: more than 64 items")).toBe("tooManyKeys");
    expect(reasonOf("m[0].op.t.r[3]: text longer than 1024")).toBe("keyTooLarge");
    expect(reasonOf("m[0].op.t.w[0].key: text longer than 1024")).toBe("keyTooLarge");
    expect(reasonOf("m[0].q: expected a non-negative integer")).toBe("malformed");
  });
});

describe("failures say what is wrong", () => {
  test("a cell no node hosts is 'no such cell', long before the deadline", async () => {
    const { net, endpoints } = colony();
    const c = client(net, endpoints);
    await expect(c.transact("no-such-volume", { reads: ["k"], conditions: [], writes: [] })).rejects.toBeInstanceOf(NoSuchCellError);
    // A cell that exists is still found.
    expect((await c.create("vol")).status).toBe("created");
    expect(await c.transact("vol", { reads: ["k"], conditions: [], writes: [] })).toMatchObject({ status: "committed" });
    await c.end();
  });

  test("a key file the nodes do not hold is 'the nodes reject this key file', long before the deadline", async () => {
    const { net, endpoints } = colony();
    // A client ring with another id and secret: another colony's client.json.
    const stranger = new KeySet({ client: testRing(77) });
    const c = client(net, endpoints, { keys: stranger });
    const error = await c.transact("vol", { reads: ["k"], conditions: [], writes: [] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeysRejectedError);
    expect((error as Error).message).toContain("the nodes reject this key file");
    c.close();
  });

  test("nodes that are down are still 'cannot reach', not a key problem", async () => {
    const net = new MemoryNetwork();
    const endpoints = new Map<string, Endpoint>(ids.map((id, i) => [id, { host: "127.0.0.1", port: 7800 + i }]));
    const c = client(net, endpoints, { deadlineMs: 600 });
    await expect(c.transact("vol", { reads: ["k"], conditions: [], writes: [] })).rejects.toBeInstanceOf(UnreachableError);
    c.close();
  });
});
