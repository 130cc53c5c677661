import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { formatTopology } from "../../../src/control/topology/format.ts";
import { type GenerateOptions, generateTopology } from "../../../src/control/topology/generate.ts";
import { loadTopology } from "../../../src/control/topology/load.ts";
import { parseTopology } from "../../../src/control/topology/parse.ts";
import { type Topology, TopologyError } from "../../../src/control/topology/types.ts";

function generated(options: GenerateOptions): Topology {
  const topology = generateTopology(options);
  if (topology instanceof TopologyError) throw topology;
  return topology;
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

function spread(counts: Map<string, number>): number {
  const values = [...counts.values()];
  return Math.max(...values) - Math.min(...values);
}

const optionsArbitrary = fc.record({
  rows: fc.integer({ min: 1, max: 4 }),
  racksPerRow: fc.integer({ min: 1, max: 6 }),
  nodesPerRack: fc.integer({ min: 1, max: 8 }),
  powerDomains: fc.integer({ min: 1, max: 5 }),
  colors: fc.integer({ min: 1, max: 6 }),
  seed: fc.integer({ min: 0, max: 0xffff_ffff }),
  clients: fc.integer({ min: 0, max: 20 }),
});

describe("the synthetic datacenter generator", () => {
  test("rows x racks x nodes come out with the counts asked for, and the result is a valid topology", () => {
    fc.assert(
      fc.property(optionsArbitrary, (options) => {
        const topology = generated(options);
        expect(topology.nodes.length).toBe(options.rows * options.racksPerRow * options.nodesPerRack);
        expect(countBy(topology.nodes, (n) => n.row).size).toBe(options.rows);
        expect(countBy(topology.nodes, (n) => n.rack).size).toBe(options.rows * options.racksPerRow);
        expect(topology.clients.length).toBe(options.clients);
        expect(parseTopology(formatTopology(topology))).toEqual(topology);
      }),
      { numRuns: 60 },
    );
  });

  test("each rack hangs off one power domain and neighbouring racks off different ones", () => {
    fc.assert(
      fc.property(optionsArbitrary, (options) => {
        const topology = generated(options);
        const rackPower = new Map<string, Set<string>>();
        for (const node of topology.nodes) rackPower.set(node.rack, (rackPower.get(node.rack) ?? new Set()).add(node.power));
        const racks = [...rackPower.values()];
        for (const powers of racks) expect(powers.size).toBe(1);
        const used = new Set(racks.map((p) => [...p][0]));
        expect(used.size).toBe(Math.min(options.powerDomains, options.rows * options.racksPerRow));
        if (options.powerDomains > 1) {
          for (let i = 1; i < racks.length; i++) expect([...racks[i]!][0]).not.toBe([...racks[i - 1]!][0]);
        }
      }),
      { numRuns: 60 },
    );
  });

  test("colors are spread evenly: within every rack, and over the whole datacenter", () => {
    fc.assert(
      fc.property(optionsArbitrary, (options) => {
        const topology = generated(options);
        const racks = countBy(topology.nodes, (n) => n.rack);
        for (const rack of racks.keys()) {
          const inRack = topology.nodes.filter((n) => n.rack === rack);
          const colors = countBy(inRack, (n) => n.color);
          if (options.nodesPerRack >= options.colors) expect(colors.size).toBe(options.colors);
          expect(spread(colors)).toBeLessThanOrEqual(1);
        }
        const total = countBy(topology.nodes, (n) => n.color);
        if (topology.nodes.length >= options.colors) {
          expect(total.size).toBe(options.colors);
          expect(spread(total)).toBeLessThanOrEqual(1);
        }
      }),
      { numRuns: 60 },
    );
  });

  test("the same options and seed give the same file, and another seed moves only the clients", () => {
    const base = { rows: 3, racksPerRow: 4, nodesPerRack: 5, powerDomains: 3, colors: 4, seed: 1, clients: 50 };
    expect(formatTopology(generated(base))).toBe(formatTopology(generated(base)));
    const other = generated({ ...base, seed: 2 });
    expect(other.nodes).toEqual(generated(base).nodes);
    expect(other.clients).not.toEqual(generated(base).clients);
  });

  test("loopback addressing gives 127.0.0.1 with consecutive ports from the base port", () => {
    const topology = generated({ rows: 1, racksPerRow: 3, nodesPerRack: 3, powerDomains: 3, colors: 1, seed: 0, addressing: "loopback", port: 7101 });
    expect(topology.nodes.map((n) => n.address)).toEqual(Array.from({ length: 9 }, (_, i) => `127.0.0.1:${7101 + i}`));
  });

  test.each<[Partial<GenerateOptions>, string]>([
    [{ rows: 0 }, "rows must be an integer from 1 to 255"],
    [{ nodesPerRack: 255 }, "nodes must be an integer from 1 to 254"],
    [{ colors: 1.5 }, "colors must be an integer from 1 to 64"],
    [{ seed: -1 }, "seed must be an integer from 0 to 4294967295"],
    [{ addressing: "loopback", port: 65_530 }, "loopback ports 65530..65537 run past 65535"],
  ])("bad options %p are refused: %s", (change, problem) => {
    const result = generateTopology({ rows: 2, racksPerRow: 2, nodesPerRack: 2, powerDomains: 2, colors: 2, seed: 0, ...change });
    expect(result).toBeInstanceOf(TopologyError);
    expect((result as TopologyError).message).toBe(`Cannot generate topology: ${problem}`);
  });
});

describe("the sample topologies in topology/", () => {
  test("local.json is 7 to 9 nodes on 127.0.0.1 with distinct ports from 7101, and one cell fits it strictly", async () => {
    const topology = await loadTopology("topology/local.json");
    if (topology instanceof TopologyError) throw topology;
    expect(topology.nodes.length).toBeGreaterThanOrEqual(7);
    expect(topology.nodes.length).toBeLessThanOrEqual(9);
    expect(topology.nodes.every((n) => n.address.startsWith("127.0.0.1:"))).toBe(true);
    const ports = topology.nodes.map((n) => Number(n.address.split(":")[1]));
    expect(new Set(ports).size).toBe(ports.length);
    expect(Math.min(...ports)).toBe(7101);
  });

  test("small.json and large.json load, and large.json has at least 10,000 nodes", async () => {
    const small = await loadTopology("topology/small.json");
    const large = await loadTopology("topology/large.json");
    expect(small).not.toBeInstanceOf(TopologyError);
    if (large instanceof TopologyError) throw large;
    expect(large.nodes.length).toBeGreaterThanOrEqual(10_000);
  });

  test("large.json is what the generator makes from the options written in the docs", async () => {
    const large = await loadTopology("topology/large.json");
    const expected = generated({ rows: 20, racksPerRow: 25, nodesPerRack: 20, powerDomains: 4, colors: 5, seed: 3, clients: 3000, name: "large" });
    expect(large).toEqual(expected);
  });

  test("a missing file is an error value that names the path", async () => {
    const result = await loadTopology("topology/absent.json");
    expect(result).toBeInstanceOf(TopologyError);
    expect((result as TopologyError).message).toStartWith('Cannot load topology "topology/absent.json": ');
  });
});
