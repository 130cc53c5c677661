// The control plane with real processes: two `physalia control` processes (one active by
// lease) and sixteen nodes in two rows. A node killed for longer than the grace period is
// replaced in its cells without any command, a repair interrupted by the active control
// plane's death is finished by the other, and a cell whose client moved follows it.

import { afterEach, describe, expect, test } from "bun:test";
import { ProcessColony } from "./support.ts";

async function waitFor<T>(what: string, check: () => Promise<T | null | false | true>, timeoutMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    const value = await check().catch(() => null);
    if (value !== null && value !== false) return value as T;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

let colony: ProcessColony | null = null;
afterEach(async () => {
  await colony?.stop();
  colony = null;
});

const clients = [
  { id: "vm1", kind: "instance", row: "r1", rack: "r1-k0" },
  { id: "vm2", kind: "instance", row: "r2", rack: "r2-k0" },
];

/** The cell's members as the replica furthest along sees them (a removed member keeps an old view). */
async function members(c: ProcessColony, cell: string, among: readonly string[]): Promise<string[]> {
  let best: { applied: number; members: string[] } | null = null;
  for (const id of among) {
    const status = await c.status(id, cell).catch(() => null);
    const list = status?.members as string[] | null | undefined;
    const applied = status?.applied as number | undefined;
    if (applied === undefined || applied < 0 || !Array.isArray(list)) continue;
    if (best === null || applied > best.applied) best = { applied, members: list.map((m) => m.split("~")[0] as string).sort() };
  }
  return best?.members ?? [];
}

describe("the control plane of real processes", () => {
  test("repairs a dead node's cells by itself, finishes a repair its active process died in, and moves a cell after its client", async () => {
    colony = await ProcessColony.start(16, { rows: 2, clients });
    const c = colony;
    c.startControl("control-a", "--grace", "1500");
    await waitFor("control-a to be active", async () => (await c.output("control-a")).includes(": active"), 20_000);
    c.startControl("control-b", "--grace", "1500", "--steps", "4", "--in-flight", "2");
    await waitFor("control-b to stand by", async () => (await c.output("control-b")).includes("at most 4 changes started a pass and 2 under way"), 20_000);
    expect(await c.output("control-a")).toContain("at most 8 changes started a pass and 8 under way");
    const created = await c.ctl("create", "vol", "--client", "vm1");
    expect(created.code).toBe(0);
    expect(JSON.parse(created.out)).toMatchObject({ status: "created", cell: "vol" });
    const placed = (JSON.parse(created.out).members as string[]).map((m) => m.split("~")[0] as string);
    expect(placed.length).toBe(7);
    expect(placed.every((n) => Number(n.slice(1)) <= 8)).toBe(true); // r1 is n1..n8

    // A member dies: after the grace period the cell is back to seven live members.
    const first = placed[0] as string;
    await c.kill(first);
    const alive = c.ids.filter((id) => id !== first);
    const repaired = await waitFor("the first repair", async () => {
      const now = await members(c, "vol", alive);
      return now.length === 7 && !now.includes(first) ? now : null;
    }, 60_000);
    expect(repaired).not.toContain(first);

    // Another dies, and the active control plane dies during the repair: the other finishes it.
    const second = repaired.find((n) => n !== first) as string;
    await c.kill(second);
    await new Promise((resolve) => setTimeout(resolve, 1_800));
    await c.kill("control-a");
    const stillAlive = alive.filter((id) => id !== second);
    const finished = await waitFor("the standby to finish the repair", async () => {
      const now = await members(c, "vol", stillAlive);
      return now.length === 7 && !now.includes(second) && !now.includes(first) ? now : null;
    }, 60_000);
    expect(finished.length).toBe(7);
    expect(await c.output("control-b")).toContain(": active");
    expect((await c.ctl("put", "vol", "k", "v")).code).toBe(0);

    // The client moves to row r2: within a minute the cell lives there.
    expect((await c.ctl("attach", "vol", "vm2")).code).toBe(0);
    const moved = await waitFor("the cell to move to r2", async () => {
      const now = await members(c, "vol", stillAlive);
      return now.length === 7 && now.every((n) => Number(n.slice(1)) >= 9) ? now : null;
    }, 60_000);
    expect(moved.length).toBe(7);
    expect(JSON.parse((await c.ctl("get", "vol", "k")).out)).toEqual({ status: "committed", reads: { k: { str: "v" } } });
  }, 240_000);

  test("a rewritten topology file in which the client moved to the other row moves its cell there", async () => {
    colony = await ProcessColony.start(16, { rows: 2, clients });
    const c = colony;
    const control = c.startControl("control-a", "--grace", "1500");
    await waitFor("control-a to be active", async () => (await c.output("control-a")).includes(": active"), 20_000);
    const created = await c.ctl("create", "vol", "--client", "vm1");
    expect(created.code).toBe(0);
    const placed = (JSON.parse(created.out).members as string[]).map((m) => m.split("~")[0] as string);
    expect(placed.every((n) => Number(n.slice(1)) <= 8)).toBe(true);
    expect((await c.ctl("put", "vol", "k", "before the move")).code).toBe(0);

    // The datacenter's automation writes a topology in which vm1 is in row r2, and says so.
    const topology = JSON.parse(await Bun.file(c.topologyPath).text()) as { clients: { id: string; row: string; rack: string }[] };
    topology.clients = topology.clients.map((client) => (client.id === "vm1" ? { ...client, row: "r2", rack: "r2-k1" } : client));
    await Bun.write(c.topologyPath, JSON.stringify(topology));
    control.kill("SIGHUP");
    await waitFor("the control plane to take the new topology", async () => (await c.output("control-a")).includes("took the new topology (SIGHUP): 1 client(s) moved"), 10_000);
    const moved = await waitFor("the cell to move to r2", async () => {
      const now = await members(c, "vol", c.ids);
      return now.length === 7 && now.every((n) => Number(n.slice(1)) >= 9) ? now : null;
    }, 60_000);
    expect(moved.length).toBe(7);
    expect(JSON.parse((await c.ctl("get", "vol", "k")).out)).toEqual({ status: "committed", reads: { k: { str: "before the move" } } });
  }, 180_000);

  test("a node whose log is damaged leaves its registered cells to the control plane, which replaces its former identity at once", async () => {
    colony = await ProcessColony.start(9, { clients: [{ id: "vm1", kind: "instance", row: "r1", rack: "k0" }] });
    const c = colony;
    c.startControl("control-a", "--grace", "60000");
    await waitFor("control-a to be active", async () => (await c.output("control-a")).includes(": active"), 20_000);
    const created = await c.ctl("create", "vol", "--client", "vm1");
    expect(created.code).toBe(0);
    const placed = (JSON.parse(created.out).members as string[]);
    const former = placed[0] as string;
    const victim = former.split("~")[0] as string;
    for (let i = 0; i < 5; i++) expect((await c.ctl("put", "vol", `k${i}`, "value")).code).toBe(0);
    await c.kill(victim);
    const { readdir, readFile, writeFile } = await import("node:fs/promises");
    const { join } = await import("node:path");
    const dir = join(c.dir, victim);
    const segment = join(dir, (await readdir(dir)).filter((f) => f.endsWith(".log")).sort()[0] as string);
    const bytes = new Uint8Array(await readFile(segment));
    // Within the frames, before the segment's preallocated zeros.
    let end = bytes.length;
    while (end > 0 && bytes[end - 1] === 0) end--;
    const at = Math.floor(end * 0.7);
    bytes[at] = (bytes[at] as number) ^ 0x10;
    await writeFile(segment, bytes);
    c.startNode(victim);
    await c.waitUp(victim);
    // The grace period is a minute: only the stranger rule can make this repair happen sooner.
    const repaired = await waitFor("the former identity to be replaced", async () => {
      const now = await c.status(c.ids.find((id) => id !== victim && placed.some((m) => m.startsWith(`${id}~`))) as string, "vol");
      const list = (now?.members as string[] | null) ?? [];
      return list.length === 7 && !list.includes(former) ? list : null;
    }, 45_000);
    expect(repaired).not.toContain(former);
    expect(await Bun.file(join(c.dir, `${victim}.out`)).text()).toContain("left to the control plane");
    // The cell applies the removal before the control plane hears its answer and says so.
    const said = await waitFor("control-a to report the removal", async () => {
      const output = await c.output("control-a");
      return output.includes(`removed ${former}`) ? output : null;
    }, 10_000);
    expect(said).toContain(`removed ${former}`);
    expect(JSON.parse((await c.ctl("get", "vol", "k4")).out)).toEqual({ status: "committed", reads: { k4: { str: "value" } } });
  }, 120_000);
});
