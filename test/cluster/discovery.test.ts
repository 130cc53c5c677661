// Discovery in the running system, with real processes: a cell moved, one member at a time,
// onto nodes the rendezvous hash would never pick is still found by a brand-new ctl once
// every node it used to live on is stopped, and a cell never created is "no such cell" at
// once. Run with `npm run test:cluster` (it builds dist/physalia first).

import { afterEach, describe, expect, test } from "bun:test";
import { ProcessColony, waitFor } from "./support.ts";

let colony: ProcessColony | null = null;
afterEach(async () => {
  await colony?.stop();
  colony = null;
});

const nodeOf = (member: string) => member.split("~")[0] as string;

describe("discovery across real node processes", () => {
  test("a cell moved off every rendezvous node is found and used by a new ctl through any live node", async () => {
    // Ten nodes: a cell of three created on rendezvous nodes, then moved onto the three
    // nodes the rendezvous hash ranks last (never among the seven it would pick).
    colony = await ProcessColony.start(10);
    const c = colony;
    const admin = await c.client("admin");
    const ranked = admin.placementFor("vol-m");
    const rest = c.ids.filter((id) => !ranked.includes(id));
    expect(ranked.length).toBe(7);
    expect(rest.length).toBe(3);
    const home = ranked.slice(0, 3);
    const created = await admin.create("vol-m", { nodes: home });
    expect(created.status).toBe("created");
    admin.close();
    expect((await c.ctl("put", "vol-m", "k", "before")).code).toBe(0);

    // One member at a time, each change by its own ctl process (no cache): add a new node, remove an old one.
    for (let i = 0; i < 3; i++) {
      const added = await c.ctl("add-member", "vol-m", rest[i] as string);
      expect(added.code).toBe(0);
      const removed = await c.ctl("remove-member", "vol-m", home[i] as string);
      expect(removed.code).toBe(0);
    }
    // The cache is eventually consistent: a node that has not heard of the last change yet
    // answers with the membership before it, until gossip brings it (a few rounds).
    await waitFor("ctl where to show the new members", async () => {
      const final = JSON.parse((await c.ctl("where", "vol-m")).out) as { members: string[] };
      return final.members.map(nodeOf).sort().join() === [...rest].sort().join();
    }, 20_000);

    // Every node it used to live on stops; wait until each live node's replica of the cache has the new members.
    for (const id of home) await c.kill(id);
    const live = c.ids.filter((id) => !home.includes(id));
    const converged = performance.now();
    await waitFor("every live node's cache to hold the new members", async () => {
      for (const id of live) {
        const status = (await c.status(id, "vol-m")) as { discovery?: { entry?: { members?: string[] } | null } } | null;
        const members = status?.discovery?.entry?.members?.map(nodeOf).sort() ?? [];
        if (members.join() !== [...rest].sort().join()) return false;
      }
      return true;
    }, 30_000);
    const convergedMs = performance.now() - converged;

    // A brand-new ctl finds and uses it.
    const got = await c.ctl("get", "vol-m", "k");
    expect(got.code).toBe(0);
    expect(JSON.parse(got.out)).toEqual({ status: "committed", reads: { k: { str: "before" } } });
    expect((await c.ctl("put", "vol-m", "k", "after")).code).toBe(0);
    const where = await c.ctl("where", "vol-m");
    expect(where.code).toBe(0);
    const answer = JSON.parse(where.out) as { status: string; members: string[]; incarnation: string; version: number; source: { kind: string; node: string } };
    expect(answer).toMatchObject({ status: "found", incarnation: created.incarnation, source: { kind: "fresh" } });
    expect(answer.members.map(nodeOf).sort()).toEqual([...rest].sort());
    expect(answer.version).toBeGreaterThan(0);
    expect(live).toContain(answer.source.node);

    // Through any one live node: a client that knows only it and the new members.
    for (const via of live.filter((id) => !rest.includes(id)).slice(0, 2)) {
      const nodes = new Map([...c.endpoints].filter(([id]) => id === via || rest.includes(id)));
      const client = await c.client(`via-${via}`, "client.json", { nodes, deadlineMs: 10_000 });
      const result = await client.transact("vol-m", { reads: ["k"], conditions: [], writes: [] });
      expect(result).toMatchObject({ status: "committed" });
      await client.end();
    }

    // A cell never created: "no such cell", well under the deadline (10 s).
    const started = performance.now();
    const missing = await c.ctl("get", "vol-never", "k");
    const missingMs = performance.now() - started;
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("No such cell");
    expect(missingMs).toBeLessThan(5_000);
    const whereMissing = await c.ctl("where", "vol-never");
    expect(whereMissing.code).toBe(1);
    console.log(`discovery cluster: caches converged ${convergedMs.toFixed(0)} ms after the old members stopped; no such cell in ${missingMs.toFixed(0)} ms (a ctl process, start included)`);
  }, 120_000);
});
