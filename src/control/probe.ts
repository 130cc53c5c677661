// A view of the colony for the control plane that needs nothing but the nodes themselves:
// node health by asking every node who it is each pass (a node that does not answer is down
// from its first silence), and the cells from the control cell's registry, each described by
// its own replicas. It suits a small colony; the discovery cache is the view at scale.
//
// Nothing a pass reads waits on a node already known to be silent: its probe runs on across
// passes and counts once it answers, and the registry is read again in the background while
// passes go on with the names of the last read. A dead node used to cost every pass its
// whole probe deadline (400 ms of a 500 ms pass) before anything was planned.

import { readRegistry } from "./registry.ts";
import type { PhysaliaClient } from "../client/client.ts";
import { nodePart } from "../wire/ids.ts";
import type { ColonyView, KnownCell, NodeHealth } from "./service.ts";

export interface ProbeViewOptions {
  readonly client: PhysaliaClient;
  /** The color's nodes, by topology id. */
  readonly nodes: readonly string[];
  readonly controlCell: string;
  /** A node that does not answer within this is counted silent for the pass. */
  readonly probeMs?: number;
  /** Cells described again in rotation, a batch in the background at a time, besides new and changed ones (default 256). */
  readonly describePerPass?: number;
  /** Describes in flight at once, for the pass's own and for the rotation's each (default 64): a pass must not flood the nodes it asks. */
  readonly describeConcurrency?: number;
  /** The registry is read again every this many passes (default 20), and at once after a creation. */
  readonly rescanEvery?: number;
  readonly now?: () => number;
}

/**
 * Costs per pass: one hello per node, and describes of the cells that are new and that the
 * control plane just changed; besides, `describePerPass` more in rotation whenever the last
 * batch is done. Cells change members
 * only through the control plane (or a node's own rejoin, which the rotation finds), so a
 * colony of many cells does not cost a describe of each cell every pass.
 */
export class ProbeView implements ColonyView {
  private readonly silentSince = new Map<string, number>();
  /** Probes under way, by node: one at a time, so a silent node's probe spans passes. */
  private readonly probes = new Map<string, Promise<void>>();
  /** The last answer of a node's probe since `health()` last looked: its identity, or null for silence. */
  private readonly answers = new Map<string, string | null>();
  private rescan: Promise<void> | null = null;
  /** The rotation's describes under way (one batch at a time), or null. */
  private rotating: Promise<void> | null = null;
  /** Describes are numbered as they begin; per cell, the newest whose answer counts, or the number of its last change. */
  private tickets = 0;
  private readonly newestTicket = new Map<string, number>();
  /** Counts creations told: a background read begun before one does not replace the names read after it. */
  private generation = 0;
  private readonly known = new Map<string, KnownCell>();
  private readonly stale = new Set<string>();
  private readonly nodeIds: ReadonlySet<string>;
  private names: string[] | null = null;
  private scans = 0;
  private cursor = 0;
  private readonly now: () => number;

  constructor(private readonly options: ProbeViewOptions) {
    this.now = options.now ?? (() => performance.now());
    this.nodeIds = new Set(options.nodes);
  }

  created(cell: KnownCell): void {
    this.known.set(cell.cell, { ...cell, members: cell.members.filter((m) => this.nodeIds.has(nodePart(m))) });
    this.names = null;
    this.generation++;
  }

  changed(cell: string): void {
    this.stale.add(cell);
    this.newestTicket.set(cell, ++this.tickets);
  }

  async health(): Promise<ReadonlyMap<string, NodeHealth>> {
    const waitFor: Promise<void>[] = [];
    for (const node of this.options.nodes) {
      let probe = this.probes.get(node);
      if (probe === undefined) {
        probe = this.options.client.hello(this.options.controlCell, node, this.options.probeMs ?? 400).then((answer) => answer.identity, () => null).then((identity) => {
          this.answers.set(node, identity);
          this.probes.delete(node);
        });
        this.probes.set(node, probe);
      }
      // A node that answered last time is waited for (up to the probe's deadline); a silent
      // one is not: it stays down until a probe of it answers, a pass later at most.
      if (!this.silentSince.has(node)) waitFor.push(probe);
    }
    await Promise.all(waitFor);
    const now = this.now();
    const out = new Map<string, NodeHealth>();
    for (const node of this.options.nodes) {
      const answer = this.answers.get(node);
      this.answers.delete(node);
      if (typeof answer === "string") {
        this.silentSince.delete(node);
        out.set(node, { health: "alive", downForMs: 0, identity: answer });
      } else {
        // Silent (answer null), or its probe is still out after an earlier silence.
        const since = this.silentSince.get(node) ?? now;
        this.silentSince.set(node, since);
        out.set(node, { health: "dead", downForMs: now - since, identity: null });
      }
    }
    return out;
  }

  async cells(): Promise<readonly KnownCell[]> {
    if (this.names === null) {
      this.scans = 0;
      this.names = (await readRegistry(this.options.client, this.options.controlCell)).names;
    } else if (++this.scans % (this.options.rescanEvery ?? 20) === 0 && this.rescan === null) {
      // Read again in the background: this pass and the next go on with the names they have.
      const generation = this.generation;
      this.rescan = readRegistry(this.options.client, this.options.controlCell).then(({ names, complete }) => {
        // A scan cut short adds what it read to the names known: only a complete one drops a cell.
        if (this.names !== null && generation === this.generation) this.names = complete ? names : [...new Set([...this.names, ...names])];
      }, () => undefined).finally(() => {
        this.rescan = null;
      });
    }
    const names = this.names;
    const registered = new Set(names);
    for (const cell of this.known.keys()) {
      if (registered.has(cell)) continue;
      this.known.delete(cell);
      this.newestTicket.delete(cell);
    }
    const todo = new Set<string>();
    for (const cell of names) if (!this.known.has(cell)) todo.add(cell);
    for (const cell of this.stale) if (registered.has(cell)) todo.add(cell);
    this.stale.clear();
    if (this.rotating === null && todo.size < names.length) {
      // The rotation looks for changes the control plane did not make (a node's own rejoin):
      // it runs in the background, a batch at a time, and the pass waits only for the cells
      // it must know now, the new and the just changed.
      const rotation = Math.min(this.options.describePerPass ?? 256, names.length);
      const batch: string[] = [];
      for (let i = 0; i < rotation; i++) batch.push(names[(this.cursor + i) % names.length] as string);
      this.cursor = names.length === 0 ? 0 : (this.cursor + rotation) % names.length;
      this.rotating = this.describeAll(batch).finally(() => {
        this.rotating = null;
      });
    }
    await this.describeAll([...todo]);
    return [...this.known.values()];
  }

  private async describeAll(cells: readonly string[]): Promise<void> {
    const client = this.options.client;
    let next = 0;
    const worker = async () => {
      while (next < cells.length) {
        const cell = cells[next++] as string;
        const ticket = ++this.tickets;
        const described = await client.describe(cell).catch(() => null);
        if (described === null) {
          // Not found this time: a cell we never saw is left for a later pass; a known one keeps what we knew.
          continue;
        }
        // An answer counts only if its describe began after the cell's last change and after
        // the describe whose answer is known: an older one may show the members from before.
        if (ticket < (this.newestTicket.get(cell) ?? 0)) continue;
        this.newestTicket.set(cell, ticket);
        // Members on nodes outside the color's topology are left out once, here, not every pass.
        this.known.set(cell, { cell, incarnation: described.hosted.incarnation, members: described.hosted.members.filter((m) => this.nodeIds.has(nodePart(m))) });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.describeConcurrency ?? 64, cells.length) }, worker));
  }
}
