import { readdirSync, readFileSync } from "node:fs";
import { Colony, runGenerator } from "../colony.ts";
import type { LoadResult } from "../loadgen.ts";
function threads(pid: number): Map<string, { name: string; user: number; sys: number }> {
  const out = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(tid, { name, user: Number(f[11]) * 10, sys: Number(f[12]) * 10 });
    } catch {}
  }
  return out;
}
const colony = await Colony.start({});
try {
  const admin = await colony.client("admin");
  await admin.create("bench-0");
  await admin.transact("bench-0", { reads: [], conditions: [], writes: [{ key: "warm", op: "put", value: true }] });
  await admin.end();
  const leader = await colony.leaderOf("bench-0");
  const follower = (leader + 1) % 7;
  const warm = Number(process.env.WARM ?? 0);
  if (warm > 0) {
    const w = await runGenerator<LoadResult>("bench/loadgen.ts", { system: "physalia", topology: colony.topologyPath, keys: colony.controlKeysPath, cells: ["bench-0"], clients: Number(process.env.C ?? 1), seconds: warm, name: "w" });
    console.log("warm-up puts/s", w.perSecond, "p50", w.latencyMs.p50);
  }
  const idleA = [threads(colony.pid(leader)), threads(colony.pid(follower))];
  await Bun.sleep(5000);
  const idleB = [threads(colony.pid(leader)), threads(colony.pid(follower))];
  const load = await runGenerator<LoadResult>("bench/loadgen.ts", { system: "physalia", topology: colony.topologyPath, keys: colony.controlKeysPath, cells: ["bench-0"], clients: Number(process.env.C ?? 1), seconds: 8, name: "p" });
  const after = [threads(colony.pid(leader)), threads(colony.pid(follower))];
  const diff = (a: Map<string, any>, b: Map<string, any>, secs: number) => {
    const rows: Record<string, string> = {};
    for (const [tid, t] of b) { const o = a.get(tid) ?? { user: 0, sys: 0 }; const u = t.user - o.user, s = t.sys - o.sys; if (u + s > 0) rows[`${t.name}#${tid}`] = `user ${(u / secs).toFixed(0)} sys ${(s / secs).toFixed(0)} ms/s`; }
    return rows;
  };
  console.log("puts/s", load.perSecond, "p50", load.latencyMs.p50);
  console.log("leader idle", diff(idleA[0]!, idleB[0]!, 5), "\nleader load", diff(idleB[0]!, after[0]!, 8));
  console.log("follower idle", diff(idleA[1]!, idleB[1]!, 5), "\nfollower load", diff(idleB[1]!, after[1]!, 8));
} finally {
  await colony.stop();
}
