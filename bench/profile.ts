// `npm run bench:profile`: where a node's time goes at 1 and at 64 closed-loop clients on one
// cell. Runs a 7-node colony with Bun's sampling profiler (`bun --cpu-prof`) in every node,
// drives it from bench/loadgen.ts, and sorts the samples of the leader and of the followers
// into what they were doing (CBOR, the schema, HMAC, frames, the log, fsync, the cell core,
// UDP, the runtime), from the innermost frame outwards: a native frame (a syscall, a
// digest) counts for the project code that called it. Beside the profile it reads each
// node's CPU from /proc and its metrics (syncs, frames, slots), so the per-commit costs can
// be checked against the samples. Writes bench/results/profile.json.
//
// Samples are taken only while JavaScript runs, about one per millisecond of it; time the
// process spends in the kernel or in the runtime's own threads (the fsync itself, the
// thread pool) is in the /proc CPU figures, not in the samples.

import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { Colony, loadAverage, round, runGenerator } from "./colony.ts";
import type { LoadResult } from "./loadgen.ts";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
}

/** What a frame was doing, by its file (and for a few files, its function); null: look further out. */
function categoryOf(frame: ProfileNode["callFrame"], leaf: string): string | null {
  const { url, functionName } = frame;
  if (url.includes("cbor-x/encode")) return "CBOR encode (cbor-x)";
  if (url.includes("cbor-x/decode")) return "CBOR decode (cbor-x)";
  if (url.includes("src/wire/hmac.ts") || url.includes("@noble/hashes")) return "HMAC";
  if (url.includes("src/wire/frame.ts")) return "frame header (build, parse)";
  if (url.includes("src/wire/schema.ts")) return functionName.startsWith("encode") ? "schema: message to CBOR tree" : "schema: CBOR tree to message, checked";
  if (url.includes("src/wire/records.ts")) return "log record encoding";
  if (url.includes("src/wire/")) return "role check, replay guard, ids";
  if (url.includes("src/storage/crc32c.ts")) return "CRC32C (log frames)";
  if (url.includes("src/storage/disk.ts")) return leaf === "writeSync" ? "log write (writeSync)" : leaf.startsWith("fdatasync") || leaf.startsWith("fsync") ? "fsync (submit, completion)" : "log disk calls";
  if (url.includes("src/storage/")) return "log (append, sync rounds)";
  if (url.includes("src/core/")) return "cell core (replica, apply)";
  if (url.includes("src/node/")) return "node shell (dispatch, flush, timers)";
  if (url.includes("src/runtime/") || url.includes("src/transport/")) return leaf === "send" ? "UDP send (syscall)" : "UDP receive, HTTP status";
  return null;
}

export interface ProfileSummary {
  readonly samples: number;
  readonly categories: Record<string, number>;
  readonly topSelf: readonly { readonly fn: string; readonly percent: number }[];
}

export function summarize(profiles: readonly CpuProfile[]): ProfileSummary {
  const categories = new Map<string, number>();
  const self = new Map<string, number>();
  let samples = 0;
  for (const profile of profiles) {
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
    const cache = new Map<number, string>();
    for (const id of profile.samples) {
      const leaf = byId.get(id);
      if (leaf === undefined) continue;
      samples++;
      const leafName = leaf.callFrame.functionName || "(anonymous)";
      const where = leaf.callFrame.url === "" || leaf.callFrame.url === "[native code]" ? "native" : leaf.callFrame.url.replace(/^.*\/(src|node_modules)\//, "$1/");
      const selfKey = `${leafName} (${where}${leaf.callFrame.lineNumber > 0 ? `:${leaf.callFrame.lineNumber}` : ""})`;
      self.set(selfKey, (self.get(selfKey) ?? 0) + 1);
      let category = cache.get(id);
      if (category === undefined) {
        category = `runtime, other: ${leafName}`;
        for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
          const frame = byId.get(at);
          if (frame === undefined) break;
          const found = categoryOf(frame.callFrame, leafName);
          if (found !== null) {
            category = found;
            break;
          }
        }
        if (category.startsWith("runtime, other") && !["(root)", "(program)", "(idle)"].includes(leafName)) category = "runtime, other (promises, event loop, builtins)";
        cache.set(id, category);
      }
      categories.set(category, (categories.get(category) ?? 0) + 1);
    }
  }
  const percent = (n: number) => round((100 * n) / Math.max(1, samples), 1);
  return {
    samples,
    categories: Object.fromEntries([...categories].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, percent(v)])),
    topSelf: [...self].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([fn, n]) => ({ fn, percent: percent(n) })),
  };
}

async function profileAt(clients: number, seconds: number, directory: string) {
  await rm(directory, { recursive: true, force: true });
  await mkdir(directory, { recursive: true });
  const colony = await Colony.start({ runtimeFlags: (i) => ["--cpu-prof", `--cpu-prof-dir=${directory}`, `--cpu-prof-name=n${i + 1}.cpuprofile`] });
  let load: LoadResult;
  let leaderAtStart: number;
  let leaderAtEnd = -1;
  const cpuMs: number[] = [];
  const perNode: { syncs: number; framesSent: number; framesReceived: number; slots: number; syncMsMean: number }[] = [];
  try {
    const admin = await colony.client("admin");
    await admin.create("bench-0");
    await admin.transact("bench-0", { reads: [], conditions: [], writes: [{ key: "warm", op: "put", value: true }] });
    await admin.end();
    leaderAtStart = await colony.leaderOf("bench-0");
    const metricsBefore = await Promise.all(Array.from({ length: colony.nodes }, (_, i) => colony.metrics(i)));
    const cpuBefore = colony.cpu();
    load = await runGenerator<LoadResult>("bench/loadgen.ts", { system: "physalia", topology: colony.topologyPath, keys: colony.controlKeysPath, cells: ["bench-0"], clients, seconds, name: `p${clients}` });
    const cpuAfter = colony.cpu();
    leaderAtEnd = await colony.leaderOf("bench-0");
    for (let i = 0; i < colony.nodes; i++) {
      cpuMs.push(cpuAfter[i]! - cpuBefore[i]!);
      const after = await colony.metrics(i);
      const before = metricsBefore[i]!;
      const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
      const syncs = delta("physalia_syncs_total");
      perNode.push({
        syncs, framesSent: delta("physalia_frames_sent_total"), framesReceived: delta("physalia_frames_received_total"), slots: delta("physalia_slots_applied_total"),
        syncMsMean: round(delta("physalia_sync_latency_ms_sum") / Math.max(1, syncs), 2),
      });
    }
  } finally {
    await colony.stop();
  }
  // Leadership can move under load (a client that waits past its attempt timeout asks
  // another replica to take over): the leader is the node that took the clients' frames.
  const received = perNode.map((n) => n.framesReceived);
  const leader = received.indexOf(Math.max(...received));
  const read = async (i: number) => JSON.parse(await readFile(join(directory, `n${i + 1}.cpuprofile`), "utf8")) as CpuProfile;
  const names = await readdir(directory);
  const followers = Array.from({ length: colony.nodes }, (_, i) => i).filter((i) => i !== leader && names.includes(`n${i + 1}.cpuprofile`));
  const leaderProfile = summarize([await read(leader)]);
  const followerProfile = summarize(await Promise.all(followers.map(read)));
  const committed = load.committed;
  const followerCpu = followers.map((i) => cpuMs[i]!);
  const l = perNode[leader]!;
  const f = perNode[followers[0]!]!;
  return {
    clients,
    load,
    leader: { byFramesReceived: `n${leader + 1}`, atStart: `n${leaderAtStart + 1}`, atEnd: `n${leaderAtEnd + 1}` },
    slotsPerSecond: round(l.slots / load.seconds, 1),
    commandsPerSlot: round(committed / Math.max(1, l.slots), 2),
    cpuMsPerSecond: { leader: round(cpuMs[leader]! / load.seconds, 0), followerMean: round(followerCpu.reduce((a, b) => a + b, 0) / followerCpu.length / load.seconds, 0), generator: round(load.generatorCpuMs / load.seconds, 0) },
    cpuUsPerCommit: { leader: round((1000 * cpuMs[leader]!) / committed, 0), followerMean: round((1000 * followerCpu.reduce((a, b) => a + b, 0)) / followerCpu.length / committed, 0), generator: load.generatorCpuUsPerPut },
    perSlot: {
      leader: { syncs: round(l.syncs / l.slots, 2), framesSent: round(l.framesSent / l.slots, 2), framesReceived: round(l.framesReceived / l.slots, 2), syncMsMean: l.syncMsMean },
      follower: { syncs: round(f.syncs / f.slots, 2), framesSent: round(f.framesSent / f.slots, 2), framesReceived: round(f.framesReceived / f.slots, 2), syncMsMean: f.syncMsMean },
    },
    leaderProfile,
    followerProfile,
  };
}

async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 8);
  const base = join(import.meta.dir, "results/.profiles");
  const points = [];
  for (const clients of [1, 64]) {
    const point = await profileAt(clients, seconds, join(base, `c${clients}`));
    points.push(point);
    console.log(`${clients} clients: ${point.load.perSecond} tx/s, leader ${JSON.stringify(point.leaderProfile.categories)}`);
  }
  await rm(base, { recursive: true, force: true });
  const results = {
    when: new Date().toISOString(),
    machine: { cores: cpus().length, model: cpus()[0]?.model ?? "unknown", bun: Bun.version, loadAverageAtEnd: loadAverage() },
    setup: { nodes: 7, cells: 1, secondsPerPoint: seconds, profiler: "bun --cpu-prof (JavaScriptCore sampling profiler, ~1 sample per ms of JavaScript)", note: "categories are percentages of the samples of that role; followers are pooled" },
    points,
  };
  await writeFile(join(import.meta.dir, "results/profile.json"), `${JSON.stringify(results, null, 2)}\n`);
  console.log("wrote bench/results/profile.json");
}

if (import.meta.main) await main();
