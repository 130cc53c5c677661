// Leases under clock drift, in the simworld with every fault: safe as long as no clock runs
// more than three times faster than another (limits.clockRateRatioMax), and shown to break
// past that bound, which is what the factor in the holder's count is for.

import { describe, expect, test } from "bun:test";
import { limits } from "../../src/limits.ts";
import { defaultSimOptions, faultKinds, runSimulation } from "../../src/sim/mod.ts";

function run(ratio: number, seeds: number): { granted: number; overlapping: number; firstFailure: string | null; minGapMs: number; otherFailures: string[] } {
  let granted = 0;
  let overlapping = 0;
  let firstFailure: string | null = null;
  let minGapMs = Infinity;
  const otherFailures: string[] = [];
  for (let seed = 1; seed <= seeds; seed++) {
    const report = runSimulation({ ...defaultSimOptions, seed, faults: new Set(faultKinds), clockRateRatio: ratio, leaseClientsPerCell: 3 });
    granted += report.stats.leasesGranted;
    minGapMs = Math.min(minGapMs, report.stats.leaseGapMinMs);
    const leases = report.failures.filter((f) => f.includes("two holders"));
    if (leases.length > 0) {
      overlapping++;
      firstFailure ??= `seed ${seed}: ${leases[0]}`;
    }
    otherFailures.push(...report.failures.filter((f) => !f.includes("two holders")).map((f) => `seed ${seed}: ${f}`));
  }
  return { granted, overlapping, firstFailure, minGapMs, otherFailures };
}

describe("leases in the simworld", () => {
  test(`never two holders while the fastest clock runs at most ${limits.clockRateRatioMax}x the slowest`, () => {
    const result = run(limits.clockRateRatioMax, 40);
    expect(result.otherFailures).toEqual([]);
    expect(result.firstFailure).toBeNull();
    // Leases changed hands, often and close to the edge.
    expect(result.granted).toBeGreaterThan(400);
    expect(result.minGapMs).toBeLessThan(200);
  }, 300_000);

  test("with clocks 6x apart, twice the bound, two holders do overlap", () => {
    const result = run(2 * limits.clockRateRatioMax, 40);
    expect(result.overlapping).toBeGreaterThan(0);
    expect(result.firstFailure).toContain("two holders at once");
  }, 300_000);
});
