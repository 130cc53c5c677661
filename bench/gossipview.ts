// `npm run bench:gossipview`: what the control plane's gossip view (src/control/gossipview.ts)
// costs per pass at hundreds and thousands of nodes, and with many cells. The view runs for
// real against a client that answers as the colony would: peer tables of N nodes (discovery's
// pages), discovery lookups of 64 cells, and registry pages from the control cell. Per
// configuration and per pass: the view's own CPU (health and cells, the merges included), the
// requests it made, and the bytes those answers take on the wire (their CBOR bodies, as
// src/discovery/messages.ts encodes them). The first pass learns every cell (a lookup per 64);
// later passes look up `lookupPerPass` cells in rotation. Writes bench/results/gossipview.json.

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PhysaliaClient } from "../src/client/client.ts";
import { GossipView } from "../src/control/gossipview.ts";
import { registryPrefix } from "../src/control/registry.ts";
import { type CellAnswer, type LookupAnswer, type PeerReport, type PeersAnswer, discoveryLimits, encodeMessage } from "../src/discovery/mod.ts";
import { encodeCbor } from "../src/wire/cbor.ts";
import { round } from "./colony.ts";

interface Config {
  readonly nodes: number;
  readonly cells: number;
}

const configs: Config[] = (process.env.CONFIGS ?? "24x1000,192x1000,500x10000,1000x10000,3000x10000,1000x100000")
  .split(",").map((c) => {
    const [nodes, cells] = c.split("x").map(Number);
    if (!Number.isInteger(nodes) || !Number.isInteger(cells) || (nodes as number) < 7 || (cells as number) < 1) {
      console.error(`bench:gossipview: CONFIGS takes NODESxCELLS,..., not ${JSON.stringify(c)}`);
      process.exit(2);
    }
    return { nodes: nodes as number, cells: cells as number };
  });
const passes = Number(process.env.PASSES ?? 20);
const incarnation = "0123456789abcdef";

/** A client that answers like a healthy colony of `nodes` nodes, every node alive, every cell found. */
function fakeColony({ nodes, cells }: Config, wire: { bytes: number }) {
  const nodeIds = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const identity = (i: number) => `${nodeIds[i % nodes]}~${incarnation}`;
  const table: PeerReport[] = nodeIds.map((id, i) => ({
    record: { identity: `${id}~${incarnation}`, address: `10.${(i >> 8) & 255}.${i & 255}.1:7000`, generation: 1, heartbeat: 1_000 + i, status: "alive" },
    heardAgoMs: 400,
  }));
  const names = Array.from({ length: cells }, (_, c) => `volume-${String(c).padStart(7, "0")}`);
  const count = (message: LookupAnswer | PeersAnswer) => {
    wire.bytes += encodeCbor(encodeMessage(message)).length;
  };
  const client = {
    async peerTable(_node: string, options: { start?: number }): Promise<PeersAnswer> {
      const start = options.start ?? 0;
      const end = Math.min(table.length, start + discoveryLimits.peerReportsPerAnswerMax);
      const answer: PeersAnswer = { kind: "peersAnswer", id: 1, peers: table.slice(start, end), next: end < table.length ? end : null };
      count(answer);
      return answer;
    },
    async lookupAt(_node: string, asked: readonly string[]) {
      const answers: CellAnswer[] = asked.map((cell) => {
        const c = Number(cell.slice("volume-".length));
        const members = [...new Set(Array.from({ length: 7 }, (_, m) => identity(c * 7 + m)))].sort();
        const answer: CellAnswer = { cell, status: "found", entry: { cell, incarnation, epoch: 1, version: 1, ballot: 1, leader: members[0] as string, refreshedMs: Date.now(), members } };
        return answer;
      });
      const answer: LookupAnswer = { kind: "lookupAnswer", id: 1, answers, peers: [] };
      count(answer);
      return answer;
    },
    async transact(_cell: string, tx: { scan?: { start: string; limit: number } }) {
      const start = tx.scan?.start ?? registryPrefix;
      const from = names.findIndex((n) => `${registryPrefix}${n}` >= start);
      const page = from < 0 ? [] : names.slice(from, from + (tx.scan?.limit ?? 256));
      const entries = page.map((n) => [`${registryPrefix}${n}`, new Uint8Array(8)] as const);
      wire.bytes += entries.reduce((sum, [k]) => sum + k.length + 12, 0);
      const last = page.at(-1);
      const next = last === undefined || from + page.length >= names.length ? null : `${registryPrefix}${last}\u0000`;
      return { status: "committed", reads: [], scan: { entries, next } };
    },
  };
  return { client: client as unknown as PhysaliaClient, nodeIds };
}

async function measure(config: Config) {
  const wire = { bytes: 0 };
  const { client, nodeIds } = fakeColony(config, wire);
  const view = new GossipView({ client, nodes: nodeIds, controlCell: "control-blue" });
  const perPass: { cpuMs: number; requests: number; bytes: number }[] = [];
  let known = 0;
  for (let pass = 0; pass < passes; pass++) {
    const before = { ...view.stats };
    const bytesBefore = wire.bytes;
    const cpu = process.cpuUsage();
    const health = await view.health();
    known = (await view.cells()).length;
    const used = process.cpuUsage(cpu);
    if (health.size !== config.nodes) throw new Error(`the view saw ${health.size} of ${config.nodes} nodes`);
    perPass.push({
      cpuMs: (used.user + used.system) / 1000,
      requests: view.stats.peerRequests - before.peerRequests + view.stats.lookups - before.lookups,
      bytes: wire.bytes - bytesBefore,
    });
  }
  const later = perPass.slice(1);
  const mean = (f: (p: (typeof perPass)[number]) => number) => round(later.reduce((s, p) => s + f(p), 0) / Math.max(1, later.length), 2);
  return {
    ...config,
    cellsKnown: known,
    firstPass: { cpuMs: round(perPass[0]?.cpuMs ?? 0, 1), requests: perPass[0]?.requests ?? 0, kilobytes: round((perPass[0]?.bytes ?? 0) / 1024, 1) },
    laterPasses: { cpuMs: mean((p) => p.cpuMs), requests: mean((p) => p.requests), kilobytes: round(mean((p) => p.bytes) / 1024, 1) },
  };
}

async function main(): Promise<void> {
  const results = [];
  for (const config of configs) {
    const result = await measure(config);
    results.push(result);
    console.log(`${config.nodes} nodes, ${config.cells} cells: first pass ${result.firstPass.cpuMs} ms CPU, ${result.firstPass.requests} requests, ${result.firstPass.kilobytes} KB; later passes ${result.laterPasses.cpuMs} ms, ${result.laterPasses.requests} requests, ${result.laterPasses.kilobytes} KB`);
  }
  const out = {
    when: new Date().toISOString(),
    bench: "the control plane's gossip view, per pass, against a client answering as a healthy colony would",
    runtime: `bun ${Bun.version}`,
    passes,
    note: "CPU is the view's own (merging peer tables, lookups and the registry), in one process; bytes are the CBOR bodies of the answers it received (discovery messages, registry pages)",
    results,
  };
  await mkdir(join(import.meta.dir, "results"), { recursive: true });
  await writeFile(join(import.meta.dir, "results/gossipview.json"), `${JSON.stringify(out, null, 2)}\n`);
  console.log("wrote bench/results/gossipview.json");
}

await main();
