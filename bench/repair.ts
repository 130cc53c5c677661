// `npm run bench:repair`: how long the real control plane (src/control/service.ts, with its
// ProbeView) takes to restore every cell of a dead node. Twenty-four in-process PhysaliaNodes
// (one row of 8 racks x 3, 4 power domains) on the in-memory network of the node tests; every
// cell has the victim and six nodes of six other racks, is registered in the control cell
// under `cell/<name>` and records its client's place, as `ctl create --client` leaves it. The
// cells' geneses are handed to the nodes as recovered records, as bench/colony.ts writes them
// into real logs, so no time goes into creating them. One control pass before the kill learns
// every cell (the registry, a describe and the clients of each). Then the victim stops, and the
// clock runs until every cell has added a replacement (7 live members again) and removed the
// victim, at stepsPerPassMax 8 and 64, passes every 500 ms, grace 2 s.
//
// CELLS=1000,10000 and STEPS=8,64 by default; a configuration that has not finished after
// REPAIR_MAX_S (default 600) seconds is recorded as far as it got, with its rate. Writes
// bench/results/repair.json (REPAIR_OUT elsewhere), keeping the runs of configurations not
// measured this time. REPAIR_TRACE=1 prints each pass's phases and client calls.

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PhysaliaClient } from "../src/client/client.ts";
import { ProbeView } from "../src/control/probe.ts";
import { ControlPlane, clientsKey, controlCellOf } from "../src/control/service.ts";
import { parseTopology } from "../src/control/topology/parse.ts";
import type { Topology } from "../src/control/topology/types.ts";
import type { DurableRecord } from "../src/core/effects.ts";
import { CellState } from "../src/core/cellstate.ts";
import type { ConfigChange } from "../src/core/messages.ts";
import { utf8 } from "../src/core/value.ts";
import { limits } from "../src/limits.ts";
import { MemoryLog } from "../src/node/log.ts";
import { PhysaliaNode } from "../src/node/node.ts";
import type { Endpoint } from "../src/transport/transport.ts";
import { testKeys } from "../test/support/keys.ts";
import { MemoryNetwork } from "../test/support/memnet.ts";
import { latencySummary, round, sleep } from "./colony.ts";

function list(name: string, fallback: string): number[] {
  const raw = process.env[name] ?? fallback;
  const values = raw.split(",").map(Number);
  if (values.some((v) => !Number.isInteger(v) || v < 1 || v > 100_000)) {
    console.error(`${name} must be a comma-separated list of integers from 1 to 100000, not ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return values;
}

const sizes = list("CELLS", "1000,10000");
const stepsList = list("STEPS", "8,64");
const maxSeconds = list("REPAIR_MAX_S", "600")[0] as number;
const graceMs = 2_000;
const passMs = 500;
const keys = testKeys();
const racks = 8;
const perRack = 3;

function topology(): Topology {
  const nodes = [];
  for (let k = 0; k < racks; k++) {
    for (let j = 0; j < perRack; j++) {
      const i = k * perRack + j;
      nodes.push({ id: `n${i}`, address: `127.0.0.1:${7500 + i}`, row: "r1", rack: `r1-k${k}`, power: `p${k % 4}`, color: "blue", capacity: 100_000 });
    }
  }
  const parsed = parseTopology(JSON.stringify({ version: 1, powerDomains: ["p0", "p1", "p2", "p3"], colors: ["blue"], nodes, clients: [{ id: "vm", kind: "instance", row: "r1", rack: "r1-k0" }] }));
  if (parsed instanceof Error) throw parsed;
  return parsed;
}

async function measure(cellCount: number, stepsPerPassMax: number) {
  const net = new MemoryNetwork();
  const topo = topology();
  const ids = topo.nodes.map((n) => n.id);
  const identity = (i: number) => `n${i}~${(i + 1).toString(16).padStart(16, "0")}`;
  const endpoints = new Map<string, Endpoint>(topo.nodes.map((n) => [n.id, { host: "127.0.0.1", port: Number(n.address.split(":")[1]) }]));
  const victim = 0;
  // Each cell: the victim (rack 0) and one node of six of the seven other racks, rotating.
  const cells = Array.from({ length: cellCount }, (_, i) => `vol-${i}`);
  const membersOf = (i: number): number[] => {
    const skip = 1 + (i % 7);
    const others: number[] = [];
    for (let k = 1; k < racks; k++) if (k !== skip) others.push(k * perRack + (Math.floor(i / 7) % perRack));
    return [victim, ...others];
  };
  const recovered = ids.map(() => new Map<string, DurableRecord[]>());
  // Each replica starts from a recovered snapshot at slot 0: the genesis state with the keys
  // the control plane's creation would have written (a cell's clients, the control cell's
  // registry), so the setup spends no time writing them through the cells' logs.
  const where = { row: "r1", rack: "r1-k0" };
  const clientsValue = utf8(JSON.stringify({ instance: where, primary: where, replica: where }));
  const snapshot = (members: number[], incarnation: number, writes: { key: string; value: Uint8Array }[]): DurableRecord => {
    const state = CellState.genesis(members.map(identity), { incarnation: incarnation.toString(16).padStart(16, "0"), alpha: limits.pipelineDepthDefault, sessionTtlMs: limits.sessionTtlMsDefault, sessionsMax: limits.sessionsPerCellMax });
    for (let i = 0; i < writes.length; i += 64) {
      const result = state.kv.apply({ reads: [], conditions: [], writes: writes.slice(i, i + 64).map(({ key, value }) => ({ key, op: "put" as const, value })) });
      if (result.status !== "committed") throw new Error(`writing a recovered snapshot: ${JSON.stringify(result)}`);
    }
    return { kind: "snapshot", slot: 0, state: state.encode() };
  };
  cells.forEach((cell, i) => {
    const members = membersOf(i);
    const record = snapshot(members, i + 1, [{ key: clientsKey, value: clientsValue }]);
    for (const m of members) (recovered[m] as Map<string, DurableRecord[]>).set(cell, [record]);
  });
  // The control cell lives on seven nodes other than the victim, one per other rack, and holds
  // the registry: every cell under `cell/<name>`, created for the client "vm".
  const controlCell = controlCellOf("blue");
  const controlMembers = Array.from({ length: 7 }, (_, k) => (k + 1) * perRack + 1);
  const registered = utf8(JSON.stringify({ client: "vm" }));
  const controlRecord = snapshot(controlMembers, 0xc0, cells.map((cell) => ({ key: `cell/${cell}`, value: registered })));
  for (const m of controlMembers) (recovered[m] as Map<string, DurableRecord[]>).set(controlCell, [controlRecord]);

  const nodes = ids.map((id, i) => {
    const endpoint = endpoints.get(id) as Endpoint;
    const node = new PhysaliaNode({
      id: identity(i), peers: new Map([...endpoints].filter(([other]) => other !== id)), keys: keys.node, log: new MemoryLog(),
      transport: net.open(endpoint.host, endpoint.port), recovered: recovered[i] as Map<string, DurableRecord[]>,
    });
    node.start();
    return node;
  });
  const client = (name: string) => new PhysaliaClient({ id: name, nodes: endpoints, keys: keys.control, transport: net.open(), deadlineMs: 10_000 });
  const admin = client("admin");
  const controlClient = client("control");
  // The clients know each cell's members as the control plane that created them would; this
  // client library finds other cells by rendezvous hash, which placement does not follow.
  cells.forEach((cell, i) => {
    const members = membersOf(i).map(identity);
    admin.learnMembers(cell, members);
    controlClient.learnMembers(cell, members);
  });
  for (const c of [admin, controlClient]) c.learnMembers(controlCell, controlMembers.map(identity));
  const setupStarted = performance.now();
  try {
    // The control plane, instrumented only where it changes members: each change's answer is timed.
    const victimIdentity = identity(victim);
    let killedAt = Number.POSITIVE_INFINITY;
    const added = new Map<string, number>();
    const removed = new Map<string, number>();
    const configure = controlClient.configure.bind(controlClient);
    controlClient.configure = async (cell: string, change: ConfigChange) => {
      const result = await configure(cell, change);
      if (result.status === "configured" && performance.now() > killedAt) {
        if (change.kind === "addMember") added.set(cell, (performance.now() - killedAt) / 1000);
        else if (change.node === victimIdentity) removed.set(cell, (performance.now() - killedAt) / 1000);
      }
      return result;
    };
    // Where the time goes: every client call the control plane makes, timed by kind (a call's
    // time includes the waits inside it), and the pass's own phases. REPAIR_TRACE=1 prints them per pass.
    const calls = new Map<string, { count: number; totalMs: number; maxMs: number }>();
    const timeCalls = (name: string, method: "join" | "describe" | "hello" | "lease" | "transact") => {
      const original = (controlClient[method] as (...args: unknown[]) => Promise<unknown>).bind(controlClient);
      (controlClient as unknown as Record<string, unknown>)[method] = async (...args: unknown[]) => {
        const started = performance.now();
        try {
          return await original(...args);
        } finally {
          const kind = method === "transact" ? ((args[2] as { consistency?: string } | undefined)?.consistency === "eventual" ? "clientsRead" : "transact") : name;
          const entry = calls.get(kind) ?? { count: 0, totalMs: 0, maxMs: 0 };
          const ms = performance.now() - started;
          entry.count++;
          entry.totalMs += ms;
          entry.maxMs = Math.max(entry.maxMs, ms);
          calls.set(kind, entry);
        }
      };
    };
    for (const method of ["join", "describe", "hello", "lease", "transact"] as const) timeCalls(method, method);
    const configureTimed = controlClient.configure.bind(controlClient);
    controlClient.configure = async (cell: string, change: ConfigChange) => {
      const started = performance.now();
      try {
        return await configureTimed(cell, change);
      } finally {
        const entry = calls.get("configure") ?? { count: 0, totalMs: 0, maxMs: 0 };
        const ms = performance.now() - started;
        entry.count++;
        entry.totalMs += ms;
        entry.maxMs = Math.max(entry.maxMs, ms);
        calls.set("configure", entry);
      }
    };
    const summarize = () => Object.fromEntries([...calls].map(([kind, c]) => [kind, { count: c.count, meanMs: round(c.totalMs / Math.max(1, c.count), 1), maxMs: round(c.maxMs, 0) }]));
    const view = new ProbeView({ client: controlClient, nodes: ids, controlCell });
    const plane = new ControlPlane({ id: "control-a", topology: topo, color: "blue", client: controlClient, view, graceMs, passMs, stepsPerPassMax, log: (line) => { if (!/: (added|removed) /.test(line) || process.env.REPAIR_LOG) console.log(`  ${line}`); } });
    const first = await plane.pass();
    if (first.role !== "active") throw new Error("the control plane did not take its lease");
    // Let the probe describe every cell once (new cells are described on their first pass).
    await plane.pass();
    const setupSeconds = (performance.now() - setupStarted) / 1000;
    console.log(`${cellCount} cells, ${stepsPerPassMax} steps per pass: set up in ${round(setupSeconds, 1)} s ; killing n${victim}`);

    // What the colony costs the one thread with no control plane running: the nodes' own
    // heartbeats and gossip of every cell's directory, the floor under what a repair can use.
    const idleCpuBefore = process.cpuUsage();
    const idleStarted = performance.now();
    await sleep(5_000);
    const idleCpu = process.cpuUsage(idleCpuBefore);
    const idleCpuSecondsPerSecond = round((idleCpu.user + idleCpu.system) / 1e3 / (performance.now() - idleStarted), 2);
    await (nodes[victim] as PhysaliaNode).stop();
    calls.clear();
    const phases = { readMs: 0, clientsMs: 0, leaseMs: 0, planMs: 0, changeMs: 0, passMs: 0 };
    const cpuBefore = process.cpuUsage();
    killedAt = performance.now();
    let passes = 0;
    let stepsTaken = 0;
    const deadline = killedAt + maxSeconds * 1000;
    let lastReport = killedAt;
    while (removed.size < cellCount && performance.now() < deadline) {
      const started = performance.now();
      const report = await plane.pass().catch(() => null);
      passes++;
      stepsTaken += report?.steps.length ?? 0;
      phases.passMs += performance.now() - started;
      if (report?.timings !== undefined) for (const key of ["readMs", "clientsMs", "leaseMs", "planMs", "changeMs"] as const) phases[key] += report.timings[key];
      if (process.env.REPAIR_TRACE) {
        const t = report?.timings;
        console.log(`  pass ${passes}: ${Math.round(performance.now() - started)} ms, ${report?.steps.length ?? 0} steps${t === undefined ? "" : ` (read ${Math.round(t.readMs)}, clients ${Math.round(t.clientsMs)}, lease ${Math.round(t.leaseMs)}, plan ${Math.round(t.planMs)}, change ${Math.round(t.changeMs)})`} ${JSON.stringify(summarize())}`);
        calls.clear();
      }
      if (performance.now() - lastReport > 15_000) {
        lastReport = performance.now();
        console.log(`  ${round((lastReport - killedAt) / 1000, 0)} s: ${added.size} cells with 7 live members, ${removed.size} without n${victim}`);
      }
      const wait = passMs - (performance.now() - started);
      if (wait > 0) await sleep(wait);
    }
    const seconds = (performance.now() - killedAt) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    // Changes still under way (a run stopped at REPAIR_MAX_S) finish before the nodes stop.
    await plane.settled();
    const done = removed.size === cellCount;
    const afterGrace = Math.max(0, seconds - graceMs / 1000);
    const result = {
      cells: cellCount, stepsPerPassMax, passMs, graceMs, setupSeconds: round(setupSeconds, 1), finished: done,
      secondsToFullRepair: done ? round(seconds, 1) : null,
      secondsRun: round(seconds, 1),
      cellsWithSevenLiveMembers: added.size, cellsWithoutVictim: removed.size, passes, stepsTaken,
      membershipChangesPerSecondAfterGrace: afterGrace > 0 ? round((added.size + removed.size) / afterGrace, 1) : null,
      perCellSecondsToSevenLive: latencySummary([...added.values()]),
      perCellSecondsToVictimRemoved: latencySummary([...removed.values()]),
      stepsPerPassCeilingPerSecond: round((stepsPerPassMax * 1000) / passMs, 1),
      // The one thread's busy share during the repair: near 1, the nodes' and the control plane's CPU bound it.
      cpuSecondsPerSecond: round((cpu.user + cpu.system) / 1e6 / seconds, 2),
      idleCpuSecondsPerSecond,
      meanPassMs: round(phases.passMs / Math.max(1, passes), 0),
      meanPassPhasesMs: Object.fromEntries(Object.entries(phases).filter(([k]) => k !== "passMs").map(([k, v]) => [k, round(v / Math.max(1, passes), 0)])),
      ...(process.env.REPAIR_TRACE ? {} : { clientCalls: summarize() }),
    };
    console.log(`  ${done ? `every cell repaired in ${result.secondsToFullRepair} s` : `stopped after ${result.secondsRun} s: ${removed.size} of ${cellCount} cells repaired`}; ${result.membershipChangesPerSecondAfterGrace} changes/s after the grace period`);
    return result;
  } finally {
    admin.close();
    controlClient.close();
    for (const [i, node] of nodes.entries()) if (i !== victim) await node.stop();
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  const out = join(import.meta.dir, "results");
  const file = process.env.REPAIR_OUT ?? join(out, "repair.json");
  await mkdir(out, { recursive: true });
  // Runs of other configurations already in the file are kept (one configuration per
  // invocation is how the long ones are run); a configuration measured again replaces its run.
  let kept: { cells: number; stepsPerPassMax: number }[] = [];
  try {
    const previous = JSON.parse(await readFile(file, "utf8")) as { runs?: unknown };
    if (Array.isArray(previous.runs)) kept = previous.runs.filter((r): r is { cells: number; stepsPerPassMax: number } => typeof r?.cells === "number" && typeof r?.stepsPerPassMax === "number");
  } catch {
    // No file yet, or not one of ours: start a new one.
  }
  for (const cells of sizes) {
    for (const steps of stepsList) {
      const run = await measure(cells, steps);
      kept = [...kept.filter((r) => r.cells !== cells || r.stepsPerPassMax !== steps), run].sort((a, b) => a.cells - b.cells || a.stepsPerPassMax - b.stepsPerPassMax);
      // Written after every configuration, so a long run that is stopped keeps what it measured.
      const document = {
        bench: "repair of every cell of a dead node by the real control plane (ControlPlane + ProbeView) over 24 in-process nodes",
        runtime: `bun ${Bun.version}`, wallSecondsOfLastInvocation: round((performance.now() - started) / 1000, 1), repairMaxSeconds: maxSeconds,
        colony: { nodes: racks * perRack, racks, nodesPerRack: perRack, powerDomains: 4, cellSize: 7, network: "in-memory datagrams (test/support/memnet.ts), one process" },
        runs: kept,
        note: "24 nodes, the control plane and its client share one JavaScript thread: cpuSecondsPerSecond is that thread's busy share during the repair, idleCpuSecondsPerSecond the colony's alone, with no control plane; run each configuration on its own, at nice 5 on a shared machine",
      };
      await writeFile(file, `${JSON.stringify(document, null, 2)}\n`);
    }
  }
  console.log(`wrote ${file}`);
}

await main();
