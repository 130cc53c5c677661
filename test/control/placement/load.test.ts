import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { buildCluster } from "../../../src/control/placement/cluster.ts";
import { LoadState } from "../../../src/control/placement/load.ts";
import { buildTopology, topologyShape } from "../support.ts";

describe("the load-ordered groups", () => {
  test("after any sequence of increments and decrements, each group is ordered by fill and every load matches a plain count", () => {
    fc.assert(
      fc.property(topologyShape({ maxCapacity: 50 }), fc.array(fc.tuple(fc.nat(), fc.boolean()), { maxLength: 300 }), (shape, ops) => {
        const cluster = buildCluster(buildTopology(shape));
        const state = new LoadState(cluster);
        const model = new Array<number>(cluster.nodeCount).fill(0);
        for (const [pick, up] of ops) {
          const node = pick % cluster.nodeCount;
          if (up) {
            state.increment(node);
            model[node]!++;
          } else if (model[node]! > 0) {
            state.decrement(node);
            model[node]!--;
          }
        }
        expect(Array.from(state.load)).toEqual(model);
        for (let g = 0; g < cluster.groupCount; g++) {
          const start = cluster.groupStart[g]!;
          const end = cluster.groupStart[g + 1]!;
          for (let i = start; i < end; i++) {
            const node = state.order[i]!;
            expect(state.position[node]).toBe(i);
            expect(cluster.nodeGroup[node]).toBe(g);
            if (i > start) expect(state.compareFill(state.order[i - 1]!, node)).toBeLessThanOrEqual(0);
          }
        }
        const bucketTotal = Array.from(state.bucketLoad).reduce((a, b) => a + b, 0);
        expect(bucketTotal).toBe(model.reduce((a, b) => a + b, 0));
      }),
      { numRuns: 200 },
    );
  });

  test("a node with twice the capacity is as full as its neighbour with twice the replicas", () => {
    const cluster = buildCluster(buildTopology({ powerDomains: 1, colors: 1, rows: [[[[0, 0, 10], [0, 0, 20]]]] }));
    const state = new LoadState(cluster, Int32Array.from([1, 2]));
    expect(state.compareFill(0, 1)).toBe(0);
    state.increment(1);
    expect(state.compareFill(0, 1)).toBeLessThan(0);
    expect(state.order[cluster.groupStart[0]!]).toBe(0);
  });

  test("taking a replica from an empty node is a bug in the caller", () => {
    const cluster = buildCluster(buildTopology({ powerDomains: 1, colors: 1, rows: [[[[0, 0, 10]]]] }));
    expect(() => new LoadState(cluster).decrement(0)).toThrow("a node without replicas cannot lose one");
  });
});
