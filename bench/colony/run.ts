// One run of the colony evaluation: a fresh world from the seed, its cells placed by the
// topology-aware Placer or at random, one client per cell; the clients write once (which
// elects the cells' leaders and fills the clients' discovery caches), some of them move to
// another row (the control plane follows them), then one correlated failure strikes and
// stays. Every client whose own rack is up then tries to commit one write within a bound:
// once a few seconds into the failure (before any repair, whose grace period is longer),
// and once after the control plane had time to repair. The figure is the fraction that
// committed, from the running replicas; beside it, the fraction the Monte Carlo's rule (a
// majority of the cell's current members up and on the client's side) predicts for the
// same cells at the same moment.

import { buildCluster, type Cluster } from "../../src/control/placement/cluster.ts";
import { Placer } from "../../src/control/placement/placer.ts";
import { placeRandom } from "../../src/control/placement/random.ts";
import type { CellClients } from "../../src/control/placement/types.ts";
import type { Topology } from "../../src/control/topology/types.ts";
import { utf8 } from "../../src/core/value.ts";
import { deriveSeed, Rng } from "../../src/random.ts";
import { nodePart } from "../../src/wire/ids.ts";
import { syntheticWorkload } from "../availability/workload.ts";
import type { ControlStats } from "./control.ts";
import type { ColonyEvent } from "./scenarios.ts";
import { type Caller, ColonyWorld, type WorldStats } from "./world.ts";

export type Placement = "aware" | "random";

export interface RunOptions {
  readonly seed: number;
  readonly topology: Topology;
  readonly cluster?: Cluster;
  readonly cells: number;
  readonly placement: Placement;
  /** The failure, or null for a run without one. */
  readonly event: ColonyEvent | null;
  /** Share of clients that move to another row before the failure (default 0.02). */
  readonly movingFraction?: number;
  readonly graceMs?: number;
  readonly passMs?: number;
  readonly stepsPerPassMax?: number;
  /** How long a probe's write may take, opening a session included (default 3 s). */
  readonly boundMs?: number;
  /** When the failure strikes (default 40 s; moves happen at 10 s). */
  readonly failAtMs?: number;
  /** The first probe, this long after the failure (default 2 s). */
  readonly duringAfterMs?: number;
  /** The second probe, this long after the failure (default grace + 35 s). */
  readonly repairedAfterMs?: number;
}

export interface Probe {
  readonly atMs: number;
  /** Clients whose own rack is up: the ones asked. */
  readonly clients: number;
  readonly committed: number;
  readonly fraction: number;
  /** The share whose cell has a majority of its members up and on their side, as the Monte Carlo counts. */
  readonly predicted: number;
  /** Clients that committed though the rule says they could not, and the reverse. */
  readonly committedAgainstRule: number;
  readonly failedWithinRule: number;
  /** Commit latency of the probe's write, ms. */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface RunResult {
  readonly placement: Placement;
  readonly scenario: string;
  readonly label: string;
  readonly nodes: number;
  readonly cells: number;
  readonly cellsBreakingRules: number;
  readonly nodesDown: number;
  readonly before: Probe;
  readonly during: Probe;
  readonly repaired: Probe;
  readonly moves: { readonly clients: number; readonly cellsInNewRow: number };
  readonly control: ControlStats;
  readonly world: WorldStats;
  readonly simulatedSeconds: number;
  readonly wallSeconds: number;
}

const round = (x: number, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits;

function quantile(sorted: readonly number[], q: number): number {
  return sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);
}

export async function runColony(options: RunOptions): Promise<RunResult> {
  const started = performance.now();
  const cluster = options.cluster ?? buildCluster(options.topology);
  const color = cluster.colorNames[0] as string;
  const graceMs = options.graceMs ?? 10_000;
  const world = new ColonyWorld({
    seed: options.seed, topology: options.topology, cluster,
    control: { color, size: 7, graceMs, passMs: options.passMs ?? 500, stepsPerPassMax: options.stepsPerPassMax ?? 64, followClients: options.placement === "aware" },
  });
  const rng = new Rng(deriveSeed(options.seed, 10));
  const workload = syntheticWorkload(cluster, rng, { cells: options.cells, sameRowFraction: 0.95 });
  const placer = new Placer(cluster);
  const out = new Int32Array(7);
  const placeRng = new Rng(deriveSeed(options.seed, 11));
  const clients: { caller: Caller; cell: string; rack: number }[] = [];
  let breaking = 0;
  for (let i = 0; i < options.cells; i++) {
    const cell = `vol-${i}`;
    const rack = workload.instanceRack[i] as number;
    const row = (r: number) => ({ row: cluster.rowNames[r] as string });
    const where: CellClients = {
      instance: { row: cluster.rowNames[cluster.rackRow[rack] as number] as string, rack: cluster.rackNames[rack] as string },
      primary: row(workload.primaryRow[i] as number),
      replica: row(workload.replicaRow[i] as number),
    };
    if (options.placement === "aware") {
      const level = placer.placeIndexes({ size: 7, color: 0, instanceRow: workload.instanceRow[i] as number, primaryRow: workload.primaryRow[i] as number, replicaRow: workload.replicaRow[i] as number, salt: i }, out, 0);
      if (level !== 0) breaking++;
    } else {
      placeRandom(cluster, { rng: placeRng, size: 7, color: 0, out, offset: 0 });
    }
    world.createCell(cell, (i + 1).toString(16).padStart(16, "0"), [...out], where);
    clients.push({ caller: world.addClient(`c${i}`, rack), cell, rack });
  }
  world.control.start();

  const boundMs = options.boundMs ?? 3_000;
  let writes = 0;
  const write = (client: { caller: Caller; cell: string }, done: (ok: boolean) => void) => {
    const tx = { reads: [], conditions: [], writes: [{ key: "k", op: "put" as const, value: utf8(`w${++writes}`) }] };
    client.caller.call(client.cell, { kind: "tx", tx }, boundMs, (result) => done(result?.status === "committed"));
  };

  // Warm-up: every client writes once, spread over a second.
  await world.runUntil(4_000);
  clients.forEach((client, i) => world.at(4_000 + (i * 1_000) / clients.length, () => write(client, () => {})));

  // Some clients move to a random rack of another row; the attachment tells the control plane.
  await world.runUntil(10_000);
  const moveRng = new Rng(deriveSeed(options.seed, 12));
  const moving = clients.filter(() => moveRng.chance(options.movingFraction ?? 0.02));
  const movedTo = new Map<string, string>();
  for (const client of moving) {
    const row = cluster.rackRow[client.rack] as number;
    let rack = moveRng.nextInt(cluster.rackCount);
    while (cluster.rackRow[rack] === row) rack = moveRng.nextInt(cluster.rackCount);
    client.rack = rack;
    client.caller.rack = rack;
    const where = { row: cluster.rowNames[cluster.rackRow[rack] as number] as string, rack: cluster.rackNames[rack] as string };
    world.control.attach(client.cell, { instance: where, primary: where, replica: where });
    movedTo.set(client.cell, where.row);
  }

  const racksDown = new Set(options.event?.racksDown ?? []);
  const probe = async (atMs: number, failing: boolean): Promise<Probe> => {
    await world.runUntil(atMs);
    const asked = clients.filter((c) => !failing || !racksDown.has(c.rack));
    let committed = 0;
    let predicted = 0;
    let against = 0;
    let within = 0;
    const latencies: number[] = [];
    // A client whose answer has not come when the probe ends failed (its call may report only
    // at its next retry, past the bound); an answer after that is not counted.
    const unanswered = new Map<string, boolean>();
    let open = true;
    for (const client of asked) {
      const expect = world.majorityReachable(client.cell, client.rack);
      if (expect) predicted++;
      unanswered.set(client.cell, expect);
      write(client, (ok) => {
        if (!open) return;
        unanswered.delete(client.cell);
        if (ok) {
          committed++;
          latencies.push(world.now() - atMs);
        }
        if (ok && !expect) against++;
        if (!ok && expect) within++;
      });
    }
    await world.runUntil(atMs + boundMs + 100);
    open = false;
    for (const expect of unanswered.values()) if (expect) within++;
    latencies.sort((a, b) => a - b);
    const n = Math.max(1, asked.length);
    return {
      atMs, clients: asked.length, committed, fraction: round(committed / n, 6), predicted: round(predicted / n, 6),
      committedAgainstRule: against, failedWithinRule: within, p50Ms: round(quantile(latencies, 0.5), 2), p99Ms: round(quantile(latencies, 0.99), 2),
    };
  };

  const failAtMs = options.failAtMs ?? 40_000;
  const before = await probe(failAtMs - boundMs - 1_000, false);
  await world.runUntil(failAtMs);
  const event = options.event;
  if (event !== null) {
    for (const node of event.nodesDown) world.crash(node);
    world.cut(event.rackSide);
  }
  const during = await probe(failAtMs + (options.duringAfterMs ?? 2_000), true);
  const repaired = await probe(failAtMs + (options.repairedAfterMs ?? graceMs + 35_000), true);
  let inNewRow = 0;
  for (const [cell, row] of movedTo) {
    const members = world.control.membersOf(cell);
    if (members.length > 0 && members.every((m) => cluster.rowNames[cluster.nodeRow[cluster.nodeIndex.get(nodePart(m)) as number] as number] === row)) inNewRow++;
  }
  world.control.stop();
  return {
    placement: options.placement, scenario: event?.scenario ?? "none", label: event?.label ?? "", nodes: cluster.nodeCount, cells: options.cells,
    cellsBreakingRules: breaking, nodesDown: event?.nodesDown.length ?? 0, before, during, repaired,
    moves: { clients: moving.length, cellsInNewRow: inNewRow }, control: world.control.stats, world: world.stats,
    simulatedSeconds: round(world.now() / 1000, 1), wallSeconds: round((performance.now() - started) / 1000, 1),
  };
}
