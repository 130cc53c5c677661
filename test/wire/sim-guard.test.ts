// The simworld drives the real frames, role checks and replay guard: half the seeds run with
// the guard and half without, since safety must never depend on it.

import { expect, test } from "bun:test";
import { defaultSimOptions, faultKinds, runSimulation } from "../../src/sim/mod.ts";

test("seeds pass with the replay guard on and off; with it on, duplicated frames are dropped as replayed", () => {
  const byGuard = { on: { seeds: 0, replayed: 0, duplicated: 0 }, off: { seeds: 0, replayed: 0, duplicated: 0 } };
  for (let seed = 1; seed <= 24; seed++) {
    const report = runSimulation({ ...defaultSimOptions, seed, faults: new Set(faultKinds) });
    expect(report.failures).toEqual([]);
    const side = report.stats.replayGuard ? byGuard.on : byGuard.off;
    side.seeds++;
    side.replayed += report.stats.framesReplayed;
    side.duplicated += report.stats.framesDuplicated;
  }
  expect(byGuard.on.seeds).toBe(12);
  expect(byGuard.off.seeds).toBe(12);
  expect(byGuard.off.replayed).toBe(0);
  // Most duplicates reach a live receiver after their twin; lost, corrupted or late ones do not.
  expect(byGuard.on.replayed).toBeGreaterThan(byGuard.on.duplicated / 2);
  expect(byGuard.on.replayed).toBeLessThanOrEqual(byGuard.on.duplicated + 50);
  // An explicit choice overrides the seed's.
  expect(runSimulation({ ...defaultSimOptions, seed: 2, replayGuard: false }).stats.replayGuard).toBe(false);
}, 120_000);
