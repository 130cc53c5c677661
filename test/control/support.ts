// Arbitrary irregular topologies for property tests, built directly (not through the
// generator under test): racks of different sizes, nodes of mixed power domains and colors
// within a rack, and capacities that sometimes bind.

import fc from "fast-check";
import type { Topology, TopologyNode } from "../../src/control/topology/types.ts";

export interface TopologyShape {
  readonly powerDomains: number;
  readonly colors: number;
  /** rows[r][k] lists rack k of row r: one [power, color, capacity] per node. */
  readonly rows: readonly (readonly (readonly (readonly [number, number, number])[])[])[];
}

export function topologyShape(options: { maxRows?: number; maxRacks?: number; maxNodes?: number; maxCapacity?: number } = {}): fc.Arbitrary<TopologyShape> {
  const { maxRows = 3, maxRacks = 5, maxNodes = 4, maxCapacity = 1000 } = options;
  return fc
    .record({ powerDomains: fc.integer({ min: 1, max: 4 }), colors: fc.integer({ min: 1, max: 3 }) })
    .chain(({ powerDomains, colors }) =>
      fc.record({
        powerDomains: fc.constant(powerDomains),
        colors: fc.constant(colors),
        rows: fc.array(
          fc.array(
            fc.array(
              fc.tuple(
                fc.integer({ min: 0, max: powerDomains - 1 }),
                fc.integer({ min: 0, max: colors - 1 }),
                fc.oneof(fc.constant(maxCapacity), fc.integer({ min: 1, max: maxCapacity })),
              ),
              { minLength: 1, maxLength: maxNodes },
            ),
            { minLength: 1, maxLength: maxRacks },
          ),
          { minLength: 1, maxLength: maxRows },
        ),
      }),
    );
}

export function buildTopology(shape: TopologyShape): Topology {
  const nodes: TopologyNode[] = [];
  shape.rows.forEach((racks, r) =>
    racks.forEach((rack, k) =>
      rack.forEach(([power, color, capacity]) => {
        const i = nodes.length + 1;
        nodes.push({
          id: `n${i}`,
          address: `127.0.0.1:${7100 + i}`,
          row: `r${r + 1}`,
          rack: `r${r + 1}-k${k + 1}`,
          power: `p${power + 1}`,
          color: `c${color + 1}`,
          capacity,
        });
      }),
    ),
  );
  return {
    version: 1,
    powerDomains: Array.from({ length: shape.powerDomains }, (_, i) => `p${i + 1}`),
    colors: Array.from({ length: shape.colors }, (_, i) => `c${i + 1}`),
    nodes,
    clients: [],
  };
}
