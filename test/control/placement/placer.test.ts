import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Placer } from "../../../src/control/placement/placer.ts";
import { cellShape, majority, spreadCap } from "../../../src/control/placement/rules.ts";
import { type CellClients, type CellPlacement, PlacementError } from "../../../src/control/placement/types.ts";
import { generateTopology } from "../../../src/control/topology/generate.ts";
import type { Topology } from "../../../src/control/topology/types.ts";
import { buildTopology, topologyShape } from "../support.ts";

// An oracle written from the rules, independent of the selector: try every subset.
function combinations(items: readonly number[], size: number, visit: (subset: number[]) => boolean): boolean {
  const subset: number[] = [];
  const walk = (from: number): boolean => {
    if (subset.length === size) return visit(subset);
    for (let i = from; i <= items.length - (size - subset.length); i++) {
      subset.push(items[i]!);
      if (walk(i + 1)) return true;
      subset.pop();
    }
    return false;
  };
  return walk(0);
}

interface Oracle {
  /** Nodes of the color in the row that have room for one more replica. */
  usable: number[];
  strict: boolean;
  racksOnly: boolean;
}

function oracle(placer: Placer, topology: Topology, color: string, row: string, size: number): Oracle {
  const usable = topology.nodes
    .map((node, i) => ({ node, i }))
    .filter(({ node }) => node.color === color && node.row === row && placer.loadOf(node.id) < node.capacity)
    .map(({ i }) => i);
  const cap = spreadCap(size);
  const maxBy = (subset: number[], key: (i: number) => string): number => {
    const counts = new Map<string, number>();
    for (const i of subset) counts.set(key(i), (counts.get(key(i)) ?? 0) + 1);
    return Math.max(...counts.values());
  };
  const rackOk = (s: number[]) => maxBy(s, (i) => topology.nodes[i]!.rack) <= cap;
  const powerOk = (s: number[]) => maxBy(s, (i) => topology.nodes[i]!.power) <= cap;
  return {
    usable,
    strict: combinations(usable, size, (s) => rackOk(s) && powerOk(s)),
    racksOnly: combinations(usable, size, rackOk),
  };
}

function sameRow(row: string): CellClients {
  return { instance: { row }, primary: { row }, replica: { row } };
}

function expectPlaced(result: CellPlacement | PlacementError): CellPlacement {
  if (result instanceof PlacementError) throw result;
  return result;
}

const small = generateTopology({ rows: 3, racksPerRow: 5, nodesPerRack: 6, powerDomains: 3, colors: 2, seed: 5 }) as Topology;

describe("placing a new cell", () => {
  test("every cell gets exactly its size in distinct nodes of its color, none over capacity", () => {
    fc.assert(
      fc.property(topologyShape({ maxCapacity: 6 }), fc.integer({ min: 1, max: 9 }), fc.array(fc.nat(), { minLength: 1, maxLength: 30 }), (shape, size, picks) => {
        const topology = buildTopology(shape);
        const placer = new Placer(topology);
        const rows = [...new Set(topology.nodes.map((n) => n.row))];
        for (const pick of picks) {
          const row = rows[pick % rows.length]!;
          const color = topology.colors[pick % topology.colors.length]!;
          const result = placer.place({ size, color, clients: sameRow(row), salt: pick });
          if (result instanceof PlacementError) {
            expect(result.message).toContain(`color "${color}" has`);
            continue;
          }
          expect(result.nodes.length).toBe(size);
          expect(new Set(result.nodes).size).toBe(size);
          for (const id of result.nodes) expect(topology.nodes.find((n) => n.id === id)!.color).toBe(color);
        }
        for (const node of topology.nodes) expect(placer.loadOf(node.id)).toBeLessThanOrEqual(node.capacity);
      }),
      { numRuns: 150 },
    );
  });

  test("the rules hold whenever some choice of nodes in the row keeps them, and otherwise they relax in order: power, racks, row", () => {
    fc.assert(
      fc.property(topologyShape({ maxRacks: 4, maxNodes: 4, maxCapacity: 3 }), fc.integer({ min: 1, max: 7 }), fc.array(fc.nat(), { minLength: 1, maxLength: 12 }), (shape, size, picks) => {
        const topology = buildTopology(shape);
        const placer = new Placer(topology);
        const rows = [...new Set(topology.nodes.map((n) => n.row))];
        for (const pick of picks) {
          const row = rows[pick % rows.length]!;
          const color = topology.colors[(pick >> 3) % topology.colors.length]!;
          const expected = oracle(placer, topology, color, row, size);
          const result = placer.place({ size, color, clients: sameRow(row), salt: pick });
          if (result instanceof PlacementError) {
            expect(expected.usable.length).toBeLessThan(size);
            continue;
          }
          expect(result.reasons.length).toBe(result.relaxed.length);
          if (expected.strict) expect(result.relaxed).toEqual([]);
          else if (expected.racksOnly) expect(result.relaxed).toEqual(["power"]);
          else if (expected.usable.length >= size) {
            expect(result.relaxed).toContain("racks");
            expect(result.relaxed).not.toContain("row");
          } else {
            expect(result.relaxed).toContain("row");
            // Every usable node of the row is used before any other row is.
            const inRow = result.nodes.filter((id) => topology.nodes.find((n) => n.id === id)!.row === row).length;
            expect(inRow).toBeGreaterThanOrEqual(Math.min(expected.usable.length, spreadCap(size) > 0 ? 1 : 0));
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  test("a cell in a row with room spreads its majority so that no rack or power domain can take it down", () => {
    const placer = new Placer(small);
    for (let i = 0; i < 300; i++) {
      const row = `r${(i % 3) + 1}`;
      const result = expectPlaced(placer.place({ size: 7, color: small.colors[i % 2]!, clients: sameRow(row) }));
      expect(result.relaxed).toEqual([]);
      const cluster = placer.cluster;
      const nodes = result.nodes.map((id) => cluster.nodeIndex.get(id)!);
      const shape = cellShape(cluster, nodes, cluster.rowIndex.get(row)!);
      expect(shape.inRow).toBe(7);
      expect(7 - shape.rackMax).toBeGreaterThanOrEqual(majority(7));
      expect(7 - shape.powerMax).toBeGreaterThanOrEqual(majority(7));
      expect(shape.racks).toBeGreaterThanOrEqual(3);
      expect(shape.powers).toBeGreaterThanOrEqual(3);
    }
  });

  test("load stays balanced on a regular datacenter: after many cells, no node hosts more than 1.1 times the mean", () => {
    fc.assert(
      fc.property(
        fc.record({ rows: fc.integer({ min: 1, max: 3 }), racks: fc.integer({ min: 3, max: 6 }), nodes: fc.integer({ min: 2, max: 6 }), power: fc.integer({ min: 3, max: 4 }), colors: fc.integer({ min: 1, max: 2 }) }),
        fc.constantFrom(3, 5, 7),
        fc.integer({ min: 0, max: 1000 }),
        (o, size, seed) => {
          // Regular: every power domain has as many racks, and every rack as many nodes of each
          // color. (Elsewhere the rules themselves force imbalance: with three domains of 4, 2
          // and 2 nodes, every 3-replica cell needs one node of each.)
          fc.pre(o.racks % o.power === 0 && o.nodes % o.colors === 0 && (o.racks * o.nodes) / o.colors >= size);
          const topology = generateTopology({ rows: o.rows, racksPerRow: o.racks, nodesPerRack: o.nodes, powerDomains: o.power, colors: o.colors, seed }) as Topology;
          const placer = new Placer(topology);
          const cells = 40 * topology.nodes.length;
          for (let i = 0; i < cells; i++) {
            const row = `r${(i % o.rows) + 1}`;
            const color = placer.cluster.colorNames[placer.leastLoadedColor(placer.cluster.rowIndex.get(row)!)]!;
            expect(placer.place({ size, color, clients: sameRow(row) })).not.toBeInstanceOf(PlacementError);
          }
          const loads = topology.nodes.map((n) => placer.loadOf(n.id));
          const mean = (cells * size) / topology.nodes.length;
          expect(Math.max(...loads) / mean).toBeLessThanOrEqual(1.1);
        },
      ),
      { numRuns: 25 },
    );
  });

  test("on any datacenter, interchangeable nodes (same color, row, rack and domain) differ in load by at most one", () => {
    fc.assert(
      fc.property(topologyShape({ maxCapacity: 1_000 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 60 }), (shape, size, cells) => {
        const topology = buildTopology(shape);
        const placer = new Placer(topology);
        const rows = [...new Set(topology.nodes.map((n) => n.row))];
        for (let i = 0; i < cells; i++) placer.place({ size, color: topology.colors[i % topology.colors.length]!, clients: sameRow(rows[i % rows.length]!) });
        const groups = new Map<string, number[]>();
        for (const node of topology.nodes) {
          if (node.capacity < 1_000) continue;
          const key = `${node.color}/${node.row}/${node.rack}/${node.power}`;
          groups.set(key, [...(groups.get(key) ?? []), placer.loadOf(node.id)]);
        }
        for (const loads of groups.values()) expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 100 },
    );
  });

  test("the storage servers' shared row wins over the instance's row, and the instance's row wins a three-way split", () => {
    const placer = new Placer(small);
    const rowOf = (p: CellPlacement) => p.row;
    expect(rowOf(expectPlaced(placer.place({ color: "blue", clients: { instance: { row: "r1" }, primary: { row: "r2" }, replica: { row: "r2" } } })))).toBe("r2");
    expect(rowOf(expectPlaced(placer.place({ color: "blue", clients: { instance: { row: "r1" }, primary: { row: "r1" }, replica: { row: "r3" } } })))).toBe("r1");
    expect(rowOf(expectPlaced(placer.place({ color: "blue", clients: { instance: { row: "r3" }, primary: { row: "r1" }, replica: { row: "r2" } } })))).toBe("r3");
  });

  test("the first choice that looks best can be a dead end, and placement still finds the only strict cell", () => {
    // Three replicas, at most one per rack and per domain. Rack A has the least-full node,
    // in p1, but using it leaves racks B (p1 only) and C (p2 only) unable to finish; the
    // only strict cell is A's p3 node with B and C.
    const topology: Topology = {
      version: 1,
      powerDomains: ["p1", "p2", "p3"],
      colors: ["blue"],
      nodes: [
        { id: "a1", address: "10.0.0.1:1", row: "r", rack: "A", power: "p1", color: "blue", capacity: 100 },
        { id: "a3", address: "10.0.0.2:1", row: "r", rack: "A", power: "p3", color: "blue", capacity: 100 },
        { id: "b1", address: "10.0.0.3:1", row: "r", rack: "B", power: "p1", color: "blue", capacity: 100 },
        { id: "c2", address: "10.0.0.4:1", row: "r", rack: "C", power: "p2", color: "blue", capacity: 100 },
      ],
      clients: [],
    };
    const placer = new Placer(topology, { load: new Map([["a3", 5], ["b1", 5], ["c2", 5]]) });
    const result = expectPlaced(placer.place({ size: 3, color: "blue", clients: sameRow("r") }));
    expect(result.relaxed).toEqual([]);
    expect([...result.nodes].sort()).toEqual(["a3", "b1", "c2"]);
  });

  test("a row with too few nodes keeps what it has and says why the rest went to other rows", () => {
    const topology = buildTopology({ powerDomains: 3, colors: 1, rows: [[[[0, 0, 9]], [[1, 0, 9]], [[2, 0, 9]]], [[[0, 0, 9], [1, 0, 9]], [[1, 0, 9], [2, 0, 9]], [[2, 0, 9], [0, 0, 9]]]] });
    const result = expectPlaced(new Placer(topology).place({ size: 5, color: "c1", clients: sameRow("r1") }));
    expect(result.relaxed).toEqual(["row"]);
    expect(result.reasons).toEqual(['row "r1" has fewer than 5 c1 nodes with room for a replica (it has 3 c1 nodes)']);
    expect(result.nodes.filter((id) => ["n1", "n2", "n3"].includes(id)).length).toBe(3);
  });

  test("a row on one power domain keeps the cell in the row and reports the power rule as relaxed", () => {
    const topology = buildTopology({ powerDomains: 2, colors: 1, rows: [[[[0, 0, 9], [0, 0, 9]], [[0, 0, 9], [0, 0, 9]], [[0, 0, 9], [0, 0, 9]]], [[[1, 0, 9], [1, 0, 9]], [[1, 0, 9], [1, 0, 9]], [[1, 0, 9]]]] });
    const result = expectPlaced(new Placer(topology).place({ size: 5, color: "c1", clients: sameRow("r1") }));
    expect(result.relaxed).toEqual(["power"]);
    expect(result.reasons[0]).toBe('no choice of c1 nodes near row "r1" keeps at most 2 of 5 replicas in each power domain');
    expect(result.nodes.every((id) => ["n1", "n2", "n3", "n4", "n5", "n6"].includes(id))).toBe(true);
  });

  test("requests that name unknown things, or need more nodes than the color has, are refused with the reason", () => {
    const placer = new Placer(small);
    const error = (r: unknown) => (r as PlacementError).message;
    expect(error(placer.place({ color: "mauve", clients: sameRow("r1") }))).toBe('Cannot place cell: color "mauve" is not in the topology');
    expect(error(placer.place({ color: "blue", clients: { ...sameRow("r1"), replica: { row: "r9" } } }))).toBe('Cannot place cell: the replica\'s row "r9" has no nodes');
    expect(error(placer.place({ color: "blue", size: 0, clients: sameRow("r1") }))).toBe("Cannot place cell: size must be an integer from 1 to 15");
    const tiny = buildTopology({ powerDomains: 1, colors: 1, rows: [[[[0, 0, 1], [0, 0, 1]]]] });
    const tinyPlacer = new Placer(tiny);
    expect(error(tinyPlacer.place({ color: "c1", size: 3, clients: sameRow("r1") }))).toBe('Cannot place cell: color "c1" has 2 nodes with room for another replica; the cell needs 3');
    expectPlaced(tinyPlacer.place({ color: "c1", size: 2, clients: sameRow("r1") }));
    expect(error(tinyPlacer.place({ color: "c1", size: 1, clients: sameRow("r1") }))).toBe('Cannot place cell: color "c1" has 0 nodes with room for another replica; the cell needs 1');
  });

  test("a node already loaded by the caller is chosen after emptier nodes", () => {
    const topology = generateTopology({ rows: 1, racksPerRow: 3, nodesPerRack: 3, powerDomains: 3, colors: 1, seed: 0 }) as Topology;
    // One node per rack is busy; a strict cell needs one node from each rack, so it takes the idle ones.
    const placer = new Placer(topology, { load: new Map(["n1", "n4", "n7"].map((id) => [id, 50])) });
    const result = expectPlaced(placer.place({ size: 3, color: "blue", clients: sameRow("r1") }));
    expect(result.relaxed).toEqual([]);
    expect(result.nodes.some((id) => ["n1", "n4", "n7"].includes(id))).toBe(false);
  });
});

describe("repairing a cell", () => {
  test("the replacement is a new node of the cell's color, never a member or a down node, and the rules still hold when they can", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 6 }), fc.array(fc.integer({ min: 1, max: 90 }), { maxLength: 5 }), (salt, slot, down) => {
        const placer = new Placer(small);
        const clients = sameRow("r2");
        for (let i = 0; i < salt % 20; i++) placer.place({ color: "green", clients, salt: i });
        const cell = expectPlaced(placer.place({ color: "green", clients, salt }));
        const failed = cell.nodes[slot]!;
        const downIds = down.map((d) => `n${d}`);
        const before = { failed: placer.loadOf(failed) };
        const repair = placer.repair({ nodes: cell.nodes, color: "green", failed, clients, down: downIds });
        if (repair instanceof PlacementError) throw repair;
        expect(repair.removed).toBe(failed);
        expect(cell.nodes).not.toContain(repair.added);
        expect(downIds).not.toContain(repair.added);
        expect(repair.nodes).toEqual(cell.nodes.map((id) => (id === failed ? repair.added : id)));
        expect(small.nodes.find((n) => n.id === repair.added)!.color).toBe("green");
        expect(placer.loadOf(failed)).toBe(before.failed - 1);
        if (downIds.length === 0) expect(repair.relaxed).toEqual([]);
      }),
      { numRuns: 100 },
    );
  });

  test("repair refuses a failed node that is not a member, and members of another color", () => {
    const placer = new Placer(small);
    const cell = expectPlaced(placer.place({ color: "blue", clients: sameRow("r1") }));
    const other = small.nodes.find((n) => !cell.nodes.includes(n.id) && n.color === "blue")!.id;
    expect((placer.repair({ nodes: cell.nodes, color: "blue", failed: other, clients: sameRow("r1") }) as PlacementError).message).toBe(
      `Cannot repair cell: node "${other}" is not a member of the cell`,
    );
    expect((placer.repair({ nodes: cell.nodes, color: "green", failed: cell.nodes[0]!, clients: sameRow("r1") }) as PlacementError).message).toStartWith(
      `Cannot repair cell: node "${cell.nodes[0]}" is blue, not green`,
    );
  });
});

describe("moving a cell after its clients", () => {
  test("single-node replacements bring every replica into the clients' new row, each step a valid cell", () => {
    fc.assert(
      fc.property(fc.constantFrom("r1", "r2", "r3"), fc.constantFrom("r1", "r2", "r3"), fc.constantFrom(3, 5, 7), fc.integer({ min: 0, max: 1000 }), (from, to, size, salt) => {
        const placer = new Placer(small);
        const cell = expectPlaced(placer.place({ size, color: "blue", clients: sameRow(from), salt }));
        const plan = placer.move({ nodes: cell.nodes, color: "blue", clients: sameRow(to), salt });
        if (plan instanceof PlacementError) throw plan;
        const rowOf = (id: string) => small.nodes.find((n) => n.id === id)!.row;
        expect(plan.steps.length).toBe(from === to ? 0 : size);
        let members = [...cell.nodes];
        for (const step of plan.steps) {
          expect(members).toContain(step.remove);
          expect(members).not.toContain(step.add);
          members = members.map((id) => (id === step.remove ? step.add : id));
          expect(new Set(members).size).toBe(size);
        }
        expect([...members].sort()).toEqual([...plan.nodes].sort());
        expect(plan.nodes.every((id) => rowOf(id) === to)).toBe(true);
        expect(plan.relaxed).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });

  test("a cell crowded into one rack is spread out one node at a time", () => {
    const topology = generateTopology({ rows: 1, racksPerRow: 4, nodesPerRack: 4, powerDomains: 4, colors: 1, seed: 0 }) as Topology;
    const placer = new Placer(topology);
    const crowded = ["n1", "n2", "n3", "n5", "n9"];
    const plan = placer.move({ nodes: crowded, color: "blue", clients: sameRow("r1") });
    if (plan instanceof PlacementError) throw plan;
    expect(plan.steps.length).toBe(1);
    expect(plan.relaxed).toEqual([]);
  });

  test("when the new row has no room the plan stops and says which rule is broken", () => {
    const topology = buildTopology({ powerDomains: 3, colors: 1, rows: [[[[0, 0, 9]], [[1, 0, 9]], [[2, 0, 9]]], [[[0, 0, 9]], [[1, 0, 9]]]] });
    const placer = new Placer(topology);
    const plan = placer.move({ nodes: ["n1", "n2", "n3"], color: "c1", clients: sameRow("r2") });
    if (plan instanceof PlacementError) throw plan;
    expect(plan.steps.length).toBe(2);
    expect(plan.relaxed).toContain("row");
  });
});
