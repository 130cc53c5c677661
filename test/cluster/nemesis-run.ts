// The nemesis for real node processes: while workers run transactions through their proxies,
// it pauses nodes (SIGSTOP/SIGCONT: the leader, a follower, or both), crashes and restarts
// them (SIGKILL, then the same data directory), partitions them (iptables rules on their UDP
// ports: one node cut off, the leader's side of a 3/4 split, or the leader heard but not
// heard from), drops a client's replies or its requests to the leader for a while, and
// re-sends datagrams it recorded earlier, byte for byte: requests to the nodes and replies
// to the clients, and to a node just restarted (whose replay guard forgot everything) the
// requests it received before the crash. Then it heals everything, lets the workers finish,
// reads every counter, and checks every cell's history for linearizability.
//
// The draws come from a seed and every step is printed, so a failing seed names its faults
// in order; but the run is real processes, whose timing (and so which node leads when a
// fault picks "the leader") no seed fixes: a seed replays the draws, not the run.

import { checkHistory } from "../../src/check/linearizable.ts";
import { HistoryRecorder } from "../../src/check/recorder.ts";
import type { Verdict } from "../../src/check/verdict.ts";
import type { PhysaliaClient } from "../../src/client/client.ts";
import { Rng } from "../../src/random.ts";
import { type Firewall, split } from "./nemesis-firewall.ts";
import { ClientProxy, type Datagram } from "./nemesis-proxy.ts";
import { RecordedClient, Worker, type WorkerCounts, totalCounts } from "./nemesis-workload.ts";
import type { ProcessColony } from "./support.ts";

export type FaultKind = "pause" | "crash" | "partition" | "lostReplies" | "lostRequests" | "replay";

export const allFaults: readonly FaultKind[] = ["pause", "crash", "partition", "lostReplies", "lostRequests", "replay"];

export interface NemesisOptions {
  readonly seed: number;
  /** How long faults are injected, in milliseconds. */
  readonly faultMs: number;
  readonly cells?: number;
  readonly clientsPerCell?: number;
  /**
   * Lanes per client at most (default 1): a client with several runs that many loops at
   * once, so its commands overlap in its one session.
   */
  readonly lanesMax?: number;
  readonly faults?: readonly FaultKind[];
  /** Partitions need it; without one they are left out. */
  readonly firewall: Firewall | null;
  /** Each line of the schedule as it happens (default: kept in the report only). */
  readonly log?: (line: string) => void;
}

export interface NemesisReport {
  readonly seed: number;
  readonly counts: WorkerCounts;
  /** Faults started, by kind and variant ("pause:leader", "partition:split", ...). */
  readonly faults: Readonly<Record<string, number>>;
  /** Datagrams the proxies sent again, byte for byte, and how many of them went to a node just restarted. */
  readonly resent: number;
  readonly resentAfterRestart: number;
  /** Frames the nodes dropped as replayed, summed over the nodes at the end (a restart zeroes a node's count). */
  readonly replayedDrops: number;
  readonly historyOperations: number;
  readonly checkMs: number;
  readonly verdicts: readonly Verdict[];
  /** Everything that went wrong; empty when the run passed. */
  readonly problems: readonly string[];
  readonly schedule: readonly string[];
}

interface Active {
  readonly name: string;
  readonly nodes: readonly string[];
  /** When the nemesis lifts it (performance.now()). */
  readonly until: number;
  readonly heal: () => Promise<void>;
}

/** How long each kind of fault lasts, at least and at most, in milliseconds. Lost replies outlast the longest client deadline now and then. */
const durationsMs: Readonly<Record<FaultKind, readonly [number, number]>> = {
  pause: [300, 4_000],
  crash: [300, 4_000],
  partition: [500, 5_000],
  lostReplies: [300, 8_000],
  lostRequests: [300, 5_000],
  replay: [0, 0],
};

/** At most this many nodes are paused, crashed or cut off at once: the other four of seven are a quorum. */
const affectedMax = 3;

export async function runNemesis(colony: ProcessColony, options: NemesisOptions): Promise<NemesisReport> {
  const rng = new Rng(options.seed);
  const cellCount = options.cells ?? 2;
  const perCell = options.clientsPerCell ?? 3;
  const kinds = (options.faults ?? allFaults).filter((k) => k !== "partition" || options.firewall !== null);
  const schedule: string[] = [];
  const problems: string[] = [];
  const faults: Record<string, number> = {};
  const began = performance.now();
  const note = (line: string) => {
    const stamped = `+${((performance.now() - began) / 1000).toFixed(2)}s ${line}`;
    schedule.push(stamped);
    options.log?.(stamped);
  };
  note(`seed ${options.seed}: ${cellCount} cells, ${perCell} clients each (up to ${options.lanesMax ?? 1} lanes), faults ${kinds.join(",")} for ${options.faultMs} ms`);

  const recorder = new HistoryRecorder();
  const cells = Array.from({ length: cellCount }, (_, i) => `nem-${options.seed}-${i}`);
  const admin = await colony.client(`admin-${options.seed}`, "control.json");
  for (const cell of cells) await admin.create(cell);
  admin.close();

  const workers: Worker[] = [];
  const proxies: ClientProxy[] = [];
  const clients: PhysaliaClient[] = [];
  for (const [c, cell] of cells.entries()) {
    for (let j = 0; j < perCell; j++) {
      const proxy = await ClientProxy.open(colony.endpoints);
      proxies.push(proxy);
      // Deadlines from 1 to 6 s: short ones give up during faults and leave unknown outcomes.
      const id = `w${c}-${j}`;
      const client = await colony.client(id, "client.json", { nodes: proxy.endpoints, deadlineMs: 1_000 + rng.nextInt(5_000) });
      clients.push(client);
      // With lanes, one client in two overlaps its commands in one session.
      const recorded = new RecordedClient(id, client, recorder);
      const lanesMax = options.lanesMax ?? 1;
      const lanes = lanesMax === 1 || rng.chance(0.5) ? 1 : 2 + rng.nextInt(lanesMax - 1);
      for (let lane = 0; lane < lanes; lane++) workers.push(new Worker(recorded, cell, proxy, rng.fork(), lane));
    }
  }

  const paused = new Set<string>();
  const crashed = new Set<string>();
  const active: Active[] = [];
  let resent = 0;
  let resentAfterRestart = 0;
  const affected = () => new Set(active.flatMap((a) => a.nodes));
  const up = () => colony.ids.filter((id) => !paused.has(id) && !crashed.has(id));
  const pickFree = (exclude: ReadonlySet<string>): string | null => {
    const free = colony.ids.filter((id) => !exclude.has(id));
    return free.length === 0 ? null : (free[rng.nextInt(free.length)] as string);
  };
  const leaderOf = async (cell: string) => colony.leaderOf(cell, up());
  const count = (what: string) => (faults[what] = (faults[what] ?? 0) + 1);
  let serial = 0;

  const resendSome = (proxy: ClientProxy, from: readonly Datagram[], howMany: number): number => {
    let sent = 0;
    for (let i = 0; i < howMany && from.length > 0; i++) {
      proxy.resend(from[rng.nextInt(from.length)] as Datagram);
      sent++;
    }
    return sent;
  };

  /** Starts one fault of `kind`, or returns false when none fits now. */
  const start = async (kind: FaultKind): Promise<boolean> => {
    const name = `${kind}#${++serial}`;
    const [shortest, longest] = durationsMs[kind];
    const until = performance.now() + shortest + rng.nextInt(longest - shortest + 1);
    const busy = affected();
    const room = affectedMax - busy.size;
    const cell = cells[rng.nextInt(cells.length)] as string;
    switch (kind) {
      case "pause": {
        const variant = (["leader", "follower", "leader+follower"] as const)[rng.nextInt(3)] as string;
        const leader = await leaderOf(cell);
        const targets: string[] = [];
        if (variant !== "follower" && leader !== null && !busy.has(leader)) targets.push(leader);
        if (variant !== "leader") {
          const follower = pickFree(new Set([...busy, ...targets, ...(leader === null ? [] : [leader])]));
          if (follower !== null) targets.push(follower);
        }
        if (targets.length === 0 || targets.length > room) return false;
        for (const id of targets) {
          colony.signal(id, "SIGSTOP");
          paused.add(id);
        }
        count(`pause:${variant}`);
        note(`start ${name}: SIGSTOP ${targets.join(" ")} (${variant}; ${cell} led by ${leader ?? "nobody"})`);
        active.push({
          name, nodes: targets, until, heal: async () => {
            for (const id of targets) {
              colony.signal(id, "SIGCONT");
              paused.delete(id);
            }
            note(`heal ${name}: SIGCONT ${targets.join(" ")}`);
          },
        });
        return true;
      }
      case "crash": {
        if (room < 1) return false;
        const leader = rng.chance(0.5) ? await leaderOf(cell) : null;
        const target = leader !== null && !busy.has(leader) ? leader : pickFree(busy);
        if (target === null) return false;
        await colony.kill(target);
        crashed.add(target);
        count(leader === target ? "crash:leader" : "crash:node");
        note(`start ${name}: SIGKILL ${target}${leader === target ? ` (leader of ${cell})` : ""}`);
        active.push({
          name, nodes: [target], until, heal: async () => {
            colony.startNode(target);
            await colony.waitUp(target);
            crashed.delete(target);
            // Its replay guard starts empty: what it received before the crash is fresh to it
            // again, and only the cells' sessions stand between those copies and a second apply.
            let sent = 0;
            for (const worker of workers) {
              const before = worker.proxy.recorded((d) => d.direction === "request" && d.node === target);
              for (const datagram of before.slice(-6)) {
                worker.proxy.resend(datagram);
                sent++;
              }
            }
            resent += sent;
            resentAfterRestart += sent;
            note(`heal ${name}: restarted ${target}, re-sent it ${sent} requests recorded before the crash`);
          },
        });
        return true;
      }
      case "partition": {
        const firewall = options.firewall;
        if (firewall === null) return false;
        const variant = (["isolate", "split", "oneway"] as const)[rng.nextInt(3)] as string;
        const leader = await leaderOf(cell);
        let side: string[];
        if (variant === "isolate") {
          const target = rng.chance(0.5) && leader !== null && !busy.has(leader) ? leader : pickFree(busy);
          side = target === null ? [] : [target];
        } else if (variant === "split") {
          side = leader !== null && !busy.has(leader) ? [leader] : [];
          while (side.length < 3) {
            const next = pickFree(new Set([...busy, ...side]));
            if (next === null) break;
            side.push(next);
          }
        } else {
          side = leader !== null && !busy.has(leader) ? [leader] : [];
        }
        if (side.length === 0 || side.length > room) return false;
        const rest = colony.ids.filter((id) => !side.includes(id));
        const ports = (ids: readonly string[]) => ids.map((id) => colony.port(id));
        firewall.cut(name, variant === "oneway" ? ports(side).map((fromPort) => ({ fromPort, toPorts: ports(rest) })) : split(ports(side), ports(rest)));
        count(`partition:${variant}`);
        note(`start ${name}: cut ${side.join(" ")} ${variant === "oneway" ? "->" : "|"} ${rest.join(" ")} (${variant}; ${cell} led by ${leader ?? "nobody"})`);
        active.push({
          name, nodes: side, until, heal: async () => {
            firewall.lift(name);
            note(`heal ${name}: lifted`);
          },
        });
        return true;
      }
      case "lostReplies": {
        const candidates = workers.filter((w) => !w.proxy.dropReplies);
        if (candidates.length === 0) return false;
        const worker = candidates[rng.nextInt(candidates.length)] as Worker;
        worker.proxy.dropReplies = true;
        count("lostReplies");
        note(`start ${name}: drop every reply to ${worker.recorded.id}`);
        active.push({
          name, nodes: [], until, heal: async () => {
            worker.proxy.dropReplies = false;
            note(`heal ${name}: ${worker.recorded.id} hears replies again`);
          },
        });
        return true;
      }
      case "lostRequests": {
        const worker = workers[rng.nextInt(workers.length)] as Worker;
        const leader = await leaderOf(worker.cell);
        if (leader === null || worker.proxy.dropRequestsTo.has(leader)) return false;
        worker.proxy.dropRequestsTo.add(leader);
        count("lostRequests");
        note(`start ${name}: drop ${worker.recorded.id}'s requests to ${leader} (leader of ${worker.cell})`);
        active.push({
          name, nodes: [], until, heal: async () => {
            worker.proxy.dropRequestsTo.delete(leader);
            note(`heal ${name}: ${worker.recorded.id} reaches ${leader} again`);
          },
        });
        return true;
      }
      case "replay": {
        const worker = workers[rng.nextInt(workers.length)] as Worker;
        const requestsOnly = rng.chance(0.5);
        const pool = worker.proxy.recorded((d) => !requestsOnly || d.direction === "request");
        // Old copies and recent ones: a random pick over the record, and the last few.
        const sent = resendSome(worker.proxy, pool, 1 + rng.nextInt(8)) + resendSome(worker.proxy, pool.slice(-4), rng.nextInt(3));
        resent += sent;
        count("replay");
        note(`${name}: re-sent ${sent} of ${worker.recorded.id}'s recorded ${requestsOnly ? "requests" : "datagrams"}`);
        return true;
      }
    }
  };

  const healOne = async (index: number) => {
    const [fault] = active.splice(index, 1);
    await fault?.heal();
  };

  const healAll = async () => {
    while (active.length > 0) await healOne(active.length - 1);
    options.firewall?.heal();
  };

  for (const worker of workers) worker.start();
  let failure: unknown = null;
  try {
    await Bun.sleep(500);
    while (performance.now() - began < options.faultMs) {
      for (let i = active.length - 1; i >= 0; i--) if ((active[i] as Active).until <= performance.now()) await healOne(i);
      if (active.length < 3) await start(kinds[rng.nextInt(kinds.length)] as FaultKind);
      await Bun.sleep(150 + rng.nextInt(1_000));
    }
  } catch (error) {
    failure = error;
  }
  await healAll();
  if (failure !== null) {
    // The nemesis itself failed (a node would not restart, iptables refused a rule): stop
    // the workers so that nothing outlives the colony, and say what happened.
    await Promise.all(workers.map((w) => w.stop()));
    for (const client of clients) client.close();
    for (const proxy of proxies) proxy.close();
    throw failure;
  }
  note("healed everything; the workers go on for 2 s");
  await Bun.sleep(2_000);
  await Promise.all(workers.map((w) => w.stop()));

  // Every cell must answer again once healed; a client whose deadline is short may need several tries.
  for (const worker of workers) {
    let answered = false;
    for (let attempt = 0; attempt < 8 && !answered; attempt++) answered = (await worker.finalCheck()).kind === "result";
    if (!answered) problems.push(`${worker.id} could not read its counter on ${worker.cell} after healing (liveness)`);
  }
  await Promise.all(clients.map((c) => c.end().catch(() => c.close())));
  for (const proxy of proxies) proxy.close();

  let replayedDrops = 0;
  for (const id of colony.ids) replayedDrops += await colony.dropped(id, "replayed").catch(() => 0);

  const checkStarted = performance.now();
  const verdicts = checkHistory(recorder);
  const checkMs = performance.now() - checkStarted;
  for (const verdict of verdicts) {
    if (verdict.ok === false) problems.push(`${verdict.cell} is not linearizable (${verdict.reason}): ${verdict.explanation}`);
    else if (verdict.ok === "unknown") problems.push(`${verdict.cell}: the checker gave up (${verdict.reason}): ${verdict.explanation}`);
  }
  for (const worker of workers) problems.push(...worker.counterProblems);
  for (const recorded of new Set(workers.map((w) => w.recorded))) problems.push(...recorded.anomalies);
  const counts = totalCounts(workers);
  const historyOperations = cells.reduce((sum, cell) => sum + recorder.history(cell).length, 0);
  note(`done: ${counts.operations} operations (${counts.committed} committed, ${counts.unknown} unknown), ${historyOperations} in the histories, checked in ${checkMs.toFixed(0)} ms`);
  return { seed: options.seed, counts, faults, resent, resentAfterRestart, replayedDrops, historyOperations, checkMs, verdicts, problems, schedule };
}
