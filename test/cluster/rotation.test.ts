// Rotating each role's key with real node processes while a workload runs: add a new key as
// current and keep the old one, restart the nodes one by one with the new files, move the
// clients to the new files, drop the old key, and restart the nodes again. No request may
// fail, and at the end a frame under the old key is refused.
// Run with `npm run test:cluster` (it builds dist/physalia first).

import { afterEach, describe, expect, test } from "bun:test";
import { changeRing } from "../../src/cli/keys.ts";
import type { PhysaliaClient } from "../../src/client/client.ts";
import { utf8 } from "../../src/core/value.ts";
import { Stamper, freshEpoch } from "../../src/wire/freshness.ts";
import type { KeyRing, KeySet, Role } from "../../src/wire/keyring.ts";
import { encodeMessages } from "../../src/wire/message.ts";
import { ProcessColony } from "./support.ts";

let colony: ProcessColony | null = null;
afterEach(async () => {
  await colony?.stop();
  colony = null;
});

/** Data clients (client key) and a control client that keeps creating cells, each swappable for one with newer files. */
class Workload {
  readonly failures: string[] = [];
  operations = 0;
  cellsCreated = 0;
  private running = true;
  private generation = 0;
  private data: PhysaliaClient[] = [];
  private control: PhysaliaClient | null = null;
  private loops: Promise<void>[] = [];

  constructor(private readonly colony: ProcessColony) {}

  /** Replaces every client by one that reads the key files as they are now (a new id: a new session). */
  async reload(): Promise<void> {
    this.generation++;
    const old = [...this.data, ...(this.control === null ? [] : [this.control])];
    this.data = await Promise.all([1, 2].map((i) => this.colony.client(`w${i}-g${this.generation}`, "client.json")));
    this.control = await this.colony.client(`ops-g${this.generation}`, "control.json");
    // Let operations in flight on the old clients finish before closing them.
    setTimeout(() => old.forEach((c) => c.close()), 25_000);
  }

  start(): void {
    const record = async (what: string, run: () => Promise<{ status: string }>) => {
      try {
        const result = await run();
        if (result.status !== "committed") this.failures.push(`${what}: ${result.status}`);
        else this.operations++;
      } catch (error) {
        this.failures.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      }
    };
    this.loops = [0, 1].map(async (i) => {
      for (let n = 0; this.running; n++) {
        const client = this.data[i] as PhysaliaClient;
        await record(`w${i} op ${n}`, () => client.transact("vol-r", n % 2 === 0
          ? { reads: [], conditions: [], writes: [{ key: `k${i}`, op: "increment", by: 1n }] }
          : { reads: [`k${i}`], conditions: [], writes: [{ key: `v${i}`, op: "put", value: utf8(`n${n}`) }] }));
      }
    });
    this.loops.push((async () => {
      for (let n = 0; this.running; n++) {
        const client = this.control as PhysaliaClient;
        const cell = `made-${n}`;
        try {
          await client.create(cell);
          this.cellsCreated++;
        } catch (error) {
          this.failures.push(`create ${cell}: ${error instanceof Error ? error.message : String(error)}`);
          continue;
        }
        await record(`put in ${cell}`, () => client.transact(cell, { reads: [], conditions: [], writes: [{ key: "x", op: "put", value: true }] }));
        await Bun.sleep(200);
      }
    })());
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const client of [...this.data, ...(this.control === null ? [] : [this.control])]) client.close();
  }
}

const unknownKeyDrops = async (colony: ProcessColony, id: string) => Number(/reason="unknownKey",[^}]*} (\d+)/.exec(await colony.metrics(id))?.[1] ?? 0);

/** Whether every node hears every other: a rotation must never split the colony. */
async function allConnected(colony: ProcessColony): Promise<boolean> {
  for (const id of colony.ids) {
    const alive = (await colony.status(id).catch(() => null))?.peersAlive as string[] | undefined;
    if (alive === undefined || alive.length !== colony.ids.length - 1) return false;
  }
  return true;
}

/**
 * Restarts the nodes one by one with the key files as they are now. Before each restart the
 * node must have refused no frame for an unknown key (its counters die with the process),
 * and after it every node must hear every other again.
 */
async function rollNodes(colony: ProcessColony, refused: string[]): Promise<void> {
  for (const id of colony.ids) {
    const drops = await unknownKeyDrops(colony, id);
    if (drops > 0) refused.push(`${id} refused ${drops} frames under an unknown key`);
    await colony.restart(id);
    const deadline = performance.now() + 5_000;
    while (!(await allConnected(colony))) {
      if (performance.now() > deadline) {
        refused.push(`after restarting ${id}, some node does not hear all its peers`);
        break;
      }
      await Bun.sleep(100);
    }
  }
}

/** Counts, at n1, frames under a ring that n1 no longer holds. */
async function refusedUnderOld(colony: ProcessColony, role: Role, ring: KeyRing): Promise<boolean> {
  const socket = await Bun.udpSocket({});
  const sender = role === "node" ? "n2" : "probe";
  const frame = encodeMessages(ring, { sender, receiver: "n1", stamp: new Stamper(freshEpoch()).next(), messages: [] });
  const count = () => unknownKeyDrops(colony, "n1");
  const before = await count();
  socket.send(frame, colony.endpoints.get("n1")?.port as number, "127.0.0.1");
  for (let i = 0; i < 50; i++) {
    if ((await count()) > before) {
      socket.close();
      return true;
    }
    await Bun.sleep(50);
  }
  socket.close();
  return false;
}

const fileOf: Record<Role, "node-blue.json" | "client.json" | "control.json"> = { node: "node-blue.json", client: "client.json", control: "control.json" };

describe("key rotation with real node processes", () => {
  for (const role of ["node", "client", "control"] as const) {
    test(`the ${role} key rotates without downtime while a workload runs`, async () => {
      colony = await ProcessColony.start(5);
      const setup = await colony.client("setup");
      await setup.create("vol-r");
      setup.close();
      const oldKeys: KeySet = await colony.keys(fileOf[role]);
      const oldRing = oldKeys.ring(role) as KeyRing;

      const workload = new Workload(colony);
      await workload.reload();
      workload.start();
      await Bun.sleep(500);

      // 1. A new current key beside the old one, in every file that holds the ring.
      await changeRing(colony.keysDir, { role, action: "rotate", ...(role === "node" ? { color: "blue" } : {}) });
      const refused: string[] = [];
      await rollNodes(colony, refused);
      await workload.reload();
      await Bun.sleep(500);
      // 2. Every holder has the new key: drop the old one, and roll again.
      await changeRing(colony.keysDir, { role, action: "retire", ...(role === "node" ? { color: "blue" } : {}) });
      await workload.reload();
      await rollNodes(colony, refused);
      await Bun.sleep(500);
      await workload.stop();
      for (const id of colony.ids) if ((await unknownKeyDrops(colony, id)) > 0) refused.push(`${id} refused frames under an unknown key`);

      expect(workload.failures).toEqual([]);
      expect(refused).toEqual([]);
      expect(workload.operations).toBeGreaterThan(30);
      expect(workload.cellsCreated).toBeGreaterThan(3);
      const newRing = (await colony.keys(fileOf[role])).ring(role) as KeyRing;
      expect(newRing.signingIds).toHaveLength(1);
      expect(newRing.currentId).not.toBe(oldRing.currentId);
      expect(await refusedUnderOld(colony, role, oldRing)).toBe(true);
    }, 120_000);
  }
});
