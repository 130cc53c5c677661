// The control plane does not plan again, every pass, a sound cell it planned to nothing: only
// when what the plan read changes (the cell's members as the view hands them over, its
// clients, the topology). These tests show the three changes are each seen at once.

import { expect, test } from "bun:test";
import type { PhysaliaClient } from "../../src/client/client.ts";
import { type ColonyView, ControlPlane, type KnownCell, type NodeHealth, clientsKey } from "../../src/control/service.ts";
import { parseTopology } from "../../src/control/topology/parse.ts";
import type { Topology } from "../../src/control/topology/types.ts";
import { utf8 } from "../../src/core/value.ts";

// Two rows of nine nodes, each in three racks and three power domains.
function topology(clientRow = "r1"): Topology {
  const nodes = ["r1", "r2"].flatMap((row, r) => Array.from({ length: 9 }, (_, i) => ({ id: `${row}n${i}`, address: `127.0.0.1:${7700 + 9 * r + i}`, row, rack: `${row}k${i % 3}`, power: `p${i % 3}`, color: "blue", capacity: 1000 })));
  const parsed = parseTopology(JSON.stringify({ version: 1, powerDomains: ["p0", "p1", "p2"], colors: ["blue"], nodes, clients: [{ id: "vm1", kind: "instance", row: clientRow, rack: `${clientRow}k0` }] }));
  if (parsed instanceof Error) throw parsed;
  return parsed;
}

const identity = (node: string) => `${node}~0000000000000001`;
const flush = async () => {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
};

function colony() {
  // Cells of three members in r1, one per rack; their clients in r1.
  const cells: KnownCell[] = Array.from({ length: 4 }, (_, i) => ({ cell: `vol${i}`, incarnation: "0000000000000001", members: ["r1n0", "r1n1", "r1n2"].map(identity) }));
  const rows = new Map(cells.map((c) => [c.cell, "r1"]));
  let handed: readonly KnownCell[] = cells;
  const view: ColonyView & { hand(next: readonly KnownCell[]): void } = {
    cells: async () => handed,
    health: async () => new Map(topology().nodes.map((n): [string, NodeHealth] => [n.id, { health: "alive", downForMs: 0, identity: identity(n.id) }])),
    hand(next) {
      handed = next;
    },
  };
  const joins: string[] = [];
  const client = {
    lease: async () => ({ status: "lease", granted: true, held: true, holder: "control-a", validUntil: Number.MAX_SAFE_INTEGER, validForMs: 3_000 }),
    transact: async (cell: string, tx: { reads: readonly string[] }) => {
      const where = { row: rows.get(cell) ?? "r1" };
      return { status: "committed", reads: tx.reads.map((key) => (key === clientsKey ? utf8(JSON.stringify({ instance: where, primary: where, replica: where })) : undefined)), scan: { entries: [], next: null } };
    },
    join: (cell: string) => {
      joins.push(cell);
      return new Promise<string>(() => {});
    },
  };
  const plane = new ControlPlane({ id: "control-a", topology: topology(), color: "blue", client: client as unknown as PhysaliaClient, view, graceMs: 1_000, size: 3, clientsPerPass: 1 });
  return { cells, rows, view, joins, plane };
}

/** Passes until one starts a change, at most `max`; the cells it changed. */
async function passUntilSteps(plane: ControlPlane, max: number): Promise<string[]> {
  for (let i = 0; i < max; i++) {
    const pass = await plane.pass();
    await flush();
    if (pass.steps.length > 0) return pass.steps.map((s) => s.cell);
  }
  return [];
}

test("a quiet cell whose client moved is planned again once its clients are read again", async () => {
  const { rows, plane } = colony();
  expect(await passUntilSteps(plane, 3)).toEqual([]);
  rows.set("vol2", "r2");
  // The clients' rotation (one cell a pass here) reads vol2's new place in the background; the pass after uses it.
  expect(await passUntilSteps(plane, 6)).toEqual(["vol2"]);
});

test("a quiet cell whose members changed is planned again at once", async () => {
  const { cells, view, plane } = colony();
  expect(await passUntilSteps(plane, 3)).toEqual([]);
  // vol1 is now in r2 (a change the view learnt), its clients still in r1: it moves back.
  view.hand(cells.map((c) => (c.cell === "vol1" ? { ...c, members: ["r2n0", "r2n1", "r2n2"].map(identity) } : c)));
  expect(await passUntilSteps(plane, 1)).toEqual(["vol1"]);
});

test("quiet cells are planned again under a new topology", async () => {
  const { plane } = colony();
  expect(await passUntilSteps(plane, 3)).toEqual([]);
  // The new topology has r1n0, r1n1 and r1n2 in one rack: the cells on them break the
  // three-rack rule and must move, though nothing else of theirs changed.
  const next = topology();
  const squeezed: Topology = { ...next, nodes: next.nodes.map((n) => (["r1n0", "r1n1", "r1n2"].includes(n.id) ? { ...n, rack: "r1k0" } : n)) };
  expect(plane.updateTopology(squeezed).ok).toBe(true);
  // All four at once: not only the one whose clients the rotation happened to read again.
  expect((await passUntilSteps(plane, 2)).sort()).toEqual(["vol0", "vol1", "vol2", "vol3"]);
});
