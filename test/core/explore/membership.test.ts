// Issue 9 in the explorer: two membership changes inside one pipeline window, a scripted
// prefix that puts A behind while C and N compact past it, then everything A's takeover can
// lead to (membershipScenario). Each of latePromise and emptyAck must be caught, together
// they must choose two values for one slot, and without them nothing may be found.

import { describe, expect, test } from "bun:test";
import { long, note, now, timeoutMs } from "./modes.ts";
import { type MembershipOptions, membershipScenario } from "./scenarios.ts";
import { exhaustive } from "./search.ts";

// CI: every link delivers in order. Long: one message out of order and one lost per path.
const options: MembershipOptions = long ? { budget: { reorders: 1, drops: 1 } } : { budget: {} };

function search(extra: MembershipOptions) {
  const scenario = membershipScenario({ ...options, ...extra });
  const report = exhaustive(scenario.root, scenario.bounds, { now });
  note(`membership, ${(extra.mutations ?? []).join("+") || "no mutation"}${extra.checks ? ` (${extra.checks.join(", ")} only)` : ""}: ${report.states} states, ${report.elapsedMs} ms: ${report.violation}`);
  return report;
}

describe("issue 9: membership changes in the explorer", () => {
  test("latePromise is caught: a leader proposes a fresh value into a slot chosen before it (P2c)", () => {
    const report = search({ mutations: ["latePromise"] });
    expect(report.violation).toMatch(/^P2c: A proposed into slot 6 at 2\.A .* but it was chosen at 1\.C/);
  }, timeoutMs);

  test("emptyAck is caught: an acceptor acknowledges a slot it holds only as applied (invariant A)", () => {
    const report = search({ mutations: ["emptyAck"] });
    expect(report.violation).toMatch(/^invariant A: [CN] acknowledged slot \d at 2\.A to A, holding no vote/);
  }, timeoutMs);

  test("both together choose two values for one slot", () => {
    const report = search({ mutations: ["latePromise", "emptyAck"], checks: ["agreement"] });
    expect(report.violation).toMatch(/^agreement: \w+ (chose|applied|learned) slot 6/);
  }, timeoutMs);

  test("each alone, with the agreement check only, is not enough to choose two values here", () => {
    for (const mutation of ["latePromise", "emptyAck"] as const) {
      const report = search({ mutations: [mutation], checks: ["agreement"] });
      expect(report.violation).toBeNull();
      expect(report.complete).toBe(true);
    }
  }, timeoutMs);

  test("without mutations, no reachable state breaks an invariant", () => {
    const report = search({});
    expect(report.violation).toBeNull();
    expect(report.complete).toBe(true);
    expect(report.states).toBeGreaterThan(5000);
  }, timeoutMs);
});
