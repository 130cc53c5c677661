// `npm run bench`: a local colony of seven node processes on loopback, measured from one
// client process. Closed loop (1, 16 and 64 concurrent clients, each waiting for its reply
// before sending the next write), first on one cell, then spread over many cells; then an
// open loop at twice the measured peak, with no retries, to see goodput and rejects.
// Writes bench/results/cluster.json. Everything runs on this machine: the nodes, their
// fsyncs and the load generator share its cores, so the figures are a floor, not a ceiling.
//
// TRANSPORT=datachannel puts every node on WebRTC data channels (bench/results/cluster-datachannel.json);
// NODES_ON=binary|deno runs the nodes as dist/physalia or under Deno instead of Bun from sources
// (bench/results/cluster-<binary|deno>.json). POINTS=quick measures only 1 and 64 clients on one cell.

import { limits } from "../src/limits.ts";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { PhysaliaClient } from "../src/client/client.ts";
import { readKeys } from "../src/cli/colony.ts";
import { writeKeyDirectory } from "../src/cli/keys.ts";
import type { ClientReply, Envelope } from "../src/core/messages.ts";
import { utf8 } from "../src/core/value.ts";
import { openLinks } from "../src/transport/mixed.ts";
import { signalKeysOf as signalKeys } from "../src/transport/signal.ts";
import type { Endpoint } from "../src/transport/transport.ts";
import { Stamper, freshEpoch } from "../src/wire/freshness.ts";
import type { KeySet } from "../src/wire/keyring.ts";
import { decodeMessages, encodeMessages } from "../src/wire/message.ts";

const nodes = 7;
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const basePort = 21_000 + Math.floor(Math.random() * 5_000);
const linkKind: "udp" | "datachannel" = process.env.TRANSPORT === "datachannel" ? "datachannel" : "udp";
const nodesOn = process.env.NODES_ON === "binary" || process.env.NODES_ON === "deno" ? process.env.NODES_ON : "bun";
const quick = process.env.POINTS === "quick";
const resultName = `${linkKind === "datachannel" ? "cluster-datachannel" : nodesOn === "bun" ? "cluster" : `cluster-${nodesOn}`}${quick ? "-quick" : ""}`;
const root = join(import.meta.dir, "..");
const nodeCommand = nodesOn === "binary" ? [join(root, "dist/physalia")] : nodesOn === "deno" ? [join(root, "node_modules/.bin/deno"), "run", "-A", "--unstable-net", join(root, "src/cli/main.ts")] : [process.execPath, join(root, "src/cli/main.ts")];

interface LoadResult {
  readonly clients: number;
  readonly cells: number;
  readonly committed: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly errors: number;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

const round = (x: number, digits = 2) => Math.round(x * 10 ** digits) / 10 ** digits;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "physalia-bench-"));
  const endpoints = new Map<string, Endpoint>();
  const topology = {
    version: 1,
    name: "bench",
    powerDomains: ["p1", "p2", "p3"],
    colors: ["blue"],
    nodes: Array.from({ length: nodes }, (_, i) => {
      endpoints.set(`n${i + 1}`, { host: "127.0.0.1", port: basePort + i });
      return { id: `n${i + 1}`, address: `127.0.0.1:${basePort + i}`, row: "r1", rack: `k${i % 3}`, power: `p${(i % 3) + 1}`, color: "blue", capacity: 1_000_000, transport: linkKind };
    }),
  };
  await writeFile(join(dir, "topology.json"), JSON.stringify(topology));
  await writeKeyDirectory(join(dir, "keys"), ["blue"]);
  const { keys } = await readKeys(join(dir, "keys/control.json"), ["control"]);
  const children = topology.nodes.map((node, i) =>
    Bun.spawn([...nodeCommand, "node", "--topology", join(dir, "topology.json"), "--id", node.id, "--data", join(dir, node.id), "--keys", join(dir, "keys/node-blue.json"), "--metrics", `127.0.0.1:${basePort + 1000 + i}`], { stdout: "ignore", stderr: "inherit" }),
  );
  try {
    for (let i = 0; i < nodes; i++) {
      for (let tries = 0; ; tries++) {
        const ok = await fetch(`http://127.0.0.1:${basePort + 1000 + i}/status`).then((r) => r.ok).catch(() => false);
        if (ok) break;
        if (tries > 300) throw new Error("a node did not start");
        await Bun.sleep(50);
      }
    }
    const remotes = [...endpoints.values()].map((address) => ({ address, transport: linkKind }));
    const client = async (id: string) => new PhysaliaClient({ id, nodes: endpoints, keys, transport: await openLinks({ self: null, remotes, keyring: signalKeys(keys, "control"), clientUdp: { host: "127.0.0.1", port: 0 } }), deadlineMs: 30_000 });
    const admin = await client("admin");
    const manyCells = 32;
    const cells = Array.from({ length: manyCells }, (_, i) => `bench-${i}`);
    for (const cell of cells) {
      await admin.create(cell);
      await admin.transact(cell, { reads: [], conditions: [], writes: [{ key: "warm", op: "put", value: true }] });
    }
    admin.close();

    const closedLoop = async (concurrency: number, cellCount: number): Promise<LoadResult> => {
      const workers = await Promise.all(Array.from({ length: concurrency }, (_, i) => client(`c${concurrency}-${cellCount}-${i}`)));
      // Warm up: learn each cell's leader.
      await Promise.all(workers.map((w, i) => w.transact(cells[i % cellCount] as string, { reads: ["warm"], conditions: [], writes: [] })));
      const latencies: number[] = [];
      let errors = 0;
      const started = performance.now();
      const end = started + seconds * 1000;
      await Promise.all(workers.map(async (worker, i) => {
        const cell = cells[i % cellCount] as string;
        let n = 0;
        while (performance.now() < end) {
          const t0 = performance.now();
          try {
            const result = await worker.transact(cell, { reads: [], conditions: [], writes: [{ key: `k${i}`, op: "put", value: utf8(`v${n++}`) }] });
            if (result.status === "committed") latencies.push(performance.now() - t0);
            else errors++;
          } catch {
            errors++;
          }
        }
      }));
      const elapsed = (performance.now() - started) / 1000;
      for (const worker of workers) worker.close();
      latencies.sort((a, b) => a - b);
      return {
        clients: concurrency, cells: cellCount, committed: latencies.length, seconds: round(elapsed), perSecond: round(latencies.length / elapsed, 1),
        latencyMs: { p50: round(quantile(latencies, 0.5)), p99: round(quantile(latencies, 0.99)), max: round(latencies[latencies.length - 1] ?? 0) },
        errors,
      };
    };

    const closed: LoadResult[] = [];
    for (const cellCount of quick ? [1] : [1, manyCells]) {
      for (const concurrency of quick ? [1, 64] : [1, 16, 64]) {
        const result = await closedLoop(concurrency, cellCount);
        closed.push(result);
        console.log(`closed loop: ${concurrency} clients on ${cellCount} cell(s): ${result.perSecond} tx/s, p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms`);
      }
    }

    // Open loop on one cell at twice (and eight times) the peak: one-shot requests, no
    // retries, 1 s deadline each, so what the cell refuses shows as rejects.
    const peak = Math.max(...closed.filter((r) => r.cells === 1).map((r) => r.perSecond));
    const cell = cells[0] as string;
    const leader = await findLeader(cell, basePort);
    const openLoops = [];
    for (const multiple of quick ? [] : [2, 8]) {
      const result = await openLoop(cell, leader, Math.max(10, Math.round(multiple * peak)), keys, endpoints, remotes);
      openLoops.push({ multipleOfPeak: multiple, ...result });
      console.log(`open loop at ${result.offeredPerSecond}/s (${multiple}x peak): goodput ${result.goodputPerSecond}/s, outcomes ${JSON.stringify(result.outcomes)}`);
    }

    const results = {
      when: new Date().toISOString(),
      machine: { cores: cpus().length, model: cpus()[0]?.model ?? "unknown", bun: Bun.version },
      setup: { nodes, transport: linkKind, nodesOn, secondsPerPoint: seconds, transaction: "one put of ~4 bytes per transaction", note: "nodes, fsyncs and load generator share this machine" },
      closedLoop: closed,
      openLoop: openLoops,
    };
    await mkdir(join(import.meta.dir, "results"), { recursive: true });
    await writeFile(join(import.meta.dir, `results/${resultName}.json`), `${JSON.stringify(results, null, 2)}\n`);
    console.log(`wrote bench/results/${resultName}.json`);
  } finally {
    for (const child of children) child.kill("SIGTERM");
    await Promise.all(children.map((c) => c.exited));
    await rm(dir, { recursive: true, force: true });
  }
}

/** Sessions an open-loop generator spreads its load over. */
const laneCount = 64;

async function openLoop(cell: string, leader: string, rate: number, keys: KeySet, endpoints: ReadonlyMap<string, Endpoint>, remotes: Parameters<typeof openLinks>[0]["remotes"]) {
  const ring = keys.ring("control");
  if (ring === undefined) throw new Error("the open loop needs the control key");
  const stamper = new Stamper(freshEpoch());
  // A client id per run: the cell's session table would take reused sequence numbers for retries.
  const self = `openloop-${rate}`;
  const transport = await openLinks({ self: null, remotes, keyring: signalKeys(keys, "control"), clientUdp: { host: "127.0.0.1", port: 0 } });
  const outcomes = new Map<string, number>();
  const pending = new Map<number, { sentAt: number; timer: ReturnType<typeof setTimeout>; lane: Lane; seq: number }>();
  const goodLatencies: number[] = [];
  const opened = new Map<number, (session: number) => void>();
  let id = 0;
  transport.onReceive((bytes) => {
    const decoded = decodeMessages(bytes, keys, { receiver: self });
    if (!decoded.ok) return;
    for (const { message } of decoded.messages) {
      if (message.kind !== "reply") continue;
      const reply = message as ClientReply;
      const open = opened.get(reply.id);
      if (open !== undefined && reply.outcome.kind === "done" && reply.outcome.result.status === "session") {
        opened.delete(reply.id);
        open(reply.outcome.result.session);
        continue;
      }
      const entry = pending.get(reply.id);
      if (entry === undefined) continue;
      clearTimeout(entry.timer);
      pending.delete(reply.id);
      entry.lane.waiting.delete(entry.seq);
      const kind = reply.outcome.kind === "done" ? (reply.outcome.result.status === "committed" ? "committed" : reply.outcome.result.status) : reply.outcome.kind;
      outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
      if (kind === "committed") goodLatencies.push(performance.now() - entry.sentAt);
    }
  });
  const target = endpoints.get(leader) as Endpoint;
  const sendTo = (message: Envelope["message"]) => transport.send(encodeMessages(ring, { sender: self, receiver: leader, stamp: stamper.next(), messages: [{ cell, message }] }), target);
  // Sessions to spread the load over: each may have up to limits.sessionPendingMax commands in flight.
  interface Lane { session: number; nextSeq: number; readonly waiting: Set<number> }
  const lanes: Lane[] = await Promise.all(Array.from({ length: laneCount }, () => new Promise<Lane>((resolve) => {
    const request = ++id;
    opened.set(request, (session) => resolve({ session, nextSeq: 1, waiting: new Set() }));
    const ask = () => {
      if (!opened.has(request)) return;
      sendTo({ kind: "request", client: self, id: request, session: 0, seq: 0, acked: 0, op: { kind: "openSession", client: self, nonce: request }, consistency: "consistent", minApplied: 0, force: false });
      setTimeout(ask, 200);
    };
    ask();
  })));
  const started = performance.now();
  const total = rate * seconds;
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await Bun.sleep(wait);
    const lane = lanes[i % lanes.length] as Lane;
    if (lane.waiting.size >= limits.sessionPendingMax) {
      outcomes.set("notSent", (outcomes.get("notSent") ?? 0) + 1);
      continue;
    }
    const request = ++id;
    const seq = lane.nextSeq++;
    lane.waiting.add(seq);
    const acked = Math.min(...lane.waiting);
    pending.set(request, { sentAt: performance.now(), lane, seq, timer: setTimeout(() => { pending.delete(request); lane.waiting.delete(seq); outcomes.set("timeout", (outcomes.get("timeout") ?? 0) + 1); }, 1_000) });
    sendTo({ kind: "request", client: self, id: request, session: lane.session, seq, acked, op: { kind: "tx", tx: { reads: [], conditions: [], writes: [{ key: `o${seq % 16}`, op: "put", value: utf8(`x${seq}`) }] } }, consistency: "consistent", minApplied: 0, force: false });
  }
  await Bun.sleep(1_100);
  transport.close();
  const elapsed = (performance.now() - started) / 1000;
  goodLatencies.sort((a, b) => a - b);
  return {
    offeredPerSecond: rate, sent: total, seconds: round(elapsed),
    goodputPerSecond: round((outcomes.get("committed") ?? 0) / seconds, 1),
    outcomes: Object.fromEntries(outcomes),
    committedLatencyMs: { p50: round(quantile(goodLatencies, 0.5)), p99: round(quantile(goodLatencies, 0.99)) },
  };

}

async function findLeader(cell: string, base: number): Promise<string> {
  for (let i = 0; i < nodes; i++) {
    const status = await fetch(`http://127.0.0.1:${base + 1000 + i}/status?cell=${cell}`).then((r) => r.json()).catch(() => null) as { role?: string } | null;
    if (status?.role === "leader") return `n${i + 1}`;
  }
  throw new Error(`no leader for ${cell}`);
}

await main();
