// Real processes: seven `physalia node` processes on loopback, killed, paused and attacked.
// Run with `npm run test:cluster` (it builds dist/physalia first).

import { afterEach, describe, expect, test } from "bun:test";
import { checkHistory } from "../../src/check/linearizable.ts";
import { HistoryRecorder } from "../../src/check/recorder.ts";
import { UnreachableError } from "../../src/client/client.ts";
import type { Transaction } from "../../src/core/transaction.ts";
import { utf8 } from "../../src/core/value.ts";
import { KeyRing } from "../../src/wire/keyring.ts";
import { encodeMessages } from "../../src/wire/message.ts";
import { ProcessColony } from "./support.ts";

let colony: ProcessColony | null = null;
afterEach(async () => {
  await colony?.stop();
  colony = null;
});

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 15_000) => {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check().catch(() => false)) return;
    await Bun.sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe("a colony of real node processes", () => {
  test("serves physalia ctl; three SIGKILLed members restart and catch up", async () => {
    colony = await ProcessColony.start(7);
    const created = await colony.ctl("create", "vol-a");
    expect(created.code).toBe(0);
    // Members are identities: a node's id and its data directory's incarnation.
    const members = (JSON.parse(created.out) as { members: string[] }).members.map((m) => m.split("~")[0] as string);
    expect(members.length).toBe(7);
    expect(JSON.parse(created.out)).toMatchObject({ status: "created", cell: "vol-a" });
    // Creating it again says it exists, with the same members.
    expect(JSON.parse((await colony.ctl("create", "vol-a")).out)).toMatchObject({ status: "exists", incarnation: JSON.parse(created.out).incarnation });
    expect((await colony.ctl("put", "vol-a", "primary", "server-1")).code).toBe(0);
    expect(JSON.parse((await colony.ctl("get", "vol-a", "primary")).out)).toEqual({ status: "committed", reads: { primary: { str: "server-1" } } });

    const victims = members.slice(0, 3);
    for (const id of victims) await colony.kill(id);
    for (let i = 1; i <= 5; i++) {
      const result = await colony.ctl("increment", "vol-a", "epoch");
      expect(result.code).toBe(0);
    }
    expect(JSON.parse((await colony.ctl("get", "vol-a", "epoch")).out)).toEqual({ status: "committed", reads: { epoch: { int: "5" } } });

    for (const id of victims) colony.startNode(id);
    for (const id of victims) await colony.waitUp(id);
    expect((await colony.ctl("put", "vol-a", "after", "true")).code).toBe(0);
    const survivor = members[6] as string;
    await waitFor("the restarted members to catch up", async () => {
      const target = (await colony?.status(survivor, "vol-a"))?.applied as number;
      for (const id of victims) if ((await colony?.status(id, "vol-a"))?.applied !== target) return false;
      return true;
    });
    // Bad input gets a clear one-line error and a non-zero exit.
    const bad = await colony.ctl("put", "vol-a", "k", "1.5");
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("floats are not supported");
  }, 120_000);

  test("a SIGSTOPped leader loses leadership, and no client sees a non-linearizable history", async () => {
    colony = await ProcessColony.start(7);
    const setup = await colony.client("setup");
    await setup.create("vol-b");
    await setup.transact("vol-b", { reads: [], conditions: [], writes: [{ key: "x", op: "put", value: 0n }] });
    const leaderOf = async () => {
      for (const id of colony?.ids ?? []) if ((await colony?.status(id, "vol-b").catch(() => null))?.role === "leader") return id;
      return null;
    };
    const leader = await leaderOf();
    expect(leader).not.toBeNull();

    const recorder = new HistoryRecorder();
    const clients = await Promise.all([1, 2, 3].map((i) => colony?.client(`w${i}`)));
    let running = true;
    const work = clients.map(async (client, i) => {
      let n = 0;
      while (running) {
        n++;
        const tx: Transaction = n % 3 === 0
          ? { reads: ["x", "y"], conditions: [], writes: [] }
          : n % 3 === 1
            ? { reads: [], conditions: [], writes: [{ key: "x", op: "increment", by: 1n }] }
            : { reads: ["y"], conditions: [], writes: [{ key: "y", op: "put", value: utf8(`w${i}:${n}`) }] };
        const id = recorder.invoke("vol-b", `w${i}`, tx, performance.now());
        try {
          recorder.complete(id, await client!.transact("vol-b", tx), performance.now());
        } catch (error) {
          if (!(error instanceof UnreachableError)) throw error;
          recorder.timeout(id, performance.now());
        }
      }
    });
    await Bun.sleep(500);
    colony.signal(leader as string, "SIGSTOP");
    await waitFor("a new leader", async () => {
      const next = await leaderOf();
      return next !== null && next !== leader;
    });
    await Bun.sleep(1_000);
    colony.signal(leader as string, "SIGCONT");
    await Bun.sleep(1_000);
    running = false;
    await Promise.all(work);
    for (const client of clients) client?.close();
    setup.close();
    const verdicts = checkHistory(recorder);
    expect(recorder.history("vol-b").length).toBeGreaterThan(30);
    for (const verdict of verdicts) expect(verdict.ok === false ? verdict.explanation : verdict.ok).toBe(true);
  }, 120_000);

  test("a node whose log is damaged before its end replaces itself in its cells and re-learns them", async () => {
    colony = await ProcessColony.start(3);
    expect((await colony.ctl("create", "vol-d")).code).toBe(0);
    for (let i = 0; i < 5; i++) expect((await colony.ctl("put", "vol-d", `k${i}`, "value")).code).toBe(0);
    await colony.kill("n1");
    const { readdir, readFile, writeFile } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const dir = join(colony.dir, "n1");
    const segment = join(dir, (await readdir(dir)).filter((f) => f.endsWith(".log")).sort()[0] as string);
    const bytes = new Uint8Array(await readFile(segment));
    // A bit flip in a synced record well before the end: not a torn tail. The segment's
    // frames end where its preallocated zeros begin (storage/log.ts, `reserve`).
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    const at = Math.floor(end * 0.7);
    bytes[at] = (bytes[at] as number) ^ 0x10;
    await writeFile(segment, bytes);
    colony.startNode("n1");
    await colony.waitUp("n1");
    expect((await colony.ctl("put", "vol-d", "during", "value")).code).toBe(0);
    // It is removed, comes back as an empty replica, is added again and is taught the cell.
    // It starts on a fresh directory, as a new identity: added to the cell, taught, and its
    // former identity removed, all by itself.
    const identity = (await colony.status("n1"))?.id as string;
    await waitFor("n1 to be a member again, as its new identity, and caught up", async () => {
      const mine = await colony?.status("n1", "vol-d");
      const theirs = await colony?.status("n2", "vol-d");
      const members = (theirs?.members as string[] | null) ?? [];
      return mine !== null && mine !== undefined && members.length === 3 && members.includes(identity) && mine.applied === theirs?.applied;
    }, 60_000);
    expect((await readdir(colony.dir)).some((f) => f.startsWith("n1.damaged-"))).toBe(true);
    // Its intent was written down before it acted, and is struck out as it is done.
    await waitFor("the rejoin intent to be done", async () => {
      const intent = JSON.parse(await readFile(join(dir, "REJOIN.json"), "utf8")) as { version: number; cells: string[] };
      return intent.version === 1 && intent.cells.length === 0;
    });
    expect((await colony.ctl("put", "vol-d", "after", "value")).code).toBe(0);
    // With n2 down, the cell needs n1's vote: it has one again.
    await colony.kill("n2");
    expect(JSON.parse((await colony.ctl("get", "vol-d", "k4")).out)).toEqual({ status: "committed", reads: { k4: { str: "value" } } });
  }, 120_000);

  test("four of seven members lose power at once with their unsynced tails garbled, and come back with every acknowledged write", async () => {
    colony = await ProcessColony.start(7);
    expect((await colony.ctl("create", "vol-p")).code).toBe(0);
    const acknowledged = new Map<string, string>();
    for (let i = 0; i < 20; i++) {
      const result = await colony.ctl("put", "vol-p", `k${i}`, `v${i}`);
      expect(result.code).toBe(0);
      acknowledged.set(`k${i}`, `v${i}`);
    }
    const { appendFile, readdir } = await import("node:fs/promises");
    const { join } = await import("node:path");
    // A majority of the cell at once, as when one power domain goes: what the page cache held
    // past the last sync is gone, and the disk shows garbage and zeros where it was.
    const victims = ["n1", "n2", "n3", "n4"];
    await Promise.all(victims.map((id) => colony!.kill(id)));
    for (const id of victims) {
      const dir = join(colony.dir, id);
      const last = (await readdir(dir)).filter((f) => f.endsWith(".log")).sort().at(-1) as string;
      const garbage = new Uint8Array(8192);
      crypto.getRandomValues(garbage.subarray(0, 4096));
      await appendFile(join(dir, last), garbage);
    }
    for (const id of victims) colony.startNode(id);
    for (const id of victims) await colony.waitUp(id);
    // The three that stayed up cannot decide alone; the four must be back as themselves.
    await Promise.all(["n5", "n6", "n7"].map((id) => colony!.kill(id)));
    const reads = await colony.ctl("get", "vol-p", ...acknowledged.keys());
    expect(reads.code).toBe(0);
    const expected = Object.fromEntries([...acknowledged].map(([k, v]) => [k, { str: v }]));
    expect(JSON.parse(reads.out)).toEqual({ status: "committed", reads: expected });
    // Nothing was moved aside: each found a torn tail, which no sync covered, and nothing else.
    expect((await readdir(colony.dir)).filter((f) => f.includes(".damaged-"))).toEqual([]);
    const { readFile } = await import("node:fs/promises");
    for (const id of victims) expect(await readFile(join(colony.dir, `${id}.out`), "utf8")).toContain("discarded a torn tail");
  }, 120_000);

  test("a second process on the same data directory is refused; a SIGKILLed owner's lock is taken over", async () => {
    colony = await ProcessColony.start(3);
    const { join } = await import("node:path");
    const second = Bun.spawn([(await import("./support.ts")).binary, "node", "--topology", colony.topologyPath, "--id", "n1", "--data", join(colony.dir, "n1"), "--keys", colony.nodeKeysPath, "--metrics", `127.0.0.1:${colony.basePort + 500}`], { stdout: "ignore", stderr: "pipe" });
    expect(await second.exited).toBe(1);
    expect(await new Response(second.stderr).text()).toContain("another node process");
    await colony.kill("n1");
    colony.startNode("n1");
    await colony.waitUp("n1");
  }, 60_000);

  test("garbage and forged frames are dropped and counted, and the node keeps serving", async () => {
    colony = await ProcessColony.start(3);
    const socket = await Bun.udpSocket({});
    const target = colony.endpoints.get("n1");
    socket.send(new Uint8Array([0xde, 0xad, 0xbe, 0xef]), target!.port, "127.0.0.1");
    socket.send(new Uint8Array(200).fill(0x41), target!.port, "127.0.0.1");
    const nodeKeyId = (await colony.keys("node-blue.json")).ring("node")?.currentId ?? 0;
    const forged = encodeMessages(new KeyRing({ id: nodeKeyId, secret: new Uint8Array(32).fill(1) }), { sender: "n2", receiver: "n1", stamp: { epoch: 1, counter: 1 }, messages: [] });
    socket.send(forged, target!.port, "127.0.0.1");
    await waitFor("the drops to be counted", async () => {
      const metrics = await colony!.metrics("n1");
      return metrics.includes('reason="tooShort"') && metrics.includes('reason="badMagic"') && metrics.includes('reason="badMac"');
    });
    socket.close();
    expect((await colony.ctl("create", "vol-c")).code).toBe(0);
    expect((await colony.ctl("put", "vol-c", "k", "v")).code).toBe(0);
  }, 60_000);

  test("ctl refuses control commands with the client key file; a client key speaking as a node is dropped as wrongRole", async () => {
    colony = await ProcessColony.start(3);
    const { join } = await import("node:path");
    const child = Bun.spawn([(await import("./support.ts")).binary, "ctl", "--topology", colony.topologyPath, "--keys", join(colony.keysDir, "client.json"), "create", "vol-e"], { stdout: "pipe", stderr: "pipe" });
    // The wrong kind of key file is bad input (exit 2).
    expect(await child.exited).toBe(2);
    expect(await new Response(child.stderr).text()).toContain("needs the control key file");
    const node = Bun.spawn([(await import("./support.ts")).binary, "node", "--topology", colony.topologyPath, "--id", "n1", "--data", join(colony.dir, "other"), "--keys", colony.clientKeysPath], { stdout: "ignore", stderr: "pipe" });
    expect(await node.exited).toBe(2);
    expect(await new Response(node.stderr).text()).toContain("it is a client key file, and this command takes a node key file");
    expect((await colony.ctl("create", "vol-e")).code).toBe(0);
    const clientRing = (await colony.keys("client.json")).ring("client") as KeyRing;
    const socket = await Bun.udpSocket({});
    const forged = encodeMessages(clientRing, {
      sender: "n2", receiver: "n1", stamp: { epoch: Date.now(), counter: 1 },
      messages: [{ cell: "vol-e", message: { kind: "commit", ballot: { round: 1_000_000, node: "n2" }, through: 5 } }],
    });
    socket.send(forged, colony.endpoints.get("n1")?.port as number, "127.0.0.1");
    await waitFor("the wrongRole drop", async () => (await colony!.metrics("n1")).includes('reason="wrongRole",node="n1",color="blue"} 1'));
    socket.close();
    expect((await colony.ctl("put", "vol-e", "k", "v")).code).toBe(0);
  }, 60_000);
});
