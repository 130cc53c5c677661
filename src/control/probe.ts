// A view of the colony for the control plane that needs nothing but the nodes themselves:
// node health by asking every node who it is each pass (a node that does not answer is down
// from its first silence), and the cells from the control cell's registry, each described by
// its own replicas. It suits a small colony; the discovery cache is the view at scale.

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
  readonly now?: () => number;
}

export class ProbeView implements ColonyView {
  private readonly silentSince = new Map<string, number>();
  private readonly known = new Map<string, KnownCell>();
  private readonly now: () => number;

  constructor(private readonly options: ProbeViewOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  created(cell: KnownCell): void {
    this.known.set(cell.cell, cell);
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
    const client = this.options.client;
    const names: string[] = [];
    for (let start = "cell/"; ;) {
      const page = await client.transact(this.options.controlCell, { reads: [], conditions: [], writes: [], scan: { start, end: "cell0", limit: 256 } });
      if (page.status !== "committed" || page.scan === undefined) break;
      for (const [key] of page.scan.entries) names.push(key.slice("cell/".length));
      if (page.scan.next === null) break;
      start = page.scan.next;
    }
    await Promise.all(names.map(async (cell) => {
      const described = await client.describe(cell).catch(() => null);
      if (described === null) return;
      const members = [...described.hosted.members];
      // Its replicas may have moved off the nodes describe asks first: ask the members it knew.
      this.known.set(cell, { cell, incarnation: described.hosted.incarnation, members });
    }));
    for (const cell of [...this.known.keys()]) if (!names.includes(cell) && this.known.get(cell) === undefined) this.known.delete(cell);
    return [...this.known.values()].filter((c) => names.includes(c.cell) || c.members.length > 0).map((c) => ({ ...c, members: c.members.filter((m) => this.options.nodes.includes(nodePart(m))) }));
  }
}
