// A view of the colony for the control plane that needs nothing but the nodes themselves:
// node health by asking every node who it is each pass (a node that does not answer is down
// from its first silence), and the cells from the control cell's registry, each described by
// its own replicas. It suits a small colony; the discovery cache is the view at scale.

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
  /** Cells described again per pass, in rotation, besides new and changed ones (default 256). */
  readonly describePerPass?: number;
  /** Describes in flight at once (default 64): a pass must not flood the nodes it asks. */
  readonly describeConcurrency?: number;
  /** The registry is read again every this many passes (default 20), and at once after a creation. */
  readonly rescanEvery?: number;
  readonly now?: () => number;
}

/**
 * Costs per pass: one hello per node, and describes of the cells that are new, that the
 * control plane just changed, and `describePerPass` more in rotation. Cells change members
 * only through the control plane (or a node's own rejoin, which the rotation finds), so a
 * colony of many cells does not cost a describe of each cell every pass.
 */
export class ProbeView implements ColonyView {
  private readonly silentSince = new Map<string, number>();
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
    this.known.set(cell.cell, cell);
    this.names = null;
  }

  changed(cell: string): void {
    this.stale.add(cell);
  }

  async health(): Promise<ReadonlyMap<string, NodeHealth>> {
    const now = this.now();
    const out = new Map<string, NodeHealth>();
    await Promise.all(this.options.nodes.map(async (node) => {
      const answer = await this.options.client.hello(this.options.controlCell, node, this.options.probeMs ?? 400).catch(() => null);
      if (answer !== null) {
        this.silentSince.delete(node);
        out.set(node, { health: "alive", downForMs: 0, identity: answer.identity });
      } else {
        const since = this.silentSince.get(node) ?? now;
        this.silentSince.set(node, since);
        out.set(node, { health: "dead", downForMs: now - since, identity: null });
      }
    }));
    return out;
  }

  async cells(): Promise<readonly KnownCell[]> {
    if (this.names === null || ++this.scans % (this.options.rescanEvery ?? 20) === 0) this.names = (await readRegistry(this.options.client, this.options.controlCell)).names;
    const names = this.names;
    const registered = new Set(names);
    for (const cell of this.known.keys()) if (!registered.has(cell)) this.known.delete(cell);
    const todo = new Set<string>();
    for (const cell of names) if (!this.known.has(cell)) todo.add(cell);
    for (const cell of this.stale) if (registered.has(cell)) todo.add(cell);
    this.stale.clear();
    const rotation = Math.min(this.options.describePerPass ?? 256, names.length);
    for (let i = 0; i < rotation; i++) todo.add(names[(this.cursor + i) % names.length] as string);
    this.cursor = names.length === 0 ? 0 : (this.cursor + rotation) % names.length;
    await this.describeAll([...todo]);
    const out: KnownCell[] = [];
    for (const cell of this.known.values()) out.push({ ...cell, members: cell.members.filter((m) => this.nodeIds.has(nodePart(m))) });
    return out;
  }

  private async describeAll(cells: readonly string[]): Promise<void> {
    const client = this.options.client;
    let next = 0;
    const worker = async () => {
      while (next < cells.length) {
        const cell = cells[next++] as string;
        const described = await client.describe(cell).catch(() => null);
        if (described === null) {
          // Not found this time: a cell we never saw is left for a later pass; a known one keeps what we knew.
          continue;
        }
        this.known.set(cell, { cell, incarnation: described.hosted.incarnation, members: [...described.hosted.members] });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.describeConcurrency ?? 64, cells.length) }, worker));
  }
}
