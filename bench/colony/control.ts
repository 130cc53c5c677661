// The colony's control plane: the passes of src/control/service.ts over the simulated world,
// deciding with the same pure code (planStep, urgency and the Placer, built per pass from the
// load the known memberships put on each node, with nodes that are down counted as full).
// What differs is only how it learns and acts, which service.ts does through a
// PhysaliaClient and a ColonyView: here node health is whether the control plane can reach
// the node (a node it cannot reach is dead from its first silence, as ProbeView counts it),
// a cell's members are described from its replicas after every change, as ProbeView does
// after `changed`, and the cells' clients come from the attachments the world records (what
// `ctl attach` writes into each cell under physalia/clients).

import type { CellView, MemberView, PlanOptions, Step } from "../../src/control/plan.ts";
import { planStep, urgency } from "../../src/control/plan.ts";
import type { Cluster } from "../../src/control/placement/cluster.ts";
import { Placer } from "../../src/control/placement/placer.ts";
import type { CellClients } from "../../src/control/placement/types.ts";
import type { ConfigChange } from "../../src/core/messages.ts";
import { nodePart } from "../../src/wire/ids.ts";

/** What the control plane needs of the world it runs in. */
export interface ControlHost {
  now(): number;
  at(timeMs: number, action: () => void): void;
  /** The control plane can reach this node: it is up and on the control plane's side of every cut. */
  reachable(node: string): boolean;
  /** The slot a member has applied, as its answer to a hello says; null when it does not answer. */
  applied(identity: string, cell: string): number | null;
  /** The latest membership a reachable replica of the cell holds (the one furthest applied), as a describe returns it. */
  describe(cell: string): readonly string[] | null;
  /** Asks a node to host an empty replica of the cell; `done` gets its identity, or null when it did not answer. */
  join(node: string, cell: string, incarnation: string, done: (identity: string | null) => void): void;
  /** Submits a membership change to the cell; `done` says whether the cell answered `configured`. */
  configure(cell: string, change: ConfigChange, done: (configured: boolean) => void): void;
}

export interface ControlLoopOptions {
  readonly cluster: Cluster;
  readonly color: string;
  readonly size: number;
  readonly graceMs: number;
  readonly passMs: number;
  readonly stepsPerPassMax: number;
  /** Whether cells' clients are given to the planner: off for the random-placement baseline, whose repairs are blind too. */
  readonly followClients: boolean;
}

export interface ControlStats {
  passes: number;
  adds: number;
  removes: number;
  /** Steps whose join or membership change got no answer in time. */
  failedSteps: number;
  /** Cells the planner said must wait (fewer than a majority alive, or no node free). */
  waits: number;
}

interface KnownCell {
  readonly incarnation: string;
  members: readonly string[];
}

export class ControlLoop {
  readonly known = new Map<string, KnownCell>();
  /** Where each cell's clients are, as attached. */
  readonly clients = new Map<string, CellClients>();
  readonly stats: ControlStats = { passes: 0, adds: 0, removes: 0, failedSteps: 0, waits: 0 };
  private readonly silentSince = new Map<string, number>();
  private stopped = false;

  constructor(private readonly host: ControlHost, private readonly options: ControlLoopOptions) {}

  register(cell: string, incarnation: string, members: readonly string[], clients: CellClients): void {
    this.known.set(cell, { incarnation, members });
    this.clients.set(cell, clients);
  }

  start(): void {
    this.host.at(this.host.now(), () => this.pass());
  }

  stop(): void {
    this.stopped = true;
  }

  private pass(): void {
    if (this.stopped) return;
    const host = this.host;
    const started = host.now();
    this.stats.passes++;
    const { cluster, graceMs, size } = this.options;
    const downNodes = new Set<string>();
    const downFor = new Map<string, number>();
    for (const node of cluster.nodeIds) {
      if (host.reachable(node)) {
        this.silentSince.delete(node);
        continue;
      }
      const since = this.silentSince.get(node) ?? started;
      this.silentSince.set(node, since);
      downNodes.add(node);
      downFor.set(node, started - since);
    }
    // The placer as service.ts builds it: load from the known memberships, down nodes full.
    const load = new Map<string, number>();
    for (const { members } of this.known.values()) for (const m of members) load.set(nodePart(m), (load.get(nodePart(m)) ?? 0) + 1);
    for (const node of downNodes) load.set(node, cluster.nodeCapacity[cluster.nodeIndex.get(node) as number] as number);
    const placer = new Placer(cluster, { load });
    const views: CellView[] = [];
    for (const [cell, known] of this.known) views.push(this.cellView(cell, known, downFor, false));
    const urgencies = new Map(views.map((v) => [v.cell, urgency(v, { graceMs })]));
    views.sort((a, b) => (urgencies.get(b.cell) as number) - (urgencies.get(a.cell) as number));
    const options: PlanOptions = { size, graceMs, catchUpSlots: 2, downNodes };
    const steps: { cell: string; step: Step }[] = [];
    for (const first of views) {
      if (steps.length >= this.options.stepsPerPassMax) break;
      let step = planStep(first, placer, options);
      if (step.kind === "wait" && first.members.length > size) {
        step = planStep(this.cellView(first.cell, this.known.get(first.cell) as KnownCell, downFor, true), placer, options);
      }
      if (step.kind === "wait") this.stats.waits++;
      if (step.kind === "none" || step.kind === "wait") continue;
      steps.push({ cell: first.cell, step });
    }
    let pending = steps.length;
    const next = () => host.at(Math.max(started + this.options.passMs, host.now()), () => this.pass());
    if (pending === 0) {
      next();
      return;
    }
    for (const { cell, step } of steps) {
      this.carryOut(cell, step, () => {
        if (--pending === 0) next();
      });
    }
  }

  private cellView(cell: string, known: KnownCell, downFor: ReadonlyMap<string, number>, withApplied: boolean): CellView {
    const applied = new Map<string, number>();
    if (withApplied) {
      for (const member of known.members) {
        const slot = this.host.reachable(nodePart(member)) ? this.host.applied(member, cell) : null;
        if (slot !== null) applied.set(member, slot);
      }
    }
    const members = known.members.map((identity): MemberView => {
      const node = nodePart(identity);
      const down = downFor.get(node);
      return { identity, node, health: down === undefined ? "alive" : "dead", downForMs: down ?? 0, applied: applied.get(identity) ?? null };
    });
    const clients = this.options.followClients ? (this.clients.get(cell) ?? null) : null;
    return { cell, color: this.options.color, members, clients, leaderApplied: withApplied ? Math.max(-1, ...applied.values()) : null };
  }

  private carryOut(cell: string, step: Step, done: () => void): void {
    const known = this.known.get(cell) as KnownCell;
    const finish = (ok: boolean) => {
      if (!ok) this.stats.failedSteps++;
      // As after service.ts's `changed`: learn the cell's members again from its replicas.
      const members = this.host.describe(cell);
      if (members !== null) known.members = members;
      done();
    };
    if (step.kind === "add") {
      this.host.join(step.node, cell, known.incarnation, (identity) => {
        if (identity === null) return finish(false);
        this.host.configure(cell, { kind: "addMember", node: identity }, (ok) => {
          if (ok) this.stats.adds++;
          finish(ok);
        });
      });
    } else if (step.kind === "remove") {
      this.host.configure(cell, { kind: "removeMember", node: step.identity }, (ok) => {
        if (ok) this.stats.removes++;
        finish(ok);
      });
    } else {
      done();
    }
  }
}
