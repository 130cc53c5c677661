// `npm run bench:etcd`: physalia beside etcd on this machine, in one run. Three systems are up
// at once: a physalia colony of 7 node processes with one cell of 7 replicas, etcd with 3
// members and etcd with 7. For C = 1, 16 and 64 closed-loop clients, each system in turn gets
// the same load generator (bench/loadgen.ts, its own process): one small put per request,
// the next sent when the answer comes. physalia is driven through its client library over
// UDP; etcd through its JSON gateway (POST /v3/kv/put, HTTP/1.1 keep-alive), sent to the
// leader as physalia's clients send to theirs. Both fsync every commit. Writes
// bench/results/versus-etcd.json with each point, the servers' and the generator's CPU, the
// CPU the idle systems used meanwhile, and physalia's ratios to each etcd.
//
// etcd is not installed with npm: `apt-get install -y etcd-server` (Debian's etcd 3.4). The
// bench says so and exits 2 without it. ROUNDS=N repeats the whole sequence, interleaved,
// so that a slow minute of the shared machine falls on every system alike. Every system is
// warmed up first (WARM_SECONDS, default 20, at 16 clients, not counted).

import { mkdir, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { Colony, loadAverage, round } from "./colony.ts";
import { EtcdCluster, etcdVersion } from "./etcd.ts";
import { runGenerator } from "./colony.ts";
import type { LoadConfig, LoadResult } from "./loadgen.ts";

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const rounds = Number(process.env.ROUNDS ?? 1);
// Each system first runs this long at 16 clients, unmeasured: a Bun process compiles its hot
// paths during its first tens of seconds of load (JIT threads at 40 to 70 ms/s, the slot path
// twice as slow as later), which a node serving for days does not pay, and etcd, compiled
// ahead of time, never does.
const warmSeconds = Number(process.env.WARM_SECONDS ?? 20);
const concurrencies = (process.env.CLIENTS ?? "1,16,64").split(",").map(Number);

interface System {
  readonly name: string;
  readonly cpu: () => number[];
  readonly config: (clients: number, tag: string) => LoadConfig;
}

async function main(): Promise<number> {
  const version = etcdVersion();
  if (version === null) {
    console.error("Cannot run the etcd comparison: no etcd on PATH. Install it with: apt-get install -y etcd-server");
    return 2;
  }
  const basePort = 30_000 + Math.floor(Math.random() * 4_000);
  const colony = await Colony.start({});
  const etcd3 = await EtcdCluster.start(3, basePort);
  const etcd7 = await EtcdCluster.start(7, basePort + 300);
  try {
    const admin = await colony.client("admin");
    await admin.create("bench-0");
    await admin.transact("bench-0", { reads: [], conditions: [], writes: [{ key: "warm", op: "put", value: true }] });
    await admin.end();
    const systems: System[] = [
      { name: "physalia-7", cpu: () => colony.cpu(), config: (clients, tag) => ({ system: "physalia", topology: colony.topologyPath, keys: colony.controlKeysPath, cells: ["bench-0"], clients, seconds, name: tag }) },
      { name: "etcd-3", cpu: () => etcd3.cpu(), config: (clients) => ({ system: "etcd", endpoints: [leader3], clients, seconds, name: "etcd" }) },
      { name: "etcd-7", cpu: () => etcd7.cpu(), config: (clients) => ({ system: "etcd", endpoints: [leader7], clients, seconds, name: "etcd" }) },
    ];
    const leader3 = await etcd3.leaderUrl();
    const leader7 = await etcd7.leaderUrl();
    for (const system of systems) {
      if (warmSeconds <= 0) break;
      const warm = await runGenerator<LoadResult>("bench/loadgen.ts", { ...system.config(16, "warm"), seconds: warmSeconds });
      console.log(`${system.name} warm-up: ${warmSeconds} s at 16 clients, ${warm.perSecond}/s (not counted)`);
    }
    const points: Record<string, unknown>[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const clients of concurrencies) {
        for (const system of systems) {
          const before = systems.map((s) => s.cpu().reduce((a, b) => a + b, 0));
          const load = await runGenerator<LoadResult>("bench/loadgen.ts", system.config(clients, `r${r}c${clients}`));
          const after = systems.map((s) => s.cpu().reduce((a, b) => a + b, 0));
          const serverCpuMs = after[systems.indexOf(system)]! - before[systems.indexOf(system)]!;
          const idleOthersCpuMs = systems.reduce((sum, s, i) => (s === system ? sum : sum + after[i]! - before[i]!), 0);
          const point = {
            round: r, system: system.name, ...load,
            serverCpuMsPerSecond: round(serverCpuMs / load.seconds, 0),
            serverCpuUsPerPut: round((1000 * serverCpuMs) / Math.max(1, load.committed), 0),
            idleSystemsCpuMsPerSecond: round(idleOthersCpuMs / load.seconds, 0),
            loadAverage: loadAverage(),
          };
          delete (point as { pid?: number }).pid;
          points.push(point);
          console.log(`${system.name} C=${clients}: ${load.perSecond}/s p50 ${load.latencyMs.p50} ms p99 ${load.latencyMs.p99} ms; server CPU ${point.serverCpuUsPerPut} us/put, generator ${load.generatorCpuUsPerPut} us/put`);
        }
      }
    }
    const median = (xs: number[]) => {
      const sorted = [...xs].sort((a, b) => a - b);
      const middle = sorted.length >> 1;
      return sorted.length === 0 ? 0 : sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
    };
    const pick = (system: string, clients: number, field: (p: LoadResult) => number) => median(points.filter((p) => p.system === system && p.clients === clients).map((p) => field(p as unknown as LoadResult)));
    const ratios = concurrencies.map((clients) => {
      const entry: Record<string, unknown> = { clients };
      for (const other of ["etcd-3", "etcd-7"]) {
        entry[`throughputVs${other === "etcd-3" ? "Etcd3" : "Etcd7"}`] = round(pick("physalia-7", clients, (p) => p.perSecond) / Math.max(1, pick(other, clients, (p) => p.perSecond)), 2);
        entry[`p50Vs${other === "etcd-3" ? "Etcd3" : "Etcd7"}`] = round(pick("physalia-7", clients, (p) => p.latencyMs.p50) / Math.max(0.001, pick(other, clients, (p) => p.latencyMs.p50)), 2);
        entry[`p99Vs${other === "etcd-3" ? "Etcd3" : "Etcd7"}`] = round(pick("physalia-7", clients, (p) => p.latencyMs.p99) / Math.max(0.001, pick(other, clients, (p) => p.latencyMs.p99)), 2);
      }
      return entry;
    });
    const results = {
      when: new Date().toISOString(),
      machine: { cores: cpus().length, model: cpus()[0]?.model ?? "unknown", bun: Bun.version, etcd: version },
      setup: {
        secondsPerPoint: seconds, rounds, warmUpSecondsPerSystem: warmSeconds,
        physalia: "7 node processes, one cell of 7 replicas, client library over UDP, HMAC-signed frames, fdatasync per group commit",
        etcd: "etcd from PATH (Debian etcd-server), default durability and timeouts, puts through the JSON gateway (POST /v3/kv/put, HTTP/1.1 keep-alive) to the leader",
        generator: "bench/loadgen.ts in its own process; C clients in closed loop, one put of ~4 bytes each",
        note: "all three systems run at once on a shared 2-core machine; idleSystemsCpuMsPerSecond is what the two idle ones used during a point",
      },
      ratios,
      points,
    };
    await mkdir(join(import.meta.dir, "results"), { recursive: true });
    await writeFile(join(import.meta.dir, "results/versus-etcd.json"), `${JSON.stringify(results, null, 2)}\n`);
    console.log(JSON.stringify(ratios));
    console.log("wrote bench/results/versus-etcd.json");
    return 0;
  } finally {
    await Promise.all([colony.stop(), etcd3.stop(), etcd7.stop()]);
  }
}

process.exitCode = await main();
