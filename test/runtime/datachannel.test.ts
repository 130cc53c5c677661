// The data-channel transport in one process, over loopback, with real libdatachannel peers.

import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runtime } from "../../src/runtime/mod.ts";
import { type DatachannelTransport, openDatachannel } from "../../src/transport/datachannel.ts";
import { openLinks } from "../../src/transport/mixed.ts";
import { signSignal, newNonce } from "../../src/transport/signal.ts";
import type { Endpoint, Transport } from "../../src/transport/transport.ts";
import { KeyRing } from "../../src/wire/keyring.ts";

const keyring = new KeyRing({ id: 1, secret: new Uint8Array(32).fill(7) });
// Below the kernel's ephemeral range (32768 and up), where ICE and fetch take their own ports.
const base = 20_000 + Math.floor(Math.random() * 10_000);
let next = 0;
const address = (): Endpoint => ({ host: "127.0.0.1", port: base + next++ });
const open: Transport[] = [];

async function node(local: Endpoint, peers: Endpoint[]): Promise<DatachannelTransport> {
  const transport = await openDatachannel({ keyring, local, answer: true, retryMs: 200 });
  transport.addPeers(peers);
  open.push(transport);
  return transport;
}

/** Sends `bytes` every 50 ms until `until` holds or the time runs out (a datagram may be lost). */
async function sendUntil(send: () => void, until: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!until()) {
    if (performance.now() > deadline) throw new Error("timed out");
    send();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function echo(transport: Transport): void {
  transport.onReceive((bytes, from) => transport.send(bytes, from));
}

describe("data channels", () => {
  afterEach(() => {
    for (const transport of open.splice(0)) transport.close();
  });

  test("two nodes connect on the first send and exchange datagrams both ways, naming each other by address", async () => {
    const [ea, eb] = [address(), address()];
    const a = await node(ea, [eb]);
    const b = await node(eb, [ea]);
    const seen: { bytes: number[]; from: Endpoint }[] = [];
    b.onReceive((bytes, from) => seen.push({ bytes: [...bytes], from }));
    await sendUntil(() => a.send(new Uint8Array([1, 2, 3]), eb), () => seen.length > 0);
    expect(seen[0]).toEqual({ bytes: [1, 2, 3], from: ea });
    expect(a.stats()).toMatchObject({ links: 1, open: 1, offersSent: 1 });
    expect(b.stats()).toMatchObject({ links: 1, open: 1, offersAnswered: 1 });
    const back: number[][] = [];
    a.onReceive((bytes) => back.push([...bytes]));
    await sendUntil(() => b.send(new Uint8Array([4]), ea), () => back.length > 0);
    expect(back[0]).toEqual([4]);
    // The one connection serves both directions.
    expect(b.stats().offersSent).toBe(0);
  });

  test("when both ends offer at once, one connection wins and both directions work", async () => {
    const [ec, ed] = [address(), address()];
    const c = await node(ec, [ed]);
    const d = await node(ed, [ec]);
    let atC = 0;
    let atD = 0;
    c.onReceive(() => atC++);
    d.onReceive(() => atD++);
    await sendUntil(() => {
      c.send(new Uint8Array([1]), ed);
      d.send(new Uint8Array([2]), ec);
    }, () => atC > 0 && atD > 0);
    expect(c.stats().links).toBe(1);
    expect(d.stats().links).toBe(1);
    expect(c.stats().offersRefused + d.stats().offersRefused).toBeGreaterThan(0);
  });

  test("a client without an address reaches a node, which replies on the client's connection", async () => {
    const en = address();
    const n = await node(en, []);
    echo(n);
    const client = await openDatachannel({ keyring });
    open.push(client);
    client.addPeers([en]);
    const got: number[][] = [];
    client.onReceive((bytes) => got.push([...bytes]));
    await sendUntil(() => client.send(new Uint8Array([9, 9]), en), () => got.length > 0);
    expect(got[0]).toEqual([9, 9]);
    expect(n.owns(client.local)).toBe(true);
    // The node cannot call a client: sending to an unknown label opens nothing.
    n.send(new Uint8Array([1]), { host: "client-000000000000", port: 0 });
    expect(n.stats().offersSent).toBe(0);
  });

  test("a closed client keeps nothing alive: a process that is done exits, whatever the connect timeout (regression: ctl lingered 5 s)", async () => {
    const en = address();
    const n = await node(en, []);
    echo(n);
    // A client process with a connect timeout far past this test's own: if closing left the
    // timer of its connection's opening pending, the process would outlive the test.
    const root = join(import.meta.dirname ?? ".", "../..");
    const fixture = join(root, "test/runtime/fixtures/datachannel-client.ts");
    const argv = runtime.name === "bun" ? [process.execPath, fixture, String(en.port)] : [process.execPath, "run", "-A", "--unstable-net", `--config=${join(root, "deno.json")}`, fixture, String(en.port)];
    const out = join(await mkdtemp(join(tmpdir(), "physalia-dc-client-")), "out");
    const child = runtime.spawn(argv, { stdoutPath: out });
    expect(await child.exited).toBe(0);
    await runtime.sleep(20); // A Deno parent copies the child's output just after it exits.
    expect(readFileSync(out, "utf8")).toContain("echoed");
  }, 30_000);

  test("a restarted node calls again and replaces the old connection", async () => {
    const [ea, eb] = [address(), address()];
    const a = await node(ea, [eb]);
    const b = await node(eb, [ea]);
    let atB = 0;
    b.onReceive(() => atB++);
    await sendUntil(() => a.send(new Uint8Array([1]), eb), () => atB > 0);
    a.close();
    // Deno releases a server's port a moment after it is stopped: try again until it is free.
    let again: DatachannelTransport | null = null;
    for (let attempt = 0; again === null; attempt++) {
      again = await node(ea, [eb]).catch((error: unknown) => {
        if (attempt > 40) throw error;
        return null;
      });
      if (again === null) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const restarted = again;
    const before = atB;
    await sendUntil(() => restarted.send(new Uint8Array([2]), eb), () => atB > before);
    expect(b.stats().offersAnswered).toBe(2);
    expect(b.stats().links).toBe(1);
    const back: number[] = [];
    restarted.onReceive((bytes) => back.push(bytes[0] as number));
    await sendUntil(() => b.send(new Uint8Array([3]), ea), () => back.length > 0);
  });

  test("offers from outside the colony, stale or replayed ones, and junk are refused and open nothing", async () => {
    const en = address();
    const n = await node(en, []);
    const url = `http://127.0.0.1:${en.port}/signal`;
    const post = (body: string) => fetch(url, { method: "POST", body }).then((r) => r.status);
    const offer = { kind: "offer" as const, from: "127.0.0.1:1", to: `127.0.0.1:${en.port}`, nonce: newNonce(), at: Date.now(), sdp: "v=0\r\n" };
    expect(await post(JSON.stringify(signSignal(new KeyRing({ id: 1, secret: new Uint8Array(32).fill(8) }), offer)))).toBe(401);
    expect(await post(JSON.stringify(signSignal(keyring, { ...offer, at: Date.now() - 60_000 })))).toBe(409);
    expect(await post(JSON.stringify(signSignal(keyring, { ...offer, to: "127.0.0.1:2" })))).toBe(409);
    expect(await post("{not json")).toBe(400);
    expect(await post("x".repeat(40_000))).toBe(413);
    // Without a length up front (a stream), the body is read only up to the limit.
    const stream = new ReadableStream<Uint8Array>({ start(controller) { for (let i = 0; i < 40; i++) controller.enqueue(new Uint8Array(1024).fill(120)); controller.close(); } });
    expect(await fetch(url, { method: "POST", body: stream, duplex: "half" } as RequestInit).then((r) => r.status)).toBe(413);
    expect((await fetch(url)).status).toBe(405);
    expect((await fetch(`http://127.0.0.1:${en.port}/metrics`)).status).toBe(404);
    // A well-signed offer with a broken SDP is answered with a refusal, once; its replay is refused as seen.
    const broken = JSON.stringify(signSignal(keyring, offer));
    expect(await post(broken)).toBe(400);
    expect(await post(broken)).toBe(409);
    expect(n.stats()).toMatchObject({ links: 0, open: 0 });
  });

  test("a node that is down costs a failed offer now and then, not one per send", async () => {
    const [ea, dead] = [address(), address()];
    const a = await node(ea, [dead]);
    for (let i = 0; i < 20; i++) {
      a.send(new Uint8Array([i]), dead);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(a.stats().offersSent).toBeGreaterThan(0);
    expect(a.stats().offersSent).toBeLessThan(5);
  });

  test("openLinks mixes UDP and data channels: each remote over its own transport", async () => {
    const [eu, ed, ex] = [address(), address(), address()];
    // u is a UDP node with a data-channel peer d; x is a UDP node too.
    const u = await openLinks({ self: { address: eu, transport: "udp" }, remotes: [{ address: ed, transport: "datachannel" }, { address: ex, transport: "udp" }], keyring });
    const d = await openLinks({ self: { address: ed, transport: "datachannel" }, remotes: [{ address: eu, transport: "udp" }], keyring });
    const x = await openLinks({ self: { address: ex, transport: "udp" }, remotes: [{ address: eu, transport: "udp" }], keyring });
    open.push(u, d, x);
    const atD: Endpoint[] = [];
    const atX: Endpoint[] = [];
    d.onReceive((_bytes, from) => atD.push(from));
    x.onReceive((_bytes, from) => atX.push(from));
    await sendUntil(() => {
      u.send(new Uint8Array([1]), ed);
      u.send(new Uint8Array([2]), ex);
    }, () => atD.length > 0 && atX.length > 0);
    expect(atD[0]).toEqual(eu);
    expect(atX[0]).toEqual(eu); // Over UDP, from u's own socket.
    const atU: Endpoint[] = [];
    u.onReceive((_bytes, from) => atU.push(from));
    await sendUntil(() => d.send(new Uint8Array([3]), eu), () => atU.length > 0);
    expect(atU[0]).toEqual(ed);
  });
});
