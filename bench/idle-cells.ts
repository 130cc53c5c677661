// `npm run bench:idle`: what an idle cell costs a node. Builds one node hosting N cells of
// seven replicas (as a real node would after recovery), lets it idle, and measures heap per
// cell, timers armed, and CPU spent while idle. Writes bench/results/idle-cells.json.

import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { DurableRecord } from "../src/core/effects.ts";
import { MemoryLog } from "../src/node/log.ts";
import { PhysaliaNode } from "../src/node/node.ts";
import type { Transport } from "../src/transport/transport.ts";
import { KeyRing, KeySet } from "../src/wire/keyring.ts";

const cells = Number(process.env.CELLS ?? 100_000);
const members = ["n1", "n2", "n3", "n4", "n5", "n6", "n7"];
const ring = (id: number) => new KeyRing({ id, secret: new Uint8Array(32).fill(id) });
const quiet: Transport = { local: { host: "127.0.0.1", port: 1 }, send() {}, onReceive() {}, close() {} };

function heapBytes(): number {
  Bun.gc(true);
  return process.memoryUsage().heapUsed;
}

const before = heapBytes();
const recovered = new Map<string, DurableRecord[]>();
for (let i = 0; i < cells; i++) recovered.set(`volume-${i}`, [{ kind: "genesis", genesis: { members, incarnation: "0123456789abcdef", alpha: 3, sessionTtlMs: 60_000, sessionsMax: 128 } }]);
const recordsBytes = heapBytes() - before;
const started = performance.now();
const node = new PhysaliaNode({
  id: "n1", peers: new Map(members.slice(1).map((id, i) => [id, { host: "127.0.0.1", port: 2 + i }])),
  keys: new KeySet({ node: ring(1), client: ring(2), control: ring(3) }, "blue"), log: new MemoryLog(), transport: quiet, recovered,
});
const buildMs = performance.now() - started;
recovered.clear();
const afterBuild = heapBytes();
node.start();
const cpuBefore = process.cpuUsage();
const idleSeconds = Number(process.env.IDLE_SECONDS ?? 5);
await Bun.sleep(idleSeconds * 1000);
const cpu = process.cpuUsage(cpuBefore);
const status = node.status();
await node.stop();
const perCell = (afterBuild - before) / cells;
const results = {
  when: new Date().toISOString(),
  cells,
  replicasPerCell: members.length,
  heapBytesPerIdleCell: Math.round(perCell),
  heapMegabytesTotal: Math.round((afterBuild - before) / 1e6),
  buildMsPerThousandCells: Math.round((buildMs / cells) * 1000 * 100) / 100,
  idleSeconds,
  cpuMillisecondsWhileIdle: Math.round((cpu.user + cpu.system) / 1000),
  cellsWithDeadlines: status.cellsWithWork,
  note: "idle cells arm no timer; the CPU while idle is the node's heartbeats to its 6 peers",
  recordsBytesIgnored: recordsBytes,
};
console.log(JSON.stringify(results, null, 2));
await mkdir(join(import.meta.dir, "results"), { recursive: true });
await writeFile(join(import.meta.dir, "results/idle-cells.json"), `${JSON.stringify(results, null, 2)}\n`);
