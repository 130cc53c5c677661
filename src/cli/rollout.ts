// `physalia rollout`: restarts a color's nodes one at a time, the way a deployment should,
// and waits for each to be healthy before the next. It owns no processes: the operator's own
// restart command (systemd, a container runtime, `physalia dev restart`) is run for each
// node, with {node} and {address} filled in. Before a node is restarted, every cell it serves
// must keep a majority of answering members without it; after, the node must answer and each
// of its replicas must have caught up with the slot its cell had reached before the restart.
// A rollout that cannot go on safely stops and says why (exit 1), leaving the rest untouched.

import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PhysaliaClient } from "../client/client.ts";
import { readRegistry } from "../control/registry.ts";
import { controlCellOf } from "../control/service.ts";
import { errorText, runtime } from "../runtime/mod.ts";
import { nodePart } from "../wire/ids.ts";
import { UsageError, parseFlags, quote } from "./args.ts";
import { CliError, colorEndpoints, readKeys, readTopology } from "./colony.ts";
import { openClientLinks } from "./links.ts";

export const rolloutUsage = `usage: physalia rollout --topology FILE --keys FILE --restart COMMAND [--color C] [--nodes n1,n2] [--cells c1,c2] [--wait MS] [--dry-run]
  --restart COMMAND  run by sh for each node, with {node} and {address} replaced, e.g.
                     'systemctl restart physalia@{node}' or 'physalia dev restart {node}'
  --keys FILE        the client or control key file
  --color C          the color to roll (default: the topology's first); colors are rolled one at a time
  --nodes LIST       only these nodes of the color, in this order (default: all, in topology order)
  --cells LIST       the cells to keep safe (default: every cell in the control plane's registry)
  --wait MS          how long a cell may take to regain its majority before a restart, and a
                     node to catch up after it (default 120000)
  --dry-run          check every node's cells and print the plan; restart nothing
For each node: every cell it serves must still have a majority of answering members without
it; the command is run and must exit 0; then the node must answer and each of its replicas
reach the slot its cell had before the restart. One JSON line per node; exit 1 at the first
node that cannot be restarted safely or does not come back.`;

interface CellMembers {
  readonly cell: string;
  readonly members: readonly string[];
}

export async function rolloutCommand(args: string[], print: (line: string) => void = console.log): Promise<number> {
  const flags = parseFlags(args, {
    topology: { type: "string" },
    keys: { type: "string" },
    restart: { type: "string" },
    color: { type: "string" },
    nodes: { type: "string" },
    cells: { type: "string" },
    wait: { type: "int", min: 1_000, max: 24 * 3_600_000 },
    "dry-run": { type: "bool" },
  });
  const topology = await readTopology(flags.topology as string | undefined);
  const { keys } = await readKeys(flags.keys as string | undefined, ["client", "control"]);
  const restart = flags.restart as string | undefined;
  const dryRun = flags["dry-run"] === true;
  if (restart === undefined && !dryRun) throw new UsageError("--restart COMMAND is required (or --dry-run)");
  if (restart !== undefined && !restart.includes("{node}") && !restart.includes("{address}")) {
    throw new UsageError(`--restart ${quote(restart)} names no node: put {node} or {address} where the node goes`);
  }
  const color = (flags.color as string | undefined) ?? (topology.colors[0] as string);
  if (!topology.colors.includes(color)) throw new UsageError(`--color ${color} is not a color of the topology (${topology.colors.join(", ")})`);
  const ofColor = topology.nodes.filter((n) => n.color === color);
  let order = ofColor.map((n) => n.id);
  if (flags.nodes !== undefined) {
    order = (flags.nodes as string).split(",").map((s) => s.trim()).filter((s) => s !== "");
    const unknown = order.filter((id) => !ofColor.some((n) => n.id === id));
    if (unknown.length > 0) throw new UsageError(`--nodes: ${unknown.map(quote).join(", ")} ${unknown.length === 1 ? "is" : "are"} not a node of color ${color}`);
    if (new Set(order).size !== order.length) throw new UsageError("--nodes names a node twice");
  }
  const waitMs = (flags.wait as number | undefined) ?? 120_000;
  const endpoints = colorEndpoints(topology, color);
  const transport = await openClientLinks(topology, color, keys);
  const client = new PhysaliaClient({ id: `rollout-${process.pid}`, nodes: endpoints, keys, transport, deadlineMs: 5_000 });
  try {
    const names = flags.cells === undefined ? await registeredCells(client, color) : (flags.cells as string).split(",").map((s) => s.trim()).filter((s) => s !== "");
    let cellsNow = await described(client, names);
    const missing = names.filter((name) => !cellsNow.some((c) => c.cell === name));
    if (missing.length > 0) throw new CliError(`Cannot roll color ${color}: no replica of ${missing.slice(0, 3).map(quote).join(", ")}${missing.length > 3 ? ` and ${missing.length - 3} more` : ""} answered`);
    if (names.length === 0) print(JSON.stringify({ note: `no cells to keep safe (no --cells, and the registry of ${controlCellOf(color)} is empty or absent): only each node's answer is checked` }));
    for (const node of order) {
      const address = topology.nodes.find((n) => n.id === node)?.address ?? "";
      // Members change under a rollout (the control plane repairs dead nodes): ask again.
      if (node !== order[0]) cellsNow = await described(client, names);
      const served = cellsNow.filter((c) => c.members.some((m) => nodePart(m) === node));
      const ready = await untilSafe(client, node, served, waitMs);
      if (typeof ready === "string") {
        print(JSON.stringify({ node, restarted: false, reason: ready }));
        throw new CliError(`rollout stopped before ${node}: ${ready}`);
      }
      if (dryRun) {
        print(JSON.stringify({ node, restarted: false, dryRun: true, cells: served.length, slowestMajority: ready.tightest }));
        continue;
      }
      const started = performance.now();
      const failure = await runRestart((restart as string).replaceAll("{node}", node).replaceAll("{address}", address));
      if (failure !== null) {
        print(JSON.stringify({ node, restarted: false, reason: failure }));
        throw new CliError(`rollout stopped at ${node}: the restart command ${failure}`);
      }
      const back = await untilCaughtUp(client, node, ready.targets, waitMs);
      if (back !== null) {
        print(JSON.stringify({ node, restarted: true, healthy: false, reason: back }));
        throw new CliError(`rollout stopped at ${node}: ${back}`);
      }
      print(JSON.stringify({ node, restarted: true, healthy: true, cells: served.length, healthyAfterMs: Math.round(performance.now() - started) }));
    }
    return 0;
  } finally {
    await client.end(300);
  }
}

/** Every cell in the control plane's registry of this color, or none when there is no control cell. */
async function registeredCells(client: PhysaliaClient, color: string): Promise<string[]> {
  const control = controlCellOf(color);
  const known = await client.describe(control).catch(() => null);
  if (known === null) return [];
  const registry = await readRegistry(client, control);
  if (!registry.complete) throw new CliError(`Cannot read the registry of ${control}: a page was not committed`);
  return [control, ...registry.names];
}

async function described(client: PhysaliaClient, names: readonly string[]): Promise<CellMembers[]> {
  const out: CellMembers[] = [];
  for (let i = 0; i < names.length; i += 32) {
    const batch = await Promise.all(names.slice(i, i + 32).map(async (cell) => {
      const known = await client.describe(cell).catch(() => null);
      return known === null ? null : { cell, members: known.hosted.members };
    }));
    for (const c of batch) if (c !== null) out.push(c);
  }
  return out;
}

/** Each member's applied slot, by topology id; a member that does not answer is missing. */
async function appliedBy(client: PhysaliaClient, cell: CellMembers): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  await Promise.all(cell.members.map(async (member) => {
    const answer = await client.hello(cell.cell, nodePart(member), 800).catch(() => null);
    if (answer?.hosted != null && answer.hosted.members.length > 0) out.set(nodePart(member), answer.hosted.applied);
  }));
  return out;
}

/**
 * Waits until restarting `node` leaves every cell it serves a majority of answering members;
 * then returns, per cell, the slot its furthest replica has applied (what the node must reach
 * after its restart). A string says which cell is short, once `waitMs` has passed.
 */
async function untilSafe(client: PhysaliaClient, node: string, cells: readonly CellMembers[], waitMs: number): Promise<{ targets: Map<string, number>; tightest: number | null } | string> {
  const deadline = performance.now() + waitMs;
  for (;;) {
    const targets = new Map<string, number>();
    let short: string | null = null;
    let tightest: number | null = null;
    for (const cell of cells) {
      const applied = await appliedBy(client, cell);
      const majority = Math.floor(cell.members.length / 2) + 1;
      const others = [...applied.keys()].filter((id) => id !== node).length;
      if (others < majority) {
        short = `cell ${cell.cell} has ${applied.size} of ${cell.members.length} members answering; without ${node} it would have ${others}, and needs ${majority}`;
        break;
      }
      tightest = tightest === null ? others - majority : Math.min(tightest, others - majority);
      targets.set(cell.cell, Math.max(...applied.values()));
    }
    if (short === null) return { targets, tightest };
    if (performance.now() > deadline) return short;
    await runtime.sleep(1_000);
  }
}

/** Null once `node` answers and has applied each cell's target slot; else why not, after `waitMs`. */
async function untilCaughtUp(client: PhysaliaClient, node: string, targets: ReadonlyMap<string, number>, waitMs: number): Promise<string | null> {
  const deadline = performance.now() + waitMs;
  let behind = "it did not answer";
  for (;;) {
    let ok = true;
    for (const [cell, target] of targets) {
      const answer = await client.hello(cell, node, 800).catch(() => null);
      const applied = answer?.hosted?.applied ?? -1;
      if (applied < target) {
        // A node the control plane removed from the cell meanwhile has nothing to catch up.
        const known = await client.describe(cell).catch(() => null);
        if (known !== null && !known.hosted.members.some((m) => nodePart(m) === node)) continue;
        ok = false;
        behind = answer === null ? "it did not answer" : `its replica of ${cell} is at slot ${applied}, short of ${target}`;
        break;
      }
    }
    if (ok && targets.size === 0) {
      ok = (await client.hello("rollout-probe", node, 800).catch(() => null)) !== null;
      behind = "it did not answer";
    }
    if (ok) return null;
    if (performance.now() > deadline) return `${node} was not healthy ${Math.round(waitMs / 1000)} s after its restart: ${behind}`;
    await runtime.sleep(250);
  }
}

/** Runs the operator's restart command; null when it exited 0, else what it said. */
async function runRestart(command: string): Promise<string | null> {
  const errPath = join(tmpdir(), `physalia-rollout-${process.pid}-${Date.now()}.err`);
  try {
    const child = runtime.spawn(["sh", "-c", command], { stderrPath: errPath });
    const code = await child.exited;
    if (code === 0) return null;
    let said = "";
    try {
      said = readFileSync(errPath, "utf8").trim().split("\n").at(-1) ?? "";
    } catch {
      said = "";
    }
    return `${quote(command)} exited ${code}${said === "" ? "" : `: ${said.slice(0, 200)}`}`;
  } catch (error) {
    return `${quote(command)} could not be run: ${errorText(error)}`;
  } finally {
    rmSync(errPath, { force: true });
  }
}
