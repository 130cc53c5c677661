// `npm run bench:warmup`: what a fresh node pays while the runtime compiles its hot paths. A
// 7-node colony, one cell, one closed-loop client: CPU per thread (from /proc/<pid>/task) of
// the cell's leader and of one follower, while idle, during load right after the colony
// starts, and during the same load after WARM_SECONDS (default 30) of it. The main thread is
// the node; JITWorker threads compile; Bun Pool threads run the fsyncs. bench:etcd warms every
// system up before measuring because of what this shows. Writes bench/results/warmup.json.

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Colony, round, runGenerator, threadCpuMs } from "./colony.ts";
import type { LoadResult } from "./loadgen.ts";

const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const warmSeconds = Number(process.env.WARM_SECONDS ?? 30);

/** Per thread name, ms of CPU a second between two readings. */
function rates(before: Map<string, number>, after: Map<string, number>, overSeconds: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, ms] of after) {
    const used = ms - (before.get(name) ?? 0);
    if (used > 0) out[name] = round(used / overSeconds, 0);
  }
  return out;
}

async function main(): Promise<void> {
  const colony = await Colony.start({});
  try {
    const admin = await colony.client("admin");
    await admin.create("bench-0");
    await admin.transact("bench-0", { reads: [], conditions: [], writes: [{ key: "warm", op: "put", value: true }] });
    await admin.end();
    const leader = await colony.leaderOf("bench-0");
    const roles = { leader, follower: (leader + 1) % colony.nodes };
    const read = () => Object.fromEntries(Object.entries(roles).map(([role, i]) => [role, threadCpuMs(colony.pid(i))])) as Record<keyof typeof roles, Map<string, number>>;
    const load = (tag: string, s: number) => runGenerator<LoadResult>("bench/loadgen.ts", { system: "physalia", topology: colony.topologyPath, keys: colony.controlKeysPath, cells: ["bench-0"], clients: 1, seconds: s, name: tag });
    const phase = async (name: string, run: () => Promise<LoadResult | null>, overSeconds: number) => {
      const before = read();
      const result = await run();
      const after = read();
      const entry = {
        phase: name,
        ...(result === null ? {} : { putsPerSecond: result.perSecond, p50Ms: result.latencyMs.p50 }),
        leaderCpuMsPerSecond: rates(before.leader, after.leader, result?.seconds ?? overSeconds),
        followerCpuMsPerSecond: rates(before.follower, after.follower, result?.seconds ?? overSeconds),
      };
      console.log(JSON.stringify(entry));
      return entry;
    };
    const phases = [
      await phase("idle", async () => {
        await Bun.sleep(5_000);
        return null;
      }, 5),
      await phase("fresh", () => load("fresh", seconds), seconds),
    ];
    await load("warm-up", warmSeconds);
    phases.push(await phase(`after ${warmSeconds} s of load`, () => load("warm", seconds), seconds));
    const out = join(import.meta.dir, "results", "warmup.json");
    await mkdir(join(import.meta.dir, "results"), { recursive: true });
    await writeFile(out, `${JSON.stringify({ when: new Date().toISOString(), bench: "per-thread CPU of a fresh node and of the same node after a warm-up, one client on one cell of 7", runtime: `bun ${Bun.version}`, secondsPerPhase: seconds, warmSeconds, phases }, null, 1)}\n`);
    console.log(`wrote ${out}`);
  } finally {
    await colony.stop();
  }
}

await main();
