import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { buildCluster } from "../../../src/control/placement/cluster.ts";
import { brokenRules, cellShape, majority, spreadCap } from "../../../src/control/placement/rules.ts";
import { buildTopology, topologyShape } from "../support.ts";

describe("the placement rules", () => {
  test("a 7-replica cell needs 4 and may put 3 in one rack; 9 needs 5 and may put 4", () => {
    expect([1, 2, 3, 4, 5, 7, 9].map((n) => [majority(n), spreadCap(n)])).toEqual([
      [1, 0],
      [2, 0],
      [2, 1],
      [3, 1],
      [3, 2],
      [4, 3],
      [5, 4],
    ]);
  });

  test("a cell keeps the rack rule exactly when losing any one of its racks leaves a majority", () => {
    fc.assert(
      fc.property(topologyShape(), fc.array(fc.nat(), { minLength: 1, maxLength: 9 }), (shape, picks) => {
        const cluster = buildCluster(buildTopology(shape));
        const nodes = [...new Set(picks.map((p) => p % cluster.nodeCount))];
        const shapeOf = cellShape(cluster, nodes, cluster.nodeRow[nodes[0]!]!);
        const survives = [...new Set(nodes.map((n) => cluster.nodeRack[n]!))].every(
          (rack) => nodes.filter((n) => cluster.nodeRack[n] !== rack).length >= majority(nodes.length),
        );
        expect(brokenRules(shapeOf).includes("racks")).toBe(!survives);
        if (nodes.length >= 3 && survives) expect(shapeOf.racks).toBeGreaterThanOrEqual(3);
      }),
    );
  });
});
