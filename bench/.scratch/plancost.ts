import type { PhysaliaClient } from "../../src/client/client.ts";
import { type ColonyView, ControlPlane, type KnownCell, type NodeHealth, clientsKey } from "../../src/control/service.ts";
import { parseTopology } from "../../src/control/topology/parse.ts";
import { utf8 } from "../../src/core/value.ts";
const N = Number(process.env.NODES ?? 1000), C = Number(process.env.CELLS ?? 100000);
const nodes = Array.from({ length: N }, (_, i) => ({ id: `n${i}`, address: `127.0.0.1:${10000 + i}`, row: `r${i % 8}`, rack: `k${i % 40}`, power: `p${i % 4}`, color: "blue", capacity: 100000 }));
const topology = parseTopology(JSON.stringify({ version: 1, powerDomains: ["p0", "p1", "p2", "p3"], colors: ["blue"], nodes, clients: [] }));
if (topology instanceof Error) throw topology;
const id = (i: number) => `n${i % N}~0000000000000001`;
const cells: KnownCell[] = Array.from({ length: C }, (_, c) => ({ cell: `v${c}`, incarnation: "0123456789abcdef", members: Array.from({ length: 7 }, (_, m) => id(c * 7 + m * 41)) }));
const health = new Map<string, NodeHealth>(nodes.map((n, i) => [n.id, { health: "alive", downForMs: 0, identity: id(i) }]));
const view: ColonyView = { cells: async () => cells, health: async () => health };
const where = { row: "r1" };
const client = {
  async lease() { return { status: "lease", granted: true, held: true, holder: "a", validUntil: Number.MAX_SAFE_INTEGER, validForMs: 3000 }; },
  async transact(_cell: string, tx: { reads: readonly string[] }) { return { status: "committed", reads: tx.reads.map((k) => (k === clientsKey ? utf8(JSON.stringify({ instance: where, primary: where, replica: where })) : undefined)), scan: { entries: [], next: null } }; },
};
const plane = new ControlPlane({ id: "a", topology, color: "blue", client: client as unknown as PhysaliaClient, view });
for (let i = 0; i < 3; i++) await plane.pass();
const t = process.cpuUsage(); const w = performance.now();
const P = 10; let last: unknown;
for (let i = 0; i < P; i++) last = await plane.pass();
const u = process.cpuUsage(t);
console.log(JSON.stringify({ cells: C, cpuMsPerPass: (u.user + u.system) / 1000 / P, wallMsPerPass: (performance.now() - w) / P, last: (last as { timings?: unknown }).timings }));
