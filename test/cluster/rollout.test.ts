// `physalia rollout` against real node processes: it restarts a color's nodes one at a time
// through the operator's own restart command (here a call back into this test, which owns the
// processes), waits for each to catch up, and loses nothing while a workload runs; and it
// refuses to restart a node whose cell could not spare it, without running the command.

import { afterEach, describe, expect, test } from "bun:test";
import { binary, ProcessColony } from "./support.ts";

let colony: ProcessColony | null = null;
let server: ReturnType<typeof Bun.serve> | null = null;
afterEach(async () => {
  server?.stop(true);
  server = null;
  await colony?.stop();
  colony = null;
});

/** Serves POST /restart/<node> by restarting that node of the colony; records the order. */
function restarter(c: ProcessColony): { port: number; restarted: string[] } {
  const restarted: string[] = [];
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const node = new URL(request.url).pathname.split("/")[2] ?? "";
      if (!c.ids.includes(node)) return new Response(`no node ${node}\n`, { status: 404 });
      restarted.push(node);
      await c.restart(node);
      return new Response("ok\n");
    },
  });
  return { port: server.port as number, restarted };
}

async function rollout(c: ProcessColony, ...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const child = Bun.spawn([binary, "rollout", "--topology", c.topologyPath, "--keys", c.clientKeysPath, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, out: out.trim(), err: err.trim() };
}

const restartCommand = (port: number) => `curl -sf -X POST http://127.0.0.1:${port}/restart/{node} || ${process.execPath} -e 'const r = await fetch("http://127.0.0.1:${port}/restart/{node}", { method: "POST" }); process.exit(r.ok ? 0 : 1)'`;

describe("physalia rollout with real processes", () => {
  test("restarts every node of the color one at a time while a workload commits every increment once", async () => {
    colony = await ProcessColony.start(9);
    const c = colony;
    for (const cell of ["vol-a", "vol-b"]) expect((await c.ctl("create", cell)).code).toBe(0);
    const { port, restarted } = restarter(c);
    const client = await c.client("rollout-load", "client.json", { deadlineMs: 15_000 });
    let running = true;
    let committed = 0;
    let failed = 0;
    const load = (async () => {
      while (running) {
        const result = await client.transact("vol-a", { reads: [], conditions: [], writes: [{ key: "n", op: "increment", by: 1n }] }).catch(() => null);
        if (result?.status === "committed") committed++;
        else failed++;
        await Bun.sleep(20);
      }
    })();
    const result = await rollout(c, "--cells", "vol-a,vol-b", "--restart", restartCommand(port));
    running = false;
    await load;
    expect(result.err).toBe("");
    expect(result.code).toBe(0);
    const lines = result.out.split("\n").map((l) => JSON.parse(l) as { node: string; healthy: boolean });
    expect(lines.map((l) => l.node)).toEqual(c.ids);
    expect(lines.every((l) => l.healthy)).toBe(true);
    expect(restarted).toEqual(c.ids);
    expect(failed).toBe(0);
    expect(committed).toBeGreaterThan(20);
    const read = await client.transact("vol-a", { reads: ["n"], conditions: [], writes: [] });
    expect(read).toMatchObject({ status: "committed", reads: [BigInt(committed)] });
    await client.end();
  }, 180_000);

  test("refuses to restart a node its cell cannot spare, and runs no restart command for it", async () => {
    colony = await ProcessColony.start(7);
    const c = colony;
    expect((await c.ctl("create", "vol")).code).toBe(0);
    const { port, restarted } = restarter(c);
    // Three of seven down: the cell has exactly its majority left, and can spare nobody.
    for (const id of ["n5", "n6", "n7"]) await c.kill(id);
    const result = await rollout(c, "--cells", "vol", "--wait", "2000", "--restart", restartCommand(port));
    expect(result.code).toBe(1);
    expect(result.err).toContain("rollout stopped before n1: cell vol has 4 of 7 members answering; without n1 it would have 3, and needs 4");
    expect(restarted).toEqual([]);
    expect(JSON.parse(result.out)).toMatchObject({ node: "n1", restarted: false });
    // A usage error names what is wrong in one line and exits 2.
    const bad = await rollout(c, "--cells", "vol", "--restart", "true");
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("names no node");
  }, 120_000);
});
