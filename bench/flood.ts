// The open-loop generator, in a process of its own: `bun bench/flood.ts CONFIG_JSON`. It sends
// puts to one cell's leader at a fixed rate whatever the answers, spread over 64 sessions,
// each request sent once with a 1 s deadline and no retry, so that what the cell refuses or
// cannot do shows as `overloaded` or as a timeout instead of being hidden by a client's
// backoff. It prints one JSON line: what it offered and sent, the outcomes, goodput, the
// latency of the commits, and the CPU it used itself.

import { readFileSync } from "node:fs";
import { readKeys } from "../src/cli/colony.ts";
import type { ClientReply, Envelope } from "../src/core/messages.ts";
import { utf8 } from "../src/core/value.ts";
import { limits } from "../src/limits.ts";
import type { Endpoint } from "../src/transport/transport.ts";
import { openUdp } from "../src/transport/udp.ts";
import { Stamper, freshEpoch } from "../src/wire/freshness.ts";
import { decodeMessages, encodeMessages } from "../src/wire/message.ts";
import { latencySummary, round, sleep } from "./colony.ts";

export interface FloodConfig {
  readonly topology: string;
  readonly keys: string;
  readonly cell: string;
  /** The node (topology id) that leads the cell: requests go to it alone. */
  readonly leader: string;
  readonly perSecond: number;
  readonly seconds: number;
  readonly name: string;
}

export interface FloodResult {
  readonly offeredPerSecond: number;
  readonly sent: number;
  readonly goodputPerSecond: number;
  readonly outcomes: Record<string, number>;
  readonly committedLatencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly generatorCpuMs: number;
  readonly generatorCpuMsPerSecond: number;
}

const lanes = 64;
const deadlineMs = 1_000;

interface Lane {
  session: number;
  nextSeq: number;
  readonly waiting: Set<number>;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? "{}") as FloodConfig;
  const topology = JSON.parse(readFileSync(config.topology, "utf8")) as { nodes: { id: string; address: string }[] };
  const endpointOf = (id: string): Endpoint | undefined => {
    const node = topology.nodes.find((n) => n.id === id);
    if (node === undefined) return undefined;
    const at = node.address.lastIndexOf(":");
    return { host: node.address.slice(0, at), port: Number(node.address.slice(at + 1)) };
  };
  // Where requests go: the leader named, or the one a redirect names while sessions open
  // (leadership may have moved since the bench looked; a flood must not wait on a follower).
  let leader = config.leader;
  let target = endpointOf(leader);
  if (target === undefined) throw new Error(`no node ${config.leader}`);
  const { keys } = await readKeys(config.keys, ["control", "client"]);
  const ring = keys.ring("client") ?? keys.ring("control");
  if (ring === undefined) throw new Error("the flood needs a client or control key");
  const stamper = new Stamper(freshEpoch());
  const self = `${config.name}-${Date.now() % 1_000_000}`;
  const transport = await openUdp({ host: "127.0.0.1", port: 0 });
  const outcomes = new Map<string, number>();
  const count = (kind: string) => outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
  const pending = new Map<number, { readonly sentAt: number; readonly timer: ReturnType<typeof setTimeout>; readonly lane: Lane; readonly seq: number }>();
  const opened = new Map<number, (session: number) => void>();
  const latencies: number[] = [];
  let id = 0;
  transport.onReceive((bytes) => {
    const decoded = decodeMessages(bytes, keys, { receiver: self });
    if (!decoded.ok) return;
    for (const { message } of decoded.messages) {
      if (message.kind !== "reply") continue;
      const reply = message as ClientReply;
      const open = opened.get(reply.id);
      if (open !== undefined) {
        if (reply.outcome.kind === "redirect" && reply.outcome.leader !== null) {
          const named = reply.outcome.leader.split("~")[0] as string;
          const endpoint = endpointOf(named);
          if (endpoint !== undefined) {
            leader = named;
            target = endpoint;
          }
        }
        if (reply.outcome.kind === "done" && reply.outcome.result.status === "session") {
          opened.delete(reply.id);
          open(reply.outcome.result.session);
        }
        continue;
      }
      const entry = pending.get(reply.id);
      if (entry === undefined) continue;
      clearTimeout(entry.timer);
      pending.delete(reply.id);
      entry.lane.waiting.delete(entry.seq);
      const result = reply.outcome.kind === "done" ? reply.outcome.result : null;
      const kind = result === null ? reply.outcome.kind : result.status === "rejected" ? `rejected:${result.reason}` : result.status;
      count(kind);
      if (kind === "committed") latencies.push(performance.now() - entry.sentAt);
    }
  });
  const sendTo = (message: Envelope["message"]) => transport.send(encodeMessages(ring, { sender: self, receiver: leader, stamp: stamper.next(), messages: [{ cell: config.cell, message }] }), target as Endpoint);
  const sessions: Lane[] = await Promise.all(Array.from({ length: lanes }, () => new Promise<Lane>((resolve) => {
    const request = ++id;
    opened.set(request, (session) => resolve({ session, nextSeq: 1, waiting: new Set() }));
    const ask = () => {
      if (!opened.has(request)) return;
      sendTo({ kind: "request", client: self, id: request, session: 0, seq: 0, acked: 0, op: { kind: "openSession", client: self, nonce: request }, consistency: "consistent", minApplied: 0, force: false });
      setTimeout(ask, 200);
    };
    ask();
  })));
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const total = Math.round(config.perSecond * config.seconds);
  let sent = 0;
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / config.perSecond;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const lane = sessions[i % lanes] as Lane;
    // As the client library does: a session's commands stay within a window of
    // `sessionPendingMax` sequence numbers from the lowest one still waiting (one old request
    // waiting for its deadline holds the window back), or the cell answers `tooManyPending`.
    let acked = lane.nextSeq;
    for (const other of lane.waiting) if (other < acked) acked = other;
    if (lane.nextSeq - acked >= limits.sessionPendingMax) {
      count("notSent");
      continue;
    }
    const request = ++id;
    const seq = lane.nextSeq++;
    lane.waiting.add(seq);
    const timer = setTimeout(() => {
      pending.delete(request);
      lane.waiting.delete(seq);
      count("timeout");
    }, deadlineMs);
    pending.set(request, { sentAt: performance.now(), lane, seq, timer });
    sendTo({ kind: "request", client: self, id: request, session: lane.session, seq, acked, op: { kind: "tx", tx: { reads: [], conditions: [], writes: [{ key: `o${seq % 16}`, op: "put", value: utf8(`x${seq}`) }] } }, consistency: "consistent", minApplied: 0, force: false });
    sent++;
  }
  const sendingSeconds = (performance.now() - started) / 1000;
  await sleep(deadlineMs + 100);
  const cpu = process.cpuUsage(cpuBefore);
  // Close the sessions: a cell holds 128, and the next run must find room for its own.
  for (let round = 0; round < 3; round++) {
    for (const lane of sessions) {
      const seq = lane.nextSeq;
      sendTo({ kind: "request", client: self, id: ++id, session: lane.session, seq, acked: seq, op: { kind: "closeSession" }, consistency: "consistent", minApplied: 0, force: false });
    }
    await sleep(100);
  }
  transport.close();
  const generatorCpuMs = (cpu.user + cpu.system) / 1000;
  const result: FloodResult = {
    offeredPerSecond: config.perSecond, sent,
    goodputPerSecond: round((outcomes.get("committed") ?? 0) / Math.max(sendingSeconds, config.seconds), 1),
    outcomes: Object.fromEntries(outcomes),
    committedLatencyMs: latencySummary(latencies),
    generatorCpuMs: round(generatorCpuMs, 0),
    generatorCpuMsPerSecond: round(generatorCpuMs / (sendingSeconds + (deadlineMs + 100) / 1000), 0),
  };
  console.log(JSON.stringify(result));
  process.exit(0);
}

if (import.meta.main) await main();
