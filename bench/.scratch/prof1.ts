import { Colony, runGenerator } from "../colony.ts";
import type { LoadResult } from "../loadgen.ts";
const dir = "/tmp/profc1";
const colony = await Colony.start({ runtimeFlags: (i) => ["--cpu-prof", `--cpu-prof-dir=${dir}`, `--cpu-prof-name=n${i + 1}.cpuprofile`] });
try {
  const admin = await colony.client("admin");
  await admin.create("bench-0");
  await admin.transact("bench-0", { reads: [], conditions: [], writes: [{ key: "warm", op: "put", value: true }] });
  await admin.end();
  const leader = await colony.leaderOf("bench-0");
  const before = colony.cpu();
  const load = await runGenerator<LoadResult>("bench/loadgen.ts", { system: "physalia", topology: colony.topologyPath, keys: colony.controlKeysPath, cells: ["bench-0"], clients: Number(process.env.C ?? 1), seconds: 8, name: "p" });
  const after = colony.cpu();
  console.log(JSON.stringify({ leader: leader + 1, perSecond: load.perSecond, p50: load.latencyMs.p50, cpuMs: after.map((a, i) => a - before[i]!) }));
} finally {
  await colony.stop();
}
