import { describe, expect, test } from "bun:test";
import { ColonySim, type ColonySimReport } from "../../src/discovery/sim/colony.ts";
import { smallScenario } from "../../src/discovery/sim/scenarios.ts";

// One run of the small scenario (50 nodes, 2,000 cells, loss, a partition, crashes, poison)
// shared by the tests below: it takes a few seconds.
const sim = new ColonySim(smallScenario(1));
const report: ColonySimReport = sim.run();

describe("the discovery simulation, 50 nodes and 2,000 cells", () => {
  test("every membership and leader change reaches every node that is up, in every phase", () => {
    for (const phase of report.phases) {
      expect([phase.name, phase.unconverged]).toEqual([phase.name, 0]);
      if (phase.name !== "quiet" && phase.name !== "settle") expect(phase.changes).toBeGreaterThan(20);
    }
    // With 1% loss and no partition, changes spread in a handful of rounds.
    const steady = report.phases.find((p) => p.name === "steady")!;
    expect(steady.convergenceRounds.max).toBeLessThan(15);
    // During the partition, changes on the far side wait for it to heal (20 s), not longer.
    const partition = report.phases.find((p) => p.name === "partition")!;
    expect(partition.convergenceSeconds.max).toBeGreaterThan(10);
    expect(partition.convergenceSeconds.max).toBeLessThan(40);
  });

  test("at the end every node holds the true entry of every cell", () => {
    expect(sim.disagreements()).toBe(0);
  });

  test("crashed nodes are suspected, then declared dead, by every node; none is dead wrongly at the end", () => {
    expect(report.liveness.crashes).toBe(3);
    expect(report.liveness.undetected).toBe(0);
    expect(report.liveness.allDeadSeconds.max).toBeLessThan(20);
    expect(report.phases.at(-1)!.wronglyDeadPairs).toBe(0);
    expect(report.liveness.refutations).toBeGreaterThan(0);
    expect(report.rebuild.incomplete).toBe(0);
  });

  test("every kind of poisoned entry is gone by the end; stale ones never spread", () => {
    expect(report.poison.map((p) => p.kind).sort()).toEqual(["futureVersion", "higherEpochStale", "nonMemberLeader", "phantom", "staleBackup", "wrongMembers"]);
    for (const poison of report.poison) {
      expect([poison.kind, poison.heldAtEnd]).toEqual([poison.kind, 0]);
      expect(poison.injected).toBeGreaterThan(0);
      expect(poison.healedSeconds).not.toBeNull();
    }
    const byKind = new Map(report.poison.map((p) => [p.kind, p]));
    // A stale entry loses to every peer's newer one: it stays where it was put until replaced.
    expect(byKind.get("staleBackup")!.spreadMax).toBeLessThanOrEqual(byKind.get("staleBackup")!.injected);
    // Entries a member can prove wrong are corrected long before they could expire (120 s).
    for (const kind of ["wrongMembers", "higherEpochStale", "nonMemberLeader"] as const) expect(byKind.get(kind)!.healedSeconds!).toBeLessThan(90);
    // The others only expire.
    for (const kind of ["futureVersion", "phantom"] as const) expect(byKind.get(kind)!.healedSeconds!).toBeGreaterThanOrEqual(119);
  });

  test("the same seed replays exactly", () => {
    const options = { ...smallScenario(7), nodes: 12, cells: 200, phases: smallScenario(7).phases.slice(0, 2) };
    const a = new ColonySim(options).run();
    const b = new ColonySim(options).run();
    expect(b).toEqual(a);
    expect(a.events).toBeGreaterThan(1_000);
  });
});
