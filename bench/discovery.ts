// `npm run bench:discovery`: the discovery layer's scale evidence. Writes
// bench/results/discovery.json.
//
//  1. Memory per entry at a million entries with seven members each: plain JavaScript objects
//     as a decoder would hand them over, against the compact store a node uses (heap used,
//     after a full collection, divided by the entries).
//  2. Memory per forwarding pointer.
//  3. The full-size simulation (src/discovery/sim/scenarios.ts: 1,000 nodes, 100,000 cells):
//     convergence, gossip bytes per node per second, liveness, rebuild, poison.
//
// Environment: SEED (1), NODES, CELLS, ENTRIES (1,000,000), SKIP_MEMORY=1, SKIP_SIM=1.

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DiscoveryCache } from "../src/discovery/cache.ts";
import type { CellEntry } from "../src/discovery/entry.ts";
import { ForwardingPointers } from "../src/discovery/pointers.ts";
import { ColonySim } from "../src/discovery/sim/colony.ts";
import { fullScenario } from "../src/discovery/sim/scenarios.ts";
import { EntryStore } from "../src/discovery/store.ts";
import { Rng } from "../src/random.ts";

const seed = Number(process.env.SEED ?? 1);
const entries = Number(process.env.ENTRIES ?? 1_000_000);
const nowMs = 1_700_000_000_000;

function heapBytes(): number {
  Bun.gc(true);
  return process.memoryUsage().heapUsed;
}

const hex = (rng: Rng): string => rng.nextUint32().toString(16).padStart(8, "0") + rng.nextUint32().toString(16).padStart(8, "0");

/** A realistic entry: an EBS-like volume name, 7 of 3,000 nodes, fresh strings as a decoder makes them. */
function makeEntry(rng: Rng, nodeIncarnations: readonly string[], i: number): CellEntry {
  const members = new Set<string>();
  while (members.size < 7) {
    const node = rng.nextInt(nodeIncarnations.length);
    members.add(`n${node}~${nodeIncarnations[node]}`.split("").join(""));
  }
  const list = [...members].sort();
  return {
    cell: `vol-${hex(rng).slice(0, 17)}${i % 10}`, incarnation: hex(rng), epoch: 0, version: 1 + rng.nextInt(100_000),
    ballot: 1 + rng.nextInt(20), leader: list[0] as string, refreshedMs: nowMs - rng.nextInt(3_600_000), members: list,
  };
}

function memory(): Record<string, unknown> {
  const nodeIncarnations = Array.from({ length: 3_000 }, (_, i) => hex(new Rng(i + 1)));
  const measure = (build: (rng: Rng) => unknown): { bytesPerEntry: number; keep: unknown } => {
    const before = heapBytes();
    const keep = build(new Rng(seed));
    return { bytesPerEntry: Math.round((heapBytes() - before) / entries), keep };
  };
  const naive = measure((rng) => {
    const map = new Map<string, CellEntry>();
    for (let i = 0; i < entries; i++) {
      const e = makeEntry(rng, nodeIncarnations, i);
      map.set(e.cell, e);
    }
    return map;
  });
  const naiveBytes = naive.bytesPerEntry;
  naive.keep = null;
  heapBytes();
  let store: EntryStore | null = null;
  let cache: DiscoveryCache | null = null;
  const started = performance.now();
  const compact = measure((rng) => {
    store = new EntryStore({ leafBits: 16 });
    cache = new DiscoveryCache(store);
    for (let i = 0; i < entries; i++) cache.merge(makeEntry(rng, nodeIncarnations, i), nowMs);
    return cache;
  });
  const mergeSeconds = (performance.now() - started) / 1000;
  const heldStore = store as unknown as EntryStore;
  const heldCache = cache as unknown as DiscoveryCache;
  const typedArrayBytes = heldStore.bytes() + heldCache.bytes();
  const pointers = measure(() => {
    const table = new ForwardingPointers({ countMax: entries });
    const rng = new Rng(seed + 1);
    for (let i = 0; i < Math.min(entries, 131_072); i++) table.add(makeEntry(rng, nodeIncarnations, i), nowMs);
    return table;
  });
  const perPointer = Math.round((pointers.bytesPerEntry * entries) / Math.min(entries, 131_072));
  return {
    entries,
    membersPerEntry: 7,
    nodeIdentities: nodeIncarnations.length,
    naiveObjectsBytesPerEntry: naiveBytes,
    compactBytesPerEntry: compact.bytesPerEntry,
    compactTypedArraysBytesPerEntry: Math.round(typedArrayBytes / entries),
    compactMegabytesTotal: Math.round((compact.bytesPerEntry * entries) / 1e6),
    entriesHeld: heldCache.size,
    mergeMicrosecondsPerEntry: Math.round((mergeSeconds / entries) * 1e6 * 100) / 100,
    forwardingPointerBytesEach: perPointer,
    note: "heap used after a full collection; the compact figure is one node's replica (store, slots and a 2^16-leaf digest tree) filled through merge; typed arrays grow by doubling, so part of it is slack",
  };
}

function simulation(): Record<string, unknown> {
  const options = fullScenario(seed, {
    ...(process.env.NODES === undefined ? {} : { nodes: Number(process.env.NODES) }),
    ...(process.env.CELLS === undefined ? {} : { cells: Number(process.env.CELLS) }),
  });
  const started = performance.now();
  const sim = new ColonySim({
    ...options,
    onPhaseEnd: (name, simulatedSeconds, events) => console.error(`${name} done at ${simulatedSeconds} s simulated, ${events} events, ${Math.round((performance.now() - started) / 1000)} s`),
  });
  const report = sim.run();
  const wallSeconds = (performance.now() - started) / 1000;
  return {
    scenario: { nodes: options.nodes, cells: options.cells, leafBits: options.leafBits, auditsPerRound: options.auditsPerRound, phases: options.phases },
    wallSeconds: Math.round(wallSeconds),
    heapMegabytesAfter: Math.round(heapBytes() / 1e6),
    ...report,
  };
}

const path = join(import.meta.dir, "results/discovery.json");
let previous: Record<string, unknown> = {};
try {
  previous = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
} catch {
  previous = {};
}
const results: Record<string, unknown> = { when: new Date().toISOString(), seed };
results.memory = process.env.SKIP_MEMORY === "1" ? (previous.memory ?? null) : memory();
console.log(JSON.stringify(results.memory, null, 2));
results.simulation = process.env.SKIP_SIM === "1" ? (previous.simulation ?? null) : simulation();
console.log(JSON.stringify(results.simulation, null, 2));
await mkdir(join(import.meta.dir, "results"), { recursive: true });
await writeFile(path, `${JSON.stringify(results, null, 2)}\n`);
