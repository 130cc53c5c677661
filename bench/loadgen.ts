// The closed-loop load generator, in a process of its own so that its CPU is its own and is
// reported: `bun bench/loadgen.ts CONFIG_JSON`. C clients each send one small put, wait for
// its answer, and send the next (with `intervalMs`, not before that long after the last one
// began: a paced client, as a quiet cell's), for a number of seconds, against physalia (the client
// library over UDP) or etcd (its JSON gateway, POST /v3/kv/put over HTTP/1.1 keep-alive).
// It prints one JSON line: commits, rate, latencies, errors and the CPU it used while measuring.

import { readFileSync } from "node:fs";
import { PhysaliaClient } from "../src/client/client.ts";
import { readKeys } from "../src/cli/colony.ts";
import { utf8 } from "../src/core/value.ts";
import type { Endpoint } from "../src/transport/transport.ts";
import { openUdp } from "../src/transport/udp.ts";
import { latencySummary, round } from "./colony.ts";

export type LoadConfig =
  | { readonly system: "physalia"; readonly topology: string; readonly keys: string; readonly cells: readonly string[]; readonly clients: number; readonly seconds: number; readonly name: string; readonly intervalMs?: number }
  | { readonly system: "etcd"; readonly endpoints: readonly string[]; readonly clients: number; readonly seconds: number; readonly name: string; readonly intervalMs?: number };

export interface LoadResult {
  readonly clients: number;
  readonly committed: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly errors: number;
  /** CPU the generator itself used while measuring, in ms, and per committed put in us. */
  readonly generatorCpuMs: number;
  readonly generatorCpuUsPerPut: number;
}

/** One client's operation: a put of a few bytes, resolving to whether it committed. */
type Put = (key: string, value: string) => Promise<boolean>;

async function physaliaWorkers(config: Extract<LoadConfig, { system: "physalia" }>): Promise<{ puts: Put[]; close: () => Promise<void> }> {
  const topology = JSON.parse(readFileSync(config.topology, "utf8")) as { nodes: { id: string; address: string }[] };
  const nodes = new Map<string, Endpoint>(topology.nodes.map((n) => {
    const at = n.address.lastIndexOf(":");
    return [n.id, { host: n.address.slice(0, at), port: Number(n.address.slice(at + 1)) }];
  }));
  const { keys } = await readKeys(config.keys, ["control", "client"]);
  const clients = await Promise.all(Array.from({ length: config.clients }, async (_, i) => {
    const transport = await openUdp({ host: "127.0.0.1", port: 0 });
    return new PhysaliaClient({ id: `${config.name}-${i}`, nodes, keys, transport, deadlineMs: 30_000 });
  }));
  const puts = clients.map((client, i): Put => {
    const cell = config.cells[i % config.cells.length] as string;
    return async (key, value) => (await client.transact(cell, { reads: [], conditions: [], writes: [{ key, op: "put", value: utf8(value) }] })).status === "committed";
  });
  // Learn each cell's leader and open each session before the clock starts.
  await Promise.all(puts.map((put, i) => put(`warm${i}`, "w")));
  return { puts, close: async () => void (await Promise.all(clients.map((c) => c.end()))) };
}

const base64 = (text: string) => Buffer.from(text).toString("base64");

async function etcdWorkers(config: Extract<LoadConfig, { system: "etcd" }>): Promise<{ puts: Put[]; close: () => Promise<void> }> {
  const puts = Array.from({ length: config.clients }, (_, i): Put => {
    const url = `${config.endpoints[i % config.endpoints.length]}/v3/kv/put`;
    return async (key, value) => {
      const response = await fetch(url, { method: "POST", body: JSON.stringify({ key: base64(key), value: base64(value) }), headers: { "content-type": "application/json" } });
      const body = (await response.json()) as { header?: { revision?: string } };
      return response.ok && body.header?.revision !== undefined;
    };
  });
  await Promise.all(puts.map((put, i) => put(`warm${i}`, "w")));
  return { puts, close: async () => {} };
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? "{}") as LoadConfig;
  const { puts, close } = config.system === "physalia" ? await physaliaWorkers(config) : await etcdWorkers(config);
  const latencies: number[] = [];
  let errors = 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const end = started + config.seconds * 1000;
  const intervalMs = config.intervalMs ?? 0;
  await Promise.all(puts.map(async (put, i) => {
    let n = 0;
    // Paced clients start spread over one interval, not all at once.
    if (intervalMs > 0) await new Promise((resolve) => setTimeout(resolve, (intervalMs * i) / puts.length));
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        if (await put(`k${i}`, `v${n++}`)) latencies.push(performance.now() - t0);
        else errors++;
      } catch {
        errors++;
      }
      const next = t0 + intervalMs;
      if (next >= end) break;
      if (next > performance.now()) await new Promise((resolve) => setTimeout(resolve, next - performance.now()));
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  await close();
  const generatorCpuMs = (cpu.user + cpu.system) / 1000;
  const result: LoadResult = {
    clients: config.clients, committed: latencies.length, seconds: round(elapsed), perSecond: round(latencies.length / elapsed, 1),
    latencyMs: latencySummary(latencies), errors,
    generatorCpuMs: round(generatorCpuMs, 0), generatorCpuUsPerPut: round((generatorCpuMs * 1000) / Math.max(1, latencies.length), 1),
  };
  console.log(JSON.stringify(result));
  process.exit(0);
}

if (import.meta.main) await main();
