import { describe, expect, test } from "bun:test";
import { type CellView, type MemberView, planStep, urgency } from "../../src/control/plan.ts";
import { Placer } from "../../src/control/placement/placer.ts";
import type { CellClients } from "../../src/control/placement/types.ts";
import { parseTopology } from "../../src/control/topology/parse.ts";
import type { Topology } from "../../src/control/topology/types.ts";

// Two rows of six nodes, three racks and three power domains in each.
function topology(): Topology {
  const nodes = [];
  for (const row of ["r1", "r2"]) {
    for (let i = 0; i < 6; i++) {
      nodes.push({ id: `${row}n${i}`, address: `127.0.0.1:${row === "r1" ? 7100 + i : 7200 + i}`, row, rack: `${row}k${i % 3}`, power: `p${i % 3}`, color: "blue", capacity: 1000 });
    }
  }
  const parsed = parseTopology(JSON.stringify({ version: 1, powerDomains: ["p0", "p1", "p2"], colors: ["blue"], nodes, clients: [] }));
  if (parsed instanceof Error) throw parsed;
  return parsed;
}

const inRow = (row: string): CellClients => ({ instance: { row }, primary: { row }, replica: { row } });
const member = (node: string, health: MemberView["health"] = "alive", downForMs = 0, applied: number | null = 10): MemberView => ({ identity: `${node}~000000000000000${node.length % 10}`, node, health, downForMs, applied });
const options = { size: 3, graceMs: 5_000, catchUpSlots: 2, downNodes: new Set<string>() };

function view(members: MemberView[], clients: CellClients | null = inRow("r1")): CellView {
  return { cell: "vol", color: "blue", members, clients, leaderApplied: 10 };
}

describe("the control plane's plan for one cell", () => {
  test("a well-placed healthy cell needs nothing", () => {
    const placer = new Placer(topology());
    expect(planStep(view([member("r1n0"), member("r1n1"), member("r1n2")]), placer, options)).toEqual({ kind: "none" });
  });

  test("a member down within the grace period is left alone; past it, a replacement near the clients is added, never a down node", () => {
    const placer = new Placer(topology());
    const members = [member("r1n0"), member("r1n1"), member("r1n2", "dead", 1_000)];
    expect(planStep(view(members), placer, options)).toEqual({ kind: "none" });
    members[2] = member("r1n2", "dead", 6_000);
    // The one free node of r1n2's rack (k2) keeps every rule.
    expect(planStep(view(members), placer, { ...options, downNodes: new Set(["r1n2"]) })).toMatchObject({ kind: "add", node: "r1n5" });
    // With that node down too, the replacement is another node of the row (the rack rule
    // gives way), and never a down one.
    const step = planStep(view(members), placer, { ...options, downNodes: new Set(["r1n2", "r1n5"]) });
    expect(step.kind).toBe("add");
    const added = (step as { node: string }).node;
    expect(added.startsWith("r1")).toBe(true);
    expect(["r1n0", "r1n1", "r1n2", "r1n5"]).not.toContain(added);
  });

  test("once the replacement is added, the dead member is removed, not a live one", () => {
    const placer = new Placer(topology());
    const step = planStep(view([member("r1n0"), member("r1n1"), member("r1n2", "dead", 9_000), member("r1n5")]), placer, options);
    expect(step).toMatchObject({ kind: "remove", identity: member("r1n2").identity });
  });

  test("a cell one over its size with all alive waits for the newest member to catch up, then drops the worst placed", () => {
    const placer = new Placer(topology());
    const members = [member("r1n0"), member("r1n1"), member("r1n2"), member("r2n0", "alive", 0, -1)];
    expect(planStep(view(members), placer, options).kind).toBe("wait");
    members[3] = member("r2n0", "alive", 0, 10);
    // The clients are in r2 now: keep r2n0, drop one of r1.
    const step = planStep(view(members, inRow("r2")), placer, options);
    expect(step.kind).toBe("remove");
    expect((step as { identity: string }).identity.startsWith("r1")).toBe(true);
  });

  test("a cell whose clients moved to another row follows them, one node at a time, adding first", () => {
    const placer = new Placer(topology());
    const step = planStep(view([member("r1n0"), member("r1n1"), member("r1n2")], inRow("r2")), placer, options);
    expect(step.kind).toBe("add");
    expect((step as { node: string }).node.startsWith("r2")).toBe(true);
  });

  test("without a majority alive nothing is planned (a change could not be chosen); urgency ranks the cells closest to losing theirs first", () => {
    const placer = new Placer(topology());
    const lost = view([member("r1n0"), member("r1n1", "dead", 9_000), member("r1n2", "dead", 9_000)]);
    expect(planStep(lost, placer, options).kind).toBe("wait");
    const onEdge = view([member("r1n0"), member("r1n1"), member("r1n2", "dead", 9_000)]);
    const comfortable = view([member("r1n0"), member("r1n1"), member("r1n2"), member("r1n3"), member("r1n4", "dead", 9_000)]);
    const healthy = view([member("r1n0"), member("r1n1"), member("r1n2")]);
    expect(urgency(onEdge, options)).toBeGreaterThan(urgency(comfortable, options));
    expect(urgency(comfortable, options)).toBeGreaterThan(urgency(healthy, options));
    expect(urgency(healthy, options)).toBe(0);
  });
});
