// The colony's control plane: the real one. A `ControlPlane` of src/control/service.ts, the
// class `physalia control` runs, makes every decision and every call of its passes here: the
// lease, the clients' reads in rotation, the creation scan, urgency and planStep, the placer,
// the pacing (steps a pass, changes in flight, a cell held while its change is under way),
// the quiet cells, the joins and membership changes. What is simulated is only what it talks
// through: a client whose calls are answered by the world (`SimControlClient`) and a view of
// the colony (`SimView`).
//
// - The client's joins and membership changes go to the cells' replicas over the simulated
//   network, from the spine (where the control plane sits), and are answered in simulated
//   time; a hello is answered from the member's replica if the spine can reach its node. The
//   lease is the plane's at once (one control process; the control cell itself is not
//   simulated) and the control cell holds no creation requests.
// - A cell's clients are what `ctl attach` writes into it, `physalia/clients`, read by the
//   plane 256 cells a pass in rotation; here the world's record of where each cell's client
//   is. For random placement there are none (the baseline's repairs are blind too).
// - The view is ProbeView's: a node is alive while the spine can reach it and dead from its
//   first silence (no gossip delay); a cell's members are described from its replicas when
//   the plane says it changed them, as ProbeView does after `changed`.
//
// The world runs the plane's promises between its events (ColonyWorld.runUntil drains them),
// so a run stays a function of its seed.

import type { PhysaliaClient } from "../../src/client/client.ts";
import type { Cluster } from "../../src/control/placement/cluster.ts";
import type { CellClients } from "../../src/control/placement/types.ts";
import { type ColonyView, ControlPlane, type KnownCell, type NodeHealth, clientsKey, controlCellOf } from "../../src/control/service.ts";
import type { Topology } from "../../src/control/topology/types.ts";
import type { ConfigChange } from "../../src/core/messages.ts";
import { utf8 } from "../../src/core/value.ts";

/** What the control plane needs of the world it runs in. */
export interface ControlHost {
  now(): number;
  at(timeMs: number, action: () => void): void;
  /** The control plane can reach this node: it is up and on the control plane's side of every cut. */
  reachable(node: string): boolean;
  /** The node's identity now. */
  identityOf(node: string): string | null;
  /** The slot a member has applied, as its answer to a hello says; null when it does not answer. */
  applied(identity: string, cell: string): number | null;
  /** The latest membership a reachable replica of the cell holds (the one furthest applied), as a describe returns it. */
  describe(cell: string): readonly string[] | null;
  /** Asks a node to host an empty replica of the cell; `done` gets its identity, or null when it did not answer. */
  join(node: string, cell: string, incarnation: string, done: (identity: string | null) => void): void;
  /** Submits a membership change to the cell; `done` says whether the cell answered `configured`. */
  configure(cell: string, change: ConfigChange, done: (configured: boolean) => void): void;
  /** Something the plane waits on was answered: the world lets its promises run before the next event. */
  woke(): void;
}

export interface ColonyControlOptions {
  readonly cluster: Cluster;
  readonly topology: Topology;
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
  /** Cells the planner said must wait (fewer than a majority alive, or no node free): the plane's "waiting" notes. */
  waits: number;
}

/** How long the plane's calls may wait for an answer, as the client's deadline (10 s in `physalia control`). */
const callDeadlineMs = 10_000;

/** ProbeView's knowledge, kept by the world: health from reachability, members described after each change. */
class SimView implements ColonyView {
  readonly known = new Map<string, KnownCell>();
  private handed: KnownCell[] | null = null;
  private readonly silentSince = new Map<string, number>();

  constructor(private readonly host: ControlHost, private readonly nodes: readonly string[], private readonly controlCell: string) {}

  register(cell: KnownCell): void {
    this.known.set(cell.cell, cell);
    this.handed = null;
  }

  async cells(): Promise<readonly KnownCell[]> {
    this.handed ??= [...this.known.values()];
    return this.handed;
  }

  async health(): Promise<ReadonlyMap<string, NodeHealth>> {
    const now = this.host.now();
    const out = new Map<string, NodeHealth>();
    for (const node of this.nodes) {
      const identity = this.host.identityOf(node);
      if (this.host.reachable(node)) {
        this.silentSince.delete(node);
        out.set(node, { health: "alive", downForMs: 0, identity });
        continue;
      }
      const since = this.silentSince.get(node) ?? now;
      this.silentSince.set(node, since);
      out.set(node, { health: "dead", downForMs: now - since, identity });
    }
    return out;
  }

  changed(cell: string): void {
    const held = this.known.get(cell);
    const members = this.host.describe(cell);
    if (held === undefined || members === null || cell === this.controlCell) return;
    this.known.set(cell, { ...held, members: [...members] });
    this.handed = null;
  }
}

/** The calls of PhysaliaClient the control plane makes, answered by the world. */
class SimControlClient {
  /** Where each cell's clients are, as `ctl attach` wrote them into the cell; absent for the random baseline. */
  readonly clients = new Map<string, CellClients>();

  constructor(private readonly host: ControlHost, private readonly view: SimView, private readonly controlCell: string, private readonly stats: ControlStats, private readonly followClients: boolean) {}

  /** A promise the world answers later; past the deadline it fails, as the client's would. */
  private later<T>(start: (settle: (value: T | Error) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const settle = (value: T | Error) => {
        if (settled) return;
        settled = true;
        this.host.woke();
        if (value instanceof Error) reject(value);
        else resolve(value);
      };
      this.host.at(this.host.now() + callDeadlineMs, () => settle(new Error(`no answer within ${callDeadlineMs} ms`)));
      start(settle);
    });
  }

  async lease(_cell: string, _name: string, holder: string, ttlMs: number): Promise<unknown> {
    return { status: "lease", granted: true, held: true, holder, validUntil: this.host.now() + ttlMs / 3, validForMs: ttlMs / 3 };
  }

  async transact(cell: string, tx: { readonly reads: readonly string[]; readonly scan?: unknown }): Promise<unknown> {
    if (cell === this.controlCell) return { status: "committed", reads: [], scan: { entries: [], next: null } };
    const where = this.followClients ? this.clients.get(cell) : undefined;
    return { status: "committed", reads: tx.reads.map((key) => (key === clientsKey && where !== undefined ? utf8(JSON.stringify(where)) : undefined)) };
  }

  async hello(cell: string, node: string): Promise<{ identity: string; hosted: { applied: number } | null }> {
    const identity = this.host.identityOf(node);
    if (identity === null || !this.host.reachable(node)) throw new Error(`${node} does not answer`);
    const applied = this.host.applied(identity, cell);
    return { identity, hosted: applied === null ? null : { applied } };
  }

  join(cell: string, node: string): Promise<string> {
    const incarnation = this.view.known.get(cell)?.incarnation ?? "";
    return this.later<string>((settle) => this.host.join(node, cell, incarnation, (identity) => settle(identity ?? new Error(`${node} did not join ${cell}`)))).catch((error: unknown) => {
      this.stats.failedSteps++;
      throw error;
    });
  }

  configure(cell: string, change: ConfigChange): Promise<unknown> {
    return this.later<unknown>((settle) => this.host.configure(cell, change, (configured) => {
      if (configured) {
        if (change.kind === "addMember") this.stats.adds++;
        else if (change.kind === "removeMember") this.stats.removes++;
        settle({ status: "configured" });
      } else {
        this.stats.failedSteps++;
        settle({ status: "unavailable", detail: "the change was not chosen" });
      }
    })).catch((error: unknown) => {
      this.stats.failedSteps++;
      throw error;
    });
  }
}

/** The real control plane in the colony world, a pass every `passMs` of simulated time. */
export class ColonyControl {
  readonly stats: ControlStats = { passes: 0, adds: 0, removes: 0, failedSteps: 0, waits: 0 };
  private readonly view: SimView;
  private readonly client: SimControlClient;
  private readonly plane: ControlPlane;
  private stopped = false;

  constructor(private readonly host: ControlHost, private readonly options: ColonyControlOptions) {
    const controlCell = controlCellOf(options.color);
    this.view = new SimView(host, options.cluster.nodeIds.filter((_, i) => options.cluster.colorNames[options.cluster.nodeColor[i] as number] === options.color), controlCell);
    this.client = new SimControlClient(host, this.view, controlCell, this.stats, options.followClients);
    this.plane = new ControlPlane({
      id: "control-sim", topology: options.topology, color: options.color, client: this.client as unknown as PhysaliaClient, view: this.view,
      graceMs: options.graceMs, passMs: options.passMs, stepsPerPassMax: options.stepsPerPassMax, size: options.size, now: () => host.now(),
      log: (line) => {
        if (line.includes(": waiting: ")) this.stats.waits++;
      },
    });
  }

  register(cell: string, incarnation: string, members: readonly string[], clients: CellClients): void {
    this.view.register({ cell, incarnation, members });
    this.client.clients.set(cell, clients);
  }

  /** A client moved: what `ctl attach` writes into the cell, which the plane reads in its rotation. */
  attach(cell: string, clients: CellClients): void {
    this.client.clients.set(cell, clients);
  }

  /** The members the plane knows of a cell. */
  membersOf(cell: string): readonly string[] {
    return this.view.known.get(cell)?.members ?? [];
  }

  start(): void {
    this.host.at(this.host.now(), () => this.pass());
  }

  stop(): void {
    this.stopped = true;
    this.plane.stop();
  }

  private pass(): void {
    if (this.stopped) return;
    const started = this.host.now();
    this.stats.passes++;
    this.host.woke();
    void this.plane.pass().catch(() => undefined).then(() => {
      if (!this.stopped) this.host.at(Math.max(started + this.options.passMs, this.host.now()), () => this.pass());
    });
  }
}
