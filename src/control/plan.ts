// The control plane's decision for one cell, pure: given what the colony knows of the cell
// (its members, which of them are alive, where its clients are) and of the nodes, the next
// single membership change, or none. The control plane drives cells only through their own
// membership changes, one at a time, always adding before removing, so a cell never has
// fewer live members than it had, and never shrinks below three.
//
// The order of concerns:
// 1. A cell one member over its size (a replacement was added) loses a member: a dead one
//    first; else, once every live member has caught up with the cell, the one whose removal
//    leaves the best placement (fewest broken rules, then nearest to the clients).
// 2. A member dead for longer than the grace period is replaced: the placer picks a node of
//    the cell's color near its clients, sparing other dead nodes.
// 3. A cell whose members are far from its clients (or crowd a rack or power domain) follows
//    them: the first step of the placer's move plan.
// Nothing is planned for a cell with fewer live members than a majority: a change needs a
// quorum to be chosen, so it would only wait.

import { Placer } from "./placement/placer.ts";
import { brokenRules, cellShape, majority } from "./placement/rules.ts";
import type { CellClients } from "./placement/types.ts";

export type MemberHealth = "alive" | "suspect" | "dead";

export interface MemberView {
  /** The member's identity, `node~incarnation`. */
  readonly identity: string;
  /** Its topology id. */
  readonly node: string;
  readonly health: MemberHealth;
  /** How long it has been suspected or dead, as far as the colony knows. */
  readonly downForMs: number;
  /** The slot it has applied, when known (-1: not yet taught; null: not asked). */
  readonly applied: number | null;
}

export interface CellView {
  readonly cell: string;
  readonly color: string;
  readonly members: readonly MemberView[];
  /** Where the cell's clients are; null when the cell has none recorded (it is left where it is). */
  readonly clients: CellClients | null;
  /** The slot the cell's leader has applied, when known. */
  readonly leaderApplied: number | null;
}

export interface PlanOptions {
  /** The cell's intended size (7 unless the colony is too small). */
  readonly size: number;
  /** A member down for longer than this is replaced. */
  readonly graceMs: number;
  /** How far behind the leader a member may be and still count as caught up. */
  readonly catchUpSlots: number;
  /** Nodes that are down (never chosen as a replacement). */
  readonly downNodes: ReadonlySet<string>;
}

export type Step =
  | { readonly kind: "add"; readonly node: string; readonly reason: string }
  | { readonly kind: "remove"; readonly identity: string; readonly reason: string }
  | { readonly kind: "wait"; readonly reason: string }
  | { readonly kind: "none" };

/** How urgently a cell needs work: the fewer spare live members above a majority, the sooner. */
export function urgency(view: CellView, options: Pick<PlanOptions, "graceMs">): number {
  const size = view.members.length;
  const live = view.members.filter((m) => m.health === "alive").length;
  const dead = view.members.filter((m) => m.health !== "alive" && m.downForMs >= options.graceMs).length;
  if (dead === 0) return 0;
  const spare = live - majority(size);
  // Spare 0 (one more loss and the cell is down) first, then 1, ...; then by how many are dead.
  return 1_000 - 100 * Math.max(0, spare) + dead;
}

export function planStep(view: CellView, placer: Placer, options: PlanOptions): Step {
  const members = view.members;
  const live = members.filter((m) => m.health === "alive");
  if (live.length < majority(members.length)) return { kind: "wait", reason: `only ${live.length} of ${members.length} members are alive, fewer than a majority` };

  if (members.length > options.size) {
    const dead = [...members].filter((m) => m.health !== "alive").sort((a, b) => b.downForMs - a.downForMs)[0];
    if (dead !== undefined) return { kind: "remove", identity: dead.identity, reason: `${dead.identity} is ${dead.health} and its replacement was added` };
    const lagging = live.filter((m) => m.applied === null || view.leaderApplied === null || m.applied < view.leaderApplied - options.catchUpSlots);
    if (lagging.length > 0) return { kind: "wait", reason: `waiting for ${lagging.map((m) => m.identity).join(", ")} to catch up before removing a member` };
    const victim = view.clients === null ? null : bestRemoval(view, placer, view.clients);
    if (victim !== null) return { kind: "remove", identity: victim, reason: "the cell is one over its size; this member is the worst placed" };
    return { kind: "none" };
  }

  const expired = [...members].filter((m) => m.health !== "alive" && m.downForMs >= options.graceMs).sort((a, b) => b.downForMs - a.downForMs)[0];
  if (expired !== undefined) {
    if (view.clients === null) return pickAny(view, placer, options, `${expired.identity} has been ${expired.health} for ${Math.round(expired.downForMs)} ms`);
    const repair = placer.repair({ nodes: members.map((m) => m.node), color: view.color, failed: expired.node, clients: view.clients, down: [...options.downNodes] });
    if (repair instanceof Error) return { kind: "wait", reason: repair.message };
    return { kind: "add", node: repair.added, reason: `replacing ${expired.identity}, ${expired.health} for ${Math.round(expired.downForMs)} ms` };
  }

  if (view.clients !== null && members.every((m) => m.health === "alive")) {
    const plan = placer.move({ nodes: members.map((m) => m.node), color: view.color, clients: view.clients });
    if (plan instanceof Error) return { kind: "none" };
    const first = plan.steps[0];
    if (first !== undefined) return { kind: "add", node: first.add, reason: `following its clients: ${first.add} in place of ${first.remove}` };
  }
  return { kind: "none" };
}

/** The member whose removal leaves the cell best placed for its clients. */
function bestRemoval(view: CellView, placer: Placer, clients: CellClients): string | null {
  const cluster = placer.cluster;
  const row = cluster.rowIndex.get(clients.primary.row === clients.replica.row ? clients.primary.row : clients.instance.row);
  if (row === undefined) return null;
  const indexes = view.members.map((m) => cluster.nodeIndex.get(m.node));
  if (indexes.some((i) => i === undefined)) return null;
  let best: { identity: string; score: number } | null = null;
  view.members.forEach((member, i) => {
    const rest = (indexes as number[]).filter((_, j) => j !== i);
    const shape = cellShape(cluster, rest, row);
    // Fewer broken rules first; then more members in the clients' row.
    const score = brokenRules(shape).length * 100 - shape.inRow;
    if (best === null || score < best.score) best = { identity: member.identity, score };
  });
  return (best as { identity: string } | null)?.identity ?? null;
}

/** A replacement for a cell with no clients recorded: the least loaded node of its color not already in it and not down. */
function pickAny(view: CellView, placer: Placer, options: PlanOptions, reason: string): Step {
  const cluster = placer.cluster;
  const color = cluster.colorIndex.get(view.color);
  const taken = new Set(view.members.map((m) => m.node));
  let best: { node: string; load: number } | null = null;
  for (let i = 0; i < cluster.nodeCount; i++) {
    const node = cluster.nodeIds[i] as string;
    if (cluster.nodeColor[i] !== color || taken.has(node) || options.downNodes.has(node)) continue;
    const load = placer.loadOf(node);
    if (best === null || load < best.load) best = { node, load };
  }
  const chosen = best as { node: string } | null;
  return chosen === null ? { kind: "wait", reason: `no node of color ${view.color} is free to replace a member` } : { kind: "add", node: chosen.node, reason };
}
