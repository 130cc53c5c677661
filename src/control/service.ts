// The control plane of one color: a separate system that drives cells only through their own
// transactions and membership changes (cells never coordinate with each other). It creates
// cells where the placer puts them, replaces members of nodes that stay down, and moves cells
// after their clients. Several processes may run; one is active, elected with a Physalia
// lease in a cell of its own (the control cell), and its state lives in cells: requests and
// the registry of cells in the control cell, each cell's clients in the cell itself. So a
// standby that takes over starts from what the cells say, and a repair that was half done
// (a replacement added, the old member not yet removed) is finished by the next pass.
//
// Pacing: a pass starts at most `stepsPerPassMax` membership changes, the cells closest to
// losing their majority first, with at most `stepsInFlightMax` under way at once, and passes
// come every `passMs`; a large-scale failure (a rack, a row, a power domain) becomes a queue
// worked through at that rate, not a storm. A pass does not wait for the changes it starts:
// they run while the next passes read the colony, so a slow change (a cell electing a leader,
// a deadline) holds up only its own cell, and the rate is the budget's, not the slowest step's.

import { registryPage, registryPrefix } from "./registry.ts";
import type { PhysaliaClient } from "../client/client.ts";
import { utf8 } from "../core/value.ts";
import { limits } from "../limits.ts";
import { nodePart } from "../wire/ids.ts";
import { type CellView, type MemberHealth, type MemberView, type PlanOptions, type Step, planStep, urgency } from "./plan.ts";
import { Placer } from "./placement/placer.ts";
import type { CellClients } from "./placement/types.ts";
import type { Topology } from "./topology/types.ts";

/** A cell as the colony knows it: its incarnation and latest members (identities). */
export interface KnownCell {
  readonly cell: string;
  readonly incarnation: string;
  readonly members: readonly string[];
}

export interface NodeHealth {
  readonly health: MemberHealth;
  readonly downForMs: number;
  /** The identity the node runs as now, when it answers. */
  readonly identity: string | null;
}

/** A sound cell planned to nothing is planned again after this many passes, up to twice as many (spread so rechecks do not fall on one pass). */
const quietPassesMin = 40;

/** Where the control plane learns of cells and nodes. */
export interface ColonyView {
  /**
   * Every registered cell the view knows. A view may hand over the very array of an earlier
   * pass when nothing in it changed (the control plane then reuses what it counted from it),
   * so it never changes an array it has handed over.
   */
  cells(): Promise<readonly KnownCell[]>;
  /** By topology id, every node of the color. */
  health(): Promise<ReadonlyMap<string, NodeHealth>>;
  /** Tells the view of a cell the control plane just created (a view may learn of cells late). */
  created?(cell: KnownCell): void;
  /** Tells the view that the control plane changed a cell's members: learn them again. */
  changed?(cell: string): void;
}

export interface ControlOptions {
  /** This process's name, the holder of the control lease. */
  readonly id: string;
  readonly topology: Topology;
  readonly color: string;
  /** A client of this color holding the control key. */
  readonly client: PhysaliaClient;
  readonly view: ColonyView;
  /** A node down this long is replaced in its cells (default 10 s). */
  readonly graceMs?: number;
  readonly passMs?: number;
  /** Membership changes started per pass at most (default 8). */
  readonly stepsPerPassMax?: number;
  /** Membership changes under way at once at most, over passes (default `stepsPerPassMax`). */
  readonly stepsInFlightMax?: number;
  /** Cells whose clients are read again per pass, in rotation (default 256). */
  readonly clientsPerPass?: number;
  readonly leaseTtlMs?: number;
  /** Cell size for new cells (default 7, fewer when the color has fewer nodes). */
  readonly size?: number;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
}

/** The control plane's own cell, per color. */
export function controlCellOf(color: string): string {
  return `physalia.control.${color}`;
}

/** Where a cell keeps the clients it serves (JSON of CellClients), in its own state. */
export const clientsKey = "physalia/clients";
const createPrefix = "create/";

export type ControlRole = "standby" | "active";

export interface PassReport {
  readonly role: ControlRole;
  readonly cells: number;
  /** The changes this pass started; they finish in the background (`settled()` waits for them). */
  readonly steps: readonly { readonly cell: string; readonly step: Step }[];
  readonly created: readonly string[];
  /** Where an active pass spent its time, in milliseconds: reading the colony, then deciding and changing. */
  readonly timings?: { readonly readMs: number; readonly clientsMs: number; readonly leaseMs: number; readonly planMs: number; readonly changeMs: number };
}

export class ControlPlane {
  role: ControlRole = "standby";
  private readonly options: ControlOptions;
  private readonly clientsCache = new Map<string, CellClients | null>();
  private readonly nodes = new Map<string, string>();
  private readonly waits = new Map<string, string>();
  /** Changes under way, by cell: one at a time per cell. */
  private readonly running = new Map<string, Promise<void>>();
  /**
   * The cells whose change was under way when this pass began: the pass does not plan them,
   * even if the change finishes while it reads the colony, since what it read may be the
   * cell's members from before the change, and planning from those would repeat it.
   */
  private held: ReadonlySet<string> = new Set();
  private readonly controlCell: string;
  private stopped = false;
  private passes = 0;
  private clientsCursor = 0;
  /** The rotation's reads of cells' clients under way (one batch at a time), or null. */
  private clientsRotation: Promise<void> | null = null;
  private readonly now: () => number;
  /** The topology in force: the one given, or the last one `updateTopology` accepted. */
  private topology: Topology;
  /** Set by `updateTopology` (to the topology it replaced): registered cells' clients are located again at the next active pass. */
  private relocateFrom: Topology | null = null;

  constructor(options: ControlOptions) {
    this.options = options;
    this.topology = options.topology;
    this.controlCell = controlCellOf(options.color);
    this.now = options.now ?? (() => performance.now());
  }

  private get size(): number {
    const nodes = this.topology.nodes.filter((n) => n.color === this.options.color).length;
    return Math.min(this.options.size ?? 7, nodes);
  }

  private log(line: string): void {
    this.options.log?.(`control ${this.options.id}: ${line}`);
  }

  /** Creates the control cell if it does not exist yet (any control process may). */
  async ensureControlCell(): Promise<void> {
    await this.options.client.create(this.controlCell, { sessionTtlMs: limits.sessionTtlMsDefault });
  }

  /** Runs passes until `stop()`, then waits for the changes under way. */
  async run(): Promise<void> {
    while (!this.stopped) {
      const started = this.now();
      try {
        await this.pass();
      } catch (error) {
        this.log(`pass failed: ${error instanceof Error ? error.message : String(error)}`);
      }
      const wait = (this.options.passMs ?? 500) - (this.now() - started);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    await Promise.all([this.settled(), this.clientsRotation]);
  }

  /** Resolves once every membership change started so far has finished (each reports its own failure in the log). */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running.values());
  }

  /** The repair rate's two bounds, defaults applied: changes started per pass, and under way at once. */
  get pacing(): { readonly stepsPerPass: number; readonly stepsInFlight: number } {
    const stepsPerPass = this.options.stepsPerPassMax ?? 8;
    return { stepsPerPass, stepsInFlight: this.options.stepsInFlightMax ?? stepsPerPass };
  }

  /** How many membership changes are under way. */
  get stepsInFlight(): number {
    return this.running.size;
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * Takes a new topology from the datacenter's automation. Its clients may have moved: each
   * registered cell created for a client (`ctl create --client`) is pointed at where that
   * client is now, and the passes move it there. The color's nodes must be the same ones at
   * the same addresses (the view and the clients were built for them): a topology that adds,
   * removes or readdresses nodes is refused, and needs the control processes restarted.
   */
  updateTopology(next: Topology): { ok: true; moved: number } | { ok: false; reason: string } {
    const nodesOf = (t: Topology) => t.nodes.filter((n) => n.color === this.options.color).map((n) => `${n.id}@${n.address}`).sort().join(",");
    if (!next.colors.includes(this.options.color)) return { ok: false, reason: `the new topology has no color ${this.options.color}` };
    if (nodesOf(next) !== nodesOf(this.topology)) return { ok: false, reason: `the nodes of color ${this.options.color} changed: restart the control processes, one at a time, to use them` };
    const moved = next.clients.filter((c) => {
      const before = this.topology.clients.find((o) => o.id === c.id);
      return before !== undefined && (before.row !== c.row || before.rack !== c.rack);
    }).length;
    this.relocateFrom ??= this.topology;
    this.topology = next;
    return { ok: true, moved };
  }
  /** One pass: hold (or take) the lease; if active, serve creation requests and reconcile. */
  async pass(): Promise<PassReport> {
    this.passes++;
    // A change that finished before this pass reads the colony, the read shows (the view was told).
    this.held = new Set(this.running.keys());
    if (!(await this.holdLease())) return { role: this.role, cells: 0, steps: [], created: [] };
    // Reading the colony takes time that grows with it (health of every node, cells in
    // rotation, their clients); it needs no lease. The lease is renewed after it, so every
    // decision of the pass is made inside a fresh validity window, however long the read was.
    const t0 = this.now();
    const [known, health] = await Promise.all([this.options.view.cells(), this.options.view.health()]);
    const t1 = this.now();
    await this.refreshClients(known.map((c) => c.cell).filter((c) => c !== this.controlCell));
    const t2 = this.now();
    const deadline = await this.holdLease();
    if (deadline === null) return { role: this.role, cells: 0, steps: [], created: [] };
    const t3 = this.now();
    const created = await this.serveCreations(known, deadline);
    if (this.relocateFrom !== null && (await this.relocateClients(this.relocateFrom, deadline))) this.relocateFrom = null;
    const { cells, steps, planMs } = await this.reconcile(known, health, deadline);
    const t4 = this.now();
    const timings = { readMs: t1 - t0, clientsMs: t2 - t1, leaseMs: t3 - t2, planMs, changeMs: t4 - t3 - planMs };
    // A pass much longer than its period slows every repair: say where the time went.
    if (t4 - t0 > 4 * (this.options.passMs ?? 500)) {
      this.log(`slow pass: ${Math.round(t4 - t0)} ms (reading the colony ${Math.round(timings.readMs)}, clients ${Math.round(timings.clientsMs)}, lease ${Math.round(timings.leaseMs)}, planning ${Math.round(planMs)}, ${steps.length} changes ${Math.round(timings.changeMs)})`);
    }
    return { role: this.role, cells, steps, created, timings };
  }

  // ---- the lease, creations, clients that moved ------------------------------------

  /** Takes or renews the lease; the time its validity ends when held, else null (standby). */
  private async holdLease(): Promise<number | null> {
    const lease = await this.options.client.lease(this.controlCell, "active", this.options.id, this.options.leaseTtlMs ?? 9_000);
    const held = lease.status === "lease" && lease.held;
    if (held !== (this.role === "active")) this.log(held ? "active" : `standby (${lease.status === "lease" ? `${lease.holder} is active` : lease.detail})`);
    this.role = held ? "active" : "standby";
    return held && lease.status === "lease" ? lease.validUntil : null;
  }

  /** Creation requests in the control cell: place, create, record, answer. */
  private async serveCreations(known: readonly KnownCell[], deadline: number): Promise<string[]> {
    const client = this.options.client;
    const page = await client.transact(this.controlCell, { reads: [], conditions: [], writes: [], scan: { start: createPrefix, end: "create0", limit: 16 } });
    if (page.status !== "committed" || page.scan === undefined) return [];
    const done: string[] = [];
    for (const [key, value] of page.scan.entries) {
      if (this.now() >= deadline) break;
      const cell = key.slice(createPrefix.length);
      const request = (value instanceof Uint8Array ? parseJson(value) : null) as { client?: unknown; size?: unknown } | null;
      const answer = await this.create(known, cell, typeof request?.client === "string" ? request.client : null, typeof request?.size === "number" ? request.size : this.size);
      await client.transact(this.controlCell, { reads: [], conditions: [], writes: [{ key, op: "delete" }, { key: `done/${cell}`, op: "put", value: utf8(JSON.stringify(answer)) }] });
      done.push(cell);
    }
    return done;
  }

  private async create(known: readonly KnownCell[], cell: string, clientId: string | null, size: number): Promise<Record<string, unknown>> {
    const client = this.options.client;
    const clients = clientId === null ? null : this.locate(clientId);
    if (clientId !== null && clients === null) return { status: "refused", cell, detail: `client ${clientId} is not in the topology` };
    const placer = this.placer(known);
    const placement = placer.place({ clients: clients ?? this.anyRow(), color: this.options.color, size });
    if (placement instanceof Error) return { status: "refused", cell, detail: placement.message };
    try {
      const outcome = await client.create(cell, { nodes: placement.nodes });
      if (outcome.status === "created" && clients !== null) {
        await client.transact(cell, { reads: [], conditions: [], writes: [{ key: clientsKey, op: "put", value: utf8(JSON.stringify(clients)) }] });
      }
      await client.transact(this.controlCell, { reads: [], conditions: [], writes: [{ key: `${registryPrefix}${cell}`, op: "put", value: utf8(JSON.stringify({ client: clientId })) }] });
      this.options.view.created?.({ cell, incarnation: outcome.incarnation, members: outcome.members });
      this.clientsCache.set(cell, clients);
      this.log(`${outcome.status} ${cell} on ${outcome.members.map(nodePart).join(", ")}${placement.relaxed.length > 0 ? ` (relaxed: ${placement.reasons.join("; ")})` : ""}`);
      return { status: outcome.status, cell, incarnation: outcome.incarnation, members: outcome.members };
    } catch (error) {
      return { status: "failed", cell, detail: error instanceof Error ? error.message : String(error) };
    }
  }

  /**
   * After a new topology: every registered cell created for a client, and still placed for
   * where that client was (not attached elsewhere since), gets the client's new place in its
   * `physalia/clients`. True once every cell is done.
   */
  private async relocateClients(previous: Topology, deadline: number): Promise<boolean> {
    const client = this.options.client;
    for (let start = registryPrefix; ;) {
      if (this.now() >= deadline) return false;
      const page = await registryPage(client, this.controlCell, start);
      if (page === null) return false;
      for (const [cell, value] of page.entries) {
        const clientId = (value instanceof Uint8Array ? (parseJson(value) as { client?: unknown } | null) : null)?.client;
        if (typeof clientId !== "string") continue;
        const where = this.locate(clientId);
        if (where === null) {
          this.note(cell, `its client ${clientId} is not in the new topology; it stays where it is`);
          continue;
        }
        const read = await client.transact(cell, { reads: [clientsKey], conditions: [], writes: [] }).catch(() => null);
        if (read === null || read.status !== "committed") return false;
        const current = read.reads[0];
        const now = current instanceof Uint8Array ? JSON.stringify(parseJson(current)) : null;
        const before = this.locate(clientId, previous);
        if (now === JSON.stringify(where) || before === null || now !== JSON.stringify(before)) continue;
        const write = await client.transact(cell, { reads: [], conditions: [], writes: [{ key: clientsKey, op: "put", value: utf8(JSON.stringify(where)) }] }).catch(() => null);
        if (write === null || write.status !== "committed") return false;
        this.clientsCache.set(cell, where);
        this.log(`${cell}: its client ${clientId} is now in ${where.instance.row}${where.instance.rack === undefined ? "" : `/${where.instance.rack}`}; moving the cell there`);
      }
      if (page.next === null) return true;
      start = page.next;
    }
  }

  /** A client of the topology, as the three places a cell serves (one client: all three). */
  private locate(clientId: string, topology: Topology = this.topology): CellClients | null {
    const entry = topology.clients.find((c) => c.id === clientId);
    if (entry === undefined) return null;
    const where = { row: entry.row, rack: entry.rack };
    return { instance: where, primary: where, replica: where };
  }

  private anyRow(): CellClients {
    const node = this.topology.nodes.find((n) => n.color === this.options.color);
    const where = { row: node?.row ?? "" };
    return { instance: where, primary: where, replica: where };
  }

  // ---- planning: the placer's load, what each cell needs, quiet cells --------------

  /**
   * Sound cells the last plan left alone, by the object the view handed over (a view hands
   * the same object while the cell's entry does not change), with what the plan read.
   */
  private readonly quiet = new WeakMap<KnownCell, { readonly clients: CellClients | null | undefined; readonly topology: Topology; readonly until: number }>();
  private quietCount = 0;

  /** The members counted by the last placer, and the cells they were counted from. */
  private loadCount: { readonly cells: readonly KnownCell[]; readonly perIdentity: ReadonlyMap<string, number> } | null = null;

  /** A placer that knows how full each node is, and counts nodes that are down as full: nothing goes there. */
  private placer(cells: readonly KnownCell[], down: ReadonlySet<string> = new Set()): Placer {
    // Counted by identity, then folded into nodes: one map update per member (identities are
    // few). A view that saw nothing change hands over the same array: counted once for it.
    let perIdentity = this.loadCount?.cells === cells ? this.loadCount.perIdentity : null;
    if (perIdentity === null) {
      const counted = new Map<string, number>();
      for (const { members } of cells) for (const m of members) counted.set(m, (counted.get(m) ?? 0) + 1);
      this.loadCount = { cells, perIdentity: counted };
      perIdentity = counted;
    }
    const load = new Map<string, number>();
    for (const [m, count] of perIdentity) {
      const node = this.nodeOf(m);
      load.set(node, (load.get(node) ?? 0) + count);
    }
    const capacity = new Map(this.topology.nodes.map((n) => [n.id, n.capacity]));
    for (const id of load.keys()) if (!capacity.has(id)) load.delete(id);
    for (const id of down) if (capacity.has(id)) load.set(id, capacity.get(id) as number);
    return new Placer(this.topology, { load });
  }

  /** What each cell needs, most urgent first, and at most `stepsPerPassMax` steps of it. */
  private async reconcile(cells: readonly KnownCell[], health: ReadonlyMap<string, NodeHealth>, deadline: number): Promise<{ cells: number; steps: { cell: string; step: Step }[]; planMs: number }> {
    const planStarted = this.now();
    const graceMs = this.options.graceMs ?? 10_000;
    // Once a pass: it walks the topology's nodes (it was once per cell, two thirds of a pass).
    const size = this.size;
    const downNodes = new Set([...health].filter(([, h]) => h.health !== "alive").map(([node]) => node));
    const placer = this.placer(cells, downNodes);
    // Only a cell with a member not alive (or replaced), or one over its size, can be urgent:
    // those get a view now and are sorted; the healthy rest (urgency 0, maybe a move to plan)
    // follow in registry order, each viewed only if the budget reaches it. Building a view
    // of each of 10,000 cells every pass cost the one thread of the repair bench tens of ms.
    const urgent: { cell: KnownCell; view: CellView; urgency: number }[] = [];
    const healthy: KnownCell[] = [];
    // Whether each identity some cell names is alive and still its node's: decided once per
    // identity a pass, so the walk over every member of every cell is a lookup each.
    const live = new Map<string, boolean>();
    const isLive = (m: string) => {
      let alive = live.get(m);
      if (alive === undefined) {
        const h = health.get(this.nodeOf(m));
        alive = h !== undefined && h.health === "alive" && (h.identity === null || h.identity === m);
        live.set(m, alive);
      }
      return alive;
    };
    for (const cell of cells) {
      if (cell.cell === this.controlCell) continue;
      let sound = cell.members.length <= size;
      for (let i = 0; sound && i < cell.members.length; i++) sound = isLive(cell.members[i] as string);
      if (sound) healthy.push(cell);
      else {
        const view = this.cellView(cell, health, null);
        urgent.push({ cell, view, urgency: urgency(view, { graceMs }) });
      }
    }
    urgent.sort((a, b) => b.urgency - a.urgency);
    const self = this;
    const views = (function* (): Generator<{ cell: KnownCell; view: CellView }> {
      yield* urgent;
      for (const cell of healthy) {
        // A sound cell planned to nothing is not planned again while its members, its clients
        // and the topology stay what they were, until its recheck comes round (the placer's
        // load, which a move's choice reads, drifts slowly).
        const quiet = self.quiet.get(cell);
        if (quiet !== undefined && quiet.clients === self.clientsCache.get(cell.cell) && quiet.topology === self.topology && self.passes < quiet.until) continue;
        yield { cell, view: self.cellView(cell, health, null) };
      }
    })();
    const options: PlanOptions = { size, graceMs, catchUpSlots: 2, downNodes };
    const steps: { cell: string; step: Step }[] = [];
    const { stepsPerPass, stepsInFlight } = this.pacing;
    const budget = Math.min(stepsPerPass, stepsInFlight - this.running.size);
    // Cells one over their size with every member alive wait for everyone to catch up, which
    // needs the members' applied slots: those cells are asked together, as many as the budget
    // has room for, and planned again; one cell's hellos never hold up the next cell's.
    let catchUp: KnownCell[] = [];
    const decide = (cell: KnownCell, step: Step) => {
      if (step.kind === "wait") this.note(cell.cell, step.reason);
      else if (step.kind !== "none") steps.push({ cell: cell.cell, step });
    };
    const askCatchUp = async () => {
      const asked = await Promise.all(catchUp.map(async (cell) => ({ cell, view: this.cellView(cell, health, await this.appliedOf(cell)) })));
      catchUp = [];
      for (const { cell, view } of asked) if (steps.length < budget) decide(cell, planStep(view, placer, options));
    };
    for (const { cell, view: first } of views) {
      if (steps.length + catchUp.length >= budget) await askCatchUp();
      if (steps.length >= budget || this.now() >= deadline) break;
      // One change at a time per cell: a cell whose change was under way when the pass began
      // is planned by a later pass, one whose read shows its new members.
      if (this.held.has(cell.cell)) continue;
      const step = planStep(first, placer, options);
      if (step.kind === "none" && first.members.every((m) => m.health === "alive")) {
        const recheck = quietPassesMin + (this.quietCount++ % quietPassesMin);
        this.quiet.set(cell, { clients: this.clientsCache.get(cell.cell), topology: this.topology, until: this.passes + recheck });
      }
      if (step.kind === "wait" && first.members.length > options.size && first.members.every((m) => m.health === "alive")) catchUp.push(cell);
      else decide(cell, step);
    }
    if (catchUp.length > 0 && this.now() < deadline) await askCatchUp();
    const planMs = this.now() - planStarted;
    for (const { cell, step } of steps) {
      const change = this.carryOut(cell, step).finally(() => {
        this.running.delete(cell);
      });
      this.running.set(cell, change);
    }
    return { cells: urgent.length + healthy.length, steps, planMs };
  }

  /** Says why a cell waits, once per reason, so an operator can see what the control plane is stuck on. */
  private note(cell: string, reason: string): void {
    if (this.waits.get(cell) === reason) return;
    this.waits.set(cell, reason);
    this.log(`${cell}: waiting: ${reason}`);
  }

  /** Each member's applied slot, as its node answers (a member that does not answer is left out). */
  private async appliedOf(cell: KnownCell): Promise<ReadonlyMap<string, number>> {
    const applied = new Map<string, number>();
    await Promise.all(cell.members.map(async (member) => {
      const answer = await this.options.client.hello(cell.cell, this.nodeOf(member), 1_000).catch(() => null);
      if (answer?.identity === member && answer.hosted !== null) applied.set(member, answer.hosted.applied);
    }));
    return applied;
  }

  /** What the planner sees of a cell; `applied`, when the members were asked, gives each one's applied slot and the leader's. */
  private cellView(cell: KnownCell, health: ReadonlyMap<string, NodeHealth>, applied: ReadonlyMap<string, number> | null): CellView {
    const leaderApplied = applied === null ? null : Math.max(-1, ...applied.values());
    const members = cell.members.map((identity): MemberView => {
      const node = this.nodeOf(identity);
      const h = health.get(node);
      // A node that answers as another identity lost its disk: the member is gone for good.
      const replaced = h !== undefined && h.identity !== null && h.identity !== identity;
      return {
        identity, node,
        health: replaced ? "dead" : (h?.health ?? "dead"),
        downForMs: replaced ? Number.MAX_SAFE_INTEGER : (h?.downForMs ?? Number.MAX_SAFE_INTEGER),
        applied: applied?.get(identity) ?? null,
      };
    });
    return { cell: cell.cell, color: this.options.color, members, clients: this.clientsCache.get(cell.cell) ?? null, leaderApplied };
  }

  /** A member's topology id, remembered: identities are few (a node's, per incarnation) and every pass asks for each member of every cell. */
  private nodeOf(identity: string): string {
    let node = this.nodes.get(identity);
    if (node === undefined) {
      node = nodePart(identity);
      this.nodes.set(identity, node);
    }
    return node;
  }

  // ---- cells' clients, read from the cells -----------------------------------------

  /**
   * Reads cells' clients from their own state: the pass waits for those not read yet, while
   * `clientsPerPass` more are read again in rotation (an `attach` rewrites them) in the
   * background, a batch at a time; each with a bounded number of reads in flight.
   */
  private async refreshClients(cells: readonly string[]): Promise<void> {
    const todo = cells.filter((cell) => !this.clientsCache.has(cell));
    if (this.clientsRotation === null && todo.length < cells.length) {
      const rotation: string[] = [];
      for (let i = 0; i < Math.min(this.options.clientsPerPass ?? 256, cells.length); i++) rotation.push(cells[(this.clientsCursor + i) % cells.length] as string);
      this.clientsCursor = cells.length === 0 ? 0 : (this.clientsCursor + rotation.length) % cells.length;
      this.clientsRotation = this.readClients(rotation).finally(() => {
        this.clientsRotation = null;
      });
    }
    await this.readClients(todo);
  }

  private async readClients(todo: readonly string[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const cell = todo[next++] as string;
        // Where a cell's clients are changes rarely and is read again in rotation: one
        // replica's applied state will do, without a round through the cell's log.
        const result = await this.options.client.transact(cell, { reads: [clientsKey], conditions: [], writes: [] }, { consistency: "eventual" }).catch(() => null);
        if (result === null || result.status !== "committed") continue;
        const value = result.reads[0];
        this.clientsCache.set(cell, value instanceof Uint8Array ? (parseJson(value) as CellClients | null) : null);
      }
    };
    await Promise.all(Array.from({ length: Math.min(64, todo.length) }, worker));
  }

  // ---- carrying a step out ---------------------------------------------------------

  private async carryOut(cell: string, step: Step): Promise<void> {
    const client = this.options.client;
    try {
      if (step.kind === "add") {
        const identity = await client.join(cell, step.node);
        const result = await client.configure(cell, { kind: "addMember", node: identity });
        this.log(`${cell}: added ${identity} (${step.reason}): ${result.status}${"detail" in result ? ` ${result.detail}` : ""}`);
      } else if (step.kind === "remove") {
        const result = await client.configure(cell, { kind: "removeMember", node: step.identity });
        this.log(`${cell}: removed ${step.identity} (${step.reason}): ${result.status}${"detail" in result ? ` ${result.detail}` : ""}`);
      }
    } catch (error) {
      this.log(`${cell}: ${step.kind} failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    this.options.view.changed?.(cell);
  }
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}
